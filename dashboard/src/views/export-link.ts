// "Export CSV" for a chart: a link to `GET /api/export` (docs/export.md) for the chart's metric over
// the range and resolution on screen, its window computed when clicked (so it ends now).

import { queryWindow, type RangeName } from "../state/range";
import type { Resolution } from "../types";
import { el } from "./dom";

/** The export URL of `metric` of `service` over the window `range` ending at `nowSeconds`. */
export function exportHref(
  service: string,
  metric: string,
  range: RangeName,
  resolution: Resolution,
  nowSeconds: number,
  apiBase = "",
): string {
  const { from, to } = queryWindow(nowSeconds, range, resolution);
  const query = new URLSearchParams({
    service,
    metric,
    from: String(from),
    to: String(to),
    resolution,
    format: "csv",
  });
  return `${apiBase}/api/export?${query.toString()}`;
}

/** A link that downloads the chart's buckets as CSV; `current` says what is on screen at click. */
export function exportLink(
  metric: string,
  current: () => { service: string; range: RangeName; resolution: Resolution } | null,
): HTMLAnchorElement {
  const link = el("a", { class: "chart-export", "data-testid": `export-${metric}`, download: "" }, ["Export CSV"]);
  link.href = "#";
  link.addEventListener("click", () => {
    const on = current();
    if (on === null) return;
    link.href = exportHref(on.service, metric, on.range, on.resolution, Date.now() / 1000);
  });
  return link;
}
