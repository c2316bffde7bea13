import { describe, expect, it } from "vitest";
import type { LatencyHeatmap } from "../state/heatmap";
import { describe as describeHeatmap, rampColor } from "./heatmap";

describe("heatmap colours and summary", () => {
  it("gets brighter with more requests", () => {
    const brightness = (color: string) => (color.match(/\d+/g) ?? []).map(Number).reduce((a, b) => a + b, 0);
    expect(brightness(rampColor(1))).toBeGreaterThan(brightness(rampColor(0.5)));
    expect(brightness(rampColor(0.5))).toBeGreaterThan(brightness(rampColor(0.01)));
  });

  it("names the busiest latency band in words", () => {
    const heatmap: LatencyHeatmap = {
      starts: [0],
      edges: [1, 10, 100, 1000],
      counts: new Float64Array([5, 90, 5]),
      rows: 3,
      maxCount: 90,
    };
    expect(describeHeatmap(heatmap)).toBe("Most requests took 10 ms–100 ms; the slowest reach about 1 s.");
  });
});
