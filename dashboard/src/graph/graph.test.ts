import { describe, expect, it } from "vitest";
import { edgeHealth, nodeHealth } from "./health";
import * as v from "valibot";
import { contractViolation, GraphView } from "../contract";
import { serviceGraph, topologyKey } from "./model";

const red = { errors: 0, rate: 0, error_rate: null, p50_ms: null, p95_ms: null, p99_ms: null };

describe("serviceGraph", () => {
  it("reads nodes with their RED summary and edges with their kind", () => {
    const body = {
      from: 1000,
      to: 1300,
      resolution: "1m",
      nodes: [
        { id: "api", name: "api", kind: "service", virtual: false, ...red, count: 600, errors: 6, rate: 2, error_rate: 0.01, p50_ms: 20, p95_ms: 80, p99_ms: 150 },
        { id: "postgresql", name: "postgresql", kind: "database", virtual: true, ...red, count: 300, rate: 1 },
      ],
      edges: [
        { source: "api", target: "postgresql", kind: "call", ...red, count: 300, errors: 30, error_rate: 0.1, p95_ms: 12 },
        { source: "api", target: "queue", kind: "messaging", ...red, count: 10, error_rate: 0 },
      ],
    };
    expect(contractViolation(GraphView, body)).toBeNull();
    const graph = serviceGraph(v.parse(GraphView, body));
    const api = graph.nodes.find((n) => n.id === "api");
    expect(api).toMatchObject({ virtual: false, rate: 2, errorRatio: 0.01, p95Ms: 80 });
    expect(graph.nodes.find((n) => n.id === "postgresql")?.virtual).toBe(true);
    expect(graph.edges.map((e) => [e.source, e.target, e.kind, e.errorRatio])).toEqual([
      ["api", "postgresql", "call", 0.1],
      ["api", "queue", "messaging", 0],
    ]);
    // "queue" was only named by an edge; it is added so the edge has both ends.
    expect(graph.nodes.map((n) => n.id)).toEqual(["api", "postgresql", "queue"]);
  });

  it("refuses the spellings the contract does not have", () => {
    // `from`/`to` on an edge instead of `source`/`target`, a node without `name`: not the contract.
    const body = { from: 0, to: 60, resolution: "1m", nodes: [], edges: [{ from: "api", to: "queue", kind: "call", ...red, count: 1 }] };
    expect(contractViolation(GraphView, body)).toMatch(/source/);
    expect(contractViolation(GraphView, { ...body, edges: [], nodes: [{ id: "auth", kind: "service", virtual: false, ...red, count: 1 }] })).toMatch(/name/);
    expect(contractViolation(GraphView, null)).not.toBeNull();
  });
});

describe("topologyKey", () => {
  it("changes when an edge appears, not when the order of the lists does", () => {
    const a = topologyKey(["x", "y"], [{ source: "x", target: "y" }]);
    expect(topologyKey(["y", "x"], [{ source: "x", target: "y" }])).toBe(a);
    expect(topologyKey(["x", "y"], [{ source: "y", target: "x" }])).not.toBe(a);
  });
});

describe("nodeHealth", () => {
  it("is ok with few errors and no alerts", () => {
    expect(nodeHealth({ count: 100, errorRatio: 0.005, alertSeverities: [] })).toBe("ok");
  });

  it("degrades with errors or a warning alert, and fails with many errors or a critical alert", () => {
    expect(nodeHealth({ count: 100, errorRatio: 0.03, alertSeverities: [] })).toBe("degraded");
    expect(nodeHealth({ count: 100, errorRatio: 0, alertSeverities: ["warning"] })).toBe("degraded");
    expect(nodeHealth({ count: 100, errorRatio: 0.25, alertSeverities: [] })).toBe("failing");
    expect(nodeHealth({ count: 100, errorRatio: 0, alertSeverities: ["critical"] })).toBe("failing");
  });

  it("has no data without requests, unless an alert says otherwise", () => {
    expect(nodeHealth({ count: 0, errorRatio: null, alertSeverities: [] })).toBe("no_data");
    expect(nodeHealth({ count: null, errorRatio: 1, alertSeverities: [] })).toBe("no_data");
    expect(nodeHealth({ count: 0, errorRatio: null, alertSeverities: ["critical"] })).toBe("failing");
  });

  it("colours edges on the same error scale", () => {
    expect(edgeHealth(0, null)).toBe("no_data");
    expect(edgeHealth(10, 0.5)).toBe("failing");
    expect(edgeHealth(10, 0.05)).toBe("degraded");
    expect(edgeHealth(10, 0)).toBe("ok");
  });
});
