// A time-series line chart (uPlot) that fits its container's width and says "No data yet" when
// it has nothing to draw. `data-points` on the figure exposes how many points it shows (for tests
// and for anyone inspecting the page).

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { pointCount, type ChartColumns } from "../state/service-stats";
import { el, setText } from "./dom";

export interface LineSpec {
  label: string;
  /** CSS colour of the line. */
  color: string;
}

export interface LineChartOptions {
  /** Stable name, exposed as `data-chart`. */
  name: string;
  title: string;
  lines: LineSpec[];
  /** Formats a y value for the axis and the legend. */
  formatValue: (value: number) => string;
  height?: number;
  /** The x axis spans at least this many seconds, so one or two points do not stretch over years. */
  minSpanSeconds?: number;
}

const AXIS_COLOR = "#9da7b3";
const GRID_COLOR = "rgba(157, 167, 179, 0.15)";

export class LineChart {
  readonly element: HTMLElement;
  private readonly plotHost: HTMLElement;
  private readonly empty: HTMLElement;
  private plot: uPlot | null = null;
  private readonly resizeObserver: ResizeObserver;
  private readonly height: number;
  private xRange: [number, number] = [0, 1];

  constructor(private readonly options: LineChartOptions) {
    this.height = options.height ?? 200;
    this.plotHost = el("div", { class: "chart-plot" });
    this.empty = el("p", { class: "chart-empty" }, ["No data yet"]);
    this.element = el(
      "figure",
      { class: "chart", "data-chart": options.name, "data-points": 0, "aria-label": options.title },
      [el("figcaption", { class: "chart-title" }, [options.title]), this.plotHost, this.empty],
    );
    this.resizeObserver = new ResizeObserver(() => this.fitWidth());
    this.resizeObserver.observe(this.plotHost);
  }

  setData(columns: ChartColumns): void {
    const points = pointCount(columns);
    this.element.dataset.points = String(points);
    this.empty.hidden = points > 0;
    this.plotHost.classList.toggle("is-empty", points === 0);
    this.xRange = xRange(columns[0], this.options.minSpanSeconds ?? 15 * 60, Date.now() / 1000);
    const data = columns as unknown as uPlot.AlignedData;
    if (this.plot === null) {
      this.plot = new uPlot(this.plotOptions(), data, this.plotHost);
    } else {
      this.plot.setData(data);
    }
  }

  /** Clears the chart, e.g. when switching to another service. */
  reset(message = "No data yet"): void {
    setText(this.empty, message);
    const emptyColumns: ChartColumns = [[], ...this.options.lines.map(() => [])];
    this.setData(emptyColumns);
  }

  setEmptyMessage(message: string): void {
    setText(this.empty, message);
  }

  destroy(): void {
    this.resizeObserver.disconnect();
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
      stroke: AXIS_COLOR,
      grid: { stroke: GRID_COLOR, width: 1 },
      ticks: { stroke: GRID_COLOR, width: 1 },
    };
    return {
      width: this.width(),
      height: this.height,
      // The x range is ours, not uPlot's: its auto-range stretches a single point over a whole day.
      scales: { x: { time: true, range: (): uPlot.Range.MinMax => this.xRange } },
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false } },
      axes: [
        axis,
        {
          ...axis,
          size: 64,
          values: (_plot, ticks) => ticks.map((tick) => format(tick)),
        },
      ],
      series: [
        {},
        ...this.options.lines.map(
          (line): uPlot.Series => ({
            label: line.label,
            stroke: line.color,
            width: 2,
            points: { show: true, size: 4 },
            value: (_plot, value) => (value === null || value === undefined ? "—" : format(value)),
          }),
        ),
      ],
    };
  }
}

/** At least `minSpan` seconds ending at the newest point (or now, with no points). */
export function xRange(xs: readonly number[], minSpan: number, nowSeconds: number): [number, number] {
  const first = xs[0];
  const last = xs.at(-1);
  if (first === undefined || last === undefined) return [nowSeconds - minSpan, nowSeconds];
  return [Math.min(first, last - minSpan), last];
}
