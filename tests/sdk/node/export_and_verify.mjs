#!/usr/bin/env node
// Interoperability check: the unmodified OpenTelemetry JS SDK (OTLP/HTTP **JSON**) against a running
// `flowscope local`. The same checks as tests/sdk/python/export_and_verify.py, through the JSON path:
//   * subscribe to the service over the WebSocket first;
//   * export a counter (cumulative, the SDK default), an up-down counter, a histogram and an observable
//     gauge over several exports, plus a few spans;
//   * the series are listed by the query API, and a `metrics_update` arrives, within 2 s of the first
//     export;
//   * within 2 s of the last export the buckets hold exactly what was recorded, and the live updates
//     agree on the counter total.
// Recorded values are small integers and binary fractions, so every sum and difference is exact in
// float64 and the comparisons can be exact too.
//
// Usage: node export_and_verify.mjs --otlp http://127.0.0.1:4318 --api http://127.0.0.1:8080 [--service NAME]
// Prints one line per check and the measured latencies; exits 1 on any failure.

import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';

import { context, diag, DiagLogLevel, trace } from '@opentelemetry/api';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import WebSocket from 'ws';

// The issue's promise: visible through the API and the WebSocket within 2 s.
const VISIBLE_WITHIN_MS = 2000;
const POLL_EVERY_MS = 20;
const EXPORT_INTERVAL_MS = 500;
// Pause between recording and exporting (see the loop below).
const RECORD_TO_EXPORT_MS = 20;

const COUNTER = 'sdk.requests';
const UP_DOWN = 'sdk.inflight';
const HISTOGRAM = 'sdk.latency';
const GAUGE = 'sdk.temperature';
const ALL_METRICS = [COUNTER, UP_DOWN, HISTOGRAM, GAUGE];
const ROUTES = ['/checkout', '/cart'];

// What each export round records. Several rounds, so the cumulative totals the SDK sends grow and the
// server has to turn them into deltas without losing or double-counting anything.
const ROUNDS = [
  { adds: { '/checkout': 3, '/cart': 1 }, upDown: [5, -2], latencies: [4.5, 12.0, 37.25], gauge: 21.5 },
  { adds: { '/checkout': 7, '/cart': 0 }, upDown: [1], latencies: [120.0], gauge: 22.0 },
  { adds: { '/checkout': 0, '/cart': 4 }, upDown: [-3, 6], latencies: [0.5, 480.0, 75.75, 9.0], gauge: 19.25 },
  { adds: { '/checkout': 11, '/cart': 2 }, upDown: [], latencies: [250.0], gauge: 23.75 },
];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => performance.now();
const sum = (values) => values.reduce((a, b) => a + b, 0);

class Checks {
  constructor(label) {
    this.label = label;
    this.passed = 0;
    this.failed = 0;
  }

  check(ok, what, detail = '') {
    console.log(`${ok ? 'PASS' : 'FAIL'}: [${this.label}] ${what}${detail ? ` (${detail})` : ''}`);
    if (ok) this.passed += 1;
    else this.failed += 1;
    return ok;
  }

  finish() {
    console.log(`${this.label}: ${this.passed} passed, ${this.failed} failed`);
    return this.failed ? 1 : 0;
  }
}

/** The SDK reports export failures only through its diagnostic logger: collect them. */
function collectExportErrors() {
  const messages = [];
  const keep = (...args) => messages.push(args.map(String).join(' '));
  diag.setLogger(
    { error: keep, warn: keep, info: () => {}, debug: () => {}, verbose: () => {} },
    DiagLogLevel.WARN,
  );
  return messages;
}

/** The WebSocket client: timestamps messages on arrival and keeps the latest totals per bucket. */
class LiveListener {
  constructor(url, service) {
    this.url = url;
    this.service = service;
    this.firstUpdateAt = null;
    this.latest = new Map(); // `${series}|${resolution}|${start}` → update
    this.error = null;
  }

  /** Resolves with the reply to `subscribe` (after `hello`). */
  subscribe() {
    return new Promise((resolve) => {
      const socket = new WebSocket(this.url, { handshakeTimeout: 5000 });
      this.socket = socket;
      let stage = 'hello';
      const timer = setTimeout(() => resolve({ error: `no reply while waiting for ${stage}` }), 10000);
      socket.on('error', (error) => {
        this.error = String(error);
        clearTimeout(timer);
        resolve({ error: this.error });
      });
      socket.on('message', (data) => {
        const arrived = now();
        let message;
        try {
          message = JSON.parse(String(data));
        } catch (error) {
          this.error = `not JSON: ${error}`;
          return;
        }
        if (stage === 'hello') {
          if (message.type !== 'hello') {
            clearTimeout(timer);
            resolve({ error: `first message was not hello: ${JSON.stringify(message)}` });
            return;
          }
          stage = 'reply';
          socket.send(JSON.stringify({ type: 'subscribe', services: [this.service], metrics: [] }));
        } else if (stage === 'reply') {
          stage = 'live';
          clearTimeout(timer);
          resolve({ reply: message });
        } else if (message.type === 'metrics_update') {
          this.absorb(message, arrived);
        }
      });
    });
  }

