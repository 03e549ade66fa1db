/** Health charts of the camera page (pure): samples from `/cameras/{id}/health` as SVG paths. */

export interface Sample {
  at: string;
  fps: number;
  bitrate: number;
  droppedFrames: number;
  viewers: number;
}

export type Metric = "fps" | "bitrate" | "dropped" | "viewers";

/** One chart's points: x in seconds from `start`, y in the metric's unit; null starts a gap. */
export type Point = { x: number; y: number } | null;

/**
 * The points of one metric over `[start, start + span)` seconds. Dropped frames are per
 * sample (the counter counts from the publish's start; a smaller value is a new publish).
 * Samples further apart than twice `step` have a gap between them (the camera did not report).
 */
export function points(samples: readonly Sample[], metric: Metric, start: number, step: number): Point[] {
  const out: Point[] = [];
  let prev: { t: number; dropped: number } | null = null;
  for (const s of samples) {
    const t = Date.parse(s.at) / 1000;
    if (Number.isNaN(t)) continue;
    if (prev && t - prev.t > 2 * step) out.push(null);
    let y: number;
    switch (metric) {
      case "fps":
        y = s.fps;
        break;
      case "bitrate":
        y = s.bitrate;
        break;
      case "viewers":
        y = s.viewers;
        break;
      case "dropped":
        y = prev && s.droppedFrames >= prev.dropped ? s.droppedFrames - prev.dropped : prev ? s.droppedFrames : 0;
        break;
    }
    out.push({ x: t - start, y });
    prev = { t, dropped: s.droppedFrames };
  }
  return out;
}

/** An SVG path of `pts` in a `w × h` box for x in `[0, span]` and y in `[0, max]`. */
export function path(pts: readonly Point[], span: number, max: number, w: number, h: number): string {
  const top = max > 0 ? max : 1;
  let d = "";
  let pen = false;
  for (const p of pts) {
    if (p === null) {
      pen = false;
      continue;
    }
    const x = Math.max(0, Math.min(w, (p.x / span) * w));
    const y = h - Math.max(0, Math.min(h, (p.y / top) * h));
    d += `${pen ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`;
    pen = true;
  }
  return d;
}

/** The largest y of the points (0 when none). */
export function maxOf(pts: readonly Point[]): number {
  return pts.reduce((m, p) => (p && p.y > m ? p.y : m), 0);
}
