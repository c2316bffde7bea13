// The global time range: one range and resolution for every view (overview charts, service details,
// the traces list, the Services page, the Profiles timeline), kept in the URL hash so a link or a
// reload shows the same window. `t=1h` is relative (ending now); `t=<from>-<to>` is absolute (unix s);
// `res=5m` fixes the resolution (absent: a readable one for the range, see `autoResolution`).

import type { Resolution } from "../types";
import { MAX_BUCKETS, MIN_BUCKETS, RESOLUTIONS, resolutionSeconds } from "./range";

export type TimeRange = { kind: "relative"; seconds: number } | { kind: "absolute"; from: number; to: number };

export interface GlobalTime {
  range: TimeRange;
  /** null: picked from the range (`autoResolution`). */
  resolution: Resolution | null;
}

export const RELATIVE_RANGES: readonly { name: string; label: string; seconds: number }[] = [
  { name: "5m", label: "5 min", seconds: 5 * 60 },
  { name: "15m", label: "15 min", seconds: 15 * 60 },
  { name: "1h", label: "1 hour", seconds: 3600 },
  { name: "6h", label: "6 hours", seconds: 6 * 3600 },
  { name: "24h", label: "24 hours", seconds: 86_400 },
  { name: "7d", label: "7 days", seconds: 7 * 86_400 },
];

export const DEFAULT_TIME: GlobalTime = { range: { kind: "relative", seconds: 3600 }, resolution: null };

/** The shortest and longest ranges zooming reaches (two 1-minute buckets; a year). */
export const MIN_SPAN_SECONDS = 2 * 60;
export const MAX_SPAN_SECONDS = 365 * 86_400;

/** The URL keys this module owns (other pages' own keys are left alone). */
export const TIME_KEYS = ["t", "res"] as const;

