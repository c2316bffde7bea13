import { describe, expect, it } from "vitest";
import { backoffDelay } from "./backoff";

describe("backoffDelay", () => {
  it("doubles with each attempt, between half and all of the step", () => {
    const low = () => 0;
    const high = () => 0.999999;
    expect([0, 1, 2, 3].map((a) => backoffDelay(a, low))).toEqual([250, 500, 1000, 2000]);
    expect([0, 1, 2, 3].map((a) => backoffDelay(a, high))).toEqual([500, 1000, 2000, 4000]);
  });

  it("is capped at about 10 seconds however many attempts failed", () => {
    for (const attempt of [5, 10, 100, 10_000]) {
      expect(backoffDelay(attempt, () => 0.999999)).toBeLessThanOrEqual(10_000);
      expect(backoffDelay(attempt, () => 0)).toBeGreaterThanOrEqual(5_000);
    }
  });

  it("spreads clients out: different random draws give different delays", () => {
    const delays = new Set([0.1, 0.4, 0.7, 0.95].map((r) => backoffDelay(4, () => r)));
    expect(delays.size).toBe(4);
  });
});
