import { useQuery } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { playbackQuery } from "@/features/cameras/api";
import { errorMessage } from "@/components/ui/state";
import type { Playback } from "./hls";

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

/** A muted live player for one camera (signed LL-HLS URL from the API). */
export function LivePlayer({ cameraId, label }: { cameraId: string; label: string }) {
  const box = useRef<HTMLDivElement>(null);
  const video = useRef<HTMLVideoElement>(null);
  const playback = useRef<Playback | null>(null);
  const visible = useVisible(box);
  // Signed URLs are fetched once the tile has been seen, then kept fresh.
  const [wanted, setWanted] = useState(false);
  useEffect(() => {
    if (visible) setWanted(true);
  }, [visible]);
  const urls = useQuery({ ...playbackQuery(cameraId), enabled: wanted });
  const url = urls.data?.llHlsUrl;
  const [error, setError] = useState<string | null>(null);

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

  return (
    <div ref={box} className="relative aspect-video w-full overflow-hidden rounded-md bg-black">
      <video ref={video} className="h-full w-full" muted autoPlay playsInline aria-label={`Live video of ${label}`} data-testid="live-video" />
      {urls.isError || error ? (
        <p role="status" className="absolute inset-x-0 bottom-0 bg-black/70 p-2 text-sm text-white">
          {error ?? errorMessage(urls.error)}
        </p>
      ) : null}
    </div>
  );
}
