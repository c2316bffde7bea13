import { describe, expect, it } from "vitest";
import { exportHref } from "./export-link";

describe("exportHref", () => {
  it("asks /api/export for the chart's metric over the window on screen, as CSV", () => {
    const time = { range: { kind: "relative", seconds: 3600 }, resolution: "1m" } as const;
    const href = exportHref("check out", "http.server.request.duration", time, 1_000_030);
    const url = new URL(href, "http://localhost");
    expect(url.pathname).toBe("/api/export");
    expect(url.searchParams.get("service")).toBe("check out");
    expect(url.searchParams.get("metric")).toBe("http.server.request.duration");
    // The window ends with the bucket filling now (1,000,020 … 1,000,080) and spans the hour.
    expect(url.searchParams.get("to")).toBe("1000080");
    expect(url.searchParams.get("from")).toBe(String(1_000_080 - 3600));
    expect(url.searchParams.get("resolution")).toBe("1m");
    expect(url.searchParams.get("format")).toBe("csv");
  });

  it("exports an absolute range picked on the charts as it is", () => {
    const time = { range: { kind: "absolute", from: 1_000_000, to: 1_007_200 }, resolution: "5m" } as const;
    const url = new URL(exportHref("api", "m", time, 2_000_000), "http://localhost");
    expect(url.searchParams.get("from")).toBe("999900");
    expect(url.searchParams.get("to")).toBe("1007400");
    expect(url.searchParams.get("resolution")).toBe("5m");
  });
});
