#!/usr/bin/env node
// A stand-in for `flowscope local`'s HTTP side, speaking the same contract (query API + WebSocket +
// config.json) with synthetic data for five services, so the dashboard can be developed and tested
// before (or without) the Rust server. Serves dashboard/dist at `/`.
//
//   node dev/mock-server.mjs [--port 8090] [--token secret] [--quiet-s 30] [--no-history]
//
// --quiet-s N sends no data for the first N seconds and --no-history skips the 30 min of prefilled
// history, to see the dashboard's empty states.
//
// Extras for trying failure handling by hand:
//   POST /__mock/drop       closes every WebSocket (the dashboard should reconnect and resume)
//   POST /__mock/forget     forgets the replay buffer, so the next resume gets a snapshot

import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { createServer } from "node:http";
import { extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { WebSocketServer } from "ws";

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
const REPLAY_MESSAGES = 120;
const QUIET_UNTIL = Date.now() + Number(args.get("--quiet-s") ?? 0) * 1000;
const PREFILL = !process.argv.includes("--no-history");

const SERVICES = {
  auth: { rps: 40, latencyMs: 18, errorRatio: 0.01, cpu: 22, memory: 41 },
  api: { rps: 120, latencyMs: 35, errorRatio: 0.02, cpu: 48, memory: 63 },
  database: { rps: 90, latencyMs: 8, errorRatio: 0.002, cpu: 61, memory: 78 },
  cache: { rps: 300, latencyMs: 1.5, errorRatio: 0.0005, cpu: 15, memory: 55 },
  queue: { rps: 25, latencyMs: 60, errorRatio: 0.03, cpu: 30, memory: 36 },
};

const METRIC_DEFS = {
  "http.server.request.duration": { kind: "histogram", unit: "ms" },
  "http.server.requests": { kind: "counter", unit: "{request}" },
  "http.server.errors": { kind: "counter", unit: "{error}" },
  "process.cpu.utilization": { kind: "gauge", unit: "%" },
  "process.memory.utilization": { kind: "gauge", unit: "%" },
};

// ---- synthetic data -------------------------------------------------------------------------

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
    acc = { count: 0, sum: 0, min: null, max: null, samples: [] };
    s.buckets.set(start, acc);
  }
  acc.count += weight;
  acc.sum += s.kind === "counter" ? value : value * weight;
  acc.min = acc.min === null ? value : Math.min(acc.min, value);
  acc.max = acc.max === null ? value : Math.max(acc.max, value);
  if (s.kind === "histogram" && acc.samples.length < 5000) acc.samples.push(value);
  s.lastSeen = Math.max(s.lastSeen, Math.floor(time));
  return start;
}

function gaussian() {
  return Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
}

/** One second of traffic for every service; returns the touched (seriesId, start) pairs. */
function tick(time) {
  const touched = new Set();
  const wave = 1 + 0.3 * Math.sin(time / 300);
  for (const [service, p] of Object.entries(SERVICES)) {
    const requests = Math.max(0, Math.round(p.rps * wave * (1 + 0.1 * gaussian())));
    const errors = Math.round(requests * p.errorRatio * (1 + Math.random()));
    const classes = { "2xx": requests - errors, "4xx": Math.floor(errors / 2), "5xx": errors - Math.floor(errors / 2) };
    for (const [statusClass, n] of Object.entries(classes)) {
      const s = seriesFor(service, "http.server.requests", { "http.response.status_class": statusClass });
      touched.add(`${s.id}@${record(s, time, n)}`);
    }
    const e = seriesFor(service, "http.server.errors");
    touched.add(`${e.id}@${record(e, time, errors)}`);
    const h = seriesFor(service, "http.server.request.duration");
    for (let i = 0; i < Math.min(requests, 200); i += 1) {
      const latency = p.latencyMs * Math.exp(0.6 * gaussian());
      touched.add(`${h.id}@${record(h, time, latency)}`);
    }
    const cpu = seriesFor(service, "process.cpu.utilization");
    touched.add(`${cpu.id}@${record(cpu, time, clamp(p.cpu * wave + 5 * gaussian(), 0, 100))}`);
    const mem = seriesFor(service, "process.memory.utilization");
    touched.add(`${mem.id}@${record(mem, time, clamp(p.memory + 2 * gaussian(), 0, 100))}`);
  }
  for (const s of series.values()) {
    for (const start of s.buckets.keys()) if (start < time - KEEP_SECONDS) s.buckets.delete(start);
  }
  return touched;
}

function clamp(v, lo, hi) {
  return Math.min(hi, Math.max(lo, v));
}

