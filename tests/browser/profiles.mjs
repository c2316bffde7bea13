#!/usr/bin/env node
// The Profiles view in a real browser (the system's Chromium, never a downloaded one), issue 14:
// folded profiles are pushed to `/ingest` (Pyroscope push API) for several past minutes, with an
// incident where one call path grows; then the page must draw a flame graph, list the functions,
// zoom on click, step and play the timeline (the graph changes during the incident), download a
// snapshot and open it again without the server.
//
//   # flowscope local (built with `cargo build -p flowscope-cli`), started by this script:
//   FLOWSCOPE_BIN=target/debug/flowscope node tests/browser/profiles.mjs
//   # the mock server (dashboard/dev/mock-server.mjs), no Rust needed:
//   FLOWSCOPE_MOCK=1 node tests/browser/profiles.mjs
//   # something already running:
//   FLOWSCOPE_URL=http://127.0.0.1:8080 FLOWSCOPE_INGEST_URL=http://127.0.0.1:4318 node tests/browser/profiles.mjs
//
// Environment (as tests/browser/dashboard.mjs):
//   FLOWSCOPE_BIN, FLOWSCOPE_MOCK=1, FLOWSCOPE_URL   what to test (see above)
//   FLOWSCOPE_INGEST_URL   where /ingest is (default: the OTLP port of a started flowscope local, the
//                          HTTP port of the mock, or FLOWSCOPE_URL)
//   FLOWSCOPE_HTTP_PORT / FLOWSCOPE_OTLP_PORT   ports of the started server (default 18490 / 18428)
//   FLOWSCOPE_TOKEN        token (default browser-test-token for a started server; "" = none)
//   FLOWSCOPE_PROFILE_SERVICE   the service the profiles are pushed as (default browser-shop)
//   FLOWSCOPE_TIMEOUT_S    how long to wait for each thing (default 60)
//   FLOWSCOPE_SCREENSHOTS  where screenshots go (default <repo>/build/screenshots)
//
// Prints one line per check and `N passed, N failed` last; exits non-zero when any check failed.

