// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { QueryClient } from "../api";
import { loadTraceInto, TracePage } from "./trace-page";

function answering(body: unknown): typeof fetch {
  return (async () => new Response(JSON.stringify(body), { status: 200 })) as typeof fetch;
}

const traceId = "0123456789abcdef0123456789abcdef";
const summary = {
  trace_id: traceId,
  root_service: "api",
  root_name: "GET /users",
  start_unix_nano: "1764000000000000000",
  duration_ms: 12,
  span_count: 1,
  error: false,
  services: ["api"],
};
const span = {
  span_id: "00000000000000aa",
  parent_span_id: null,
  depth: 0,
  service: "api",
  name: "GET /users",
  kind: "server",
  status: "ok",
  error: false,
  start_unix_nano: "1764000000000000000",
  end_unix_nano: "1764000000012000000",
  duration_ms: 12,
  critical: true,
  critical_ms: 12,
  attributes: {},
};

describe("the trace page at the API boundary", () => {
  it("shows the waterfall of an answer the contract allows", async () => {
    const page = new TracePage();
    const api = new QueryClient("", answering({ ...summary, critical_path: [span.span_id], critical_sections: [], spans: [span] }));
    await loadTraceInto(page, traceId, (id) => api.trace(id));
    expect(page.element.querySelectorAll("[data-testid=waterfall] > li")).toHaveLength(1);
    expect(page.element.querySelector("[role=status]")?.textContent).toBe("");
  });

  it("shows an error, not a blank page, for an answer the contract forbids", async () => {
    const page = new TracePage();
    // Spans under another name (`items`) and without their ids: the old readers guessed; now it is refused.
    const api = new QueryClient("", answering({ ...summary, critical_path: [], critical_sections: [], items: [{ name: "GET /users" }] }));
    await loadTraceInto(page, traceId, (id) => api.trace(id));
    const status = page.element.querySelector("[role=status]")?.textContent ?? "";
    expect(status).toMatch(/^Could not load the trace: \/api\/traces\/[0-9a-f]{32}: the server's answer does not match the API contract \(spans: /);
    expect(page.element.querySelectorAll("[data-testid=waterfall] > li")).toHaveLength(0);
  });
});
