// A time-series chart (uPlot) that fits its container's width and says "No data yet" when it has
// nothing to draw: lines, stacked areas or bars. `data-points` on the figure exposes how many
// points it shows (for tests and for anyone inspecting the page).

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { pointCount, type ChartColumns } from "../state/service-stats";
import { cssColor, THEME_EVENT } from "../theme";
import { el, setText } from "./dom";

/** Where a drag across any chart's time axis goes (the app sets the global range from it). */
let zoomHandler: ((from: number, to: number) => void) | null = null;

export function onChartZoom(handler: ((from: number, to: number) => void) | null): void {
  zoomHandler = handler;
}

export interface LineSpec {
  label: string;
  /** CSS colour of the line. */
  color: string;
}

export type ChartKind = "line" | "stacked-area" | "bars";

export interface LineChartOptions {
  /** Stable name, exposed as `data-chart`. */
  name: string;
  title: string;
  lines: LineSpec[];
  /**
   * "stacked-area": columns are cumulative (line k = lines 0..k added up) and drawn as bands; the
   * legend shows each band's own value from the `legendColumns` given to `setData`.
   */
  kind?: ChartKind;
  /** Formats a y value for the axis and the legend. */
  formatValue: (value: number) => string;
  height?: number;
  /** The x axis spans at least this many seconds, so one or two points do not stretch over years. */
  minSpanSeconds?: number;
}

/** Axis text and grid follow the theme (CSS variables, read at each draw). */
const axisColor = (): string => cssColor("--text-muted", "#9da7b3");
const gridColor = (): string => cssColor("--grid", "rgba(157, 167, 179, 0.15)");

export class LineChart {
  readonly element: HTMLElement;
  private readonly plotHost: HTMLElement;
  private readonly empty: HTMLElement;
  private plot: uPlot | null = null;
  private readonly resizeObserver: ResizeObserver;
  private readonly height: number;
  private xRange: [number, number] = [0, 1];
  private lines: LineSpec[];
  /** Per-band values for the legend of a stacked chart, in `lines` order. */
  private legendColumns: ChartColumns | null = null;
  /** A fixed x extent (the global time range), or null to end at the newest point. */
  private extent: [number, number] | null = null;
  private readonly tooltip: HTMLElement;
  private readonly onTheme = (): void => this.plot?.redraw(false, true);

  constructor(private readonly options: LineChartOptions) {
    this.tooltip = el("div", { class: "chart-tooltip", "data-testid": "chart-tooltip", "aria-hidden": "true", hidden: true });
    this.lines = options.lines;
    this.height = options.height ?? 200;
    this.plotHost = el("div", { class: "chart-plot" });
    this.empty = el("p", { class: "chart-empty" }, ["No data yet"]);
    this.element = el(
      "figure",
      { class: "chart", "data-chart": options.name, "data-points": 0, role: "figure", "aria-label": options.title },
      [el("figcaption", { class: "chart-title" }, [options.title]), this.plotHost, this.empty],
    );
    // The canvas says nothing to a screen reader: the legend table below it carries the values.
    this.plotHost.setAttribute("role", "img");
    this.plotHost.setAttribute("aria-label", `${options.title}: time series chart; drag across it to zoom to that time`);
    window.addEventListener(THEME_EVENT, this.onTheme);
    this.resizeObserver = new ResizeObserver(() => this.fitWidth());
    this.resizeObserver.observe(this.plotHost);
  }

  /** Replaces the lines (e.g. the services shown changed); the plot is rebuilt on the next data. */
  setLines(lines: LineSpec[]): void {
    const same =
      lines.length === this.lines.length &&
      lines.every((line, i) => line.label === this.lines[i]?.label && line.color === this.lines[i]?.color);
    if (same) return;
    this.lines = lines;
    this.plot?.destroy();
    this.plot = null;
  }

  /** Sets the minimum x span (seconds), e.g. the picked time range. */
  setMinSpan(seconds: number): void {
    this.options.minSpanSeconds = seconds;
  }

  /** Fixes the x extent (unix s), e.g. the global time range; null: end at the newest point. */
  setExtent(extent: { from: number; to: number } | null): void {
    this.extent = extent === null ? null : [extent.from, extent.to];
    this.element.dataset.from = extent === null ? "" : String(Math.round(extent.from));
    this.element.dataset.to = extent === null ? "" : String(Math.round(extent.to));
  }

