// The overview: the whole system at a glance. Stat cards (throughput, worst p95, error rate, active
// alerts), throughput per service as stacked areas, p95 per service as lines, errors as bars, the
// latency heatmap, and the active alerts with their actions.

import type { Alert } from "../alerts/model";
import { compactNumber, formatMilliseconds, formatRate, formatRatio } from "../format";
import type { LatencyHeatmap } from "../state/heatmap";
import type { OverviewCharts, OverviewStats } from "../state/overview";
import { AlertList, type AlertActions } from "./alert-list";
import { LineChart, type LineSpec } from "./chart";
import { el, setText } from "./dom";
import { HeatmapChart } from "./heatmap";

/** Distinct on the dark background, in order of use. */
export const SERVICE_COLORS = ["#58a6ff", "#3fb950", "#e3b341", "#d2a8ff", "#ff7b72", "#56d4dd", "#f778ba", "#ffa657", "#a5d6ff"];

const OTHERS_COLOR = "#8b949e";

export function colorFor(index: number): string {
  return SERVICE_COLORS[index % SERVICE_COLORS.length] ?? "#58a6ff";
}

export class OverviewPage {
  readonly element: HTMLElement;
  private readonly values = new Map<string, HTMLElement>();
  private readonly notes = new Map<string, HTMLElement>();
  private readonly throughput: LineChart;
  private readonly latency: LineChart;
  private readonly errors: LineChart;
  private readonly heatmap: HeatmapChart;
  private readonly alertList: AlertList;
  private readonly staleNote = el("p", { class: "stale-note", role: "status", "data-testid": "overview-stale", hidden: true });

  constructor(actions: AlertActions) {
    const cards = el("section", { class: "stat-grid", "aria-label": "System now" }, [
      this.card("throughput", "Throughput"),
      this.card("p95", "p95 latency (slowest service)"),
      this.card("error-rate", "Error rate"),
      this.card("alerts", "Active alerts"),
    ]);
    this.throughput = new LineChart({
      name: "overview-throughput",
      title: "Throughput by service",
      lines: [],
      kind: "stacked-area",
      formatValue: (v) => `${compactNumber(v)}/s`,
    });
    this.latency = new LineChart({
      name: "overview-latency",
      title: "p95 latency by service",
      lines: [],
      formatValue: formatMilliseconds,
    });
    this.errors = new LineChart({
      name: "overview-errors",
      title: "Errors per second",
      lines: [{ label: "errors/s", color: "#ff7b72" }],
      kind: "bars",
      formatValue: (v) => `${compactNumber(v)}/s`,
    });
    this.heatmap = new HeatmapChart("Latency distribution, all services");
    this.alertList = new AlertList(actions, { emptyText: "No active alerts.", showService: true, testId: "overview-alerts" });
    this.element = el("section", { class: "overview", "data-testid": "overview" }, [
      el("h1", { class: "page-title" }, ["Overview"]),
      this.staleNote,
      cards,
      el("section", { class: "chart-grid", "aria-label": "Charts over the picked time range" }, [
        this.throughput.element,
        this.latency.element,
        this.errors.element,
        this.heatmap.element,
      ]),
      el("section", { class: "panel-section", "aria-labelledby": "overview-alerts-heading" }, [
        el("h2", { class: "section-title", id: "overview-alerts-heading" }, ["Active alerts"]),
        this.alertList.element,
      ]),
    ]);
  }

  render(
    stats: OverviewStats,
    charts: OverviewCharts,
    heatmap: LatencyHeatmap,
    extent: { from: number; to: number },
    stepSeconds: number,
  ): void {
    // Two kinds in one sum are named: request metrics, and (for services without them) spans.
    const spans = stats.throughputFromSpans.length;
    this.set(
      "throughput",
      formatRate(stats.throughput),
      spans === 0 ? "from request metrics" : `request metrics; ${spans} service${spans === 1 ? "" : "s"} from spans`,
    );
    this.set("p95", formatMilliseconds(stats.p95LatencyMs), stats.slowestService ?? "");
    this.set("error-rate", formatRatio(stats.errorRatio));
    this.set("alerts", String(stats.activeAlerts), stats.criticalAlerts > 0 ? `${stats.criticalAlerts} critical` : "");
    // A service has the same colour in both charts ("N others" is grey).
    const lines = (labels: string[]): LineSpec[] =>
      labels.map((label) => ({ label, color: this.colorOf(label, charts.latency.labels) }));
    this.throughput.setLines(lines(charts.throughput.labels));
    this.latency.setLines(lines(charts.latency.labels));
    for (const chart of [this.throughput, this.latency, this.errors]) chart.setExtent(extent);
    this.throughput.setData(charts.throughput.stacked, charts.throughput.columns);
    this.latency.setData(charts.latency.columns);
    this.errors.setData(charts.errors.columns);
    this.heatmap.setData(heatmap, stepSeconds, extent.to - extent.from);
  }

  /** Greys every live number with a note ("no data since …"), or shows them as current (null). */
  setFreshness(note: string | null): void {
    const stale = note !== null;
    if (this.element.dataset.stale !== String(stale)) this.element.dataset.stale = String(stale);
    setText(this.staleNote, note ?? "");
    this.staleNote.hidden = !stale;
  }

  private colorOf(label: string, services: readonly string[]): string {
    const index = services.indexOf(label);
    return index < 0 ? OTHERS_COLOR : colorFor(index);
  }

  setAlerts(alerts: readonly Alert[], nowSeconds: number): void {
    this.alertList.render(alerts, nowSeconds);
  }

  private set(name: string, value: string, note = ""): void {
    const element = this.values.get(name);
    if (element !== undefined) setText(element, value);
    const noteElement = this.notes.get(name);
    if (noteElement !== undefined) setText(noteElement, note);
  }

  private card(name: string, label: string): HTMLElement {
    const value = el("p", { class: "stat-value", "data-testid": `overview-${name}` }, ["—"]);
    const note = el("p", { class: "stat-note" });
    this.values.set(name, value);
    this.notes.set(name, note);
    return el("article", { class: "stat-card", "data-overview-stat": name }, [el("h3", { class: "stat-label" }, [label]), value, note]);
  }
}
