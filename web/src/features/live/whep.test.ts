import { describe, expect, it } from "vitest";
import { CONNECTING, DISCONNECT_GRACE_MS, LossWatch, backoffMs, badge, decide, needsFreshUrl, parseRetryAfter, resolveLocation, viewAfter } from "./whep";

const NOW = Date.parse("2026-12-07T10:00:00Z");

describe("WHEP session resource", () => {
  it("resolves the answer's Location against the WHEP URL's origin", () => {
    const whep = "http://cams.example:8080/whep/cam-1?token=abc";
    expect(resolveLocation("/whep/cam-1/0f3a", whep)).toBe("http://cams.example:8080/whep/cam-1/0f3a");
    // A rendition's session sits under its own name.
    expect(resolveLocation("/whep/cam-1~480p/77", whep)).toBe("http://cams.example:8080/whep/cam-1~480p/77");
    // Relative to the resource, and absolute, as RFC 9110 allows.
    expect(resolveLocation("cam-1/9", "https://h/whep/cam-1")).toBe("https://h/whep/cam-1/9");
    expect(resolveLocation("https://other:8443/whep/x/1", whep)).toBe("https://other:8443/whep/x/1");
    expect(resolveLocation(null, whep)).toBeNull();
    expect(resolveLocation("", whep)).toBeNull();
    expect(resolveLocation("http://[bad", whep)).toBeNull();
  });
});

describe("Retry-After", () => {
  it("reads delay-seconds and HTTP-dates, within 0–60 s", () => {
    expect(parseRetryAfter("2", NOW)).toBe(2_000);
    expect(parseRetryAfter(" 0 ", NOW)).toBe(0);
    expect(parseRetryAfter("3600", NOW)).toBe(60_000);
    expect(parseRetryAfter("Mon, 07 Dec 2026 10:00:05 GMT", NOW)).toBe(5_000);
    expect(parseRetryAfter("Mon, 07 Dec 2026 09:59:00 GMT", NOW)).toBe(0);
    expect(parseRetryAfter(null, NOW)).toBeNull();
    expect(parseRetryAfter("", NOW)).toBeNull();
    expect(parseRetryAfter("soon", NOW)).toBeNull();
    expect(parseRetryAfter("-1", NOW)).toBeNull();
  });
});

describe("backoff", () => {
  it("doubles from 1 s to at most 30 s, spread by ±25 %", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 40].map((a) => backoffMs(a, 0.5))).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
    expect(backoffMs(0, 0)).toBe(750);
    expect(backoffMs(0, 0.999999)).toBe(1_250);
    expect(backoffMs(5, 1)).toBe(37_500);
    expect(backoffMs(-3, 0.5)).toBe(1_000);
  });
});

