// @vitest-environment happy-dom
import { describe, expect, it, vi } from "vitest";
import { QueryClient } from "../api";
import { ExplorePage } from "./page";

// happy-dom has no canvas for uPlot: the chart is a stand-in that keeps what it was given.
vi.mock("../views/chart", () => ({
  LineChart: class {
    readonly element = document.createElement("figure");
    lines: { label: string }[] = [];
    setLines(lines: { label: string }[]) {
      this.lines = lines;
      this.element.dataset.lines = lines.map((l) => l.label).join("|");
    }
    setExtent() {}
    setData(columns: unknown[][]) {
      this.element.dataset.columns = JSON.stringify(columns);
    }
    setEmptyMessage() {}
  },
}));

/** A fetch answering by path; records the paths asked. */
function server(routes: Record<string, { status: number; body: unknown }>, asked: string[] = []): typeof fetch {
  return (async (input: RequestInfo | URL) => {
    const url = new URL(String(input), "http://x");
    asked.push(url.pathname + url.search);
    const route = routes[url.pathname] ?? { status: 404, body: { error: "not found" } };
    return new Response(JSON.stringify(route.body), { status: route.status });
  }) as typeof fetch;
}

function page(fetchFn: typeof fetch): ExplorePage {
  const explore = new ExplorePage({
    api: new QueryClient("", fetchFn),
    window: () => ({ from: 0, to: 600, step: 60, extent: { from: 0, to: 600 } }),
  });
  document.body.replaceChildren(explore.element);
  return explore;
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

describe("the Explore page", () => {
  it("runs the URL's expression over the window and lists each series with its last value", async () => {
    const asked: string[] = [];
    const result = {
      expr: "up",
      resultType: "vector",
      resolution: "1m",
      times: [60, 120],
      series: [{ labels: { __name__: "up", job: "api" }, points: [[60, 1], [120, 0.5]] }],
    };
    const explore = page(server({ "/api/query": { status: 200, body: result } }, asked));
    explore.show("expr=up&tab=table");
    await settle();
    expect(asked).toContain("/api/query?expr=up&from=0&to=600&step=60");
    expect((document.querySelector("[data-testid='explore-input']") as HTMLTextAreaElement).value).toBe("up");
    expect(document.querySelector("[data-testid='explore-rows']")?.textContent).toContain('up{job="api"}0.5');
    expect((document.querySelector("#explore-panel-table") as HTMLElement).hidden).toBe(false);
    const chart = document.querySelector("#explore-panel-chart figure") as HTMLElement;
    expect(chart.dataset.lines).toBe('up{job="api"}');
    expect(JSON.parse(chart.dataset.columns ?? "")).toEqual([[60, 120], [1, 0.5]]);
  });

  it("shows the API's error with the position marked, not a blank panel", async () => {
    const explore = page(server({ "/api/query": { status: 400, body: { error: "unexpected `)`", position: 5 } } }));
    explore.show(`expr=${encodeURIComponent("sum(x))")}`);
    await settle();
    const error = document.querySelector("[data-testid='explore-error']") as HTMLElement;
    expect(error.hidden).toBe(false);
    expect(error.textContent).toContain("unexpected `)`");
    expect(document.querySelector("[data-testid='explore-error-mark']")?.textContent).toBe("x");
  });

  it("refuses a result the contract does not allow", async () => {
    const explore = page(server({ "/api/query": { status: 200, body: { expr: "up", series: "no" } } }));
    explore.show("expr=up");
    await settle();
    expect(document.querySelector("[data-testid='explore-error']")?.textContent).toContain("does not match the API contract");
  });

  it("completes the metric name at the cursor from the API with the keyboard", async () => {
    const names = { status: 200, body: { status: "success", data: ["http_requests_total", "http_server_duration"] } };
    page(server({ "/api/v1/label/__name__/values": names }));
    const input = document.querySelector("[data-testid='explore-input']") as HTMLTextAreaElement;
    input.value = "rate(http_re[5m])";
    input.setSelectionRange(12, 12);
    input.dispatchEvent(new Event("input"));
    await settle();
    const options = [...document.querySelectorAll("[data-testid='explore-suggestions'] [role='option']")].map((o) => o.textContent);
    expect(options).toEqual(["http_requests_total"]);
    input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
    expect(input.value).toBe("rate(http_requests_total[5m])");
    expect((document.querySelector("[data-testid='explore-suggestions']") as HTMLElement).hidden).toBe(true);
  });
});
