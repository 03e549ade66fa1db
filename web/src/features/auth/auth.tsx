import { queryOptions, useQuery, useQueryClient } from "@tanstack/react-query";
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import type { Schemas } from "@/lib/api";
import { api, onSessionEnd } from "@/lib/client";

type Permission = Schemas["Permission"];

export const meQuery = queryOptions({
  queryKey: ["auth", "me"],
  queryFn: ({ signal }) => api.get<Schemas["Envelope_Me"]>("/api/v1/auth/me", { signal }).then((r) => r.data),
  staleTime: 60_000,
});

interface AuthState {
  loggedIn: boolean;
  /** Set when the session ended on its own (shown on the login page). */
  expired: boolean;
  login: (username: string, password: string) => Promise<void>;
  logout: () => Promise<void>;
}

const AuthContext = createContext<AuthState | null>(null);

export function AuthProvider({ children }: { children: ReactNode }) {
  const qc = useQueryClient();
  const [loggedIn, setLoggedIn] = useState(() => api.session !== null);
  const [expired, setExpired] = useState(false);

  useEffect(
    () =>
      onSessionEnd(() => {
        qc.clear();
        setExpired(true);
        setLoggedIn(false);
      }),
    [qc],
  );

  const login = useCallback(
    async (username: string, password: string) => {
      await api.login(username, password);
      qc.clear();
      setExpired(false);
      setLoggedIn(true);
    },
    [qc],
  );

  const logout = useCallback(async () => {
    await api.logout();
    qc.clear();
    setExpired(false);
    setLoggedIn(false);
  }, [qc]);

  const value = useMemo(() => ({ loggedIn, expired, login, logout }), [loggedIn, expired, login, logout]);
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthState {
  const ctx = useContext(AuthContext);
  if (!ctx) throw new Error("useAuth outside AuthProvider");
  return ctx;
}

/** The caller and what they may do (`can` is false until `/auth/me` answered). */
export function useMe() {
  const q = useQuery(meQuery);
  const perms = q.data?.permissions;
  const can = useCallback((p: Permission) => perms?.includes(p) ?? false, [perms]);
  return { ...q, can };
}
