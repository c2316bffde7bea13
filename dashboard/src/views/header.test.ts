import { describe, expect, it } from "vitest";
import { statusText } from "./header";

describe("statusText", () => {
  it("names each connection state in words, not only colour", () => {
    expect(statusText({ state: "connecting", failures: 0 })).toBe("Connecting…");
    expect(statusText({ state: "live", failures: 0 })).toBe("Live");
    expect(statusText({ state: "reconnecting", failures: 2, retryInMs: 2300 })).toBe("Reconnecting · retry in 3 s");
    expect(statusText({ state: "offline", failures: 6, retryInMs: 100 })).toBe("Server unreachable · retry in 1 s");
    expect(statusText({ state: "offline", failures: 6 })).toBe("Server unreachable");
    expect(statusText({ state: "offline", failures: 6, cause: "server" })).toBe("Server unreachable");
    expect(statusText({ state: "offline", failures: 1, cause: "network", retryInMs: 2000 })).toBe("Offline (no network) · retry in 2 s");
  });
});
