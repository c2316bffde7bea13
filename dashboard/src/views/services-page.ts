// The Services page (issue 13 item 7): every instance with its version, source (OTLP, registered,
// scraped), lease, last sighting or heartbeat, each service's health score with the reasons, and
// the score's history over the global time range (the `flowscope.health.score` series, read with the
// metrics API like any other).

import { formatAge } from "../format";
import { serviceHref } from "../router";
import { leaseLeft, scoreExplanation, type ServiceHealthRow } from "../registry/model";
import type { ChartColumns } from "../state/service-stats";
import { LineChart } from "./chart";
import { el } from "./dom";

/** Line colours of the score chart, one per service in turn. */
const PALETTE = ["#58a6ff", "#3fb950", "#e3b341", "#ff7b72", "#d2a8ff", "#79c0ff", "#ffa657", "#56d4dd"];

export class ServicesPage {
  readonly element: HTMLElement;
  private readonly body: HTMLTableSectionElement;
  private readonly empty: HTMLElement;
  private readonly chart: LineChart;

  constructor() {
    this.body = el("tbody", { "data-testid": "services-rows" });
    this.empty = el("p", { class: "empty" }, [
      "No services yet. Send OTLP with service.instance.id, or register an instance (POST /api/registry/instances).",
    ]);
    this.chart = new LineChart({
      name: "health-score-history",
      title: "Health score history",
      lines: [],
      formatValue: (v) => `${Math.round(v)}`,
      height: 180,
    });
    this.element = el("section", { class: "services-page", "data-testid": "services-page" }, [
      el("h1", { class: "page-title" }, ["Services"]),
      this.chart.element,
      el("div", { class: "table-scroll" }, [
        el("table", { class: "rule-table" }, [
          el("thead", {}, [
            el("tr", {}, ["Service", "Score", "Instance", "Version", "Source", "Lease", "Last seen", "Health URL"].map((h) =>
              el("th", { scope: "col" }, [h]),
            )),
          ]),
          this.body,
        ]),
      ]),
      this.empty,
    ]);
  }

  /** The score history: `columns` from `scoreHistoryColumns`, one line per service in `services`. */
  setScoreHistory(services: readonly string[], columns: ChartColumns, extent: { from: number; to: number }): void {
    this.chart.setLines(services.map((service, i) => ({ label: service, color: PALETTE[i % PALETTE.length] ?? "#58a6ff" })));
    this.chart.setExtent(extent);
    this.chart.setData(columns);
  }

  render(rows: readonly ServiceHealthRow[], nowSeconds: number): void {
    this.empty.hidden = rows.length > 0;
    const lines: HTMLTableRowElement[] = [];
    for (const row of rows) {
      const score = row.score === null ? `${row.status}` : `${row.score} · ${row.status}`;
      const why = scoreExplanation({ score: row.score, status: row.status, reasons: row.reasons, inputs: row.inputs }, nowSeconds);
      const scoreCell = el("td", { class: `health-${row.status}`, title: why.join("\n") }, [score]);
      const serviceCell = el("td", {}, [el("a", { href: serviceHref(row.service) }, [row.service])]);
      if (row.instances.length === 0) {
        lines.push(el("tr", {}, [serviceCell, scoreCell, ...["—", "—", "—", "—", "—", "—"].map((t) => el("td", {}, [t]))]));
        continue;
      }
      row.instances.forEach((instance, index) => {
        const cells = [
          el("td", {}, [instance.instance]),
          el("td", {}, [instance.version ?? "—"]),
          el("td", {}, [instance.sources.join(", ")]),
          el("td", {}, [leaseLeft(instance.lease, nowSeconds)]),
          el("td", {}, [formatAge(instance.last_seen, nowSeconds)]),
          el("td", {}, [instance.health_url ?? "—"]),
        ];
        const lead = index === 0 ? [serviceCell, scoreCell] : [el("td", {}, []), el("td", {}, [])];
        lines.push(el("tr", { "data-instance": instance.instance }, [...lead, ...cells]));
      });
    }
    this.body.replaceChildren(...lines);
  }
}
