import { describe, expect, it } from "vitest";
import {
  absoluteTime,
  autoResolution,
  DEFAULT_TIME,
  hashWithTime,
  isLiveTime,
  parseTime,
  splitHash,
  timeWindow,
  zoom,
  type GlobalTime,
} from "./time-range";

const parse = (query: string) => parseTime(new URLSearchParams(query));

describe("global time range", () => {
  it("round-trips relative and absolute ranges and the resolution through the URL", () => {
    const cases: GlobalTime[] = [
      { range: { kind: "relative", seconds: 300 }, resolution: null },
      { range: { kind: "relative", seconds: 7 * 86_400 }, resolution: "1h" },
      { range: { kind: "absolute", from: 1_764_900_000, to: 1_764_903_600 }, resolution: "1m" },
      DEFAULT_TIME,
    ];
    for (const time of cases) {
      const hash = hashWithTime("#/services/api", time);
      expect(splitHash(hash).path).toBe("#/services/api");
      expect(parse(splitHash(hash).query)).toEqual(time);
    }
  });

  it("keeps other pages' keys and falls back to the default on garbage", () => {
    expect(hashWithTime("#/profiles?service=api&type=cpu", { range: { kind: "relative", seconds: 900 }, resolution: null })).toBe(
      "#/profiles?service=api&type=cpu&t=15m",
    );
    expect(parse("t=banana&res=3w")).toEqual(DEFAULT_TIME);
    expect(parse("t=9-5")).toEqual(DEFAULT_TIME);
    expect(parse("t=99999999h")).toEqual(DEFAULT_TIME);
    // 7 days of 1-minute buckets are over the API's 2000: the resolution is dropped.
    expect(parse("t=7d&res=1m")).toEqual({ range: { kind: "relative", seconds: 7 * 86_400 }, resolution: null });
  });

  it("picks a readable resolution: at most 300 points, at most 2000 buckets", () => {
    expect(autoResolution(300)).toBe("1m");
    expect(autoResolution(3600)).toBe("1m");
    expect(autoResolution(6 * 3600)).toBe("5m");
    expect(autoResolution(86_400)).toBe("5m");
    expect(autoResolution(7 * 86_400)).toBe("1h");
  });

  it("queries whole buckets: relative up to the filling one, absolute covering the range", () => {
    const minute = 1_000_000_020; // a minute boundary
    const now = minute + 30;
    expect(timeWindow({ range: { kind: "relative", seconds: 900 }, resolution: null }, now)).toEqual({
      from: minute + 60 - 900,
      to: minute + 60,
      resolution: "1m",
    });
    expect(timeWindow(absoluteTime(minute + 10, minute + 3590), now)).toEqual({
      from: minute,
      to: minute + 3600,
      resolution: "1m",
    });
  });

  it("zooms out ×2 and in ÷2; an absolute range never ends in the future", () => {
    const now = 2_000_000_000;
    expect(zoom({ range: { kind: "relative", seconds: 3600 }, resolution: "1m" }, 2, now)).toEqual({
      range: { kind: "relative", seconds: 7200 },
      resolution: null,
    });
    expect(zoom({ range: { kind: "relative", seconds: 300 }, resolution: null }, 0.5, now).range).toEqual({ kind: "relative", seconds: 180 });
    expect(zoom({ range: { kind: "relative", seconds: 120 }, resolution: null }, 0.5, now).range).toEqual({ kind: "relative", seconds: 120 });
    const out = zoom(absoluteTime(now - 600, now - 60), 2, now);
    expect(out.range).toEqual({ kind: "absolute", from: now - 1080, to: now });
    const inward = zoom(absoluteTime(now - 7200, now - 3600), 0.5, now);
    expect(inward.range).toEqual({ kind: "absolute", from: now - 6300, to: now - 4500 });
  });

  it("is live only for relative 1-minute ranges the browser keeps", () => {
    expect(isLiveTime({ range: { kind: "relative", seconds: 3600 }, resolution: null }, 3600)).toBe(true);
    expect(isLiveTime({ range: { kind: "relative", seconds: 3600 }, resolution: "5m" }, 3600)).toBe(false);
    expect(isLiveTime({ range: { kind: "relative", seconds: 6 * 3600 }, resolution: null }, 3600)).toBe(false);
    expect(isLiveTime(absoluteTime(0, 600), 3600)).toBe(false);
  });
});
