import { queryOptions, useQuery } from "@tanstack/react-query";
import { useEffect, useMemo, useState } from "react";
import { Link } from "wouter";
import { Button } from "@/components/ui/button";
import { Dialog } from "@/components/ui/dialog";
import { Input, Select } from "@/components/ui/input";
import { EmptyState, ErrorState, Spinner, errorMessage } from "@/components/ui/state";
import { StatusDot } from "@/components/ui/status-dot";
import { useMe } from "@/features/auth/auth";
import type { Schemas } from "@/lib/api";
import { api } from "@/lib/client";
import { formatBitrate } from "@/lib/format";
import { cameraListQuery, useCameraMutations, type Camera, type CameraFilters } from "./api";
import { CameraForm } from "./CameraForm";
import { KeyDialog } from "./KeyDialog";
import { sortCameras, type SortDir, type SortKey } from "./sort";

const PAGE_SIZE = 25;

const summaryQuery = queryOptions({
  queryKey: ["analytics", "dashboard"],
  queryFn: ({ signal }) => api.get<Schemas["Envelope_Dashboard"]>("/api/v1/analytics/dashboard", { signal }).then((r) => r.data),
  refetchInterval: 5_000,
});

/** Fleet totals (needs analytics:read). */
function Summary() {
  const q = useQuery(summaryQuery);
  const d = q.data;
  const items: [string, string][] = d
    ? [
        ["Cameras", String(d.totalCameras)],
        ["Online", String(d.onlineCameras)],
        ["Errors", String(d.errorCameras)],
        ["Recording", String(d.recordingCameras)],
        ["Viewers", String(d.totalViewers)],
        ["Ingest", formatBitrate(d.totalIngestBitrate)],
      ]
    : [];
  if (q.isError) return null;
  return (
    <dl className="grid min-h-[4.5rem] grid-cols-3 gap-2 md:grid-cols-6" aria-busy={q.isPending}>
      {items.map(([k, v]) => (
        <div key={k} className="rounded-md border border-slate-200 bg-white p-3 dark:border-slate-800 dark:bg-slate-900">
          <dt className="text-xs uppercase tracking-wide text-slate-600 dark:text-slate-400">{k}</dt>
          <dd className="text-lg font-semibold tabular-nums">{v}</dd>
        </div>
      ))}
    </dl>
  );
}

function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}

