import { queryOptions, useMutation, useQueryClient } from "@tanstack/react-query";
import type { Schemas } from "@/lib/api";
import { api } from "@/lib/client";

export type Camera = Schemas["CameraView"];
export type StreamStatus = Schemas["StreamStatus"];

export interface CameraFilters {
  search: string;
  status: StreamStatus | "";
  company: string;
  location: string;
  page: number;
  limit: number;
}

export const cameraKeys = {
  all: ["cameras"] as const,
  list: (f: CameraFilters) => ["cameras", "list", f] as const,
  detail: (id: string) => ["cameras", "detail", id] as const,
  metrics: (id: string) => ["cameras", "metrics", id] as const,
  playback: (id: string) => ["cameras", "playback", id] as const,
  webrtc: (id: string) => ["cameras", "webrtc", id] as const,
};

/** How often live status is polled (the notifications WebSocket will replace it). */
export const STATUS_POLL_MS = 5_000;

export const cameraListQuery = (f: CameraFilters) =>
  queryOptions({
    queryKey: cameraKeys.list(f),
    queryFn: ({ signal }) =>
      api.get<Schemas["Paged_CameraView"]>("/api/v1/cameras", {
        signal,
        query: {
          search: f.search.trim(),
          status: f.status,
          company: f.company.trim(),
          location: f.location.trim(),
          page: f.page,
          limit: f.limit,
        },
      }),
    refetchInterval: STATUS_POLL_MS,
    placeholderData: (prev) => prev,
  });

export const cameraQuery = (id: string) =>
  queryOptions({
    queryKey: cameraKeys.detail(id),
    queryFn: ({ signal }) => api.get<Schemas["Envelope_CameraView"]>("/api/v1/cameras/{id}", { signal, params: { id } }).then((r) => r.data),
    refetchInterval: STATUS_POLL_MS,
  });

export const cameraMetricsQuery = (id: string) =>
  queryOptions({
    queryKey: cameraKeys.metrics(id),
    queryFn: ({ signal }) =>
      api.get<Schemas["Envelope_CameraMetrics"]>("/api/v1/analytics/cameras/{id}/metrics", { signal, params: { id } }).then((r) => r.data),
    refetchInterval: STATUS_POLL_MS,
  });

/** Signed LL-HLS/HLS URLs (valid 15 min: refetched well before they expire). */
export const playbackQuery = (id: string) =>
  queryOptions({
    queryKey: cameraKeys.playback(id),
    queryFn: ({ signal }) =>
      api.get<Schemas["Envelope_PlaybackUrls"]>("/api/v1/cameras/{id}/stream/hls", { signal, params: { id } }).then((r) => r.data),
    staleTime: 10 * 60_000,
    refetchInterval: 10 * 60_000,
  });

/**
 * The signed WHEP URL and ICE servers (valid 15 min, refetched well before they expire; a
 * session started with a token keeps playing after it expires, so a refetch does not
 * restart playback: only the next offer uses the new URL).
 */
export const webrtcQuery = (id: string) =>
  queryOptions({
    queryKey: cameraKeys.webrtc(id),
    queryFn: ({ signal }) =>
      api.get<Schemas["Envelope_WebrtcPlayback"]>("/api/v1/cameras/{id}/stream/webrtc", { signal, params: { id } }).then((r) => r.data),
    staleTime: 10 * 60_000,
    refetchInterval: 10 * 60_000,
  });

export function useCameraMutations() {
  const qc = useQueryClient();
  const invalidate = () => qc.invalidateQueries({ queryKey: cameraKeys.all });
  return {
    create: useMutation({
      mutationFn: (body: Schemas["CreateCamera"]) =>
        api.post<Schemas["Envelope_CameraView"]>("/api/v1/cameras", { body }).then((r) => r.data),
      onSuccess: invalidate,
    }),
    update: useMutation({
      mutationFn: ({ id, body }: { id: string; body: Schemas["UpdateCamera"] }) =>
        api.put<Schemas["Envelope_CameraView"]>("/api/v1/cameras/{id}", { params: { id }, body }).then((r) => r.data),
      onSuccess: (camera) => {
        // The answer is the camera as stored: show it at once, then refetch the rest.
        qc.setQueriesData<Schemas["Paged_CameraView"]>({ queryKey: ["cameras", "list"] }, (old) =>
          old ? { ...old, data: old.data.map((c) => (c.id === camera.id ? camera : c)) } : old,
        );
        qc.setQueryData(cameraKeys.detail(camera.id), camera);
        return invalidate();
      },
    }),
    remove: useMutation({
      mutationFn: (id: string) => api.delete<unknown>("/api/v1/cameras/{id}", { params: { id } }),
      onSuccess: invalidate,
    }),
    rotate: useMutation({
      mutationFn: (id: string) =>
        api.post<Schemas["Envelope_CameraView"]>("/api/v1/cameras/{id}/rotate-key", { params: { id } }).then((r) => r.data),
      onSuccess: invalidate,
    }),
  };
}
