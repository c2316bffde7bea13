// Human-readable numbers. Every formatter shows "—" for a missing value, never "NaN" or "0".

export const MISSING = "—";

function present(value: number | null | undefined): value is number {
  return value !== null && value !== undefined && Number.isFinite(value);
}

/** Three significant digits at most, without trailing zeros: 1234 → "1.23k", 0.5 → "0.5". */
export function compactNumber(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1e9) return `${trim(value / 1e9)}G`;
  if (abs >= 1e6) return `${trim(value / 1e6)}M`;
  if (abs >= 1e4) return `${trim(value / 1e3)}k`;
  return trim(value);
}

function trim(value: number): string {
  if (value === 0) return "0";
  const abs = Math.abs(value);
  const decimals = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return String(Number(value.toFixed(decimals)));
}

export function formatRate(perSecond: number | null | undefined, unit = "req/s"): string {
  return present(perSecond) ? `${compactNumber(perSecond)} ${unit}` : MISSING;
}

export function formatMilliseconds(ms: number | null | undefined): string {
  if (!present(ms)) return MISSING;
  if (Math.abs(ms) >= 1000) return `${trim(ms / 1000)} s`;
  if (Math.abs(ms) < 1 && ms !== 0) return `${trim(ms * 1000)} µs`;
  return `${trim(ms)} ms`;
}

export function formatPercent(percent: number | null | undefined): string {
  if (!present(percent)) return MISSING;
  return `${Number(percent.toFixed(Math.abs(percent) >= 10 ? 1 : 2))} %`;
}

/** A 0..1 ratio as a percentage. */
export function formatRatio(ratio: number | null | undefined): string {
  return present(ratio) ? formatPercent(ratio * 100) : MISSING;
}

/** "12 s ago", "5 min ago", "3 h ago"; future times (clock skew) read as "just now". */
export function formatAge(unixSeconds: number, nowSeconds: number): string {
  if (!present(unixSeconds) || unixSeconds <= 0) return MISSING;
  const age = Math.max(0, Math.round(nowSeconds - unixSeconds));
  if (age < 5) return "just now";
  if (age < 120) return `${age} s ago`;
  if (age < 7200) return `${Math.round(age / 60)} min ago`;
  if (age < 172_800) return `${Math.round(age / 3600)} h ago`;
  return `${Math.round(age / 86_400)} d ago`;
}
