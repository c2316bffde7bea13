// The Profiles view's data: the API's answers and snapshot files (validated with valibot: a
// snapshot is a file from anywhere), the page's state in the URL, and playback through minutes.

import type { GlobalTime } from "../state/time-range";
import * as v from "valibot";
import { FlameError, parseDiff, parseFlamegraph, type FlameTree } from "./flame";

const count = v.pipe(v.number(), v.finite(), v.minValue(0));
const time = v.pipe(v.number(), v.finite());
const levels = v.array(v.array(count));

export const ProfileServices = v.looseObject({
  services: v.array(v.looseObject({ service: v.string(), types: v.array(v.string()) })),
});

export const ProfileTypes = v.looseObject({
  service: v.string(),
  types: v.array(v.looseObject({ type: v.string(), unit: v.string() })),
});

export const Timeline = v.looseObject({
  service: v.string(),
  type: v.string(),
  unit: v.string(),
  points: v.array(v.looseObject({ t: time, total: count })),
});

export const Flamegraph = v.looseObject({
  service: v.string(),
  type: v.string(),
  unit: v.string(),
  from: time,
  to: time,
  total: count,
  names: v.array(v.string()),
  levels,
});

export const Diff = v.looseObject({
  service: v.string(),
  type: v.string(),
  unit: v.string(),
  total: count,
  base_total: count,
  names: v.array(v.string()),
  levels,
});

export const Top = v.looseObject({
  unit: v.string(),
  total: count,
  functions: v.array(v.looseObject({ name: v.string(), self: count, total: count })),
});

/** A snapshot file (`GET /api/profiles/snapshot`, gunzipped). */
export const Snapshot = v.looseObject({
  version: v.literal(1),
  service: v.string(),
  type: v.string(),
  unit: v.string(),
  from: time,
  to: time,
  timeline: v.array(v.looseObject({ t: time, total: count })),
  flamegraph: v.looseObject({ total: count, names: v.array(v.string()), levels }),
});

export type TimelineData = v.InferOutput<typeof Timeline>;
export type FlamegraphData = v.InferOutput<typeof Flamegraph>;
export type SnapshotData = v.InferOutput<typeof Snapshot>;

/** The first problem valibot found, as `path: message`; null when the value fits. */
export function violation(schema: v.GenericSchema, value: unknown): string | null {
  const result = v.safeParse(schema, value);
  if (result.success) return null;
  const issue = result.issues[0];
  const path = issue?.path?.map((p) => String(p.key)).join(".") ?? "";
  return `${path === "" ? "" : `${path}: `}${issue?.message ?? "invalid"}`;
}

export class SnapshotError extends Error {
  override name = "SnapshotError";
}

/** Snapshot files are small JSON; anything far bigger once unzipped is refused (gzip bomb). */
export const MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024;

/** Validates a parsed snapshot and builds its tree; throws `SnapshotError` saying what is wrong. */
export function readSnapshot(value: unknown): { snapshot: SnapshotData; tree: FlameTree } {
  const problem = violation(Snapshot, value);
  if (problem !== null) throw new SnapshotError(`not a Flowscope profile snapshot (${problem})`);
  const snapshot = value as SnapshotData;
  try {
    return { snapshot, tree: parseFlamegraph(snapshot.flamegraph.names, snapshot.flamegraph.levels) };
  } catch (error) {
    if (error instanceof FlameError) throw new SnapshotError(`the snapshot's flame graph is malformed: ${error.message}`);
    throw error;
  }
}

/** Gunzips (DecompressionStream) and reads a snapshot file, refusing more than `maxBytes` unzipped. */
export async function openSnapshotFile(
  file: Blob,
  maxBytes = MAX_SNAPSHOT_BYTES,
): Promise<{ snapshot: SnapshotData; tree: FlameTree }> {
  const head = new Uint8Array(await file.slice(0, 2).arrayBuffer());
  const gzipped = head[0] === 0x1f && head[1] === 0x8b;
  const stream = gzipped ? file.stream().pipeThrough(new DecompressionStream("gzip")) : file.stream();
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel();
        throw new SnapshotError(`the snapshot is over ${Math.round(maxBytes / 1048576)} MB unzipped`);
      }
      chunks.push(value);
    }
  } catch (error) {
    if (error instanceof SnapshotError) throw error;
    throw new SnapshotError(`cannot unzip the file: ${error instanceof Error ? error.message : String(error)}`);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new SnapshotError("the file is not JSON (or gzip JSON)");
  }
  return readSnapshot(value);
}

/** Builds the diff tree from a validated `Diff` answer. */
export function diffTree(data: v.InferOutput<typeof Diff>): FlameTree {
  return parseDiff(data.names, data.levels, data.total, data.base_total);
}

/** Times in the API's answers: minute starts in ms; tolerates seconds (values before 1973 in ms). */
export function toMs(t: number): number {
  return t < 1e11 ? t * 1000 : t;
}

// ---- the page's state in the URL (`#/profiles?service=api&type=cpu&range=1h&from=…`) ------------

