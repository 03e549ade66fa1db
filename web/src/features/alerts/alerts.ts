import { queryOptions } from "@tanstack/react-query";
import type { Schemas } from "@/lib/api";
import { api } from "@/lib/client";
import { liveState } from "./live";

export type Alert = Schemas["AlertView"];
export type Severity = Schemas["Severity"];

/** How often alerts are polled while the live events socket is down (`live.ts`). */
export const ALERT_POLL_MS = 10_000;

/** No polling while the live socket delivers alert events; polling otherwise. */
export function alertPollInterval(): number | false {
  return liveState() === "open" ? false : ALERT_POLL_MS;
}

export interface AlertFilters {
  severity: Severity | "";
  type: string;
  state: "open" | "resolved" | "";
  acknowledged: "yes" | "no" | "";
  page: number;
}

export const ALERT_TYPES = ["CAMERA_OFFLINE", "RECORDING_FAILED", "STORAGE_FULL", "API_RATE_LIMIT", "LOGIN_FAILURES"] as const;

/** The list query's parameters for the page's filters (empty ones left out). */
export function alertQuery(f: AlertFilters): Record<string, string | number | boolean> {
  const q: Record<string, string | number | boolean> = { page: f.page, limit: 25 };
  if (f.severity) q.severity = f.severity;
  if (f.type) q.type = f.type;
  if (f.state) q.state = f.state;
  if (f.acknowledged) q.acknowledged = f.acknowledged === "yes";
  return q;
}

export const alertListQuery = (f: AlertFilters) =>
  queryOptions({
    queryKey: ["alerts", "list", f],
    queryFn: ({ signal }) => api.get<Schemas["Paged_AlertView"]>("/api/v1/alerts", { signal, query: alertQuery(f) }),
    refetchInterval: alertPollInterval,
  });

/** Open alerts nobody acknowledged yet: the bell's count and the newest few. */
export const openAlertsQuery = queryOptions({
  queryKey: ["alerts", "open"],
  queryFn: ({ signal }) =>
    api.get<Schemas["Paged_AlertView"]>("/api/v1/alerts", { signal, query: { state: "open", acknowledged: false, limit: 20 } }),
  refetchInterval: alertPollInterval,
});

/**
 * Whether `next` holds a critical alert that `seen` did not: what the optional sound is for.
 * The first poll (`seen` null) never chimes: those alerts were there before the page.
 */
export function chimeFor(seen: ReadonlySet<string> | null, next: readonly Alert[]): boolean {
  if (seen === null) return false;
  return next.some((a) => a.severity === "critical" && !seen.has(a.id));
}

/** A short two-tone beep through Web Audio (no file to load). */
export function playChime(): void {
  try {
    const ctx = new AudioContext();
    const g = ctx.createGain();
    g.gain.value = 0.08;
    g.connect(ctx.destination);
    [880, 660].forEach((hz, i) => {
      const o = ctx.createOscillator();
      o.frequency.value = hz;
      o.connect(g);
      o.start(ctx.currentTime + i * 0.18);
      o.stop(ctx.currentTime + i * 0.18 + 0.15);
    });
    setTimeout(() => void ctx.close(), 600);
  } catch {
    // No audio here (autoplay policy, no device): the bell's count still shows.
  }
}
