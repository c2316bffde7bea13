import { describe, expect, it } from "vitest";
import { edgeHealth, nodeHealth } from "./health";
import { parseServiceGraph, topologyKey } from "./model";

describe("parseServiceGraph", () => {
  it("reads nodes with their RED summary and edges with their kind", () => {
    const graph = parseServiceGraph(
      {
        from: 1000,
        to: 1300,
        nodes: [
          { id: "api", kind: "service", count: 600, errors: 6, p50_ms: 20, p95_ms: 80, p99_ms: 150 },
          { id: "postgresql", kind: "database", count: 300 },
        ],
        edges: [
          { source: "api", target: "postgresql", kind: "client_server", count: 300, errors: 30, p95_ms: 12 },
          { from: "api", to: "queue", kind: "producer_consumer", count: 10, errors: 0 },
        ],
      },
      0,
      1,
    );
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

  it("takes nested summaries and explicit rates", () => {
    const graph = parseServiceGraph({ nodes: [{ name: "auth", red: { rate: 12.5, error_rate: 0.5, requests: 10 } }] }, 0, 60);
    expect(graph.nodes[0]).toMatchObject({ id: "auth", rate: 12.5, errorRatio: 0.5, count: 10 });
  });

  it("returns an empty graph for a malformed body", () => {
    expect(parseServiceGraph(null, 5, 10)).toEqual({ from: 5, to: 10, nodes: [], edges: [] });
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
