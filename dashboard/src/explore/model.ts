// The Explore page's pure logic (issue 15 item 8): the word at the cursor and its completions, the
// page's URL state (`#/explore?expr=…&t=…`), and a `/api/query` result as chart columns and table rows.

import type { ChartColumns } from "../state/service-stats";

/** What kind of name the word at the cursor is. */
export type CompletionKind = "metric" | "label" | "value";

export interface CompletionContext {
  kind: CompletionKind;
  /** The partial word typed so far. */
  prefix: string;
  /** [start, end) of the text a suggestion replaces. */
  start: number;
  end: number;
  /** For `value`: the label whose values complete (`job="ch|`). */
  label?: string;
}

const WORD = /[A-Za-z0-9_:.]/;
/** Words of the language that are not metric names. */
export const KEYWORDS = [
  "sum", "avg", "min", "max", "count", "quantile", "by", "without", "rate", "increase", "histogram_quantile",
  "offset", "bool", "on", "ignoring", "avg_over_time", "min_over_time", "max_over_time", "sum_over_time",
  "count_over_time", "quantile_over_time",
];

/**
 * The word at `cursor` in `text` and what it names: a label value inside quotes after `label=`, a
 * label name inside `{…}` or `by (…)`/`without (…)`/`on (…)`/`ignoring (…)`, otherwise a metric.
 * null inside a number, a duration (`[5m]`) or a string that is not a matcher's value.
 */
export function completionContext(text: string, cursor: number): CompletionContext | null {
  const before = text.slice(0, cursor);
  // Inside a quoted value: `label=~"pre|`.
  const value = /([A-Za-z_][A-Za-z0-9_.]*)\s*(=~|!~|!=|=)\s*"([^"\\]*)$/.exec(before);
  if (value !== null) {
    const prefix = value[3] ?? "";
    let end = cursor;
    while (end < text.length && text[end] !== '"') end += 1;
    return { kind: "value", prefix, start: cursor - prefix.length, end, label: value[1] ?? "" };
  }
  // An odd number of quotes before the cursor: inside some other string.
  if ((before.match(/"/g)?.length ?? 0) % 2 === 1) return null;
  let start = cursor;
  while (start > 0 && WORD.test(text[start - 1] ?? "")) start -= 1;
  let end = cursor;
  while (end < text.length && WORD.test(text[end] ?? "")) end += 1;
  const prefix = text.slice(start, cursor);
  if (prefix === "" || /^[0-9.]/.test(prefix)) return null;
  // Inside `[…]` (a range) nothing completes.
  if (before.lastIndexOf("[") > before.lastIndexOf("]")) return null;
  const lead = text.slice(0, start);
  const inBraces = lead.lastIndexOf("{") > lead.lastIndexOf("}");
  const grouping = /\b(by|without|on|ignoring)\s*\(([^()]*)$/.test(lead);
  return { kind: inBraces || grouping ? "label" : "metric", prefix, start, end };
}

/** Candidates starting with `prefix` (case-insensitive), then those containing it; at most `limit`. */
export function rankCompletions(candidates: readonly string[], prefix: string, limit = 12): string[] {
  const p = prefix.toLowerCase();
  const starts: string[] = [];
  const contains: string[] = [];
  for (const c of candidates) {
    const lower = c.toLowerCase();
    if (lower === p) continue;
    if (lower.startsWith(p)) starts.push(c);
    else if (p.length >= 2 && lower.includes(p)) contains.push(c);
  }
  return [...starts, ...contains].slice(0, limit);
}

/** `text` with the context's word replaced by `choice`; the new cursor position. */
export function applyCompletion(text: string, context: CompletionContext, choice: string): { text: string; cursor: number } {
  const next = text.slice(0, context.start) + choice + text.slice(context.end);
  return { text: next, cursor: context.start + choice.length };
}

// ---- URL ----------------------------------------------------------------------------------------

export type ExploreTab = "chart" | "table";

export interface ExploreState {
  expr: string;
  tab: ExploreTab;
}

/** The page's own keys from the hash query (`t`/`res` belong to the global time range). */
export function parseExploreQuery(query: string): ExploreState {
  const params = new URLSearchParams(query);
  return { expr: params.get("expr") ?? "", tab: params.get("tab") === "table" ? "table" : "chart" };
}

/** `#/explore?…` with `state` written over `query`'s own keys (other keys such as `t` kept). */
export function exploreHash(state: ExploreState, query = ""): string {
  const params = new URLSearchParams(query);
  if (state.expr === "") params.delete("expr");
  else params.set("expr", state.expr);
  if (state.tab === "table") params.set("tab", "table");
  else params.delete("tab");
  const text = params.toString();
  return text === "" ? "#/explore" : `#/explore?${text}`;
}

// ---- results ------------------------------------------------------------------------------------

export interface ExprSeries {
  labels: Record<string, string>;
  points: (number | null)[][];
}

export interface ExprResult {
  expr: string;
  resultType: string;
  resolution: string;
  times: number[];
  series: ExprSeries[];
}

/** `name{a="1", b="2"}` (the series' identity as Prometheus prints it); `{}` for none. */
export function seriesLabel(labels: Record<string, string>): string {
  const name = labels.__name__ ?? "";
  const rest = Object.keys(labels)
    .filter((k) => k !== "__name__")
    .sort()
    .map((k) => `${k}="${labels[k] ?? ""}"`);
  if (rest.length === 0) return name === "" ? "{}" : name;
  return `${name}{${rest.join(", ")}}`;
}

/** One column per series over the result's times (null where a series has no value). */
export function resultColumns(result: ExprResult): ChartColumns {
  const index = new Map(result.times.map((t, i) => [t, i]));
  const columns: (number | null)[][] = result.series.map((series) => {
    const column: (number | null)[] = result.times.map(() => null);
    for (const point of series.points) {
      const at = index.get(point[0] ?? NaN);
      const value = point[1];
      if (at !== undefined && typeof value === "number" && Number.isFinite(value)) column[at] = value;
    }
    return column;
  });
  return [[...result.times], ...columns];
}

export interface TableRow {
  series: string;
  /** The newest point's value, null when none. */
  value: number | null;
  /** Its time (unix s). */
  time: number | null;
}

/** One row per series: its labels and its last value. */
export function resultTable(result: ExprResult): TableRow[] {
  return result.series.map((series) => {
    let last: (number | null)[] | undefined;
    for (const point of series.points) if (typeof point[0] === "number" && (last === undefined || point[0] >= (last[0] ?? 0))) last = point;
    const value = last?.[1];
    return {
      series: seriesLabel(series.labels),
      value: typeof value === "number" && Number.isFinite(value) ? value : null,
      time: typeof last?.[0] === "number" ? last[0] : null,
    };
  });
}
