import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState, type MouseEvent } from "react";
import { Button } from "@/components/ui/button";
import { Select } from "@/components/ui/input";
import { ErrorState, Spinner, errorMessage } from "@/components/ui/state";
import type { Playback } from "@/features/live/hls";
import type { Schemas } from "@/lib/api";
import { api } from "@/lib/client";
import { adjacentMarker, intervalAt, layout, playableAt, spans, timeAt, toFraction, type Span } from "./timeline";

/** Timeline windows (zoom), in minutes. */
const WINDOWS = [10, 60, 360, 1440] as const;
const SPEEDS = [0.5, 1, 2, 4, 8, 16] as const;

function clock(ms: number): string {
  return new Date(ms).toLocaleTimeString();
}

/** `datetime-local` value (local time, seconds) for `ms`. */
function localInput(ms: number): string {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 19);
}

function VodPlayer({ url, startAt, speed, onPosition }: { url: string; startAt: number; speed: number; onPosition: (ms: number) => void }) {
  const video = useRef<HTMLVideoElement>(null);
  const [error, setError] = useState<string | null>(null);
  const position = useRef(onPosition);
  useEffect(() => {
    position.current = onPosition;
  }, [onPosition]);

  useEffect(() => {
    const v = video.current;
    if (!v) return;
    let playback: Playback | null = null;
    let cancelled = false;
    setError(null);
    void import("@/features/live/hls").then(({ attachVod }) => {
      if (!cancelled) playback = attachVod(v, url, startAt, setError, (ms) => position.current(ms));
    });
    return () => {
      cancelled = true;
      playback?.destroy();
    };
  }, [url, startAt]);

  useEffect(() => {
    if (video.current) video.current.playbackRate = speed;
  }, [speed]);

  return (
    <div className="relative aspect-video w-full overflow-hidden rounded-md bg-black">
      <video
        ref={video}
        className="h-full w-full"
        muted
        playsInline
        controls
        aria-label="Recording"
        data-testid="vod-video"
        onLoadedMetadata={(e) => (e.currentTarget.playbackRate = speed)}
      />
      {error ? (
        <p role="status" className="absolute inset-x-0 bottom-0 bg-black/70 p-2 text-sm text-white">
          {error}
        </p>
      ) : null}
    </div>
  );
}

/** Lengths an export from the playhead may have (the API allows up to 3 h). */
const EXPORT_MINUTES = [1, 5, 15, 60, 180] as const;

