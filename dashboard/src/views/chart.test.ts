import { describe, expect, it } from "vitest";
import { formatTimeTick, newestValues, xRange } from "./chart";

describe("xRange", () => {
  it("spans at least the minimum window, ending at the newest point", () => {
    expect(xRange([6000], 900, 9999)).toEqual([5100, 6000]);
    expect(xRange([6000, 6060], 900, 9999)).toEqual([5160, 6060]);
  });

  it("covers all points when they span more than the minimum", () => {
    expect(xRange([0, 60, 3540], 900, 9999)).toEqual([0, 3540]);
  });

  it("ends at now when there is nothing to show", () => {
    expect(xRange([], 900, 5000)).toEqual([4100, 5000]);
  });
});

describe("formatTimeTick", () => {
  it("reads one moment the same on every chart: 24-hour time within a day, the date beyond", () => {
    const t = new Date(2026, 11, 5, 14, 5, 30).getTime() / 1000;
    expect(formatTimeTick(t, 3600)).toMatch(/^14[:.]05$/);
    expect(formatTimeTick(t, 3 * 86_400)).toMatch(/5.*14[:.]05$/);
    expect(formatTimeTick(t, 30 * 86_400)).not.toMatch(/14[:.]05/);
  });
});

describe("newestValues", () => {
  it("reads the right end of the chart: the newest x with any value, skipping trailing gaps", () => {
    expect(newestValues([[1, 2, 3], [5, 6, null], [1, null, null]])).toEqual([6, null]);
    expect(newestValues([[], []])).toEqual([]);
  });
});
