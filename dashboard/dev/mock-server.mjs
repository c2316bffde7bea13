#!/usr/bin/env node
// A stand-in for `flowscope local`'s HTTP side, speaking the same contract (query API, service
// graph, traces, alerts, WebSocket, config.json) with synthetic data, so the dashboard can be
// developed and tested without the Rust server. Serves dashboard/dist at `/`.
//
//   node dev/mock-server.mjs [--port 8090] [--token secret] [--quiet-s 30] [--no-history]
//                            [--nodes 100] [--update-hz 10] [--traces-per-s 8]
//
// --quiet-s N sends no data for the first N seconds and --no-history skips the 30 min of prefilled
// history, to see the dashboard's empty states. --nodes N replaces the five services (auth, api,
// database, cache, queue) with a generated layered graph of N nodes; --update-hz sets how often
// live updates are pushed (the benchmark uses 100 nodes at 10 updates/s).
//
// Extras for trying failure handling by hand (and for the browser tests):
//   POST /__mock/drop                       closes every WebSocket (the dashboard should reconnect)
//   POST /__mock/forget                     forgets the replay buffer (next resume gets a snapshot)
//   POST /__mock/spike?service=api&seconds=60   errors and latency jump; an alert fires
// Profiles (dev/mock-profiles.mjs): /api/profiles/* and POST /ingest (folded stacks).

