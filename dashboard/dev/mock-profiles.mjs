// The mock server's profiles (docs: /work/notes/s6/api-profiles.md contract, docs/openapi.json once
// the backend lands): per-minute stack trees per service and profile type, generated for the five
// services (CPU and heap, with an incident 20–15 minutes ago where `api` spends ever more time in
// one call path), plus whatever is pushed to `POST /ingest` (Pyroscope push API, folded format).
//
//   GET /api/profiles/{services,types,timeline,flamegraph,top,diff,snapshot,pprof}
//   POST /api/profiles/snapshot   (gzip JSON body: validated and echoed)
//   POST /ingest?name=APP.TYPE{k=v}&from=S&until=S&format=folded

import { gunzipSync, gzipSync } from "node:zlib";

export const UNITS = {
  cpu: "nanoseconds",
  wall: "nanoseconds",
  alloc_space: "bytes",
  alloc_objects: "count",
  inuse_space: "bytes",
  inuse_objects: "count",
  goroutines: "count",
  samples: "count",
};

/** `${service}\u0000${type}` → Map(minute start s → Map(stack "a;b;c" → value)). */
const store = new Map();
const MAX_MINUTES_GENERATED = 60;
const MAX_INGEST_BYTES = 4 * 1024 * 1024;
const MAX_STACKS_PER_MINUTE = 50_000;

function key(service, type) {
  return `${service}\u0000${type}`;
}

