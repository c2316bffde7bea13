import { describe, expect, it } from "vitest";
import {
  applyCompletion,
  completionContext,
  exploreHash,
  parseExploreQuery,
  rankCompletions,
  resultColumns,
  resultTable,
  seriesLabel,
  type ExprResult,
} from "./model";

/** The context at the `|` in `marked`. */
function at(marked: string) {
  const cursor = marked.indexOf("|");
  return completionContext(marked.replace("|", ""), cursor);
}

describe("completion of the word at the cursor", () => {
  it("completes a metric name mid-expression and replaces the whole word", () => {
    const text = "sum(rate(http_req|uests_x[5m]))";
    const context = at(text);
    expect(context).toMatchObject({ kind: "metric", prefix: "http_req" });
    const plain = text.replace("|", "");
    expect(applyCompletion(plain, context!, "http_requests_total")).toEqual({
      text: "sum(rate(http_requests_total[5m]))",
      cursor: "sum(rate(http_requests_total".length,
    });
  });

  it("completes label names inside braces and in by (…), values inside quotes", () => {
    expect(at('http_requests_total{jo|')).toMatchObject({ kind: "label", prefix: "jo" });
    expect(at('sum by (rou|) (x)')).toMatchObject({ kind: "label", prefix: "rou" });
    expect(at('x{job="check|"}')).toMatchObject({ kind: "value", prefix: "check", label: "job" });
    const text = 'x{job=~"ch|eckout"}';
    const context = at(text)!;
    expect(applyCompletion(text.replace("|", ""), context, "checkout")).toEqual({ text: 'x{job=~"checkout"}', cursor: 16 });
  });

  it("offers nothing inside a range, a number or an empty word", () => {
    expect(at("rate(x[5|m])")).toBeNull();
    expect(at("x > 1|0")).toBeNull();
    expect(at("sum(|")).toBeNull();
  });

  it("ranks prefix matches before substring matches and leaves out the exact word", () => {
    const names = ["cpu_usage", "http_requests_total", "process_cpu_seconds", "cpu"];
    expect(rankCompletions(names, "cpu")).toEqual(["cpu_usage", "process_cpu_seconds"]);
  });
});

describe("the Explore URL", () => {
  it("round-trips the expression and tab and keeps the time range's keys", () => {
    const state = { expr: 'sum by (job) (rate(http_requests_total{route=~"/api/.*"}[5m]))', tab: "table" as const };
    const hash = exploreHash(state, "t=6h&res=5m");
    expect(hash.startsWith("#/explore?")).toBe(true);
    const query = hash.slice("#/explore?".length);
    expect(parseExploreQuery(query)).toEqual(state);
    expect(new URLSearchParams(query).get("t")).toBe("6h");
    expect(new URLSearchParams(query).get("res")).toBe("5m");
    expect(exploreHash({ expr: "", tab: "chart" })).toBe("#/explore");
    expect(parseExploreQuery("")).toEqual({ expr: "", tab: "chart" });
  });
});

describe("a /api/query result as chart columns and table rows", () => {
  const result: ExprResult = {
    expr: "x",
    resultType: "vector",
    resolution: "1m",
    times: [60, 120, 180],
    series: [
      { labels: { __name__: "x", job: "a", route: "/r" }, points: [[60, 1], [180, 3]] },
      { labels: { job: "b" }, points: [[60, 5], [120, null]] },
    ],
  };

  it("aligns each series on the result's times, gaps as null", () => {
    expect(resultColumns(result)).toEqual([
      [60, 120, 180],
      [1, null, 3],
      [5, null, null],
    ]);
  });

  it("lists each series with its labels and newest value", () => {
    expect(resultTable(result)).toEqual([
      { series: 'x{job="a", route="/r"}', value: 3, time: 180 },
      { series: '{job="b"}', value: null, time: 120 },
    ]);
    expect(seriesLabel({})).toBe("{}");
  });
});
