// "Export CSV" for a chart: a link to `GET /api/export` (docs/export.md) for the chart's metric over
// the global time range, its window computed when clicked (so it ends now).

import { timeWindow, type GlobalTime } from "../state/time-range";
import { el } from "./dom";

/** The export URL of `metric` of `service` over the global time range `time` at `nowSeconds`. */
export function exportHref(
  service: string,
  metric: string,
  time: GlobalTime,
  nowSeconds: number,
  apiBase = "",
): string {
  const { from, to, resolution } = timeWindow(time, nowSeconds);
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
  current: () => { service: string; time: GlobalTime } | null,
): HTMLAnchorElement {
  const link = el("a", { class: "chart-export", "data-testid": `export-${metric}`, download: "" }, ["Export CSV"]);
  link.href = "#";
  link.addEventListener("click", () => {
    const on = current();
    if (on === null) return;
    link.href = exportHref(on.service, metric, on.time, Date.now() / 1000);
  });
  return link;
}
