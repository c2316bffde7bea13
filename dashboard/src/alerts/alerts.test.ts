import { describe, expect, it } from "vitest";
import * as v from "valibot";
import { AlertHistory, AlertList, AlertRules, contractViolation, SilenceList } from "../contract";
import { parseAlertHistory, parseAlertRules, parseAlerts, parseSilences, type Alert } from "./model";
import { AlertStore } from "./store";

function alert(fields: Partial<Alert>): Alert {
  return {
    fingerprint: "fp1",
    rule: "HighErrorRate",
    service: "api",
    severity: "critical",
    state: "firing",
    summary: "errors above 5 %",
    value: 0.2,
    unit: "",
    threshold: 0.05,
    startsAt: 1000,
    endsAt: null,
    acknowledged: false,
    acknowledgedBy: null,
    silenced: false,
    labels: {},
    transition: null,
    changedAt: null,
    ...fields,
  };
}

const active = {
  fingerprint: "f",
  rule: "api-latency",
  description: "p95 latency of the API",
  labels: { service: "api" },
  status: "firing",
  severity: "warning",
  value: 612,
  unit: "ms",
  threshold: 500,
  summary: "",
  reason: "threshold",
  since: 50,
  firing_since: 40,
  acknowledged: { by: "sam", at: 70 },
  silenced: true,
} as const;

const transition = {
  fingerprint: "f",
  rule: "api-latency",
  labels: { service: "api" },
  kind: "firing",
  status: "firing",
  previous_status: "pending",
  severity: "critical",
  previous_severity: "critical",
  value: 1234,
  reason: "threshold",
  at: 99,
  summary: "p95 is 1234 ms",
} as const;

describe("reading alerts", () => {
  it("reads GET /api/alerts: acknowledgement, the rule's unit, silenced, the firing episode's start", () => {
    const [parsed] = parseAlerts(v.parse(AlertList, { alerts: [active] }));
    expect(parsed).toMatchObject({
      service: "api",
      state: "firing",
      startsAt: 40,
      acknowledged: true,
      acknowledgedBy: "sam",
      unit: "ms",
      threshold: 500,
      silenced: true,
      summary: "p95 latency of the API",
      transition: null,
    });
    const [quiet] = parseAlerts(v.parse(AlertList, { alerts: [{ ...active, status: "inactive", firing_since: null, acknowledged: null, silenced: false }] }));
    expect(quiet).toMatchObject({ acknowledged: false, state: "resolved", startsAt: 50 });
  });

  it("reads transitions: a new firing starts its episode, an acknowledgement names who, a resolve ends it", () => {
    const [fired, acked, resolved] = parseAlertHistory(
      v.parse(AlertHistory, {
        from: 0,
        to: 200,
        history: [
          transition,
          { ...transition, kind: "acknowledged", at: 120, by: "sam", summary: "acknowledged by sam" },
          { ...transition, kind: "resolved", status: "resolved", previous_status: "firing", at: 150 },
        ],
      }),
    );
    expect(fired).toMatchObject({ transition: "firing", startsAt: 99, summary: "p95 is 1234 ms", service: "api", changedAt: 99 });
    expect(acked).toMatchObject({ acknowledged: true, acknowledgedBy: "sam", startsAt: null });
    expect(resolved).toMatchObject({ state: "resolved", endsAt: 150 });
  });

  it("refuses at the boundary what the contract does not have", () => {
    // A bare array, a fingerprint-less alert, a `state` field instead of `status`, times in ms text.
    expect(contractViolation(AlertList, [active])).not.toBeNull();
    expect(contractViolation(AlertList, { alerts: [{ ...active, fingerprint: undefined }] })).toMatch(/fingerprint/);
    expect(contractViolation(AlertList, { alerts: [{ ...active, status: undefined, state: "firing" }] })).toMatch(/status/);
    expect(contractViolation(AlertHistory, { from: 0, to: 1, history: [{ ...transition, at: "2025-11-24T12:00:00Z" }] })).toMatch(/at/);
  });
});