describe("what follows an attempt", () => {
  const refused = (status: number, reason = "", retryAfter: string | null = null) => ({ kind: "refused" as const, status, reason, retryAfter });

  it("stops with the server's reason when the camera cannot be played (409)", () => {
    const reason = "camera uses B-frames: WebRTC players cannot reorder them; enable the camera's abrProfile, configure x264 -bf 0 / baseline, or watch over HLS";
    expect(decide(refused(409, reason), 1, NOW, 0.5)).toEqual({ kind: "fail", message: reason });
    expect(decide(refused(409), 1, NOW, 0.5)).toEqual({ kind: "fail", message: "This camera cannot be played over WebRTC." });
  });

  it("waits what 503 Retry-After says, else backs off", () => {
    expect(decide(refused(503, "no picture yet", "2"), 1, NOW, 0.5)).toEqual({ kind: "retry", delayMs: 2_000, message: "no picture yet", freshUrl: false });
    expect(decide(refused(503, "full"), 3, NOW, 0.5)).toMatchObject({ kind: "retry", delayMs: 4_000 });
  });

  it("keeps trying an offline camera (404), no faster than every 2 s", () => {
    expect(decide(refused(404, "camera is offline"), 1, NOW, 0.5)).toEqual({ kind: "retry", delayMs: 2_000, message: "The camera is not streaming.", freshUrl: false });
    expect(decide(refused(404, "camera is offline"), 4, NOW, 0.5)).toMatchObject({ delayMs: 8_000 });
  });

  it("fetches a fresh signed URL once when the token is refused", () => {
    expect(decide(refused(403, "token expired"), 1, NOW, 0.5)).toEqual({ kind: "retry", delayMs: 0, message: "token expired", freshUrl: true });
    expect(decide(refused(401), 2, NOW, 0.5)).toEqual({ kind: "fail", message: "Playback token refused." });
  });

  it("stops on a refused offer, retries server errors, lost connections and the network", () => {
    expect(decide(refused(400, "bad SDP offer"), 1, NOW, 0.5)).toEqual({ kind: "fail", message: "bad SDP offer" });
    expect(decide(refused(415), 1, NOW, 0.5)).toEqual({ kind: "fail", message: "WebRTC refused (415)." });
    expect(decide(refused(502), 2, NOW, 0.5)).toEqual({ kind: "retry", delayMs: 2_000, message: "Server error 502.", freshUrl: false });
    expect(decide({ kind: "lost", detail: "connection failed" }, 1, NOW, 0.5)).toEqual({
      kind: "retry",
      delayMs: 1_000,
      message: "Connection lost (connection failed).",
      freshUrl: false,
    });
    expect(decide({ kind: "network", detail: "Failed to fetch" }, 6, NOW, 0.5)).toMatchObject({ kind: "retry", delayMs: 30_000 });
  });

  it("shows a retry's countdown or the failure, keeping the rendition", () => {
    const was = { ...CONNECTING, rendition: "480p" };
    expect(viewAfter({ kind: "retry", delayMs: 2_000, message: "m", freshUrl: false }, was, NOW)).toEqual({ phase: "retrying", message: "m", rendition: "480p", retryAt: NOW + 2_000 });
    expect(viewAfter({ kind: "fail", message: "no" }, was, NOW)).toEqual({ phase: "failed", message: "no", rendition: "480p", retryAt: null });
    expect(badge(was)).toBe("WebRTC · 480p");
    expect(badge(CONNECTING)).toBe("WebRTC");
  });
});

describe("signed URL freshness", () => {
  it("fetches anew within a minute of expiry or when the time is unreadable", () => {
    expect(needsFreshUrl("2026-12-07T10:15:00Z", NOW)).toBe(false);
    expect(needsFreshUrl("2026-12-07T10:01:00Z", NOW)).toBe(true);
    expect(needsFreshUrl("2026-12-07T09:59:00Z", NOW)).toBe(true);
    expect(needsFreshUrl("never", NOW)).toBe(true);
  });
});

describe("connection loss", () => {
  it("counts disconnected as lost after the grace, failed at once", () => {
    const w = new LossWatch();
    w.handle("connecting", 0);
    w.handle("connected", 100);
    expect(w.deadline()).toBeNull();
    w.handle("disconnected", 1_000);
    expect(w.deadline()).toBe(1_000 + DISCONNECT_GRACE_MS);
    expect(w.lostAt(1_000 + DISCONNECT_GRACE_MS - 1)).toBe(false);
    // ICE recovers by itself: the grace starts again at the next disconnect.
    w.handle("connected", 3_000);
    expect(w.lostAt(10_000)).toBe(false);
    w.handle("disconnected", 11_000);
    w.handle("disconnected", 12_000);
    expect(w.deadline()).toBe(11_000 + DISCONNECT_GRACE_MS);
    expect(w.lostAt(16_000)).toBe(true);
    w.handle("failed", 16_500);
    expect(w.deadline()).toBe(0);
    expect(w.lostAt(16_500)).toBe(true);
  });
});
