import { describe, expect, it } from "vitest";
import { parseRoute, serviceHref } from "./router";

describe("router", () => {
  it("maps an empty hash to the services page", () => {
    expect(parseRoute("")).toEqual({ page: "services" });
    expect(parseRoute("#/")).toEqual({ page: "services" });
  });

  it("round-trips service names with characters that need escaping", () => {
    for (const name of ["api", "unknown_service:node", "a b/c", "ünïcode"]) {
      expect(parseRoute(serviceHref(name))).toEqual({ page: "service", service: name });
    }
  });

  it("reports unknown or malformed pages as not found", () => {
    expect(parseRoute("#/nowhere")).toEqual({ page: "not_found", hash: "#/nowhere" });
    expect(parseRoute("#/services/%E0%A4%A")).toEqual({ page: "not_found", hash: "#/services/%E0%A4%A" });
  });
});
