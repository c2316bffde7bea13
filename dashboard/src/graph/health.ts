// A node's health, in four words: ok / degraded / failing / no data. Colour in the graph always
// comes with the word (in the node's label and its accessible name).
//
// Errors decide on their own: they are comparable across services. Latency is not (8 ms is slow
// for a cache and fast for a checkout), so slowness shows up through alerts, whose rules know each
// service's normal; a firing critical alert means failing, any other firing alert degraded.

export type Health = "ok" | "degraded" | "failing" | "no_data";

export const HEALTH_LABEL: Record<Health, string> = {
  ok: "healthy",
  degraded: "degraded",
  failing: "failing",
  no_data: "no data",
};

export const HEALTH_THRESHOLDS = {
  /** Error ratio from which a node reads degraded. */
  degradedErrorRatio: 0.02,
  /** Error ratio from which a node reads failing. */
  failingErrorRatio: 0.1,
};

export interface HealthInput {
  /** Requests in the window; 0 or null means there is nothing to judge. */
  count: number | null;
  errorRatio: number | null;
  /** Severities of the node's firing, unsilenced alerts. */
  alertSeverities: readonly string[];
}

export function nodeHealth(input: HealthInput, thresholds = HEALTH_THRESHOLDS): Health {
  const critical = input.alertSeverities.some((s) => s === "critical" || s === "page");
  if (critical) return "failing";
  const noRequests = input.count === null || input.count <= 0;
  const ratio = input.errorRatio ?? 0;
  if (!noRequests && ratio >= thresholds.failingErrorRatio) return "failing";
  if (input.alertSeverities.length > 0) return "degraded";
  if (noRequests) return "no_data";
  if (ratio >= thresholds.degradedErrorRatio) return "degraded";
  return "ok";
}

/** Colour of an edge by its error ratio, the same scale as nodes. */
export function edgeHealth(count: number, errorRatio: number | null, thresholds = HEALTH_THRESHOLDS): Health {
  if (count <= 0) return "no_data";
  const ratio = errorRatio ?? 0;
  if (ratio >= thresholds.failingErrorRatio) return "failing";
  if (ratio >= thresholds.degradedErrorRatio) return "degraded";
  return "ok";
}
