import { describe, expect, it } from "vitest";
import { assign, defaultLayout, fromStored, parseLayout, playbackOf, prune, resize, setPlayback, toStored } from "./layout";

describe("grid layout", () => {
  it("fills a default layout in order and pads with empty slots", () => {
    expect(defaultLayout(["a", "b", "c"], 2)).toEqual({ columns: 2, tiles: ["a", "b", "c", null] });
    expect(defaultLayout(["a", "b"], 1)).toEqual({ columns: 1, tiles: ["a"] });
  });

  it("resizes keeping cameras in slot order", () => {
    const l = { columns: 3 as const, tiles: [null, "a", null, "b", null, null, "c", "d", "e"] };
    expect(resize(l, 2)).toEqual({ columns: 2, tiles: ["a", "b", "c", "d"] });
    expect(resize(l, 1).tiles).toEqual(["a"]);
    expect(resize({ columns: 1, tiles: ["a"] }, 2).tiles).toEqual(["a", null, null, null]);
  });

  it("assigns by swapping, never showing a camera twice", () => {
    const l = { columns: 2 as const, tiles: ["a", "b", null, null] };
    expect(assign(l, 2, "c").tiles).toEqual(["a", "b", "c", null]);
    expect(assign(l, 1, "a").tiles).toEqual(["b", "a", null, null]);
    expect(assign(l, 3, "a").tiles).toEqual([null, "b", null, "a"]);
    expect(assign(l, 0, null).tiles).toEqual([null, "b", null, null]);
    expect(assign(l, 9, "x")).toBe(l);
  });

  it("prunes unknown cameras", () => {
    const l = { columns: 2 as const, tiles: ["a", "gone", null, "b"] };
    expect(prune(l, new Set(["a", "b"])).tiles).toEqual(["a", null, null, "b"]);
    expect(prune(l, new Set(["a", "b", "gone"]))).toBe(l);
  });

  it("parses only well-formed stored layouts", () => {
    expect(parseLayout(JSON.stringify({ columns: 1, tiles: ["a"] }))).toEqual({ columns: 1, tiles: ["a"] });
    expect(parseLayout(JSON.stringify({ columns: 2, tiles: ["a"] }))).toBeNull();
    expect(parseLayout(JSON.stringify({ columns: 4, tiles: [] }))).toBeNull();
    expect(parseLayout(JSON.stringify({ columns: 1, tiles: [1] }))).toBeNull();
    expect(parseLayout("{not json")).toBeNull();
    expect(parseLayout(null)).toBeNull();
  });

  it("converts to and from the API's grids", () => {
    const l = { columns: 2 as const, tiles: [null, "a", "b", null] };
    const stored = toStored(l);
    expect(stored).toEqual({ columns: 2, rows: 2, tiles: [{ cameraId: "a", position: 1 }, { cameraId: "b", position: 2 }] });
    expect(fromStored(stored)).toEqual(l);
    // A 4×2 grid from another client: shown as 3×3, tiles keep row and column, the rest is left out.
    const wide = { columns: 4, rows: 2, tiles: [{ cameraId: "a", position: 0 }, { cameraId: "b", position: 3 }, { cameraId: "c", position: 5 }] };
    expect(fromStored(wide)).toEqual({ columns: 3, tiles: ["a", null, null, null, "c", null, null, null, null] });
    // Nonsense is dropped, never thrown.
    expect(fromStored({ columns: 1, rows: 1, tiles: [{ cameraId: "a", position: -1 }, { cameraId: "a", position: 0 }, { cameraId: "a", position: 0 }] })).toEqual({ columns: 1, tiles: ["a"] });
  });

  it("keeps each tile's playback with its camera", () => {
    const l = setPlayback({ columns: 2 as const, tiles: ["a", "b", null, null] }, "b", "webrtc");
    expect(playbackOf(l, "b")).toBe("webrtc");
    expect(playbackOf(l, "a")).toBe("hls");
    expect(setPlayback(l, "b", "webrtc")).toBe(l);
    // Swapped, resized: the choice follows the camera.
    expect(playbackOf(assign(l, 0, "b"), "b")).toBe("webrtc");
    expect(playbackOf(resize(l, 3), "b")).toBe("webrtc");
    // Saved in the tile, read back; LL-HLS is the absence of a choice.
    const stored = toStored(l);
    expect(stored.tiles).toEqual([{ cameraId: "a", position: 0 }, { cameraId: "b", position: 1, playback: "webrtc" }]);
    expect(fromStored(stored)).toEqual(l);
    expect(fromStored({ columns: 2, rows: 2, tiles: [{ cameraId: "a", position: 0, playback: "hls" }, { cameraId: "b", position: 1, playback: null }] })).toEqual({
      columns: 2,
      tiles: ["a", "b", null, null],
    });
    const back = setPlayback(l, "b", "hls");
    expect(back).toEqual({ columns: 2, tiles: ["a", "b", null, null] });
    expect(toStored(back).tiles).toEqual([{ cameraId: "a", position: 0 }, { cameraId: "b", position: 1 }]);
  });
});