/** "1h", "90m", "2d": a relative span's name (the largest whole unit). */
export function spanName(seconds: number): string {
  const named = RELATIVE_RANGES.find((r) => r.seconds === seconds);
  if (named !== undefined) return named.name;
  if (seconds % 86_400 === 0) return `${seconds / 86_400}d`;
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

export function parseSpan(text: string): number | null {
  const match = /^(\d{1,6})(s|m|h|d)$/.exec(text);
  if (match === null) return null;
  const unit = { s: 1, m: 60, h: 3600, d: 86_400 }[match[2] as "s" | "m" | "h" | "d"];
  const seconds = Number(match[1]) * unit;
  return seconds >= MIN_SPAN_SECONDS && seconds <= MAX_SPAN_SECONDS ? seconds : null;
}

/** The global time in a query string (`t`, `res`); anything malformed falls back to the default. */
export function parseTime(params: URLSearchParams): GlobalTime {
  const t = params.get("t") ?? "";
  let range: TimeRange = DEFAULT_TIME.range;
  const absolute = /^(\d{1,12})-(\d{1,12})$/.exec(t);
  if (absolute !== null) {
    const from = Number(absolute[1]);
    const to = Number(absolute[2]);
    if (to - from >= 60 && to - from <= MAX_SPAN_SECONDS) range = { kind: "absolute", from, to };
  } else {
    const seconds = parseSpan(t);
    if (seconds !== null) range = { kind: "relative", seconds };
  }
  const res = RESOLUTIONS.find((r) => r.name === params.get("res"))?.name ?? null;
  const time: GlobalTime = { range, resolution: res };
  // A resolution the range cannot be read at (too few or too many buckets) is dropped.
  return res !== null && !allowedFor(spanOf(range)).includes(res) ? { range, resolution: null } : time;
}

/** Sets the global time's keys in `params` (`res` only when fixed). */
export function writeTime(params: URLSearchParams, time: GlobalTime): void {
  const range = time.range;
  // Always written, also for the default: a link without `t` means "keep the range in use".
  params.set("t", range.kind === "relative" ? spanName(range.seconds) : `${range.from}-${range.to}`);
  if (time.resolution === null) params.delete("res");
  else params.set("res", time.resolution);
}

/** Splits a hash into its path and query (`#/overview?t=1h` → "#/overview", "t=1h"). */
export function splitHash(hash: string): { path: string; query: string } {
  const at = hash.indexOf("?");
  return at < 0 ? { path: hash, query: "" } : { path: hash.slice(0, at), query: hash.slice(at + 1) };
}

/** `hash` with the global time's keys set to `time` (other keys kept). */
export function hashWithTime(hash: string, time: GlobalTime): string {
  const { path, query } = splitHash(hash);
  const params = new URLSearchParams(query);
  writeTime(params, time);
  const text = params.toString();
  return text === "" ? path || "#/" : `${path || "#/"}?${text}`;
}

export function sameTime(a: GlobalTime, b: GlobalTime): boolean {
  if (a.resolution !== b.resolution || a.range.kind !== b.range.kind) return false;
  if (a.range.kind === "relative" && b.range.kind === "relative") return a.range.seconds === b.range.seconds;
  if (a.range.kind === "absolute" && b.range.kind === "absolute") return a.range.from === b.range.from && a.range.to === b.range.to;
  return false;
}

export function spanOf(range: TimeRange): number {
  return range.kind === "relative" ? range.seconds : range.to - range.from;
}

/** Resolutions that give between 3 and 2000 buckets over `span` seconds. */
export function allowedFor(span: number): Resolution[] {
  return RESOLUTIONS.filter((r) => {
    const buckets = span / r.seconds;
    return buckets >= Math.min(MIN_BUCKETS, span / 60) && buckets <= MAX_BUCKETS;
  }).map((r) => r.name);
}

/** The finest resolution with at most 300 points (fine enough for shape, coarse enough to read). */
export function autoResolution(span: number): Resolution {
  const allowed = allowedFor(span);
  return allowed.find((r) => span / resolutionSeconds(r) <= 300) ?? allowed.at(-1) ?? "1m";
}

export function effectiveResolution(time: GlobalTime): Resolution {
  return time.resolution ?? autoResolution(spanOf(time.range));
}

/**
 * The query window: whole buckets. A relative range ends with the bucket filling now (the chart's
 * right edge is the current bucket); an absolute one covers the buckets touching [from, to).
 */
export function timeWindow(time: GlobalTime, nowSeconds: number): { from: number; to: number; resolution: Resolution } {
  const resolution = effectiveResolution(time);
  const step = resolutionSeconds(resolution);
  if (time.range.kind === "relative") {
    const to = Math.floor(nowSeconds / step) * step + step;
    return { from: to - time.range.seconds, to, resolution };
  }
  const from = Math.floor(time.range.from / step) * step;
  const to = Math.ceil(time.range.to / step) * step;
  return { from, to: Math.max(to, from + step), resolution };
}

/** The x extent a chart shows (unix s): [now − span, now] or the absolute range. */
export function viewExtent(time: GlobalTime, nowSeconds: number): { from: number; to: number } {
  return time.range.kind === "relative"
    ? { from: nowSeconds - time.range.seconds, to: nowSeconds }
    : { from: time.range.from, to: time.range.to };
}

/**
 * Whether live 1-minute updates keep the view current (the browser keeps `retentionSeconds` of
 * live buckets); otherwise views show history loaded for the window.
 */
export function isLiveTime(time: GlobalTime, retentionSeconds: number): boolean {
  return time.range.kind === "relative" && effectiveResolution(time) === "1m" && time.range.seconds <= retentionSeconds;
}

/**
 * Zoom out (factor 2) or in (factor 0.5) around the range's centre. A relative range stays
 * relative; an absolute one whose end would pass `now` ends at now.
 */
export function zoom(time: GlobalTime, factor: number, nowSeconds: number): GlobalTime {
  const clampSpan = (s: number) => Math.round(Math.min(MAX_SPAN_SECONDS, Math.max(MIN_SPAN_SECONDS, s)));
  if (time.range.kind === "relative") {
    const seconds = clampSpan(time.range.seconds * factor);
    return { range: { kind: "relative", seconds: roundSpan(seconds) }, resolution: null };
  }
  const centre = (time.range.from + time.range.to) / 2;
  const span = clampSpan((time.range.to - time.range.from) * factor);
  let to = Math.round(centre + span / 2);
  if (to > nowSeconds) to = Math.floor(nowSeconds);
  return { range: { kind: "absolute", from: to - span, to }, resolution: null };
}

/** A relative span rounded to a whole minute (zooming from 5 min gives 2.5 → 3 min). */
function roundSpan(seconds: number): number {
  return Math.max(MIN_SPAN_SECONDS, Math.round(seconds / 60) * 60);
}

/** An absolute range from a drag on a chart (at least a minute wide). */
export function absoluteTime(from: number, to: number): GlobalTime {
  const a = Math.floor(Math.min(from, to));
  const b = Math.ceil(Math.max(from, to));
  return { range: { kind: "absolute", from: a, to: Math.max(b, a + 60) }, resolution: null };
}

/** "Last 1 hour", "Dec 5 14:00 – 15:00": what the picker's summary says. */
export function describeTime(time: GlobalTime): string {
  if (time.range.kind === "relative") {
    const named = RELATIVE_RANGES.find((r) => r.seconds === (time.range as { seconds: number }).seconds);
    return `Last ${named?.label ?? spanName(time.range.seconds)}`;
  }
  return `${localInput(time.range.from).replace("T", " ")} – ${localInput(time.range.to).replace("T", " ")}`;
}

/** A unix time as the value of an `<input type="datetime-local">` (local time, minutes). */
export function localInput(unixSeconds: number): string {
  const d = new Date(unixSeconds * 1000);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** The value of a datetime-local input as unix seconds (null when empty or invalid). */
export function fromLocalInput(value: string): number | null {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/.test(value)) return null;
  const ms = new Date(value).getTime();
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : null;
}
