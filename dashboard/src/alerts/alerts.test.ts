import { describe, expect, it } from "vitest";
import { parseAlert, parseAlertRules, parseAlerts, parseSilences, type Alert } from "./model";
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

describe("parseAlert", () => {
  it("reads an alert, taking service and severity from labels when not top-level", () => {
    const parsed = parseAlert({
      fingerprint: "9f",
      rule: "LatencyHigh",
      state: "firing",
      labels: { service: "auth", severity: "Warning" },
      value: 312.5,
      threshold: 250,
      starts_at: "2025-11-24T12:00:00Z",
      ack: { by: "sam", at: 1 },
    });
    expect(parsed).toMatchObject({
      fingerprint: "9f",
      rule: "LatencyHigh",
      service: "auth",
      severity: "warning",
      state: "firing",
      value: 312.5,
      acknowledged: true,
      acknowledgedBy: "sam",
    });
    expect(parsed?.startsAt).toBe(Date.parse("2025-11-24T12:00:00Z") / 1000);
  });

  it("reads GET /api/alerts' shape: acknowledgement as an object, the rule's unit, silenced", () => {
    const [parsed] = parseAlerts({
      alerts: [
        {
          fingerprint: "f",
          rule: "api-latency",
          description: "p95 latency of the API",
          labels: { service: "api" },
          status: "firing",
          severity: "warning",
          value: 612,
          unit: "ms",
          reason: "threshold",
          since: 50,
          firing_since: 50,
          acknowledged: { by: "sam", at: 70 },
          silenced: true,
        },
      ],
    });
    expect(parsed).toMatchObject({ acknowledged: true, acknowledgedBy: "sam", unit: "ms", silenced: true, summary: "p95 latency of the API" });
    const [quiet] = parseAlerts({ alerts: [{ fingerprint: "g", status: "pending", acknowledged: null, silenced: false }] });
    expect(quiet).toMatchObject({ acknowledged: false, state: "pending" });
  });

  it("reads a stored alert state: status, firing episode start and acknowledgement", () => {
    const parsed = parseAlert({
      fingerprint: "f",
      rule: "api-latency",
      labels: { service: "api" },
      status: "firing",
      severity: "critical",
      value: 1234,
      since: 50,
      firing_since: 40,
      updated_at: 60,
      ack: null,
    });
    expect(parsed).toMatchObject({ state: "firing", startsAt: 40, acknowledged: false, service: "api", transition: null });
    expect(parseAlert({ fingerprint: "g", status: "inactive" })?.state).toBe("resolved");
  });

  it("reads a transition event: a new firing starts its episode, an acknowledgement names who", () => {
    const fired = parseAlert({ type: "alert", fingerprint: "f", kind: "firing", status: "firing", at: 99, summary: "p95 is 1234 ms" });
    expect(fired).toMatchObject({ transition: "firing", startsAt: 99, summary: "p95 is 1234 ms" });
    const acked = parseAlert({ fingerprint: "f", kind: "acknowledged", status: "firing", at: 120, by: "sam" });
    expect(acked).toMatchObject({ acknowledged: true, acknowledgedBy: "sam", startsAt: null });
  });

  it("reads a WebSocket alert event wrapping the alert, with unix ms times", () => {
    const parsed = parseAlert({ type: "alert", alert: { fingerprint: "a", state: "resolved", starts_at: 1764000000000 } });
    expect(parsed).toMatchObject({ fingerprint: "a", state: "resolved", startsAt: 1764000000 });
  });

  it("rejects what has no fingerprint", () => {
    expect(parseAlert({ rule: "x" })).toBeNull();
    expect(parseAlerts({ alerts: [{ rule: "x" }, { fingerprint: "y" }] }).map((a) => a.fingerprint)).toEqual(["y"]);
  });
});

describe("parseSilences and parseAlertRules", () => {
  it("reads matchers given as a list or as a map", () => {
    const silences = parseSilences({
      silences: [
        { id: "s1", matchers: [{ name: "service", value: "api" }], ends_at: 2000, created_by: "sam", comment: "deploy" },
        { id: 7, matchers: { rule: "LatencyHigh" } },
      ],
    });
    expect(silences.map((s) => [s.id, s.matchers, s.endsAt])).toEqual([
      ["s1", [{ name: "service", value: "api" }], 2000],
      ["7", [{ name: "rule", value: "LatencyHigh" }], null],
    ]);
  });

  it("describes the rules API's structured rules in words", () => {
    const rules = parseAlertRules({
      rules: [
        {
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
          name: "errors",
          type: { kind: "anomaly", half_life: "1h" },
          service: null,
          signal: { ratio: { numerator: { metric: "http.server.errors" }, denominator: { metric: "http.server.requests" } } },
          aggregation: "rate",
          condition: "outside",
          warning: 3,
          for: "0s",
        },
      ],
    });
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
        condition: "rate of http.server.errors / http.server.requests outside 3 (warning) σ from its baseline",
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
