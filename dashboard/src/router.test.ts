import { describe, expect, it } from "vitest";
import { parseRoute, pipelineHref, profilesHref, serviceHref, traceHref } from "./router";

describe("router", () => {
  it("maps an empty hash to the overview", () => {
    expect(parseRoute("")).toEqual({ page: "overview" });
    expect(parseRoute("#/")).toEqual({ page: "overview" });
    expect(parseRoute("#/overview")).toEqual({ page: "overview" });
  });

  it("round-trips service names with characters that need escaping", () => {
    for (const name of ["api", "unknown_service:node", "a b/c", "ünïcode"]) {
      expect(parseRoute(serviceHref(name))).toEqual({ page: "service", service: name });
      expect(parseRoute(pipelineHref(name))).toEqual({ page: "pipeline", service: name });
    }
  });

  it("addresses the graph with and without a panel, traces and alerts", () => {
    expect(parseRoute(pipelineHref(null))).toEqual({ page: "pipeline", service: null });
    expect(parseRoute(traceHref("4bf92f3577b34da6a3ce929d0e0e4736"))).toEqual({
      page: "trace",
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    });
    expect(parseRoute("#/alerts")).toEqual({ page: "alerts" });
  });

  it("reports unknown or malformed pages as not found", () => {
    expect(parseRoute("#/nowhere")).toEqual({ page: "not_found", hash: "#/nowhere" });
    expect(parseRoute("#/services/%E0%A4%A")).toEqual({ page: "not_found", hash: "#/services/%E0%A4%A" });
    expect(parseRoute("#/traces")).toEqual({ page: "not_found", hash: "#/traces" });
  });

  it("serves the Services page (registry and health scores) at #/services", () => {
    expect(parseRoute("#/services")).toEqual({ page: "services" });
    expect(parseRoute("#/services/api")).toEqual({ page: "service", service: "api" });
  });

  it("keeps the Profiles page's state in the query of #/profiles", () => {
    expect(parseRoute("#/profiles")).toEqual({ page: "profiles", query: "" });
    expect(parseRoute("#/profiles?service=api&type=cpu&minute=60")).toEqual({
      page: "profiles",
      query: "service=api&type=cpu&minute=60",
    });
    const href = profilesHref("a b&c");
    const route = parseRoute(href);
    expect(route.page === "profiles" && new URLSearchParams(route.query).get("service")).toBe("a b&c");
  });
});

describe("the Explore route", () => {
  it("keeps its query (expression, tab, time range)", () => {
    expect(parseRoute("#/explore?expr=up&t=1h")).toEqual({ page: "explore", query: "expr=up&t=1h" });
    expect(parseRoute("#/explore")).toEqual({ page: "explore", query: "" });
  });
});