  setData(columns: ChartColumns, legendColumns?: ChartColumns): void {
    const points = pointCount(columns);
    this.element.dataset.points = String(points);
    // The newest drawn point's values (what the right end of the chart shows), for tests and tools.
    this.element.dataset.newest = JSON.stringify(newestValues(legendColumns ?? columns));
    this.empty.hidden = points > 0;
    this.plotHost.classList.toggle("is-empty", points === 0);
    this.xRange = this.extent ?? xRange(columns[0], this.options.minSpanSeconds ?? 15 * 60, Date.now() / 1000);
    this.legendColumns = legendColumns ?? null;
    // Stacked bands are drawn widest (the total) first, so each narrower band stays visible on top.
    const ordered = this.options.kind === "stacked-area" ? [columns[0], ...columns.slice(1).reverse()] : columns;
    const data = ordered as unknown as uPlot.AlignedData;
    if (this.plot === null) {
      this.plot = new uPlot(this.plotOptions(), data, this.plotHost);
    } else {
      this.plot.setData(data);
    }
  }

  /** Clears the chart, e.g. when switching to another service. */
  reset(message = "No data yet"): void {
    setText(this.empty, message);
    const emptyColumns: ChartColumns = [[], ...this.lines.map(() => [])];
    this.setData(emptyColumns);
  }

  setEmptyMessage(message: string): void {
    setText(this.empty, message);
  }

  destroy(): void {
    this.resizeObserver.disconnect();
    window.removeEventListener(THEME_EVENT, this.onTheme);
    this.plot?.destroy();
    this.plot = null;
  }

  private width(): number {
    return Math.max(200, Math.floor(this.plotHost.clientWidth));
  }

  private fitWidth(): void {
    if (this.plot === null) return;
    const width = this.width();
    if (width !== this.plot.width) this.plot.setSize({ width, height: this.height });
  }

  private plotOptions(): uPlot.Options {
    const format = this.options.formatValue;
    const axis: uPlot.Axis = {
      stroke: axisColor,
      grid: { stroke: gridColor, width: 1 },
      ticks: { stroke: gridColor, width: 1 },
    };
    return {
      width: this.width(),
      height: this.height,
      // The x range is ours, not uPlot's: its auto-range stretches a single point over a whole day.
      scales: {
        x: { time: true, range: (): uPlot.Range.MinMax => this.xRange },
        // Areas and bars measure amounts from zero; lines may zoom in on their own range.
        ...(this.options.kind === "stacked-area" || this.options.kind === "bars"
          ? { y: { range: (_u: uPlot, _min: number, max: number): uPlot.Range.MinMax => [0, max > 0 ? max * 1.1 : 1] } }
          : {}),
      },
      legend: { show: true, live: true },
      // Dragging across the chart picks that time as the global range (the chart is not zoomed
      // on its own: every view follows the range).
      cursor: { drag: { x: true, y: false, setScale: false } },
      hooks: {
        setSelect: [(u) => this.onSelect(u)],
        setCursor: [(u) => this.showTooltip(u)],
        ready: [(u) => u.over.append(this.tooltip)],
      },
      axes: [
        // Time labels in one format for every chart, the heatmap included (`formatTimeTick`).
        { ...axis, values: (_plot, ticks) => ticks.map((tick) => formatTimeTick(tick, this.xRange[1] - this.xRange[0])) },
        {
          ...axis,
          size: 64,
          values: (_plot, ticks) => ticks.map((tick) => format(tick)),
        },
      ],
      series: [{}, ...this.seriesOptions()],
    };
  }

  private onSelect(u: uPlot): void {
    const { left, width } = u.select;
    if (width < 5) return;
    const from = u.posToVal(left, "x");
    const to = u.posToVal(left + width, "x");
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    zoomHandler?.(from, to);
  }

