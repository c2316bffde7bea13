// The Explore page (issue 15 item 8): an expression box with completion of metric, label and value
// names from the Prometheus metadata API, `GET /api/query` over the global time range, and the
// result as a chart and a table. The expression lives in the URL (`#/explore?expr=…&t=…`), so a
// view can be shared and a reload runs it again.

import { ApiError, type QueryClient } from "../api";
import { LineChart } from "../views/chart";
import { el, setText } from "../views/dom";
import {
  applyCompletion,
  completionContext,
  exploreHash,
  KEYWORDS,
  parseExploreQuery,
  rankCompletions,
  resultColumns,
  resultTable,
  seriesLabel,
  type CompletionContext,
  type ExploreTab,
  type ExprResult,
} from "./model";

const PALETTE = ["#58a6ff", "#3fb950", "#e3b341", "#ff7b72", "#d2a8ff", "#79c0ff", "#ffa657", "#56d4dd"];
/** Lines drawn at most (the table lists every series). */
const MAX_LINES = 40;

export interface ExploreDeps {
  api: QueryClient;
  /** The global time range's query window now: evaluation times every `step` seconds. */
  window: () => { from: number; to: number; step: number; extent: { from: number; to: number } };
}

export class ExplorePage {
  readonly element: HTMLElement;
  private readonly input: HTMLTextAreaElement;
  private readonly suggestions: HTMLUListElement;
  private readonly error: HTMLElement;
  private readonly status: HTMLElement;
  private readonly chart: LineChart;
  private readonly tableBody: HTMLTableSectionElement;
  private readonly tabs: Record<ExploreTab, { tab: HTMLButtonElement; panel: HTMLElement }>;
  private tab: ExploreTab = "chart";
  /** The expression and window last run (a route change that names them again does not re-run). */
  private lastRun = "";
  private generation = 0;
  private context: CompletionContext | null = null;
  private options: string[] = [];
  private active = -1;
  private readonly names = new Map<string, Promise<string[]>>();

  constructor(private readonly deps: ExploreDeps) {
    this.input = el("textarea", {
      class: "explore-input",
      id: "explore-expr",
      rows: 3,
      spellcheck: "false",
      autocomplete: "off",
      role: "combobox",
      "aria-autocomplete": "list",
      "aria-expanded": "false",
      "aria-controls": "explore-suggestions",
      placeholder: 'e.g. sum by (job) (rate(http_requests_total[5m]))',
      "data-testid": "explore-input",
    });
    this.suggestions = el("ul", {
      class: "explore-suggestions",
      id: "explore-suggestions",
      role: "listbox",
      "aria-label": "Completions",
      "data-testid": "explore-suggestions",
      hidden: true,
    });
    const run = el("button", { type: "button", class: "button", "data-testid": "explore-run" }, ["Run"]);
    run.addEventListener("click", () => this.submit());
    this.error = el("div", { class: "explore-error", role: "alert", "data-testid": "explore-error", hidden: true });
    this.status = el("p", { class: "explore-status", "data-testid": "explore-status", "aria-live": "polite" });
    this.chart = new LineChart({ name: "explore", title: "Result", lines: [], formatValue: formatValue, height: 260 });
    this.tableBody = el("tbody", { "data-testid": "explore-rows" });
    const table = el("div", { class: "table-scroll" }, [
      el("table", { class: "rule-table", "data-testid": "explore-table" }, [
        el("thead", {}, [el("tr", {}, ["Series", "Last value", "At"].map((h) => el("th", { scope: "col" }, [h])))]),
        this.tableBody,
      ]),
    ]);
    const tab = (name: ExploreTab, label: string, body: HTMLElement) => {
      const button = el("button", {
        type: "button",
        role: "tab",
        class: "explore-tab",
        id: `explore-tab-${name}`,
        "aria-controls": `explore-panel-${name}`,
        "data-tab": name,
      }, [label]);
      button.addEventListener("click", () => this.selectTab(name, true));
      const panel = el("div", { role: "tabpanel", id: `explore-panel-${name}`, "aria-labelledby": `explore-tab-${name}` }, [body]);
      return { tab: button, panel };
    };
    this.tabs = { chart: tab("chart", "Chart", this.chart.element), table: tab("table", "Table", table) };
    this.element = el("section", { class: "explore-page", "data-testid": "explore-page" }, [
      el("h1", { class: "page-title" }, ["Explore"]),
      el("label", { for: "explore-expr", class: "explore-label" }, ["Expression (Ctrl+Enter runs; docs/query-language.md)"]),
      el("div", { class: "explore-box" }, [this.input, this.suggestions]),
      el("div", { class: "explore-actions" }, [run, this.status]),
      this.error,
      el("div", { class: "explore-tabs", role: "tablist", "aria-label": "Result view" }, [this.tabs.chart.tab, this.tabs.table.tab]),
      this.tabs.chart.panel,
      this.tabs.table.panel,
    ]);
    this.selectTab("chart", false);
    this.input.addEventListener("keydown", (event) => this.onKey(event));
    this.input.addEventListener("input", () => void this.complete());
    this.input.addEventListener("click", () => void this.complete());
    this.input.addEventListener("blur", () => setTimeout(() => this.closeSuggestions(), 150));
  }

