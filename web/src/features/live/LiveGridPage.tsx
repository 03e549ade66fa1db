import { DndContext, KeyboardSensor, PointerSensor, closestCenter, useDraggable, useDroppable, useSensor, useSensors, type DragEndEvent } from "@dnd-kit/core";
import { queryOptions, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useMemo, useRef, useState } from "react";
import { Link } from "wouter";
import { Button } from "@/components/ui/button";
import { Select } from "@/components/ui/input";
import { EmptyState, ErrorState, Spinner, errorMessage } from "@/components/ui/state";
import { StatusDot } from "@/components/ui/status-dot";
import { cameraListQuery, STATUS_POLL_MS, type Camera } from "@/features/cameras/api";
import { api } from "@/lib/client";
import type { Schemas } from "@/lib/api";
import { cn } from "@/lib/cn";
import { formatBitrate } from "@/lib/format";
import {
  GRID_SIZES,
  assign,
  defaultLayout,
  fromStored,
  parseLayout,
  playbackOf,
  prune,
  resize,
  setPlayback,
  toStored,
  type GridLayout,
  type GridSize,
  type TilePlayback,
} from "./layout";
import { LivePlayer } from "./LivePlayer";

/** Where an earlier version kept the layout in the browser: the start until the first save. */
const LEGACY_KEY = "camstream.liveLayout";

type StoredLayout = Schemas["LayoutView"];

const layoutsQuery = queryOptions({
  queryKey: ["layouts"],
  queryFn: ({ signal }) => api.get<Schemas["Envelope_Vec_LayoutView"]>("/api/v1/layouts", { signal }).then((r) => r.data),
});

const liveStatusQuery = (id: string) =>
  queryOptions({
    queryKey: ["cameras", "status", id],
    queryFn: ({ signal }) => api.get<Schemas["Envelope_LiveStatus"]>("/api/v1/cameras/{id}/status", { signal, params: { id } }).then((r) => r.data),
    refetchInterval: STATUS_POLL_MS,
  });

const gridClass: Record<GridSize, string> = { 1: "grid-cols-1", 2: "sm:grid-cols-2", 3: "sm:grid-cols-2 lg:grid-cols-3" };

/** The drop target id of a slot (dnd-kit ids are per context). */
const slotId = (index: number) => `slot-${index}`;

function Tile({
  index,
  camera,
  cameras,
  playback,
  onAssign,
  onPlayback,
}: {
  index: number;
  camera: Camera | null;
  cameras: Camera[];
  playback: TilePlayback;
  onAssign: (id: string | null) => void;
  onPlayback: (playback: TilePlayback) => void;
}) {
  const status = useQuery({ ...liveStatusQuery(camera?.id ?? ""), enabled: camera !== null });
  const live = status.data;
  const selectId = `tile-${index}-camera`;
  const playbackId = `tile-${index}-playback`;
  // dnd-kit: the slot is a drop target; the handle drags the camera (pointer, or keyboard:
  // focus the handle, Space, arrow keys, Space again).
  const { setNodeRef, isOver } = useDroppable({ id: slotId(index) });
  const drag = useDraggable({ id: camera?.id ?? `empty-${index}`, disabled: camera === null });
  return (
    <figure
      ref={setNodeRef}
      className={cn(
        "space-y-2 rounded-lg border bg-white p-2 dark:bg-slate-900",
        isOver ? "border-sky-500 ring-2 ring-sky-500" : "border-slate-200 dark:border-slate-800",
        drag.isDragging ? "opacity-60" : "",
      )}
      data-testid="live-tile"
    >
      {camera ? (
        <LivePlayer key={camera.id} cameraId={camera.id} label={camera.name} playback={playback} />
      ) : (
        <div className="flex aspect-video items-center justify-center rounded-md bg-slate-100 text-sm text-slate-600 dark:bg-slate-800 dark:text-slate-300">Empty slot</div>
      )}
      <figcaption className="flex flex-wrap items-center gap-x-3 gap-y-1 text-sm">
        {camera ? (
          <>
            <button
              type="button"
              ref={drag.setNodeRef}
              {...drag.listeners}
              {...drag.attributes}
              aria-label={`Move ${camera.name} (drag onto another tile, or Space then arrow keys)`}
              className="cursor-grab touch-none select-none rounded px-1 text-slate-500 hover:bg-slate-100 dark:hover:bg-slate-800"
              title="Drag onto another tile to move (or choose the slot's camera in the list)"
              data-testid="tile-handle"
            >
              ⠿
            </button>
            <Link href={`/cameras/${encodeURIComponent(camera.id)}`} className="font-medium text-sky-700 hover:underline dark:text-sky-400">
              {camera.name}
            </Link>
            <StatusDot status={live?.status ?? camera.streamStatus} />
            {live && live.status === "online" ? (
              <span className="text-slate-600 dark:text-slate-400">
                {live.fps.toFixed(0)} fps · {formatBitrate(live.bitrate)} · {live.viewerCount} {live.viewerCount === 1 ? "viewer" : "viewers"}
              </span>
            ) : null}
          </>
        ) : null}
        {camera ? (
          <>
            <label htmlFor={playbackId} className="sr-only">
              Playback of {camera.name}
            </label>
            <Select
              id={playbackId}
              className="ml-auto w-auto py-1"
              value={playback}
              onChange={(e) => onPlayback(e.target.value === "webrtc" ? "webrtc" : "hls")}
              title="LL-HLS: ~1 s behind, any camera. WebRTC: sub-second, video only."
            >
              <option value="hls">LL-HLS</option>
              <option value="webrtc">WebRTC</option>
            </Select>
          </>
        ) : null}
        <label htmlFor={selectId} className="sr-only">
          Camera in slot {index + 1}
        </label>
        <Select id={selectId} className={cn("w-auto py-1", camera ? "" : "ml-auto")} value={camera?.id ?? ""} onChange={(e) => onAssign(e.target.value || null)}>
          <option value="">(empty)</option>
          {cameras.map((c) => (
            <option key={c.id} value={c.id}>
              {c.name}
            </option>
          ))}
        </Select>
      </figcaption>
    </figure>
  );
}

