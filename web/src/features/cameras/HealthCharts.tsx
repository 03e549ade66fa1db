import { useQuery } from "@tanstack/react-query";
import { ErrorState, Spinner } from "@/components/ui/state";
import type { Schemas } from "@/lib/api";
import { api } from "@/lib/client";
import { formatBitrate } from "@/lib/format";
import { maxOf, path, points, type Metric } from "./health";

const W = 320;
const H = 64;
const SPAN = 3600;

const CHARTS: { metric: Metric; label: string; unit: (v: number) => string }[] = [
  { metric: "fps", label: "Frame rate", unit: (v) => `${v.toFixed(1)} fps` },
  { metric: "bitrate", label: "Bitrate", unit: formatBitrate },
  { metric: "dropped", label: "Dropped frames (per 10 s)", unit: (v) => v.toFixed(0) },
  { metric: "viewers", label: "Viewers", unit: (v) => v.toFixed(0) },
];

/** fps, bitrate, dropped frames and viewers over the last hour, refreshed every 10 s. */
export function HealthCharts({ id }: { id: string }) {
  const q = useQuery({
    queryKey: ["cameras", "health", id],
    queryFn: ({ signal }) =>
      api.get<Schemas["Envelope_HealthSeries"]>("/api/v1/cameras/{id}/health", { signal, params: { id }, query: { minutes: 60 } }).then((r) => r.data),
    refetchInterval: 10_000,
  });
  if (q.isPending) return <Spinner label="Loading health" />;
  if (q.isError) return <ErrorState error={q.error} onRetry={() => void q.refetch()} />;
  const start = Date.now() / 1000 - SPAN;
  return (
    <section aria-labelledby="health-title">
      <h2 id="health-title" className="mb-2 text-lg font-semibold">
        Last hour
      </h2>
      {q.data.samples.length === 0 ? (
        <p className="text-sm text-slate-600 dark:text-slate-400">No health samples in the last hour (the camera has not streamed).</p>
      ) : (
        <div className="grid gap-2 md:grid-cols-2">
          {CHARTS.map(({ metric, label, unit }) => {
            const pts = points(q.data.samples, metric, start, q.data.stepSeconds);
            const max = maxOf(pts);
            const last = [...pts].reverse().find((p) => p !== null);
            return (
              <figure key={metric} className="rounded-md border border-slate-200 bg-white p-3 dark:border-slate-800 dark:bg-slate-900" data-testid={`health-${metric}`}>
                <figcaption className="flex justify-between text-xs text-slate-600 dark:text-slate-400">
                  <span>{label}</span>
                  <span className="tabular-nums">
                    now {last ? unit(last.y) : "—"} · max {unit(max)}
                  </span>
                </figcaption>
                <svg viewBox={`0 0 ${W} ${H}`} className="mt-1 h-16 w-full" role="img" aria-label={`${label} over the last hour, now ${last ? unit(last.y) : "no data"}, at most ${unit(max)}`} preserveAspectRatio="none">
                  <line x1="0" y1={H} x2={W} y2={H} className="stroke-slate-200 dark:stroke-slate-700" strokeWidth="1" />
                  <path d={path(pts, SPAN, max, W, H)} className="fill-none stroke-sky-600 dark:stroke-sky-400" strokeWidth="1.5" vectorEffect="non-scaling-stroke" />
                  {last ? <circle cx={Math.min(W, (last.x / SPAN) * W)} cy={H - (max > 0 ? (last.y / max) * H : 0)} r="2.5" className="fill-sky-600 dark:fill-sky-400" /> : null}
                </svg>
              </figure>
            );
          })}
        </div>
      )}
    </section>
  );
}