  /** The route `#/explore?query`: restores the expression and tab, and runs it when it changed. */
  show(query: string): void {
    const state = parseExploreQuery(query);
    if (document.activeElement !== this.input || this.input.value === "") this.input.value = state.expr;
    this.selectTab(state.tab, false);
    if (state.expr !== "") void this.run(state.expr, false);
  }

  /** The global time range changed: the same expression over the new window. */
  applyTime(): void {
    const expr = parseExploreQuery(currentQuery()).expr;
    if (expr !== "") void this.run(expr, true);
  }

  // ---- running ------------------------------------------------------------------------------------

  /** Run: into the URL (which runs it); the same URL again runs it directly. */
  private submit(): void {
    this.closeSuggestions();
    const expr = this.input.value.trim();
    const hash = exploreHash({ expr, tab: this.tab }, currentQuery());
    if (hash !== window.location.hash) window.location.assign(hash);
    else if (expr !== "") void this.run(expr, true);
  }

  private async run(expr: string, force: boolean): Promise<void> {
    const span = this.deps.window();
    const key = `${expr}\n${span.from}\n${span.to}\n${span.step}`;
    if (!force && key === this.lastRun) return;
    this.lastRun = key;
    const generation = ++this.generation;
    setText(this.status, "Running…");
    try {
      const result = await this.deps.api.query(expr, span.from, span.to, span.step);
      if (generation !== this.generation) return;
      this.showError(null, expr);
      this.showResult(result, span.extent);
    } catch (error) {
      if (generation !== this.generation) return;
      // The previous result stays (a typo does not blank the view), and says so.
      setText(this.status, this.tableBody.childElementCount > 0 ? "Not run: the result below is the previous one" : "");
      this.showError(error, expr);
    }
  }

  private showResult(result: ExprResult, extent: { from: number; to: number }): void {
    const drawn = result.series.slice(0, MAX_LINES);
    this.chart.setLines(drawn.map((s, i) => ({ label: seriesLabel(s.labels), color: PALETTE[i % PALETTE.length] ?? "#58a6ff" })));
    this.chart.setExtent(extent);
    const columns = resultColumns({ ...result, series: drawn });
    this.chart.setData(columns);
    if (result.series.length === 0) this.chart.setEmptyMessage("The expression selects no series in this range");
    const rows = resultTable(result);
    this.tableBody.replaceChildren(
      ...rows.map((row) =>
        el("tr", {}, [
          el("td", { class: "explore-series" }, [row.series]),
          el("td", { class: "num" }, [row.value === null ? "—" : formatValue(row.value)]),
          el("td", {}, [row.time === null ? "—" : new Date(row.time * 1000).toLocaleTimeString()]),
        ]),
      ),
    );
    const more = result.series.length > MAX_LINES ? ` (chart shows the first ${MAX_LINES})` : "";
    setText(this.status, `${result.series.length} series · ${result.times.length} steps · ${result.resolution} buckets${more}`);
  }

  /** An error under the box; for an expression error with a position, the expression with it marked. */
  private showError(error: unknown, expr: string): void {
    if (error === null) {
      this.error.hidden = true;
      this.error.replaceChildren();
      return;
    }
    const message = error instanceof Error ? error.message : String(error);
    const position = error instanceof ApiError ? error.position : null;
    const where = position === null || /position/.test(message) ? "" : ` (at character ${position})`;
    const children: Node[] = [el("p", { class: "explore-error-message" }, [`${message}${where}`])];
    if (position !== null && position >= 1) {
      const at = Math.min(position - 1, expr.length);
      const mark = el("mark", { "data-testid": "explore-error-mark" }, [expr.slice(at, at + 1) || " "]);
      children.push(el("pre", { class: "explore-error-expr" }, [expr.slice(0, at), mark, expr.slice(at + 1)]));
    }
    this.error.replaceChildren(...children);
    this.error.hidden = false;
  }

