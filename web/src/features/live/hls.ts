/**
 * The one place hls.js is used. Loaded lazily (dynamic import) so the player is not in the
 * initial bundle.
 */
import Hls from "hls.js";
import { mediaTimeFor } from "@/features/recordings/timeline";

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

/**
 * Plays a recorded range (an HLS VOD playlist with `EXT-X-PROGRAM-DATE-TIME`) starting at
 * wall-clock `startAt` (ms); reports the wall-clock position of what is on screen.
 */
export function attachVod(
  video: HTMLVideoElement,
  url: string,
  startAt: number,
  onError: (message: string) => void,
  onPosition: (wallClockMs: number) => void,
): Playback {
  if (!Hls.isSupported()) {
    onError("This browser cannot play recordings (no Media Source Extensions).");
    return { pause() {}, resume() {}, destroy() {} };
  }
  // Loading starts only once the playlist's times are known, at the media time of
  // `startAt`: hls.js then seeks there itself (a seek of ours could race its own).
  const hls = new Hls({ lowLatencyMode: false, autoStartLoad: false });
  let start: number | null = null;
  hls.on(Hls.Events.LEVEL_LOADED, (_e, data) => {
    if (start !== null) return;
    const first = data.details.fragments[0];
    start = first && first.programDateTime !== null ? mediaTimeFor(startAt, { start: first.start, programDateTime: first.programDateTime }) : 0;
    hls.startLoad(start);
    void video.play().catch(() => {});
  });
  hls.on(Hls.Events.ERROR, (_e, data) => {
    if (!data.fatal) return;
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
    else onError(`Playback failed (${data.details}).`);
  });
  // Positions are reported once playback is where it was asked to start.
  const tick = () => {
    const d = hls.playingDate;
    if (d && start !== null && video.currentTime >= start - 0.05) onPosition(d.getTime());
  };
  video.addEventListener("timeupdate", tick);
  hls.loadSource(url);
  hls.attachMedia(video);
  return {
    pause() {
      video.pause();
    },
    resume() {
      void video.play().catch(() => {});
    },
    destroy() {
      video.removeEventListener("timeupdate", tick);
      hls.destroy();
    },
  };
}
