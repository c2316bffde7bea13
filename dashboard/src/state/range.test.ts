import { describe, expect, it } from "vitest";
import { allowedResolutions, defaultResolution, isLiveWindow, queryWindow, RANGES } from "./range";

describe("range pickers", () => {
  it("offers only resolutions that give between 3 and 2000 buckets", () => {
    expect(allowedResolutions("15m")).toEqual(["1m", "5m"]);
    expect(allowedResolutions("1h")).toEqual(["1m", "5m"]);
    expect(allowedResolutions("24h")).toEqual(["1m", "5m", "1h"]);
    // 7 days of 5-minute buckets are 2016, over the API's limit.
    expect(allowedResolutions("7d")).toEqual(["1h", "1d"]);
    // Daily buckets (kept a year) are what a year's chart reads.
    expect(allowedResolutions("30d")).toEqual(["1h", "1d"]);
    expect(allowedResolutions("1y")).toEqual(["1d"]);
  });

  it("defaults to a resolution each range allows", () => {
    for (const range of RANGES) expect(allowedResolutions(range.name)).toContain(defaultResolution(range.name));
  });

  it("queries whole buckets, up to and including the current one", () => {
    expect(queryWindow(1000, "15m", "1m")).toEqual({ from: 120, to: 1020, resolution: "1m" });
    const w = queryWindow(100_000, "7d", "1h");
    expect(w.to % 3600).toBe(0);
    expect(w.to).toBeGreaterThan(100_000);
    expect(w.to - w.from).toBe(7 * 86_400);
  });

  it("follows live updates only for 1-minute views the browser keeps in memory", () => {
    expect(isLiveWindow("15m", "1m", 3600)).toBe(true);
    expect(isLiveWindow("1h", "1m", 3600)).toBe(true);
    expect(isLiveWindow("1h", "5m", 3600)).toBe(false);
    expect(isLiveWindow("24h", "1m", 3600)).toBe(false);
  });
});