import { mkdir, readFile, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { gunzipSync } from "node:zlib";
import { assert, Checks, launchBrowser, ManagedProcess, repoRoot, waitFor, waitForHttp } from "./lib.mjs";

const BIN = process.env.FLOWSCOPE_BIN ? resolve(process.env.FLOWSCOPE_BIN) : null;
const MOCK = process.env.FLOWSCOPE_MOCK === "1";
const HTTP_PORT = Number(process.env.FLOWSCOPE_HTTP_PORT ?? 18490);
const OTLP_PORT = Number(process.env.FLOWSCOPE_OTLP_PORT ?? 18428);
const MANAGED = BIN !== null || MOCK;
const TOKEN = process.env.FLOWSCOPE_TOKEN ?? (MANAGED ? "browser-test-token" : "");
const BASE_URL = MANAGED ? `http://127.0.0.1:${HTTP_PORT}` : (process.env.FLOWSCOPE_URL ?? "http://127.0.0.1:8080");
const INGEST_URL =
  process.env.FLOWSCOPE_INGEST_URL ?? (BIN !== null ? `http://127.0.0.1:${OTLP_PORT}` : MOCK ? BASE_URL : "http://127.0.0.1:4318");
const SERVICE = process.env.FLOWSCOPE_PROFILE_SERVICE ?? "browser-shop";
const TIMEOUT_MS = Number(process.env.FLOWSCOPE_TIMEOUT_S ?? 60) * 1000;
const SCREENSHOTS = resolve(process.env.FLOWSCOPE_SCREENSHOTS ?? join(repoRoot, "build/screenshots"));
const LOGS = join(repoRoot, "build/browser-test");
const DATA_DIR = join(LOGS, `profiles-data-${process.pid}`);
const ROW = 18;

const checks = new Checks();

// ---- the profiles pushed ------------------------------------------------------------------------

/** Minutes pushed: 10 closed minutes ending 3 minutes ago; the incident is the 7th and 8th. */
const NOW_MINUTE = Math.floor(Date.now() / 60_000) * 60;
const MINUTES = Array.from({ length: 10 }, (_, i) => NOW_MINUTE - (12 - i) * 60);
const INCIDENT = new Set([MINUTES[6], MINUTES[7]]);
const SLOW_STACK = "shop;http.serve;checkout;db.query;pg.scan";
/** Folded stacks per normal minute (samples at 100 Hz). `template.render` has the most self time. */
const STACKS = [
  ["shop;http.serve;catalog;template.render", 400],
  ["shop;http.serve;catalog;json.encode", 150],
  ["shop;http.serve;checkout;payment.authorize;tls.write", 120],
  [SLOW_STACK, 60],
  ["shop;gc.mark", 90],
];
const EXPECTED_FUNCTIONS = ["template.render", "json.encode", "payment.authorize", "pg.scan", "gc.mark"];

function folded(minute) {
  const grow = INCIDENT.has(minute) ? 40 : 1;
  return STACKS.map(([stack, count]) => `${stack} ${stack === SLOW_STACK ? count * grow : count}`).join("\n");
}

async function push(minute) {
  const query = new URLSearchParams({
    name: `${SERVICE}.cpu{env=browser-test}`,
    from: String(minute + 5),
    until: String(minute + 15),
    format: "folded",
    sampleRate: "100",
    spyName: "browser-test",
  });
  const headers = { "content-type": "text/plain" };
  if (TOKEN !== "") headers.authorization = `Bearer ${TOKEN}`;
  const response = await fetch(`${INGEST_URL}/ingest?${query}`, { method: "POST", headers, body: folded(minute) });
  assert(response.ok, `POST /ingest for minute ${minute}: HTTP ${response.status} ${await response.text()}`);
}

async function api(path) {
  const headers = TOKEN === "" ? {} : { authorization: `Bearer ${TOKEN}` };
  const response = await fetch(`${BASE_URL}${path}`, { headers });
  return response.ok ? response.json() : null;
}

// ---- what the script starts ---------------------------------------------------------------------

function serverProcess() {
  if (MOCK) {
    return new ManagedProcess("profiles-mock-server", process.execPath, ["dashboard/dev/mock-server.mjs", "--port", String(HTTP_PORT), "--token", TOKEN], LOGS);
  }
  return new ManagedProcess(
    "profiles-flowscope-local",
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
      ...(TOKEN === "" ? [] : ["--token", TOKEN]),
    ],
    LOGS,
    { RUST_LOG: process.env.RUST_LOG ?? "info" },
  );
}

const server = MANAGED ? serverProcess() : null;

// ---- page helpers -------------------------------------------------------------------------------

/** Pixels of the flame graph canvas that are not transparent. */
function paintedPixels(page) {
  return page.getByTestId("flamegraph").evaluate((canvas) => {
    const ctx = canvas.getContext("2d");
    if (ctx === null || canvas.width === 0 || canvas.height === 0) return 0;
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) painted += 1;
    return painted;
  });
}

const canvasImage = (page) => page.getByTestId("flamegraph").evaluate((canvas) => canvas.toDataURL());

async function topFunctions(page) {
  return page.getByTestId("top-functions-rows").locator("tr").evaluateAll((rows) => rows.map((r) => r.dataset.function));
}

const shown = (page) => page.getByTestId("profiles-page").getAttribute("data-shown");