  absorb(message, arrived) {
    const ours = (message.updates ?? []).filter((u) => u.service === this.service);
    if (ours.length === 0) return;
    if (this.firstUpdateAt === null) this.firstUpdateAt = arrived;
    for (const update of ours) {
      this.latest.set(`${update.series_id}|${update.resolution}|${update.start}`, update);
    }
  }

  liveSum(metric, resolution = '1m') {
    return sum([...this.latest.values()].filter((u) => u.metric === metric && u.resolution === resolution).map((u) => u.sum));
  }

  close() {
    this.socket?.terminate();
  }
}

async function getJson(url) {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return { status: response.status, body: response.ok ? await response.json() : null };
  } catch (error) {
    return { status: 0, body: String(error) };
  }
}

async function metricListing(api, service) {
  const { status, body } = await getJson(`${api}/api/services/${encodeURIComponent(service)}/metrics`);
  if (status !== 200 || !body) return {};
  return Object.fromEntries((body.metrics ?? []).map((m) => [m.name, m]));
}

function rangeQuery(since) {
  const nowS = Math.floor(Date.now() / 1000);
  return new URLSearchParams({ from: String(since - 120), to: String(nowS + 120), resolution: '1m' });
}

async function history(api, service, metric, since) {
  const url = `${api}/api/services/${encodeURIComponent(service)}/metrics/${encodeURIComponent(metric)}?${rangeQuery(since)}`;
  const { status, body } = await getJson(url);
  return status === 200 && body ? body.buckets ?? [] : null;
}

async function seriesHistory(api, seriesId, since) {
  const { status, body } = await getJson(`${api}/api/series/${seriesId}?${rangeQuery(since)}`);
  return status === 200 && body ? body.buckets ?? [] : null;
}

/** Polls `probe` until it returns a truthy value or the deadline passes; returns the last value. */
async function waitUntil(deadline, probe) {
  for (;;) {
    const value = await probe();
    if (value || now() >= deadline) return value;
    await sleep(POLL_EVERY_MS);
  }
}

function totals(buckets) {
  const mins = buckets.map((b) => b.min).filter((v) => v !== null && v !== undefined);
  const maxes = buckets.map((b) => b.max).filter((v) => v !== null && v !== undefined);
  return {
    count: sum(buckets.map((b) => b.count)),
    sum: sum(buckets.map((b) => b.sum)),
    min: mins.length ? Math.min(...mins) : null,
    max: maxes.length ? Math.max(...maxes) : null,
    quantiles: buckets.filter((b) => b.count > 0).map((b) => [b.p50, b.p95, b.p99]),
  };
}

async function readState(api, service, since, counterSeries) {
  const merged = async (metric) => {
    const buckets = await history(api, service, metric, since);
    return buckets && buckets.length ? totals(buckets) : null;
  };
  const routes = {};
  for (const [route, id] of Object.entries(counterSeries)) {
    const buckets = await seriesHistory(api, id, since);
    if (buckets) routes[route] = sum(buckets.map((b) => b.sum));
  }
  return {
    counter: await merged(COUNTER),
    routes,
    upDown: await merged(UP_DOWN),
    histogram: await merged(HISTOGRAM),
    gauge: await merged(GAUGE),
  };
}

async function measureFirstVisibility(checks, api, service, listener, exportDone) {
  const deadline = exportDone + VISIBLE_WITHIN_MS;
  const listed = await waitUntil(deadline, async () => {
    const listing = await metricListing(api, service);
    return ALL_METRICS.every((m) => m in listing);
  });
  const apiLatency = now() - exportDone;
  checks.check(
    listed,
    `all ${ALL_METRICS.length} metrics listed by the query API within ${VISIBLE_WITHIN_MS / 1000} s`,
    listed ? `${apiLatency.toFixed(0)} ms` : `after ${apiLatency.toFixed(0)} ms: ${Object.keys(await metricListing(api, service))}`,
  );
  console.log(`latency: query API lists series ${apiLatency.toFixed(0)} ms after export`);

  const gotUpdate = await waitUntil(deadline, () => listener.firstUpdateAt !== null);
  if (gotUpdate) {
    const wsLatency = listener.firstUpdateAt - exportDone;
    checks.check(wsLatency <= VISIBLE_WITHIN_MS, `metrics_update for the service within ${VISIBLE_WITHIN_MS / 1000} s`, `${wsLatency.toFixed(0)} ms`);
    console.log(`latency: WebSocket metrics_update ${wsLatency.toFixed(0)} ms after export`);
  } else {
    checks.check(false, `metrics_update for the service within ${VISIBLE_WITHIN_MS / 1000} s`, listener.error ?? 'none arrived');
  }
}

