import { describe, expect, it } from "vitest";
import { bars } from "./bars";

describe("bars", () => {
  it("scales to the largest value and keeps small non-zero values visible", () => {
    expect(bars([{ key: "a", value: 200 }, { key: "b", value: 50 }, { key: "c", value: 1 }, { key: "d", value: 0 }]).map((b) => b.percent)).toEqual([
      100, 25, 1, 0,
    ]);
  });
  it("handles nothing and all zeros", () => {
    expect(bars([])).toEqual([]);
    expect(bars([{ key: "a", value: 0 }])[0]?.percent).toBe(0);
  });
});
