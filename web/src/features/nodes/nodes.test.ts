import { describe, expect, it } from "vitest";
import { nodeRows, type Member } from "./nodes";

const member = (id: number, over: Partial<Member> = {}): Member => ({
  id,
  apiUrl: `http://10.0.0.${id}:8080`,
  voter: true,
  leaseHeld: true,
  draining: false,
  cameras: id,
  load: { activeStreams: id, ingestKbps: 2000 * id, cpuPermille: 125, transcoding: 1, transcodeMax: 2 },
  ...over,
});

describe("node rows", () => {
  it("orders by id, marks the leader and reads the state a person looks for first", () => {
    const rows = nodeRows([member(3, { leaseHeld: false, draining: true }), member(1), member(2, { draining: true }), member(4, { voter: false })], 2);
    expect(rows.map((r) => [r.id, r.leader, r.state])).toEqual([
      [1, false, "live"],
      [2, true, "draining"],
      [3, false, "lease lost"],
      [4, false, "learner"],
    ]);
    expect(rows[0]?.cpuPercent).toBe("12.5");
    expect(rows[1]?.ingestKbps).toBe(4000);
  });

  it("shows the transcode budget in use, or off without ABR", () => {
    const rows = nodeRows([member(1), member(2, { load: { activeStreams: 0, ingestKbps: 0, cpuPermille: 0, transcoding: 0, transcodeMax: 0 } })], 1);
    expect(rows.map((r) => r.transcoding)).toEqual(["1 / 2", "off"]);
  });

  it("has no leader during an election", () => {
    expect(nodeRows([member(1)], null).some((r) => r.leader)).toBe(false);
  });
});