async function verifyValues(checks, api, service, listener, since, deadline, expected) {
  const listing = await metricListing(api, service);
  const kinds = Object.fromEntries(ALL_METRICS.map((m) => [m, listing[m]?.kind]));
  checks.check(
    kinds[COUNTER] === 'counter' && kinds[UP_DOWN] === 'up_down_counter' && kinds[HISTOGRAM] === 'histogram' && kinds[GAUGE] === 'gauge',
    'metric kinds are counter, up_down_counter, histogram, gauge',
    JSON.stringify(kinds),
  );
  checks.check(listing[HISTOGRAM]?.unit === 'ms', 'histogram unit is kept', String(listing[HISTOGRAM]?.unit));
  const counterSeries = Object.fromEntries((listing[COUNTER]?.series ?? []).map((s) => [s.attributes?.route, s.id]));
  checks.check(
    JSON.stringify(Object.keys(counterSeries).sort()) === JSON.stringify([...ROUTES].sort()),
    'one counter series per route attribute',
    JSON.stringify(Object.keys(counterSeries)),
  );

  const total = sum(Object.values(expected.perRoute));
  const matches = (s) =>
    s.counter?.sum === total &&
    ROUTES.every((r) => s.routes[r] === expected.perRoute[r]) &&
    s.upDown?.sum === expected.upDownNet &&
    s.histogram?.count === expected.latencies.length &&
    s.histogram?.sum === sum(expected.latencies) &&
    s.gauge?.min === Math.min(...expected.gaugeValues) &&
    s.gauge?.max === Math.max(...expected.gaugeValues) &&
    listener.liveSum(COUNTER) === total;
  const matched = await waitUntil(deadline, async () => {
    const s = await readState(api, service, since, counterSeries);
    return matches(s) ? s : null;
  });
  const state = matched ?? (await readState(api, service, since, counterSeries));
  const when = matched ? 'within 2 s of the last export' : 'still wrong 2 s after the last export';

  checks.check(
    state.counter?.sum === total,
    `counter: bucket sums equal the ${total} added over ${ROUNDS.length} cumulative exports (${when})`,
    `got ${state.counter?.sum}`,
  );
  for (const route of ROUTES) {
    checks.check(state.routes[route] === expected.perRoute[route], `counter series route=${route}: sum ${expected.perRoute[route]}`, `got ${state.routes[route]}`);
  }
  checks.check(state.upDown?.sum === expected.upDownNet, `up-down counter: net change ${expected.upDownNet}`, `got ${state.upDown?.sum}`);
  checks.check(
    state.histogram?.count === expected.latencies.length && state.histogram?.sum === sum(expected.latencies),
    `histogram: count ${expected.latencies.length} and sum ${sum(expected.latencies)} exact`,
    `got count ${state.histogram?.count} sum ${state.histogram?.sum}`,
  );
  // Explicit buckets only bound a quantile to the bucket holding it: all recorded values lie in the
  // SDK's default buckets (0, 500], so every estimate must too, in increasing order.
  const quantiles = state.histogram?.quantiles ?? [[null]];
  checks.check(
    quantiles.length > 0 && quantiles.every((q) => !q.includes(null) && !q.includes(undefined) && q[0] >= 0 && q[0] <= q[1] && q[1] <= q[2] && q[2] <= 500),
    'histogram: p50 <= p95 <= p99 within the recorded buckets (0, 500]',
    JSON.stringify(quantiles),
  );
  const [gMin, gMax] = [Math.min(...expected.gaugeValues), Math.max(...expected.gaugeValues)];
  checks.check(
    state.gauge?.min === gMin && state.gauge?.max === gMax,
    `gauge: observed values present (min ${gMin}, max ${gMax})`,
    `got min ${state.gauge?.min} max ${state.gauge?.max}`,
  );
  const live = listener.liveSum(COUNTER);
  checks.check(live === total, `WebSocket live buckets agree: counter total ${total}`, `got ${live}`);
}

