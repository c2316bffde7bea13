import { describe, expect, it } from "vitest";
import { toastTitle } from "./toasts";

describe("toast titles", () => {
  it("name the alert's severity as the alert list does", () => {
    expect(toastTitle("critical")).toBe("Critical");
    expect(toastTitle("warning")).toBe("Warning");
    expect(toastTitle("info")).toBe("Info");
    expect(toastTitle("something-else")).toBe("Alert");
  });
});
