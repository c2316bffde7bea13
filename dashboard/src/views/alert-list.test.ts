import { describe, expect, it } from "vitest";
import type { Alert } from "../alerts/model";
import { stateText, valueText } from "./alert-list";

describe("alert text", () => {
  const alert: Alert = {
    fingerprint: "f",
    rule: "latency",
    service: "api",
    severity: "warning",
    state: "firing",
    summary: "",
    value: 612.345,
    unit: "ms",
    threshold: 500,
    startsAt: 1000,
    endsAt: null,
    acknowledged: false,
    acknowledgedBy: null,
    silenced: false,
    labels: {},
    transition: null,
    changedAt: null,
  };

  it("shows the value with the rule's unit and its threshold", () => {
    expect(valueText(alert)).toBe("value 612 ms (threshold 500 ms)");
    expect(valueText({ ...alert, unit: "%", threshold: null, value: 5.25 })).toBe("value 5.25%");
    expect(valueText({ ...alert, value: null })).toBe("");
  });

  it("says how long it has been firing", () => {
    expect(stateText(alert, 1000 + 300)).toBe("firing since 5 min");
    expect(stateText({ ...alert, state: "pending", startsAt: null }, 0)).toBe("pending");
  });
});