export function FleetPage() {
  const me = useMe();
  const canWrite = me.can("cameras:write");
  const [search, setSearch] = useState("");
  const [company, setCompany] = useState("");
  const [location, setLocation] = useState("");
  const [status, setStatus] = useState<CameraFilters["status"]>("");
  const [page, setPage] = useState(1);
  const [sort, setSort] = useState<{ key: SortKey; dir: SortDir }>({ key: "name", dir: "asc" });
  const [editing, setEditing] = useState<Camera | null>(null);
  const [creating, setCreating] = useState(false);
  const [deleting, setDeleting] = useState<Camera | null>(null);
  const [secret, setSecret] = useState<Camera | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);

  const filters: CameraFilters = {
    search: useDebounced(search, 300),
    company: useDebounced(company, 300),
    location: useDebounced(location, 300),
    status,
    page,
    limit: PAGE_SIZE,
  };
  const list = useQuery(cameraListQuery(filters));
  const { update, remove, rotate } = useCameraMutations();
  const rows = useMemo(() => sortCameras(list.data?.data ?? [], sort.key, sort.dir), [list.data, sort]);
  const pages = list.data?.pagination.totalPages ?? 1;
  // While a switch is being saved it shows the value asked for.
  const pending = update.isPending ? update.variables : undefined;
  const shown = (c: Camera, field: "isActive" | "isRecording"): boolean => {
    const asked = pending?.id === c.id ? pending.body[field] : undefined;
    return typeof asked === "boolean" ? asked : c[field];
  };

  // A filter change goes back to the first page.
  useEffect(() => setPage(1), [filters.search, filters.company, filters.location, status]);

  const act = (p: Promise<unknown>) => {
    setActionError(null);
    p.catch((e: unknown) => setActionError(errorMessage(e)));
  };

  const sortHeader = (key: SortKey, label: string) => {
    const active = sort.key === key;
    return (
      <th scope="col" aria-sort={active ? (sort.dir === "asc" ? "ascending" : "descending") : "none"} className="px-3 py-2 text-left font-medium">
        <button
          type="button"
          className="inline-flex items-center gap-1 rounded hover:underline"
          onClick={() => setSort((s) => ({ key, dir: s.key === key && s.dir === "asc" ? "desc" : "asc" }))}
        >
          {label}
          <span aria-hidden="true">{active ? (sort.dir === "asc" ? "▲" : "▼") : "↕"}</span>
        </button>
      </th>
    );
  };

  return (
    <section aria-labelledby="fleet-title" className="space-y-4">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <h1 id="fleet-title" className="text-2xl font-semibold">
          Fleet
        </h1>
        {canWrite ? <Button onClick={() => setCreating(true)}>Add camera</Button> : null}
      </div>

      {me.can("analytics:read") ? <Summary /> : null}

      <div className="grid gap-2 sm:grid-cols-2 lg:grid-cols-4" role="search">
        <label className="sr-only" htmlFor="fleet-search">
          Search cameras
        </label>
        <Input id="fleet-search" type="search" placeholder="Search name or serial" value={search} onChange={(e) => setSearch(e.target.value)} />
        <label className="sr-only" htmlFor="fleet-status">
          Status
        </label>
        <Select id="fleet-status" value={status} onChange={(e) => setStatus(e.target.value as CameraFilters["status"])}>
          <option value="">Any status</option>
          <option value="online">Online</option>
          <option value="connecting">Connecting</option>
          <option value="offline">Offline</option>
          <option value="error">Error</option>
        </Select>
        <label className="sr-only" htmlFor="fleet-company">
          Company
        </label>
        <Input id="fleet-company" placeholder="Company" value={company} onChange={(e) => setCompany(e.target.value)} />
        <label className="sr-only" htmlFor="fleet-location">
          Location
        </label>
        <Input id="fleet-location" placeholder="Location" value={location} onChange={(e) => setLocation(e.target.value)} />
      </div>

      {actionError ? (
        <p role="alert" className="rounded border border-red-300 bg-red-50 p-2 text-sm text-red-800 dark:border-red-900 dark:bg-red-950 dark:text-red-200">
          {actionError}
        </p>
      ) : null}

      {list.isPending ? (
        <Spinner label="Loading cameras" />
      ) : list.isError ? (
        <ErrorState error={list.error} onRetry={() => void list.refetch()} />
      ) : rows.length === 0 ? (
        <EmptyState title="No cameras match">
          {canWrite ? "Add a camera to get an RTMP URL and stream key." : "Nothing to show with these filters."}
        </EmptyState>
      ) : (
        <div className="overflow-x-auto rounded-lg border border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900">
          <table className="min-w-full text-sm" aria-describedby="fleet-caption">
            <caption id="fleet-caption" className="sr-only">
              Cameras, sorted by {sort.key} {sort.dir === "asc" ? "ascending" : "descending"} within the page; status refreshes every 5 seconds.
            </caption>
            <thead className="border-b border-slate-200 text-slate-600 dark:border-slate-800 dark:text-slate-300">
              <tr>
                {sortHeader("status", "Status")}
                {sortHeader("name", "Name")}
                <th scope="col" className="px-3 py-2 text-left font-medium">
                  Serial
                </th>
                <th scope="col" className="px-3 py-2 text-left font-medium">
                  Company / location
                </th>
                <th scope="col" className="px-3 py-2 text-left font-medium">
                  Enabled
                </th>
                <th scope="col" className="px-3 py-2 text-left font-medium">
                  Recording
                </th>
                {sortHeader("createdAt", "Created")}
                {canWrite ? (
                  <th scope="col" className="px-3 py-2 text-right font-medium">
                    Actions
                  </th>
                ) : null}
              </tr>
            </thead>
            <tbody>
              {rows.map((c) => (
                <tr key={c.id} className="border-b border-slate-100 last:border-0 dark:border-slate-800" data-testid="camera-row">
                  <td className="px-3 py-2">
                    <StatusDot status={c.streamStatus} />
                  </td>
                  <td className="px-3 py-2 font-medium">
                    <Link href={`/cameras/${encodeURIComponent(c.id)}`} className="text-sky-700 hover:underline dark:text-sky-400">
                      {c.name}
                    </Link>
                  </td>
                  <td className="px-3 py-2 font-mono text-xs">{c.serialNumber}</td>
                  <td className="px-3 py-2">{[c.company, c.location].filter(Boolean).join(" / ") || "—"}</td>
                  <td className="px-3 py-2">
                    {canWrite ? (
                      <input
                        type="checkbox"
                        aria-label={`${c.name} enabled`}
                        checked={shown(c, "isActive")}
                        onChange={(e) => act(update.mutateAsync({ id: c.id, body: { isActive: e.target.checked } }))}
                      />
                    ) : c.isActive ? (
                      "Yes"
                    ) : (
                      "No"
                    )}
                  </td>
                  <td className="px-3 py-2">
                    {canWrite ? (
                      <input
                        type="checkbox"
                        aria-label={`${c.name} recording`}
                        checked={shown(c, "isRecording")}
                        onChange={(e) => act(update.mutateAsync({ id: c.id, body: { isRecording: e.target.checked } }))}
                      />
                    ) : c.isRecording ? (
                      "On"
                    ) : (
                      "Off"
                    )}
                  </td>
                  <td className="px-3 py-2 text-slate-600 dark:text-slate-400">{new Date(c.createdAt).toLocaleDateString()}</td>
                  {canWrite ? (
                    <td className="whitespace-nowrap px-3 py-2 text-right">
                      <Button variant="ghost" size="sm" onClick={() => setEditing(c)} aria-label={`Edit ${c.name}`}>
                        Edit
                      </Button>
                      <Button
                        variant="ghost"
                        size="sm"
                        aria-label={`Rotate key of ${c.name}`}
                        onClick={() => act(rotate.mutateAsync(c.id).then(setSecret))}
                      >
                        Rotate key
                      </Button>
                      <Button variant="ghost" size="sm" className="text-red-600 dark:text-red-400" onClick={() => setDeleting(c)} aria-label={`Delete ${c.name}`}>
                        Delete
                      </Button>
                    </td>
                  ) : null}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      {list.data && pages > 1 ? (
        <nav aria-label="Pages" className="flex items-center justify-end gap-2 text-sm">
          <Button variant="secondary" size="sm" disabled={page <= 1} onClick={() => setPage((p) => p - 1)}>
            Previous
          </Button>
          <span>
            Page {page} of {pages} · {list.data.pagination.total} cameras
          </span>
          <Button variant="secondary" size="sm" disabled={page >= pages} onClick={() => setPage((p) => p + 1)}>
            Next
          </Button>
        </nav>
      ) : null}

      {creating ? <CameraForm camera={null} open onOpenChange={setCreating} onCreated={setSecret} /> : null}
      {editing ? <CameraForm key={editing.id} camera={editing} open onOpenChange={(o) => (o ? undefined : setEditing(null))} /> : null}
      <KeyDialog camera={secret} onClose={() => setSecret(null)} />
      <Dialog
        open={deleting !== null}
        onOpenChange={(o) => (o ? undefined : setDeleting(null))}
        title={`Delete ${deleting?.name ?? "camera"}?`}
        description="Its encoder is disconnected at once and its stream key stops working. This cannot be undone."
      >
        <div className="flex justify-end gap-2">
          <Button variant="secondary" onClick={() => setDeleting(null)}>
            Cancel
          </Button>
          <Button
            variant="danger"
            disabled={remove.isPending}
            onClick={() => {
              if (deleting) act(remove.mutateAsync(deleting.id).then(() => setDeleting(null)));
            }}
          >
            Delete
          </Button>
        </div>
      </Dialog>
    </section>
  );
}
