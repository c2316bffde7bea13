// One service's details: RED numbers from the service graph, live stat cards, the latency,
// throughput and utilization charts over a picked range and resolution, its alerts and its recent
// traces (each a link to the trace view). Shown as a page (`#/services/x`) or as the panel beside
// the pipeline graph (`#/pipeline/x`): the same element moves between the two.

import type { Alert } from "../alerts/model";
import {
  compactNumber,
  formatMilliseconds,
  formatPercent,
  formatRate,
  formatRatio,
} from "../format";
import { HEALTH_LABEL, type Health } from "../graph/health";
import type { GraphNode } from "../graph/model";
import { profilesHref, traceHref } from "../router";
import { METRICS, type ServiceCharts, type ServiceStats } from "../state/service-stats";
import type { GlobalTime } from "../state/time-range";
import type { TraceEvent, TraceSummary } from "../traces/model";
import { AlertList, type AlertActions } from "./alert-list";
import { LineChart } from "./chart";
import { el, setText } from "./dom";
import { exportLink } from "./export-link";

interface StatCard {
  value: HTMLElement;
  read: (stats: ServiceStats) => string;
}

const COLORS = {
  blue: "#58a6ff",
  amber: "#e3b341",
  red: "#ff7b72",
  green: "#3fb950",
  purple: "#d2a8ff",
};

export interface ServicePageCallbacks extends AlertActions {
  /** The panel's close button (only shown beside the graph). */
  onClose(): void;
  /** The global time range in use (what "Export CSV" exports). */
  currentTime(): GlobalTime;
}

/** A recent trace as listed: from the API's summaries or from live trace events. */
export interface TraceRow {
  traceId: string;
  operation: string;
  startMs: number | null;
  durationMs: number | null;
  spans: number | null;
  /** True for a live trace not yet listed by the API: `spans` is then a lower bound (root + hops). */
  spansAtLeast?: boolean;
  error: boolean;
}

/** "7", or "≥ 3" for a live trace whose full span count the server has not listed yet. */
export function spansText(row: TraceRow): string {
  if (row.spans === null) return "—";
  return row.spansAtLeast === true ? `≥ ${row.spans}` : String(row.spans);
}

export function traceRows(summaries: readonly TraceSummary[], live: readonly TraceEvent[], limit: number): TraceRow[] {
  const rows = new Map<string, TraceRow>();
  for (const t of live) {
    rows.set(t.traceId, {
      traceId: t.traceId,
      operation: t.rootName || t.rootService,
      startMs: t.startMs,
      durationMs: t.durationMs,
      // A live event names the root and each hop's callee: at least that many spans.
      spans: 1 + t.hops.length,
      spansAtLeast: true,
      error: t.error,
    });
  }
  // The API knows more (span counts), so its row wins for a trace both know.
  for (const t of summaries) {
    rows.set(t.traceId, {
      traceId: t.traceId,
      operation: t.rootName || t.rootService,
      startMs: t.startMs,
      durationMs: t.durationMs,
      spans: t.spanCount,
      error: t.error,
    });
  }
  return [...rows.values()].sort((a, b) => (b.startMs ?? 0) - (a.startMs ?? 0)).slice(0, limit);
}

export class ServicePage {
  readonly element: HTMLElement;
  private readonly title: HTMLElement;
  private readonly profilesLink = el("a", { class: "button", "data-testid": "service-profiles-link" }, ["Profiles"]);
  private readonly healthBadge: HTMLElement;
  private readonly closeButton: HTMLButtonElement;
  private readonly notice: HTMLElement;
  private readonly red: HTMLElement;
  private readonly cards = new Map<string, StatCard>();
  private readonly charts: { latency: LineChart; throughput: LineChart; utilization: LineChart };
  private readonly rangeNote: HTMLElement;
  private readonly alertList: AlertList;
  private readonly traceBody: HTMLTableSectionElement;
  private readonly traceEmpty: HTMLElement;

