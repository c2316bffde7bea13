// The pipeline graph: services (and the databases and brokers they call) as nodes laid out as a
// flow, calls as edges labelled with throughput, p95 and errors, live traces as dots moving along
// the edges.
//
// Why SVG for nodes and edges and a canvas for the dots: nodes must be focusable, clickable and
// named for screen readers, which SVG elements are; there are at most a few hundred of them and
// they change only when numbers change (text updates in place, the layout is redone only when the
// topology changes). The dots move every frame, and there can be hundreds: on a canvas a frame is
// one clear and a few hundred arcs, with no DOM or style work.

import { HEALTH_LABEL, type Health } from "../graph/health";
import { DEFAULT_LAYOUT, layoutGraph, type GraphLayout, type Point } from "../graph/layout";
import { topologyKey } from "../graph/model";
import { edgePath, ParticleQueue, pointAlong } from "../graph/particles";
import { compactNumber, formatMilliseconds, formatRatio } from "../format";
import type { TraceEvent } from "../traces/model";
import { el, setText } from "./dom";

const SVG_NS = "http://www.w3.org/2000/svg";
const PADDING = 16;
/** Below this the graph scrolls inside its box instead of shrinking further (text stays legible). */
const MIN_SCALE = 0.75;
/** Narrower than this, layers become rows (top to bottom). */
const VERTICAL_BELOW_PX = 640;
/** With more edges than this, labels are left to each edge's tooltip (they would overlap). */
const MAX_LABELLED_EDGES = 40;
const NODE_HEIGHT = 62;
/** Room kept for an edge label (two short lines), used to place labels without overlaps. */
const LABEL_WIDTH = 104;
const LABEL_HEIGHT = 28;
/** Where along an edge a label may go, best first. */
const LABEL_SPOTS = [0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8];

export interface PipelineNode {
  id: string;
  name: string;
  kind: string;
  virtual: boolean;
  /** Requests per second. */
  rate: number | null;
  errorRatio: number | null;
  p95Ms: number | null;
  health: Health;
  alerts: number;
  /** Why the node's health score is what it is (`scoreExplanation`); empty when it has none. */
  why?: string[];
}

export interface PipelineEdge {
  source: string;
  target: string;
  kind: string;
  rate: number | null;
  errorRatio: number | null;
  p95Ms: number | null;
  health: Health;
}

export interface PipelineCallbacks {
  onSelect(id: string): void;
  onClose(): void;
}

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | number> = {},
): SVGElementTagNameMap[K] {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  return element;
}

function setAttr(element: Element, name: string, value: string): void {
  if (element.getAttribute(name) !== value) element.setAttribute(name, value);
}

export function rateText(rate: number | null): string {
  return rate === null ? "—" : `${compactNumber(rate)}/s`;
}

/** Short stats under a node's name: "120/s · 1.2 % err" and "p95 40 ms · healthy". */
export function nodeLines(node: PipelineNode): [string, string] {
  const errors = node.errorRatio === null ? "" : ` · ${formatRatio(node.errorRatio)} err`;
  const first = node.virtual ? `${node.kind} · ${rateText(node.rate)}` : `${rateText(node.rate)}${errors}`;
  const alerts = node.alerts > 0 ? ` · ${node.alerts} alert${node.alerts === 1 ? "" : "s"}` : "";
  return [first, `p95 ${formatMilliseconds(node.p95Ms)} · ${HEALTH_LABEL[node.health]}${alerts}`];
}

export function nodeLabel(node: PipelineNode): string {
  const parts = [
    `${node.name}${node.virtual ? ` (${node.kind})` : ""}`,
    HEALTH_LABEL[node.health],
    `${rateText(node.rate)} requests`,
    `p95 ${formatMilliseconds(node.p95Ms)}`,
  ];
  if (node.errorRatio !== null) parts.push(`${formatRatio(node.errorRatio)} errors`);
  if (node.alerts > 0) parts.push(`${node.alerts} active alert${node.alerts === 1 ? "" : "s"}`);
  const label = parts.join(", ");
  return node.why === undefined || node.why.length === 0 ? label : `${label}. ${node.why.join("; ")}`;
}

/** An edge's label in two short lines: "152/s · 0.98 %" and "p95 53.6 ms". */
export function edgeLines(edge: PipelineEdge): [string, string] {
  const errors = edge.errorRatio !== null && edge.errorRatio > 0 ? ` · ${formatRatio(edge.errorRatio)}` : "";
  return [`${rateText(edge.rate)}${errors}`, `p95 ${formatMilliseconds(edge.p95Ms)}`];
}

