import { queryOptions, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { Button } from "@/components/ui/button";
import { Dialog } from "@/components/ui/dialog";
import { EmptyState, ErrorState, Spinner, errorMessage } from "@/components/ui/state";
import type { Schemas } from "@/lib/api";
import { api } from "@/lib/client";
import { formatBitrate, formatDateTime } from "@/lib/format";
import { nodeRows, type NodeRow } from "./nodes";

export const clusterQuery = queryOptions({
  queryKey: ["cluster"],
  queryFn: ({ signal }) => api.get<Schemas["Envelope_ClusterView"]>("/api/v1/cluster", { signal }).then((r) => r.data),
  refetchInterval: 2_000,
});

const STATE_CLASS: Record<string, string> = {
  live: "text-emerald-700 dark:text-emerald-400",
  draining: "text-amber-700 dark:text-amber-400",
  "lease lost": "text-red-700 dark:text-red-400",
  learner: "text-slate-600 dark:text-slate-400",
};

export function NodesPage() {
  const cluster = useQuery(clusterQuery);
  const qc = useQueryClient();
  const [draining, setDraining] = useState<NodeRow | null>(null);
  const drain = useMutation({
    mutationFn: (id: number) => api.post<unknown>("/api/v1/cluster/nodes/{node}/drain", { params: { node: String(id) } }),
    onSuccess: () => {
      setDraining(null);
      void qc.invalidateQueries({ queryKey: ["cluster"] });
    },
  });

  if (cluster.isPending) return <Spinner label="Loading the cluster" />;
  if (cluster.isError) return <ErrorState error={cluster.error} onRetry={() => void cluster.refetch()} />;
  const c = cluster.data;
  if (!c.clustered) {
    return (
      <section aria-labelledby="nodes-title" className="space-y-4">
        <h1 id="nodes-title" className="text-2xl font-semibold">
          Nodes
        </h1>
        <EmptyState title="A single node">This server runs alone (started without --node-id). See the README's Cluster section to run several.</EmptyState>
      </section>
    );
  }
  const rows = nodeRows(c.members, c.leaderId);
  return (
    <section aria-labelledby="nodes-title" className="space-y-4">
      <div>
        <h1 id="nodes-title" className="text-2xl font-semibold">
          Nodes
        </h1>
        <p className="text-sm text-slate-600 dark:text-slate-400" data-testid="cluster-summary">
          {c.members.length} members · leader {c.leaderId ?? "none (election)"} · term {c.term ?? "—"} · commit index {c.commitIndex ?? "—"} · {c.cameras.length} cameras placed · answered by node {c.nodeId}
          {c.clock ? ` · cluster clock ${formatDateTime(c.clock)}` : ""}
        </p>
      </div>
      <div className="overflow-x-auto rounded-lg border border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900">
        <table className="min-w-full text-sm">
          <thead className="border-b border-slate-200 text-left text-slate-600 dark:border-slate-800 dark:text-slate-300">
            <tr>
              <th scope="col" className="px-3 py-2 font-medium">Node</th>
              <th scope="col" className="px-3 py-2 font-medium">API</th>
              <th scope="col" className="px-3 py-2 font-medium">State</th>
              <th scope="col" className="px-3 py-2 text-right font-medium">Cameras</th>
              <th scope="col" className="px-3 py-2 text-right font-medium">Streams</th>
              <th scope="col" className="px-3 py-2 text-right font-medium">Ingest</th>
              <th scope="col" className="px-3 py-2 text-right font-medium">CPU</th>
              <th scope="col" className="px-3 py-2 text-right font-medium" title="ABR cameras transcoded / the node's budget (--abr-max-cameras)">
                Transcoding
              </th>
              <th scope="col" className="px-3 py-2 text-right font-medium">Actions</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.id} className="border-b border-slate-100 last:border-0 dark:border-slate-800" data-testid="node-row">
                <td className="px-3 py-2 font-medium">
                  {r.id}
                  {r.leader ? <span className="ml-2 rounded bg-sky-100 px-1.5 py-0.5 text-xs text-sky-800 dark:bg-sky-900 dark:text-sky-200">leader</span> : null}
                </td>
                <td className="px-3 py-2 font-mono text-xs">{r.apiUrl}</td>
                <td className={`px-3 py-2 ${STATE_CLASS[r.state] ?? ""}`}>{r.state}</td>
                <td className="px-3 py-2 text-right tabular-nums">{r.cameras}</td>
                <td className="px-3 py-2 text-right tabular-nums">{r.streams}</td>
                <td className="px-3 py-2 text-right tabular-nums">{formatBitrate(r.ingestKbps * 1000)}</td>
                <td className="px-3 py-2 text-right tabular-nums">{r.cpuPercent} %</td>
                <td className="px-3 py-2 text-right tabular-nums">{r.transcoding}</td>
                <td className="px-3 py-2 text-right">
                  {r.state === "live" ? (
                    <Button variant="ghost" size="sm" onClick={() => setDraining(r)} aria-label={`Drain node ${r.id}`}>
                      Drain
                    </Button>
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Dialog
        open={draining !== null}
        onOpenChange={(o) => (o ? undefined : setDraining(null))}
        title={`Drain node ${draining?.id ?? ""}?`}
        description="It takes no new cameras and the leader moves its cameras to other nodes."
      >
        {drain.isError ? (
          <p role="alert" className="mb-2 text-sm text-red-600 dark:text-red-400">
            {errorMessage(drain.error)}
          </p>
        ) : null}
        <div className="flex justify-end gap-2">
          <Button variant="secondary" onClick={() => setDraining(null)}>
            Cancel
          </Button>
          <Button variant="danger" disabled={drain.isPending} onClick={() => draining && drain.mutate(draining.id)}>
            Drain
          </Button>
        </div>
      </Dialog>
    </section>
  );
}