async function main() {
  await mkdir(SCREENSHOTS, { recursive: true });
  await mkdir(LOGS, { recursive: true });
  if (MANAGED) {
    const started = await checks.run(`start ${MOCK ? "the mock server" : "flowscope local"}`, async () => {
      await server.start();
      await waitForHttp(`${BASE_URL}/config.json`, TIMEOUT_MS);
    });
    if (!started) return;
  }

  await checks.run(`push ${MINUTES.length} minutes of folded CPU profiles for ${SERVICE} to /ingest, with an incident`, async () => {
    for (const minute of MINUTES) await push(minute);
    const from = MINUTES[0];
    const to = NOW_MINUTE;
    await waitFor(
      "the timeline to list every pushed minute",
      async () => (await api(`/api/profiles/timeline?service=${SERVICE}&type=cpu&from=${from}&to=${to}`))?.points?.length >= MINUTES.length,
      TIMEOUT_MS,
    );
  });

  const browser = await launchBrowser();
  const pageErrors = [];
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    const page = await context.newPage();
    page.on("pageerror", (error) => pageErrors.push(error.message));
    // A live message the dashboard's contract does not allow is dropped with this warning.
    page.on("console", (message) => {
      if (message.text().includes("dropped malformed message")) pageErrors.push(message.text());
    });
    const shot = (name) => page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
    const flame = page.getByTestId("flamegraph");

    await checks.run("the Profiles view draws a flame graph and lists the functions", async () => {
      const token = TOKEN === "" ? "" : `&token=${encodeURIComponent(TOKEN)}`;
      await page.goto(`${BASE_URL}/#/profiles?service=${encodeURIComponent(SERVICE)}&type=cpu&range=1h${token}`, {
        waitUntil: "domcontentloaded",
        timeout: 30_000,
      });
      await waitFor("frames on the canvas", async () => Number(await flame.getAttribute("data-frames", { timeout: 2_000 }).catch(() => 0)) >= 6, TIMEOUT_MS);
      const painted = await paintedPixels(page);
      assert(painted > 5_000, `only ${painted} pixels painted`);
      const names = await waitFor(
        "the top table to list the pushed functions",
        async () => {
          const rows = await topFunctions(page);
          return EXPECTED_FUNCTIONS.every((f) => rows.includes(f)) ? rows : null;
        },
        TIMEOUT_MS,
      );
      // Over the whole hour, the incident's query path has the most self time (2 minutes × 40).
      assert(names[0] === "pg.scan", `top function by self is ${names[0]}, expected pg.scan: ${names.join(", ")}`);
      assert(Number(await page.getByTestId("profile-timeline").getAttribute("data-points")) >= MINUTES.length, "timeline has too few points");
      assert((await page.getByTestId("profile-service").inputValue()) === SERVICE, "service picker does not show the service");
      await shot("profiles");
    });

    await checks.run("clicking a frame zooms into it; Escape resets", async () => {
      const before = await canvasImage(page);
      // Level 3 (total → shop → http.serve → catalog|checkout): click the left half's frame.
      const box = await flame.boundingBox();
      assert(box !== null, "no canvas box");
      await flame.click({ position: { x: box.width * 0.2, y: 3 * ROW + ROW / 2 } });
      const zoom = await waitFor("a zoomed frame", async () => (await flame.getAttribute("data-zoom")) || null, 5_000);
      assert(/^shop;http\.serve;(catalog|checkout)$/.test(zoom), `zoomed into ${zoom}`);
      await waitFor("the canvas to change", async () => (await canvasImage(page)) !== before, 5_000, 100);
      await shot("profiles-zoomed");
      await flame.press("Escape");
      await waitFor("zoom reset", async () => (await flame.getAttribute("data-zoom")) === "", 5_000);
    });

    await checks.run("the label filter narrows the graph to matching label sets", async () => {
      const labels = page.getByTestId("profile-labels");
      await labels.fill("env=nowhere");
      await labels.press("Enter");
      await waitFor("an empty graph", async () => Number(await flame.getAttribute("data-frames", { timeout: 2_000 }).catch(() => Number.NaN)) === 0, TIMEOUT_MS, 100);
      assert(page.url().includes("labels=env%3Dnowhere"), `URL lacks the filter: ${page.url()}`);
      await labels.fill("env=browser-test");
      await labels.press("Enter");
      await waitFor("the graph again", async () => Number(await flame.getAttribute("data-frames", { timeout: 2_000 }).catch(() => Number.NaN)) >= 6, TIMEOUT_MS, 100);
    });

    await checks.run("stepping the playback walks the minutes; the graph changes during the incident", async () => {
      const images = new Map();
      const tops = new Map();
      for (let i = 0; i < MINUTES.length; i += 1) {
        await page.getByTestId("playback-step").click();
        const minute = MINUTES[i];
        await waitFor(`minute ${i + 1} to be drawn`, async () => (await shown(page)) === `minute:${minute}-${minute + 60}`, TIMEOUT_MS, 100);
        await waitFor("frames", async () => Number(await flame.getAttribute("data-frames", { timeout: 2_000 }).catch(() => Number.NaN)) > 0, 5_000, 100);
        images.set(minute, await canvasImage(page));
        tops.set(minute, (await topFunctions(page))[0]);
        if (minute === MINUTES[6]) await shot("profiles-incident-minute");
      }
      const normal = MINUTES[2];
      const incident = MINUTES[6];
      assert(tops.get(normal) === "template.render", `normal minute's top function is ${tops.get(normal)}`);
      assert(tops.get(incident) === "pg.scan", `incident minute's top function is ${tops.get(incident)}`);
      assert(images.get(normal) !== images.get(incident), "the graph did not change between a normal and an incident minute");
      // Two normal minutes have identical shapes: the same picture.
      assert(images.get(MINUTES[1]) === images.get(MINUTES[2]), "two identical minutes were drawn differently");
      assert((await page.getByTestId("playback-minute").textContent()).startsWith("Minute"), "minute label missing");
      assert(page.url().includes(`minute=${MINUTES.at(-1)}`), `URL does not hold the minute: ${page.url()}`);
    });

    await checks.run("Play walks forward on its own; Pause stops", async () => {
      await page.getByTestId("playback-speed").selectOption("4");
      await page.getByTestId("playback-play").click();
      // From the last minute, Play starts again at the first and moves on.
      await waitFor("playback to reach the 3rd minute", async () => {
        const s = await shown(page);
        const m = Number(/^minute:(\d+)/.exec(s ?? "")?.[1] ?? 0);
        return m >= MINUTES[2];
      }, TIMEOUT_MS, 100);
      await page.getByTestId("playback-play").click();
      assert((await page.getByTestId("playback-play").getAttribute("aria-pressed")) === "false", "still playing");
      await page.getByTestId("playback-stop").click();
      await waitFor("the whole range again", async () => (await shown(page))?.startsWith("range:"), TIMEOUT_MS, 100);
    });

    await checks.run("diff mode colours the grown call path red and the shrunk ones blue", async () => {
      // The incident's two minutes against the two normal minutes before them.
      const [from, to] = [MINUTES[6], MINUTES[8]];
      await page.goto(`${BASE_URL}/#/profiles?service=${encodeURIComponent(SERVICE)}&type=cpu&from=${from}&to=${to}&diff=1`);
      await waitFor("the diff", async () => (await shown(page)) === `range:${from}-${to}:diff`, TIMEOUT_MS, 100);
      const colours = await flame.evaluate((canvas) => {
        const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        let red = 0;
        let blue = 0;
        for (let i = 0; i < data.length; i += 4) {
          const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
          if (r > 200 && g < 150 && b < 150) red += 1;
          if (b > 200 && r < 170) blue += 1;
        }
        return { red, blue };
      });
      assert(colours.red > 500 && colours.blue > 500, `red ${colours.red} px, blue ${colours.blue} px`);
      assert((await page.getByTestId("profile-diff").isChecked()) === true, "diff toggle not on");
      await shot("profiles-diff");
      await page.getByTestId("selection-clear").click();
      await page.getByTestId("profile-diff").uncheck();
      await waitFor("the merged range again", async () => /^range:\d+-\d+$/.test((await shown(page)) ?? ""), TIMEOUT_MS, 100);
    });

    await checks.run("a minute pushed now appears without reloading (live `profile` event)", async () => {
      const before = Number(await page.getByTestId("profile-timeline").getAttribute("data-points"));
      await push(NOW_MINUTE - 120);
      // The page also refreshes every 30 s; within 20 s only the live event can have done it.
      await waitFor(
        "the new minute on the timeline",
        async () => Number(await page.getByTestId("profile-timeline").getAttribute("data-points")) > before,
        20_000,
        200,
      );
    });

    let snapshotPath = "";
    await checks.run("Download snapshot saves a gzip JSON snapshot of the range", async () => {
      const [download] = await Promise.all([page.waitForEvent("download", { timeout: TIMEOUT_MS }), page.getByTestId("snapshot-download").click()]);
      snapshotPath = join(LOGS, `profiles-snapshot-${process.pid}.json.gz`);
      await download.saveAs(snapshotPath);
      const bytes = await readFile(snapshotPath);
      assert(bytes[0] === 0x1f && bytes[1] === 0x8b, "not gzip");
      const snapshot = JSON.parse(gunzipSync(bytes).toString("utf8"));
      assert(snapshot.version === 1 && snapshot.service === SERVICE && snapshot.type === "cpu", `unexpected snapshot head: ${JSON.stringify(snapshot).slice(0, 200)}`);
      assert(snapshot.timeline.length >= MINUTES.length, `snapshot timeline has ${snapshot.timeline.length} points`);
      assert(snapshot.flamegraph.names.includes("pg.scan"), "snapshot flame graph lacks pg.scan");
    });

    await checks.run("Download pprof saves the range as a gzip pprof file", async () => {
      const [download] = await Promise.all([page.waitForEvent("download", { timeout: TIMEOUT_MS }), page.getByTestId("pprof-download").click()]);
      assert(download.suggestedFilename().endsWith(".pb.gz"), `file name ${download.suggestedFilename()}`);
      const path = join(LOGS, `profiles-${process.pid}.pb.gz`);
      await download.saveAs(path);
      const bytes = gunzipSync(await readFile(path));
      await rm(path, { force: true });
      // A protobuf Profile: field 1 (sample_type) comes first, and the frame names are in its string table.
      assert(bytes.length > 100 && bytes[0] === 0x0a, `not a pprof Profile (${bytes.length} bytes)`);
      assert(bytes.includes(Buffer.from("template.render")), "the pprof lacks the pushed frames");
    });

    await checks.run("Open snapshot shows the file's flame graph without the server", async () => {
      assert(snapshotPath !== "", "no snapshot downloaded");
      const fresh = await context.newPage();
      fresh.on("pageerror", (error) => pageErrors.push(error.message));
      const token = TOKEN === "" ? "" : `?token=${encodeURIComponent(TOKEN)}`;
      await fresh.goto(`${BASE_URL}/#/profiles${token}`, { waitUntil: "domcontentloaded", timeout: 30_000 });
      await fresh.getByTestId("profiles-page").waitFor({ timeout: TIMEOUT_MS });
      // From here on the API is unreachable: what is drawn comes from the file.
      await fresh.route("**/api/profiles/**", (route) => route.abort());
      await fresh.getByTestId("snapshot-file").setInputFiles(snapshotPath);
      await waitFor("the snapshot to be shown", async () => (await shown(fresh)) === `snapshot:${SERVICE}`, TIMEOUT_MS, 100);
      assert(await fresh.getByTestId("snapshot-banner").isVisible(), "no snapshot banner");
      const frames = Number(await fresh.getByTestId("flamegraph").getAttribute("data-frames"));
      assert(frames >= 6, `${frames} frames drawn from the snapshot`);
      const rows = await topFunctions(fresh);
      assert(EXPECTED_FUNCTIONS.every((f) => rows.includes(f)), `snapshot's table: ${rows.join(", ")}`);
      await fresh.screenshot({ path: join(SCREENSHOTS, "profiles-snapshot.png"), fullPage: true });
      // A file that is not a snapshot is refused with a reason, nothing drawn from it.
      await fresh.getByTestId("snapshot-file").setInputFiles({ name: "bad.json", mimeType: "application/json", buffer: Buffer.from('{"version":1}') });
      await waitFor("the refusal", async () => /not a Flowscope profile snapshot/.test((await fresh.getByTestId("profile-status").textContent()) ?? ""), 5_000, 100);
      await fresh.close();
    });

    await checks.run("the service page and the pipeline panel link to its profiles", async () => {
      // Same document (the token is already in the session): only the fragment changes.
      await page.goto(`${BASE_URL}/#/services/${encodeURIComponent(SERVICE)}`);
      const link = page.getByTestId("service-profiles-link");
      await link.click();
      await waitFor("the Profiles view of the service", async () => page.url().includes(`#/profiles?service=${encodeURIComponent(SERVICE)}`), 10_000);
      await waitFor("a flame graph", async () => Number(await flame.getAttribute("data-frames", { timeout: 2_000 }).catch(() => Number.NaN)) > 0, TIMEOUT_MS);
      // The details panel beside the pipeline graph (what clicking a node opens) links there too.
      await page.goto(`${BASE_URL}/#/pipeline/${encodeURIComponent(SERVICE)}`);
      const panelLink = page.getByTestId("details-panel").getByTestId("service-profiles-link");
      await waitFor("the panel's link", async () => (await panelLink.getAttribute("href")) === `#/profiles?service=${encodeURIComponent(SERVICE)}`, 10_000);
    });

    await checks.run("the global time range drives the Profiles timeline (and stays in the URL)", async () => {
      await page.goto(`${BASE_URL}/#/profiles?service=${encodeURIComponent(SERVICE)}&type=cpu`);
      await waitFor("a flame graph", async () => Number(await flame.getAttribute("data-frames", { timeout: 2_000 }).catch(() => Number.NaN)) > 0, TIMEOUT_MS);
      const params = () => page.evaluate(() => Object.fromEntries(new URLSearchParams(location.hash.replace(/^[^?]*\??/, ""))));
      await page.locator("[data-testid='time-range'] [data-value='6h']").click();
      await waitFor("the 6 h profile range", async () => (await page.getByTestId("profile-range").inputValue()) === "6h", 10_000, 100);
      const shown = await params();
      assert(shown.t === "6h" && shown.service === SERVICE && shown.range === "6h", `URL after the pick: ${JSON.stringify(shown)}`);
      await page.locator("[data-testid='time-range'] [data-value='1h']").click();
      await waitFor("the 1 h profile range", async () => (await page.getByTestId("profile-range").inputValue()) === "1h", 10_000, 100);
    });

    await checks.run("phone width: the Profiles view fits without sideways scrolling", async () => {
      await page.setViewportSize({ width: 390, height: 844 });
      await page.goto(`${BASE_URL}/#/profiles?service=${encodeURIComponent(SERVICE)}&type=cpu`);
      await waitFor("a flame graph", async () => Number(await flame.getAttribute("data-frames", { timeout: 2_000 }).catch(() => Number.NaN)) > 0, TIMEOUT_MS);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert(overflow <= 1, `the page is ${overflow}px wider than the screen`);
      const canvasWidth = (await flame.boundingBox())?.width ?? 0;
      assert(canvasWidth > 200 && canvasWidth <= 390, `flame graph is ${canvasWidth}px wide`);
      await shot("profiles-phone");
      await page.setViewportSize({ width: 1280, height: 900 });
    });

    await checks.run("no uncaught errors in the page, no live message dropped as malformed", async () => {
      assert(pageErrors.length === 0, pageErrors.join(" | "));
    });
    if (snapshotPath !== "") await rm(snapshotPath, { force: true });
  } finally {
    await browser.close();
  }
}

try {
  await main();
} catch (error) {
  checks.fail("browser session", error);
} finally {
  await server?.stop().catch(() => {});
  if (BIN !== null) await rm(DATA_DIR, { recursive: true, force: true }).catch(() => {});
}
console.log(`screenshots: ${SCREENSHOTS}${MANAGED ? ` · logs: ${LOGS}` : ""}`);
console.log(checks.summary());
process.exit(checks.failed > 0 ? 1 : 0);
