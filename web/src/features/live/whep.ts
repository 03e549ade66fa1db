/**
 * WHEP playback decisions (pure): where a session resource lives, how long to wait before
 * the next attempt, what a refusal means, and the state a tile shows. The browser side
 * (`RTCPeerConnection`, `fetch`, timers) is `webrtc.ts`; the protocol is docs/webrtc.md.
 */

/** What a WebRTC tile shows. */
export type WhepPhase = "connecting" | "playing" | "retrying" | "failed";

export interface WhepView {
  phase: WhepPhase;
  /** Why it is retrying or failed (the server's plain-text reason when it gave one). */
  message: string | null;
  /** The ABR rendition played (`X-Camstream-Rendition`), null for the camera itself. */
  rendition: string | null;
  /** Wall-clock ms of the next attempt while retrying. */
  retryAt: number | null;
}

export const CONNECTING: WhepView = { phase: "connecting", message: null, rendition: null, retryAt: null };

/** A connection `disconnected` this long (or `failed`) is torn down and made again. */
export const DISCONNECT_GRACE_MS = 5_000;
/**
 * No first frame this long after the answer: give up on the attempt. The server drops a
 * session whose ICE/DTLS has not completed 15 s after the answer.
 */
export const FIRST_FRAME_TIMEOUT_MS = 15_000;
/** A signed URL this close to its expiry is fetched anew before an offer. */
export const URL_REFRESH_MARGIN_MS = 60_000;

const BACKOFF_BASE_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;
/** Retry-After is the server's word, within reason. */
const RETRY_AFTER_MAX_MS = 60_000;

/**
 * Delay before attempt `attempt + 1` after `attempt` failures in a row (0-based): 1 s,
 * 2 s, 4 s … 30 s, spread by ±25 % (`random` in [0, 1)) so tiles do not retry in step.
 */
export function backoffMs(attempt: number, random: number): number {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, Math.min(attempt, 16)));
  return Math.round(base * (0.75 + 0.5 * Math.min(Math.max(random, 0), 1)));
}

/**
 * A `Retry-After` value (RFC 9110 §10.2.3: delay-seconds or an HTTP-date) as ms from
 * `now`, between 0 and 60 s; null when absent or unreadable.
 */
export function parseRetryAfter(value: string | null, now: number): number | null {
  if (value === null) return null;
  const v = value.trim();
  if (v === "") return null;
  let ms: number;
  if (/^\d+$/.test(v)) {
    ms = Number(v) * 1000;
  } else {
    // An HTTP-date has a day and month name ("Mon, 07 Dec 2026 10:00:05 GMT"); Date.parse
    // would also take a bare "-1" as a year.
    if (!/[A-Za-z]/.test(v)) return null;
    const at = Date.parse(v);
    if (Number.isNaN(at)) return null;
    ms = at - now;
  }
  return Math.min(RETRY_AFTER_MAX_MS, Math.max(0, ms));
}

/**
 * The session resource: the answer's `Location` resolved against the WHEP URL (the server
 * sends a path, `/whep/{camera}/{session}`, so it lands on the WHEP URL's origin). Null
 * when there is none or it cannot be read.
 */
export function resolveLocation(location: string | null, whepUrl: string): string | null {
  if (!location) return null;
  try {
    return new URL(location, whepUrl).toString();
  } catch {
    return null;
  }
}

/** Whether a signed URL expiring at `expiresAt` (RFC 3339) should be fetched anew at `now`. */
export function needsFreshUrl(expiresAt: string, now: number, margin = URL_REFRESH_MARGIN_MS): boolean {
  const at = Date.parse(expiresAt);
  return Number.isNaN(at) || at - now <= margin;
}

/** What to do after an attempt that did not play. */
export type Next =
  /** Wait `delayMs`, then offer again; `freshUrl`: fetch a new signed URL first. */
  | { kind: "retry"; delayMs: number; message: string; freshUrl: boolean }
  /** Stop and show `message`: retrying will not help. */
  | { kind: "fail"; message: string };