/** Labels as stored: `k=v,k2=v2`, sorted. */
function labelText(labels) {
  return Object.entries(labels)
    .sort((a, b) => a[0].localeCompare(b[0]))
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

/** Stacks are stored per label set: `labels\u0001stack`. */
function add(service, type, minute, stack, value, labels = {}) {
  stack = `${labelText(labels)}\u0001${stack}`;
  const k = key(service, type);
  let minutes = store.get(k);
  if (minutes === undefined) {
    minutes = new Map();
    store.set(k, minutes);
  }
  let stacks = minutes.get(minute);
  if (stacks === undefined) {
    stacks = new Map();
    minutes.set(minute, stacks);
  }
  if (!stacks.has(stack) && stacks.size >= MAX_STACKS_PER_MINUTE) return;
  stacks.set(stack, (stacks.get(stack) ?? 0) + value);
}

// ---- generated data ---------------------------------------------------------------------------

/** Per service: [stack, share of CPU]. The incident grows api's `db.query` path. */
const SHAPES = {
  api: [
    ["main;http.serve;router.dispatch;handlers.getOrder;db.query;pq.exec", 0.18],
    ["main;http.serve;router.dispatch;handlers.getOrder;json.encode", 0.14],
    ["main;http.serve;router.dispatch;handlers.listItems;cache.get;redis.roundtrip", 0.2],
    ["main;http.serve;router.dispatch;auth.verify;jwt.parse;crypto.rsaVerify", 0.22],
    ["main;http.serve;tls.handshake", 0.08],
    ["main;runtime.gcBgMarkWorker;runtime.scanobject", 0.12],
    ["main;runtime.mallocgc", 0.06],
  ],
  auth: [
    ["main;grpc.serve;auth.Login;bcrypt.compare;blowfish.encrypt", 0.55],
    ["main;grpc.serve;auth.Verify;jwt.sign;crypto.rsaSign", 0.3],
    ["main;runtime.gcBgMarkWorker", 0.15],
  ],
  database: [
    ["postgres;exec_simple_query;PortalRun;ExecScan;heap_getnext", 0.45],
    ["postgres;exec_simple_query;pg_plan_query;standard_planner", 0.2],
    ["postgres;exec_simple_query;PortalRun;ExecSort;tuplesort_performsort", 0.2],
    ["postgres;WalWriterMain;XLogFlush", 0.15],
  ],
  cache: [
    ["redis-server;aeMain;processCommand;lookupKey;dictFind", 0.5],
    ["redis-server;aeMain;writeToClient;writev", 0.35],
    ["redis-server;serverCron;activeExpireCycle", 0.15],
  ],
  queue: [
    ["node;processTicksAndRejections;consumer.poll;kafka.fetch;decodeBatch", 0.4],
    ["node;processTicksAndRejections;consumer.handle;JSON.parse", 0.35],
    ["node;processTicksAndRejections;producer.send;snappy.compress", 0.25],
  ],
};

const INCIDENT = { service: "api", stack: "main;http.serve;router.dispatch;handlers.getOrder;db.query;pq.exec;pq.readRows;pgconn.scan", startAgo: 20, endAgo: 15 };

let generatedUpTo = 0;
let generatedFrom = 0;

/** A deterministic jitter in [0.85, 1.15) per (minute, stack). */
function jitter(minute, stack) {
  let h = minute | 0;
  for (let i = 0; i < stack.length; i += 1) h = Math.imul(h ^ stack.charCodeAt(i), 16777619);
  return 0.85 + ((h >>> 0) % 3000) / 10000;
}

function generateMinute(minute, nowMinute) {
  const ago = (nowMinute - minute) / 60;
  for (const [service, shape] of Object.entries(SHAPES)) {
    for (const [stack, share] of shape) {
      // CPU: ~1.5 cores of nanoseconds per minute, split by share.
      add(service, "cpu", minute, stack, Math.round(share * 90e9 * jitter(minute, stack)));
      const heap = stack.replace(/;[^;]+$/, ";runtime.mallocgc");
      add(service, "alloc_space", minute, heap, Math.round(share * 512 * 1024 * 1024 * jitter(minute + 1, stack)));
    }
    if (service === INCIDENT.service && ago <= INCIDENT.startAgo && ago > INCIDENT.endAgo) {
      // The incident: the query path grows minute by minute (up to ~3× the service's usual CPU).
      const step = INCIDENT.startAgo - ago + 1;
      add(service, "cpu", minute, INCIDENT.stack, Math.round(step * 40e9 * jitter(minute, INCIDENT.stack)));
      add(service, "alloc_space", minute, `${INCIDENT.stack};runtime.mallocgc`, Math.round(step * 300 * 1024 * 1024));
    }
  }
}

/** Generates every minute up to now (history on the first call), once. */
export function generateUpTo(nowSeconds) {
  const nowMinute = Math.floor(nowSeconds / 60) * 60;
  if (generatedUpTo === 0) {
    generatedFrom = nowMinute - MAX_MINUTES_GENERATED * 60;
    generatedUpTo = generatedFrom;
  }
  // The current minute fills up as it goes: regenerate it proportionally is overkill; minutes are
  // generated once they start, like a profiler pushing every 10 s would fill them.
  for (let m = generatedUpTo + 60; m <= nowMinute; m += 60) generateMinute(m, nowMinute);
  generatedUpTo = Math.max(generatedUpTo, nowMinute);
}

// ---- ingest -----------------------------------------------------------------------------------

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** `APP.TYPE{k=v,...}` → { service, type, labels }. A name without a known type is `samples`. */
export function parseName(name) {
  const match = /^([^{}]+?)(?:\{([^{}]*)\})?$/.exec(name ?? "");
  if (match === null || match[1].trim() === "") throw new HttpError(400, "`name` must be APP.TYPE{labels}");
  const base = match[1].trim();
  const dot = base.lastIndexOf(".");
  const suffix = dot > 0 ? base.slice(dot + 1) : "";
  const known = suffix in UNITS;
  const labels = {};
  for (const pair of (match[2] ?? "").split(",").filter((p) => p.trim() !== "")) {
    const [k, ...v] = pair.split("=");
    labels[k.trim()] = v.join("=").trim();
  }
  return { service: known ? base.slice(0, dot) : base, type: known ? suffix : "samples", labels };
}

/** Folded stacks: `frame;frame;frame COUNT` per line. */
export function parseFolded(text) {
  const stacks = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "") return;
    const match = /^(.*\S)\s+(\d+)$/.exec(line);
    if (match === null) throw new HttpError(400, `line ${i + 1}: expected \`frame;frame COUNT\``);
    stacks.push([match[1], Number(match[2])]);
  });
  return stacks;
}

