import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ServerMessage } from "../types";
import { LiveConnection, type ConnectionStatus, type SocketLike } from "./connection";

/** A WebSocket stand-in the test drives by hand. */
class FakeSocket implements SocketLike {
  readyState = 0;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: unknown) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  readonly sent: unknown[] = [];
  closed = false;

  constructor(readonly url: string) {}

  send(data: string): void {
    this.sent.push(JSON.parse(data));
  }

  close(): void {
    this.closed = true;
    this.readyState = 3;
  }

  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  receive(message: object | string): void {
    this.onmessage?.({ data: typeof message === "string" ? message : JSON.stringify(message) });
  }

  drop(code?: number): void {
    this.readyState = 3;
    this.onclose?.(code === undefined ? {} : { code, reason: "fell behind" });
  }
}

function setup(overrides: Partial<ConstructorParameters<typeof LiveConnection>[0]> = {}) {
  const sockets: FakeSocket[] = [];
  const statuses: ConnectionStatus[] = [];
  const messages: ServerMessage[] = [];
  const protocolErrors: string[] = [];
  let resyncs = 0;
  const connection = new LiveConnection({
    url: "ws://127.0.0.1:8080/ws?token=t",
    subscription: { services: [], metrics: ["http.server.requests"] },
    onMessage: (m) => messages.push(m),
    onStatus: (s) => statuses.push(s),
    onProtocolError: (raw) => protocolErrors.push(raw),
    onResync: () => {
      resyncs += 1;
    },
    createSocket: (url) => {
      const socket = new FakeSocket(url);
      sockets.push(socket);
      return socket;
    },
    random: () => 0.5,
    ...overrides,
  });
  const latest = () => {
    const socket = sockets.at(-1);
    if (socket === undefined) throw new Error("no socket created");
    return socket;
  };
  return { connection, sockets, statuses, messages, protocolErrors, latest, resyncs: () => resyncs };
}

const update = (seq: number) => ({ type: "metrics_update", seq, updates: [] });

const liveUpdate = (series: string, count: number) => ({
  series_id: series,
  service: "api",
  metric: "http.server.requests",
  attributes: {},
  kind: "counter",
  unit: "1",
  resolution: "1m",
  start: 1_764_000_000,
  count,
  sum: count,
  rate: 0,
});

const part = (type: string, seq: number, partNo: number, parts: number, series: string[]) => ({
  type,
  seq,
  part: partNo,
  parts,
  updates: series.map((s) => liveUpdate(s, seq)),
});

const seriesOf = (m: ServerMessage) => ("updates" in m ? m.updates.map((u) => u.series_id) : []);

