import { useQuery } from "@tanstack/react-query";
import { useMemo, type ReactNode } from "react";
import { Link } from "wouter";
import { EmptyState, ErrorState, Spinner } from "@/components/ui/state";
import { cameraListQuery } from "@/features/cameras/api";
import type { Schemas } from "@/lib/api";
import { api } from "@/lib/client";
import { formatBytes } from "@/lib/format";
import { bars } from "./bars";

const TIER_LABEL: Record<Schemas["Tier"], string> = { hot: "Hot", warm: "Warm", cold: "Cold", archived: "Archive (object storage)" };

function tierLabel(t: Schemas["Tier"] | null | undefined): string {
  return t ? TIER_LABEL[t] : "Unknown tier";
}

function BarRow({ label, value, percent, files }: { label: ReactNode; value: number; percent: number; files: number }) {
  return (
    <div className="grid grid-cols-[minmax(8rem,14rem)_1fr_8rem] items-center gap-3 text-sm">
      <div className="truncate">{label}</div>
      <div className="h-4 rounded bg-slate-100 dark:bg-slate-800" aria-hidden="true">
        <div className="h-4 rounded bg-sky-600 dark:bg-sky-500" style={{ width: `${percent}%` }} />
      </div>
      <div className="text-right tabular-nums">
        {formatBytes(value)} <span className="text-slate-600 dark:text-slate-400">· {files} files</span>
      </div>
    </div>
  );
}

export function StoragePage() {
  const usage = useQuery({
    queryKey: ["analytics", "storage"],
    queryFn: ({ signal }) => api.get<Schemas["Envelope_StorageUsage"]>("/api/v1/analytics/storage/usage", { signal }).then((r) => r.data),
    refetchInterval: 60_000,
  });
  const cams = useQuery(cameraListQuery({ search: "", status: "", company: "", location: "", page: 1, limit: 100 }));
  const names = useMemo(() => new Map((cams.data?.data ?? []).map((c) => [c.id, c.name])), [cams.data]);

  if (usage.isPending) return <Spinner label="Loading storage usage" />;
  if (usage.isError) return <ErrorState error={usage.error} onRetry={() => void usage.refetch()} />;
  const u = usage.data;
  const tiers = bars(u.tiers.map((t) => ({ key: t.tier ?? "unknown", value: t.bytes })));
  const top = [...u.cameras].sort((a, b) => b.bytes - a.bytes).slice(0, 25);
  const camBars = bars(top.map((c) => ({ key: c.cameraId, value: c.bytes })));

  return (
    <section aria-labelledby="storage-title" className="space-y-6">
      <div>
        <h1 id="storage-title" className="text-2xl font-semibold">
          Storage
        </h1>
        <p className="text-sm text-slate-600 dark:text-slate-400">
          {u.dataDir ? `Data directory ${u.dataDir}: ` : "Your recordings: "}
          {formatBytes(u.totalBytes)} in {u.files} files{u.truncated ? " (the walk stopped at its entry limit: these are lower bounds)" : ""}.
        </p>
      </div>
      <section aria-labelledby="tiers-title" className="space-y-2">
        <h2 id="tiers-title" className="text-lg font-semibold">
          Per tier
        </h2>
        {tiers.map((b, i) => (
          <BarRow
            key={b.key}
            label={tierLabel(u.tiers[i]?.tier)}
            value={b.value}
            percent={b.percent}
            files={u.tiers[i]?.files ?? 0}
          />
        ))}
      </section>
      {u.entries.length > 0 ? (
        <section aria-labelledby="entries-title" className="space-y-2">
          <h2 id="entries-title" className="text-lg font-semibold">
            Data directory
          </h2>
          {bars(u.entries.map((e) => ({ key: e.name, value: e.bytes }))).map((b, i) => (
            <BarRow key={b.key} label={<code>{b.key}</code>} value={b.value} percent={b.percent} files={u.entries[i]?.files ?? 0} />
          ))}
        </section>
      ) : null}
      <section aria-labelledby="cams-title" className="space-y-2">
        <h2 id="cams-title" className="text-lg font-semibold">
          Per camera {u.cameras.length > top.length ? `(largest ${top.length} of ${u.cameras.length})` : ""}
        </h2>
        {top.length === 0 ? (
          <EmptyState title="No recordings yet">Turn recording on for a camera in the fleet.</EmptyState>
        ) : (
          camBars.map((b, i) => (
            <BarRow
              key={b.key}
              label={
                <Link href={`/cameras/${encodeURIComponent(b.key)}`} className="text-sky-700 hover:underline dark:text-sky-400">
                  {names.get(b.key) ?? b.key}
                </Link>
              }
              value={b.value}
              percent={b.percent}
              files={top[i]?.files ?? 0}
            />
          ))
        )}
      </section>
    </section>
  );
}