async function readRaw(req, limit) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw new HttpError(413, `body over ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

export async function ingest(req, url) {
  const format = url.searchParams.get("format") ?? "folded";
  if (format !== "folded") throw new HttpError(400, "the mock accepts format=folded only");
  const { service, type, labels } = parseName(url.searchParams.get("name"));
  const from = Number(url.searchParams.get("from") ?? Math.floor(Date.now() / 1000));
  if (!Number.isFinite(from)) throw new HttpError(400, "`from` must be unix seconds");
  let body = await readRaw(req, MAX_INGEST_BYTES);
  if (body[0] === 0x1f && body[1] === 0x8b) body = gunzipSync(body, { maxOutputLength: MAX_INGEST_BYTES * 4 });
  const minute = Math.floor(from / 60) * 60;
  // Folded samples are counts; a cpu profile's samples at `sampleRate` Hz become nanoseconds.
  const rate = Number(url.searchParams.get("sampleRate") ?? 100);
  if (stacksIn(body) > MAX_STACKS_PER_MINUTE) throw new HttpError(400, `more than ${MAX_STACKS_PER_MINUTE} stacks in one push`);
  const scale = type === "cpu" || type === "wall" ? Math.round(1e9 / (rate > 0 ? rate : 100)) : 1;
  for (const [stack, count] of parseFolded(body.toString("utf8"))) add(service, type, minute, stack, count * scale, labels);
  let total = 0;
  for (const value of store.get(key(service, type))?.get(minute)?.values() ?? []) total += value;
  return { type: "profile", service, profile_type: type, minute: minute * 1000, total };
}

// ---- queries ----------------------------------------------------------------------------------

function seconds(value, name) {
  const n = Number(value);
  if (value === null || !Number.isFinite(n)) throw new HttpError(400, `\`${name}\` must be unix seconds`);
  return n > 1e11 ? Math.floor(n / 1000) : n;
}

function params(query, now) {
  const service = query.get("service");
  const type = query.get("type");
  if (!service) throw new HttpError(400, "`service` is required");
  if (!type) throw new HttpError(400, "`type` is required");
  if (!(type in UNITS)) throw new HttpError(400, `unknown profile type ${type}`);
  const to = query.has("to") ? seconds(query.get("to"), "to") : now + 60;
  const from = query.has("from") ? seconds(query.get("from"), "from") : to - 3600;
  if (from >= to) throw new HttpError(400, "`from` must be before `to`");
  return { service, type, from, to, unit: UNITS[type], labels: parseLabels(query.get("labels")) };
}

function stacksIn(body) {
  let lines = 0;
  for (const byte of body) if (byte === 10) lines += 1;
  return lines;
}

