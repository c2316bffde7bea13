import { describe, expect, it } from "vitest";
import { exportHref } from "./export-link";

describe("exportHref", () => {
  it("asks /api/export for the chart's metric over the window on screen, as CSV", () => {
    const href = exportHref("check out", "http.server.request.duration", "1h", "1m", 1_000_030);
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
});
