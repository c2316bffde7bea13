// A flame graph drawn on one <canvas> (no DOM node per frame): click zooms into a frame, drag or
// shift+wheel pans, ctrl+wheel zooms around the pointer, Escape or "Reset" shows everything, the
// tooltip gives self/total and their share. Geometry, hit testing, search and colours are flame.ts's.

import { el } from "../views/dom";
import {
  ancestry,
  diffChange,
  diffColor,
  frameColor,
  formatSampleValue,
  findPath,
  fullView,
  hitTest,
  pan,
  percent,
  search,
  visibleRects,
  zoomAround,
  zoomTo,
  type FlameNode,
  type FlameTree,
  type FlameView,
  type SearchResult,
} from "./flame";

const ROW = 18;
const FONT = "11px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace";
const MATCH_COLOR = "rgb(214, 64, 200)";
const DIMMED_COLOR = "rgb(218, 218, 218)";

export interface FlameCanvasOptions {
  label: string;
  testId: string;
  /** Called after a click-zoom or reset, with the frame's path from the root (empty: reset). */
  onZoom?: (path: string[]) => void;
}

export class FlameCanvas {
  readonly element: HTMLElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly scroller: HTMLElement;
  private readonly tooltip: HTMLElement;
  private readonly caption: HTMLElement;
  private tree: FlameTree | null = null;
  private unit = "";
  private view: FlameView = { x0: 0, x1: 1 };
  private matches: SearchResult | null = null;
  private query = "";
  private colors: string[] = [];
  private drag: { x: number; view: FlameView; moved: boolean } | null = null;
  private charWidth = 6.6;
  private drawQueued = false;

  constructor(private readonly options: FlameCanvasOptions) {
    this.canvas = el("canvas", {
      class: "flame-canvas",
      tabindex: 0,
      role: "img",
      "aria-label": `${options.label}: click a frame to zoom, Escape to reset; the table lists the same functions`,
      "data-testid": options.testId,
      "data-frames": 0,
    });
    this.tooltip = el("div", { class: "flame-tooltip", role: "tooltip", hidden: true, "data-testid": `${options.testId}-tooltip` });
    this.caption = el("p", { class: "flame-caption", "data-testid": `${options.testId}-caption` });
    this.scroller = el("div", { class: "flame-scroll" }, [this.canvas, this.tooltip]);
    this.element = el("div", { class: "flame" }, [this.caption, this.scroller]);
    this.canvas.addEventListener("mousedown", (e) => {
      if (this.tree !== null) this.drag = { x: e.clientX, view: this.view, moved: false };
    });
    window.addEventListener("mouseup", () => {
      // A click (not a drag) is handled by the click listener, which sees `moved`.
      setTimeout(() => (this.drag = null), 0);
    });
    this.canvas.addEventListener("mousemove", (e) => this.onMove(e));
    this.canvas.addEventListener("mouseleave", () => (this.tooltip.hidden = true));
    this.canvas.addEventListener("click", (e) => this.onClick(e));
    this.canvas.addEventListener("wheel", (e) => this.onWheel(e), { passive: false });
    this.canvas.addEventListener("keydown", (e) => {
      if (e.key === "Escape") this.reset();
      else if (e.key === "ArrowLeft" && this.tree !== null) this.setView(pan(this.view, this.tree, -0.2));
      else if (e.key === "ArrowRight" && this.tree !== null) this.setView(pan(this.view, this.tree, 0.2));
    });
    new ResizeObserver(() => this.scheduleDraw()).observe(this.scroller);
  }

  /** Shows `tree`; `keepPath` re-zooms into the frame at that path when the new tree has it. */
  setTree(tree: FlameTree | null, unit: string, keepPath: string[] = []): void {
    this.tree = tree;
    this.unit = unit;
    this.colors = tree === null ? [] : tree.names.map((n) => frameColor(n));
    this.matches = tree === null ? null : search(tree, this.query);
    const kept = tree === null ? null : findPath(tree, keepPath);
    this.view = tree === null ? { x0: 0, x1: 1 } : kept !== null ? zoomTo(kept.node) : fullView(tree);
    this.canvas.dataset.zoom = kept === null ? "" : keepPath.join(";");
    this.tooltip.hidden = true;
    this.scheduleDraw();
  }

