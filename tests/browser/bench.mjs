#!/usr/bin/env node
// Browser benchmark: the pipeline page with a 100-node graph receiving 10 live updates per second
// (metrics for every node plus trace events animating along the edges), for a configurable time.
// Prints frame times (p50/p95/p99/max, from requestAnimationFrame), long tasks, and the JS heap
// after a forced garbage collection at the start and at the end (a growing heap would mean the
// page keeps what it should drop). Numbers are printed, never asserted; the checks only confirm
// the page kept working.
//
//   node tests/browser/bench.mjs                       # starts the mock server itself
//   BENCH_DURATION_S=60 node tests/browser/bench.mjs   # a shorter run
//
// Environment:
//   BENCH_DURATION_S   how long to measure (default 600 = 10 min)
//   BENCH_NODES        graph size (default 100)
//   BENCH_UPDATE_HZ    live updates per second (default 10)
//   BENCH_TRACES_PER_S trace events per second (default 20)
//   BENCH_PORT         port of the mock server it starts (default 18490)
//   BENCH_URL          use a running server instead of starting the mock
//   BENCH_TOKEN        that server's token, passed in the URL fragment (the mock's is mock-token)
//   CHROMIUM_PATH      browser binary (default /usr/bin/chromium)

import { join } from "node:path";
import { assert, Checks, launchBrowser, ManagedProcess, percentile, repoRoot, sleep, waitFor, waitForHttp } from "./lib.mjs";

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 600);
const NODES = Number(process.env.BENCH_NODES ?? 100);
const UPDATE_HZ = Number(process.env.BENCH_UPDATE_HZ ?? 10);
const TRACES_PER_S = Number(process.env.BENCH_TRACES_PER_S ?? 20);
const PORT = Number(process.env.BENCH_PORT ?? 18490);
const BASE_URL = process.env.BENCH_URL ?? `http://127.0.0.1:${PORT}`;
const WARMUP_MS = 10_000;

const checks = new Checks();
const mock = process.env.BENCH_URL
  ? null
  : new ManagedProcess(
      "bench-mock-server",
      process.execPath,
      [
        "dashboard/dev/mock-server.mjs",
        "--port",
        String(PORT),
        "--nodes",
        String(NODES),
        "--update-hz",
        String(UPDATE_HZ),
        "--traces-per-s",
        String(TRACES_PER_S),
      ],
      join(repoRoot, "build/browser-bench"),
    );

const mb = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const ms = (value) => `${value.toFixed(1)} ms`;

/** Used JS heap after a full garbage collection, plus the page's own counters. */
async function snapshot(page, cdp) {
  await cdp.send("HeapProfiler.collectGarbage");
  const { metrics } = await cdp.send("Performance.getMetrics");
  const metric = (name) => metrics.find((m) => m.name === name)?.value ?? Number.NaN;
  const page_ = await page.evaluate(() => ({
    info: window.flowscope?.debugInfo() ?? {},
    domNodes: document.getElementsByTagName("*").length,
  }));
  return { heap: metric("JSHeapUsedSize"), nodes: metric("Nodes"), ...page_ };
}

async function main() {
  if (mock !== null) {
    await mock.start();
    await waitForHttp(`${BASE_URL}/config.json`, 120_000);
  }
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    let frames = 0;
    page.on("websocket", (ws) => ws.on("framereceived", () => (frames += 1)));
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Performance.enable");

    // The mock's token (or BENCH_TOKEN for a running server) in the fragment, as a shared link would.
    const token = process.env.BENCH_TOKEN ?? (mock === null ? "" : "mock-token");
    await page.goto(`${BASE_URL}/#/pipeline${token === "" ? "" : `?token=${encodeURIComponent(token)}`}`);
    await checks.run(`the graph shows ${NODES} nodes`, async () => {
      await waitFor(`${NODES} nodes`, async () => (await page.locator("[data-node]").count()) >= NODES, 60_000);
    });
    await checks.run("the page is live", async () => {
      await waitFor("status Live", async () => (await page.getByTestId("connection-status").getAttribute("data-state")) === "live", 30_000);
    });
    await sleep(WARMUP_MS);

    const start = await snapshot(page, cdp);
    const framesAtStart = frames;
    // Frame times: the gap between consecutive animation frames, recorded in the page.
    await page.evaluate(() => {
      const state = { deltas: [], longTasks: 0, longTaskMs: 0 };
      window.__bench = state;
      let last = performance.now();
      const loop = (now) => {
        state.deltas.push(now - last);
        last = now;
        requestAnimationFrame(loop);
      };
      requestAnimationFrame(loop);
      new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) {
          state.longTasks += 1;
          state.longTaskMs += entry.duration;
        }
      }).observe({ type: "longtask", buffered: false });
    });
    console.log(`measuring for ${DURATION_S} s: ${NODES} nodes, ${UPDATE_HZ} updates/s, ${TRACES_PER_S} traces/s`);
    const began = Date.now();
    while (Date.now() - began < DURATION_S * 1000) {
      await sleep(Math.min(60_000, DURATION_S * 1000 - (Date.now() - began)));
      const elapsed = Math.round((Date.now() - began) / 1000);
      if (elapsed < DURATION_S) console.log(`  … ${elapsed} s`);
    }
    const measured = await page.evaluate(() => {
      const state = window.__bench;
      return { deltas: state.deltas.slice(1), longTasks: state.longTasks, longTaskMs: state.longTaskMs };
    });
    const end = await snapshot(page, cdp);
    const messages = frames - framesAtStart;

    const sorted = [...measured.deltas].sort((a, b) => a - b);
    console.log("");
    console.log(`frames:            ${sorted.length} in ${DURATION_S} s (${(sorted.length / DURATION_S).toFixed(1)} fps)`);
    console.log(
      `frame time:        p50 ${ms(percentile(sorted, 0.5))} · p95 ${ms(percentile(sorted, 0.95))} · p99 ${ms(percentile(sorted, 0.99))} · max ${ms(sorted.at(-1) ?? Number.NaN)}`,
    );
    console.log(`long tasks (>50ms): ${measured.longTasks} (${ms(measured.longTaskMs)} in total)`);
    console.log(`JS heap (after GC): start ${mb(start.heap)} · end ${mb(end.heap)} · change ${mb(end.heap - start.heap)}`);
    console.log(`DOM elements:      start ${start.domNodes} · end ${end.domNodes}`);
    console.log(`WebSocket frames:  ${messages} (${(messages / DURATION_S).toFixed(1)}/s)`);
    console.log(`page state at end: ${JSON.stringify(end.info)}`);

    await checks.run("updates kept arriving", async () => {
      assert(messages > 0, "no WebSocket frames during the run");
    });
    await checks.run("the page is still live and whole at the end", async () => {
      assert((await page.getByTestId("connection-status").getAttribute("data-state")) === "live", "not live");
      assert((await page.locator("[data-node]").count()) >= NODES, "nodes went missing");
      assert((end.info.traces ?? 0) <= 100, `${end.info.traces} traces held`);
    });
    await checks.run("no uncaught errors in the page", async () => {
      assert(errors.length === 0, errors.join(" | "));
    });
    await page.screenshot({ path: join(repoRoot, "build/screenshots/bench-100-nodes.png") });
  } finally {
    await browser.close();
  }
}

try {
  await main();
} catch (error) {
  checks.fail("benchmark session", error);
} finally {
  await mock?.stop().catch(() => {});
}
console.log(checks.summary());
process.exit(checks.failed > 0 ? 1 : 0);
