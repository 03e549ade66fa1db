import type { ReactNode } from "react";
import { Redirect, Route, Switch } from "wouter";
import { AppShell, NAV } from "@/components/AppShell";
import { EmptyState, Spinner } from "@/components/ui/state";
import { useAuth, useMe } from "@/features/auth/auth";
import { LoginPage } from "@/features/auth/LoginPage";
import { CameraDetailPage } from "@/features/cameras/CameraDetailPage";
import { FleetPage } from "@/features/cameras/FleetPage";
import { AlertsPage } from "@/features/alerts/AlertsPage";
import { LiveGridPage } from "@/features/live/LiveGridPage";
import { NodesPage } from "@/features/nodes/NodesPage";
import { TokensPage } from "@/features/tokens/TokensPage";
import { StoragePage } from "@/features/storage/StoragePage";
import { UsersPage } from "@/features/users/UsersPage";
import type { Schemas } from "@/lib/api";

function Needs({ permission, children }: { permission: Schemas["Permission"]; children: ReactNode }) {
  const me = useMe();
  if (me.isPending) return <Spinner />;
  if (!me.can(permission)) return <EmptyState title="Not available">Your role does not give access to this page.</EmptyState>;
  return <>{children}</>;
}

/** The first screen the caller may see (an api_only user only manages tokens). */
function Home() {
  const me = useMe();
  if (me.isPending) return <Spinner />;
  const first = NAV.find((n) => me.can(n.needs));
  if (!first) return <EmptyState title="Nothing to show">Your role has no dashboard screens.</EmptyState>;
  return <Redirect to={first.href} replace />;
}

export function App() {
  const { loggedIn } = useAuth();
  if (!loggedIn) {
    return (
      <Switch>
        <Route path="/login" component={LoginPage} />
        <Route>
          <Redirect to="/login" replace />
        </Route>
      </Switch>
    );
  }
  return (
    <AppShell>
      <Switch>
        <Route path="/login" component={Home} />
        <Route path="/" component={Home} />
        <Route path="/cameras">
          <Needs permission="cameras:read">
            <FleetPage />
          </Needs>
        </Route>
        <Route path="/cameras/:id">
          {(params) => (
            <Needs permission="cameras:read">
              <CameraDetailPage key={params.id} id={decodeURIComponent(params.id)} />
            </Needs>
          )}
        </Route>
        <Route path="/live">
          <Needs permission="streams:play">
            <LiveGridPage />
          </Needs>
        </Route>
        <Route path="/tokens">
          <Needs permission="tokens:manage">
            <TokensPage />
          </Needs>
        </Route>
        <Route path="/storage">
          <Needs permission="analytics:read">
            <StoragePage />
          </Needs>
        </Route>
        <Route path="/alerts">
          <Needs permission="cameras:read">
            <AlertsPage />
          </Needs>
        </Route>
        <Route path="/nodes">
          <Needs permission="cluster:manage">
            <NodesPage />
          </Needs>
        </Route>
        <Route path="/users">
          <Needs permission="users:manage">
            <UsersPage />
          </Needs>
        </Route>
        <Route>
          <EmptyState title="Page not found" />
        </Route>
      </Switch>
    </AppShell>
  );
}
