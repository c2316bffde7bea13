// Live traces animated along the graph's edges: each hop of a trace becomes a dot travelling from
// caller to callee. Real hops take milliseconds, so a trace is replayed in slow motion (its hops
// keep their order and relative timing) and each dot travels for at least MIN_TRAVEL_MS to be seen.
// The number of dots in flight is capped, so a burst of traces costs a bounded amount per frame.

import type { TraceEvent } from "../traces/model";
import type { Point } from "./layout";

export interface Particle {
  source: string;
  target: string;
  /** Animation clock (ms) at which the dot leaves the caller. */
  startAt: number;
  travelMs: number;
  error: boolean;
}

/** A trace replays over about this long (slower for very short traces, at most SLOWEST_FACTOR). */
export const REPLAY_MS = 1200;
export const SLOWEST_FACTOR = 50;
export const MIN_TRAVEL_MS = 600;
export const MAX_TRAVEL_MS = 1500;

export class ParticleQueue {
  private particles: Particle[] = [];
  /** Dots not shown because the cap was reached (for the bench and for tests). */
  dropped = 0;

  constructor(readonly capacity = 300) {}

  /**
   * Schedules a trace's hops starting at `now`. Hops along edges that are not drawn (`hasEdge`
   * false) are skipped. Returns how many dots were added.
   */
  addTrace(trace: TraceEvent, now: number, hasEdge: (source: string, target: string) => boolean): number {
    const scale = Math.min(SLOWEST_FACTOR, REPLAY_MS / Math.max(1, trace.durationMs));
    let added = 0;
    for (const hop of trace.hops) {
      if (!hasEdge(hop.from, hop.to)) continue;
      if (this.particles.length >= this.capacity) {
        this.dropped += 1;
        continue;
      }
      this.particles.push({
        source: hop.from,
        target: hop.to,
        startAt: now + hop.offsetMs * scale,
        travelMs: Math.min(MAX_TRAVEL_MS, Math.max(MIN_TRAVEL_MS, hop.durationMs * scale)),
        error: hop.error,
      });
      added += 1;
    }
    return added;
  }

  /** Dots on their way at `now`, with how far along (0..1); finished ones are forgotten. */
  inFlight(now: number): { particle: Particle; progress: number }[] {
    this.particles = this.particles.filter((p) => p.startAt + p.travelMs > now);
    const result: { particle: Particle; progress: number }[] = [];
    for (const particle of this.particles) {
      if (particle.startAt > now) continue;
      result.push({ particle, progress: (now - particle.startAt) / particle.travelMs });
    }
    return result;
  }

  get pending(): number {
    return this.particles.length;
  }

  clear(): void {
    this.particles = [];
  }
}

/**
 * Control points of the curve between two consecutive edge points: leaving and entering along the
 * flow direction, so edges look like smooth S-curves between layers.
 */
export function curveControls(a: Point, b: Point, direction: "LR" | "TB"): [Point, Point] {
  if (direction === "LR") {
    const dx = (b.x - a.x) / 2;
    return [
      { x: a.x + dx, y: a.y },
      { x: b.x - dx, y: b.y },
    ];
  }
  const dy = (b.y - a.y) / 2;
  return [
    { x: a.x, y: a.y + dy },
    { x: b.x, y: b.y - dy },
  ];
}

/** SVG path data for an edge through `points`. */
export function edgePath(points: readonly Point[], direction: "LR" | "TB"): string {
  const first = points[0];
  if (first === undefined) return "";
  let d = `M${round(first.x)},${round(first.y)}`;
  for (let i = 1; i < points.length; i += 1) {
    const a = points[i - 1] ?? first;
    const b = points[i] ?? first;
    const [c1, c2] = curveControls(a, b, direction);
    d += ` C${round(c1.x)},${round(c1.y)} ${round(c2.x)},${round(c2.y)} ${round(b.x)},${round(b.y)}`;
  }
  return d;
}

/** The point `t` (0..1) of the way along the edge drawn by `edgePath`, segment by segment. */
export function pointAlong(points: readonly Point[], t: number, direction: "LR" | "TB"): Point {
  const segments = points.length - 1;
  const first = points[0] ?? { x: 0, y: 0 };
  if (segments <= 0) return first;
  const clamped = Math.min(1, Math.max(0, t));
  const scaled = clamped * segments;
  const index = Math.min(segments - 1, Math.floor(scaled));
  const local = scaled - index;
  const a = points[index] ?? first;
  const b = points[index + 1] ?? first;
  const [c1, c2] = curveControls(a, b, direction);
  const u = 1 - local;
  return {
    x: u * u * u * a.x + 3 * u * u * local * c1.x + 3 * u * local * local * c2.x + local * local * local * b.x,
    y: u * u * u * a.y + 3 * u * u * local * c1.y + 3 * u * local * local * c2.y + local * local * local * b.y,
  };
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
