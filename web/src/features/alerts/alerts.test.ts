import { describe, expect, it } from "vitest";
import { alertQuery, chimeFor, type Alert } from "./alerts";

const alert = (id: string, severity: Alert["severity"]): Alert => ({
  id,
  severity,
  type: "CAMERA_OFFLINE",
  state: "open",
  message: "m",
  occurrences: 1,
  createdAt: "2026-12-06T00:00:00Z",
  lastSeenAt: "2026-12-06T00:00:00Z",
});

describe("alerts", () => {
  it("sends only the filters that are set", () => {
    expect(alertQuery({ severity: "", type: "", state: "", acknowledged: "", page: 1 })).toEqual({ page: 1, limit: 25 });
    expect(alertQuery({ severity: "critical", type: "CAMERA_OFFLINE", state: "open", acknowledged: "no", page: 3 })).toEqual({
      page: 3,
      limit: 25,
      severity: "critical",
      type: "CAMERA_OFFLINE",
      state: "open",
      acknowledged: false,
    });
  });

  it("chimes for a new critical alert only, never on the first poll", () => {
    const a = alert("a", "critical");
    const b = alert("b", "warning");
    const c = alert("c", "critical");
    expect(chimeFor(null, [a])).toBe(false);
    expect(chimeFor(new Set(["a"]), [a, b])).toBe(false);
    expect(chimeFor(new Set(["a", "b"]), [a, b, c])).toBe(true);
  });
});