async function main() {
  const { values } = parseArgs({
    options: {
      otlp: { type: 'string', default: 'http://127.0.0.1:4318' },
      api: { type: 'string', default: 'http://127.0.0.1:8080' },
      service: { type: 'string', default: `sdk-node-${randomUUID().slice(0, 10)}` },
    },
  });
  const otlp = values.otlp.replace(/\/$/, '');
  const api = values.api.replace(/\/$/, '');
  const service = values.service;
  const checks = new Checks('node/json');
  const since = Math.floor(Date.now() / 1000);
  const exportErrors = collectExportErrors();

  // (a) Subscribe first, so the first update for this service cannot be missed.
  const listener = new LiveListener(`${api.replace(/^http:/, 'ws:')}/ws`, service);
  const { reply, error } = await listener.subscribe();
  if (!checks.check(reply?.type === 'snapshot', 'WebSocket hello + subscribe answered with a snapshot', error ?? JSON.stringify(reply))) {
    listener.close();
    return checks.finish();
  }

  // (b) An unmodified SDK setup, as any service would have it.
  const resource = resourceFromAttributes({ 'service.name': service, 'service.instance.id': randomUUID() });
  const reader = new PeriodicExportingMetricReader({
    exporter: new OTLPMetricExporter({ url: `${otlp}/v1/metrics`, timeoutMillis: 5000 }),
    exportIntervalMillis: EXPORT_INTERVAL_MS,
    exportTimeoutMillis: EXPORT_INTERVAL_MS,
  });
  const meterProvider = new MeterProvider({ resource, readers: [reader] });
  const meter = meterProvider.getMeter('flowscope.sdk-interop');
  const counter = meter.createCounter(COUNTER, { unit: '1', description: 'requests served' });
  const upDown = meter.createUpDownCounter(UP_DOWN, { unit: '1', description: 'requests in flight' });
  const latency = meter.createHistogram(HISTOGRAM, { unit: 'ms', description: 'request latency' });
  let gaugeNow = ROUNDS[0].gauge;
  meter
    .createObservableGauge(GAUGE, { unit: 'Cel', description: 'temperature' })
    .addCallback((result) => result.observe(gaugeNow, { sensor: 'cpu0' }));

  const expected = { perRoute: Object.fromEntries(ROUTES.map((r) => [r, 0])), upDownNet: 0, latencies: [], gaugeValues: [] };
  let lastExportDone = 0;
  for (const [index, round] of ROUNDS.entries()) {
    for (const [route, amount] of Object.entries(round.adds)) {
      counter.add(amount, { route });
      expected.perRoute[route] += amount;
    }
    for (const change of round.upDown) {
      upDown.add(change);
      expected.upDownNet += change;
    }
    for (const value of round.latencies) {
      latency.record(value, { route: '/checkout' });
      expected.latencies.push(value);
    }
    gaugeNow = round.gauge;
    expected.gaugeValues.push(round.gauge);
    // The JS SDK stamps times in whole milliseconds: flushed in the same millisecond as the first
    // add, a cumulative point has start == time, which Flowscope (deliberately) takes as a baseline
    // of a counter that was already running. A real service's first export comes seconds later.
    await sleep(RECORD_TO_EXPORT_MS);
    // forceFlush collects and exports: when it resolves, the request has been answered.
    await meterProvider.forceFlush();
    lastExportDone = now();
    if (index === 0) {
      await measureFirstVisibility(checks, api, service, listener, lastExportDone);
    } else {
      // Let the periodic reader export too, between our flushes, as it would in a real service.
      await sleep(300);
    }
  }

  const tracerProvider = new BasicTracerProvider({
    resource,
    spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url: `${otlp}/v1/traces`, timeoutMillis: 5000 }))],
  });
  const tracer = tracerProvider.getTracer('flowscope.sdk-interop');
  const parent = tracer.startSpan('GET /checkout', { attributes: { 'http.route': '/checkout' } });
  const inParent = trace.setSpan(context.active(), parent);
  tracer.startSpan('SELECT orders', { attributes: { 'db.system': 'postgresql' } }, inParent).end();
  tracer.startSpan('cache get', { attributes: { 'db.system': 'redis' } }, inParent).end();
  parent.end();
  await tracerProvider.forceFlush();

  // (d) Exact values, within 2 s of the last export.
  await verifyValues(checks, api, service, listener, since, lastExportDone + VISIBLE_WITHIN_MS, expected);

  await meterProvider.shutdown();
  await tracerProvider.shutdown();
  listener.close();
  checks.check(exportErrors.length === 0, 'the SDK logged no export error', exportErrors.slice(0, 3).join('; '));
  return checks.finish();
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.log(`FAIL: [node/json] verifier crashed: ${error?.stack ?? error}`);
    process.exit(1);
  },
);
