import { useQuery } from "@tanstack/react-query";
import { useState, type ReactNode } from "react";
import { Link } from "wouter";
import { Button } from "@/components/ui/button";
import { ErrorState, Spinner } from "@/components/ui/state";
import { StatusDot } from "@/components/ui/status-dot";
import { useMe } from "@/features/auth/auth";
import { LivePlayer } from "@/features/live/LivePlayer";
import { RecordingsPanel } from "@/features/recordings/RecordingsPanel";
import { formatBitrate, formatBytes, formatDateTime, formatDuration } from "@/lib/format";
import { cameraMetricsQuery, cameraQuery } from "./api";
import { CameraForm } from "./CameraForm";
import { HealthCharts } from "./HealthCharts";

function Stat({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div className="rounded-md border border-slate-200 bg-white p-3 dark:border-slate-800 dark:bg-slate-900">
      <dt className="text-xs uppercase tracking-wide text-slate-500 dark:text-slate-400">{label}</dt>
      <dd className="mt-1 text-lg font-semibold tabular-nums">{children}</dd>
    </div>
  );
}

function Analytics({ id }: { id: string }) {
  const m = useQuery(cameraMetricsQuery(id));
  if (m.isPending) return <Spinner label="Loading analytics" />;
  if (m.isError) return <ErrorState error={m.error} onRetry={() => void m.refetch()} />;
  const { live, day } = m.data;
  return (
    <div className="space-y-4">
      <section aria-labelledby="live-stats">
        <h2 id="live-stats" className="mb-2 text-lg font-semibold">
          Now
        </h2>
        <dl className="grid grid-cols-2 gap-2 md:grid-cols-4">
          <Stat label="Frame rate">{live.fps.toFixed(1)} fps</Stat>
          <Stat label="Bitrate">{formatBitrate(live.bitrate)}</Stat>
          <Stat label="Viewers">{live.viewerCount}</Stat>
          <Stat label="Dropped frames">{live.droppedFrames}</Stat>
          <Stat label="Resolution">{live.resolution ?? "—"}</Stat>
          <Stat label="Codecs">{live.codecs.length ? live.codecs.join(", ") : "—"}</Stat>
          <Stat label="Online since">{formatDateTime(live.since)}</Stat>
          <Stat label="Last seen">{formatDateTime(live.lastSeen)}</Stat>
        </dl>
      </section>
      <section aria-labelledby="day-stats">
        <h2 id="day-stats" className="mb-2 text-lg font-semibold">
          Today ({day.date}, UTC)
        </h2>
        <dl className="grid grid-cols-2 gap-2 md:grid-cols-4">
          <Stat label="Online">{formatDuration(day.onlineSeconds)}</Stat>
          <Stat label="Average bitrate">{formatBitrate(day.avgBitrate)}</Stat>
          <Stat label="Peak viewers">{day.peakViewers}</Stat>
          <Stat label="Dropped frames">{day.droppedFrames}</Stat>
          <Stat label="Received">{formatBytes(day.bytesIn)}</Stat>
          <Stat label="Sent">{formatBytes(day.bytesOut)}</Stat>
        </dl>
      </section>
    </div>
  );
}

export function CameraDetailPage({ id }: { id: string }) {
  const me = useMe();
  const cam = useQuery(cameraQuery(id));
  const [editing, setEditing] = useState(false);

  if (cam.isPending) return <Spinner label="Loading camera" />;
  if (cam.isError) return <ErrorState error={cam.error} onRetry={() => void cam.refetch()} />;
  const c = cam.data;
  return (
    <article aria-labelledby="camera-title" className="space-y-6">
      <nav aria-label="Breadcrumb" className="text-sm">
        <Link href="/cameras" className="text-sky-700 hover:underline dark:text-sky-400">
          Fleet
        </Link>{" "}
        / {c.name}
      </nav>
      <div className="flex flex-wrap items-center gap-3">
        <h1 id="camera-title" className="text-2xl font-semibold">
          {c.name}
        </h1>
        <StatusDot status={c.streamStatus} />
        {me.can("cameras:write") ? (
          <Button variant="secondary" size="sm" className="ml-auto" onClick={() => setEditing(true)}>
            Edit
          </Button>
        ) : null}
      </div>
      <div className="grid gap-6 lg:grid-cols-3">
        <div className="lg:col-span-2">{me.can("streams:play") ? <LivePlayer cameraId={c.id} label={c.name} /> : null}</div>
        <dl className="space-y-2 text-sm">
          {(
            [
              ["Serial number", c.serialNumber],
              ["Model", c.model ?? "—"],
              ["Company", c.company ?? "—"],
              ["Location", c.location ?? "—"],
              ["Enabled", c.isActive ? "Yes" : "No"],
              ["Recording", c.isRecording ? "On" : "Off"],
              ["Adaptive bitrate", c.abrProfile === "default" ? "On (the node's ladder)" : "Off"],
              ["Ingest (RTMP)", `${c.rtmpUrl}/${c.streamKeyPrefix}…`],
              ["Created", formatDateTime(c.createdAt)],
            ] as const
          ).map(([k, v]) => (
            <div key={k} className="grid grid-cols-[8rem_1fr] gap-2">
              <dt className="text-slate-500 dark:text-slate-400">{k}</dt>
              <dd className="break-all">{v}</dd>
            </div>
          ))}
        </dl>
      </div>
      {me.can("recordings:read") ? <RecordingsPanel cameraId={c.id} /> : null}
      {me.can("analytics:read") ? <Analytics id={c.id} /> : null}
      <HealthCharts id={c.id} />
      {editing ? <CameraForm camera={c} open onOpenChange={setEditing} /> : null}
    </article>
  );
}
