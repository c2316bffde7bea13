// The latency heatmap on a canvas: time across, latency up (log scale), colour = requests per cell.
// Cells come from `state/heatmap.ts` (an approximation from bucket quantiles; see there). The
// figure's text summary says the same in words for screen readers.

import { cssColor, THEME_EVENT } from "../theme";
import { formatMilliseconds } from "../format";
import { formatTimeTick } from "./chart";
import type { LatencyHeatmap } from "../state/heatmap";
import { el, setText } from "./dom";

const HEIGHT = 220;
const AXIS_LEFT = 64;
const AXIS_BOTTOM = 24;


/** Dark-to-bright ramp (perceptually ordered, readable on the dark theme). */
const RAMP: readonly [number, number, number][] = [
  [22, 27, 34],
  [40, 30, 90],
  [95, 40, 140],
  [170, 60, 120],
  [230, 110, 70],
  [250, 190, 60],
  [252, 245, 160],
];

/** Colour for a cell at `fraction` (0..1) of the largest; square root so sparse cells still show. */
export function rampColor(fraction: number): string {
  const t = Math.sqrt(Math.min(1, Math.max(0, fraction))) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(t));
  const local = t - i;
  const a = RAMP[i] ?? [0, 0, 0];
  const b = RAMP[i + 1] ?? a;
  const mix = (k: 0 | 1 | 2) => Math.round(a[k] + (b[k] - a[k]) * local);
  return `rgb(${mix(0)}, ${mix(1)}, ${mix(2)})`;
}

export class HeatmapChart {
  readonly element: HTMLElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly empty: HTMLElement;
  private readonly summary: HTMLElement;
  private readonly resizeObserver: ResizeObserver;
  private data: LatencyHeatmap | null = null;
  private minSpanSeconds = 15 * 60;
  private bucketSeconds = 60;

  constructor(title: string) {
    this.canvas = el("canvas", { class: "heatmap-canvas", role: "img", "aria-label": title });
    this.empty = el("p", { class: "chart-empty" }, ["No data yet"]);
    this.summary = el("p", { class: "heatmap-summary" });
    const legend = el("div", { class: "heatmap-legend", "aria-hidden": "true" }, [
      el("span", {}, ["fewer"]),
      el("span", { class: "heatmap-ramp" }),
      el("span", {}, ["more requests"]),
    ]);
    this.element = el(
      "figure",
      { class: "chart heatmap", "data-chart": "latency-heatmap", "data-points": 0, "aria-label": title },
      [el("figcaption", { class: "chart-title" }, [title]), this.canvas, this.empty, legend, this.summary],
    );
    this.resizeObserver = new ResizeObserver(() => this.draw());
    this.resizeObserver.observe(this.element);
    window.addEventListener(THEME_EVENT, () => this.draw());
  }

  setData(data: LatencyHeatmap, bucketSeconds: number, minSpanSeconds: number): void {
    this.data = data;
    this.bucketSeconds = bucketSeconds;
    this.minSpanSeconds = minSpanSeconds;
    this.element.dataset.points = String(data.starts.length);
    this.empty.hidden = data.starts.length > 0;
    setText(this.summary, describe(data));
    this.draw();
  }

  destroy(): void {
    this.resizeObserver.disconnect();
  }

  private draw(): void {
    const width = Math.max(200, Math.floor(this.canvas.parentElement?.clientWidth ?? 0) - 24);
    const ratio = window.devicePixelRatio || 1;
    if (this.canvas.width !== Math.round(width * ratio) || this.canvas.height !== Math.round(HEIGHT * ratio)) {
      this.canvas.width = Math.round(width * ratio);
      this.canvas.height = Math.round(HEIGHT * ratio);
      this.canvas.style.width = `${width}px`;
      this.canvas.style.height = `${HEIGHT}px`;
    }
    const ctx = this.canvas.getContext("2d");
    if (ctx === null) return;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, HEIGHT);
    const data = this.data;
    if (data === null || data.starts.length === 0) return;

    const plotW = width - AXIS_LEFT - 8;
    const plotH = HEIGHT - AXIS_BOTTOM - 8;
    const last = data.starts.at(-1) ?? 0;
    const end = last + this.bucketSeconds;
    const begin = Math.min(data.starts[0] ?? end, end - this.minSpanSeconds);
    const xOf = (t: number) => AXIS_LEFT + ((t - begin) / (end - begin)) * plotW;
    const cellH = plotH / data.rows;

    data.starts.forEach((start, column) => {
      const x0 = xOf(start);
      const w = Math.max(1, xOf(start + this.bucketSeconds) - x0 - 0.5);
      for (let row = 0; row < data.rows; row += 1) {
        const count = data.counts[column * data.rows + row] ?? 0;
        if (count <= 0) continue;
        ctx.fillStyle = rampColor(count / data.maxCount);
        // Row 0 (fastest) at the bottom.
        ctx.fillRect(x0, 8 + plotH - (row + 1) * cellH, w, Math.ceil(cellH));
      }
    });

    ctx.fillStyle = cssColor("--text-muted", "#9da7b3");
    ctx.font = "12px system-ui, sans-serif";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let i = 0; i <= data.rows; i += Math.max(1, Math.round(data.rows / 4))) {
      const edge = data.edges[i];
      if (edge === undefined) continue;
      ctx.fillText(formatMilliseconds(roundNice(edge)), AXIS_LEFT - 6, 8 + plotH - i * cellH);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    // About one time label per 100 px, so they never run into each other.
    const ticks = Math.max(1, Math.min(4, Math.floor(plotW / 100)));
    for (let i = 0; i <= ticks; i += 1) {
      const t = begin + ((end - begin) * i) / ticks;
      const label = formatTimeTick(t, end - begin);
      ctx.textAlign = i === 0 ? "left" : i === ticks ? "right" : "center";
      ctx.fillText(label, xOf(t), HEIGHT - AXIS_BOTTOM + 6);
    }
  }
}

function roundNice(value: number): number {
  const magnitude = 10 ** Math.floor(Math.log10(value));
  return Math.round((value / magnitude) * 10) / 10 * magnitude;
}

/** "Most requests took 8–15 ms; the slowest cells reach 900 ms." */
export function describe(data: LatencyHeatmap): string {
  if (data.starts.length === 0) return "";
  const rowTotals = new Array<number>(data.rows).fill(0);
  let highest = -1;
  for (let column = 0; column < data.starts.length; column += 1) {
    for (let row = 0; row < data.rows; row += 1) {
      const count = data.counts[column * data.rows + row] ?? 0;
      rowTotals[row] = (rowTotals[row] ?? 0) + count;
      if (count > 0) highest = Math.max(highest, row);
    }
  }
  const busiest = rowTotals.indexOf(Math.max(...rowTotals));
  const low = data.edges[busiest] ?? 0;
  const high = data.edges[busiest + 1] ?? 0;
  const top = data.edges[highest + 1] ?? 0;
  return `Most requests took ${formatMilliseconds(roundNice(low))}–${formatMilliseconds(roundNice(high))}; the slowest reach about ${formatMilliseconds(roundNice(top))}.`;
}