export function edgeText(edge: PipelineEdge): string {
  const errors = edge.errorRatio === null ? "" : `, ${formatRatio(edge.errorRatio)} errors`;
  return `${rateText(edge.rate)}, p95 ${formatMilliseconds(edge.p95Ms)}${errors}`;
}

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

function overlapping(a: Box, b: Box): boolean {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

/**
 * A spot for each edge's label that covers no node and no other label, or null when the edge has
 * none (its numbers stay in its tooltip). Placed once per layout, so labels do not jump around.
 */
export function placeLabels(
  layout: GraphLayout,
  direction: "LR" | "TB",
  nodeWidth: number,
  nodeHeight: number,
): (Point | null)[] {
  const taken: Box[] = [...layout.nodes.values()].map((n) => ({ x: n.x - 4, y: n.y - 4, w: nodeWidth + 8, h: nodeHeight + 8 }));
  return layout.edges.map((edge) => {
    for (const t of LABEL_SPOTS) {
      const p = pointAlong(edge.points, t, direction);
      const box = { x: p.x - LABEL_WIDTH / 2, y: p.y - LABEL_HEIGHT / 2, w: LABEL_WIDTH, h: LABEL_HEIGHT };
      if (taken.some((other) => overlapping(box, other))) continue;
      taken.push(box);
      return p;
    }
    return null;
  });
}

interface NodeElements {
  group: SVGGElement;
  name: SVGTextElement;
  line1: SVGTextElement;
  line2: SVGTextElement;
  title: SVGTitleElement;
}

export class PipelineView {
  readonly element: HTMLElement;
  private readonly viewport: HTMLElement;
  private readonly svgRoot: SVGSVGElement;
  private readonly edgeLayer: SVGGElement;
  private readonly nodeLayer: SVGGElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly empty: HTMLElement;
  private readonly caption: HTMLElement;
  private readonly nodes = new Map<string, NodeElements>();
  private readonly edgePoints = new Map<string, Point[]>();
  /** "source→target" → its label (moved above all edge lines, so not inside the edge's group). */
  private readonly labels = new Map<string, SVGTextElement>();
  private readonly particles = new ParticleQueue(300);
  private layout: GraphLayout | null = null;
  private topology = "";
  private direction: "LR" | "TB" = "LR";
  private scale = 1;
  private active: string | null = null;
  private animating = false;
  private animated = 0;
  private visible = false;
  private lastNodes: PipelineNode[] = [];
  private lastEdges: PipelineEdge[] = [];
  private lastSelected: string | null = null;
  private readonly reducedMotion: boolean;

  constructor(private readonly callbacks: PipelineCallbacks) {
    this.reducedMotion = window.matchMedia?.("(prefers-reduced-motion: reduce)").matches ?? false;
    this.svgRoot = svg("svg", { class: "graph-svg", role: "group", "aria-label": "Service graph" });
    this.svgRoot.append(this.markers());
    this.edgeLayer = svg("g", { class: "edges" });
    this.nodeLayer = svg("g", { class: "nodes" });
    this.svgRoot.append(this.edgeLayer, this.nodeLayer);
    this.canvas = el("canvas", { class: "graph-particles", "aria-hidden": "true" });
    this.empty = el("p", { class: "graph-empty" }, ["No calls between services yet. The graph fills in as traces arrive."]);
    this.viewport = el("div", { class: "graph-viewport", "data-testid": "graph" }, [this.svgRoot, this.canvas, this.empty]);
    this.caption = el("p", { class: "graph-caption", role: "status" });
    const legend = el("ul", { class: "graph-legend", "aria-label": "Legend" }, [
      ...(["ok", "degraded", "failing", "no_data"] as Health[]).map((h) =>
        el("li", { "data-health": h }, [el("span", { class: "legend-swatch", "aria-hidden": "true" }), HEALTH_LABEL[h]]),
      ),
      el("li", { class: "legend-dashed" }, [el("span", { class: "legend-line", "aria-hidden": "true" }), "messaging / not a service"]),
    ]);
    this.element = el("section", { class: "pipeline", "aria-label": "Pipeline" }, [
      el("div", { class: "pipeline-toolbar" }, [el("h1", { class: "page-title" }, ["Pipeline"]), this.caption]),
      legend,
      this.viewport,
      el("p", { class: "graph-help" }, ["Arrow keys move between services; Enter opens details; Escape closes them."]),
    ]);
    this.svgRoot.addEventListener("keydown", (event) => this.onKeyDown(event));
    this.svgRoot.addEventListener("click", (event) => {
      const id = this.nodeIdOf(event.target);
      if (id !== null) this.callbacks.onSelect(id);
    });
    this.svgRoot.addEventListener("focusin", (event) => {
      const id = this.nodeIdOf(event.target);
      if (id !== null) this.setActive(id);
    });
    new ResizeObserver(() => this.fit()).observe(this.viewport);
  }

  setCaption(text: string): void {
    setText(this.caption, text);
  }

  setVisible(visible: boolean): void {
    this.visible = visible;
    if (!visible) this.particles.clear();
    else this.fit();
  }

  /** Dots sent along edges so far, and dots dropped because too many were in flight. */
  get particleCounts(): { animated: number; dropped: number } {
    return { animated: this.animated, dropped: this.particles.dropped };
  }

  render(nodes: readonly PipelineNode[], edges: readonly PipelineEdge[], selected: string | null): void {
    this.lastNodes = [...nodes];
    this.lastEdges = [...edges];
    this.lastSelected = selected;
    this.empty.hidden = nodes.length > 0;
    const key = `${this.direction}|${topologyKey(
      nodes.map((n) => n.id),
      edges,
    )}`;
    if (key !== this.topology) {
      this.topology = key;
      this.relayout(nodes, edges);
    }
    this.updateEdges(edges);
    this.updateNodes(nodes, selected);
  }

  /** Animates a live trace along the edges it used (skipped when the graph is not on screen). */
  addTrace(trace: TraceEvent): void {
    if (!this.visible || this.reducedMotion || this.layout === null) return;
    this.animated += this.particles.addTrace(trace, performance.now(), (s, t) => this.edgePoints.has(`${s}\u0000${t}`));
    if (!this.animating && this.particles.pending > 0) {
      this.animating = true;
      requestAnimationFrame(() => this.frame());
    }
  }

  focusNode(id: string): void {
    this.nodes.get(id)?.group.focus();
  }

  private relayout(nodes: readonly PipelineNode[], edges: readonly PipelineEdge[]): void {
    const ids = nodes.map((n) => n.id);
    const labelled = edges.length <= MAX_LABELLED_EDGES;
    // Labels need room between layers; without them the graph can be tighter.
    const layerGap = !labelled ? DEFAULT_LAYOUT.layerGap : this.direction === "LR" ? 150 : 84;
    this.layout = layoutGraph(ids, edges, {
      ...DEFAULT_LAYOUT,
      nodeHeight: NODE_HEIGHT,
      layerGap,
      direction: this.direction,
    });
    const spots = labelled ? placeLabels(this.layout, this.direction, DEFAULT_LAYOUT.nodeWidth, NODE_HEIGHT) : [];
    const wanted = new Set(ids);
    for (const [id, elements] of this.nodes) {
      if (!wanted.has(id)) {
        elements.group.remove();
        this.nodes.delete(id);
      }
    }
    for (const node of nodes) {
      const elements = this.nodes.get(node.id) ?? this.createNode(node);
      const position = this.layout.nodes.get(node.id);
      if (position !== undefined) setAttr(elements.group, "transform", `translate(${position.x},${position.y})`);
    }
    // Edges carry no focus, so they are simply rebuilt.
    this.edgeLayer.replaceChildren();
    this.edgePoints.clear();
    this.labels.clear();
    this.layout.edges.forEach((routed, i) => {
      this.edgePoints.set(`${routed.source}\u0000${routed.target}`, routed.points);
      const group = svg("g", { class: "edge", "data-edge": `${routed.source}→${routed.target}` });
      const path = svg("path", { class: "edge-line", d: edgePath(routed.points, this.direction) });
      group.append(svg("title"), path);
      const spot = spots[i];
      if (spot !== null && spot !== undefined) {
        const label = svg("text", { class: "edge-label", "text-anchor": "middle", "aria-hidden": "true" });
        const first = svg("tspan", { x: spot.x, y: spot.y - 2 });
        const second = svg("tspan", { x: spot.x, y: spot.y + 11 });
        label.append(first, second);
        group.append(label);
        this.labels.set(`${routed.source}→${routed.target}`, label);
      }
      this.edgeLayer.append(group);
    });
    // Labels above every edge line, so a line never crosses a label's text.
    for (const label of [...this.edgeLayer.querySelectorAll(".edge-label")]) this.edgeLayer.append(label);
    if (this.active === null || !wanted.has(this.active)) this.active = ids[0] ?? null;
    this.fit();
  }

  private createNode(node: PipelineNode): NodeElements {
    const w = DEFAULT_LAYOUT.nodeWidth;
    const group = svg("g", {
      class: "node",
      "data-node": node.id,
      role: "button",
      tabindex: -1,
    });
    const title = svg("title");
    const box = svg("rect", { class: "node-box", width: w, height: NODE_HEIGHT, rx: 8 });
    const stripe = svg("rect", { class: "node-stripe", width: 6, height: NODE_HEIGHT - 2, x: 1, y: 1, rx: 3 });
    const name = svg("text", { class: "node-name", x: 14, y: 19 });
    const line1 = svg("text", { class: "node-stat", x: 14, y: 36 });
    const line2 = svg("text", { class: "node-stat", x: 14, y: 52 });
    group.append(title, box, stripe, name, line1, line2);
    this.nodeLayer.append(group);
    const elements = { group, name, line1, line2, title };
    this.nodes.set(node.id, elements);
    return elements;
  }

  private updateNodes(nodes: readonly PipelineNode[], selected: string | null): void {
    for (const node of nodes) {
      const elements = this.nodes.get(node.id);
      if (elements === undefined) continue;
      const { group } = elements;
      setAttr(group, "data-health", node.health);
      setAttr(group, "data-virtual", String(node.virtual));
      setAttr(group, "aria-pressed", String(node.id === selected));
      setAttr(group, "tabindex", node.id === this.active ? "0" : "-1");
      const label = nodeLabel(node);
      setAttr(group, "aria-label", label);
      setText(elements.title, label);
      setText(elements.name, truncate(node.name, 20));
      const [first, second] = nodeLines(node);
      setText(elements.line1, first);
      setText(elements.line2, second);
    }
  }

  private updateEdges(edges: readonly PipelineEdge[]): void {
    const byKey = new Map(edges.map((e) => [`${e.source}→${e.target}`, e]));
    const maxRate = Math.max(1e-9, ...edges.map((e) => e.rate ?? 0));
    for (const group of this.edgeLayer.querySelectorAll(".edge")) {
      const key = group.getAttribute("data-edge") ?? "";
      const edge = byKey.get(key);
      if (edge === undefined) continue;
      setAttr(group, "data-health", edge.health);
      setAttr(group, "data-kind", edge.kind);
      const title = group.querySelector("title");
      if (title !== null) setText(title, `${edge.source} → ${edge.target}: ${edgeText(edge)}`);
      const label = this.labels.get(key);
      if (label !== undefined) {
        const [first, second] = edgeLines(edge);
        const spans = label.querySelectorAll("tspan");
        if (spans[0] !== undefined) setText(spans[0], first);
        if (spans[1] !== undefined) setText(spans[1], second);
      }
      const path = group.querySelector("path");
      // Wider for busier edges, on a log scale so one hot path does not flatten the rest.
      const width = 1.5 + 3 * (Math.log1p(edge.rate ?? 0) / Math.log1p(maxRate));
      if (path !== null) {
        setAttr(path, "stroke-width", width.toFixed(1));
        setAttr(path, "marker-end", `url(#arrow-${edge.health})`);
      }
    }
  }

  /** Scales the drawing to the box's width (down to MIN_SCALE, then it scrolls). */
  private fit(): void {
    const available = this.viewport.clientWidth;
    if (available <= 0) return;
    const direction = available < VERTICAL_BELOW_PX ? "TB" : "LR";
    if (direction !== this.direction) {
      this.direction = direction;
      this.topology = "";
      this.render(this.lastNodes, this.lastEdges, this.lastSelected);
      return;
    }
    const layout = this.layout;
    if (layout === null) return;
    const width = layout.width + 2 * PADDING;
    const height = layout.height + 2 * PADDING;
    this.scale = Math.min(1, Math.max(MIN_SCALE, (available - 2) / width));
    const cssWidth = Math.round(width * this.scale);
    const cssHeight = Math.round(height * this.scale);
    setAttr(this.svgRoot, "viewBox", `${-PADDING} ${-PADDING} ${width} ${height}`);
    setAttr(this.svgRoot, "width", String(cssWidth));
    setAttr(this.svgRoot, "height", String(cssHeight));
    const ratio = window.devicePixelRatio || 1;
    this.canvas.style.width = `${cssWidth}px`;
    this.canvas.style.height = `${cssHeight}px`;
    this.canvas.width = Math.round(cssWidth * ratio);
    this.canvas.height = Math.round(cssHeight * ratio);
  }

  private frame(): void {
    const ctx = this.canvas.getContext("2d");
    const inFlight = this.particles.inFlight(performance.now());
    if (ctx !== null) {
      const ratio = window.devicePixelRatio || 1;
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
      const s = this.scale * ratio;
      ctx.setTransform(s, 0, 0, s, PADDING * s, PADDING * s);
      for (const { particle, progress } of inFlight) {
        const points = this.edgePoints.get(`${particle.source}\u0000${particle.target}`);
        if (points === undefined) continue;
        const p = pointAlong(points, progress, this.direction);
        ctx.beginPath();
        ctx.arc(p.x, p.y, 4, 0, Math.PI * 2);
        ctx.fillStyle = particle.error ? "#ff7b72" : "#79c0ff";
        ctx.fill();
      }
    }
    if (this.particles.pending > 0 && this.visible) {
      requestAnimationFrame(() => this.frame());
    } else {
      this.animating = false;
      ctx?.clearRect(0, 0, this.canvas.width, this.canvas.height);
    }
  }

  private nodeIdOf(target: EventTarget | null): string | null {
    if (!(target instanceof Element)) return null;
    return target.closest("[data-node]")?.getAttribute("data-node") ?? null;
  }

  private setActive(id: string): void {
    if (this.active === id) return;
    const previous = this.active === null ? undefined : this.nodes.get(this.active);
    previous?.group.setAttribute("tabindex", "-1");
    this.active = id;
    this.nodes.get(id)?.group.setAttribute("tabindex", "0");
  }

  private onKeyDown(event: KeyboardEvent): void {
    const id = this.nodeIdOf(event.target);
    if (event.key === "Escape") {
      this.callbacks.onClose();
      return;
    }
    if (id === null) return;
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      this.callbacks.onSelect(id);
      return;
    }
    const directions: Record<string, [number, number]> = {
      ArrowRight: [1, 0],
      ArrowLeft: [-1, 0],
      ArrowDown: [0, 1],
      ArrowUp: [0, -1],
    };
    const direction = directions[event.key];
    if (direction === undefined || this.layout === null) return;
    event.preventDefault();
    const next = nearestInDirection(this.layout, id, direction);
    if (next !== null) {
      this.setActive(next);
      this.focusNode(next);
    }
  }

  private markers(): SVGDefsElement {
    const defs = svg("defs");
    for (const health of ["ok", "degraded", "failing", "no_data"] as Health[]) {
      const marker = svg("marker", {
        id: `arrow-${health}`,
        class: "edge-arrow",
        "data-health": health,
        viewBox: "0 0 10 10",
        refX: 9,
        refY: 5,
        markerWidth: 7,
        markerHeight: 7,
        markerUnits: "userSpaceOnUse",
        orient: "auto-start-reverse",
      });
      marker.append(svg("path", { d: "M0,0 L10,5 L0,10 z" }));
      defs.append(marker);
    }
    return defs;
  }
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/**
 * The node to move to with an arrow key: among nodes lying in that direction (within 60° of it),
 * the closest, with sideways distance counting double so "right" prefers the same row.
 */
export function nearestInDirection(layout: GraphLayout, from: string, [dx, dy]: [number, number]): string | null {
  const origin = layout.nodes.get(from);
  if (origin === undefined) return null;
  let best: string | null = null;
  let bestScore = Number.POSITIVE_INFINITY;
  for (const node of layout.nodes.values()) {
    if (node.id === from) continue;
    const vx = node.x - origin.x;
    const vy = node.y - origin.y;
    const along = vx * dx + vy * dy;
    const across = Math.abs(vx * dy - vy * dx);
    if (along <= 0 || across > along * Math.tan(Math.PI / 3)) continue;
    const score = along + 2 * across;
    if (score < bestScore) {
      bestScore = score;
      best = node.id;
    }
  }
  return best;
}
