/**
 * The one place `RTCPeerConnection` is used: plays a camera over WHEP (docs/webrtc.md) in a
 * muted `<video>`, reconnecting when the connection is lost and retrying refusals the way
 * `whep.ts` decides. Every session it creates is DELETEd when it ends.
 */
import { CONNECTING, FIRST_FRAME_TIMEOUT_MS, LossWatch, decide, resolveLocation, viewAfter, type Outcome, type WhepView } from "./whep";

/** What an offer needs: the signed WHEP URL and the ICE servers (the API's answer). */
export interface WhepTarget {
  whepUrl: string;
  iceServers: RTCIceServer[];
}

export interface WhepOptions {
  /** The signed URL to offer to; `fresh`: not from a cache (the last one was refused). */
  target(fresh: boolean): Promise<WhepTarget>;
  /**
   * An error of `target` that retrying will not cure (WebRTC off on the node, the camera
   * disabled): its message, else null (retried with backoff).
   */
  fatal(err: unknown): string | null;
  onView(view: WhepView): void;
}

export interface WhepPlayback {
  /** Ends the session (DELETE) and stops reconnecting. */
  destroy(): void;
}

/**
 * Ends a session resource; best effort (the server also drops it 15 s after consent stops).
 * `closing`: the page is going away (keepalive lets the request outlive it).
 */
function remove(location: string, closing = false): Promise<void> {
  return fetch(location, { method: "DELETE", keepalive: closing, signal: AbortSignal.timeout(DELETE_TIMEOUT_MS) }).then(
    () => {},
    () => {},
  );
}

/** How long a DELETE may hold back closing the peer connection. */
const DELETE_TIMEOUT_MS = 2_000;

/** Starts playing; call `destroy` when the tile unmounts, hides or switches to LL-HLS. */
export function attachWhep(video: HTMLVideoElement, opts: WhepOptions): WhepPlayback {
  let stopped = false;
  // Attempts in a row that did not play (reset by a first frame).
  let attempts = 0;
  let view: WhepView = CONNECTING;
  // Wakes the loop out of a wait (a backoff, or watching a live connection) on destroy.
  let wake: (() => void) | null = null;
  const show = (v: WhepView) => {
    view = v;
    if (!stopped) opts.onView(v);
  };
  const sleep = (ms: number) =>
    new Promise<void>((done) => {
      const t = setTimeout(done, ms);
      wake = () => {
        clearTimeout(t);
        done();
      };
    });

  // The live session's resource. A page being closed or reloaded runs no React cleanup:
  // end the session from `pagehide` rather than leave it to the server's 15 s timeout.
  let live: string | null = null;
  const onPageHide = () => {
    if (live) void remove(live, true);
    live = null;
  };
  window.addEventListener("pagehide", onPageHide);

  /** One session from offer to loss; resolves with why it ended (null: destroyed). */
  async function session(fresh: boolean): Promise<Outcome | null> {
    const target = await opts.target(fresh);
    if (stopped) return null;
    const pc = new RTCPeerConnection({ iceServers: target.iceServers });
    let location: string | null = null;
    try {
      pc.addTransceiver("video", { direction: "recvonly" });
      pc.ontrack = (e) => {
        if (stopped) return;
        video.srcObject = e.streams[0] ?? new MediaStream([e.track]);
        void video.play().catch(() => {});
      };
      // The server is ICE-lite and its answer holds its candidate; ours reach it as
      // connectivity checks, so the offer goes out without waiting for gathering.
      await pc.setLocalDescription(await pc.createOffer());
      let res: Response;
      try {
        res = await fetch(target.whepUrl, { method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription?.sdp ?? "" });
      } catch (e) {
        return { kind: "network", detail: e instanceof Error ? e.message : String(e) };
      }
      const body = await res.text();
      if (res.status !== 201) return { kind: "refused", status: res.status, reason: body, retryAfter: res.headers.get("Retry-After") };
      location = resolveLocation(res.headers.get("Location"), target.whepUrl);
      live = location;
      // Destroyed while the offer was out: the session exists now, end it.
      if (stopped) return null;
      const rendition = res.headers.get("X-Camstream-Rendition");
      show({ ...CONNECTING, rendition });
      await pc.setRemoteDescription({ type: "answer", sdp: body });
      return await watch(pc, rendition);
    } finally {
      pc.ontrack = null;
      pc.onconnectionstatechange = null;
      // DELETE first, close after its answer: closing sends DTLS close_notify, which ends
      // the session on the server before a DELETE sent at the same time arrives (404).
      const ending = location && live === location ? location : null;
      live = null;
      if (ending) await remove(ending);
      pc.close();
      // On destroy the element was let go at once (LL-HLS may own it by now).
      if (!stopped) video.srcObject = null;
    }
  }

  /** Waits for the first frame, then for loss (or destroy). */
  function watch(pc: RTCPeerConnection, rendition: string | null): Promise<Outcome | null> {
    return new Promise((done) => {
      if (stopped) {
        done(null);
        return;
      }
      const loss = new LossWatch();
      const firstFrameBy = Date.now() + FIRST_FRAME_TIMEOUT_MS;
      let timer: ReturnType<typeof setTimeout> | null = null;
      let playing = false;
      const finish = (o: Outcome | null) => {
        if (timer) clearTimeout(timer);
        video.removeEventListener("playing", onPlaying);
        wake = null;
        done(o);
      };
      // One deadline at a time: the first frame's until it shows, then the loss watch's.
      const rearm = () => {
        if (timer) clearTimeout(timer);
        timer = null;
        const lostBy = loss.deadline();
        const at = lostBy ?? (playing ? null : firstFrameBy);
        if (at === null) return;
        const outcome: Outcome = lostBy !== null ? { kind: "lost", detail: `connection ${pc.connectionState}` } : { kind: "lost", detail: "no picture" };
        timer = setTimeout(() => finish(outcome), Math.max(0, at - Date.now()));
      };
      const onPlaying = () => {
        if (playing) return;
        playing = true;
        attempts = 0;
        show({ phase: "playing", message: null, rendition, retryAt: null });
        rearm();
      };
      video.addEventListener("playing", onPlaying);
      pc.onconnectionstatechange = () => {
        loss.handle(pc.connectionState, Date.now());
        rearm();
      };
      wake = () => finish(null);
      rearm();
    });
  }

  void (async () => {
    let fresh = false;
    while (!stopped) {
      let outcome: Outcome | null;
      try {
        outcome = await session(fresh);
      } catch (e) {
        const message = opts.fatal(e);
        if (message !== null) {
          show({ ...view, phase: "failed", message, retryAt: null });
          return;
        }
        outcome = { kind: "network", detail: e instanceof Error ? e.message : String(e) };
      }
      if (stopped || outcome === null) return;
      attempts += 1;
      const next = decide(outcome, attempts, Date.now(), Math.random());
      show(viewAfter(next, view, Date.now()));
      if (next.kind === "fail") return;
      fresh = next.freshUrl;
      if (next.delayMs > 0) await sleep(next.delayMs);
      wake = null;
      if (!stopped) show({ ...CONNECTING, rendition: view.rendition });
    }
  })();

  return {
    destroy() {
      if (stopped) return;
      stopped = true;
      window.removeEventListener("pagehide", onPageHide);
      if (video.srcObject) video.srcObject = null;
      wake?.();
    },
  };
}
