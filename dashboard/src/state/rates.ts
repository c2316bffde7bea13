// What the dashboard saw of each rate's data, so that every number on screen is read the same way
// (see docs/dashboard.md): the open bucket's rate covers the time its data covers, a value stops
// moving when its data stops (it goes grey instead of decaying), and a series that began inside the
// open bucket is read from its growth since first seen (no start-up ramp).

import type { Bucket } from "../types";
import type { Coverage } from "./service-stats";

/** Without new data for this long, a service's values are shown as stale (greyed, "no data since …"). */
export const STALE_AFTER_SECONDS = 90;

/** A rate measured from growth needs at least this many seconds of it (as `MIN_ELAPSED_SECONDS`). */
const MIN_MEASURE_SECONDS = 15;

interface Seen {
  start: number;
  total: number;
  changedAt: number;
  first: { at: number; total: number };
  /** The series began inside this bucket (no bucket just before it). */
  startedHere: boolean;
  /** When `startedHere`'s bucket was followed by a new one: the rate measured over it, or null. */
  previousRate?: number | null;
  /** When the bucket before this one last grew (its data ends, this bucket's begins). */
  from?: number;
}

/**
 * Remembers, per metric, its newest bucket's total and when it last grew (as seen by this page).
 * `observe` is called whenever a number is computed (every render); it is cheap and idempotent.
 */
export class CoverageTracker {
  private readonly seen = new Map<string, Seen>();

  observe(key: string, buckets: readonly Bucket[], nowSeconds: number, bucketSeconds: number): Coverage {
    const latest = buckets.at(-1);
    if (latest === undefined) {
      this.seen.delete(key);
      return {};
    }
    // The bucket's total so far: the server's rate is total / bucket width.
    const total = latest.rate * bucketSeconds;
    const previous = buckets.at(-2);
    const startedHere = previous === undefined || previous.start !== latest.start - bucketSeconds;
    let entry = this.seen.get(key);
    if (entry === undefined || entry.start !== latest.start) {
      const next: Seen = { start: latest.start, total, changedAt: nowSeconds, first: { at: nowSeconds, total }, startedHere };
      if (entry !== undefined && previous !== undefined && entry.start === previous.start && previous.start === latest.start - bucketSeconds) {
        next.from = entry.changedAt;
      }
      if (previous !== undefined && previous.start === latest.start - bucketSeconds) {
        const beforePrevious = buckets.at(-3);
        const previousStarted = beforePrevious === undefined || beforePrevious.start !== previous.start - bucketSeconds;
        if (previousStarted) {
          // The bucket that just closed held the series' first seconds: its own rate (total / 60 s)
          // reads low, so measure it over the time this page saw its data grow, if long enough.
          next.previousRate = null;
          if (entry !== undefined && entry.start === previous.start && entry.startedHere) {
            const span = entry.changedAt - entry.first.at;
            // Growth up to the last change seen, over the time it took (both as this page saw them).
            const grown = entry.total - entry.first.total;
            if (span >= MIN_MEASURE_SECONDS) next.previousRate = Math.max(0, grown) / span;
          }
        }
      }
      entry = next;
      this.seen.set(key, entry);
    } else if (total !== entry.total) {
      entry.total = total;
      entry.changedAt = nowSeconds;
    }
    entry.startedHere = startedHere;
    const coverage: Coverage = { asOf: entry.changedAt, first: startedHere ? entry.first : null };
    if (entry.previousRate !== undefined) coverage.previousRate = entry.previousRate;
    if (entry.from !== undefined) coverage.from = entry.from;
    return coverage;
  }

  /** When the metric's data last grew, or null if it was never seen. */
  lastChange(key: string): number | null {
    return this.seen.get(key)?.changedAt ?? null;
  }

  forget(key: string): void {
    this.seen.delete(key);
  }
}

export interface Freshness {
  stale: boolean;
  /** Unix seconds of the newest data, or null when none was ever seen. */
  since: number | null;
  /** Why it is stale, for the note: the server cannot be reached, or the service went quiet. */
  reason: "disconnected" | "quiet" | null;
}

/**
 * Whether a value is still current: stale while the live connection is down (nothing can arrive,
 * whatever the clock says) or once its data has not grown for `STALE_AFTER_SECONDS`.
 */
export function freshness(lastDataAt: number | null, nowSeconds: number, connected: boolean): Freshness {
  if (!connected) return { stale: true, since: lastDataAt, reason: "disconnected" };
  if (lastDataAt !== null && nowSeconds - lastDataAt > STALE_AFTER_SECONDS) {
    return { stale: true, since: lastDataAt, reason: "quiet" };
  }
  return { stale: false, since: lastDataAt, reason: null };
}

/** "no data since 14:03:12" (the browser's local time). */
export function staleNote(fresh: Freshness): string {
  if (!fresh.stale) return "";
  if (fresh.since === null) return "no data";
  return `no data since ${clockTime(fresh.since)}`;
}

/** Local wall-clock time, 24-hour, with seconds: "14:03:12". */
export function clockTime(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toLocaleTimeString([], {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
  });
}
