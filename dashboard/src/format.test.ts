import { describe, expect, it } from "vitest";
import { compactNumber, formatAge, formatMilliseconds, formatPercent, formatRate, formatRatio, MISSING } from "./format";

describe("formatters", () => {
  it("show a dash for missing or non-finite values", () => {
    for (const value of [null, undefined, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(formatRate(value)).toBe(MISSING);
      expect(formatMilliseconds(value)).toBe(MISSING);
      expect(formatPercent(value)).toBe(MISSING);
      expect(formatRatio(value)).toBe(MISSING);
    }
  });

  it("keep about three significant digits", () => {
    expect(compactNumber(0)).toBe("0");
    expect(compactNumber(0.01666)).toBe("0.017");
    expect(compactNumber(12.345)).toBe("12.3");
    expect(compactNumber(1234)).toBe("1234");
    expect(compactNumber(45_678)).toBe("45.7k");
    expect(compactNumber(2_500_000)).toBe("2.5M");
  });

  it("pick a readable time unit for latency", () => {
    expect(formatMilliseconds(140)).toBe("140 ms");
    expect(formatMilliseconds(1500)).toBe("1.5 s");
    expect(formatMilliseconds(0.25)).toBe("250 µs");
  });

  it("format rates, percentages and ratios", () => {
    expect(formatRate(2)).toBe("2 req/s");
    expect(formatPercent(62.84)).toBe("62.8 %");
    expect(formatRatio(0.0061)).toBe("0.61 %");
  });

  it("describe how long ago something reported", () => {
    expect(formatAge(1000, 1002)).toBe("just now");
    expect(formatAge(1000, 1030)).toBe("30 s ago");
    expect(formatAge(1000, 1000 + 600)).toBe("10 min ago");
    expect(formatAge(1000, 1000 + 3 * 3600)).toBe("3 h ago");
    expect(formatAge(2000, 1000)).toBe("just now");
    expect(formatAge(0, 1000)).toBe(MISSING);
  });
});