describe("LiveConnection", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("subscribes when the socket opens and reads live after the server's hello", () => {
    const t = setup();
    t.connection.start();
    expect(t.statuses.at(-1)?.state).toBe("connecting");
    expect(t.latest().url).toBe("ws://127.0.0.1:8080/ws?token=t");
    t.latest().open();
    expect(t.latest().sent).toEqual([{ type: "subscribe", services: [], metrics: ["http.server.requests"] }]);
    t.latest().receive({ type: "hello", connection_id: "c", seq: 10 });
    expect(t.statuses.at(-1)?.state).toBe("live");
    expect(t.messages.map((m) => m.type)).toEqual(["hello"]);
  });

  it("reconnects after a drop and resumes from the last update it saw", () => {
    const t = setup();
    t.connection.start();
    t.latest().open();
    t.latest().receive({ type: "hello", connection_id: "c", seq: 10 });
    t.latest().receive(update(41));
    t.latest().receive(update(42));
    t.latest().drop();
    const status = t.statuses.at(-1);
    expect(status?.state).toBe("reconnecting");
    expect(t.sockets).toHaveLength(1);
    vi.advanceTimersByTime(status?.retryInMs ?? 0);
    expect(t.sockets).toHaveLength(2);
    t.latest().open();
    expect(t.latest().sent).toEqual([
      { type: "subscribe", services: [], metrics: ["http.server.requests"], last_seq: 42 },
    ]);
    // The new connection's hello must not move the resume point past what was missed.
    t.latest().receive({ type: "hello", connection_id: "d", seq: 60 });
    expect(t.connection.lastSeq).toBe(42);
    expect(t.statuses.at(-1)?.state).toBe("live");
    expect(t.resyncs()).toBe(1);
  });

  it("resumes from the first hello when no update arrived before the drop", () => {
    const t = setup();
    t.connection.start();
    t.latest().open();
    t.latest().receive({ type: "hello", connection_id: "c", seq: 7 });
    t.latest().drop();
    vi.runOnlyPendingTimers();
    t.latest().open();
    expect(t.latest().sent[0]).toMatchObject({ type: "subscribe", last_seq: 7 });
  });

  it("forgets its position when the server restarted (its sequence went backwards)", () => {
    const t = setup();
    t.connection.start();
    t.latest().open();
    t.latest().receive(update(500));
    t.latest().drop();
    vi.runOnlyPendingTimers();
    t.latest().open();
    t.latest().receive({ type: "hello", connection_id: "new", seq: 3 });
    expect(t.connection.lastSeq).toBe(3);
  });

  it("waits longer after each failure, never more than about 10 s", () => {
    const t = setup({ random: () => 0.999 });
    t.connection.start();
    const delays: number[] = [];
    for (let i = 0; i < 8; i += 1) {
      t.latest().drop();
      const delay = t.statuses.at(-1)?.retryInMs ?? -1;
      delays.push(delay);
      vi.advanceTimersByTime(delay);
    }
    expect(t.sockets).toHaveLength(9);
    for (let i = 1; i < delays.length; i += 1) expect(delays[i]).toBeGreaterThanOrEqual(delays[i - 1] ?? 0);
    expect(Math.max(...delays)).toBeLessThanOrEqual(10_000);
    expect(delays[0]).toBeLessThan(1000);
  });

  it("reads offline after repeated failures or when the browser is offline, and keeps retrying", () => {
    const t = setup({ offlineAfterFailures: 3 });
    t.connection.start();
    const states: string[] = [];
    for (let i = 0; i < 4; i += 1) {
      t.latest().drop();
      states.push(t.statuses.at(-1)?.state ?? "");
      vi.runOnlyPendingTimers();
    }
    expect(states).toEqual(["reconnecting", "reconnecting", "offline", "offline"]);
    expect(t.sockets).toHaveLength(5);
    // The network is up: only the server is down, and the status says so.
    expect(t.statuses.at(-1)?.cause).toBe("server");

    const u = setup({ isOnline: () => false });
    u.connection.start();
    u.latest().drop();
    expect(u.statuses.at(-1)?.state).toBe("offline");
    expect(u.statuses.at(-1)?.cause).toBe("network");
  });

  it("a successful reconnect resets the backoff", () => {
    const t = setup({ random: () => 0 });
    t.connection.start();
    for (let i = 0; i < 4; i += 1) {
      t.latest().drop();
      vi.runOnlyPendingTimers();
    }
    t.latest().open();
    t.latest().receive({ type: "hello", connection_id: "c", seq: 1 });
    t.latest().drop();
    expect(t.statuses.at(-1)?.retryInMs).toBe(250);
  });

  it("pings every 30 s and reconnects when no pong comes back", () => {
    const t = setup();
    t.connection.start();
    const first = t.latest();
    first.open();
    first.receive({ type: "hello", connection_id: "c", seq: 1 });
    vi.advanceTimersByTime(30_000);
    expect(first.sent.at(-1)).toEqual({ type: "ping" });
    first.receive({ type: "pong" });
    vi.advanceTimersByTime(15_000);
    expect(t.sockets).toHaveLength(1);
    vi.advanceTimersByTime(15_000);
    expect(first.sent.filter((m) => (m as { type: string }).type === "ping")).toHaveLength(2);
    vi.advanceTimersByTime(10_000);
    expect(first.closed).toBe(true);
    expect(t.statuses.at(-1)?.state).toBe("reconnecting");
    vi.runOnlyPendingTimers();
    expect(t.sockets).toHaveLength(2);
  });

  it("drops malformed frames without passing them on", () => {
    const t = setup();
    t.connection.start();
    t.latest().open();
    t.latest().receive("{oops");
    t.latest().receive({ type: "metrics_update" });
    expect(t.messages).toEqual([]);
    expect(t.protocolErrors).toHaveLength(2);
    expect(t.connection.lastSeq).toBeNull();
  });

  it("re-subscribes at once when the subscription changes", () => {
    const t = setup();
    t.connection.start();
    t.latest().open();
    t.connection.setSubscription({ services: ["api"], metrics: [] });
    expect(t.latest().sent.at(-1)).toEqual({ type: "subscribe", services: ["api"], metrics: [] });
  });

  it("stays closed after stop()", () => {
    const t = setup();
    t.connection.start();
    t.latest().open();
    t.connection.stop();
    expect(t.latest().closed).toBe(true);
    vi.advanceTimersByTime(120_000);
    expect(t.sockets).toHaveLength(1);
  });

  it("applies a split snapshot once, after its last part, and holds updates that arrive meanwhile", () => {
    const t = setup();
    t.connection.start();
    t.latest().open();
    t.latest().receive({ type: "hello", connection_id: "c", seq: 40 });
    t.latest().receive(part("snapshot", 42, 1, 3, ["a", "b"]));
    t.latest().receive(part("snapshot", 42, 2, 3, ["c"]));
    // Updates sent meanwhile: one the snapshot already covers, one newer.
    t.latest().receive(part("metrics_update", 42, 1, 1, ["a"]));
    t.latest().receive(part("metrics_update", 43, 1, 1, ["d"]));
    expect(t.messages.map((m) => m.type)).toEqual(["hello"]);
    expect(t.connection.inSync).toBe(false);
    expect(t.connection.lastSeq).toBe(40);

    t.latest().receive(part("snapshot", 42, 3, 3, ["e"]));
    expect(t.connection.inSync).toBe(true);
    expect(t.messages.map((m) => m.type)).toEqual(["hello", "snapshot", "metrics_update"]);
    expect(t.messages[1]).toMatchObject({ type: "snapshot", seq: 42 });
    expect(t.messages[1]).not.toHaveProperty("part");
    expect(seriesOf(t.messages[1] as ServerMessage)).toEqual(["a", "b", "c", "e"]);
    expect(seriesOf(t.messages[2] as ServerMessage)).toEqual(["d"]);
    expect(t.connection.lastSeq).toBe(43);
  });

  it("applies a split update part by part and counts its seq only after the last part", () => {
    const t = setup();
    t.connection.start();
    t.latest().open();
    t.latest().receive(update(10));
    t.latest().receive(part("metrics_update", 11, 1, 2, ["a"]));
    expect(t.messages).toHaveLength(2);
    expect(t.connection.lastSeq).toBe(10);
    t.latest().receive(part("metrics_update", 11, 2, 2, ["b"]));
    expect(t.messages).toHaveLength(3);
    expect(t.connection.lastSeq).toBe(11);
  });

  it("after being closed for falling behind (1013) reconnects and asks for a fresh snapshot", () => {
    const t = setup();
    t.connection.start();
    t.latest().open();
    t.latest().receive({ type: "hello", connection_id: "c", seq: 10 });
    t.latest().receive(update(41));
    t.latest().drop(1013);
    expect(t.statuses.at(-1)?.state).toBe("reconnecting");
    vi.runOnlyPendingTimers();
    t.latest().open();
    expect(t.latest().sent).toEqual([{ type: "subscribe", services: [], metrics: ["http.server.requests"] }]);
    t.latest().receive({ type: "hello", connection_id: "d", seq: 60 });
    t.latest().receive(part("snapshot", 60, 1, 2, ["a"]));
    t.latest().receive(part("snapshot", 60, 2, 2, ["b"]));
    expect(t.messages.at(-1)).toMatchObject({ type: "snapshot", seq: 60 });
    expect(t.connection.lastSeq).toBe(60);
    expect(t.resyncs()).toBe(1);
  });

  it("reconnects for a fresh snapshot when a snapshot part is missing", () => {
    const t = setup();
    t.connection.start();
    t.latest().open();
    t.latest().receive({ type: "hello", connection_id: "c", seq: 5 });
    t.latest().receive(part("snapshot", 6, 1, 3, ["a"]));
    t.latest().receive(part("snapshot", 6, 3, 3, ["c"]));
    expect(t.messages.map((m) => m.type)).toEqual(["hello"]);
    expect(t.protocolErrors).toHaveLength(1);
    expect(t.sockets[0]?.closed).toBe(true);
    vi.runOnlyPendingTimers();
    t.latest().open();
    expect(t.latest().sent[0]).not.toHaveProperty("last_seq");
  });

  it("retryNow skips the remaining wait", () => {
    const t = setup();
    t.connection.start();
    t.latest().drop();
    expect(t.sockets).toHaveLength(1);
    t.connection.retryNow();
    expect(t.sockets).toHaveLength(2);
  });
});
