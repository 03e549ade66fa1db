import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { playbackQuery, webrtcQuery } from "@/features/cameras/api";
import { errorMessage } from "@/components/ui/state";
import { ApiError } from "@/lib/api";
import type { Playback } from "./hls";
import type { TilePlayback } from "./layout";
import { attachWhep } from "./webrtc";
import { CONNECTING, badge, needsFreshUrl, type WhepView } from "./whep";

/** True while the element is on screen and the tab is visible: players load only then. */
function useVisible(ref: React.RefObject<HTMLElement | null>): boolean {
  const [onScreen, setOnScreen] = useState(false);
  const [tabVisible, setTabVisible] = useState(() => document.visibilityState === "visible");
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const io = new IntersectionObserver((entries) => setOnScreen(entries.some((e) => e.isIntersecting)), { threshold: 0.01 });
    io.observe(el);
    return () => io.disconnect();
  }, [ref]);
  useEffect(() => {
    const on = () => setTabVisible(document.visibilityState === "visible");
    document.addEventListener("visibilitychange", on);
    return () => document.removeEventListener("visibilitychange", on);
  }, []);
  return onScreen && tabVisible;
}

/** What a WebRTC tile says while it is not playing. */
function whepText(view: WhepView, now: number): string | null {
  switch (view.phase) {
    case "playing":
      return null;
    case "connecting":
      return "Connecting over WebRTC…";
    case "retrying": {
      const s = view.retryAt === null ? 0 : Math.max(1, Math.ceil((view.retryAt - now) / 1000));
      return `${view.message ?? "Not playing."} Trying again in ${s} s.`;
    }
    case "failed":
      return view.message;
  }
}

/**
 * A muted live player for one camera: LL-HLS (signed URL from the API, hls.js) or WebRTC
 * (signed WHEP URL from the API, `webrtc.ts`). Players run only while the tile is on screen
 * and the tab visible: LL-HLS pauses loading when hidden; a WebRTC session is ended
 * (DELETE) when hidden and made again when shown.
 */
export function LivePlayer({ cameraId, label, playback: mode = "hls" }: { cameraId: string; label: string; playback?: TilePlayback }) {
  const box = useRef<HTMLDivElement>(null);
  const video = useRef<HTMLVideoElement>(null);
  const playback = useRef<Playback | null>(null);
  const visible = useVisible(box);
  // Signed URLs are fetched once the tile has been seen, then kept fresh.
  const [wanted, setWanted] = useState(false);
  useEffect(() => {
    if (visible) setWanted(true);
  }, [visible]);
  const urls = useQuery({ ...playbackQuery(cameraId), enabled: wanted && mode === "hls" });
  const whep = useQuery({ ...webrtcQuery(cameraId), enabled: wanted && mode === "webrtc" });
  const url = mode === "hls" ? urls.data?.llHlsUrl : undefined;
  const [error, setError] = useState<string | null>(null);
  const [view, setView] = useState<WhepView>(CONNECTING);
  const qc = useQueryClient();

  useEffect(() => {
    const v = video.current;
    if (!v || !url) return;
    let cancelled = false;
    setError(null);
    void import("./hls").then(({ attach }) => {
      if (cancelled) return;
      playback.current = attach(v, url, setError);
    });
    return () => {
      cancelled = true;
      playback.current?.destroy();
      playback.current = null;
    };
  }, [url]);

  useEffect(() => {
    if (visible) playback.current?.resume();
    else playback.current?.pause();
  }, [visible]);

  // WebRTC: one session while shown. The signed URL comes from the query cache (kept fresh
  // by the query above), fetched anew when close to expiry or refused.
  useEffect(() => {
    const v = video.current;
    if (mode !== "webrtc" || !visible || !v) return;
    setView(CONNECTING);
    const player = attachWhep(v, {
      target: async (fresh) => {
        const cached = qc.getQueryData(webrtcQuery(cameraId).queryKey);
        const stale = fresh || !cached || needsFreshUrl(cached.expiresAt, Date.now());
        const t = await qc.fetchQuery({ ...webrtcQuery(cameraId), staleTime: stale ? 0 : 10 * 60_000 });
        return { whepUrl: t.whepUrl, iceServers: t.iceServers };
      },
      fatal: (err) => (err instanceof ApiError && err.status >= 400 && err.status < 500 ? err.message : null),
      onView: setView,
    });
    return () => player.destroy();
  }, [mode, visible, cameraId, qc]);

  // The retry countdown ticks once a second.
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (mode !== "webrtc" || view.phase !== "retrying") return;
    setNow(Date.now());
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [mode, view.phase]);

  const message =
    mode === "webrtc"
      ? whep.isError
        ? errorMessage(whep.error)
        : whepText(view, now)
      : urls.isError || error
        ? (error ?? errorMessage(urls.error))
        : null;

  return (
    <div ref={box} className="relative aspect-video w-full overflow-hidden rounded-md bg-black">
      <video
        ref={video}
        className="h-full w-full"
        muted
        autoPlay
        playsInline
        aria-label={`Live video of ${label}`}
        data-testid="live-video"
        data-playback={mode}
        data-state={mode === "webrtc" ? (whep.isError ? "failed" : view.phase) : undefined}
      />
      {mode === "webrtc" ? (
        <span className="absolute left-2 top-2 rounded bg-black/70 px-1.5 py-0.5 text-xs font-medium text-white" data-testid="playback-badge">
          {badge(view)}
        </span>
      ) : null}
      {message ? (
        <p role="status" className="absolute inset-x-0 bottom-0 bg-black/70 p-2 text-sm text-white" data-testid="player-state">
          {message}
        </p>
      ) : null}
    </div>
  );
}
