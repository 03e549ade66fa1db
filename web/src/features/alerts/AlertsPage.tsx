import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useMemo, useState } from "react";
import { Link } from "wouter";
import { Button } from "@/components/ui/button";
import { Select } from "@/components/ui/input";
import { EmptyState, ErrorState, Spinner, errorMessage } from "@/components/ui/state";
import { useMe } from "@/features/auth/auth";
import { cameraListQuery } from "@/features/cameras/api";
import type { Schemas } from "@/lib/api";
import { api } from "@/lib/client";
import { cn } from "@/lib/cn";
import { formatDateTime } from "@/lib/format";
import { ALERT_TYPES, alertListQuery, type AlertFilters } from "./alerts";
import { useAlertSound } from "./AlertsBell";

const SEVERITY_CLASS: Record<Schemas["Severity"], string> = {
  critical: "bg-red-100 text-red-800 dark:bg-red-950 dark:text-red-200",
  warning: "bg-amber-100 text-amber-900 dark:bg-amber-950 dark:text-amber-200",
  info: "bg-slate-100 text-slate-800 dark:bg-slate-800 dark:text-slate-200",
};

export function AlertsPage() {
  const me = useMe();
  const qc = useQueryClient();
  const [f, setF] = useState<AlertFilters>({ severity: "", type: "", state: "open", acknowledged: "", page: 1 });
  const list = useQuery(alertListQuery(f));
  const cams = useQuery(cameraListQuery({ search: "", status: "", company: "", location: "", page: 1, limit: 100 }));
  const names = useMemo(() => new Map((cams.data?.data ?? []).map((c) => [c.id, c.name])), [cams.data]);
  const [sound, setSound] = useAlertSound();
  const ack = useMutation({
    mutationFn: (id: string) => api.post<Schemas["Envelope_AlertView"]>("/api/v1/alerts/{id}/ack", { params: { id } }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["alerts"] }),
  });
  const set = (patch: Partial<AlertFilters>) => setF((old) => ({ ...old, page: 1, ...patch }));
  const canAck = me.can("cameras:write");

  return (
    <section aria-labelledby="alerts-title" className="space-y-4">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <h1 id="alerts-title" className="text-2xl font-semibold">
          Alerts
        </h1>
        <label className="flex items-center gap-2 text-sm">
          <input type="checkbox" checked={sound} onChange={(e) => setSound(e.target.checked)} />
          Sound for new critical alerts
        </label>
      </div>
      <div role="group" aria-label="Filters" className="grid gap-2 sm:grid-cols-4">
        <label className="text-sm">
          Severity
          <Select value={f.severity} onChange={(e) => set({ severity: e.target.value as AlertFilters["severity"] })}>
            <option value="">Any</option>
            <option value="critical">Critical</option>
            <option value="warning">Warning</option>
            <option value="info">Info</option>
          </Select>
        </label>
        <label className="text-sm">
          Type
          <Select value={f.type} onChange={(e) => set({ type: e.target.value })}>
            <option value="">Any</option>
            {ALERT_TYPES.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </Select>
        </label>
        <label className="text-sm">
          State
          <Select value={f.state} onChange={(e) => set({ state: e.target.value as AlertFilters["state"] })}>
            <option value="">Any (history)</option>
            <option value="open">Open</option>
            <option value="resolved">Resolved</option>
          </Select>
        </label>
        <label className="text-sm">
          Acknowledged
          <Select value={f.acknowledged} onChange={(e) => set({ acknowledged: e.target.value as AlertFilters["acknowledged"] })}>
            <option value="">Any</option>
            <option value="no">Not yet</option>
            <option value="yes">Acknowledged</option>
          </Select>
        </label>
      </div>
      {ack.isError ? (
        <p role="alert" className="text-sm text-red-600 dark:text-red-400">
          {errorMessage(ack.error)}
        </p>
      ) : null}
      {list.isPending ? (
        <Spinner label="Loading alerts" />
      ) : list.isError ? (
        <ErrorState error={list.error} onRetry={() => void list.refetch()} />
      ) : list.data.data.length === 0 ? (
        <EmptyState title="No alerts">Nothing matches these filters.</EmptyState>
      ) : (
        <>
          <div className="overflow-x-auto rounded-lg border border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900">
            <table className="min-w-full text-sm">
              <thead className="border-b border-slate-200 text-left text-slate-600 dark:border-slate-800 dark:text-slate-300">
                <tr>
                  <th scope="col" className="px-3 py-2 font-medium">Raised</th>
                  <th scope="col" className="px-3 py-2 font-medium">Severity</th>
                  <th scope="col" className="px-3 py-2 font-medium">Type</th>
                  <th scope="col" className="px-3 py-2 font-medium">Camera</th>
                  <th scope="col" className="px-3 py-2 font-medium">Message</th>
                  <th scope="col" className="px-3 py-2 text-right font-medium">Times</th>
                  <th scope="col" className="px-3 py-2 font-medium">State</th>
                  <th scope="col" className="px-3 py-2 text-right font-medium">Actions</th>
                </tr>
              </thead>
              <tbody>
                {list.data.data.map((a) => (
                  <tr key={a.id} className="border-b border-slate-100 last:border-0 dark:border-slate-800" data-testid="alert-row">
                    <td className="px-3 py-2 whitespace-nowrap">{formatDateTime(a.createdAt)}</td>
                    <td className="px-3 py-2">
                      <span className={cn("rounded px-1.5 py-0.5 text-xs font-medium", SEVERITY_CLASS[a.severity])}>{a.severity}</span>
                    </td>
                    <td className="px-3 py-2 font-mono text-xs">{a.type}</td>
                    <td className="px-3 py-2">
                      {a.cameraId ? (
                        <Link href={`/cameras/${encodeURIComponent(a.cameraId)}`} className="text-sky-700 hover:underline dark:text-sky-400">
                          {names.get(a.cameraId) ?? a.cameraId}
                        </Link>
                      ) : (
                        "—"
                      )}
                    </td>
                    <td className="px-3 py-2">{a.message}</td>
                    <td className="px-3 py-2 text-right tabular-nums">{a.occurrences}</td>
                    <td className="px-3 py-2 whitespace-nowrap">
                      {a.state === "resolved" ? `Resolved ${formatDateTime(a.resolvedAt)}` : "Open"}
                      {a.acknowledgedAt ? ` · acknowledged ${formatDateTime(a.acknowledgedAt)}` : ""}
                    </td>
                    <td className="px-3 py-2 text-right">
                      {canAck && !a.acknowledgedAt ? (
                        <Button variant="ghost" size="sm" disabled={ack.isPending} onClick={() => ack.mutate(a.id)} aria-label={`Acknowledge ${a.type} ${names.get(a.cameraId ?? "") ?? ""}`.trim()}>
                          Acknowledge
                        </Button>
                      ) : null}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <div className="flex items-center justify-between text-sm">
            <span>
              Page {list.data.pagination.page} of {Math.max(1, list.data.pagination.totalPages)} · {list.data.pagination.total} alerts
            </span>
            <div className="flex gap-2">
              <Button variant="secondary" size="sm" disabled={f.page <= 1} onClick={() => setF((o) => ({ ...o, page: o.page - 1 }))}>
                Previous
              </Button>
              <Button variant="secondary" size="sm" disabled={f.page >= list.data.pagination.totalPages} onClick={() => setF((o) => ({ ...o, page: o.page + 1 }))}>
                Next
              </Button>
            </div>
          </div>
        </>
      )}
    </section>
  );
}