  constructor(private readonly callbacks: ServicePageCallbacks) {
    this.title = el("h1", { class: "page-title", "data-testid": "service-title" });
    this.healthBadge = el("span", { class: "health-badge", "data-testid": "service-health" });
    this.closeButton = el("button", { type: "button", class: "button panel-close", "aria-label": "Close details" }, ["Close"]);
    this.closeButton.addEventListener("click", () => this.callbacks.onClose());
    this.notice = el("p", { class: "notice", role: "note", hidden: true });
    this.red = el("dl", { class: "red-summary", "data-testid": "red-summary", "aria-describedby": "red-caption" });
    const cardGrid = el("section", { class: "stat-grid", "aria-label": "Current values" }, [
      this.card("throughput", "Throughput", (s) => formatRate(s.throughput, s.rateKind === "spans" ? "req/s (spans)" : "req/s")),
      this.card("p95", "p95 latency", (s) => formatMilliseconds(s.p95LatencyMs)),
      this.card("error-rate", "Error rate", (s) => formatRatio(s.errorRatio)),
      this.card("cpu", "CPU", (s) => formatPercent(s.cpuPercent)),
      this.card("memory", "Memory", (s) => formatPercent(s.memoryPercent)),
    ]);
    this.charts = {
      latency: new LineChart({
        name: "latency",
        title: "Latency",
        lines: [
          { label: "p50", color: COLORS.blue },
          { label: "p95", color: COLORS.amber },
          { label: "p99", color: COLORS.red },
        ],
        formatValue: formatMilliseconds,
      }),
      throughput: new LineChart({
        name: "throughput",
        title: "Throughput",
        lines: [
          { label: "requests/s", color: COLORS.green },
          { label: "errors/s", color: COLORS.red },
        ],
        formatValue: (v) => `${compactNumber(v)}/s`,
      }),
      utilization: new LineChart({
        name: "utilization",
        title: "CPU and memory",
        lines: [
          { label: "CPU", color: COLORS.purple },
          { label: "memory", color: COLORS.blue },
        ],
        formatValue: formatPercent,
      }),
    };
    // "Export CSV" under each chart: its main metric over the global time range (docs/export.md).
    const onScreen = () => {
      const service = this.element.dataset.service;
      return service ? { service, time: callbacks.currentTime() } : null;
    };
    this.charts.latency.element.append(exportLink(METRICS.latency, onScreen));
    this.charts.throughput.element.append(exportLink(METRICS.requests, onScreen));
    this.charts.utilization.element.append(exportLink(METRICS.cpu, onScreen));
    // The charts follow the global time range (the picker under the header).
    this.rangeNote = el("p", { class: "range-note", "data-testid": "range-note" });
    const pickers = el("div", { class: "pickers" }, [this.rangeNote]);
    const chartGrid = el("section", { class: "chart-grid", "aria-label": "Charts" }, [
      this.charts.latency.element,
      this.charts.throughput.element,
      this.charts.utilization.element,
    ]);
    this.alertList = new AlertList(callbacks, {
      emptyText: "No active alerts.",
      showService: false,
      testId: "service-alerts",
    });
    this.traceBody = el("tbody");
    this.traceEmpty = el("p", { class: "empty" }, ["No traces kept for this service yet."]);
    const traces = el("section", { class: "panel-section", "aria-labelledby": "recent-traces-heading" }, [
      el("h2", { class: "section-title", id: "recent-traces-heading" }, ["Recent traces"]),
      el("div", { class: "table-scroll" }, [
        el("table", { class: "trace-table", "data-testid": "recent-traces" }, [
          el("thead", {}, [
            el("tr", {}, [
              el("th", { scope: "col" }, ["When"]),
              el("th", { scope: "col" }, ["Operation"]),
              el("th", { scope: "col", class: "numeric" }, ["Duration"]),
              el("th", { scope: "col", class: "numeric" }, ["Spans"]),
              el("th", { scope: "col" }, ["Status"]),
            ]),
          ]),
          this.traceBody,
        ]),
      ]),
      this.traceEmpty,
    ]);
    this.element = el("section", { class: "service-page", "data-testid": "service-page" }, [
      el("div", { class: "page-heading" }, [this.title, this.healthBadge, this.profilesLink, this.closeButton]),
      this.notice,
      el("p", { class: "red-caption", id: "red-caption" }, ["From all spans (RED, not sampled traces), last 5 minutes"]),
      this.red,
      cardGrid,
      pickers,
      chartGrid,
      el("section", { class: "panel-section", "aria-labelledby": "service-alerts-heading" }, [
        el("h2", { class: "section-title", id: "service-alerts-heading" }, ["Alerts"]),
        this.alertList.element,
      ]),
      traces,
    ]);
  }

  /** Switches to another service: clears what was shown for the previous one. */
  show(service: string): void {
    setText(this.title, service);
    this.profilesLink.href = profilesHref(service);
    this.element.dataset.service = service;
    this.setNotice(null);
    for (const card of this.cards.values()) setText(card.value, "—");
    for (const chart of Object.values(this.charts)) chart.reset("Loading…");
    this.setRed(null, "no_data");
    this.setTraces([]);
  }