import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { createServer } from "node:http";
import { extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { WebSocketServer } from "ws";
import { ingestRoute, profilesApi } from "./mock-profiles.mjs";

const args = new Map();
for (let i = 2; i < process.argv.length; i += 1) {
  if (process.argv[i + 1]?.startsWith("--") === false) args.set(process.argv[i], process.argv[++i]);
}
const PORT = Number(args.get("--port") ?? process.env.MOCK_PORT ?? 8090);
const TOKEN = args.get("--token") ?? process.env.MOCK_TOKEN ?? "mock-token";
const DIST = resolve(fileURLToPath(new URL("../dist", import.meta.url)));
const BUCKET = 60;
const KEEP_SECONDS = 2 * 3600;
const PREFILL_SECONDS = 30 * 60;
const REPLAY_MESSAGES = 600;
const QUIET_UNTIL = Date.now() + Number(args.get("--quiet-s") ?? 0) * 1000;
const PREFILL = !process.argv.includes("--no-history");
const NODE_COUNT = Number(args.get("--nodes") ?? 0);
const UPDATE_HZ = Math.max(0.2, Number(args.get("--update-hz") ?? 1));
const TRACES_PER_SECOND = Number(args.get("--traces-per-s") ?? 8);
/** Latency samples kept per histogram bucket (a reservoir): enough for quantiles, cheap at 10 Hz. */
const RESERVOIR = 400;

// ---- deterministic randomness ----------------------------------------------------------------

let seed = 42;
function random() {
  // mulberry32: the same topology every run.
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

function gaussian() {
  return Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
}

function clamp(v, lo, hi) {
  return Math.min(hi, Math.max(lo, v));
}

// ---- topology ---------------------------------------------------------------------------------

/** name → { rps, latencyMs, errorRatio, cpu, memory, virtual, kind } */
const SERVICES = new Map();
/** { source, target, kind: "call" | "messaging", share } — share: calls per request of the source. */
const EDGES = [];

function defineFiveServices() {
  const base = {
    auth: { rps: 40, latencyMs: 18, errorRatio: 0.01, cpu: 22, memory: 41 },
    api: { rps: 120, latencyMs: 35, errorRatio: 0.008, cpu: 48, memory: 63 },
    database: { rps: 90, latencyMs: 8, errorRatio: 0.002, cpu: 61, memory: 78 },
    cache: { rps: 300, latencyMs: 1.5, errorRatio: 0.0005, cpu: 15, memory: 55 },
    queue: { rps: 25, latencyMs: 6, errorRatio: 0.004, cpu: 30, memory: 36 },
  };
  for (const [name, p] of Object.entries(base)) SERVICES.set(name, { ...p, virtual: false, kind: "service" });
  SERVICES.set("postgresql", { rps: 0, latencyMs: 4, errorRatio: 0.001, virtual: true, kind: "database" });
  EDGES.push(
    { source: "api", target: "auth", kind: "call", share: 1 },
    { source: "api", target: "cache", kind: "call", share: 1 },
    { source: "api", target: "database", kind: "call", share: 0.6 },
    { source: "cache", target: "database", kind: "call", share: 0.3 },
    { source: "api", target: "queue", kind: "messaging", share: 0.4 },
    { source: "database", target: "postgresql", kind: "call", share: 1 },
  );
}

/** A layered graph of `n` nodes: a few gateways calling down through 5 layers, some virtual sinks. */
function defineGeneratedServices(n) {
  const layers = [Math.max(1, Math.round(n * 0.04))];
  const rest = n - layers[0];
  const weights = [0.16, 0.24, 0.26, 0.2, 0.14];
  weights.forEach((w, i) => layers.push(i === weights.length - 1 ? 0 : Math.max(1, Math.round(rest * w))));
  layers[layers.length - 1] = Math.max(1, n - layers.slice(0, -1).reduce((a, b) => a + b, 0));
  const names = [];
  let index = 0;
  layers.forEach((size, layer) => {
    const row = [];
    for (let i = 0; i < size; i += 1) {
      const last = layer === layers.length - 1;
      const virtual = last && i % 3 === 0;
      const name = virtual ? `db-${String(index).padStart(3, "0")}` : `svc-${String(index).padStart(3, "0")}`;
      SERVICES.set(name, {
        rps: layer === 0 ? 50 + random() * 150 : 0,
        latencyMs: 2 + random() * 60,
        errorRatio: random() * 0.01,
        cpu: 10 + random() * 60,
        memory: 20 + random() * 60,
        virtual,
        kind: virtual ? "database" : "service",
      });
      row.push(name);
      index += 1;
    }
    names.push(row);
  });
  for (let layer = 0; layer + 1 < names.length; layer += 1) {
    const next = names[layer + 1];
    for (const source of names[layer]) {
      const fanOut = 1 + Math.floor(random() * 2.2);
      for (let k = 0; k < fanOut; k += 1) {
        const target = next[Math.floor(random() * next.length)];
        if (!EDGES.some((e) => e.source === source && e.target === target)) {
          EDGES.push({ source, target, kind: random() < 0.1 ? "messaging" : "call", share: 0.3 + random() * 0.7 });
        }
      }
    }
    // Every node of the next layer is called by someone.
    for (const target of next) {
      if (!EDGES.some((e) => e.target === target)) {
        const source = names[layer][Math.floor(random() * names[layer].length)];
        EDGES.push({ source, target, kind: "call", share: 0.5 });
      }
    }
  }
}

if (NODE_COUNT > 0) defineGeneratedServices(NODE_COUNT);
else defineFiveServices();

/** Derived request rates: callers' traffic flows down the edges. */
function propagateRates() {
  const incoming = new Map([...SERVICES.keys()].map((n) => [n, 0]));
  const order = topologicalOrder();
  for (const name of order) {
    const s = SERVICES.get(name);
    const own = NODE_COUNT > 0 ? s.rps : s.baseRps ?? s.rps;
    s.baseRps = own;
    const total = own + incoming.get(name);
    s.effectiveRps = NODE_COUNT > 0 || s.virtual ? total : Math.max(own, total);
    for (const e of EDGES) if (e.source === name) incoming.set(e.target, incoming.get(e.target) + s.effectiveRps * e.share);
  }
}

function topologicalOrder() {
  const indegree = new Map([...SERVICES.keys()].map((n) => [n, 0]));
  for (const e of EDGES) indegree.set(e.target, indegree.get(e.target) + 1);
  const queue = [...indegree].filter(([, d]) => d === 0).map(([n]) => n);
  const order = [];
  while (queue.length > 0) {
    const n = queue.shift();
    order.push(n);
    for (const e of EDGES) {
      if (e.source !== n) continue;
      indegree.set(e.target, indegree.get(e.target) - 1);
      if (indegree.get(e.target) === 0) queue.push(e.target);
    }
  }
  return order;
}

propagateRates();

/** Spikes injected through /__mock/spike: service → until (ms). */
const spikes = new Map();

function conditions(name, time) {
  const s = SERVICES.get(name);
  const spiking = (spikes.get(name) ?? 0) > time * 1000;
  const wave = 1 + 0.3 * Math.sin(time / 300 + name.length);
  return {
    rps: s.effectiveRps * wave,
    latencyMs: s.latencyMs * (spiking ? 6 : 1),
    errorRatio: spiking ? 0.35 : s.errorRatio,
    cpu: clamp((s.cpu ?? 0) * wave + (spiking ? 30 : 0), 0, 100),
    memory: s.memory ?? 0,
  };
}

// ---- metric series ----------------------------------------------------------------------------

const METRIC_DEFS = {
  "http.server.request.duration": { kind: "histogram", unit: "ms" },
  "http.server.requests": { kind: "counter", unit: "{request}" },
  "http.server.errors": { kind: "counter", unit: "{error}" },
  "process.cpu.utilization": { kind: "gauge", unit: "%" },
  "process.memory.utilization": { kind: "gauge", unit: "%" },
  "red.requests": { kind: "counter", unit: "{request}" },
  "red.errors": { kind: "counter", unit: "{error}" },
  "red.duration": { kind: "histogram", unit: "ms" },
};

/** seriesId → { service, metric, attributes, kind, unit, lastSeen, buckets: Map<start, acc> } */
const series = new Map();

function seriesId(service, metric, attributes) {
  const key = JSON.stringify([service, metric, Object.entries(attributes).sort()]);
  return createHash("sha256").update(key).digest("hex").slice(0, 16);
}

function seriesFor(service, metric, attributes = {}) {
  const id = seriesId(service, metric, attributes);
  let s = series.get(id);
  if (s === undefined) {
    s = { id, service, metric, attributes, ...METRIC_DEFS[metric], lastSeen: 0, buckets: new Map() };
    series.set(id, s);
  }
  return s;
}

function record(s, time, value, weight = 1) {
  const start = Math.floor(time / BUCKET) * BUCKET;
  let acc = s.buckets.get(start);
  if (acc === undefined) {
    acc = { count: 0, sum: 0, min: null, max: null, samples: [], seen: 0, sorted: null };
    s.buckets.set(start, acc);
  }
  acc.count += weight;
  acc.sum += s.kind === "counter" ? value : value * weight;
  acc.min = acc.min === null ? value : Math.min(acc.min, value);
  acc.max = acc.max === null ? value : Math.max(acc.max, value);
  if (s.kind === "histogram") {
    // Reservoir sampling keeps quantiles representative without keeping every value.
    acc.seen += 1;
    if (acc.samples.length < RESERVOIR) acc.samples.push(value);
    else {
      const j = Math.floor(Math.random() * acc.seen);
      if (j < RESERVOIR) acc.samples[j] = value;
    }
    acc.sorted = null;
  }
  s.lastSeen = Math.max(s.lastSeen, Math.floor(time));
  return `${s.id}@${start}`;
}

/** Traffic of `dt` seconds for every service; returns the touched "seriesId@start" keys. */
function tick(time, dt, touched = new Set()) {
  for (const name of SERVICES.keys()) {
    const s = SERVICES.get(name);
    const c = conditions(name, time);
    const requests = Math.max(0, Math.round(c.rps * dt * (1 + 0.1 * gaussian())));
    const errors = Math.min(requests, Math.round(requests * c.errorRatio * (0.5 + Math.random())));
    const latencies = [];
    for (let i = 0; i < Math.min(requests, 40); i += 1) latencies.push(c.latencyMs * Math.exp(0.6 * gaussian()));
    // Virtual nodes (databases) do not report metrics, only spans mention them.
    if (!s.virtual) {
      const ok = requests - errors;
      const classes = { "2xx": ok, "4xx": Math.floor(errors / 2), "5xx": errors - Math.floor(errors / 2) };
      for (const [statusClass, n] of Object.entries(classes)) {
        touched.add(record(seriesFor(name, "http.server.requests", { "http.response.status_class": statusClass }), time, n));
      }
      touched.add(record(seriesFor(name, "http.server.errors"), time, errors));
      const h = seriesFor(name, "http.server.request.duration");
      const weight = latencies.length > 0 ? requests / latencies.length : 0;
      for (const latency of latencies) touched.add(record(h, time, latency, weight));
      touched.add(record(seriesFor(name, "process.cpu.utilization"), time, clamp(c.cpu + 5 * gaussian(), 0, 100)));
      touched.add(record(seriesFor(name, "process.memory.utilization"), time, clamp(c.memory + 2 * gaussian(), 0, 100)));
    }
    if (!s.virtual) {
      // RED metrics from spans: a service's own server spans (virtual nodes have none).
      touched.add(record(seriesFor(name, "red.requests"), time, requests));
      touched.add(record(seriesFor(name, "red.errors"), time, errors));
      const red = seriesFor(name, "red.duration");
      const weight = latencies.length > 0 ? requests / latencies.length : 0;
      for (const latency of latencies) touched.add(record(red, time, latency, weight));
    }
    // Per-second totals for the graph: nodes and edges.
    addTraffic(name, null, time, requests, errors, latencies);
  }
  for (const e of EDGES) {
    const c = conditions(e.target, time);
    const source = conditions(e.source, time);
    const calls = Math.max(0, Math.round(source.rps * e.share * dt));
    const errors = Math.min(calls, Math.round(calls * c.errorRatio * (0.5 + Math.random())));
    const latencies = [];
    for (let i = 0; i < Math.min(calls, 10); i += 1) latencies.push(c.latencyMs * 1.1 * Math.exp(0.6 * gaussian()));
    addTraffic(e.source, e.target, time, calls, errors, latencies);
  }
  return touched;
}

function prune(time) {
  for (const s of series.values()) {
    for (const start of s.buckets.keys()) if (start < time - KEEP_SECONDS) s.buckets.delete(start);
  }
  for (const [key, seconds] of traffic) {
    for (const second of seconds.keys()) if (second < time - 900) seconds.delete(second);
    if (seconds.size === 0) traffic.delete(key);
  }
}

function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function view(kind, start, acc) {
  const histogram = kind === "histogram";
  if (histogram && acc.sorted === null) acc.sorted = [...acc.samples].sort((a, b) => a - b);
  const sorted = acc.sorted ?? [];
  return {
    start,
    // The server's counts are whole numbers (u64); weighted samples are rounded like it.
    count: Math.round(acc.count),
    sum: acc.sum,
    min: acc.min,
    max: acc.max,
    avg: acc.count > 0 ? acc.sum / acc.count : null,
    p50: histogram ? quantile(sorted, 0.5) : null,
    p95: histogram ? quantile(sorted, 0.95) : null,
    p99: histogram ? quantile(sorted, 0.99) : null,
    rate: (kind === "counter" ? acc.sum : acc.count) / BUCKET,
  };
}

function mergeAccs(accs) {
  const out = { count: 0, sum: 0, min: null, max: null, samples: [], seen: 0, sorted: null };
  for (const a of accs) {
    out.count += a.count;
    out.sum += a.sum;
    if (a.min !== null) out.min = out.min === null ? a.min : Math.min(out.min, a.min);
    if (a.max !== null) out.max = out.max === null ? a.max : Math.max(out.max, a.max);
    out.samples.push(...a.samples);
  }
  return out;
}

function liveUpdate(s, start) {
  const acc = s.buckets.get(start);
  if (acc === undefined) return null;
  return {
    series_id: s.id,
    service: s.service,
    metric: s.metric,
    attributes: s.attributes,
    kind: s.kind,
    unit: s.unit,
    resolution: "1m",
    ...view(s.kind, start, acc),
  };
}

// ---- graph traffic ------------------------------------------------------------------------------

/** "source→target" (or "node") → second → { count, errors, samples } */
const traffic = new Map();

function addTraffic(source, target, time, count, errors, latencies) {
  const key = target === null ? source : `${source}\u0000${target}`;
  let seconds = traffic.get(key);
  if (seconds === undefined) {
    seconds = new Map();
    traffic.set(key, seconds);
  }
  const second = Math.floor(time);
  const entry = seconds.get(second) ?? { count: 0, errors: 0, samples: [] };
  entry.count += count;
  entry.errors += errors;
  if (entry.samples.length < 50) entry.samples.push(...latencies.slice(0, 50 - entry.samples.length));
  seconds.set(second, entry);
}

function summary(key, from, to) {
  let count = 0;
  let errors = 0;
  const samples = [];
  for (const [second, entry] of traffic.get(key) ?? []) {
    if (second < from || second >= to) continue;
    count += entry.count;
    errors += entry.errors;
    samples.push(...entry.samples);
  }
  samples.sort((a, b) => a - b);
  return {
    count,
    errors,
    rate: count / Math.max(1, to - from),
    error_rate: count > 0 ? errors / count : null,
    p50_ms: quantile(samples, 0.5),
    p95_ms: quantile(samples, 0.95),
    p99_ms: quantile(samples, 0.99),
  };
}

function graph(from, to) {
  const nodes = [...SERVICES].map(([name, s]) => ({
    id: name,
    name,
    kind: s.kind,
    virtual: s.virtual,
    ...summary(name, from, to),
  }));
  const edges = EDGES.map((e) => ({
    source: e.source,
    target: e.target,
    kind: e.kind === "messaging" ? "messaging" : "call",
    ...summary(`${e.source}\u0000${e.target}`, from, to),
  }));
  return { from, to, resolution: "1m", nodes, edges };
}

// ---- traces ---------------------------------------------------------------------------------------

/** traceId → trace detail; bounded. */
const traces = new Map();
/** service → trace ids, newest last; bounded. */
const tracesByService = new Map();

function hex(bytes) {
  let out = "";
  for (let i = 0; i < bytes; i += 1) out += Math.floor(Math.random() * 256).toString(16).padStart(2, "0");
  return out;
}

const ROOTS = () => [...SERVICES.keys()].filter((n) => !EDGES.some((e) => e.target === n));

/** A trace from a root down the edges: spans (server + client per call) and hops for the live event. */
function makeTrace(nowMs) {
  const roots = ROOTS();
  const root = roots[Math.floor(Math.random() * roots.length)];
  const traceId = hex(16);
  const spans = [];
  const hops = [];
  const startMs = nowMs;
  const visit = (service, parentId, at, budget, depth) => {
    const c = conditions(service, startMs / 1000);
    const spanId = hex(8);
    const own = Math.max(0.2, c.latencyMs * Math.exp(0.4 * gaussian()) * 0.5);
    let cursor = at + own * 0.2;
    const children = depth > 5 ? [] : EDGES.filter((e) => e.source === service && Math.random() < Math.min(1, e.share));
    for (const edge of children) {
      const offset = cursor - startMs;
      const childEnd = visit(edge.target, spanId, cursor + 0.3, budget, depth + 1);
      const failed = Math.random() < conditions(edge.target, startMs / 1000).errorRatio;
      hops.push({
        from: service,
        to: edge.target,
        kind: edge.kind,
        to_kind: SERVICES.get(edge.target)?.kind ?? "service",
        offset_ms: offset,
        duration_ms: childEnd - cursor,
        error: failed,
      });
      // Messaging is asynchronous: the producer does not wait for the consumer.
      if (edge.kind !== "messaging") cursor = childEnd + 0.2;
    }
    const end = Math.max(cursor, at + own);
    spans.push({
      span_id: spanId,
      parent_span_id: parentId,
      service,
      name: depth === 0 ? "GET /orders/{id}" : `${service} handle`,
      kind: depth === 0 ? "server" : SERVICES.get(service)?.virtual ? "client" : "server",
      startMs: at,
      endMs: end,
      status: Math.random() < c.errorRatio ? "error" : "ok",
      attributes: {},
    });
    return end;
  };
  const end = visit(root, null, startMs, 0, 0);
  const detail = traceView(traceId, root, "GET /orders/{id}", startMs, end - startMs, spans);
  traces.set(traceId, detail);
  if (traces.size > 2000) traces.delete(traces.keys().next().value);
  for (const service of new Set(spans.map((s) => s.service))) {
    const list = tracesByService.get(service) ?? [];
    list.push(traceId);
    if (list.length > 50) list.shift();
    tracesByService.set(service, list);
  }
  const error = detail.error || hops.some((h) => h.error);
  // As `shared/src/traces/wire.rs` sends it.
  return { trace_id: traceId, root_service: root, root_name: detail.root_name, start_unix_ms: startMs, duration_ms: end - startMs, error, reason: "quota", hops };
}

/** Unix ms → unix ns as decimal text, as the server sends them. */
function nanos(ms) {
  return String(BigInt(Math.round(ms * 1e3)) * 1000n);
}

/**
 * The span ids on the critical path: from the root, the child that ends last, then the child that
 * ended last before that one started, and so on (the server's definition, Jaeger's).
 */
function criticalIds(spans) {
  const children = new Map();
  let root = null;
  for (const span of spans) {
    if (span.parent === null) root = span;
    else children.set(span.parent, [...(children.get(span.parent) ?? []), span]);
  }
  const marked = new Set();
  const stack = root === null ? [] : [[root, Number.POSITIVE_INFINITY]];
  while (stack.length > 0) {
    const [span, until] = stack.pop();
    marked.add(span.id);
    let cursor = Math.min(span.end, until);
    for (const kid of [...(children.get(span.id) ?? [])].sort((a, b) => b.end - a.end)) {
      if (kid.start >= cursor) continue;
      stack.push([kid, cursor]);
      cursor = kid.start;
    }
  }
  return marked;
}

/** `GET /api/traces/{id}` as the server answers it (shared/src/traces/trace_view.rs). */
function traceView(traceId, rootService, rootName, startMs, durationMs, raw) {
  const byId = new Map(raw.map((s) => [s.span_id, s]));
  const depth = (s) => (s.parent_span_id === null || !byId.has(s.parent_span_id) ? 0 : 1 + depth(byId.get(s.parent_span_id)));
  const critical = criticalIds(raw.map((s) => ({ id: s.span_id, parent: s.parent_span_id, start: s.startMs, end: s.endMs })));
  const spans = raw.map(({ startMs: start, endMs: end, ...s }) => ({
    ...s,
    depth: depth(s),
    error: s.status === "error",
    start_unix_nano: nanos(start),
    end_unix_nano: nanos(end),
    duration_ms: end - start,
    critical: critical.has(s.span_id),
    critical_ms: critical.has(s.span_id) ? end - start : 0,
  }));
  return {
    trace_id: traceId,
    root_service: rootService,
    root_name: rootName,
    start_unix_nano: nanos(startMs),
    duration_ms: durationMs,
    span_count: spans.length,
    error: spans.some((s) => s.error),
    services: [...new Set(spans.map((s) => s.service))],
    critical_path: spans.filter((s) => s.critical).map((s) => s.span_id),
    critical_sections: [],
    spans,
  };
}

function traceSummary(id) {
  const t = traces.get(id);
  if (t === undefined) return null;
  const { critical_path: _path, critical_sections: _sections, spans: _spans, ...summary } = t;
  return summary;
}

// ---- alerts -----------------------------------------------------------------------------------------

const RULES = [
  {
    name: "high-error-rate",
    description: "More than 5 % of requests fail",
    type: { kind: "threshold" },
    service: null,
    signal: { ratio: { numerator: { metric: "http.server.errors", attributes: {} }, denominator: { metric: "http.server.requests", attributes: {} } } },
    aggregation: "rate",
    scale: 100,
    unit: "%",
    window: "1m",
    condition: "above",
    warning: 2,
    critical: 5,
    for: "0s",
    keep_firing_for: "10s",
    hysteresis: 0,
    group_by: [],
    no_data: null,
  },
];

/** fingerprint → state (as `GET /api/alerts` lists it) */
const alertStates = new Map();
const alertHistory = [];
const silences = new Map();

function fingerprint(rule, service) {
  return createHash("sha256").update(`${rule}|${service}`).digest("hex").slice(0, 16);
}

function silencedFor(state, now) {
  return [...silences.values()].some(
    (s) =>
      s.starts_at <= now &&
      now < s.ends_at &&
      s.matchers.every((m) => {
        const actual = m.name === "alertname" ? state.rule : m.name === "severity" ? state.severity : state.labels[m.name];
        return m.op === "!=" ? actual !== m.value : actual === m.value;
      }),
  );
}

function transition(state, kind, previousStatus, previousSeverity, now, by) {
  const t = {
    fingerprint: state.fingerprint,
    rule: state.rule,
    labels: state.labels,
    kind,
    status: state.status,
    previous_status: previousStatus,
    severity: state.severity,
    previous_severity: previousSeverity,
    value: state.value,
    reason: "threshold",
    at: now,
    summary: `error rate of ${state.labels.service} is ${state.value.toFixed(1)} % (${state.severity} above ${state.severity === "critical" ? 5 : 2})`,
    ...(by ? { by } : {}),
  };
  alertHistory.push(t);
  if (alertHistory.length > 500) alertHistory.shift();
  broadcastAll({ type: "alert", service: state.labels.service, ...t });
}

/** Error rate over the last minute per service → alert states (no `for`, 10 s keep-firing). */
function evaluateAlerts(time) {
  const now = Math.floor(time);
  for (const [name, s] of SERVICES) {
    if (s.virtual) continue;
    const { count, errors } = summary(name, now - 60, now);
    if (count < 10) continue;
    const percent = (100 * errors) / count;
    const level = percent > 5 ? "critical" : percent > 2 ? "warning" : null;
    const fp = fingerprint("high-error-rate", name);
    let state = alertStates.get(fp);
    if (level !== null) {
      if (state === undefined || state.status !== "firing") {
        state = {
          fingerprint: fp,
          rule: "high-error-rate",
          description: RULES[0].description,
          labels: { service: name },
          status: "firing",
          severity: level,
          value: percent,
          unit: "%",
          threshold: level === "critical" ? 5 : 2,
          summary: "",
          reason: "threshold",
          since: now,
          firing_since: now,
          acknowledged: null,
          silenced: false,
          lowered_since: null,
        };
        alertStates.set(fp, state);
        transition(state, "firing", "inactive", null, now);
      } else {
        const previous = state.severity;
        state.value = percent;
        state.lowered_since = null;
        if (level === "critical" && previous === "warning") {
          state.severity = level;
          state.threshold = 5;
          transition(state, "escalated", "firing", previous, now);
        }
      }
    } else if (state?.status === "firing") {
      state.value = percent;
      state.lowered_since ??= now;
      if (now - state.lowered_since >= 10) {
        state.status = "resolved";
        state.since = now;
        transition(state, "resolved", "firing", state.severity, now);
        alertStates.delete(fp);
      }
    }
  }
}

function activeAlerts(now) {
  return [...alertStates.values()]
    .filter((s) => s.status === "firing" || s.status === "pending")
    .map(({ lowered_since: _, ...s }) => ({ ...s, silenced: silencedFor(s, now) }));
}

// Prefill history so charts have something to show on first load.
if (PREFILL) {
  const now = Date.now() / 1000;
  for (let t = now - PREFILL_SECONDS; t < now; t += 1) tick(t, 1);
}

// ---- query API --------------------------------------------------------------------------------

function range(query) {
  const now = Math.floor(Date.now() / 1000);
  const to = Number(query.get("to") ?? now);
  const from = Number(query.get("from") ?? to - 900);
  const resolution = query.get("resolution") ?? "1m";
  if (!Number.isFinite(from) || !Number.isFinite(to) || from >= to) throw httpError(400, "bad from/to");
  if (!["1m", "5m", "1h"].includes(resolution)) throw httpError(400, "resolution must be 1m, 5m or 1h");
  return { from, to, resolution };
}

function httpError(status, message) {
  return Object.assign(new Error(message), { status });
}

const WIDTH = { "1m": 60, "5m": 300, "1h": 3600 };

function history(list, r) {
  const first = list[0];
  const width = WIDTH[r.resolution];
  const groups = new Map();
  for (const s of list) {
    for (const [start, acc] of s.buckets) {
      if (start < r.from || start >= r.to) continue;
      const coarse = Math.floor(start / width) * width;
      const group = groups.get(coarse) ?? [];
      group.push(acc);
      groups.set(coarse, group);
    }
  }
  const buckets = [...groups.keys()]
    .sort((a, b) => a - b)
    .map((start) => {
      const b = view(first.kind, start, mergeAccs(groups.get(start)));
      return { ...b, rate: (first.kind === "counter" ? b.sum : b.count) / width };
    });
  return { service: first.service, metric: first.metric, kind: first.kind, unit: first.unit, resolution: r.resolution, from: r.from, to: r.to, buckets };
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") return {};
  try {
    return JSON.parse(text);
  } catch {
    throw httpError(400, "invalid JSON body");
  }
}

async function api(method, path, query, req) {
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const now = Math.floor(Date.now() / 1000);
  const route = parts.slice(1).join("/");
  if (method === "GET" && route === "services") {
    const byService = new Map();
    for (const s of series.values()) {
      const entry = byService.get(s.service) ?? { name: s.service, series: 0, last_seen: 0, instances: [], versions: [], sources: [], health: null };
      entry.series += 1;
      entry.last_seen = Math.max(entry.last_seen, s.lastSeen);
      byService.set(s.service, entry);
    }
    return [200, { services: [...byService.values()].sort((a, b) => a.name.localeCompare(b.name)) }];
  }
  if (method === "GET" && parts.length === 4 && parts[1] === "services" && parts[3] === "metrics") {
    const metrics = new Map();
    for (const s of series.values()) {
      if (s.service !== parts[2]) continue;
      const m = metrics.get(s.metric) ?? { name: s.metric, kind: s.kind, unit: s.unit, series: [] };
      m.series.push({ id: s.id, attributes: s.attributes, last_seen: s.lastSeen });
      metrics.set(s.metric, m);
    }
    if (metrics.size === 0) throw httpError(404, `unknown service ${parts[2]}`);
    return [200, { service: parts[2], metrics: [...metrics.values()] }];
  }
  if (method === "GET" && parts.length === 5 && parts[1] === "services" && parts[3] === "metrics") {
    const list = [...series.values()].filter((s) => s.service === parts[2] && s.metric === parts[4]);
    if (list.length === 0) throw httpError(404, `no metric ${parts[4]} for ${parts[2]}`);
    return [200, history(list, range(query))];
  }
  if (method === "GET" && parts.length === 4 && parts[1] === "services" && parts[3] === "traces") {
    const limit = clamp(Number(query.get("limit") ?? 20), 1, 100);
    const ids = (tracesByService.get(parts[2]) ?? []).slice(-limit).reverse();
    return [200, { service: parts[2], traces: ids.map(traceSummary).filter(Boolean) }];
  }
  if (method === "GET" && parts.length === 3 && parts[1] === "series") {
    const s = series.get(parts[2]);
    if (s === undefined) throw httpError(404, `unknown series ${parts[2]}`);
    return [200, { ...history([s], range(query)), series_id: s.id, attributes: s.attributes }];
  }
  if (method === "GET" && route === "graph") {
    const to = Number(query.get("to") ?? now);
    const from = Number(query.get("from") ?? to - 300);
    if (!Number.isFinite(from) || !Number.isFinite(to) || from >= to) throw httpError(400, "bad from/to");
    return [200, graph(from, to)];
  }
  if (method === "GET" && parts.length === 3 && parts[1] === "traces") {
    const trace = traces.get(parts[2]);
    if (trace === undefined) throw httpError(404, `no trace ${parts[2]}`);
    return [200, trace];
  }
  if (method === "GET" && route === "alerts") return [200, { alerts: activeAlerts(now) }];
  if (method === "GET" && route === "alerts/history") return [200, { from: now - 86400, to: now + 1, history: alertHistory.slice(-200) }];
  if (method === "POST" && parts.length === 4 && parts[1] === "alerts" && parts[3] === "ack") {
    const body = await readBody(req);
    if (typeof body.by !== "string" || body.by.trim() === "" || Object.keys(body).some((k) => k !== "by")) {
      throw httpError(400, "body must be {\"by\": \"…\"}");
    }
    const state = alertStates.get(parts[2]);
    if (state === undefined) throw httpError(404, `no alert ${parts[2]}`);
    if (state.status !== "firing") throw httpError(409, "only a firing alert can be acknowledged");
    if (state.acknowledged === null) {
      state.acknowledged = { by: body.by, at: now };
      transition(state, "acknowledged", "firing", state.severity, now, body.by);
    }
    return [200, { alert: state }];
  }
  if (method === "GET" && route === "silences") {
    return [200, { silences: [...silences.values()].filter((s) => s.ends_at > now) }];
  }
  if (method === "POST" && route === "silences") {
    const body = await readBody(req);
    const allowed = ["matchers", "starts_at", "ends_at", "duration", "created_by", "comment"];
    const unknown = Object.keys(body).filter((k) => !allowed.includes(k));
    if (unknown.length > 0) throw httpError(400, `unknown field ${unknown[0]}`);
    if (!Array.isArray(body.matchers) || body.matchers.length === 0) throw httpError(400, "a silence needs at least one matcher");
    if (typeof body.created_by !== "string" || body.created_by.trim() === "") throw httpError(400, "`created_by` must name who creates the silence");
    const starts = body.starts_at ?? now;
    const seconds = typeof body.duration === "string" ? Number(/^(\d+)s?$/.exec(body.duration)?.[1] ?? Number.NaN) : Number.NaN;
    const ends = body.ends_at ?? starts + seconds;
    if (!Number.isFinite(ends) || ends <= now) throw httpError(400, "give `ends_at` or `duration` (e.g. \"3600s\")");
    const silence = { id: hex(8), matchers: body.matchers.map((m) => ({ op: "=", ...m })), starts_at: starts, ends_at: ends, created_by: body.created_by, comment: body.comment ?? "", created_at: now };
    silences.set(silence.id, silence);
    return [201, { silence }];
  }
  if (method === "DELETE" && parts.length === 3 && parts[1] === "silences") {
    if (!silences.delete(parts[2])) throw httpError(404, `no silence ${parts[2]}`);
    return [200, { deleted: parts[2] }];
  }
  if (method === "GET" && route === "alert-rules") {
    const notifications = { group_wait: "30s", retry: { attempts: 5, initial_backoff_ms: 1000, max_backoff_ms: 60000 }, sinks: [] };
    return [200, { version: 0, rules: RULES, settings: { evaluation_delay: "10s", history_retention: "30d" }, notifications }];
  }
  throw httpError(404, `no route for ${method} ${path}`);
}

// ---- HTTP -------------------------------------------------------------------------------------

const CONTENT_TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript",
  ".css": "text/css",
  ".json": "application/json",
  ".map": "application/json",
  ".svg": "image/svg+xml",
};

async function serveStatic(pathname, res) {
  const relative = normalize(decodeURIComponent(pathname)).replace(/^(\.\.[/\\])+/, "");
  let file = join(DIST, relative);
  if (!file.startsWith(DIST)) file = join(DIST, "index.html");
  try {
    if ((await stat(file)).isDirectory()) file = join(file, "index.html");
  } catch {
    file = join(DIST, "index.html");
  }
  try {
    const body = await readFile(file);
    res.writeHead(200, { "content-type": CONTENT_TYPES[extname(file)] ?? "application/octet-stream" });
    res.end(body);
  } catch {
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("dashboard not built: run `npm run build` first\n");
  }
}

/** As the real API: `Authorization: Bearer` or `x-api-key`; null when accepted (or no token set). */
function credentialRefusal(req) {
  if (TOKEN === "") return null;
  const bearer = /^bearer\s+(.+)$/i.exec(req.headers.authorization ?? "")?.[1]?.trim();
  const presented = req.headers["x-api-key"]?.trim() ?? bearer;
  if (!presented) return "missing credential: send `Authorization: Bearer <token>` or `x-api-key: <token>`";
  return presented === TOKEN ? null : "invalid credential";
}

function json(res, status, body) {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(JSON.stringify(body));
}

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? "/", "http://localhost");
  try {
    // Public: endpoints and mode only, like the real config.json; the page asks for the token.
    if (url.pathname === "/config.json") return json(res, 200, { apiBaseUrl: "", mode: "mock", auth: TOKEN === "" ? "none" : "token" });
    if (url.pathname.startsWith("/api/")) {
      const refusal = credentialRefusal(req);
      if (refusal !== null) {
        res.writeHead(401, { "content-type": "application/json", "www-authenticate": 'Bearer realm="flowscope"' });
        return res.end(JSON.stringify({ error: refusal }));
      }
      if (url.pathname.startsWith("/api/profiles/")) return await profilesApi(req, res, url);
      const [status, body] = await api(req.method ?? "GET", url.pathname, url.searchParams, req);
      return json(res, status, body);
    }
    // Profiles pushed like to flowscope local's OTLP port (Pyroscope push API, folded stacks).
    if (url.pathname === "/ingest") return await ingestRoute(req, res, url, broadcastAll);
    if (req.method === "POST" && url.pathname === "/__mock/drop") {
      for (const client of wss.clients) client.terminate();
      return json(res, 200, { dropped: true });
    }
    if (req.method === "POST" && url.pathname === "/__mock/forget") {
      replay.length = 0;
      return json(res, 200, { forgotten: true });
    }
    if (req.method === "POST" && url.pathname === "/__mock/spike") {
      const service = url.searchParams.get("service") ?? [...SERVICES.keys()][0];
      if (!SERVICES.has(service)) throw httpError(404, `no service ${service}`);
      const seconds = clamp(Number(url.searchParams.get("seconds") ?? 60), 1, 3600);
      spikes.set(service, Date.now() + seconds * 1000);
      return json(res, 200, { service, until: spikes.get(service) });
    }
    return await serveStatic(url.pathname, res);
  } catch (error) {
    return json(res, error.status ?? 500, { error: error.message });
  }
});

