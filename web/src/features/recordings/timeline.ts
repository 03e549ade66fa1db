/**
 * Timeline math (pure): times are epoch milliseconds, a view is [from, to).
 * Positions are fractions 0–1 of the view's width.
 */

export interface Span {
  start: number;
  end: number;
}

/** Where `t` falls in the view, clamped to 0–1. */
export function toFraction(t: number, view: Span): number {
  const w = view.end - view.start;
  if (w <= 0) return 0;
  return Math.min(1, Math.max(0, (t - view.start) / w));
}

/** The time at fraction `f` of the view (clamped). */
export function timeAt(f: number, view: Span): number {
  const c = Math.min(1, Math.max(0, f));
  return Math.round(view.start + c * (view.end - view.start));
}

/** Intervals clipped to the view, as left/width fractions; those outside are dropped. */
export function layout(intervals: readonly Span[], view: Span): { left: number; width: number }[] {
  const out: { left: number; width: number }[] = [];
  for (const i of intervals) {
    const s = Math.max(i.start, view.start);
    const e = Math.min(i.end, view.end);
    if (e <= s) continue;
    out.push({ left: toFraction(s, view), width: toFraction(e, view) - toFraction(s, view) });
  }
  return out;
}

/** The covered interval holding `t`, if any. */
export function intervalAt(t: number, covered: readonly Span[]): Span | null {
  return covered.find((i) => t >= i.start && t < i.end) ?? null;
}

/**
 * Snaps a click to something playable: inside a covered interval it stays; in a gap it
 * moves to the start of the next covered interval (or null when nothing follows).
 */
export function playableAt(t: number, covered: readonly Span[]): number | null {
  if (intervalAt(t, covered)) return t;
  const next = covered.filter((i) => i.start > t).sort((a, b) => a.start - b.start)[0];
  return next ? next.start : null;
}

/**
 * The media time to seek to for wall-clock `t`, given the playlist's first fragment: its
 * start on the media timeline and its wall-clock time (`EXT-X-PROGRAM-DATE-TIME`). The
 * playlist starts at the keyframe at or before the requested time, so the offset is ≥ 0.
 */
export function mediaTimeFor(t: number, first: { start: number; programDateTime: number }): number {
  return first.start + Math.max(0, (t - first.programDateTime) / 1000);
}

/** Parses RFC 3339 spans from the API. */
export function spans(items: readonly { start: string; end: string }[]): Span[] {
  return items.map((i) => ({ start: Date.parse(i.start), end: Date.parse(i.end) })).filter((s) => s.end > s.start);
}

/**
 * The marker after (`dir` 1) or before (`dir` -1) time `t`. Markers within `slackMs` of `t`
 * count as "here" and are skipped, so pressing again moves on instead of repeating.
 */
export function adjacentMarker(t: number, markers: readonly number[], dir: 1 | -1, slackMs = 1_500): number | null {
  const sorted = [...markers].sort((a, b) => a - b);
  if (dir === 1) return sorted.find((m) => m > t + slackMs) ?? null;
  return [...sorted].reverse().find((m) => m < t - slackMs) ?? null;
}
