#!/usr/bin/env node
// End-to-end check of the dashboard in a real browser (the system's Chromium, never a downloaded
// one). The script starts what it tests, so it can also restart it:
//
//   # flowscope local + load generator (built with `cargo build -p flowscope-cli`):
//   FLOWSCOPE_BIN=target/debug/flowscope node tests/browser/dashboard.mjs
//   # the mock server (dashboard/dev/mock-server.mjs), no Rust needed:
//   FLOWSCOPE_MOCK=1 node tests/browser/dashboard.mjs
//   # something already running (the restart check is then skipped):
//   FLOWSCOPE_URL=http://127.0.0.1:8080 node tests/browser/dashboard.mjs
//
// Environment:
//   FLOWSCOPE_BIN          `flowscope` binary: start `flowscope local` and `flowscope loadgen`
//   FLOWSCOPE_MOCK=1       start the mock server instead
//   FLOWSCOPE_URL          use a running server (neither of the above)
//   FLOWSCOPE_HTTP_PORT    dashboard/API port of the started server (default 18480)
//   FLOWSCOPE_OTLP_PORT    OTLP port of the started server (default 18418)
//   FLOWSCOPE_DATA_DIR     data dir of the started server (default: a fresh one under build/)
//   FLOWSCOPE_LOCAL_ARGS   extra arguments for `flowscope local`
//   FLOWSCOPE_TOKEN        the server's token: given to a started server as --token (default
//                          browser-test-token); the page gets it from the URL fragment (#…?token=),
//                          never from config.json. "" = a server without a token.
//   FLOWSCOPE_ALERT_RULES  rules file for the started server (default: one written by this script,
//                          with a fast error-spike rule: 1-minute window, fires at once)
//   FLOWSCOPE_SERVICES     services that must appear (default auth,api,database,cache,queue)
//   FLOWSCOPE_SPIKE_SERVICE  service the spike hits (default api)
//   FLOWSCOPE_TIMEOUT_S    how long to wait for each thing to happen (default 90)
//   FLOWSCOPE_WARMUP_S     let the started server collect data this long first (default 0; a
//                          couple of minutes give screenshots with settled rates)
//   FLOWSCOPE_SCREENSHOTS  where screenshots go (default <repo>/build/screenshots)
//   CHROMIUM_PATH          browser binary (default /usr/bin/chromium)
//
// The spike: against the mock, POST /__mock/spike; against flowscope local, the script exports a
// burst of failed requests for one service over OTLP/JSON (http.server.requests and
// http.server.errors, delta temporality), which any error-rate rule sees. The shipped rules wait
// minutes before firing (5-minute windows, `for: 2m`), so by default the started server gets a rules
// file with one quick rule; the alert then fires once the spike's minute has closed.
//
// Prints one line per check and `N passed, N failed` last; exits non-zero when any check failed.