// ---- WebSocket ---------------------------------------------------------------------------------

let seq = 0;
/** Recent broadcasts, for resuming: { seq, updates }. */
const replay = [];
const wss = new WebSocketServer({ noServer: true });

server.on("upgrade", (req, socket, head) => {
  const url = new URL(req.url ?? "/", "http://localhost");
  if (url.pathname !== "/ws") return socket.destroy();
  if (TOKEN !== "" && url.searchParams.get("token") !== TOKEN) {
    const reason = JSON.stringify({ error: url.searchParams.has("token") ? "invalid credential" : "missing credential: connect with ?token=<token>" });
    socket.write(`HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(reason)}\r\nconnection: close\r\n\r\n${reason}`);
    return socket.destroy();
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws));
});

function wanted(client, update) {
  const f = client.filter;
  if (f === null) return false;
  return (f.services.length === 0 || f.services.includes(update.service)) && (f.metrics.length === 0 || f.metrics.includes(update.metric));
}

function send(ws, message) {
  if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
}

/** Trace and alert events go to every subscribed client whose services include theirs. */
function broadcastAll(message) {
  const text = JSON.stringify(message);
  for (const client of wss.clients) {
    const f = client.filter;
    if (f === null || client.readyState !== client.OPEN) continue;
    if (f.services.length > 0 && message.service !== undefined && !f.services.includes(message.service)) continue;
    client.send(text);
  }
}

