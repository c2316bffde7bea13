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
import { profilesHref } from "../router";
import type { TraceEvent } from "../traces/model";
import { el, setText } from "./dom";

const SVG_NS = "http://www.w3.org/2000/svg";
const PADDING = 16;
/** "Fit" shrinks no further than this (text stays legible); zoom out and pan to see more. */
const MIN_FIT_SCALE = 0.6;
/** On a phone the whole graph matters more at first sight: pinch to read a node. */
const MIN_FIT_SCALE_NARROW = 0.45;
/** "Fit" enlarges a small graph at most this much. */
const MAX_FIT_SCALE = 1.5;
/** Zoom limits for the wheel, pinch and +/- keys. */
const MIN_ZOOM = 0.2;
const MAX_ZOOM = 4;
const ZOOM_STEP = 1.25;
/** The graph's box is never shorter than this. */
const MIN_VIEWPORT_HEIGHT = 280;
/** Narrower than this, layers become rows (top to bottom). */
const VERTICAL_BELOW_PX = 640;
/** With more edges than this, labels are left to each edge's tooltip (they would overlap). */
const MAX_LABELLED_EDGES = 40;
/** A name row and three rows of numbers. */
const NODE_HEIGHT = 78;
/** Node width: sized to the widest text of any node, within these bounds. */
const MIN_NODE_WIDTH = 168;
const MAX_NODE_WIDTH = 300;
const NODE_TEXT_X = 14;
/** Room kept for an edge label (two short lines), used to place labels without overlaps. */
const LABEL_WIDTH = 132;
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
  /**
   * Where `rate` comes from: request metrics, RED from all of the service's spans, or (virtual
   * nodes) the calls into it over the graph's window.
   */
  rateKind?: "requests" | "spans" | "calls";
  errorRatio: number | null;
  p95Ms: number | null;
  /** Mean latency (ms), when known. */
  avgMs?: number | null;
  health: Health;
  alerts: number;
  /** "" while current; else why the numbers are greyed ("no data since 14:03:12"). */
  stale?: string;
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

/** "661 req/s", "19.6 req/s (spans)", "12 calls/s": the unit says which source the number is from. */
export function nodeRateText(node: PipelineNode): string {
  if (node.rate === null) return "—";
  switch (node.rateKind ?? (node.virtual ? "calls" : "requests")) {
    case "requests":
      return `${compactNumber(node.rate)} req/s`;
    case "spans":
      return `${compactNumber(node.rate)} req/s (spans)`;
    case "calls":
      return `${compactNumber(node.rate)} calls/s`;
  }
}

/**
 * Short stats under a node's name: "120 req/s · 1.2 % err", "avg 12 ms · p95 40 ms" and
 * "healthy · 1 alert" (or, when the numbers are stale, "no data since …").
 */
export function nodeLines(node: PipelineNode): [string, string, string] {
  const errors = node.errorRatio === null ? "" : ` · ${formatRatio(node.errorRatio)} err`;
  const first = node.virtual ? `${node.kind} · ${nodeRateText(node)}` : `${nodeRateText(node)}${errors}`;
  const avg = node.avgMs === null || node.avgMs === undefined ? "" : `avg ${formatMilliseconds(node.avgMs)} · `;
  const alerts = node.alerts > 0 ? ` · ${node.alerts} alert${node.alerts === 1 ? "" : "s"}` : "";
  const third = node.stale ? node.stale : `${HEALTH_LABEL[node.health]}${alerts}`;
  return [first, `${avg}p95 ${formatMilliseconds(node.p95Ms)}`, node.stale && alerts ? `${third}${alerts}` : third];
}

/**
 * The node's accessible name: the drawn text in its order (so what is seen is what is heard, WCAG
 * 2.5.3), then why the health score is what it is.
 */
export function nodeAccessibleName(node: PipelineNode): string {
  const shown = [truncate(node.name, 28), ...nodeLines(node)].join(", ");
  return node.why === undefined || node.why.length === 0 ? shown : `${shown}. ${node.why.join("; ")}`;
}

