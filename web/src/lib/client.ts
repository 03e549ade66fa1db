/** The app's single API client and query client. */
import { QueryClient } from "@tanstack/react-query";
import { ApiClient, ApiError, localStorageStore } from "./api";

const listeners = new Set<() => void>();

/** Runs `fn` when a session ends without the user logging out (refresh refused). */
export function onSessionEnd(fn: () => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export const api = new ApiClient({
  store: localStorageStore(),
  onSessionEnd: () => listeners.forEach((fn) => fn()),
});

export const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      staleTime: 5_000,
      // Client errors will not change on retry; server and network trouble might.
      retry: (count, err) => count < 2 && !(err instanceof ApiError && err.status >= 400 && err.status < 500),
    },
  },
});
