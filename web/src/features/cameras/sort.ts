/** Client-side ordering of one page of cameras (the list API has no sort parameter). */
import type { Camera } from "./api";

export type SortKey = "name" | "status" | "createdAt";
export type SortDir = "asc" | "desc";

const statusRank: Record<Camera["streamStatus"], number> = { online: 0, connecting: 1, error: 2, offline: 3 };

export function sortCameras(list: readonly Camera[], key: SortKey, dir: SortDir): Camera[] {
  const sign = dir === "asc" ? 1 : -1;
  const cmp = (a: Camera, b: Camera): number => {
    switch (key) {
      case "name":
        return a.name.localeCompare(b.name, undefined, { sensitivity: "base", numeric: true });
      case "status":
        return statusRank[a.streamStatus] - statusRank[b.streamStatus];
      case "createdAt":
        return a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0;
    }
  };
  // Ties keep a stable, readable order (by name, then id).
  return [...list].sort((a, b) => sign * cmp(a, b) || a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
}
