/** Bar-chart math (pure): each value as a share of the largest, for CSS widths. */

export interface Bar {
  key: string;
  value: number;
  /** 0–100, relative to the largest value; a non-zero value is at least 1 so it stays visible. */
  percent: number;
}

export function bars(items: readonly { key: string; value: number }[]): Bar[] {
  const max = Math.max(0, ...items.map((i) => i.value));
  return items.map(({ key, value }) => ({
    key,
    value,
    percent: max <= 0 || value <= 0 ? 0 : Math.max(1, Math.round((value / max) * 100)),
  }));
}