wss.on("connection", (ws) => {
  ws.filter = null;
  send(ws, { type: "hello", connection_id: Math.random().toString(16).slice(2), seq });
  ws.on("message", (data) => {
    let message;
    try {
      message = JSON.parse(String(data));
    } catch {
      return send(ws, { type: "error", message: "not JSON" });
    }
    if (message.type === "ping") return send(ws, { type: "pong" });
    if (message.type !== "subscribe") return send(ws, { type: "error", message: `unknown type ${message.type}` });
    ws.filter = { services: message.services ?? [], metrics: message.metrics ?? [] };
    const lastSeq = message.last_seq;
    const oldest = replay[0]?.seq ?? seq + 1;
    if (typeof lastSeq === "number" && lastSeq >= seq) return;
    if (typeof lastSeq === "number" && lastSeq + 1 >= oldest) {
      const updates = [];
      for (const m of replay) if (m.seq > lastSeq) updates.push(...m.updates.filter((u) => wanted(ws, u)));
      send(ws, { type: "metrics_update", seq, part: 1, parts: 1, updates });
    } else {
      // No resume point, or the gap is gone: the current state of every bucket in the last hour
      // (as the server answers a subscribe without `last_seq`).
      const now = Date.now() / 1000;
      const updates = [];
      for (const s of series.values()) {
        for (const start of s.buckets.keys()) {
          if (start < now - 3600) continue;
          const u = liveUpdate(s, start);
          if (u !== null && wanted(ws, u)) updates.push(u);
        }
      }
      send(ws, { type: "snapshot", seq, part: 1, parts: 1, updates });
    }
  });
});

