/**
 * The one place hls.js is used. Loaded lazily (dynamic import) so the player is not in the
 * initial bundle.
 */
import Hls from "hls.js";

export interface Playback {
  /** Stops fetching playlists and media (hidden tab, tile off-screen). */
  pause(): void;
  /** Resumes at the live edge. */
  resume(): void;
  destroy(): void;
}

/** Plays a live LL-HLS URL in `video` (hls.js in low-latency mode, or native HLS on Safari). */
export function attach(video: HTMLVideoElement, url: string, onError: (message: string) => void): Playback {
  if (Hls.isSupported()) {
    const hls = new Hls({ lowLatencyMode: true, backBufferLength: 10, liveDurationInfinity: true });
    hls.on(Hls.Events.ERROR, (_e, data) => {
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
      } else {
        onError(data.response?.code === 404 ? "The camera is not streaming." : `Playback failed (${data.details}).`);
      }
    });
    hls.loadSource(url);
    hls.attachMedia(video);
    let paused = false;
    return {
      pause() {
        if (paused) return;
        paused = true;
        hls.stopLoad();
        video.pause();
      },
      resume() {
        if (!paused) return;
        paused = false;
        hls.startLoad(-1);
        void video.play().catch(() => {});
      },
      destroy() {
        hls.destroy();
      },
    };
  }
  if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = url;
    return {
      pause() {
        video.removeAttribute("src");
        video.load();
      },
      resume() {
        video.src = url;
        void video.play().catch(() => {});
      },
      destroy() {
        video.removeAttribute("src");
        video.load();
      },
    };
  }
  onError("This browser cannot play HLS.");
  return { pause() {}, resume() {}, destroy() {} };
}
