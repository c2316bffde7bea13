// One trace as a waterfall: a row per span in tree order, its bar placed on the trace's time
// axis, the critical path (what the request's duration was spent waiting on) marked in colour and
// in words, errors likewise.

import { ApiError } from "../api";
import { formatMilliseconds } from "../format";
import { pipelineHref } from "../router";
import type { TraceDetail } from "../traces/model";
import { buildWaterfall } from "../traces/waterfall";
import { el, setText } from "./dom";

export class TracePage {
  readonly element: HTMLElement;
  private readonly title: HTMLElement;
  private readonly summary: HTMLElement;
  private readonly status: HTMLElement;
  private readonly rows: HTMLOListElement;

  constructor() {
    this.title = el("h1", { class: "page-title" }, ["Trace"]);
    this.summary = el("p", { class: "trace-summary", "data-testid": "trace-summary" });
    this.status = el("p", { class: "empty", role: "status" });
    this.rows = el("ol", { class: "waterfall", "data-testid": "waterfall", "aria-label": "Spans" });
    this.element = el("section", { class: "trace-page", "data-testid": "trace-page" }, [
      this.title,
      this.summary,
      el("p", { class: "waterfall-legend" }, [
        el("span", { class: "legend-critical", "aria-hidden": "true" }),
        " critical path  ",
        el("span", { class: "legend-error", "aria-hidden": "true" }),
        " error",
      ]),
      this.status,
      this.rows,
    ]);
  }

  loading(traceId: string): void {
    setText(this.title, `Trace ${traceId.slice(0, 16)}`);
    this.element.dataset.trace = traceId;
    setText(this.summary, "");
    setText(this.status, "Loading…");
    this.rows.replaceChildren();
  }

  failed(message: string): void {
    setText(this.status, message);
  }

  show(detail: TraceDetail): void {
    const waterfall = buildWaterfall(detail.spans);
    setText(this.status, detail.spans.length === 0 ? "This trace has no spans (it may have expired)." : "");
    const critical = detail.spans.filter((s) => s.critical).length;
    setText(
      this.summary,
      `${formatMilliseconds(waterfall.durationMs)} · ${detail.spans.length} spans · ${waterfall.services.length} services` +
        ` · ${waterfall.errors} error${waterfall.errors === 1 ? "" : "s"} · ${critical} spans on the critical path`,
    );
    this.rows.replaceChildren(
      ...waterfall.rows.map((row) => {
        const span = row.span;
        const label = `${span.service}: ${span.name}, starts at ${formatMilliseconds(row.offsetMs)}, takes ${formatMilliseconds(span.durationMs)}${span.critical ? ", on the critical path" : ""}${span.error ? ", failed" : ""}`;
        const bar = el("span", { class: "waterfall-bar", "aria-hidden": "true" });
        bar.style.left = `${(row.left * 100).toFixed(3)}%`;
        bar.style.width = `max(2px, ${(row.width * 100).toFixed(3)}%)`;
        const name = el("span", { class: "waterfall-name" }, [
          el("a", { href: pipelineHref(span.service), class: "waterfall-service" }, [span.service]),
          ` ${span.name}`,
        ]);
        name.style.paddingLeft = `${Math.min(row.depth, 12) * 12}px`;
        return el(
          "li",
          {
            class: "waterfall-row",
            "data-span": span.spanId,
            "data-critical": String(span.critical),
            "data-error": String(span.error),
            "aria-label": label,
          },
          [
            name,
            el("span", { class: "waterfall-track" }, [bar]),
            el("span", { class: "waterfall-duration" }, [
              formatMilliseconds(span.durationMs),
              span.critical ? el("span", { class: "visually-hidden" }, [" (critical path)"]) : "",
            ]),
          ],
        );
      }),
    );
  }
}

/**
 * Loads a trace into the page: its waterfall, or in words what went wrong (a trace that is not kept,
 * an unreachable API, an answer that breaks the API contract), never a blank page. `isCurrent` says
 * whether the page still shows this trace when the answer comes.
 */
export async function loadTraceInto(
  page: TracePage,
  traceId: string,
  load: (traceId: string) => Promise<TraceDetail>,
  isCurrent: () => boolean = () => true,
): Promise<void> {
  page.loading(traceId);
  try {
    const detail = await load(traceId);
    if (isCurrent()) page.show(detail);
  } catch (error) {
    page.failed(
      error instanceof ApiError && error.isNotFound
        ? "This trace is not kept (it was sampled out or has expired)."
        : `Could not load the trace: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}