export function LiveGridPage() {
  // The grid picks from the first 100 cameras (the API's largest page).
  const list = useQuery(cameraListQuery({ search: "", status: "", company: "", location: "", page: 1, limit: 100 }));
  const cameras = useMemo(() => list.data?.data ?? [], [list.data]);
  const byId = useMemo(() => new Map(cameras.map((c) => [c.id, c])), [cameras]);
  const saved = useQuery(layoutsQuery);
  const qc = useQueryClient();
  // The layout shown and edited: the one picked, else the user's default, else the first.
  const [picked, setPicked] = useState<string | null>(null);
  const current: StoredLayout | null =
    saved.data?.find((l) => l.id === picked) ?? saved.data?.find((l) => l.isDefault) ?? saved.data?.[0] ?? null;
  // Edits show at once; saving follows, one request at a time, so a quick second change
  // updates the layout the first one created instead of creating another.
  const [draft, setDraft] = useState<GridLayout | null>(null);
  const created = useRef<string | null>(null);
  const remember = (stored: StoredLayout) => {
    localStorage.removeItem(LEGACY_KEY);
    qc.setQueryData<StoredLayout[]>(["layouts"], (old) => {
      const rest = (old ?? []).filter((l) => l.id !== stored.id).map((l) => (stored.isDefault ? { ...l, isDefault: false } : l));
      return [...rest, stored];
    });
  };
  const save = useMutation({
    scope: { id: "live-layout" },
    mutationFn: ({ grid, target }: { grid: GridLayout; target: StoredLayout | null }) => {
      const id = target?.id ?? created.current;
      const body: Schemas["LayoutRequest"] = { ...toStored(grid), name: target?.name ?? "My grid", isDefault: target?.isDefault ?? true };
      return (
        id
          ? api.put<Schemas["Envelope_LayoutView"]>("/api/v1/layouts/{id}", { params: { id }, body })
          : api.post<Schemas["Envelope_LayoutView"]>("/api/v1/layouts", { body })
      ).then((r) => r.data);
    },
    onSuccess: (stored) => {
      created.current = stored.id;
      remember(stored);
    },
  });
  const [newName, setNewName] = useState("");
  const saveAs = useMutation({
    mutationFn: (body: Schemas["LayoutRequest"]) => api.post<Schemas["Envelope_LayoutView"]>("/api/v1/layouts", { body }).then((r) => r.data),
    onSuccess: (stored) => {
      remember(stored);
      setPicked(stored.id);
      setDraft(null);
      setNewName("");
    },
  });
  const makeDefault = useMutation({
    mutationFn: (l: StoredLayout) =>
      api
        .put<Schemas["Envelope_LayoutView"]>("/api/v1/layouts/{id}", {
          params: { id: l.id },
          body: { name: l.name, columns: l.columns, rows: l.rows, tiles: l.tiles, isDefault: true },
        })
        .then((r) => r.data),
    onSuccess: remember,
  });
  const remove = useMutation({
    mutationFn: (id: string) => api.delete<unknown>("/api/v1/layouts/{id}", { params: { id } }).then(() => id),
    onSuccess: (id) => {
      if (created.current === id) created.current = null;
      setPicked(null);
      setDraft(null);
      qc.setQueryData<StoredLayout[]>(["layouts"], (old) => (old ?? []).filter((l) => l.id !== id));
    },
  });

  const layout = useMemo(() => {
    if (!list.data || saved.isPending) return null;
    const base = draft ?? (current ? fromStored(current) : null) ?? parseLayout(localStorage.getItem(LEGACY_KEY)) ?? defaultLayout(cameras.filter((c) => c.isActive).map((c) => c.id), 2);
    return prune(base, new Set(byId.keys()));
  }, [draft, current, saved.isPending, list.data, cameras, byId]);

  const sensors = useSensors(useSensor(PointerSensor), useSensor(KeyboardSensor));
  const change = (next: GridLayout) => {
    setDraft(next);
    save.mutate({ grid: next, target: current });
  };
  const layoutError = [saveAs, makeDefault, remove].find((m) => m.isError)?.error;

  return (
    <section aria-labelledby="live-title" className="space-y-4">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <h1 id="live-title" className="text-2xl font-semibold">
          Live
        </h1>
        <div role="group" aria-label="Grid size" className="flex gap-1">
          {GRID_SIZES.map((n) => (
            <Button
              key={n}
              variant={layout?.columns === n ? "primary" : "secondary"}
              size="sm"
              aria-pressed={layout?.columns === n}
              onClick={() => layout && change(resize(layout, n))}
            >
              {n}×{n}
            </Button>
          ))}
        </div>
      </div>
      {saved.data && saved.data.length > 0 ? (
        <div role="group" aria-label="Saved layouts" className="flex flex-wrap items-end gap-2">
          <div>
            <label htmlFor="layout-pick" className="block text-sm font-medium">
              Layout
            </label>
            <Select
              id="layout-pick"
              className="w-auto"
              value={current?.id ?? ""}
              onChange={(e) => {
                setPicked(e.target.value);
                setDraft(null);
              }}
            >
              {saved.data.map((l) => (
                <option key={l.id} value={l.id}>
                  {l.name}
                  {l.isDefault ? " (default)" : ""}
                </option>
              ))}
            </Select>
          </div>
          {current && !current.isDefault ? (
            <Button variant="secondary" size="sm" disabled={makeDefault.isPending} onClick={() => makeDefault.mutate(current)}>
              Make default
            </Button>
          ) : null}
          {current && saved.data.length > 1 ? (
            <Button variant="ghost" size="sm" className="text-red-600 dark:text-red-400" disabled={remove.isPending} onClick={() => remove.mutate(current.id)}>
              Delete layout
            </Button>
          ) : null}
          <form
            className="flex items-end gap-2"
            onSubmit={(e) => {
              e.preventDefault();
              if (!layout || !newName.trim()) return;
              saveAs.mutate({ ...toStored(layout), name: newName.trim(), isDefault: false });
            }}
          >
            <div>
              <label htmlFor="layout-new" className="block text-sm font-medium">
                Save as a new layout
              </label>
              <input
                id="layout-new"
                value={newName}
                maxLength={100}
                onChange={(e) => setNewName(e.target.value)}
                placeholder="Name"
                className="rounded-md border border-slate-300 bg-white px-2 py-1.5 text-sm dark:border-slate-700 dark:bg-slate-900"
              />
            </div>
            <Button type="submit" variant="secondary" size="sm" disabled={!newName.trim() || saveAs.isPending}>
              Save as new
            </Button>
          </form>
          {layoutError ? (
            <p role="alert" className="text-sm text-red-600 dark:text-red-400">
              {errorMessage(layoutError)}
            </p>
          ) : null}
        </div>
      ) : null}
      <p className="text-sm text-slate-600 dark:text-slate-400">
        Drag a tile's ⠿ handle onto another tile to swap them, or choose each slot's camera in its list. Each tile plays over LL-HLS (about a second behind) or WebRTC (under a second, video only). The layout is saved to your account. Tiles load video only while on screen and while this tab is visible.
      </p>
      <p role="status" aria-live="polite" className="text-sm text-slate-600 dark:text-slate-400" data-testid="layout-save-state" data-state={save.isPending ? "saving" : save.isError ? "error" : save.isSuccess ? "saved" : "idle"}>
        {save.isPending ? "Saving layout…" : save.isError ? `Layout not saved: ${errorMessage(save.error)}` : save.isSuccess ? "Layout saved" : ""}
      </p>
      {list.isPending || saved.isPending ? (
        <Spinner label="Loading cameras" />
      ) : list.isError ? (
        <ErrorState error={list.error} onRetry={() => void list.refetch()} />
      ) : saved.isError ? (
        <ErrorState error={saved.error} onRetry={() => void saved.refetch()} />
      ) : cameras.length === 0 || !layout ? (
        <EmptyState title="No cameras yet">Add cameras in the fleet, then pick them here.</EmptyState>
      ) : (
        <DndContext
          sensors={sensors}
          collisionDetection={closestCenter}
          onDragEnd={(e: DragEndEvent) => {
            const over = e.over ? Number(String(e.over.id).replace("slot-", "")) : NaN;
            if (!Number.isNaN(over) && !String(e.active.id).startsWith("empty-")) change(assign(layout, over, String(e.active.id)));
          }}
        >
        <div className={cn("grid gap-3", gridClass[layout.columns])}>
          {layout.tiles.map((id, i) => (
            <Tile
              key={i}
              index={i}
              camera={id ? (byId.get(id) ?? null) : null}
              cameras={cameras}
              playback={id ? playbackOf(layout, id) : "hls"}
              onAssign={(cam) => change(assign(layout, i, cam))}
              onPlayback={(p) => id && change(setPlayback(layout, id, p))}
            />
          ))}
        </div>
        </DndContext>
      )}
    </section>
  );
}
