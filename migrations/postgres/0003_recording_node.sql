-- Cluster (issue 10): which node wrote a recording, so any node can serve it (by asking that
-- node for a file on its local tiers) and only that node reconciles, moves and deletes its
-- local files. The value is the control plane's node name (`local` on a single node, the raft
-- node id in a cluster). NULL: written before this column existed.
ALTER TABLE recordings ADD COLUMN node_id TEXT;
-- The node whose files a journaled move or delete touches: only it finishes or undoes it.
ALTER TABLE recording_jobs ADD COLUMN node_id TEXT;
