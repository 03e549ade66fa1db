/** The Nodes page's view of `GET /api/v1/cluster` (pure). */

export interface Member {
  id: number;
  apiUrl: string;
  voter: boolean;
  leaseHeld: boolean;
  draining: boolean;
  cameras: number;
  load: { activeStreams: number; ingestKbps: number; cpuPermille: number; transcoding: number; transcodeMax: number };
}

export interface NodeRow {
  id: number;
  apiUrl: string;
  leader: boolean;
  /** "live", "lease lost", "draining", "learner". */
  state: string;
  cameras: number;
  streams: number;
  ingestKbps: number;
  /** CPU use of all the node's cores, percent with one decimal (its own process). */
  cpuPercent: string;
  /** ABR cameras transcoded of its budget: "1 / 2", or "off" without ABR. */
  transcoding: string;
}

/** One row per member, by id; the leader marked; the state a person reads first. */
export function nodeRows(members: readonly Member[], leaderId: number | null | undefined): NodeRow[] {
  return [...members]
    .sort((a, b) => a.id - b.id)
    .map((m) => ({
      id: m.id,
      apiUrl: m.apiUrl,
      leader: m.id === leaderId,
      state: !m.leaseHeld ? "lease lost" : m.draining ? "draining" : m.voter ? "live" : "learner",
      cameras: m.cameras,
      streams: m.load.activeStreams,
      ingestKbps: m.load.ingestKbps,
      cpuPercent: (m.load.cpuPermille / 10).toFixed(1),
      transcoding: m.load.transcodeMax === 0 ? "off" : `${m.load.transcoding} / ${m.load.transcodeMax}`,
    }));
}
