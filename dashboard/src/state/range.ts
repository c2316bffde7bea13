// The details panel's time range and resolution pickers, and the query window they mean.
// A combination is offered only when it gives a readable chart: at least 3 buckets, and at most
// the API's 2000 buckets per query.

import type { Resolution } from "../types";

export type RangeName = "15m" | "1h" | "24h" | "7d" | "30d" | "1y";

export const RANGES: readonly { name: RangeName; label: string; seconds: number }[] = [
  { name: "15m", label: "15 min", seconds: 15 * 60 },
  { name: "1h", label: "1 hour", seconds: 3600 },
  { name: "24h", label: "24 hours", seconds: 86_400 },
  { name: "7d", label: "7 days", seconds: 7 * 86_400 },
  { name: "30d", label: "30 days", seconds: 30 * 86_400 },
  { name: "1y", label: "1 year", seconds: 365 * 86_400 },
];

export const RESOLUTIONS: readonly { name: Resolution; label: string; seconds: number }[] = [
  { name: "1m", label: "1 min", seconds: 60 },
  { name: "5m", label: "5 min", seconds: 300 },
  { name: "1h", label: "1 hour", seconds: 3600 },
  { name: "1d", label: "1 day", seconds: 86_400 },
];

export const MAX_BUCKETS = 2000;
export const MIN_BUCKETS = 3;

export function rangeSeconds(range: RangeName): number {
  return RANGES.find((r) => r.name === range)?.seconds ?? 900;
}

export function resolutionSeconds(resolution: Resolution): number {
  return RESOLUTIONS.find((r) => r.name === resolution)?.seconds ?? 60;
}

export function allowedResolutions(range: RangeName): Resolution[] {
  const span = rangeSeconds(range);
  return RESOLUTIONS.filter((r) => {
    const buckets = span / r.seconds;
    return buckets >= MIN_BUCKETS && buckets <= MAX_BUCKETS;
  }).map((r) => r.name);
}

/** About 15–300 points: fine enough to see shape, coarse enough to read. */
export function defaultResolution(range: RangeName): Resolution {
  switch (range) {
    case "15m":
    case "1h":
      return "1m";
    case "24h":
      return "5m";
    case "7d":
    case "30d":
      return "1h";
    case "1y":
      return "1d";
  }
}

/**
 * The query window: whole buckets, ending with the one that is filling now, so the chart's right
 * edge is the current bucket.
 */
export function queryWindow(
  nowSeconds: number,
  range: RangeName,
  resolution: Resolution,
): { from: number; to: number; resolution: Resolution } {
  const step = resolutionSeconds(resolution);
  const to = Math.floor(nowSeconds / step) * step + step;
  return { from: to - rangeSeconds(range), to, resolution };
}

/**
 * Whether live 1-minute updates can keep this view current (live buckets are 1 m and the browser
 * keeps one hour of them); otherwise the view shows history, reloaded periodically.
 */
export function isLiveWindow(range: RangeName, resolution: Resolution, retentionSeconds: number): boolean {
  return resolution === "1m" && rangeSeconds(range) <= retentionSeconds;
}