/** Approximate width (px) of `text` in the node's stat font, for sizing nodes to their content. */
export function textWidth(text: string, fontPx: number): number {
  const key = `${fontPx}|${text}`;
  const known = measured.get(key);
  if (known !== undefined) return known;
  const ctx = measureContext();
  if (ctx !== null) {
    ctx.font = `${fontPx}px system-ui, sans-serif`;
    const width = ctx.measureText(text).width;
    if (width > 0) {
      // Numbers change all the time: a bounded memo, emptied when full.
      if (measured.size > 4000) measured.clear();
      measured.set(key, width);
      return width;
    }
  }
  // No canvas (tests): an average glyph is a bit over half the font size.
  return text.length * fontPx * 0.6;
}

const measured = new Map<string, number>();
let measureCtx: CanvasRenderingContext2D | null | undefined;
function measureContext(): CanvasRenderingContext2D | null {
  if (measureCtx === undefined) {
    try {
      measureCtx = document.createElement("canvas").getContext("2d");
    } catch {
      measureCtx = null;
    }
  }
  return measureCtx ?? null;
}

/** One width for every node: the widest name or stat line, with room for numbers to grow. */
export function nodeWidthFor(nodes: readonly PipelineNode[]): number {
  let widest = 0;
  for (const node of nodes) {
    widest = Math.max(widest, textWidth(truncate(node.name, 28), 14) * 1.1);
    for (const line of nodeLines(node)) widest = Math.max(widest, textWidth(line, 11.5));
  }
  // Numbers change between layouts ("9.8 ms" → "10.2 ms"): keep a few characters spare.
  return Math.round(Math.min(MAX_NODE_WIDTH, Math.max(MIN_NODE_WIDTH, widest + NODE_TEXT_X + 24)));
}

export function nodeLabel(node: PipelineNode): string {
  const parts = [
    `${node.name}${node.virtual ? ` (${node.kind})` : ""}`,
    HEALTH_LABEL[node.health],
    nodeRateText(node),
  ];
  if (node.avgMs !== null && node.avgMs !== undefined) parts.push(`average ${formatMilliseconds(node.avgMs)}`);
  parts.push(`p95 ${formatMilliseconds(node.p95Ms)}`);
  if (node.errorRatio !== null) parts.push(`${formatRatio(node.errorRatio)} errors`);
  if (node.alerts > 0) parts.push(`${node.alerts} active alert${node.alerts === 1 ? "" : "s"}`);
  if (node.stale) parts.push(node.stale);
  const label = parts.join(", ");
  return node.why === undefined || node.why.length === 0 ? label : `${label}. ${node.why.join("; ")}`;
}

/** An edge's label in two short lines: "152 calls/s · 0.98 %" and "p95 53.6 ms". */
export function edgeLines(edge: PipelineEdge): [string, string] {
  const errors = edge.errorRatio !== null && edge.errorRatio > 0 ? ` · ${formatRatio(edge.errorRatio)}` : "";
  const rate = edge.rate === null ? "—" : `${compactNumber(edge.rate)} calls/s`;
  return [`${rate}${errors}`, `p95 ${formatMilliseconds(edge.p95Ms)}`];
}

export function edgeText(edge: PipelineEdge): string {
  const errors = edge.errorRatio === null ? "" : `, ${formatRatio(edge.errorRatio)} errors`;
  const rate = edge.rate === null ? "—" : `${compactNumber(edge.rate)} calls/s`;
  return `${rate}, p95 ${formatMilliseconds(edge.p95Ms)}${errors}`;
}

/** The view's zoom and pan: screen px = layout px × scale + offset. */
export interface ViewTransform {
  scale: number;
  x: number;
  y: number;
}

/** The transform that shows the whole layout centred in a `width`×`height` box. */
export function fitTransform(layoutWidth: number, layoutHeight: number, width: number, height: number): ViewTransform {
  const w = layoutWidth + 2 * PADDING;
  const h = layoutHeight + 2 * PADDING;
  const minScale = width < VERTICAL_BELOW_PX ? MIN_FIT_SCALE_NARROW : MIN_FIT_SCALE;
  const scale = Math.min(MAX_FIT_SCALE, Math.max(minScale, Math.min(width / w, height / h)));
  return { scale, x: (width - w * scale) / 2 + PADDING * scale, y: Math.max(0, (height - h * scale) / 2) + PADDING * scale };
}