  setSearch(query: string): SearchResult | null {
    this.query = query;
    this.matches = this.tree === null ? null : search(this.tree, query);
    this.scheduleDraw();
    return this.matches;
  }

  /** The zoomed frame's path from the root (empty when showing everything). */
  get zoomPath(): string[] {
    const z = this.canvas.dataset.zoom ?? "";
    return z === "" ? [] : z.split(";");
  }

  reset(): void {
    if (this.tree === null) return;
    this.view = fullView(this.tree);
    this.canvas.dataset.zoom = "";
    this.options.onZoom?.([]);
    this.scheduleDraw();
  }

  private setView(view: FlameView): void {
    this.view = view;
    this.scheduleDraw();
  }

  private scheduleDraw(): void {
    if (this.drawQueued) return;
    this.drawQueued = true;
    requestAnimationFrame(() => {
      this.drawQueued = false;
      this.draw();
    });
  }

  private onClick(e: MouseEvent): void {
    if (this.drag?.moved === true || this.tree === null) return;
    const hit = this.hit(e);
    if (hit === null) return;
    this.view = zoomTo(hit.node);
    const path = ancestry(this.tree, hit.depth, hit.index)
      .slice(1)
      .map((n) => this.tree?.names[n.name] ?? "?");
    this.canvas.dataset.zoom = path.join(";");
    this.options.onZoom?.(path);
    this.scheduleDraw();
  }

