import { describe, expect, it } from "vitest";
import { parseServerMessage } from "../protocol";

describe("the live profile event", () => {
  it("is read from the WebSocket (a minute of a service/type got samples)", () => {
    const text = JSON.stringify({ type: "profile", service: "api", profile_type: "cpu", minute: 1_700_000_040_000, total: 1.5e9 });
    expect(parseServerMessage(text)).toEqual({
      type: "profile",
      service: "api",
      profileType: "cpu",
      minute: 1_700_000_040_000,
      total: 1.5e9,
    });
  });

  it("is dropped when malformed", () => {
    expect(parseServerMessage(JSON.stringify({ type: "profile", service: "api", minute: 1 }))).toBeNull();
    expect(parseServerMessage(JSON.stringify({ type: "profile", service: "api", profile_type: "cpu", minute: 1, total: -1 }))).toBeNull();
  });
});
