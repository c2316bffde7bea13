// Accessibility and looks, run by dashboard.mjs against the server it started: axe-core (npm,
// injected into each page) on every page in both themes, and screenshots of every page at
// 1440×900 and 390×844 in light and dark (build/screenshots/<page>-<width>-<theme>.png).

import { createRequire } from "node:module";
import { join } from "node:path";
import { assert, waitFor } from "./lib.mjs";

const require = createRequire(import.meta.url);
const AXE_PATH = require.resolve("axe-core/axe.min.js");

export const VIEWPORTS = [
  { name: "1440", width: 1440, height: 900 },
  { name: "390", width: 390, height: 844 },
];
export const THEMES = ["dark", "light"];

/** Every page of the dashboard: [file name, hash, what marks it as loaded]. */
/** The expression the Explore page is checked with (the load generator's request counter). */
export const EXPLORE_EXPR = "sum by (job) (rate(http_server_requests_total[5m]))";

export function dashboardPages(service, traceId) {
  const pages = [
    ["overview", "#/overview", "[data-testid='overview'] .stat-card"],
    ["pipeline", "#/pipeline", "[data-testid='graph'] .node"],
    ["pipeline-details", `#/pipeline/${encodeURIComponent(service)}`, "[data-testid='details-panel'] [data-testid='service-title']"],
    ["service", `#/services/${encodeURIComponent(service)}`, "[data-testid='service-page'] [data-testid='service-title']"],
    ["alerts", "#/alerts", "main h1"],
    ["services", "#/services", "[data-testid='services-page']"],
    ["profiles", `#/profiles?service=${encodeURIComponent(service)}`, "main h1, main h2"],
    ["explore", `#/explore?expr=${encodeURIComponent(EXPLORE_EXPR)}`, "[data-testid='explore-rows'] tr"],
  ];
  if (traceId !== null) pages.push(["trace", `#/traces/${encodeURIComponent(traceId)}`, ".waterfall-row"]);
  return pages;
}

/** axe-core's serious and critical violations on the page as it is now. */
export async function axeViolations(page) {
  if (!(await page.evaluate(() => typeof window.axe === "object"))) await page.addScriptTag({ path: AXE_PATH });
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ["violations"] });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.slice(0, 3).map((n) => `${n.target.join(" ")}${n.failureSummary ? ` (${n.failureSummary.split("\n").slice(1, 2).join("").trim()})` : ""}`),
      count: v.nodes.length,
    }));
  });
  return violations.filter((v) => v.impact === "serious" || v.impact === "critical");
}

export function describeViolations(violations) {
  return violations.map((v) => `${v.id} [${v.impact}] ×${v.count}: ${v.help} — ${v.nodes.join("; ")}`).join(" | ");
}

/**
 * One context per theme (the system colour scheme emulated, the theme left on "System"): every page
 * is checked by axe at 1440×900, then screenshotted at both sizes. Returns failures per page.
 */
export async function checkPages({ browser, baseUrl, token, pages, screenshots, timeoutMs }) {
  const failures = [];
  const counts = {};
  for (const theme of THEMES) {
    const context = await browser.newContext({ viewport: VIEWPORTS[0], colorScheme: theme });
    try {
      const page = await context.newPage();
      const first = token === "" ? "#/overview" : `#/overview?token=${encodeURIComponent(token)}`;
      await page.goto(`${baseUrl}/${first}`, { waitUntil: "domcontentloaded" });
      const shown = await page.evaluate(() => document.documentElement.dataset.theme);
      assert(shown === theme, `with the system in ${theme} the page shows ${shown}`);
      for (const [name, hash, ready] of pages) {
        await page.setViewportSize(VIEWPORTS[0]);
        await page.goto(`${baseUrl}/${hash}`, { waitUntil: "domcontentloaded" });
        await waitFor(`${name} to show`, async () => (await page.locator(ready).count()) > 0, timeoutMs, 250);
        // Let charts and the graph draw a frame or two.
        await page.waitForTimeout(700);
        const violations = await axeViolations(page);
        counts[`${name}/${theme}`] = violations.length;
        if (violations.length > 0) failures.push(`${name} (${theme}): ${describeViolations(violations)}`);
        for (const viewport of VIEWPORTS) {
          await page.setViewportSize(viewport);
          await page.waitForTimeout(300);
          await page.screenshot({ path: join(screenshots, `${name}-${viewport.name}-${theme}.png`) });
        }
      }
    } finally {
      await context.close();
    }
  }
  return { failures, counts };
}