import { mkdir, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import {
  assert,
  Checks,
  launchBrowser,
  ManagedProcess,
  repoRoot,
  sleep,
  Skip,
  waitFor,
  waitForHttp,
} from "./lib.mjs";
import { checkPages, dashboardPages, EXPLORE_EXPR } from "./a11y.mjs";

const BIN = process.env.FLOWSCOPE_BIN ? resolve(process.env.FLOWSCOPE_BIN) : null;
const MOCK = process.env.FLOWSCOPE_MOCK === "1";
const HTTP_PORT = Number(process.env.FLOWSCOPE_HTTP_PORT ?? 18480);
const OTLP_PORT = Number(process.env.FLOWSCOPE_OTLP_PORT ?? 18418);
const MANAGED = BIN !== null || MOCK;
const TOKEN = process.env.FLOWSCOPE_TOKEN ?? (MANAGED ? "browser-test-token" : "");
const TOKEN_ARGS = TOKEN === "" ? [] : ["--token", TOKEN];
const BASE_URL = MANAGED ? `http://127.0.0.1:${HTTP_PORT}` : (process.env.FLOWSCOPE_URL ?? "http://127.0.0.1:8080");
const SERVICES = (process.env.FLOWSCOPE_SERVICES ?? "auth,api,database,cache,queue")
  .split(",")
  .map((s) => s.trim())
  .filter(Boolean);
const SPIKE_SERVICE = process.env.FLOWSCOPE_SPIKE_SERVICE ?? "api";
const TIMEOUT_MS = Number(process.env.FLOWSCOPE_TIMEOUT_S ?? 90) * 1000;
const WARMUP_MS = Number(process.env.FLOWSCOPE_WARMUP_S ?? 0) * 1000;
const SCREENSHOTS = resolve(process.env.FLOWSCOPE_SCREENSHOTS ?? join(repoRoot, "build/screenshots"));
const LOGS = join(repoRoot, "build/browser-test");
/** A data dir the script made up is its own to delete at the end; a given one is left alone. */
const OWN_DATA_DIR = process.env.FLOWSCOPE_DATA_DIR === undefined;
const DATA_DIR = resolve(process.env.FLOWSCOPE_DATA_DIR ?? join(LOGS, `data-${process.pid}`));

const checks = new Checks();

const SPIKE_RULES = `# Written by tests/browser/dashboard.mjs: one rule that fires within a minute of a spike.
version: 1
settings:
  evaluation_delay: 0s
rules:
  - name: browser-test-error-spike
    description: share of HTTP requests that failed (the browser test's spike)
    ratio:
      numerator: { metric: http.server.errors }
      denominator: { metric: http.server.requests }
    aggregation: rate
    scale: 100
    unit: "%"
    window: 1m
    condition: above
    critical: 20
`;

// ---- what the script starts ---------------------------------------------------------------------

function serverProcess() {
  if (MOCK) {
    return new ManagedProcess(
      "mock-server",
      process.execPath,
      ["dashboard/dev/mock-server.mjs", "--port", String(HTTP_PORT), "--token", TOKEN],
      LOGS,
    );
  }
  const extra = (process.env.FLOWSCOPE_LOCAL_ARGS ?? "").split(/\s+/).filter(Boolean);
  return new ManagedProcess(
    "flowscope-local",
    BIN,
    [
      "local",
      "--http-addr",
      `127.0.0.1:${HTTP_PORT}`,
      "--otlp-addr",
      `127.0.0.1:${OTLP_PORT}`,
      "--data-dir",
      DATA_DIR,
      "--dashboard-dir",
      join(repoRoot, "dashboard/dist"),
      ...TOKEN_ARGS,
      ...extra,
    ],
    LOGS,
    {
      RUST_LOG: process.env.RUST_LOG ?? "info",
      FLOWSCOPE_ALERT_RULES: process.env.FLOWSCOPE_ALERT_RULES ?? join(LOGS, "spike-rules.yaml"),
    },
  );
}

const server = MANAGED ? serverProcess() : null;
const loadgen =
  BIN !== null
    ? new ManagedProcess("flowscope-loadgen", BIN, ["loadgen", "--endpoint", `http://127.0.0.1:${OTLP_PORT}`, "--quiet"], LOGS)
    : null;

/** When the started server last came up (ms): its first minute is only partly covered by data. */
let serverStartedAt = Date.now();

async function startServer() {
  serverStartedAt = Date.now();
  await server.start();
  await waitForHttp(`${BASE_URL}/config.json`, 60_000);
}

/** A burst of failed requests for one service, as an SDK would export them (delta sums). */
function spikeBody(service, nowNanos) {
  const point = (value) => ({
    asInt: String(value),
    startTimeUnixNano: String(nowNanos - 10_000_000_000n),
    timeUnixNano: String(nowNanos),
    attributes: [{ key: "flowscope.test", value: { stringValue: "spike" } }],
  });
  const sum = (name, unit, value) => ({
    name,
    unit,
    sum: { aggregationTemporality: 1, isMonotonic: true, dataPoints: [point(value)] },
  });
  return {
    resourceMetrics: [
      {
        resource: { attributes: [{ key: "service.name", value: { stringValue: service } }] },
        scopeMetrics: [
          {
            scope: { name: "flowscope-browser-test" },
            metrics: [sum("http.server.requests", "{request}", 50_000), sum("http.server.errors", "{error}", 50_000)],
          },
        ],
      },
    ],
  };
}

async function spike() {
  if (MOCK || !MANAGED) {
    const response = await fetch(`${BASE_URL}/__mock/spike?service=${SPIKE_SERVICE}&seconds=90`, { method: "POST" }).catch(() => null);
    if (response?.ok) return;
    if (!MANAGED) throw new Skip("no way to cause a spike on this server (not the mock, not started by this script)");
  }
  // As an OTel SDK does: a 429/503 (backpressure while the aggregator catches up) is retried after
  // its Retry-After, until a deadline.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const response = await fetch(`http://127.0.0.1:${OTLP_PORT}/v1/metrics`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(spikeBody(SPIKE_SERVICE, BigInt(Date.now()) * 1_000_000n)),
    });
    const retryable = response.status === 429 || response.status === 503;
    if (response.ok || !retryable || Date.now() > deadline) {
      assert(response.ok, `OTLP export of the spike answered HTTP ${response.status}`);
      return;
    }
    const seconds = Number(response.headers.get("retry-after") ?? "1");
    await new Promise((resolve) => setTimeout(resolve, 1000 * (Number.isFinite(seconds) && seconds > 0 ? seconds : 1)));
  }
}

// ---- page probes --------------------------------------------------------------------------------

/** Everything on a page that live data can change: stat texts and chart point counts. */
async function liveSignature(page) {
  return page.evaluate(() => ({
    stats: [...document.querySelectorAll("[data-testid^='stat-'], [data-testid^='overview-']")]
      .filter((e) => e.closest("[hidden]") === null)
      .map((e) => e.textContent ?? ""),
    points: [...document.querySelectorAll("[data-chart]")].map((e) => Number(e.getAttribute("data-points"))),
  }));
}

async function waitForChange(page, what, timeoutMs = TIMEOUT_MS) {
  const before = await liveSignature(page);
  await waitFor(what, async () => {
    const now = await liveSignature(page);
    const statChanged = now.stats.some((text, i) => text !== before.stats[i] && text !== "—");
    const chartGrew = now.points.some((n, i) => n > (before.points[i] ?? 0));
    return statChanged || chartGrew;
  }, timeoutMs);
}

/** "1.23k req/s" → 1230; null for "—". */
function parseRate(text) {
  const match = /([\d.]+)\s*([kMG]?)/.exec(text ?? "");
  if (match === null) return null;
  return Number(match[1]) * { "": 1, k: 1e3, M: 1e6, G: 1e9 }[match[2]];
}

