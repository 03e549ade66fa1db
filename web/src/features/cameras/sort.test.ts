import { describe, expect, it } from "vitest";
import type { Camera } from "./api";
import { sortCameras } from "./sort";

function cam(id: string, name: string, status: Camera["streamStatus"], createdAt: string): Camera {
  return {
    id,
    name,
    serialNumber: id,
    rtmpUrl: "",
    rtmpsUrl: "",
    streamKeyPrefix: "",
    isActive: true,
    isRecording: false,
    abrProfile: "off",
    streamStatus: status,
    hlsPath: "",
    createdAt,
    updatedAt: createdAt,
  };
}

const list = [
  cam("a", "Cam 10", "offline", "2026-01-03"),
  cam("b", "cam 2", "online", "2026-01-01"),
  cam("c", "Cam 1", "error", "2026-01-02"),
];

describe("sortCameras", () => {
  it("sorts names naturally and case-insensitively", () => {
    expect(sortCameras(list, "name", "asc").map((c) => c.id)).toEqual(["c", "b", "a"]);
    expect(sortCameras(list, "name", "desc").map((c) => c.id)).toEqual(["a", "b", "c"]);
  });
  it("puts online first, offline last", () => {
    expect(sortCameras(list, "status", "asc").map((c) => c.streamStatus)).toEqual(["online", "error", "offline"]);
  });
  it("sorts by creation time and does not mutate its input", () => {
    const before = list.map((c) => c.id);
    expect(sortCameras(list, "createdAt", "desc").map((c) => c.id)).toEqual(["a", "c", "b"]);
    expect(list.map((c) => c.id)).toEqual(before);
  });
});
