/**
 * Live grid layouts (pure): an N×N grid of slots, each empty or showing one camera played
 * over LL-HLS or WebRTC. Saved per user through `/api/v1/layouts` (the user's default
 * layout is the grid shown; a tile's `playback` is its player); a layout an earlier version
 * kept in localStorage is the starting point until the first save.
 */

export const GRID_SIZES = [1, 2, 3] as const;
export type GridSize = (typeof GRID_SIZES)[number];

/** How a tile plays its camera: LL-HLS (hls.js, the default) or WebRTC (WHEP). */
export type TilePlayback = "hls" | "webrtc";

export interface GridLayout {
  columns: GridSize;
  /** Row-major slots, `columns * columns` long; null is an empty slot. */
  tiles: (string | null)[];
  /**
   * Cameras whose tile plays over WebRTC (absent: none). Kept by camera, so the choice
   * moves with the camera when tiles are swapped or the grid resized.
   */
  webrtc?: readonly string[];
}

export function isGridSize(n: unknown): n is GridSize {
  return GRID_SIZES.includes(n as GridSize);
}

/** The first cameras in order, one per slot. */
export function defaultLayout(cameraIds: readonly string[], columns: GridSize): GridLayout {
  const n = columns * columns;
  return { columns, tiles: Array.from({ length: n }, (_, i) => cameraIds[i] ?? null) };
}

/** A new grid size keeps the cameras in slot order; cameras past the last slot are dropped. */
export function resize(layout: GridLayout, columns: GridSize): GridLayout {
  const n = columns * columns;
  const kept = layout.tiles.filter((t): t is string => t !== null);
  return { ...layout, columns, tiles: Array.from({ length: n }, (_, i) => kept[i] ?? null) };
}

/**
 * Puts `cameraId` into slot `index`. A camera already shown elsewhere moves there, and
 * what was in the target slot takes its old place (a swap), so a camera is never twice.
 */
export function assign(layout: GridLayout, index: number, cameraId: string | null): GridLayout {
  if (index < 0 || index >= layout.tiles.length) return layout;
  const tiles = [...layout.tiles];
  const from = cameraId === null ? -1 : tiles.indexOf(cameraId);
  const displaced = tiles[index] ?? null;
  tiles[index] = cameraId;
  if (from >= 0 && from !== index) tiles[from] = displaced;
  return { ...layout, tiles };
}

/** Drops cameras that no longer exist (deleted, or out of the caller's reach). */
export function prune(layout: GridLayout, known: ReadonlySet<string>): GridLayout {
  if (layout.tiles.every((t) => t === null || known.has(t))) return layout;
  return { ...layout, tiles: layout.tiles.map((t) => (t !== null && known.has(t) ? t : null)) };
}

/** How the tile showing `cameraId` plays. */
export function playbackOf(layout: GridLayout, cameraId: string): TilePlayback {
  return layout.webrtc?.includes(cameraId) ? "webrtc" : "hls";
}

/** The layout with the tile showing `cameraId` played over `playback`. */
export function setPlayback(layout: GridLayout, cameraId: string, playback: TilePlayback): GridLayout {
  if (playbackOf(layout, cameraId) === playback) return layout;
  const rest = (layout.webrtc ?? []).filter((c) => c !== cameraId);
  const webrtc = playback === "webrtc" ? [...rest, cameraId] : rest;
  const grid: GridLayout = { columns: layout.columns, tiles: layout.tiles };
  return webrtc.length > 0 ? { ...grid, webrtc } : grid;
}

/** Parses a stored layout; anything malformed is null (the caller falls back to a default). */
export function parseLayout(raw: string | null): GridLayout | null {
  if (!raw) return null;
  try {
    const v: unknown = JSON.parse(raw);
    if (typeof v !== "object" || v === null) return null;
    const { columns, tiles } = v as { columns?: unknown; tiles?: unknown };
    if (!isGridSize(columns) || !Array.isArray(tiles) || tiles.length !== columns * columns) return null;
    if (!tiles.every((t) => t === null || typeof t === "string")) return null;
    return { columns, tiles: tiles as (string | null)[] };
  } catch {
    return null;
  }
}

/** A layout's grid as the API stores it: `columns × rows` slots, tiles by row-major position. */
export interface StoredGrid {
  columns: number;
  rows: number;
  tiles: { cameraId: string; position: number; playback?: TilePlayback | null }[];
}

/**
 * The grid a stored layout shows here: square, 1×1 to 3×3 (the largest side of the stored
 * grid, at most 3). Tiles keep their row and column; those outside the square are left out.
 */
export function fromStored(l: StoredGrid): GridLayout {
  const side = Math.min(3, Math.max(1, l.columns, l.rows)) as GridSize;
  const tiles: (string | null)[] = Array.from({ length: side * side }, () => null);
  for (const t of l.tiles) {
    if (l.columns < 1 || t.position < 0) continue;
    const row = Math.floor(t.position / l.columns);
    const col = t.position % l.columns;
    const slot = row * side + col;
    if (row < side && col < side && tiles[slot] === null && !tiles.includes(t.cameraId)) tiles[slot] = t.cameraId;
  }
  const webrtc = l.tiles.filter((t) => t.playback === "webrtc" && tiles.includes(t.cameraId)).map((t) => t.cameraId);
  return webrtc.length > 0 ? { columns: side, tiles, webrtc } : { columns: side, tiles };
}

/** What the API stores for a grid shown here. */
export function toStored(l: GridLayout): StoredGrid {
  return {
    columns: l.columns,
    rows: l.columns,
    tiles: l.tiles.flatMap((cameraId, position) =>
      cameraId === null ? [] : [playbackOf(l, cameraId) === "webrtc" ? { cameraId, position, playback: "webrtc" as const } : { cameraId, position }],
    ),
  };
}