/** One service's rate as the sidebar, the details panel's card and the graph node show it, read in one go. */
async function ratesOnScreen(page, service) {
  const texts = await page.evaluate((name) => ({
    sidebar: document.querySelector(`a.service-link[data-service='${name}'] .service-throughput`)?.textContent ?? null,
    card: document.querySelector("[data-testid='details-panel'] [data-testid='stat-throughput']")?.textContent ?? null,
    node: document.querySelector(`[data-node='${name}']`)?.getAttribute("data-rate") ?? null,
  }), service);
  return { texts, sidebar: parseRate(texts.sidebar), card: parseRate(texts.card), node: texts.node ? Number(texts.node) : null };
}

async function noSidewaysScroll(page) {
  return page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
}

// ---- the checks -----------------------------------------------------------------------------------

async function main() {
  await mkdir(SCREENSHOTS, { recursive: true });
  await mkdir(LOGS, { recursive: true });
  if (BIN !== null && process.env.FLOWSCOPE_ALERT_RULES === undefined) {
    await writeFile(join(LOGS, "spike-rules.yaml"), SPIKE_RULES);
  }
  if (MANAGED) {
    const started = await checks.run(`start ${MOCK ? "the mock server" : "flowscope local and the load generator"}`, async () => {
      await startServer();
      await loadgen?.start();
    });
    if (!started) return;
    if (WARMUP_MS > 0) {
      console.log(`# warming up for ${WARMUP_MS / 1000} s`);
      await sleep(WARMUP_MS);
    }
  }
  const browser = await launchBrowser();
  const pageErrors = [];
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    const page = await context.newPage();
    page.on("pageerror", (error) => pageErrors.push(error.message));
    const status = page.getByTestId("connection-status");
    const shot = (name, fullPage = false) => page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage });

    if (TOKEN !== "") {
      await checks.run("config.json is public and carries no token", async () => {
        const response = await fetch(`${BASE_URL}/config.json`);
        const text = await response.text();
        assert(response.ok, `HTTP ${response.status}`);
        assert(!text.includes(TOKEN), `config.json holds the token: ${text}`);
        assert(JSON.parse(text).auth === "token", `config.json does not say a token is needed: ${text}`);
      });

      await checks.run("without a token the page asks for it; a wrong one shows the server's reason", async () => {
        const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
        try {
          const fresh = await context.newPage();
          fresh.on("pageerror", (error) => pageErrors.push(error.message));
          await fresh.goto(`${BASE_URL}/#/overview`, { waitUntil: "domcontentloaded", timeout: 30_000 });
          const field = fresh.getByLabel("Access token");
          await field.waitFor({ timeout: 10_000 });
          const focused = await fresh.evaluate(() => document.activeElement?.id);
          assert(focused === "sign-in-token", `focus is on ${focused}, not the token field`);
          await field.fill("not-the-token");
          await fresh.getByRole("button", { name: "Sign in" }).click();
          const message = fresh.getByTestId("sign-in-message");
          await waitFor("the server's reason", async () => /invalid credential/.test((await message.textContent()) ?? ""), 10_000);
          await fresh.screenshot({ path: join(SCREENSHOTS, "sign-in-refused.png") });
          await field.fill(TOKEN);
          await fresh.getByRole("button", { name: "Sign in" }).click();
          await waitFor("the prompt to go", async () => (await fresh.getByTestId("sign-in").count()) === 0, 10_000);
          await waitFor("status Live", async () => (await fresh.getByTestId("connection-status").getAttribute("data-state")) === "live", TIMEOUT_MS);
          const kept = await fresh.evaluate(() => [sessionStorage.getItem("flowscope.token"), localStorage.length]);
          assert(kept[0] === TOKEN && kept[1] === 0, `token kept as ${JSON.stringify(kept)} (sessionStorage only)`);
        } finally {
          await context.close();
        }
      });
    }

    await checks.run("page loads", async () => {
      // The token comes in the URL fragment (never sent to the server) and leaves the address bar.
      const fragment = TOKEN === "" ? "#/overview" : `#/overview?token=${encodeURIComponent(TOKEN)}`;
      const response = await page.goto(`${BASE_URL}/${fragment}`, { waitUntil: "domcontentloaded", timeout: 30_000 });
      assert(response !== null && response.ok(), `HTTP ${response?.status()} for ${BASE_URL}`);
      assert((await page.title()) === "Flowscope", `title is ${JSON.stringify(await page.title())}`);
      if (TOKEN !== "") {
        await waitFor("the token out of the address bar", async () => page.url().endsWith("#/overview"), 10_000);
      }
    });

    await checks.run("connection status reads Live", async () => {
      await waitFor("status Live", async () => (await status.getAttribute("data-state")) === "live", TIMEOUT_MS);
      const text = (await status.textContent()) ?? "";
      assert(/live/i.test(text), `status text is ${JSON.stringify(text)}`);
    });

    await checks.run(`service list shows ${SERVICES.join(", ")}`, async () => {
      await waitFor("all services in the list", async () => {
        const shown = await page.locator("a.service-link").evaluateAll((links) => links.map((l) => l.getAttribute("data-service")));
        return SERVICES.every((s) => shown.includes(s));
      }, TIMEOUT_MS);
    });

    await checks.run("overview: stat cards, charts with history and a heatmap", async () => {
      assert((await page.locator("[data-overview-stat]").count()) === 4, "expected 4 stat cards");
      await waitFor("overview charts with points", async () => {
        const points = await page.locator(".overview [data-chart]").evaluateAll((charts) =>
          charts.map((c) => Number(c.getAttribute("data-points"))),
        );
        return points.length === 4 && points.every((n) => n > 0);
      }, TIMEOUT_MS);
      await waitFor("a throughput figure", async () => (await page.getByTestId("overview-throughput").textContent()) !== "—", TIMEOUT_MS);
    });

    await checks.run("a chart updates with live data", async () => {
      await waitForChange(page, "an overview stat or chart to change");
    });

    await checks.run("the newest throughput point is never 0 while data flows, across a minute boundary", async () => {
      const chart = page.locator("[data-chart='overview-throughput']");
      // Sample from just before a minute starts until 25 s into it: the new bucket is then the newest
      // and used to be stacked as 0 (a drop to the floor at the start of every minute). Not in the
      // server's first minute, which only part of holds data (unit tests cover start-up).
      await waitFor("a few seconds before a minute, a minute after start-up", async () => {
        const second = new Date().getSeconds();
        return second >= 50 && second <= 57 && Date.now() - serverStartedAt > 70_000;
      }, 150_000);
      const until = Date.now() + 35_000;
      const seen = [];
      while (Date.now() < until) {
        const newest = JSON.parse((await chart.getAttribute("data-newest")) ?? "[]");
        const total = newest.reduce((sum, v) => sum + (v ?? 0), 0);
        seen.push(total);
        assert(newest.length > 0, "the throughput chart has no newest point");
        assert(newest.every((v) => v === null || v > 0) && total > 0, `newest throughput point ${JSON.stringify(newest)} at :${new Date().getSeconds()}`);
        await page.waitForTimeout(1000);
      }
      // No ramp either: the smallest total is not far below the largest.
      assert(Math.min(...seen) > 0.5 * Math.max(...seen), `newest throughput moved from ${Math.min(...seen)} to ${Math.max(...seen)}`);
    });
    await shot("overview-1280x720");
    await shot("overview-1280-full", true);

    await checks.run(`pipeline graph shows ${SERVICES.join(", ")} and the calls between them`, async () => {
      await page.goto(`${BASE_URL}/#/pipeline`);
      await waitFor("every service as a node", async () => {
        const nodes = await page.locator("[data-node]").evaluateAll((n) => n.map((e) => e.getAttribute("data-node")));
        return SERVICES.every((s) => nodes.includes(s));
      }, TIMEOUT_MS);
      await waitFor("edges between the services, each service on at least one", async () => {
        const edges = await page.locator("[data-edge]").evaluateAll((e) => e.map((x) => x.getAttribute("data-edge")));
        const between = edges.map((e) => e.split("→")).filter(([a, b]) => SERVICES.includes(a) && SERVICES.includes(b));
        return between.length >= SERVICES.length - 1 && SERVICES.every((s) => between.some(([a, b]) => a === s || b === s));
      }, TIMEOUT_MS);
      const health = await page.locator("[data-node]").evaluateAll((n) => n.map((e) => e.getAttribute("data-health")));
      assert(health.every((h) => ["ok", "degraded", "failing", "no_data"].includes(h)), `node health ${health}`);
      const label = await page.locator(`[data-node='${SERVICES[0]}']`).getAttribute("aria-label");
      assert(label !== null && label.startsWith(SERVICES[0]), `node has no accessible name: ${label}`);
    });
    await checks.run("live traces animate along the graph's edges", async () => {
      // A dot is only sent along an edge the graph draws: this also proves that the services named
      // by trace events are the graph's nodes.
      await waitFor("a trace dot on an edge", async () => {
        const info = await page.evaluate(() => window.flowscope?.debugInfo());
        return (info?.animatedParticles ?? 0) > 0;
      }, TIMEOUT_MS);
    });
    await shot("pipeline-1280x720");

    await checks.run("clicking a node opens its details", async () => {
      const service = SERVICES.includes("api") ? "api" : SERVICES[0];
      await page.locator(`[data-node='${service}']`).click();
      await waitFor("the details panel", async () => (await page.getByTestId("service-title").textContent()) === service, 10_000);
      assert(page.url().endsWith(`#/pipeline/${service}`), `URL is ${page.url()}`);
      assert(await page.getByTestId("details-panel").isVisible(), "panel not visible");
      assert((await page.locator("[data-testid='details-panel'] [data-stat]").count()) === 5, "expected 5 stat cards");
      assert((await page.locator("[data-testid='details-panel'] [data-chart]").count()) === 3, "expected 3 charts");
      await waitFor("charts with points", async () => {
        const points = await page.locator("[data-testid='details-panel'] [data-chart]").evaluateAll((c) =>
          c.map((e) => Number(e.getAttribute("data-points"))),
        );
        return points.some((n) => n > 0);
      }, TIMEOUT_MS);
      assert((await page.getByTestId("red-summary").textContent())?.includes("p95"), "no RED numbers");
    });
    await shot("pipeline-details-1280x720");

    await checks.run("one service's rate is the same in the sidebar, the card and the graph node (within 5 %)", async () => {
      const service = SERVICES.includes("api") ? "api" : SERVICES[0];
      let last = null;
      await waitFor("the three readings to agree", async () => {
        last = await ratesOnScreen(page, service);
        const { sidebar, card, node } = last;
        if (sidebar === null || card === null || node === null || node <= 0) return false;
        return Math.abs(sidebar - node) <= 0.05 * node && Math.abs(card - node) <= 0.05 * node;
      }, 30_000).catch(() => {
        throw new Error(`rates disagree: ${JSON.stringify(last)}`);
      });
    });

    await checks.run("the graph zooms, pans and fits (buttons, keys, wheel)", async () => {
      const graph = page.getByTestId("graph");
      const zoom = async () => Number(await graph.getAttribute("data-zoom"));
      const fitted = await zoom();
      assert(fitted > 0, `no zoom level on the graph: ${fitted}`);
      await page.getByTestId("graph-zoom-in").click();
      assert((await zoom()) > fitted, "the + button did not zoom in");
      await page.locator(".node[tabindex='0']").focus();
      await page.keyboard.press("0");
      assert(Math.abs((await zoom()) - fitted) < 1e-3, "0 did not fit the graph again");
      await page.keyboard.press("-");
      assert((await zoom()) < fitted, "- did not zoom out");
      const box = await graph.boundingBox();
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      const before = await zoom();
      await page.mouse.wheel(0, -300);
      await waitFor("the wheel to zoom in", async () => (await zoom()) > before, 5_000);
      // Dragging the background pans (a press on a node would select it instead).
      const transform = () => page.locator(".graph-scene").getAttribute("transform");
      const beforeDrag = await transform();
      await page.mouse.move(box.x + 6, box.y + 6);
      await page.mouse.down();
      await page.mouse.move(box.x + 86, box.y + 46, { steps: 4 });
      await page.mouse.up();
      assert((await transform()) !== beforeDrag, `dragging did not pan (${beforeDrag})`);
      // The drawing fills its box: the fitted graph uses most of the width or the height.
      await page.getByTestId("graph-fit").click();
      const used = await page.evaluate(() => {
        const scene = document.querySelector(".graph-scene")?.getBoundingClientRect();
        const port = document.querySelector("[data-testid='graph']")?.getBoundingClientRect();
        return scene && port ? Math.max(scene.width / port.width, scene.height / port.height) : 0;
      });
      assert(used > 0.75, `the fitted graph uses only ${(used * 100).toFixed(0)} % of its box`);
    });

    // The global time range (under the header) drives every view and lives in the URL.
    const detailCharts = "[data-testid='details-panel'] [data-chart]";
    const chartSpans = () =>
      page.locator(detailCharts).evaluateAll((charts) =>
        charts.map((c) => ({ from: Number(c.getAttribute("data-from")), to: Number(c.getAttribute("data-to")), points: Number(c.getAttribute("data-points")) })),
      );
    const hashParams = () => page.evaluate(() => Object.fromEntries(new URLSearchParams(location.hash.replace(/^[^?]*\??/, ""))));
    const spansAbout = (spans, seconds) => spans.length > 0 && spans.every((s) => Math.abs(s.to - s.from - seconds) <= 90);

    await checks.run("the time-range picker sets every chart's range and the URL; a reload restores it", async () => {
      await page.locator("[data-testid='time-range'] [data-value='24h']").click();
      await waitFor("t=24h in the URL", async () => (await hashParams()).t === "24h", 5_000, 100);
      // The URL changes first; the picker and the note follow on the hashchange event.
      await waitFor("the picker to say 24 hours", async () => (await page.getByTestId("time-summary").textContent()) === "Last 24 hours", 5_000, 100);
      await waitFor("24 h to read 5 min buckets", async () => /5m buckets/.test((await page.getByTestId("range-note").textContent()) ?? ""), 5_000, 100);
      await waitFor("24 h charts with points", async () => {
        const spans = await chartSpans();
        return spansAbout(spans, 86_400) && spans.some((s) => s.points > 0);
      }, TIMEOUT_MS);
      const url = page.url();
      assert(url.includes(`/pipeline/`), `the selection left the URL: ${url}`);
      await page.reload({ waitUntil: "domcontentloaded" });
      await waitFor("the 24 h range back after the reload", async () => spansAbout(await chartSpans(), 86_400), TIMEOUT_MS);
      assert((await page.getByTestId("time-summary").textContent()) === "Last 24 hours", "the reload lost the range");
      assert((await page.getByTestId("service-title").textContent()) === (SERVICES.includes("api") ? "api" : SERVICES[0]), "the reload lost the selection");
      // Zoom in halves the range, zoom out doubles it; resolution is in the URL too.
      await page.getByTestId("time-zoom-in").click();
      await waitFor("t=12h", async () => (await hashParams()).t === "12h", 5_000, 100);
      await page.getByTestId("time-zoom-out").click();
      await waitFor("t=24h again", async () => (await hashParams()).t === "24h", 5_000, 100);
      await page.getByTestId("time-resolution").selectOption("1h");
      await waitFor("res=1h", async () => (await hashParams()).res === "1h", 5_000, 100);
      assert(/1h buckets/.test((await page.getByTestId("range-note").textContent()) ?? ""), "resolution 1 h not applied");
      await page.locator("[data-testid='time-range'] [data-value='15m']").click();
      await waitFor("15 min charts", async () => spansAbout(await chartSpans(), 900), TIMEOUT_MS);
      assert((await hashParams()).res === undefined, "a new range should bring its own resolution");
    });

    await checks.run("dragging across a chart zooms every view to that time; hovering shows every series' value", async () => {
      const over = page.locator("[data-testid='details-panel'] [data-chart='throughput'] .u-over");
      await waitFor("the throughput chart", async () => (await over.count()) === 1, TIMEOUT_MS);
      await over.scrollIntoViewIfNeeded();
      const box = await over.boundingBox();
      assert(box !== null, "no plot area");
      // Hover: the tooltip names the time and each line (requests/s, errors/s).
      await page.mouse.move(box.x + box.width * 0.9, box.y + box.height / 2);
      const tooltip = page.locator("[data-testid='details-panel'] [data-chart='throughput'] [data-testid='chart-tooltip']");
      await waitFor("the tooltip", async () => !(await tooltip.isHidden()), 5_000, 100);
      const rows = await tooltip.locator(".tooltip-row").allTextContents();
      assert(rows.length === 2 && /requests\/s/.test(rows[0]) && /errors\/s/.test(rows[1]), `tooltip rows: ${JSON.stringify(rows)}`);
      await page.mouse.move(box.x + box.width * 0.3, box.y + box.height / 2);
      await page.mouse.down();
      await page.mouse.move(box.x + box.width * 0.7, box.y + box.height / 2, { steps: 5 });
      await page.mouse.up();
      await waitFor("an absolute range in the URL", async () => /^\d+-\d+$/.test((await hashParams()).t ?? ""), 5_000, 100);
      const [from, to] = (await hashParams()).t.split("-").map(Number);
      // 40 % of 15 minutes: 6 minutes.
      assert(Math.abs(to - from - 360) <= 60, `the drag picked ${to - from} s, not about 360 s`);
      await waitFor("the picker to show an absolute range", async () => (await page.getByTestId("time-picker").getAttribute("data-kind")) === "absolute", 5_000, 100);
      await waitFor("every chart on the dragged range", async () => (await chartSpans()).every((s) => s.from === from && s.to === to), 10_000, 100);
      await page.locator("[data-testid='time-range'] [data-value='1h']").click();
      await waitFor("t=1h", async () => (await hashParams()).t === "1h", 5_000, 100);
    });

    await checks.run("the overview's charts follow the time range (6 h: history at 5-minute buckets)", async () => {
      await page.goto(`${BASE_URL}/#/overview?t=6h`);
      const throughput = page.locator("[data-chart='overview-throughput']");
      await waitFor("a 6 h throughput chart with points", async () => {
        const [from, to, points] = await throughput.evaluate((c) => [c.dataset.from, c.dataset.to, c.dataset.points].map(Number));
        return Math.abs(to - from - 21_600) <= 90 && points > 0;
      }, TIMEOUT_MS);
      // The header's links carry no range: the one in use stays, and is written back into the URL.
      await page.locator("[data-nav='services']").click();
      await waitFor("t=6h kept on the Services page", async () => (await hashParams()).t === "6h", 5_000, 100);
      const score = page.locator("[data-chart='health-score-history']");
      await waitFor("the score history over 6 h", async () => {
        const [from, to] = await score.evaluate((c) => [c.dataset.from, c.dataset.to].map(Number));
        return Math.abs(to - from - 21_600) <= 90;
      }, TIMEOUT_MS);
      await page.goto(`${BASE_URL}/#/pipeline/${SERVICES.includes("api") ? "api" : SERVICES[0]}?t=1h`);
      await waitFor("the details panel", async () => (await page.getByTestId("service-title").count()) > 0, TIMEOUT_MS);
    });

    await checks.run("a recent trace opens as a waterfall with its critical path", async () => {
      const link = page.locator("[data-testid='recent-traces'] a.trace-link").first();
      await waitFor("a recent trace", async () => (await link.count()) > 0, TIMEOUT_MS);
      await link.click();
      await waitFor("the waterfall", async () => (await page.locator(".waterfall-row").count()) > 0, 20_000);
      const critical = await page.locator(".waterfall-row[data-critical='true']").count();
      assert(critical >= 1, "no span on the critical path");
      await shot("trace-1280x720");
      await page.goBack();
    });

    await checks.run("keyboard: arrows move between nodes, Enter opens, Escape closes", async () => {
      await page.goto(`${BASE_URL}/#/pipeline`);
      await waitFor("nodes", async () => (await page.locator("[data-node]").count()) >= SERVICES.length, TIMEOUT_MS);
      const first = page.locator(".node[tabindex='0']");
      assert((await first.count()) === 1, "exactly one node should be in the tab order");
      await first.focus();
      const start = await page.evaluate(() => document.activeElement?.getAttribute("data-node"));
      let moved = null;
      for (const key of ["ArrowRight", "ArrowDown", "ArrowLeft", "ArrowUp"]) {
        await page.keyboard.press(key);
        moved = await page.evaluate(() => document.activeElement?.getAttribute("data-node"));
        if (moved && moved !== start) break;
      }
      assert(moved && moved !== start, `arrow keys left focus on ${moved}`);
      await page.keyboard.press("Enter");
      await waitFor(`details of ${moved}`, async () => (await page.getByTestId("service-title").textContent()) === moved, 10_000);
      await page.locator(`[data-node='${moved}']`).focus();
      await page.keyboard.press("Escape");
      await waitFor("the panel to close", async () => page.url().endsWith("#/pipeline"), 10_000);
    });

    await checks.run("an alert toast appears on a spike, and can be acknowledged", async () => {
      await page.goto(`${BASE_URL}/#/overview`);
      const toast = page.locator("[data-testid='toast'][data-alert]");
      const deadline = Date.now() + Math.max(TIMEOUT_MS, 180_000);
      // Keep the spike going until an alert fires: rules look at a window of recent minutes.
      while ((await toast.count()) === 0) {
        assert(Date.now() < deadline, "no alert toast within the timeout");
        await spike();
        await sleep(5000);
      }
      await shot("alert-toast-1280x720");
      const text = (await toast.first().textContent()) ?? "";
      assert(text.length > 0, "empty toast");
      await toast.first().getByRole("button", { name: "Acknowledge" }).click();
      await waitFor("the acknowledged toast to go", async () => (await toast.count()) === 0 || !(await toast.first().isVisible()), 15_000).catch(() => {
        throw new Error("acknowledging from the toast did not succeed");
      });
      await waitFor("the alert in the overview's list", async () => (await page.locator("[data-testid='overview-alerts'] [data-alert]").count()) > 0, 20_000);
    });

    await checks.run("alerts page lists active alerts and rules", async () => {
      await page.goto(`${BASE_URL}/#/alerts`);
      await waitFor("an active alert", async () => (await page.locator("[data-testid='active-alerts'] [data-alert]").count()) > 0, 20_000);
      await shot("alerts-1280x720", true);
    });

    await checks.run("the Explore page runs an expression from the URL, draws a chart and a table, and completes a metric name", async () => {
      await page.goto(`${BASE_URL}/#/explore?expr=${encodeURIComponent(EXPLORE_EXPR)}&t=15m`);
      const input = page.getByTestId("explore-input");
      await waitFor("the expression restored from the URL", async () => (await input.inputValue()) === EXPLORE_EXPR, 10_000);
      const chart = page.locator("[data-chart='explore']");
      const rows = page.locator("[data-testid='explore-rows'] tr");
      // A fresh server's first minute closes late: run again until the result has points.
      await waitFor("a chart with points", async () => {
        if (Number(await chart.getAttribute("data-points")) > 0) return true;
        await page.getByTestId("explore-run").click();
        return false;
      }, TIMEOUT_MS, 2000);
      assert((await page.getByTestId("explore-error").isHidden()), "an error is shown for a valid expression");
      await page.getByRole("tab", { name: "Table" }).click();
      await waitFor("table rows", async () => (await rows.count()) > 0, 10_000);
      const table = (await page.getByTestId("explore-table").textContent()) ?? "";
      assert(SERVICES.some((s) => table.includes(`job="${s}"`)), `no service's series in the table: ${table.slice(0, 300)}`);
      assert(page.url().includes("tab=table"), `the tab is not in the URL: ${page.url()}`);
      await shot("explore-table-1280x720");
      // Completion of the word at the cursor: a metric name from /api/v1/label/__name__/values.
      await input.fill("");
      await input.click();
      await page.keyboard.type("sum(http_server_req");
      const option = page.locator("[data-testid='explore-suggestions'] [role='option']");
      await waitFor("metric name suggestions", async () => (await option.count()) > 0, 10_000, 100);
      const first = (await option.first().textContent()) ?? "";
      assert(first.startsWith("http_server_req"), `first suggestion ${JSON.stringify(first)}`);
      await page.keyboard.press("Tab");
      assert((await input.inputValue()) === `sum(${first}`, `after Tab the box holds ${JSON.stringify(await input.inputValue())}`);
      assert(await page.getByTestId("explore-suggestions").isHidden(), "the list stays open after a completion");
      // An expression error: the API's message under the box with its position marked.
      await page.keyboard.press("Control+Enter");
      await waitFor("the parse error with its position", async () => (await page.getByTestId("explore-error-mark").count()) === 1, 10_000, 100);
      await page.getByRole("tab", { name: "Chart" }).click();
      await shot("explore-error-1280x720");
    });

    await checks.run("after the server restarts, the page reconnects by itself", async () => {
      if (!MANAGED) {
        // A running server can still be asked to drop connections if it is the mock.
        const drop = await fetch(`${BASE_URL}/__mock/drop`, { method: "POST" }).catch(() => null);
        if (!drop?.ok) throw new Skip("the server was not started by this script (set FLOWSCOPE_BIN or FLOWSCOPE_MOCK=1)");
      } else {
        await page.goto(`${BASE_URL}/#/overview`);
        await waitFor("status Live", async () => (await status.getAttribute("data-state")) === "live", TIMEOUT_MS);
        await waitFor("a throughput in the sidebar", async () => parseRate(await page.locator("a.service-link .service-throughput").first().textContent()) !== null, TIMEOUT_MS);
        await server.stop();
        const stopped = Date.now();
        // Values freeze and go grey with "no data since …" within 5 s; they do not decay.
        await waitFor("values greyed with 'no data since'", async () => {
          const state = await page.evaluate(() => ({
            overview: document.querySelector(".overview")?.getAttribute("data-stale"),
            note: document.querySelector("[data-testid='overview-stale']")?.textContent ?? "",
            sidebar: [...document.querySelectorAll("a.service-link .service-throughput")].map((e) => e.classList.contains("is-stale")),
          }));
          return state.overview === "true" && /no data since/.test(state.note) && state.sidebar.length > 0 && state.sidebar.every(Boolean);
        }, 5_000);
        assert(Date.now() - stopped <= 5_500, `greyed after ${Date.now() - stopped} ms`);
        await waitFor("status to leave Live", async () => (await status.getAttribute("data-state")) !== "live", 30_000);
        const frozen = parseRate(await page.getByTestId("overview-throughput").textContent());
        await shot("reconnecting-1280x720");
        await sleep(3000);
        const later = parseRate(await page.getByTestId("overview-throughput").textContent());
        assert(frozen === null || later === frozen, `throughput decayed from ${frozen} to ${later} with no new data`);
        const text = (await status.textContent()) ?? "";
        assert(/server unreachable|reconnecting/i.test(text) && !/offline/i.test(text), `status while only the server is down: ${JSON.stringify(text)}`);
        await startServer();
      }
      await waitFor("status Live again", async () => (await status.getAttribute("data-state")) === "live", 60_000);
      await waitForChange(page, "live data after the reconnect");
    });

    await checks.run("memory stays bounded (at most 100 traces kept)", async () => {
      const info = await page.evaluate(() => window.flowscope?.debugInfo());
      assert(info !== undefined, "no debug info on the page");
      assert(info.traces <= 100, `${info.traces} traces held`);
    });

    await checks.run("phone width shows every page without sideways scrolling", async () => {
      await page.setViewportSize({ width: 390, height: 844 });
      for (const [hash, name] of [
        ["#/overview", "overview-phone"],
        ["#/pipeline", "pipeline-phone"],
        [`#/pipeline/${SERVICES.includes("api") ? "api" : SERVICES[0]}`, "details-phone"],
        ["#/alerts", "alerts-phone"],
      ]) {
        await page.goto(`${BASE_URL}/${hash}`);
        await page.waitForTimeout(1500);
        const overflow = await noSidewaysScroll(page);
        assert(overflow <= 1, `${hash} is ${overflow}px wider than the screen`);
        await shot(name, true);
      }
      await page.setViewportSize({ width: 1280, height: 720 });
    });

    await checks.run("service list is keyboard navigable", async () => {
      await page.goto(`${BASE_URL}/#/overview`);
      const links = page.locator("a.service-link");
      await waitFor("service links", async () => (await links.count()) >= 2, TIMEOUT_MS);
      await links.first().focus();
      const firstName = await links.first().getAttribute("data-service");
      await page.keyboard.press("ArrowDown");
      const focused = await page.evaluate(() => document.activeElement?.getAttribute("data-service"));
      assert(focused !== firstName && focused, `ArrowDown left focus on ${focused}`);
      await page.keyboard.press("Enter");
      await waitFor(`page of ${focused}`, async () => (await page.getByTestId("service-title").textContent()) === focused, 10_000);
    });

    await checks.run("the theme follows the system setting; the toggle overrides it and is kept", async () => {
      const context = await browser.newContext({ viewport: { width: 1280, height: 720 }, colorScheme: "light" });
      try {
        const themed = await context.newPage();
        themed.on("pageerror", (error) => pageErrors.push(error.message));
        const fragment = TOKEN === "" ? "#/overview" : `#/overview?token=${encodeURIComponent(TOKEN)}`;
        await themed.goto(`${BASE_URL}/${fragment}`, { waitUntil: "domcontentloaded" });
        const look = () =>
          themed.evaluate(() => [document.documentElement.dataset.theme, getComputedStyle(document.documentElement).backgroundColor]);
        await waitFor("the light theme", async () => (await look())[0] === "light", 10_000, 100);
        assert((await look())[1] === "rgb(255, 255, 255)", `light background is ${(await look())[1]}`);
        await themed.emulateMedia({ colorScheme: "dark" });
        await waitFor("the dark theme when the system turns dark", async () => (await look())[0] === "dark", 5_000, 100);
        assert((await look())[1] === "rgb(13, 17, 23)", `dark background is ${(await look())[1]}`);
        // The toggle: System → Light, kept across a reload whatever the system says.
        await themed.getByTestId("theme-toggle").click();
        await waitFor("the toggle to pick light", async () => (await look())[0] === "light", 5_000, 100);
        await themed.reload({ waitUntil: "domcontentloaded" });
        await waitFor("light kept after a reload", async () => (await look())[0] === "light", 10_000, 100);
        assert((await themed.getByTestId("theme-toggle").textContent()) === "Theme: Light", "the toggle does not say Light");
      } finally {
        await context.close();
      }
    });

    await checks.run("axe-core: no serious or critical violations on any page, light and dark; screenshots at 1440×900 and 390×844", async () => {
      const service = SERVICES.includes("api") ? "api" : SERVICES[0];
      let traceId = null;
      try {
        const response = await fetch(`${BASE_URL}/api/services/${encodeURIComponent(service)}/traces?limit=1`, {
          headers: TOKEN === "" ? {} : { authorization: `Bearer ${TOKEN}` },
        });
        traceId = response.ok ? ((await response.json()).traces?.[0]?.trace_id ?? null) : null;
      } catch {
        traceId = null;
      }
      const { failures, counts } = await checkPages({
        browser,
        baseUrl: BASE_URL,
        token: TOKEN,
        pages: dashboardPages(service, traceId),
        screenshots: SCREENSHOTS,
        timeoutMs: TIMEOUT_MS,
      });
      console.log(`# axe serious+critical per page: ${JSON.stringify(counts)}`);
      assert(traceId !== null || MOCK, "no trace to check the trace page with");
      assert(failures.length === 0, failures.join(" || "));
    });

    await checks.run("no uncaught errors in the page", async () => {
      assert(pageErrors.length === 0, pageErrors.join(" | "));
    });
  } finally {
    await browser.close();
  }
}

try {
  await main();
} catch (error) {
  checks.fail("browser session", error);
} finally {
  await loadgen?.stop().catch(() => {});
  await server?.stop().catch(() => {});
  if (BIN !== null && OWN_DATA_DIR) await rm(DATA_DIR, { recursive: true, force: true }).catch(() => {});
}
console.log(`screenshots: ${SCREENSHOTS}${MANAGED ? ` · logs: ${LOGS}` : ""}`);
console.log(checks.summary());
process.exit(checks.failed > 0 ? 1 : 0);
