import { useQuery } from "@tanstack/react-query";
import type { ReactNode } from "react";
import { Link, useLocation } from "wouter";
import { Button } from "@/components/ui/button";
import { useAuth, useMe } from "@/features/auth/auth";
import { AlertsBell } from "@/features/alerts/AlertsBell";
import { clusterQuery } from "@/features/nodes/NodesPage";
import { cn } from "@/lib/cn";
import { useTheme } from "@/lib/theme";
import type { Schemas } from "@/lib/api";

interface NavItem {
  href: string;
  label: string;
  needs: Schemas["Permission"];
  /** Shown only when the server is a cluster node. */
  clusteredOnly?: boolean;
}

/** Only screens that exist are here (README "Dashboard"). */
export const NAV: NavItem[] = [
  { href: "/cameras", label: "Fleet", needs: "cameras:read" },
  { href: "/live", label: "Live", needs: "streams:play" },
  { href: "/alerts", label: "Alerts", needs: "cameras:read" },
  { href: "/tokens", label: "API tokens", needs: "tokens:manage" },
  { href: "/storage", label: "Storage", needs: "analytics:read" },
  { href: "/users", label: "Users", needs: "users:manage" },
  { href: "/nodes", label: "Nodes", needs: "cluster:manage", clusteredOnly: true },
];

export function AppShell({ children }: { children: ReactNode }) {
  const [location] = useLocation();
  const { logout } = useAuth();
  const me = useMe();
  const [theme, toggleTheme] = useTheme();
  const cluster = useQuery({ ...clusterQuery, enabled: me.can("cluster:manage"), refetchInterval: 30_000 });
  const clustered = cluster.data?.clustered === true;
  const items = NAV.filter((n) => me.can(n.needs) && (!n.clusteredOnly || clustered));

  return (
    <div className="min-h-screen bg-slate-50 dark:bg-slate-950">
      <a href="#main" className="sr-only focus:not-sr-only focus:absolute focus:left-2 focus:top-2 focus:z-50 focus:rounded focus:bg-white focus:p-2 dark:focus:bg-slate-900">
        Skip to content
      </a>
      <header className="sticky top-0 z-30 border-b border-slate-200 bg-white/90 backdrop-blur dark:border-slate-800 dark:bg-slate-900/90">
        <div className="mx-auto flex h-14 max-w-7xl items-center gap-4 px-4">
          <Link href="/cameras" className="flex items-center gap-2 font-semibold">
            <img src="/favicon.svg" alt="" className="h-6 w-6" />
            camstream
          </Link>
          <nav aria-label="Main" className="flex flex-1 items-center gap-1 overflow-x-auto">
            {items.map((n) => {
              const active = location === n.href || location.startsWith(`${n.href}/`);
              return (
                <Link
                  key={n.href}
                  href={n.href}
                  aria-current={active ? "page" : undefined}
                  className={cn(
                    "whitespace-nowrap rounded-md px-3 py-1.5 text-sm",
                    active
                      ? "bg-slate-900 text-white dark:bg-slate-100 dark:text-slate-900"
                      : "text-slate-700 hover:bg-slate-100 dark:text-slate-300 dark:hover:bg-slate-800",
                  )}
                >
                  {n.label}
                </Link>
              );
            })}
          </nav>
          {me.can("cameras:read") ? <AlertsBell /> : null}
          <Button variant="ghost" size="sm" onClick={toggleTheme} aria-label={`Switch to ${theme === "dark" ? "light" : "dark"} theme`}>
            {theme === "dark" ? "☀" : "☾"}
          </Button>
          {me.data ? (
            <span className="hidden text-sm text-slate-600 sm:inline dark:text-slate-400" data-testid="whoami">
              {me.data.user.username} · {me.data.user.role}
            </span>
          ) : null}
          <Button variant="secondary" size="sm" onClick={() => void logout()}>
            Log out
          </Button>
        </div>
      </header>
      <main id="main" className="mx-auto max-w-7xl px-4 py-6">
        {children}
      </main>
    </div>
  );
}