/** A camera's recordings: timeline of the last hours with gaps and markers, click to play. */
export function RecordingsPanel({ cameraId }: { cameraId: string }) {
  const [minutes, setMinutes] = useState<(typeof WINDOWS)[number]>(60);
  const [speed, setSpeed] = useState<number>(1);
  const [target, setTarget] = useState<number | null>(null);
  const [position, setPosition] = useState<number | null>(null);
  const [jump, setJump] = useState("");
  const [bookmarkLabel, setBookmarkLabel] = useState("");
  const [downloadError, setDownloadError] = useState<string | null>(null);
  /** Fetches a signed URL for a recording file and lets the browser download it. */
  const download = async (recordingId: string) => {
    setDownloadError(null);
    try {
      const r = await api.get<Schemas["Envelope_SignedUrl"]>("/api/v1/recordings/{id}/signed-url", { params: { id: recordingId } });
      const a = document.createElement("a");
      a.href = r.data.url;
      a.download = "";
      document.body.append(a);
      a.click();
      a.remove();
    } catch (e) {
      setDownloadError(errorMessage(e));
    }
  };
  const [exportMinutes, setExportMinutes] = useState<number>(1);
  /** Downloads `[from, from + minutes)` as one MP4 through a signed export URL. */
  const downloadRange = async (from: number, minutes: number) => {
    setDownloadError(null);
    try {
      const r = await api.get<Schemas["Envelope_ExportUrl"]>("/api/v1/recordings/export/{id}", {
        params: { id: cameraId },
        query: { from: new Date(from).toISOString(), to: new Date(from + minutes * 60_000).toISOString() },
      });
      const a = document.createElement("a");
      a.href = r.data.url;
      a.download = "";
      document.body.append(a);
      a.click();
      a.remove();
    } catch (e) {
      setDownloadError(errorMessage(e));
    }
  };
  const qc = useQueryClient();
  const bookmark = useMutation({
    mutationFn: (body: Schemas["CreateBookmark"]) => api.post<Schemas["Envelope_BookmarkView"]>("/api/v1/recordings/bookmarks", { body }),
    onSuccess: () => {
      setBookmarkLabel("");
      return qc.invalidateQueries({ queryKey: ["recordings", "timeline", cameraId] });
    },
  });
  const timeline = useQuery({
    queryKey: ["recordings", "timeline", cameraId, minutes],
    queryFn: ({ signal }) => {
      const to = Date.now();
      return api
        .get<Schemas["Envelope_Timeline"]>("/api/v1/recordings/timeline/{id}", {
          signal,
          params: { id: cameraId },
          query: { from: new Date(to - minutes * 60_000).toISOString(), to: new Date(to).toISOString() },
        })
        .then((r) => r.data);
    },
    refetchInterval: 10_000,
  });
  const covered = timeline.data ? spans(timeline.data.covered) : [];
  const playback = useQuery({
    queryKey: ["recordings", "playback", cameraId, target],
    enabled: target !== null,
    staleTime: Infinity,
    queryFn: ({ signal }) => {
      const from = target ?? 0;
      const interval = intervalAt(from, covered);
      const to = Math.min(interval?.end ?? from + 3_600_000, from + 24 * 3_600_000);
      return api
        .get<Schemas["Envelope_PlaybackUrl"]>("/api/v1/recordings/playback/{id}", {
          signal,
          params: { id: cameraId },
          query: { from: new Date(from).toISOString(), to: new Date(Math.max(to, from + 1_000)).toISOString() },
        })
        .then((r) => r.data);
    },
  });

  const seek = (t: number) => {
    const p = playableAt(t, covered);
    if (p !== null) {
      setPosition(null);
      setTarget(p);
    }
  };

  if (timeline.isPending) return <Spinner label="Loading recordings" />;
  if (timeline.isError) return <ErrorState error={timeline.error} onRetry={() => void timeline.refetch()} />;
  const t = timeline.data;
  const view: Span = { start: Date.parse(t.from), end: Date.parse(t.to) };
  const markerTimes = t.markers.map((m) => Date.parse(m.at));
  const fileHere =
    position === null ? undefined : t.files.find((f) => position >= Date.parse(f.start) && position < Date.parse(f.end));
  const here = position ?? target ?? view.end;
  const prev = adjacentMarker(here, markerTimes, -1);
  const next = adjacentMarker(here, markerTimes, 1);
  const onBar = (e: MouseEvent<HTMLDivElement>) => {
    const r = e.currentTarget.getBoundingClientRect();
    seek(timeAt((e.clientX - r.left) / r.width, view));
  };

  return (
    <section aria-labelledby="rec-title" className="space-y-3" data-seek-target={target ?? ""} data-position={position ?? ""}>
      <div className="flex flex-wrap items-center gap-2">
        <h2 id="rec-title" className="mr-auto text-lg font-semibold">
          Recordings
        </h2>
        <div role="group" aria-label="Timeline window" className="flex gap-1">
          {WINDOWS.map((m) => (
            <Button key={m} size="sm" variant={m === minutes ? "primary" : "secondary"} aria-pressed={m === minutes} onClick={() => setMinutes(m)}>
              {m < 60 ? `${m} min` : `${m / 60} h`}
            </Button>
          ))}
        </div>
      </div>
      <p className="text-sm text-slate-600 dark:text-slate-400">
        {Math.round(t.coveredSeconds)} s recorded between {clock(view.start)} and {clock(view.end)}; {t.gaps.length} gaps, {t.markers.length} markers.
        Click the bar to play from that moment (a gap plays from the next recording).
      </p>
      <div
        className="relative h-10 cursor-pointer rounded bg-slate-200 dark:bg-slate-800"
        onClick={onBar}
        data-testid="timeline-bar"
        aria-hidden="true"
      >
        {layout(covered, view).map((b, i) => (
          <div key={i} className="absolute inset-y-0 bg-emerald-600/80" style={{ left: `${b.left * 100}%`, width: `${Math.max(b.width * 100, 0.2)}%` }} />
        ))}
        {t.markers.map((m) => (
          <div
            key={`${m.type}-${m.id}`}
            className="absolute inset-y-0 w-0.5 bg-amber-500"
            style={{ left: `${toFraction(Date.parse(m.at), view) * 100}%` }}
            title={`${m.label} at ${clock(Date.parse(m.at))}`}
          />
        ))}
        {position !== null ? <div className="absolute -inset-y-1 w-0.5 bg-sky-600" style={{ left: `${toFraction(position, view) * 100}%` }} /> : null}
      </div>
      <form
        className="flex flex-wrap items-end gap-2"
        onSubmit={(e) => {
          e.preventDefault();
          const ms = Date.parse(jump);
          if (!Number.isNaN(ms)) seek(ms);
        }}
      >
        <div>
          <label htmlFor="rec-jump" className="block text-sm font-medium">
            Play from
          </label>
          <input
            id="rec-jump"
            type="datetime-local"
            step={1}
            min={localInput(view.start)}
            max={localInput(view.end)}
            value={jump}
            onChange={(e) => setJump(e.target.value)}
            className="rounded-md border border-slate-300 bg-white px-2 py-1.5 text-sm dark:border-slate-700 dark:bg-slate-900"
          />
        </div>
        <Button type="submit" variant="secondary" size="sm" disabled={!jump}>
          Play
        </Button>
        <Button variant="secondary" size="sm" disabled={prev === null} onClick={() => prev !== null && seek(prev)}>
          ◀ Previous event
        </Button>
        <Button variant="secondary" size="sm" disabled={next === null} onClick={() => next !== null && seek(next)}>
          Next event ▶
        </Button>
        <div className="ml-auto">
          <label htmlFor="rec-speed" className="block text-sm font-medium">
            Speed
          </label>
          <Select id="rec-speed" value={String(speed)} onChange={(e) => setSpeed(Number(e.target.value))}>
            {SPEEDS.map((s) => (
              <option key={s} value={s}>
                {s}×
              </option>
            ))}
          </Select>
        </div>
      </form>
      {target === null ? null : playback.isError ? (
        <ErrorState error={playback.error} />
      ) : playback.data ? (
        <div className="max-w-3xl space-y-1">
          <VodPlayer url={playback.data.url} startAt={target} speed={speed} onPosition={setPosition} />
          <p className="text-sm tabular-nums" aria-live="off">
            Playing {position !== null ? clock(position) : "…"} (from {clock(target)})
          </p>
          <form
            className="flex flex-wrap items-end gap-2"
            onSubmit={(e) => {
              e.preventDefault();
              if (position === null || !bookmarkLabel.trim()) return;
              bookmark.mutate({ cameraId, at: new Date(position).toISOString(), label: bookmarkLabel.trim() });
            }}
          >
            <div>
              <label htmlFor="rec-bookmark" className="block text-sm font-medium">
                Bookmark this moment
              </label>
              <input
                id="rec-bookmark"
                value={bookmarkLabel}
                onChange={(e) => setBookmarkLabel(e.target.value)}
                placeholder="Label"
                className="rounded-md border border-slate-300 bg-white px-2 py-1.5 text-sm dark:border-slate-700 dark:bg-slate-900"
              />
            </div>
            <Button type="submit" variant="secondary" size="sm" disabled={position === null || !bookmarkLabel.trim() || bookmark.isPending}>
              Add bookmark
            </Button>
            <Button variant="secondary" size="sm" disabled={!fileHere} onClick={() => fileHere && void download(fileHere.id)}>
              Download this recording file
            </Button>
            <div>
              <label htmlFor="rec-export" className="block text-sm font-medium">
                Length from here
              </label>
              <Select id="rec-export" value={String(exportMinutes)} onChange={(e) => setExportMinutes(Number(e.target.value))}>
                {EXPORT_MINUTES.map((m) => (
                  <option key={m} value={m}>
                    {m < 60 ? `${m} min` : `${m / 60} h`}
                  </option>
                ))}
              </Select>
            </div>
            <Button variant="secondary" size="sm" disabled={position === null} onClick={() => position !== null && void downloadRange(position, exportMinutes)}>
              Download range as one file
            </Button>
            {downloadError ? (
              <p role="alert" className="text-sm text-red-600 dark:text-red-400">
                {downloadError}
              </p>
            ) : null}
            {bookmark.isError ? (
              <p role="alert" className="text-sm text-red-600 dark:text-red-400">
                {errorMessage(bookmark.error)}
              </p>
            ) : bookmark.isSuccess ? (
              <p role="status" className="text-sm text-emerald-700 dark:text-emerald-400">
                Bookmark added.
              </p>
            ) : null}
          </form>
        </div>
      ) : (
        <Spinner label="Preparing playback" />
      )}
    </section>
  );
}
