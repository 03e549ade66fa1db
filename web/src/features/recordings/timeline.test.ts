import { describe, expect, it } from "vitest";
import { adjacentMarker, intervalAt, layout, mediaTimeFor, playableAt, spans, timeAt, toFraction } from "./timeline";

const view = { start: 1_000, end: 11_000 };

describe("timeline math", () => {
  it("maps time to fractions and back, clamped", () => {
    expect(toFraction(6_000, view)).toBe(0.5);
    expect(toFraction(0, view)).toBe(0);
    expect(toFraction(20_000, view)).toBe(1);
    expect(timeAt(0.25, view)).toBe(3_500);
    expect(timeAt(-1, view)).toBe(1_000);
    expect(timeAt(toFraction(7_777, view), view)).toBe(7_777);
    expect(toFraction(5, { start: 5, end: 5 })).toBe(0);
  });

  it("lays out intervals clipped to the view", () => {
    const out = layout(
      [
        { start: 0, end: 2_000 },
        { start: 5_000, end: 6_000 },
        { start: 10_000, end: 30_000 },
        { start: 20_000, end: 30_000 },
      ],
      view,
    );
    expect(out.map((o) => [o.left, +o.width.toFixed(3)])).toEqual([
      [0, 0.1],
      [0.4, 0.1],
      [0.9, 0.1],
    ]);
  });

  it("finds the interval under a time and snaps gaps forward", () => {
    const covered = [
      { start: 2_000, end: 4_000 },
      { start: 6_000, end: 8_000 },
    ];
    expect(intervalAt(3_000, covered)).toEqual(covered[0]);
    expect(intervalAt(4_000, covered)).toBeNull();
    expect(playableAt(3_000, covered)).toBe(3_000);
    expect(playableAt(5_000, covered)).toBe(6_000);
    expect(playableAt(1_000, covered)).toBe(2_000);
    expect(playableAt(9_000, covered)).toBeNull();
  });

  it("turns a wall-clock seek into media time from the playlist's first fragment", () => {
    const first = { start: 0, programDateTime: 1_700_000_000_000 };
    expect(mediaTimeFor(1_700_000_012_500, first)).toBe(12.5);
    expect(mediaTimeFor(1_699_999_999_000, first)).toBe(0);
    expect(mediaTimeFor(1_700_000_001_000, { start: 3, programDateTime: 1_700_000_000_000 })).toBe(4);
  });

  it("parses API spans, dropping empty ones", () => {
    expect(spans([{ start: "2026-12-05T00:00:00Z", end: "2026-12-05T00:00:10Z" }, { start: "2026-12-05T00:00:10Z", end: "2026-12-05T00:00:10Z" }])).toEqual([
      { start: Date.parse("2026-12-05T00:00:00Z"), end: Date.parse("2026-12-05T00:00:10Z") },
    ]);
  });
});

describe("adjacentMarker", () => {
  const markers = [30_000, 10_000, 20_000];
  it("finds the next and previous marker, skipping the one at hand", () => {
    expect(adjacentMarker(15_000, markers, 1)).toBe(20_000);
    expect(adjacentMarker(15_000, markers, -1)).toBe(10_000);
    expect(adjacentMarker(20_500, markers, 1)).toBe(30_000);
    expect(adjacentMarker(20_500, markers, -1)).toBe(10_000);
    expect(adjacentMarker(31_000, markers, 1)).toBeNull();
    expect(adjacentMarker(5_000, markers, -1)).toBeNull();
    expect(adjacentMarker(5_000, [], 1)).toBeNull();
  });
});
