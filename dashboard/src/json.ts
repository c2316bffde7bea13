// Small readers for untrusted JSON: each returns a well-typed value or a fallback, never throws.
// The newer APIs (graph, traces, alerts) are read through these, accepting a few spellings of a
// field where the server's naming was still settling (`source`/`from`, `service`/`service_name`).

export type Fields = Record<string, unknown>;

export function isObject(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** The first of `names` that holds a finite number (numeric strings count: u64s may be sent as text). */
export function numberField(fields: Fields, ...names: string[]): number | null {
  for (const name of names) {
    const value = fields[name];
    if (typeof value === "number" && Number.isFinite(value)) return value;
    if (typeof value === "string" && value.trim() !== "" && Number.isFinite(Number(value))) return Number(value);
  }
  return null;
}

/** The first of `names` that holds a non-empty string. */
export function textField(fields: Fields, ...names: string[]): string | null {
  for (const name of names) {
    const value = fields[name];
    if (typeof value === "string" && value !== "") return value;
  }
  return null;
}

export function boolField(fields: Fields, ...names: string[]): boolean | null {
  for (const name of names) {
    const value = fields[name];
    if (typeof value === "boolean") return value;
  }
  return null;
}

/** String-valued attributes; other values are kept as their JSON text. */
export function stringMap(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isObject(value)) return out;
  for (const [key, v] of Object.entries(value)) {
    if (v === null || v === undefined) continue;
    out[key] = typeof v === "string" ? v : JSON.stringify(v);
  }
  return out;
}