  /** Every series' value at the cursor, with the time, beside the cursor. */
  private showTooltip(u: uPlot): void {
    const idx = u.cursor.idx;
    const left = u.cursor.left ?? -1;
    if (idx === null || idx === undefined || left < 0) {
      this.tooltip.hidden = true;
      return;
    }
    const x = u.data[0][idx];
    if (x === undefined) {
      this.tooltip.hidden = true;
      return;
    }
    const rows: HTMLElement[] = [el("div", { class: "tooltip-time" }, [new Date(x * 1000).toLocaleString([], { hourCycle: "h23" })])];
    u.series.forEach((series, i) => {
      if (i === 0 || series.show === false) return;
      const raw = u.data[i]?.[idx] ?? null;
      const value = typeof series.value === "function" ? series.value(u, raw as number, i, idx) : String(raw ?? "—");
      const color = typeof series.stroke === "function" ? series.stroke(u, i) : series.stroke;
      rows.push(
        el("div", { class: "tooltip-row" }, [
          el("span", { class: "tooltip-swatch", style: `background:${String(color ?? "")}` }),
          el("span", { class: "tooltip-label" }, [String(series.label ?? "")]),
          el("span", { class: "tooltip-value" }, [String(value)]),
        ]),
      );
    });
    this.tooltip.replaceChildren(...rows);
    this.tooltip.hidden = false;
    const width = u.over.clientWidth;
    const flip = left > width / 2;
    this.tooltip.style.left = flip ? "" : `${left + 12}px`;
    this.tooltip.style.right = flip ? `${width - left + 12}px` : "";
    this.tooltip.style.top = `${Math.max(0, (u.cursor.top ?? 0) - 10)}px`;
  }

  private seriesOptions(): uPlot.Series[] {
    const format = this.options.formatValue;
    const shown = (value: number | null | undefined) =>
      value === null || value === undefined ? "—" : format(value);
    switch (this.options.kind ?? "line") {
      case "line":
        return this.lines.map((line) => ({
          label: line.label,
          stroke: line.color,
          width: 2,
          points: { show: true, size: 4 },
          value: (_plot, value) => shown(value),
        }));
      case "bars":
        return this.lines.map((line) => ({
          label: line.label,
          stroke: line.color,
          fill: withAlpha(line.color, 0.75),
          width: 1,
          paths: uPlot.paths.bars?.({ size: [0.7, 40], align: 0 }),
          points: { show: false },
          value: (_plot, value) => shown(value),
        }));
      case "stacked-area": {
        const count = this.lines.length;
        return [...this.lines].reverse().map((line, reversedIndex) => {
          const lineIndex = count - 1 - reversedIndex;
          return {
            label: line.label,
            stroke: line.color,
            fill: withAlpha(line.color, 0.35),
            width: 1.5,
            points: { show: false },
            // The legend names the band's own value, not the running total it is drawn at.
            value: (_plot, value, _series, dataIndex) => {
              const own = this.legendColumns?.[lineIndex + 1]?.[dataIndex ?? -1];
              return own === undefined ? shown(value) : shown(own);
            },
          };
        });
      }
    }
  }
}

/**
 * A time axis label: "14:05" (24-hour, local) within a day; "Dec 5 14:00" up to a week; "Dec 5"
 * beyond. Every chart and the heatmap use this, so one moment reads the same everywhere.
 */
export function formatTimeTick(unixSeconds: number, spanSeconds: number): string {
  const date = new Date(unixSeconds * 1000);
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  if (spanSeconds <= 86_400) return time;
  const day = date.toLocaleDateString([], { month: "short", day: "numeric" });
  return spanSeconds <= 7 * 86_400 ? `${day} ${time}` : day;
}

/** `#rrggbb` with an alpha, for fills under lines and bars. */
export function withAlpha(hex: string, alpha: number): string {
  const match = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (match === null) return hex;
  const [r, g, b] = [match[1], match[2], match[3]].map((part) => parseInt(part ?? "0", 16));
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
}

/** The values at the newest x where any line has one (nulls kept): the chart's right end. */
export function newestValues(columns: ChartColumns): (number | null)[] {
  const [xs, ...ys] = columns;
  for (let i = xs.length - 1; i >= 0; i -= 1) {
    const values = ys.map((y) => y[i] ?? null);
    if (values.some((v) => v !== null)) return values;
  }
  return [];
}

/** At least `minSpan` seconds ending at the newest point (or now, with no points). */
export function xRange(xs: readonly number[], minSpan: number, nowSeconds: number): [number, number] {
  const first = xs[0];
  const last = xs.at(-1);
  if (first === undefined || last === undefined) return [nowSeconds - minSpan, nowSeconds];
  return [Math.min(first, last - minSpan), last];
}
