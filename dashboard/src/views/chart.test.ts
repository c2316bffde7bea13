import { describe, expect, it } from "vitest";
import { xRange } from "./chart";

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
