// Alerts as the API shows them: active alerts (`GET /api/alerts`), history, silences and rules,
// and the `alert` WebSocket event sent on each transition. Times are unix seconds.

import type { Schemas } from "../contract";

export type AlertState = "pending" | "firing" | "resolved";

export interface Alert {
  fingerprint: string;
  rule: string;
  service: string | null;
  severity: string;
  state: AlertState;
  summary: string;
  value: number | null;
  /** Unit of `value` (the rule's), e.g. "ms" or "%"; "" when unknown. */
  unit: string;
  threshold: number | null;
  /** When it started firing (or pending), unix s. */
  startsAt: number | null;
  endsAt: number | null;
  acknowledged: boolean;
  acknowledgedBy: string | null;
  silenced: boolean;
  labels: Record<string, string>;
  /**
   * For a transition event: what happened ("firing", "escalated", "resolved", "acknowledged"…);
   * null for an alert read from a list.
   */
  transition: string | null;
  /** When this state or transition was recorded (unix s), if known. */
  changedAt: number | null;
}

export interface SilenceMatcher {
  name: string;
  value: string;
}

export interface Silence {
  id: string;
  matchers: SilenceMatcher[];
  startsAt: number | null;
  endsAt: number | null;
  createdBy: string;
  comment: string;
}

export interface AlertRule {
  name: string;
  service: string | null;
  severity: string;
  /** Human-readable condition, e.g. "p95 of http.server.request.duration > 250 ms for 2m". */
  condition: string;
}

type ActiveAlert = Schemas["ActiveAlert"];
type Transition = Schemas["AlertTransition"] & { service?: string | null };
type Rule = Schemas["Rule"];
type Selector = Schemas["Selector"];

/** `inactive` (a pending condition went away) is not active either: shown as resolved. */
function alertState(status: Schemas["AlertStatus"]): AlertState {
  return status === "pending" ? "pending" : status === "firing" ? "firing" : "resolved";
}

function serviceOf(labels: Record<string, string>): string | null {
  return labels.service ?? labels["service.name"] ?? null;
}

/** An active alert as `GET /api/alerts` lists it (validated). */
export function activeAlert(fields: ActiveAlert): Alert {
  return {
    fingerprint: fields.fingerprint,
    rule: fields.rule,
    service: serviceOf(fields.labels),
    severity: fields.severity ?? "warning",
    state: alertState(fields.status),
    summary: fields.summary || fields.description || fields.rule,
    value: fields.value ?? null,
    unit: fields.unit,
    threshold: fields.threshold ?? null,
    startsAt: fields.firing_since ?? fields.since,
    endsAt: null,
    acknowledged: fields.acknowledged !== null && fields.acknowledged !== undefined,
    acknowledgedBy: fields.acknowledged?.by ?? null,
    silenced: fields.silenced,
    labels: fields.labels,
    transition: null,
    changedAt: null,
  };
}

/**
 * A transition (validated): an entry of `GET /api/alerts/history` or a WebSocket `alert` event. A
 * new firing or pending episode starts at it; a resolve ends at it.
 */
export function alertTransition(fields: Transition): Alert {
  const state = alertState(fields.status);
  return {
    fingerprint: fields.fingerprint,
    rule: fields.rule,
    service: fields.service ?? serviceOf(fields.labels),
    severity: fields.severity ?? "warning",
    state,
    summary: fields.summary || fields.rule,
    value: fields.value ?? null,
    unit: "",
    threshold: null,
    startsAt: fields.kind === "firing" || fields.kind === "pending" ? fields.at : null,
    endsAt: state === "resolved" ? fields.at : null,
    acknowledged: fields.kind === "acknowledged",
    acknowledgedBy: fields.by ?? null,
    silenced: false,
    labels: fields.labels,
    transition: fields.kind,
    changedAt: fields.at,
  };
}

export function parseAlerts(body: Schemas["AlertList"]): Alert[] {
  return body.alerts.map(activeAlert);
}

export function parseAlertHistory(body: Schemas["AlertHistory"]): Alert[] {
  return body.history.map(alertTransition);
}

export function parseSilences(body: Schemas["SilenceList"]): Silence[] {
  return body.silences.map((item) => ({
    id: item.id,
    matchers: item.matchers.map((m) => ({ name: m.name, value: m.value })),
    startsAt: item.starts_at,
    endsAt: item.ends_at,
    createdBy: item.created_by,
    comment: item.comment ?? "",
  }));
}

export function parseAlertRules(body: Schemas["AlertRules"]): AlertRule[] {
  return body.rules.map((rule) => ({
    name: rule.name,
    service: rule.service ?? null,
    severity: rule.critical !== null && rule.critical !== undefined ? "critical" : "warning",
    condition: describeRule(rule),
  }));
}

function selectorText(selector: Selector): string {
  const attributes = Object.entries(selector.attributes ?? {}).map(([k, v]) => `${k}=${v}`);
  return attributes.length === 0 ? selector.metric : `${selector.metric}{${attributes.join(",")}}`;
}

/**
 * A rule in words, e.g. "p95 of http.server.request.duration above 500 (warning) / 1000 (critical) ms
 * over 5m for 2m".
 */
export function describeRule(rule: Rule): string {
  if ("expr" in rule.signal) {
    // An expression rule: the expression says what is measured, over which windows.
    const levels = [
      rule.warning == null ? "" : `${rule.warning} (warning)`,
      rule.critical == null ? "" : `${rule.critical} (critical)`,
    ].filter((t) => t !== "");
    return [rule.signal.expr, rule.condition, levels.join(" / "), rule.unit, rule.for === "0s" ? "" : `for ${rule.for}`]
      .filter((t) => t !== "")
      .join(" ");
  }
  const what =
    "series" in rule.signal
      ? selectorText(rule.signal.series)
      : `${selectorText(rule.signal.ratio.numerator)} / ${selectorText(rule.signal.ratio.denominator)}`;
  const warning = rule.warning ?? null;
  const critical = rule.critical ?? null;
  const levels = [
    warning === null ? "" : `${warning} (warning)`,
    critical === null ? "" : `${critical} (critical)`,
  ].filter((t) => t !== "");
  return [
    `${rule.aggregation} of ${what}`,
    rule.condition,
    levels.join(" / "),
    rule.type.kind === "anomaly" ? "σ from its baseline" : rule.unit,
    `over ${rule.window}`,
    rule.for === "0s" ? "" : `for ${rule.for}`,
  ]
    .filter((t) => t !== "")
    .join(" ");
}

const SEVERITY_RANK: Record<string, number> = { critical: 0, page: 0, error: 1, warning: 2, warn: 2, info: 3 };

export function severityRank(severity: string): number {
  return SEVERITY_RANK[severity] ?? 2;
}
