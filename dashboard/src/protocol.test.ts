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
  it("parses a metrics_update with its updates", () => {
    const message = parseServerMessage(JSON.stringify({ type: "metrics_update", seq: 7, updates: [update] }));
    expect(message).toEqual({ type: "metrics_update", seq: 7, updates: [update] });
  });

  it("drops malformed updates but keeps the well-formed ones of the same message", () => {
    const bad = [
      { ...update, kind: "bogus" },
      { ...update, resolution: "2m" },
      { ...update, start: "yesterday" },
      { ...update, series_id: undefined },
      null,
    ];
    const message = parseServerMessage(
      JSON.stringify({ type: "snapshot", seq: 9, updates: [...bad, update] }),
    );
    expect(message?.type).toBe("snapshot");
    expect(message && "updates" in message ? message.updates : []).toEqual([update]);
  });

  it("turns non-numeric statistics into null rather than NaN", () => {
    const message = parseServerMessage(
      JSON.stringify({ type: "metrics_update", seq: 1, updates: [{ ...update, p95: "fast", max: null }] }),
    );
    const parsed = message && "updates" in message ? message.updates[0] : undefined;
    expect(parsed?.p95).toBeNull();
    expect(parsed?.max).toBeNull();
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