export const PROFILE_RANGES = [
  { name: "15m", label: "15 min", seconds: 900 },
  { name: "1h", label: "1 hour", seconds: 3600 },
  { name: "6h", label: "6 hours", seconds: 6 * 3600 },
  { name: "24h", label: "24 hours", seconds: 86_400 },
  { name: "7d", label: "7 days", seconds: 7 * 86_400 },
] as const;
export type ProfileRange = (typeof PROFILE_RANGES)[number]["name"];

export interface ProfileState {
  service: string | null;
  type: string | null;
  range: ProfileRange;
  /** A selection within the range (unix s), or null for all of it. */
  selection: { from: number; to: number } | null;
  /** Playback's current minute (unix s), or null when not playing back. */
  minute: number | null;
  /** Diff against the period of equal length just before the selection. */
  diff: boolean;
  search: string;
  /** Label filter `k=v,k2=v2` ("" for every label set). */
  labels: string;
  /** A function whose sandwich view is open. */
  focus: string | null;
}

export const DEFAULT_STATE: ProfileState = {
  service: null,
  type: null,
  range: "1h",
  selection: null,
  minute: null,
  diff: false,
  search: "",
  labels: "",
  focus: null,
};

function intParam(params: URLSearchParams, name: string): number | null {
  const text = params.get(name);
  if (text === null || !/^\d{1,12}$/.test(text)) return null;
  return Number(text);
}

export function parseState(query: string): ProfileState {
  const params = new URLSearchParams(query);
  const range = PROFILE_RANGES.find((r) => r.name === params.get("range"))?.name ?? DEFAULT_STATE.range;
  const from = intParam(params, "from");
  const to = intParam(params, "to");
  const nonEmpty = (name: string) => {
    const value = params.get(name);
    return value === null || value === "" ? null : value;
  };
  return {
    service: nonEmpty("service"),
    type: nonEmpty("type"),
    range,
    selection: from !== null && to !== null && from < to ? { from, to } : null,
    minute: intParam(params, "minute"),
    diff: params.get("diff") === "1",
    search: params.get("q") ?? "",
    labels: params.get("labels") ?? "",
    focus: nonEmpty("focus"),
  };
}

export function formatState(state: ProfileState): string {
  const params = new URLSearchParams();
  if (state.service !== null) params.set("service", state.service);
  if (state.type !== null) params.set("type", state.type);
  if (state.range !== DEFAULT_STATE.range) params.set("range", state.range);
  if (state.selection !== null) {
    params.set("from", String(state.selection.from));
    params.set("to", String(state.selection.to));
  }
  if (state.minute !== null) params.set("minute", String(state.minute));
  if (state.diff) params.set("diff", "1");
  if (state.search !== "") params.set("q", state.search);
  if (state.labels !== "") params.set("labels", state.labels);
  if (state.focus !== null) params.set("focus", state.focus);
  return params.toString();
}

export function rangeSecondsOf(range: ProfileRange): number {
  return PROFILE_RANGES.find((r) => r.name === range)?.seconds ?? 3600;
}

/** The window the page queries (unix s): the selection, else the range ending after this minute. */
export function queryWindow(state: ProfileState, nowSeconds: number): { from: number; to: number } {
  if (state.selection !== null) return state.selection;
  const to = Math.floor(nowSeconds / 60) * 60 + 60;
  return { from: to - rangeSecondsOf(state.range), to };
}

/** The base of a diff: the period of the same length just before. */
export function baseWindow(window: { from: number; to: number }): { from: number; to: number } {
  const span = window.to - window.from;
  return { from: window.from - span, to: window.from };
}

// ---- playback ---------------------------------------------------------------------------------

export const SPEEDS = [0.5, 1, 2, 4] as const;

/** Milliseconds between minutes at `speed` (1× = one minute of profile per second). */
export function playbackDelayMs(speed: number): number {
  return Math.round(1000 / Math.max(0.1, speed));
}

/**
 * The next minute to show when stepping by `delta` through `minutes` (sorted unix s): from
 * `current` (or the start when null); null when stepping past either end.
 */
export function stepMinute(minutes: readonly number[], current: number | null, delta: number): number | null {
  if (minutes.length === 0) return null;
  if (current === null) return delta >= 0 ? (minutes[0] ?? null) : (minutes.at(-1) ?? null);
  let index = minutes.findIndex((m) => m >= current);
  if (index < 0) index = minutes.length;
  else if (minutes[index] !== current && delta > 0) index -= 1;
  const next = index + delta;
  return next >= 0 && next < minutes.length ? (minutes[next] ?? null) : null;
}

/**
 * The page's range and selection for the global time range: a relative range picks the shortest
 * profile range that covers it; an absolute one becomes the selection, inside the shortest range
 * that reaches back to its start.
 */
export function stateForTime(state: ProfileState, time: GlobalTime, nowSeconds: number): ProfileState {
  const covering = (seconds: number): ProfileRange =>
    PROFILE_RANGES.find((r) => r.seconds >= seconds)?.name ?? "7d";
  if (time.range.kind === "relative") return { ...state, range: covering(time.range.seconds), selection: null, minute: null };
  const from = Math.floor(time.range.from / 60) * 60;
  const to = Math.max(from + 60, Math.ceil(time.range.to / 60) * 60);
  return { ...state, range: covering(nowSeconds - from), selection: { from, to }, minute: null };
}
