// One service's page: live stat cards and the latency, throughput and utilization charts.

import {
  compactNumber,
  formatMilliseconds,
  formatPercent,
  formatRate,
  formatRatio,
} from "../format";
import type { ServiceCharts, ServiceStats } from "../state/service-stats";
import { LineChart } from "./chart";
import { el, setText } from "./dom";

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

export class ServicePage {
  readonly element: HTMLElement;
  private readonly title: HTMLElement;
  private readonly notice: HTMLElement;
  private readonly cards = new Map<string, StatCard>();
  private readonly charts: { latency: LineChart; throughput: LineChart; utilization: LineChart };

  constructor() {
    this.title = el("h1", { class: "page-title", "data-testid": "service-title" });
    this.notice = el("p", { class: "notice", role: "note", hidden: true });
    const cardGrid = el("section", { class: "stat-grid", "aria-label": "Current values" }, [
      this.card("throughput", "Throughput", (s) => formatRate(s.throughput)),
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
    const chartGrid = el("section", { class: "chart-grid", "aria-label": "Charts, last hour" }, [
      this.charts.latency.element,
      this.charts.throughput.element,
      this.charts.utilization.element,
    ]);
    this.element = el("section", { class: "service-page", "data-testid": "service-page" }, [
      this.title,
      this.notice,
      cardGrid,
      chartGrid,
    ]);
  }

  /** Switches to another service: clears what was shown for the previous one. */
  show(service: string): void {
    setText(this.title, service);
    this.element.dataset.service = service;
    this.setNotice(null);
    for (const card of this.cards.values()) setText(card.value, "—");
    for (const chart of Object.values(this.charts)) chart.reset("Loading…");
  }

  render(stats: ServiceStats, charts: ServiceCharts): void {
    for (const card of this.cards.values()) setText(card.value, card.read(stats));
    this.charts.latency.setData(charts.latency);
    this.charts.throughput.setData(charts.throughput);
    this.charts.utilization.setData(charts.utilization);
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

  private card(name: string, label: string, read: (stats: ServiceStats) => string): HTMLElement {
    const value = el("p", { class: "stat-value", "data-testid": `stat-${name}` }, ["—"]);
    this.cards.set(name, { value, read });
    return el("article", { class: "stat-card", "data-stat": name }, [
      el("h3", { class: "stat-label" }, [label]),
      value,
    ]);
  }
}
