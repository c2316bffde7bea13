// Alerts as the API shows them: active alerts (`GET /api/alerts`), history, silences and rules,
// and the `alert` WebSocket event sent on each transition. Times are unix seconds.

import { boolField, isObject, list, numberField, stringMap, textField, type Fields } from "../json";

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

/** Seconds from a field given as unix seconds, unix ms, RFC 3339 text, or `…_ms`. */
function timeSeconds(fields: Fields, ...names: string[]): number | null {
  for (const name of names) {
    const value = fields[name];
    if (typeof value === "number" && Number.isFinite(value)) {
      // Unix ms are > 1e11 for any date after 1973; seconds stay below until the year 5138.
      return value > 1e11 ? value / 1000 : value;
    }
    if (typeof value === "string" && value !== "") {
      const numeric = Number(value);
      if (Number.isFinite(numeric)) return numeric > 1e11 ? numeric / 1000 : numeric;
      const parsed = Date.parse(value);
      if (Number.isFinite(parsed)) return parsed / 1000;
    }
    const ms = fields[`${name}_ms`];
    if (typeof ms === "number" && Number.isFinite(ms)) return ms / 1000;
  }
  return null;
}

function parseState(value: unknown): AlertState {
  const text = typeof value === "string" ? value.toLowerCase() : "";
  if (text === "pending") return "pending";
  // "inactive": a pending condition went away (cancelled); not active either.
  if (text === "resolved" || text === "ok" || text === "inactive" || text === "normal" || text === "cancelled") {
    return "resolved";
  }
  return "firing";
}

/**
 * Reads an alert: a stored alert state from `GET /api/alerts` (`status`, `since`, `firing_since`,
 * `ack`), or a transition from the history or an `alert` event (`kind`, `status`, `at`, `by`).
 */
export function parseAlert(value: unknown): Alert | null {
  if (!isObject(value)) return null;
  const fields = isObject(value.alert) ? value.alert : isObject(value.transition) ? value.transition : value;
  const labels = stringMap(fields.labels);
  const fingerprint = textField(fields, "fingerprint", "fp", "id");
  if (fingerprint === null) return null;
  // `GET /api/alerts` sends `acknowledged: {by, at}` (or null); stored states call it `ack`.
  const ack =
    [fields.acknowledged, fields.ack, fields.acknowledgement].find((v): v is Fields => isObject(v)) ?? null;
  const rule = textField(fields, "rule", "rule_name", "alertname", "name") ?? labels.alertname ?? "alert";
  const transition = textField(fields, "kind", "transition");
  const at = timeSeconds(fields, "at");
  const state = parseState(fields.status ?? fields.state ?? transition);
  return {
    fingerprint,
    rule,
    service: textField(fields, "service") ?? labels.service ?? labels["service.name"] ?? null,
    severity: (textField(fields, "severity") ?? labels.severity ?? "warning").toLowerCase(),
    state,
    summary: textField(fields, "summary", "description", "message") ?? rule,
    value: numberField(fields, "value", "observed"),
    unit: textField(fields, "unit") ?? "",
    threshold: numberField(fields, "threshold"),
    // A transition only says when it happened; a new firing episode starts then.
    startsAt:
      timeSeconds(fields, "firing_since", "starts_at", "started_at", "since", "active_at", "fired_at") ??
      (transition === "firing" || transition === "pending" ? at : null),
    endsAt: timeSeconds(fields, "ends_at", "resolved_at", "ended_at") ?? (state === "resolved" ? at : null),
    acknowledged: boolField(fields, "acknowledged", "acked") ?? (ack !== null || transition === "acknowledged"),
    acknowledgedBy:
      (ack === null ? null : textField(ack, "by", "user")) ?? textField(fields, "acked_by", "acknowledged_by", "by"),
    silenced:
      boolField(fields, "silenced") ?? (textField(fields, "silenced_by") !== null || list(fields.silenced_by).length > 0),
    labels,
    transition,
    changedAt: at ?? timeSeconds(fields, "updated_at"),
  };
}

export function parseAlerts(body: unknown): Alert[] {
  const fields = isObject(body) ? body : {};
  const items = Array.isArray(body) ? body : list(fields.alerts ?? fields.items ?? fields.history ?? fields.events);
  return items.flatMap((item) => {
    const alert = parseAlert(item);
    return alert === null ? [] : [alert];
  });
}