describe("parseSilences and parseAlertRules", () => {
  it("reads silences with their matchers", () => {
    const silences = parseSilences(
      v.parse(SilenceList, {
        silences: [{ id: "s1", matchers: [{ name: "service", value: "api", op: "=" }], starts_at: 1000, ends_at: 2000, created_by: "sam", comment: "deploy", created_at: 1000 }],
      }),
    );
    expect(silences).toEqual([{ id: "s1", matchers: [{ name: "service", value: "api" }], startsAt: 1000, endsAt: 2000, createdBy: "sam", comment: "deploy" }]);
    expect(contractViolation(SilenceList, { silences: [{ id: 7, matchers: { rule: "LatencyHigh" } }] })).not.toBeNull();
  });

  it("describes the rules API's structured rules in words", () => {
    const common = { description: "", scale: 1, unit: "", keep_firing_for: "0s", hysteresis: 0, group_by: [], no_data: null };
    const rules = parseAlertRules(
      v.parse(AlertRules, {
        version: 0,
        rules: [
          {
            ...common,
            name: "latency",
            type: { kind: "threshold" },
            service: "api",
            signal: { series: { metric: "http.server.request.duration", attributes: {} } },
            aggregation: "p95",
            unit: "ms",
            window: "5m",
            condition: "above",
            warning: 500,
            critical: 1000,
            for: "2m",
          },
          {
            ...common,
            name: "errors",
            type: { kind: "anomaly", half_life: "1h", warmup_samples: 30, min_stddev: 0.1 },
            service: null,
            signal: { ratio: { numerator: { metric: "http.server.errors" }, denominator: { metric: "http.server.requests" } } },
            aggregation: "rate",
            window: "5m",
            condition: "outside",
            warning: 3,
            critical: null,
            for: "0s",
          },
        ],
        settings: { evaluation_delay: "10s", history_retention: "30d" },
        notifications: { group_wait: "30s", retry: { attempts: 5, initial_backoff_ms: 1000, max_backoff_ms: 60000 }, sinks: [] },
      }),
    );
    expect(rules).toEqual([
      {
        name: "latency",
        service: "api",
        severity: "critical",
        condition: "p95 of http.server.request.duration above 500 (warning) / 1000 (critical) ms over 5m for 2m",
      },
      {
        name: "errors",
        service: null,
        severity: "warning",
        condition: "rate of http.server.errors / http.server.requests outside 3 (warning) σ from its baseline over 5m",
      },
    ]);
  });
});

describe("AlertStore", () => {
  it("does not announce alerts that were already firing when the page loaded", () => {
    const store = new AlertStore();
    expect(store.replaceActive([alert({ fingerprint: "old" })])).toEqual([]);
    const fresh = store.replaceActive([alert({ fingerprint: "old" }), alert({ fingerprint: "new" })]);
    expect(fresh.map((a) => a.fingerprint)).toEqual(["new"]);
  });

  it("announces each firing episode once, whether it arrives by event or by list", () => {
    const store = new AlertStore();
    store.replaceActive([]);
    expect(store.apply(alert({ startsAt: 10 }))).toBe(true);
    expect(store.apply(alert({ startsAt: 10 }))).toBe(false);
    expect(store.replaceActive([alert({ startsAt: 10 })])).toEqual([]);
    expect(store.apply(alert({ state: "resolved" }))).toBe(false);
    expect(store.active()).toEqual([]);
    // It fires again later: a new episode.
    expect(store.apply(alert({ startsAt: 99 }))).toBe(true);
  });

  it("keeps an alert silenced when an event about it arrives (events do not carry silences)", () => {
    const store = new AlertStore();
    store.replaceActive([alert({ silenced: true, severity: "warning" })]);
    expect(store.apply(alert({ transition: "escalated", severity: "critical", silenced: false, changedAt: 5 }))).toBe(false);
    expect(store.get("fp1")?.silenced).toBe(true);
  });

  it("never announces silenced or pending alerts", () => {
    const store = new AlertStore();
    store.replaceActive([]);
    expect(store.apply(alert({ fingerprint: "s", silenced: true }))).toBe(false);
    expect(store.apply(alert({ fingerprint: "p", state: "pending" }))).toBe(false);
  });

  it("orders by severity and feeds node health with firing, unsilenced alerts only", () => {
    const store = new AlertStore();
    store.replaceActive([
      alert({ fingerprint: "w", severity: "warning", service: "api" }),
      alert({ fingerprint: "c", severity: "critical", service: "db" }),
      alert({ fingerprint: "p", severity: "critical", service: "api", state: "pending" }),
      alert({ fingerprint: "s", severity: "critical", service: "api", silenced: true }),
    ]);
    expect(store.active().map((a) => a.fingerprint)[0]).toBe("c");
    expect(Object.fromEntries(store.severitiesByService())).toEqual({ api: ["warning"], db: ["critical"] });
  });

  it("announces escalations but not acknowledgements, and keeps what the list said", () => {
    const store = new AlertStore();
    store.replaceActive([alert({ severity: "warning", startsAt: 10, summary: "p95 is 600 ms" })]);
    const ackEvent = alert({ transition: "acknowledged", acknowledged: true, acknowledgedBy: "sam", startsAt: null, summary: "acknowledged by sam" });
    expect(store.apply(ackEvent)).toBe(false);
    expect(store.get("fp1")).toMatchObject({ acknowledged: true, startsAt: 10, summary: "p95 is 600 ms" });
    expect(store.apply(alert({ transition: "escalated", severity: "critical", startsAt: null, changedAt: 30 }))).toBe(true);
    expect(store.apply(alert({ transition: "escalated", severity: "critical", startsAt: null, changedAt: 30 }))).toBe(false);
  });

  it("marks an acknowledgement at once", () => {
    const store = new AlertStore();
    store.replaceActive([alert({})]);
    store.markAcknowledged("fp1", "me");
    expect(store.get("fp1")).toMatchObject({ acknowledged: true, acknowledgedBy: "me" });
  });
});