  /** As a panel beside the graph, the page offers a close button. */
  setPanelMode(panel: boolean): void {
    this.closeButton.hidden = !panel;
    this.element.classList.toggle("is-panel", panel);
  }

  /** "Live" or "Reloaded every minute", and the resolution: how the charts are kept current. */
  setRangeNote(text: string): void {
    setText(this.rangeNote, text);
  }

  /** The global range changed: the charts wait for its history. */
  resetCharts(): void {
    for (const chart of Object.values(this.charts)) chart.reset("Loading…");
  }

  render(stats: ServiceStats, charts: ServiceCharts, extent: { from: number; to: number }): void {
    for (const card of this.cards.values()) setText(card.value, card.read(stats));
    for (const chart of Object.values(this.charts)) chart.setExtent(extent);
    this.charts.latency.setData(charts.latency);
    this.charts.throughput.setData(charts.throughput);
    this.charts.utilization.setData(charts.utilization);
  }

  /** RED numbers of the service over the graph's window (null: the graph has not seen it). */
  setRed(node: GraphNode | null, health: Health): void {
    this.healthBadge.dataset.health = health;
    setText(this.healthBadge, HEALTH_LABEL[health]);
    const items: [string, string][] = [
      ["Requests", node === null ? "—" : formatRate(node.rate)],
      ["Errors", node === null ? "—" : formatRatio(node.errorRatio)],
      ["p50", formatMilliseconds(node?.p50Ms)],
      ["p95", formatMilliseconds(node?.p95Ms)],
      ["p99", formatMilliseconds(node?.p99Ms)],
    ];
    if (this.red.children.length !== items.length) {
      // Each term and its value in one box, so they wrap together.
      this.red.replaceChildren(...items.map(([term]) => el("div", { class: "red-item" }, [el("dt", {}, [term]), el("dd", {})])));
    }
    items.forEach(([, value], i) => {
      const dd = this.red.children[i]?.querySelector("dd");
      if (dd !== null && dd !== undefined) setText(dd, value);
    });
  }

  setAlerts(alerts: readonly Alert[], nowSeconds: number): void {
    this.alertList.render(alerts, nowSeconds);
  }

  setTraces(rows: readonly TraceRow[]): void {
    this.traceEmpty.hidden = rows.length > 0;
    const existing = new Map<string, HTMLTableRowElement>();
    for (const row of this.traceBody.querySelectorAll<HTMLTableRowElement>("tr[data-trace]")) {
      existing.set(row.dataset.trace ?? "", row);
    }
    const ordered = rows.map((row) => {
      const tr = existing.get(row.traceId) ?? this.traceRow(row.traceId);
      existing.delete(row.traceId);
      const cells = tr.children;
      const when = row.startMs === null ? "—" : new Date(row.startMs).toLocaleTimeString();
      setText(cells[0] as Element, when);
      const link = cells[1]?.querySelector("a");
      if (link !== null && link !== undefined) setText(link, row.operation || row.traceId.slice(0, 8));
      setText(cells[2] as Element, formatMilliseconds(row.durationMs));
      setText(cells[3] as Element, spansText(row));
      setText(cells[4] as Element, row.error ? "error" : "ok");
      tr.dataset.error = String(row.error);
      return tr;
    });
    for (const stale of existing.values()) stale.remove();
    ordered.forEach((tr, i) => {
      if (this.traceBody.children[i] !== tr) this.traceBody.insertBefore(tr, this.traceBody.children[i] ?? null);
    });
  }

  /** Text shown in an empty chart once its history has loaded. */
  setEmptyMessage(message: string): void {
    for (const chart of Object.values(this.charts)) chart.setEmptyMessage(message);
  }

  setNotice(message: string | null): void {
    this.notice.hidden = message === null;
    setText(this.notice, message ?? "");
  }

  destroy(): void {
    for (const chart of Object.values(this.charts)) chart.destroy();
  }

  private traceRow(traceId: string): HTMLTableRowElement {
    return el("tr", { "data-trace": traceId }, [
      el("td", {}),
      el("td", {}, [el("a", { href: traceHref(traceId), class: "trace-link" })]),
      el("td", { class: "numeric" }),
      el("td", { class: "numeric" }),
      el("td", {}),
    ]);
  }

  private card(name: string, label: string, read: (stats: ServiceStats) => string): HTMLElement {
    const value = el("p", { class: "stat-value", "data-testid": `stat-${name}` }, ["—"]);
    this.cards.set(name, { value, read });
    return el("article", { class: "stat-card", "data-stat": name }, [
      el("h3", { class: "stat-label" }, [label]),
      value,
    ]);
  }
}