function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function view(kind, start, acc) {
  const sorted = [...acc.samples].sort((a, b) => a - b);
  const histogram = kind === "histogram";
  return {
    start,
    count: acc.count,
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
  const out = { count: 0, sum: 0, min: null, max: null, samples: [] };
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

// Prefill history so charts have something to show on first load.
if (PREFILL) {
  const now = Date.now() / 1000;
  for (let t = now - PREFILL_SECONDS; t < now; t += 1) tick(t);
}

// ---- query API --------------------------------------------------------------------------------

function range(query) {
  const now = Math.floor(Date.now() / 1000);
  const to = Number(query.get("to") ?? now);
  const from = Number(query.get("from") ?? to - 900);
  const resolution = query.get("resolution") ?? "1m";
  if (!Number.isFinite(from) || !Number.isFinite(to) || from >= to) throw httpError(400, "bad from/to");
  if (resolution !== "1m") throw httpError(400, "the mock serves resolution=1m only");
  return { from, to, resolution };
}

function httpError(status, message) {
  return Object.assign(new Error(message), { status });
}

function history(list, r) {
  const first = list[0];
  const starts = new Set();
  for (const s of list) for (const start of s.buckets.keys()) if (start >= r.from && start < r.to) starts.add(start);
  const buckets = [...starts]
    .sort((a, b) => a - b)
    .map((start) => view(first.kind, start, mergeAccs(list.map((s) => s.buckets.get(start)).filter(Boolean))));
  return { service: first.service, metric: first.metric, kind: first.kind, unit: first.unit, resolution: r.resolution, from: r.from, to: r.to, buckets };
}

function api(path, query) {
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts.length === 2 && parts[1] === "services") {
    const byService = new Map();
    for (const s of series.values()) {
      const entry = byService.get(s.service) ?? { name: s.service, series: 0, last_seen: 0 };
      entry.series += 1;
      entry.last_seen = Math.max(entry.last_seen, s.lastSeen);
      byService.set(s.service, entry);
    }
    return { services: [...byService.values()] };
  }
  if (parts.length === 4 && parts[1] === "services" && parts[3] === "metrics") {
    const metrics = new Map();
    for (const s of series.values()) {
      if (s.service !== parts[2]) continue;
      const m = metrics.get(s.metric) ?? { name: s.metric, kind: s.kind, unit: s.unit, series: [] };
      m.series.push({ id: s.id, attributes: s.attributes, last_seen: s.lastSeen });
      metrics.set(s.metric, m);
    }
    if (metrics.size === 0) throw httpError(404, `unknown service ${parts[2]}`);
    return { service: parts[2], metrics: [...metrics.values()] };
  }
  if (parts.length === 5 && parts[1] === "services" && parts[3] === "metrics") {
    const list = [...series.values()].filter((s) => s.service === parts[2] && s.metric === parts[4]);
    if (list.length === 0) throw httpError(404, `no metric ${parts[4]} for ${parts[2]}`);
    return history(list, range(query));
  }
  if (parts.length === 3 && parts[1] === "series") {
    const s = series.get(parts[2]);
    if (s === undefined) throw httpError(404, `unknown series ${parts[2]}`);
    return { ...history([s], range(query)), series_id: s.id, attributes: s.attributes };
  }
  throw httpError(404, `no route for ${path}`);
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

function json(res, status, body) {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(JSON.stringify(body));
}

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? "/", "http://localhost");
  try {
    if (url.pathname === "/config.json") return json(res, 200, { apiBaseUrl: "", token: TOKEN, mode: "mock" });
    if (url.pathname.startsWith("/api/")) return json(res, 200, api(url.pathname, url.searchParams));
    if (req.method === "POST" && url.pathname === "/__mock/drop") {
      for (const client of wss.clients) client.terminate();
      return json(res, 200, { dropped: true });
    }
    if (req.method === "POST" && url.pathname === "/__mock/forget") {
      replay.length = 0;
      return json(res, 200, { forgotten: true });
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
    socket.write("HTTP/1.1 401 Unauthorized\r\nconnection: close\r\n\r\n");
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
    if (typeof lastSeq !== "number") return;
    const oldest = replay[0]?.seq ?? seq + 1;
    if (lastSeq >= seq) return;
    if (lastSeq + 1 >= oldest) {
      for (const m of replay) {
        if (m.seq <= lastSeq) continue;
        const updates = m.updates.filter((u) => wanted(ws, u));
        if (updates.length > 0) send(ws, { type: "metrics_update", seq: m.seq, updates });
      }
    } else {
      // The gap is gone: send the current state of every bucket in the last hour instead.
      const now = Date.now() / 1000;
      const updates = [];
      for (const s of series.values()) {
        for (const start of s.buckets.keys()) {
          if (start < now - 3600) continue;
          const u = liveUpdate(s, start);
          if (u !== null && wanted(ws, u)) updates.push(u);
        }
      }
      send(ws, { type: "snapshot", seq, updates });
    }
  });
});

setInterval(() => {
  if (Date.now() < QUIET_UNTIL) return;
  const touched = tick(Date.now() / 1000);
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
}, 1000);

server.listen(PORT, "127.0.0.1", () => {
  console.log(`mock Flowscope on http://127.0.0.1:${PORT} (token ${TOKEN || "none"}, dashboard from ${DIST})`);
});

for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(0));