function parseMatchers(value: unknown): SilenceMatcher[] {
  if (Array.isArray(value)) {
    return value.flatMap((m) => {
      if (!isObject(m)) return [];
      const name = textField(m, "name", "label", "key");
      const v = textField(m, "value");
      return name === null || v === null ? [] : [{ name, value: v }];
    });
  }
  return Object.entries(stringMap(value)).map(([name, v]) => ({ name, value: v }));
}

export function parseSilences(body: unknown): Silence[] {
  const fields = isObject(body) ? body : {};
  const items = Array.isArray(body) ? body : list(fields.silences ?? fields.items);
  return items.flatMap((item) => {
    if (!isObject(item)) return [];
    const id = textField(item, "id") ?? (typeof item.id === "number" ? String(item.id) : null);
    if (id === null) return [];
    return [
      {
        id,
        matchers: parseMatchers(item.matchers ?? item.labels),
        startsAt: timeSeconds(item, "starts_at", "created_at"),
        endsAt: timeSeconds(item, "ends_at", "expires_at", "until"),
        createdBy: textField(item, "created_by", "by") ?? "",
        comment: textField(item, "comment", "reason") ?? "",
      },
    ];
  });
}

export function parseAlertRules(body: unknown): AlertRule[] {
  const fields = isObject(body) ? body : {};
  const items = Array.isArray(body) ? body : list(fields.rules ?? fields.items);
  return items.flatMap((item) => {
    if (!isObject(item)) return [];
    const name = textField(item, "name", "id", "rule");
    if (name === null) return [];
    const warning = numberField(item, "warning");
    const critical = numberField(item, "critical");
    return [
      {
        name,
        service: textField(item, "service"),
        severity: critical !== null ? "critical" : warning !== null ? "warning" : (textField(item, "severity") ?? "warning"),
        condition: describeRule(item),
      },
    ];
  });
}

function selectorText(value: unknown): string {
  if (!isObject(value)) return "";
  const metric = textField(value, "metric") ?? "";
  const attributes = Object.entries(stringMap(value.attributes)).map(([k, v]) => `${k}=${v}`);
  return attributes.length === 0 ? metric : `${metric}{${attributes.join(",")}}`;
}

/**
 * A rule in words, e.g. "p95 of http.server.request.duration above 500 (warning) / 1000 (critical) ms
 * over 5m, for 2m". Reads the rules API's structure (signal, aggregation, condition, thresholds).
 */
export function describeRule(rule: Fields): string {
  const given = textField(rule, "expr", "expression");
  if (given !== null) return given;
  const signal = isObject(rule.signal) ? rule.signal : {};
  let what = selectorText(signal.series ?? (textField(rule, "metric") === null ? undefined : rule));
  if (isObject(signal.ratio)) what = `${selectorText(signal.ratio.numerator)} / ${selectorText(signal.ratio.denominator)}`;
  const aggregation = textField(rule, "aggregation", "stat") ?? "";
  const condition = textField(rule, "condition", "op") ?? "above";
  const type = isObject(rule.type) ? textField(rule.type, "kind") : textField(rule, "type");
  const unit = textField(rule, "unit") ?? "";
  const warning = numberField(rule, "warning");
  const critical = numberField(rule, "critical");
  const threshold = numberField(rule, "threshold");
  const sigma = type === "anomaly" ? "σ from its baseline" : unit;
  const levels = [
    warning === null ? "" : `${warning} (warning)`,
    critical === null ? "" : `${critical} (critical)`,
    threshold === null ? "" : String(threshold),
  ].filter((t) => t !== "");
  const window = textField(rule, "window");
  const sustained = textField(rule, "for", "duration");
  return [
    aggregation === "" ? what : `${aggregation} of ${what}`,
    condition,
    levels.join(" / "),
    sigma,
    window === null ? "" : `over ${window}`,
    sustained === null || sustained === "0s" ? "" : `for ${sustained}`,
  ]
    .filter((t) => t !== "")
    .join(" ");
}

const SEVERITY_RANK: Record<string, number> = { critical: 0, page: 0, error: 1, warning: 2, warn: 2, info: 3 };

export function severityRank(severity: string): number {
  return SEVERITY_RANK[severity] ?? 2;
}
