#!/usr/bin/env node
// End-to-end check of the dashboard in a real browser (the system's Chromium, never a downloaded one)
// against a running Flowscope: `flowscope local` + `flowscope loadgen`, or dashboard/dev/mock-server.mjs.
//
//   FLOWSCOPE_URL=http://127.0.0.1:8080 node tests/browser/dashboard.mjs
//
// Environment:
//   FLOWSCOPE_URL          page to open (default http://127.0.0.1:8080)
//   FLOWSCOPE_SERVICES     comma-separated services that must appear (default auth,api,database,cache,queue)
//   FLOWSCOPE_TIMEOUT_S    how long to wait for each thing to happen (default 90)
//   FLOWSCOPE_SCREENSHOTS  where screenshots go (default <repo>/build/screenshots)
//   CHROMIUM_PATH          browser binary (default /usr/bin/chromium)
//
// Prints one line per check and `N passed, N failed` last; exits non-zero when any check failed.

import { mkdir } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const BASE_URL = process.env.FLOWSCOPE_URL ?? "http://127.0.0.1:8080";
const SERVICES = (process.env.FLOWSCOPE_SERVICES ?? "auth,api,database,cache,queue")
  .split(",")
  .map((s) => s.trim())
  .filter(Boolean);
const TIMEOUT_MS = Number(process.env.FLOWSCOPE_TIMEOUT_S ?? 90) * 1000;
const SCREENSHOTS = resolve(process.env.FLOWSCOPE_SCREENSHOTS ?? join(here, "../../build/screenshots"));
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

const results = [];

class Skip extends Error {}

async function check(name, body) {
  try {
    await body();
    results.push({ name, ok: true });
    console.log(`ok   - ${name}`);
  } catch (error) {
    if (error instanceof Skip) {
      results.push({ name, ok: true, skipped: true });
      console.log(`skip - ${name}: ${error.message}`);
      return;
    }
    results.push({ name, ok: false });
    console.log(`FAIL - ${name}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** Polls `probe` until it returns a truthy value; throws with `what` after the timeout. */
async function waitFor(what, probe, timeoutMs = TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await probe();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

/** Everything on the page that live data can change: stat texts and chart point counts. */
async function liveSignature(page) {
  return page.evaluate(() => ({
    stats: [...document.querySelectorAll("[data-testid^='stat-']")].map((e) => e.textContent ?? ""),
    points: [...document.querySelectorAll("[data-chart]")].map((e) => Number(e.getAttribute("data-points"))),
  }));
}

async function main() {
  await mkdir(SCREENSHOTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--headless",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  const pageErrors = [];
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    const page = await context.newPage();
    page.on("pageerror", (error) => pageErrors.push(error.message));
    const status = page.getByTestId("connection-status");

    await check("page loads", async () => {
      const response = await page.goto(BASE_URL, { waitUntil: "domcontentloaded", timeout: 30_000 });
      assert(response !== null && response.ok(), `HTTP ${response?.status()} for ${BASE_URL}`);
      assert((await page.title()) === "Flowscope", `title is ${JSON.stringify(await page.title())}`);
    });

    await check("connection status reads Live", async () => {
      await waitFor("status Live", async () => (await status.getAttribute("data-state")) === "live");
      const text = (await status.textContent()) ?? "";
      assert(/live/i.test(text), `status text is ${JSON.stringify(text)}`);
    });

    await check(`service list shows ${SERVICES.join(", ")}`, async () => {
      await waitFor("all services", async () => {
        const shown = await page.locator("[data-service]").evaluateAll((links) =>
          links.map((l) => l.getAttribute("data-service")),
        );
        return SERVICES.every((s) => shown.includes(s));
      });
    });

    await check("a service page opens with stat cards and charts", async () => {
      await waitFor("a selected service", async () => (await page.locator("[aria-current='page']").count()) === 1);
      assert((await page.locator("[data-stat]").count()) === 5, "expected 5 stat cards");
      assert((await page.locator("[data-chart]").count()) === 3, "expected 3 charts");
    });

    await check("live data reaches the page (a stat changes or a chart gains points)", async () => {
      const before = await liveSignature(page);
      await waitFor("a stat or chart to change", async () => {
        const now = await liveSignature(page);
        const statChanged = now.stats.some((text, i) => text !== before.stats[i] && text !== "—");
        const chartGrew = now.points.some((n, i) => n > (before.points[i] ?? 0));
        return statChanged || chartGrew;
      });
      await waitFor("at least one chart with points", async () =>
        (await liveSignature(page)).points.some((n) => n > 0),
      );
    });
    await page.screenshot({ path: join(SCREENSHOTS, "dashboard-1280x720.png") });

    await check("reconnects and resumes after the server drops the connection", async () => {
      // Only the mock server can drop connections on request; against `flowscope local` this is skipped.
      const drop = await fetch(new URL("/__mock/drop", BASE_URL), { method: "POST" }).catch(() => null);
      const dropped = drop?.ok && (await drop.json().catch(() => ({}))).dropped === true;
      if (!dropped) throw new Skip("server has no /__mock/drop (not the mock server)");
      await waitFor("status to leave Live", async () => (await status.getAttribute("data-state")) !== "live", 10_000);
      await waitFor("status Live again", async () => (await status.getAttribute("data-state")) === "live", 30_000);
      const before = await liveSignature(page);
      await waitFor("updates after the reconnect", async () => {
        const now = await liveSignature(page);
        return now.stats.some((text, i) => text !== before.stats[i]) || now.points.some((n, i) => n > (before.points[i] ?? 0));
      });
    });

    await check("service list is keyboard navigable", async () => {
      const links = page.locator("a.service-link");
      await links.first().focus();
      const firstName = await links.first().getAttribute("data-service");
      await page.keyboard.press("ArrowDown");
      const focused = await page.evaluate(() => document.activeElement?.getAttribute("data-service"));
      assert(focused !== firstName && focused, `ArrowDown left focus on ${focused}`);
      await page.keyboard.press("Enter");
      await waitFor(`page of ${focused}`, async () =>
        (await page.getByTestId("service-title").textContent()) === focused,
      10_000);
      assert(
        (await page.locator("[aria-current='page']").getAttribute("data-service")) === focused,
        "selected entry does not match the opened service",
      );
    });

    await check("phone width shows the page without sideways scrolling", async () => {
      await page.setViewportSize({ width: 390, height: 844 });
      await page.waitForTimeout(500);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert(overflow <= 1, `page is ${overflow}px wider than the screen`);
      await page.screenshot({ path: join(SCREENSHOTS, "dashboard-phone.png"), fullPage: true });
    });

    await check("no uncaught errors in the page", async () => {
      assert(pageErrors.length === 0, pageErrors.join(" | "));
    });
  } finally {
    await browser.close();
  }
}

try {
  await main();
} catch (error) {
  results.push({ name: "browser session", ok: false });
  console.log(`FAIL - browser session: ${error instanceof Error ? error.message : String(error)}`);
}
const skipped = results.filter((r) => r.skipped).length;
const passed = results.filter((r) => r.ok && !r.skipped).length;
const failed = results.filter((r) => !r.ok).length;
console.log(`screenshots: ${SCREENSHOTS}`);
console.log(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`);
process.exit(failed > 0 ? 1 : 0);
