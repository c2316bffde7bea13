// The Services page (issue 13 item 7): every instance with its version, source (OTLP, registered,
// scraped), lease, last sighting or heartbeat, and each service's health score with the reasons.

import { formatAge } from "../format";
import { serviceHref } from "../router";
import { leaseLeft, type ServiceHealthRow } from "../registry/model";
import { el } from "./dom";

export class ServicesPage {
  readonly element: HTMLElement;
  private readonly body: HTMLTableSectionElement;
  private readonly empty: HTMLElement;

  constructor() {
    this.body = el("tbody", { "data-testid": "services-rows" });
    this.empty = el("p", { class: "empty" }, [
      "No services yet. Send OTLP with service.instance.id, or register an instance (POST /api/registry/instances).",
    ]);
    this.element = el("section", { class: "services-page", "data-testid": "services-page" }, [
      el("h1", { class: "page-title" }, ["Services"]),
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

  render(rows: readonly ServiceHealthRow[], nowSeconds: number): void {
    this.empty.hidden = rows.length > 0;
    const lines: HTMLTableRowElement[] = [];
    for (const row of rows) {
      const score = row.score === null ? `${row.status}` : `${row.score} · ${row.status}`;
      const scoreCell = el("td", { class: `health-${row.status}`, title: row.reasons.join("; ") }, [score]);
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
