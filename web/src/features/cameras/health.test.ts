import { describe, expect, it } from "vitest";
import { maxOf, path, points, type Sample } from "./health";

const at = (s: number) => new Date(1_800_000_000_000 + s * 1000).toISOString();
const sample = (s: number, over: Partial<Sample> = {}): Sample => ({ at: at(s), fps: 25, bitrate: 2e6, droppedFrames: 0, viewers: 1, ...over });
const start = 1_800_000_000;

describe("health charts", () => {
  it("places samples in time and breaks the line where the camera did not report", () => {
    const p = points([sample(0), sample(10, { fps: 20 }), sample(60, { fps: 30 })], "fps", start, 10);
    expect(p).toEqual([{ x: 0, y: 25 }, { x: 10, y: 20 }, null, { x: 60, y: 30 }]);
    expect(path(p, 60, maxOf(p), 60, 30)).toBe("M0.0,5.0L10.0,10.0M60.0,0.0");
  });

  it("shows dropped frames per sample, a new publish restarting the counter", () => {
    const p = points([sample(0, { droppedFrames: 5 }), sample(10, { droppedFrames: 8 }), sample(20, { droppedFrames: 2 })], "dropped", start, 10);
    expect(p.map((x) => x?.y)).toEqual([0, 3, 2]);
  });

  it("draws a flat zero line for an all-zero series", () => {
    const p = points([sample(0, { viewers: 0 }), sample(10, { viewers: 0 })], "viewers", start, 10);
    expect(maxOf(p)).toBe(0);
    expect(path(p, 10, 0, 100, 20)).toBe("M0.0,20.0L100.0,20.0");
  });
});