/** Zooms by `factor` keeping the layout point under (px, py) where it is. */
export function zoomAt(view: ViewTransform, factor: number, px: number, py: number): ViewTransform {
  const scale = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, view.scale * factor));
  const k = scale / view.scale;
  return { scale, x: px - (px - view.x) * k, y: py - (py - view.y) * k };
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
  box: SVGRectElement;
  name: SVGTextElement;
  lines: [SVGTextElement, SVGTextElement, SVGTextElement];
  title: SVGTitleElement;
}

interface LabelElements {
  group: SVGGElement;
  background: SVGRectElement;
  text: SVGTextElement;
  spot: Point;
}

export class PipelineView {
  readonly element: HTMLElement;
  private readonly viewport: HTMLElement;
  private readonly svgRoot: SVGSVGElement;
  /** Everything drawn in layout coordinates; its transform is the zoom and pan. */
  private readonly scene: SVGGElement;
  private readonly edgeLayer: SVGGElement;
  private readonly labelLayer: SVGGElement;
  private readonly nodeLayer: SVGGElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly empty: HTMLElement;
  private readonly caption: HTMLElement;
  private readonly nodes = new Map<string, NodeElements>();
  private readonly edgePoints = new Map<string, Point[]>();
  /** "source→target" → its label, in a layer above every edge line. */
  private readonly labels = new Map<string, LabelElements>();
  /** Label boxes in layout coordinates: particles are not drawn over them. */
  private labelBoxes: Box[] = [];
  private readonly particles = new ParticleQueue(300);
  private layout: GraphLayout | null = null;
  private topology = "";
  private direction: "LR" | "TB" = "LR";
  private nodeWidth = MIN_NODE_WIDTH;
  private view: ViewTransform = { scale: 1, x: PADDING, y: PADDING };
  /** Once someone zooms or pans, resizes and new layouts keep their view (until "fit"). */
  private userView = false;
  private readonly pointers = new Map<number, { x: number; y: number }>();
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
    this.scene = svg("g", { class: "graph-scene" });
    this.edgeLayer = svg("g", { class: "edges" });
    this.labelLayer = svg("g", { class: "edge-labels" });
    this.nodeLayer = svg("g", { class: "nodes" });
    this.scene.append(this.edgeLayer, this.labelLayer, this.nodeLayer);
    this.svgRoot.append(this.scene);
    this.canvas = el("canvas", { class: "graph-particles" });
    this.empty = el("p", { class: "graph-empty" }, ["No calls between services yet. The graph fills in as traces arrive."]);
    this.viewport = el("div", { class: "graph-viewport", "data-testid": "graph" }, [this.svgRoot, this.canvas, this.empty]);
    this.caption = el("p", { class: "graph-caption", role: "status" });
    const zoomButton = (label: string, text: string, action: () => void, testId: string) => {
      const button = el("button", { type: "button", class: "button graph-zoom-button", "aria-label": label, title: label, "data-testid": testId }, [text]);
      button.addEventListener("click", action);
      return button;
    };
    const zoomBar = el("div", { class: "graph-zoom", role: "group", "aria-label": "Zoom" }, [
      zoomButton("Zoom in (+)", "+", () => this.zoomBy(ZOOM_STEP), "graph-zoom-in"),
      zoomButton("Zoom out (−)", "−", () => this.zoomBy(1 / ZOOM_STEP), "graph-zoom-out"),
      zoomButton("Fit the graph (0)", "Fit", () => this.resetView(), "graph-fit"),
    ]);
    const legend = el("ul", { class: "graph-legend", "aria-label": "Legend" }, [
      ...(["ok", "degraded", "failing", "no_data"] as Health[]).map((h) =>
        el("li", { "data-health": h }, [el("span", { class: "legend-swatch" }), HEALTH_LABEL[h]]),
      ),
      el("li", { class: "legend-dashed" }, [el("span", { class: "legend-line" }), "messaging / not a service"]),
      el("li", { class: "legend-units" }, [
        "req/s: request metrics · req/s (spans): RED from all spans · calls/s: calls seen in spans over the graph's window",
      ]),
    ]);
    this.element = el("section", { class: "pipeline", "aria-label": "Pipeline" }, [
      el("div", { class: "pipeline-toolbar" }, [el("h1", { class: "page-title" }, ["Pipeline"]), this.caption, zoomBar]),
      legend,
      this.viewport,
      el("p", { class: "graph-help" }, [
        "Arrow keys move between services; Enter opens details; P opens a service's profiles; Escape closes them. Wheel, pinch or +/− zoom; drag pans; 0 fits.",
      ]),
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
    this.viewport.addEventListener("wheel", (event) => this.onWheel(event), { passive: false });
    this.viewport.addEventListener("pointerdown", (event) => this.onPointerDown(event));
    this.viewport.addEventListener("pointermove", (event) => this.onPointerMove(event));
    for (const type of ["pointerup", "pointercancel", "pointerleave"] as const) {
      this.viewport.addEventListener(type, (event) => this.onPointerUp(event));
    }
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
    // Nodes are sized to their text: a number that outgrows the boxes widens them (a new layout).
    const width = nodeWidthFor(nodes);
    if (key !== this.topology || width > this.nodeWidth) {
      this.topology = key;
      this.nodeWidth = width;
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
    const layerGap = !labelled ? DEFAULT_LAYOUT.layerGap : this.direction === "LR" ? LABEL_WIDTH + 56 : 84;
    this.layout = layoutGraph(ids, edges, {
      ...DEFAULT_LAYOUT,
      nodeWidth: this.nodeWidth,
      nodeHeight: NODE_HEIGHT,
      layerGap,
      direction: this.direction,
    });
    const spots = labelled ? placeLabels(this.layout, this.direction, this.nodeWidth, NODE_HEIGHT) : [];
    const wanted = new Set(ids);
    for (const [id, elements] of this.nodes) {
      if (!wanted.has(id)) {
        elements.group.remove();
        this.nodes.delete(id);
      }
    }
    for (const node of nodes) {
      const elements = this.nodes.get(node.id) ?? this.createNode(node);
      setAttr(elements.box, "width", String(this.nodeWidth));
      const position = this.layout.nodes.get(node.id);
      if (position !== undefined) setAttr(elements.group, "transform", `translate(${position.x},${position.y})`);
    }
    // Edges carry no focus, so they are simply rebuilt.
    this.edgeLayer.replaceChildren();
    this.labelLayer.replaceChildren();
    this.edgePoints.clear();
    this.labels.clear();
    this.labelBoxes = [];
    this.layout.edges.forEach((routed, i) => {
      this.edgePoints.set(`${routed.source}\u0000${routed.target}`, routed.points);
      const key = `${routed.source}→${routed.target}`;
      const group = svg("g", { class: "edge", "data-edge": key });
      const path = svg("path", { class: "edge-line", d: edgePath(routed.points, this.direction) });
      group.append(svg("title"), path);
      const spot = spots[i];
      if (spot !== null && spot !== undefined) {
        // The label sits on an opaque plate above every line: no line or dot crosses its text.
        const labelGroup = svg("g", { class: "edge-label-group", "data-edge-label": key });
        const background = svg("rect", { class: "edge-label-bg", rx: 4, x: spot.x - LABEL_WIDTH / 2, y: spot.y - 13, width: LABEL_WIDTH, height: LABEL_HEIGHT - 2 });
        const text = svg("text", { class: "edge-label", "text-anchor": "middle" });
        text.append(svg("tspan", { x: spot.x, y: spot.y - 2 }), svg("tspan", { x: spot.x, y: spot.y + 11 }));
        labelGroup.append(background, text);
        this.labelLayer.append(labelGroup);
        this.labels.set(key, { group: labelGroup, background, text, spot });
        this.labelBoxes.push({ x: spot.x - LABEL_WIDTH / 2, y: spot.y - 13, w: LABEL_WIDTH, h: LABEL_HEIGHT - 2 });
      }
      this.edgeLayer.append(group);
    });
    if (this.active === null || !wanted.has(this.active)) this.active = ids[0] ?? null;
    this.fit();
  }

  private createNode(node: PipelineNode): NodeElements {
    const group = svg("g", {
      class: "node",
      "data-node": node.id,
      role: "button",
      tabindex: -1,
    });
    const title = svg("title");
    const box = svg("rect", { class: "node-box", width: this.nodeWidth, height: NODE_HEIGHT, rx: 8 });
    const stripe = svg("rect", { class: "node-stripe", width: 6, height: NODE_HEIGHT - 2, x: 1, y: 1, rx: 3 });
    const name = svg("text", { class: "node-name", x: NODE_TEXT_X, y: 19 });
    const lines: [SVGTextElement, SVGTextElement, SVGTextElement] = [
      svg("text", { class: "node-stat", x: NODE_TEXT_X, y: 37 }),
      svg("text", { class: "node-stat", x: NODE_TEXT_X, y: 53 }),
      svg("text", { class: "node-stat node-state", x: NODE_TEXT_X, y: 69 }),
    ];
    // Spaces between the texts, so their words do not run together when read as one (axe's
    // name-matches-visible-text check reads "api137 req/s" otherwise); SVG draws none of them.
    group.append(title, box, stripe, name, " ", lines[0], " ", lines[1], " ", lines[2]);
    this.nodeLayer.append(group);
    const elements = { group, box, name, lines, title };
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
      setAttr(group, "data-stale", String(Boolean(node.stale)));
      setAttr(group, "data-rate", node.rate === null ? "" : String(node.rate));
      setAttr(group, "aria-pressed", String(node.id === selected));
      setAttr(group, "tabindex", node.id === this.active ? "0" : "-1");
      setAttr(group, "aria-label", nodeAccessibleName(node));
      setText(elements.title, nodeLabel(node));
      setText(elements.name, truncate(node.name, 28));
      nodeLines(node).forEach((line, i) => {
        const text = elements.lines[i];
        if (text !== undefined) setText(text, line);
      });
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
        const spans = label.text.querySelectorAll("tspan");
        if (spans[0] !== undefined) setText(spans[0], first);
        if (spans[1] !== undefined) setText(spans[1], second);
        // The plate fits its text (within the room reserved for it when labels were placed).
        const width = Math.min(LABEL_WIDTH, Math.ceil(Math.max(textWidth(first, 11), textWidth(second, 11)) + 10));
        setAttr(label.background, "x", String(label.spot.x - width / 2));
        setAttr(label.background, "width", String(width));
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

  /** Picks the direction for the box's width, and shows the whole graph unless someone zoomed. */
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
    if (!this.userView) {
      // As tall as the fitted drawing needs, up to the window less the page's header and toolbar:
      // a wide, flat graph does not leave an empty box below it, a tall one fills the screen.
      const maxHeight = Math.max(MIN_VIEWPORT_HEIGHT, Math.min(1400, window.innerHeight - 230));
      const fitted = fitTransform(layout.width, layout.height, available, maxHeight);
      const needed = Math.ceil((layout.height + 2 * PADDING) * fitted.scale) + 2;
      const wantedHeight = `${Math.max(MIN_VIEWPORT_HEIGHT, Math.min(maxHeight, needed))}px`;
      if (this.viewport.style.height !== wantedHeight) this.viewport.style.height = wantedHeight;
    }
    const height = this.viewport.clientHeight;
    if (!this.userView) this.view = fitTransform(layout.width, layout.height, available, height);
    const ratio = window.devicePixelRatio || 1;
    const cssWidth = Math.round(available);
    const cssHeight = Math.round(height);
    if (this.canvas.width !== Math.round(cssWidth * ratio) || this.canvas.height !== Math.round(cssHeight * ratio)) {
      this.canvas.style.width = `${cssWidth}px`;
      this.canvas.style.height = `${cssHeight}px`;
      this.canvas.width = Math.round(cssWidth * ratio);
      this.canvas.height = Math.round(cssHeight * ratio);
    }
    this.applyView();
  }

  private applyView(): void {
    const { scale, x, y } = this.view;
    setAttr(this.scene, "transform", `translate(${x.toFixed(1)},${y.toFixed(1)}) scale(${scale.toFixed(4)})`);
    this.viewport.dataset.zoom = scale.toFixed(3);
  }

  private setView(view: ViewTransform): void {
    this.view = view;
    this.userView = true;
    this.applyView();
  }

  private zoomBy(factor: number): void {
    this.setView(zoomAt(this.view, factor, this.viewport.clientWidth / 2, this.viewport.clientHeight / 2));
  }

  private resetView(): void {
    this.userView = false;
    this.fit();
  }

  private localPoint(event: { clientX: number; clientY: number }): { x: number; y: number } {
    const rect = this.viewport.getBoundingClientRect();
    return { x: event.clientX - rect.left, y: event.clientY - rect.top };
  }

  private onWheel(event: WheelEvent): void {
    if (this.layout === null) return;
    event.preventDefault();
    const p = this.localPoint(event);
    const delta = event.deltaMode === 1 ? event.deltaY * 16 : event.deltaY;
    this.setView(zoomAt(this.view, Math.exp(-delta * 0.0015), p.x, p.y));
  }

  private onPointerDown(event: PointerEvent): void {
    // A press on a node is a click (select); anywhere else starts a pan (or, with two fingers, a pinch).
    if (this.nodeIdOf(event.target) !== null && event.pointerType === "mouse") return;
    if (event.button !== 0 && event.pointerType === "mouse") return;
    // No pointer capture: a tap on a node must still reach the node as a click.
    this.pointers.set(event.pointerId, this.localPoint(event));
    this.viewport.classList.add("is-panning");
  }

  private onPointerMove(event: PointerEvent): void {
    const previous = this.pointers.get(event.pointerId);
    if (previous === undefined) return;
    const p = this.localPoint(event);
    if (this.pointers.size >= 2) {
      const [a, b] = [...this.pointers.entries()];
      if (a === undefined || b === undefined) return;
      const other = a[0] === event.pointerId ? b[1] : a[1];
      const before = Math.hypot(previous.x - other.x, previous.y - other.y);
      const after = Math.hypot(p.x - other.x, p.y - other.y);
      if (before > 0) this.setView(zoomAt(this.view, after / before, (p.x + other.x) / 2, (p.y + other.y) / 2));
    } else if (p.x !== previous.x || p.y !== previous.y) {
      this.setView({ ...this.view, x: this.view.x + p.x - previous.x, y: this.view.y + p.y - previous.y });
    }
    this.pointers.set(event.pointerId, p);
  }

  private onPointerUp(event: PointerEvent): void {
    if (!this.pointers.delete(event.pointerId)) return;
    if (this.pointers.size === 0) this.viewport.classList.remove("is-panning");
  }

  /** Pans just enough to bring a node (e.g. one reached with the arrow keys) into view. */
  private reveal(id: string): void {
    const position = this.layout?.nodes.get(id);
    if (position === undefined) return;
    const { scale, x, y } = this.view;
    const width = this.viewport.clientWidth;
    const height = this.viewport.clientHeight;
    const left = position.x * scale + x;
    const top = position.y * scale + y;
    const right = left + this.nodeWidth * scale;
    const bottom = top + NODE_HEIGHT * scale;
    let dx = 0;
    let dy = 0;
    if (left < PADDING) dx = PADDING - left;
    else if (right > width - PADDING) dx = width - PADDING - right;
    if (top < PADDING) dy = PADDING - top;
    else if (bottom > height - PADDING) dy = height - PADDING - bottom;
    if (dx !== 0 || dy !== 0) this.setView({ scale, x: x + dx, y: y + dy });
  }

  private frame(): void {
    const ctx = this.canvas.getContext("2d");
    const inFlight = this.particles.inFlight(performance.now());
    if (ctx !== null) {
      const ratio = window.devicePixelRatio || 1;
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
      const { scale, x, y } = this.view;
      ctx.setTransform(scale * ratio, 0, 0, scale * ratio, x * ratio, y * ratio);
      for (const { particle, progress } of inFlight) {
        const points = this.edgePoints.get(`${particle.source}\u0000${particle.target}`);
        if (points === undefined) continue;
        const p = pointAlong(points, progress, this.direction);
        // Dots pass behind labels: a label's numbers stay readable.
        if (this.labelBoxes.some((b) => p.x > b.x - 4 && p.x < b.x + b.w + 4 && p.y > b.y - 4 && p.y < b.y + b.h + 4)) continue;
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
    if (event.key === "+" || event.key === "=") {
      event.preventDefault();
      this.zoomBy(ZOOM_STEP);
      return;
    }
    if (event.key === "-" || event.key === "_") {
      event.preventDefault();
      this.zoomBy(1 / ZOOM_STEP);
      return;
    }
    if (event.key === "0") {
      event.preventDefault();
      this.resetView();
      return;
    }
    if (id === null) return;
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      this.callbacks.onSelect(id);
      return;
    }
    if (event.key === "p" || event.key === "P") {
      // The node's profiles (the details panel links there too).
      event.preventDefault();
      window.location.assign(profilesHref(id));
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
      this.reveal(next);
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