let lastTick = Date.now();
let traceBudget = 0;
let lastEvaluation = 0;
setInterval(() => {
  const nowMs = Date.now();
  const dt = (nowMs - lastTick) / 1000;
  lastTick = nowMs;
  if (nowMs < QUIET_UNTIL) return;
  const time = nowMs / 1000;
  const touched = tick(time, dt);
  const updates = [];
  for (const key of touched) {
    const [id, start] = key.split("@");
    const u = liveUpdate(series.get(id), Number(start));
    if (u !== null) updates.push(u);
  }
  seq += 1;
  replay.push({ seq, updates });
  if (replay.length > REPLAY_MESSAGES) replay.shift();
  for (const client of wss.clients) {
    const mine = updates.filter((u) => wanted(client, u));
    if (mine.length > 0) send(client, { type: "metrics_update", seq, updates: mine });
  }
  // Kept traces of this flush, batched in one message with the flush's seq (docs/websocket.md).
  traceBudget += TRACES_PER_SECOND * dt;
  const batch = [];
  for (; traceBudget >= 1; traceBudget -= 1) batch.push(makeTrace(nowMs));
  if (batch.length > 0) broadcastAll({ type: "trace", seq, traces: batch });
  if (nowMs - lastEvaluation >= 1000) {
    lastEvaluation = nowMs;
    evaluateAlerts(time);
    prune(time);
  }
}, 1000 / UPDATE_HZ);

server.listen(PORT, "127.0.0.1", () => {
  const shape = NODE_COUNT > 0 ? `${SERVICES.size} generated nodes, ${EDGES.length} edges` : "5 services";
  console.log(`mock Flowscope on http://127.0.0.1:${PORT}/${TOKEN ? `#token=${encodeURIComponent(TOKEN)}` : ""} (token ${TOKEN || "none"}, ${shape}, ${UPDATE_HZ} updates/s, dashboard from ${DIST})`);
});

for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(0));