  private onWheel(e: WheelEvent): void {
    if (this.tree === null) return;
    const rect = this.canvas.getBoundingClientRect();
    if (e.ctrlKey || e.metaKey) {
      e.preventDefault();
      const anchor = (e.clientX - rect.left) / Math.max(rect.width, 1);
      this.setView(zoomAround(this.view, this.tree, anchor, e.deltaY > 0 ? 1.25 : 0.8));
    } else if (e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY)) {
      e.preventDefault();
      const delta = e.shiftKey ? e.deltaY : e.deltaX;
      this.setView(pan(this.view, this.tree, delta / Math.max(rect.width, 1)));
    }
  }

  private onMove(e: MouseEvent): void {
    if (this.tree === null) return;
    if (this.drag !== null && (e.buttons & 1) === 1) {
      const dx = e.clientX - this.drag.x;
      if (Math.abs(dx) > 3) this.drag.moved = true;
      if (this.drag.moved) {
        this.setView(pan(this.drag.view, this.tree, -dx / Math.max(this.canvas.clientWidth, 1)));
        this.tooltip.hidden = true;
        return;
      }
    }
    const hit = this.hit(e);
    if (hit === null) {
      this.tooltip.hidden = true;
      this.canvas.style.cursor = "default";
      return;
    }
    this.canvas.style.cursor = "pointer";
    this.tooltip.replaceChildren(...this.describe(hit.node));
    this.tooltip.hidden = false;
    const box = this.scroller.getBoundingClientRect();
    const x = e.clientX - box.left + this.scroller.scrollLeft;
    const y = e.clientY - box.top + this.scroller.scrollTop;
    const width = this.tooltip.offsetWidth;
    this.tooltip.style.left = `${Math.max(0, Math.min(x + 12, this.scroller.clientWidth - width - 4))}px`;
    this.tooltip.style.top = `${y + 16}px`;
  }

  private describe(node: FlameNode): Node[] {
    const tree = this.tree;
    if (tree === null) return [];
    const name = tree.names[node.name] ?? "?";
    const fmt = (v: number) => formatSampleValue(v, this.unit);
    const lines: Node[] = [el("strong", {}, [name])];
    if (tree.diff) {
      const change = diffChange(node, tree.total, tree.baseTotal);
      lines.push(
        el("div", {}, [`Total: ${fmt(node.total)} (${percent(node.total, tree.total)}) · before ${fmt(node.baseTotal)} (${percent(node.baseTotal, tree.baseTotal)})`]),
        el("div", {}, [`Self: ${fmt(node.self)} (${percent(node.self, tree.total)}) · before ${fmt(node.baseSelf)} (${percent(node.baseSelf, tree.baseTotal)})`]),
        el("div", {}, [change > 0.05 ? "Grew" : change < -0.05 ? "Shrank" : "About the same"]),
      );
    } else {
      lines.push(
        el("div", {}, [`Total: ${fmt(node.total)} (${percent(node.total, tree.total)} of all)`]),
        el("div", {}, [`Self: ${fmt(node.self)} (${percent(node.self, tree.total)} of all)`]),
      );
    }
    return lines;
  }

  private hit(e: MouseEvent): ReturnType<typeof hitTest> {
    if (this.tree === null) return null;
    const rect = this.canvas.getBoundingClientRect();
    return hitTest(this.tree, this.view, rect.width, ROW, e.clientX - rect.left, e.clientY - rect.top);
  }

  private draw(): void {
    const tree = this.tree;
    const width = Math.max(1, this.scroller.clientWidth);
    const rows = tree === null ? 1 : Math.max(1, tree.levels.length);
    const dpr = window.devicePixelRatio || 1;
    const height = rows * ROW;
    if (this.canvas.width !== Math.round(width * dpr) || this.canvas.height !== Math.round(height * dpr)) {
      this.canvas.width = Math.round(width * dpr);
      this.canvas.height = Math.round(height * dpr);
      this.canvas.style.width = `${width}px`;
      this.canvas.style.height = `${height}px`;
    }
    const ctx = this.canvas.getContext("2d");
    if (ctx === null) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    if (tree === null || tree.total + tree.baseTotal <= 0) {
      this.canvas.dataset.frames = "0";
      this.setCaption(tree, 0);
      return;
    }
    ctx.font = FONT;
    ctx.textBaseline = "middle";
    this.charWidth = ctx.measureText("mmmmmmmmmm").width / 10 || this.charWidth;
    const rects = visibleRects(tree, this.view, width, ROW);
    const matches = this.matches;
    for (const r of rects) {
      const node = tree.levels[r.depth]?.[r.index];
      if (node === undefined) continue;
      const matched = matches?.matches[node.name] ?? false;
      ctx.fillStyle =
        matches !== null
          ? matched
            ? MATCH_COLOR
            : DIMMED_COLOR
          : tree.diff
            ? diffColor(node, tree.total, tree.baseTotal)
            : (this.colors[node.name] ?? "#ccc");
      ctx.fillRect(r.x, r.y, Math.max(r.w - 1, 0.5), ROW - 1);
      const chars = Math.floor((r.w - 6) / this.charWidth);
      if (chars >= 3) {
        const name = tree.names[node.name] ?? "";
        const text = name.length <= chars ? name : `${name.slice(0, chars - 1)}…`;
        ctx.fillStyle = "#1b1f24";
        ctx.fillText(text, r.x + 3, r.y + ROW / 2);
      }
    }
    this.canvas.dataset.frames = String(rects.length);
    this.setCaption(tree, rects.length);
  }

  private setCaption(tree: FlameTree | null, frames: number): void {
    if (tree === null) {
      this.caption.textContent = "No profile for this range.";
      return;
    }
    const fmt = (v: number) => formatSampleValue(v, this.unit);
    const zoom = this.zoomPath;
    const parts = [
      tree.diff ? `Total ${fmt(tree.total)} (before: ${fmt(tree.baseTotal)})` : `Total ${fmt(tree.total)}`,
      `${frames} frames drawn`,
    ];
    if (zoom.length > 0) parts.push(`zoomed into ${zoom.at(-1)} (Escape resets)`);
    if (this.matches !== null) {
      parts.push(`“${this.query}”: ${this.matches.frames} frames, ${percent(this.matches.total, tree.total)} of total`);
    }
    this.caption.textContent = parts.join(" · ");
  }
}