/** `k=v,k2=v2` → { k: v, … }; 400 when a pair is not key=value. */
function parseLabels(text) {
  const labels = {};
  for (const pair of (text ?? "").split(",").filter((p) => p.trim() !== "")) {
    const at = pair.indexOf("=");
    if (at <= 0) throw new HttpError(400, `\`labels\`: "${pair}" is not key=value`);
    labels[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  return labels;
}

function matches(stored, filter) {
  const have = parseLabels(stored);
  return Object.entries(filter).every(([k, v]) => have[k] === v);
}

/** Every stored (minute, stack, value) of the range whose label set has all of `filter`. */
function* entries(service, type, from, to, filter = {}) {
  for (const [minute, stacks] of store.get(key(service, type)) ?? []) {
    if (minute < from || minute >= to) continue;
    for (const [entry, value] of stacks) {
      const split = entry.indexOf("\u0001");
      if (matches(entry.slice(0, split), filter)) yield [minute, entry.slice(split + 1), value];
    }
  }
}

function merged(service, type, from, to, filter = {}) {
  const out = new Map();
  for (const [, stack, value] of entries(service, type, from, to, filter)) out.set(stack, (out.get(stack) ?? 0) + value);
  return out;
}

function trie(stacks, slot, root) {
  for (const [stack, value] of stacks) {
    root.v[slot] += value;
    let at = root;
    for (const frame of stack.split(";")) {
      let child = at.children.get(frame);
      if (child === undefined) {
        child = { v: [0, 0], s: [0, 0], children: new Map() };
        at.children.set(frame, child);
      }
      child.v[slot] += value;
      at = child;
    }
    at.s[slot] += value;
  }
  return root;
}

function emptyNode() {
  return { v: [0, 0], s: [0, 0], children: new Map() };
}

/** Levels of groups: flame `[start, total, self, name]`, diff `[start, width, name, total, self, base_total, base_self]`. */
function levelsOf(root, diff) {
  const names = ["total"];
  const index = new Map([["total", 0]]);
  const levels = [];
  const place = (node, name, depth, start) => {
    let i = index.get(name);
    if (i === undefined) {
      i = names.length;
      names.push(name);
      index.set(name, i);
    }
    levels[depth] ??= [];
    const width = diff ? node.v[0] + node.v[1] : node.v[0];
    if (diff) levels[depth].push(start, width, i, node.v[0], node.s[0], node.v[1], node.s[1]);
    else levels[depth].push(start, node.v[0], node.s[0], i);
    let offset = start;
    for (const [childName, child] of [...node.children].sort((a, b) => a[0].localeCompare(b[0]))) {
      place(child, childName, depth + 1, offset);
      offset += diff ? child.v[0] + child.v[1] : child.v[0];
    }
  };
  if (root.v[0] + root.v[1] > 0) place(root, "total", 0, 0);
  return { names, levels };
}

function flamegraph(p) {
  const root = trie(merged(p.service, p.type, p.from, p.to, p.labels), 0, emptyNode());
  const { names, levels } = levelsOf(root, false);
  return { service: p.service, type: p.type, unit: p.unit, from: p.from * 1000, to: p.to * 1000, total: root.v[0], names, levels };
}

function timeline(p) {
  const points = [];
  const totals = new Map();
  for (const [minute, , value] of entries(p.service, p.type, p.from, p.to, p.labels)) totals.set(minute, (totals.get(minute) ?? 0) + value);
  for (const [minute, total] of totals) points.push({ t: minute * 1000, total });
  points.sort((a, b) => a.t - b.t);
  return { service: p.service, type: p.type, unit: p.unit, points };
}

function top(p, limit) {
  const self = new Map();
  const total = new Map();
  let all = 0;
  for (const [stack, value] of merged(p.service, p.type, p.from, p.to, p.labels)) {
    const frames = stack.split(";");
    all += value;
    const leaf = frames.at(-1);
    self.set(leaf, (self.get(leaf) ?? 0) + value);
    for (const f of new Set(frames)) total.set(f, (total.get(f) ?? 0) + value);
  }
  const functions = [...total].map(([name, t]) => ({ name, self: self.get(name) ?? 0, total: t }));
  functions.sort((a, b) => b.self - a.self || b.total - a.total || a.name.localeCompare(b.name));
  return { unit: p.unit, total: all, functions: functions.slice(0, limit) };
}

function diff(p, baseFrom, baseTo) {
  const root = emptyNode();
  trie(merged(p.service, p.type, p.from, p.to, p.labels), 0, root);
  trie(merged(p.service, p.type, baseFrom, baseTo, p.labels), 1, root);
  const { names, levels } = levelsOf(root, true);
  return { service: p.service, type: p.type, unit: p.unit, from: p.from * 1000, to: p.to * 1000, total: root.v[0], base_total: root.v[1], names, levels };
}

// ---- pprof (just enough protobuf to write a Profile: go tool pprof and speedscope open it) -------

function varint(n) {
  const out = [];
  let v = BigInt(n);
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return out;
}

const field = (number, wire) => varint((number << 3) | wire);
const int = (number, value) => [...field(number, 0), ...varint(value)];
const bytes = (number, payload) => [...field(number, 2), ...varint(payload.length), ...payload];
const packed = (number, values) => bytes(number, values.flatMap((v) => varint(v)));

function pprof(p) {
  const strings = [""];
  const stringIndex = new Map([["", 0]]);
  const str = (text) => {
    if (!stringIndex.has(text)) {
      stringIndex.set(text, strings.length);
      strings.push(text);
    }
    return stringIndex.get(text);
  };
  const functions = new Map();
  const out = [];
  const [kind, unit] = p.type === "cpu" || p.type === "wall" ? [p.type, "nanoseconds"] : [p.type, p.unit];
  out.push(...bytes(1, [...int(1, str(kind)), ...int(2, str(unit))]));
  for (const [stack, value] of merged(p.service, p.type, p.from, p.to, p.labels)) {
    const ids = stack.split(";").map((frame) => {
      if (!functions.has(frame)) functions.set(frame, functions.size + 1);
      return functions.get(frame);
    });
    // Leaf first; one location per function (location id = function id).
    out.push(...bytes(2, [...packed(1, ids.reverse()), ...packed(2, [value])]));
  }
  for (const id of functions.values()) out.push(...bytes(4, [...int(1, id), ...bytes(4, int(1, id))]));
  for (const [name, id] of functions) out.push(...bytes(5, [...int(1, id), ...int(2, str(name)), ...int(3, str(name))]));
  const period = bytes(11, [...int(1, str(kind)), ...int(2, str(unit))]);
  const tail = [...int(9, p.from * 1e9), ...int(10, (p.to - p.from) * 1e9), ...period];
  const table = strings.flatMap((text) => bytes(6, [...Buffer.from(text, "utf8")]));
  return gzipSync(Buffer.from([...out, ...table, ...tail]));
}

function services() {
  const byService = new Map();
  for (const k of store.keys()) {
    const [service, type] = k.split("\u0000");
    byService.set(service, [...(byService.get(service) ?? []), type]);
  }
  return [...byService]
    .sort((a, b) => a[0].localeCompare(b[0]))
    .map(([service, types]) => ({ service, types: types.sort() }));
}

function send(res, status, body, headers = {}) {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store", ...headers });
  res.end(typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body));
}

/** `/api/profiles/...` (the credential was checked by the caller). Returns true when handled. */
export async function profilesApi(req, res, url) {
  const now = Math.floor(Date.now() / 1000);
  generateUpTo(now);
  const route = url.pathname.replace(/^\/api\/profiles\/?/, "");
  const q = url.searchParams;
  try {
    if (req.method === "GET" && route === "services") return send(res, 200, { services: services() });
    if (req.method === "GET" && route === "types") {
      const service = q.get("service");
      const types = services().find((s) => s.service === service)?.types;
      if (types === undefined) throw new HttpError(404, `no profiles for ${service}`);
      return send(res, 200, { service, types: types.map((type) => ({ type, unit: UNITS[type] })) });
    }
    if (req.method === "GET" && route === "timeline") return send(res, 200, timeline(params(q, now)));
    if (req.method === "GET" && route === "flamegraph") return send(res, 200, flamegraph(params(q, now)));
    if (req.method === "GET" && route === "top") return send(res, 200, top(params(q, now), Math.min(500, Number(q.get("limit") ?? 50) || 50)));
    if (req.method === "GET" && route === "diff") {
      const p = params(q, now);
      return send(res, 200, diff(p, seconds(q.get("base_from"), "base_from"), seconds(q.get("base_to"), "base_to")));
    }
    if (req.method === "GET" && route === "snapshot") {
      const p = params(q, now);
      const snapshot = { version: 1, service: p.service, type: p.type, unit: p.unit, from: p.from * 1000, to: p.to * 1000, timeline: timeline(p).points, flamegraph: flamegraph(p) };
      const filename = `${p.service}-${p.type}-${p.from}-${p.to}.json.gz`;
      return send(res, 200, gzipSync(JSON.stringify(snapshot)), {
        "content-type": "application/gzip",
        "content-disposition": `attachment; filename="${filename}"`,
      });
    }
    if (req.method === "POST" && route === "snapshot") {
      const raw = await readRaw(req, MAX_INGEST_BYTES);
      let snapshot;
      try {
        snapshot = JSON.parse(gunzipSync(raw, { maxOutputLength: MAX_INGEST_BYTES * 16 }).toString("utf8"));
      } catch {
        throw new HttpError(400, "not a gzip JSON snapshot");
      }
      if (snapshot?.version !== 1) throw new HttpError(400, "snapshot version must be 1");
      return send(res, 200, snapshot);
    }
    if (req.method === "GET" && route === "pprof") {
      const p = params(q, now);
      return send(res, 200, pprof(p), {
        "content-type": "application/octet-stream",
        "content-disposition": `attachment; filename="${p.service}-${p.type}-${p.from}-${p.to}.pb.gz"`,
      });
    }
    throw new HttpError(404, `no route for ${req.method} ${url.pathname}`);
  } catch (error) {
    return send(res, error.status ?? 500, { error: error.message });
  }
}

/** `onEvent` hears the live `profile` event of the minute that got samples. */
export async function ingestRoute(req, res, url, onEvent = () => {}) {
  try {
    if (req.method !== "POST") throw new HttpError(405, "POST profiles to /ingest");
    onEvent(await ingest(req, url));
    res.writeHead(200);
    res.end();
  } catch (error) {
    send(res, error.status ?? 500, { error: error.message });
  }
}