/** Why an attempt did not play. */
export type Outcome =
  /** The POST was answered with an error status (`reason`: the body, plain text). */
  | { kind: "refused"; status: number; reason: string; retryAfter: string | null }
  /** The POST did not reach the server. */
  | { kind: "network"; detail: string }
  /** The connection failed, stayed disconnected, or showed no frame in time. */
  | { kind: "lost"; detail: string };

const OFFLINE = "The camera is not streaming.";

/**
 * The next step after `outcome`, the `failures`-th attempt in a row that did not play
 * (1-based). `now` reads an HTTP-date Retry-After; `random` spreads backoff.
 */
export function decide(outcome: Outcome, failures: number, now: number, random: number): Next {
  const wait = backoffMs(Math.max(0, failures - 1), random);
  switch (outcome.kind) {
    case "network":
      return { kind: "retry", delayMs: wait, message: `Cannot reach the server (${outcome.detail}).`, freshUrl: false };
    case "lost":
      return { kind: "retry", delayMs: wait, message: `Connection lost (${outcome.detail}).`, freshUrl: false };
    case "refused": {
      const reason = outcome.reason.trim();
      const said = (fallback: string) => (reason === "" ? fallback : reason);
      switch (outcome.status) {
        case 401:
        case 403:
          // The signed URL expired (or was refused): once with a fresh one, then stop.
          return failures <= 1
            ? { kind: "retry", delayMs: 0, message: said("Playback token refused."), freshUrl: true }
            : { kind: "fail", message: said("Playback token refused.") };
        case 404:
          // Offline camera: keep trying, as a camera comes back by itself.
          return { kind: "retry", delayMs: Math.max(wait, 2_000), message: reason === "camera is offline" || reason === "" ? OFFLINE : reason, freshUrl: false };
        case 409:
          // B-frames without an ABR rendition, not H.264: the camera has to change.
          return { kind: "fail", message: said("This camera cannot be played over WebRTC.") };
        case 429:
        case 503: {
          const after = parseRetryAfter(outcome.retryAfter, now);
          return { kind: "retry", delayMs: after ?? wait, message: said("The server is busy."), freshUrl: false };
        }
        default:
          if (outcome.status >= 500) return { kind: "retry", delayMs: wait, message: said(`Server error ${outcome.status}.`), freshUrl: false };
          // 400, 413, 415: the offer itself is wrong; another one will be too.
          return { kind: "fail", message: said(`WebRTC refused (${outcome.status}).`) };
      }
    }
  }
}

/** The view while waiting after `next` (a failure keeps the rendition shown last). */
export function viewAfter(next: Next, previous: WhepView, now: number): WhepView {
  return next.kind === "retry"
    ? { phase: "retrying", message: next.message, rendition: previous.rendition, retryAt: now + next.delayMs }
    : { phase: "failed", message: next.message, rendition: previous.rendition, retryAt: null };
}

/** The badge of a WebRTC tile: `WebRTC`, or `WebRTC · 480p` when a rendition plays. */
export function badge(view: WhepView): string {
  return view.rendition ? `WebRTC · ${view.rendition}` : "WebRTC";
}

/**
 * Watches `connectionState` for loss: `failed` is lost at once, `disconnected` once it
 * lasted [`DISCONNECT_GRACE_MS`] (ICE often recovers by itself before). Feed it each state
 * change with the time; `deadline()` is when to call `lostAt` next.
 */
export class LossWatch {
  private since: number | null = null;
  private failed = false;

  handle(state: RTCPeerConnectionState, now: number): void {
    this.failed = state === "failed" || state === "closed";
    if (state === "disconnected") this.since ??= now;
    else this.since = null;
  }

  /** When the connection counts as lost if nothing changes (null: not pending). */
  deadline(): number | null {
    if (this.failed) return 0;
    return this.since === null ? null : this.since + DISCONNECT_GRACE_MS;
  }

  /** Whether the connection is lost at `now`. */
  lostAt(now: number): boolean {
    const d = this.deadline();
    return d !== null && now >= d;
  }
}
