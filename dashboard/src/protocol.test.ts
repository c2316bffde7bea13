import { describe, expect, it } from "vitest";
import { parseServerMessage } from "./protocol";

const update = {
  series_id: "0f3a9c0000000001",
  service: "api",
  metric: "http.server.request.duration",
  attributes: { route: "/users" },
  kind: "histogram",
  unit: "ms",
  resolution: "1m",
  start: 1764000000,
  count: 120,
  sum: 4200.5,
  min: 3.1,
  max: 880,
  avg: 35,
  p50: 22,
  p95: 140,
  p99: null,
  rate: 2,
};

describe("parseServerMessage", () => {
  it("reads the part numbering of a split message and refuses a nonsensical one", () => {
    const split = parseServerMessage(JSON.stringify({ type: "snapshot", seq: 3, part: 2, parts: 4, updates: [update] }));
    expect(split).toMatchObject({ type: "snapshot", seq: 3, part: 2, parts: 4 });
    const whole = parseServerMessage(JSON.stringify({ type: "snapshot", seq: 3, part: 1, parts: 1, updates: [] }));
    expect(whole).not.toHaveProperty("part");
    for (const [p, n] of [[0, 2], [3, 2], [1.5, 2], ["1", 2], [1, null]]) {
      expect(parseServerMessage(JSON.stringify({ type: "metrics_update", seq: 3, part: p, parts: n, updates: [] }))).toBeNull();
    }
  });

  it("parses a metrics_update with its updates", () => {
    const message = parseServerMessage(JSON.stringify({ type: "metrics_update", seq: 7, updates: [update] }));
    expect(message).toEqual({ type: "metrics_update", seq: 7, updates: [update], traces: [] });
  });

  it("refuses a message whose updates break the contract, rather than showing part of it", () => {
    const bad = [
      { ...update, kind: "bogus" },
      { ...update, resolution: "2m" },
      { ...update, start: "yesterday" },
      { ...update, series_id: undefined },
      { ...update, p95: "fast" },
      null,
    ];
    for (const wrong of bad) {
      expect(parseServerMessage(JSON.stringify({ type: "snapshot", seq: 9, updates: [wrong, update] }))).toBeNull();
    }
    expect(parseServerMessage(JSON.stringify({ type: "snapshot", seq: 9, updates: [{ ...update, max: null }] }))).toMatchObject({
      updates: [{ max: null }],
    });
  });

  it("parses hello, pong and error", () => {
    expect(parseServerMessage('{"type":"hello","connection_id":"c1","seq":3}')).toEqual({
      type: "hello",
      connection_id: "c1",
      seq: 3,
    });
    expect(parseServerMessage('{"type":"pong"}')).toEqual({ type: "pong" });
    expect(parseServerMessage('{"type":"error","message":"bad token"}')).toEqual({
      type: "error",
      message: "bad token",
    });
  });

  it("rejects what is not a known, well-formed message", () => {
    for (const text of ["", "not json", "[]", '{"type":"surprise"}', '{"type":"hello"}', '{"type":"metrics_update","updates":[]}']) {
      expect(parseServerMessage(text)).toBeNull();
    }
  });
});

describe("parseServerMessage, trace and alert events", () => {
  const event = {
    trace_id: "t2",
    root_service: "api",
    root_name: null,
    start_unix_ms: 1764000000123.5,
    duration_ms: 42,
    error: false,
    reason: "quota",
    hops: [{ from: "api", to: "postgresql", kind: "call", to_kind: "database", offset_ms: 3, duration_ms: 9, error: false }],
  };

  it("reads a flush's trace events", () => {
    expect(parseServerMessage(JSON.stringify({ type: "trace", seq: 42, traces: [event] }))).toMatchObject({
      type: "traces",
      traces: [{ traceId: "t2", startMs: 1764000000123.5, rootName: "", hops: [{ to: "postgresql", offsetMs: 3 }] }],
    });
  });

  it("refuses trace events in another shape than the contract's", () => {
    // A lone event, a batch with a malformed member, an event without its id.
    expect(parseServerMessage(JSON.stringify({ type: "trace", trace_id: "t", hops: [] }))).toBeNull();
    expect(parseServerMessage(JSON.stringify({ type: "trace", seq: 42, traces: [event, { nope: 1 }] }))).toBeNull();
    expect(parseServerMessage(JSON.stringify({ type: "trace", seq: 42, traces: [{ ...event, trace_id: undefined }] }))).toBeNull();
  });

  it("reads an alert event", () => {
    const alert = {
      type: "alert",
      fingerprint: "f",
      rule: "latency",
      service: "api",
      labels: { service: "api" },
      kind: "firing",
      status: "firing",
      previous_status: "pending",
      severity: "critical",
      previous_severity: "critical",
      value: 1200,
      reason: "threshold",
      at: 1700000000,
      summary: "p95 is 1200 ms",
    };
    expect(parseServerMessage(JSON.stringify(alert))).toMatchObject({ type: "alert", alert: { fingerprint: "f", severity: "critical", state: "firing" } });
    // The nested spelling (`{"type":"alert","alert":{…}}`) is not the contract.
    expect(parseServerMessage(JSON.stringify({ type: "alert", alert: { fingerprint: "f", state: "firing" } }))).toBeNull();
  });
});