  private selectTab(tab: ExploreTab, intoUrl: boolean): void {
    this.tab = tab;
    for (const [name, { tab: button, panel }] of Object.entries(this.tabs) as [ExploreTab, { tab: HTMLButtonElement; panel: HTMLElement }][]) {
      button.setAttribute("aria-selected", String(name === tab));
      button.tabIndex = name === tab ? 0 : -1;
      panel.hidden = name !== tab;
    }
    if (intoUrl) {
      const state = parseExploreQuery(currentQuery());
      window.history.replaceState(null, "", exploreHash({ ...state, tab }, currentQuery()));
    }
  }

  // ---- completion ---------------------------------------------------------------------------------

  private onKey(event: KeyboardEvent): void {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      this.submit();
      return;
    }
    if (this.suggestions.hidden) return;
    switch (event.key) {
      case "ArrowDown":
      case "ArrowUp": {
        event.preventDefault();
        const n = this.options.length;
        this.active = event.key === "ArrowDown" ? (this.active + 1) % n : (this.active - 1 + n) % n;
        this.renderSuggestions();
        break;
      }
      case "Enter":
      case "Tab":
        event.preventDefault();
        this.accept(this.options[Math.max(0, this.active)]);
        break;
      case "Escape":
        event.preventDefault();
        this.closeSuggestions();
        break;
    }
  }

  private async complete(): Promise<void> {
    const text = this.input.value;
    const cursor = this.input.selectionStart ?? text.length;
    const context = completionContext(text, cursor);
    if (context === null) {
      this.closeSuggestions();
      return;
    }
    const candidates = await this.candidates(context);
    // The text moved on while the names loaded: the newer call shows its own.
    if (this.input.value !== text || (this.input.selectionStart ?? text.length) !== cursor) return;
    this.context = context;
    this.options = rankCompletions(candidates, context.prefix);
    this.active = this.options.length > 0 ? 0 : -1;
    if (this.options.length === 0) this.closeSuggestions();
    else this.renderSuggestions();
  }

  private async candidates(context: CompletionContext): Promise<string[]> {
    switch (context.kind) {
      case "metric":
        return [...(await this.load("__name__")), ...KEYWORDS];
      case "label":
        return this.load("");
      case "value":
        return this.load(context.label ?? "");
    }
  }

  /** Names from the API, once per page ("" = label names; a failure is retried next time). */
  private load(label: string): Promise<string[]> {
    let names = this.names.get(label);
    if (names === undefined) {
      names = this.deps.api.labelNames(label === "" ? undefined : label).catch(() => {
        this.names.delete(label);
        return [];
      });
      this.names.set(label, names);
    }
    return names;
  }

  private renderSuggestions(): void {
    this.suggestions.replaceChildren(
      ...this.options.map((option, i) => {
        const item = el("li", {
          role: "option",
          id: `explore-option-${i}`,
          class: "explore-option",
          "aria-selected": String(i === this.active),
        }, [option]);
        item.addEventListener("mousedown", (event) => {
          event.preventDefault();
          this.accept(option);
        });
        return item;
      }),
    );
    this.suggestions.hidden = false;
    this.input.setAttribute("aria-expanded", "true");
    if (this.active >= 0) this.input.setAttribute("aria-activedescendant", `explore-option-${this.active}`);
    else this.input.removeAttribute("aria-activedescendant");
  }

  private accept(choice: string | undefined): void {
    const context = this.context;
    this.closeSuggestions();
    if (choice === undefined || context === null) return;
    const { text, cursor } = applyCompletion(this.input.value, context, choice);
    this.input.value = text;
    this.input.setSelectionRange(cursor, cursor);
    this.input.focus();
  }

  private closeSuggestions(): void {
    this.suggestions.hidden = true;
    this.options = [];
    this.active = -1;
    this.input.setAttribute("aria-expanded", "false");
    this.input.removeAttribute("aria-activedescendant");
  }
}

function currentQuery(): string {
  const hash = window.location.hash;
  const at = hash.indexOf("?");
  return at < 0 ? "" : hash.slice(at + 1);
}

function formatValue(value: number): string {
  if (value === 0) return "0";
  const abs = Math.abs(value);
  if (abs >= 1e6 || abs < 1e-3) return value.toExponential(3);
  return String(Number(value.toPrecision(6)));
}
