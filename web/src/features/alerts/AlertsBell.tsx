import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { Link } from "wouter";
import { api } from "@/lib/client";
import { cn } from "@/lib/cn";
import { chimeFor, openAlertsQuery, playChime } from "./alerts";
import { LiveAlerts, setLiveState, wsUrl } from "./live";

/**
 * Alert events over the live socket while this component is mounted (it is on every page):
 * each one refetches the alert queries, which stop polling while the socket is up.
 */
function useLiveAlerts(): void {
  const qc = useQueryClient();
  useEffect(() => {
    if (typeof WebSocket === "undefined") return;
    const live = new LiveAlerts({
      url: wsUrl(window.location),
      token: () => api.session?.accessToken ?? null,
      // Any authenticated request refreshes an expired access token.
      refresh: async () => {
        await api.get("/api/v1/auth/me");
      },
      onAlert: () => void qc.invalidateQueries({ queryKey: ["alerts"] }),
      onState: (s) => {
        setLiveState(s);
        // Polling resumes at once when the socket goes away.
        if (s === "closed") void qc.invalidateQueries({ queryKey: ["alerts"] });
      },
    });
    live.start();
    return () => {
      live.stop();
      setLiveState("closed");
    };
  }, [qc]);
}

const SOUND_KEY = "camstream.alertSound";

/** The sound preference, kept in this browser. */
export function useAlertSound(): [boolean, (on: boolean) => void] {
  const [on, setOn] = useState(() => localStorage.getItem(SOUND_KEY) === "on");
  const set = (v: boolean) => {
    localStorage.setItem(SOUND_KEY, v ? "on" : "off");
    setOn(v);
  };
  return [on, set];
}

/** Open, unacknowledged alerts on every page; chimes on a new critical one when sound is on. */
export function AlertsBell() {
  useLiveAlerts();
  const open = useQuery(openAlertsQuery);
  const [sound] = useAlertSound();
  const seen = useRef<Set<string> | null>(null);
  const alerts = open.data?.data;
  useEffect(() => {
    if (!alerts) return;
    if (sound && chimeFor(seen.current, alerts)) playChime();
    seen.current = new Set(alerts.map((a) => a.id));
  }, [alerts, sound]);
  const n = open.data?.pagination.total ?? 0;
  const critical = alerts?.some((a) => a.severity === "critical") ?? false;
  return (
    <Link
      href="/alerts"
      aria-label={`Alerts: ${n} open`}
      data-testid="alerts-bell"
      className="relative rounded-md px-2 py-1.5 text-sm text-slate-700 hover:bg-slate-100 dark:text-slate-300 dark:hover:bg-slate-800"
    >
      <svg aria-hidden="true" viewBox="0 0 24 24" className="h-5 w-5" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" strokeLinejoin="round">
        <path d="M6 8a6 6 0 0 1 12 0c0 7 3 9 3 9H3s3-2 3-9" />
        <path d="M10.3 21a1.94 1.94 0 0 0 3.4 0" />
      </svg>
      {n > 0 ? (
        <span
          aria-hidden="true"
          className={cn(
            "absolute -right-1 -top-1 min-w-5 rounded-full px-1 text-center text-xs font-semibold text-white",
            critical ? "bg-red-600" : "bg-amber-600",
          )}
        >
          {n > 99 ? "99+" : n}
        </span>
      ) : null}
    </Link>
  );
}
