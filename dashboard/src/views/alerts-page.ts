// The alerts page: active alerts with their actions, silences (list, end early, create), the
// configured rules, and recent history.

import type { Alert, AlertRule, Silence } from "../alerts/model";
import { formatAge } from "../format";
import { AlertList, SILENCE_CHOICES, stateText, type AlertActions } from "./alert-list";
import { el, setText } from "./dom";

export interface AlertsPageCallbacks extends AlertActions {
  deleteSilence(id: string): Promise<void>;
  createSilence(matchers: { name: string; value: string }[], seconds: number, comment: string): Promise<void>;
}

export class AlertsPage {
  readonly element: HTMLElement;
  private readonly active: AlertList;
  private readonly silences: HTMLUListElement;
  private readonly silencesEmpty: HTMLElement;
  private readonly rules: HTMLTableSectionElement;
  private readonly rulesEmpty: HTMLElement;
  private readonly history: HTMLOListElement;
  private readonly historyEmpty: HTMLElement;
  private readonly formStatus: HTMLElement;

  constructor(private readonly callbacks: AlertsPageCallbacks) {
    this.active = new AlertList(callbacks, { emptyText: "No active alerts.", showService: true, testId: "active-alerts" });
    this.silences = el("ul", { class: "silence-list", "data-testid": "silences" });
    this.silencesEmpty = el("p", { class: "empty" }, ["No silences."]);
    this.rules = el("tbody");
    this.rulesEmpty = el("p", { class: "empty" }, ["No rules loaded."]);
    this.history = el("ol", { class: "alert-history", "data-testid": "alert-history" });
    this.historyEmpty = el("p", { class: "empty" }, ["Nothing has fired yet."]);
    this.formStatus = el("p", { class: "alert-action-status", role: "status" });
    this.element = el("section", { class: "alerts-page", "data-testid": "alerts-page" }, [
      el("h1", { class: "page-title" }, ["Alerts"]),
      this.section("Active", [this.active.element]),
      this.section("Silences", [this.silences, this.silencesEmpty, this.silenceForm()]),
      this.section("Rules", [
        el("div", { class: "table-scroll" }, [
          el("table", { class: "rule-table" }, [
            el("thead", {}, [
              el("tr", {}, [
                el("th", { scope: "col" }, ["Rule"]),
                el("th", { scope: "col" }, ["Service"]),
                el("th", { scope: "col" }, ["Condition"]),
                el("th", { scope: "col" }, ["Severity"]),
              ]),
            ]),
            this.rules,
          ]),
        ]),
        this.rulesEmpty,
      ]),
      this.section("History", [this.history, this.historyEmpty]),
    ]);
  }

  setActive(alerts: readonly Alert[], nowSeconds: number): void {
    this.active.render(alerts, nowSeconds);
  }

  setSilences(silences: readonly Silence[], nowSeconds: number): void {
    this.silencesEmpty.hidden = silences.length > 0;
    this.silences.replaceChildren(
      ...silences.map((silence) => {
        const end = el("button", { type: "button", class: "button" }, ["End now"]);
        const status = el("span", { class: "alert-action-status", role: "status" });
        end.addEventListener("click", () => {
          end.disabled = true;
          this.callbacks.deleteSilence(silence.id).catch((error: unknown) => {
            end.disabled = false;
            setText(status, `Could not end: ${error instanceof Error ? error.message : String(error)}`);
          });
        });
        const matchers = silence.matchers.map((m) => `${m.name}=${m.value}`).join(", ") || "everything";
        const until = silence.endsAt === null ? "" : ` · ends ${formatUntil(silence.endsAt, nowSeconds)}`;
        return el("li", { class: "silence-row", "data-silence": silence.id }, [
          el("div", {}, [
            el("strong", {}, [matchers]),
            el("p", { class: "alert-meta" }, [
              `${silence.createdBy ? `by ${silence.createdBy}` : ""}${until}${silence.comment ? ` · ${silence.comment}` : ""}`,
            ]),
            status,
          ]),
          end,
        ]);
      }),
    );
  }

  setRules(rules: readonly AlertRule[]): void {
    this.rulesEmpty.hidden = rules.length > 0;
    this.rules.replaceChildren(
      ...rules.map((rule) =>
        el("tr", {}, [
          el("td", {}, [rule.name]),
          el("td", {}, [rule.service ?? "all"]),
          el("td", {}, [rule.condition]),
          el("td", {}, [el("span", { class: "severity-badge", "data-severity": rule.severity }, [rule.severity])]),
        ]),
      ),
    );
  }

  /** Transitions, newest first: what happened, to which alert, when. */
  setHistory(transitions: readonly Alert[], nowSeconds: number): void {
    this.historyEmpty.hidden = transitions.length > 0;
    this.history.replaceChildren(
      ...transitions.slice(0, 50).map((t) => {
        const what = t.transition ?? stateText(t, nowSeconds);
        const who = t.transition === "acknowledged" && t.acknowledgedBy ? ` by ${t.acknowledgedBy}` : "";
        const when = t.changedAt === null ? "" : ` · ${formatAge(t.changedAt, nowSeconds)}`;
        return el("li", { class: "history-row", "data-state": t.state }, [
          el("span", { class: "severity-badge", "data-severity": t.severity }, [t.severity]),
          ` ${t.rule}${t.service ? ` · ${t.service}` : ""} · ${what}${who}${when}`,
          t.summary !== t.rule && t.transition !== "acknowledged" ? el("span", { class: "history-summary" }, [` — ${t.summary}`]) : "",
        ]);
      }),
    );
  }

  private silenceForm(): HTMLElement {
    const service = el("input", { id: "new-silence-service", type: "text", placeholder: "e.g. api" });
    const rule = el("input", { id: "new-silence-rule", type: "text", placeholder: "any rule" });
    const duration = el(
      "select",
      { id: "new-silence-duration" },
      SILENCE_CHOICES.map((c) => el("option", { value: c.seconds, selected: c.seconds === 3600 }, [c.label])),
    );
    const comment = el("input", { id: "new-silence-comment", type: "text", placeholder: "why" });
    const form = el("form", { class: "new-silence", "aria-label": "New silence" }, [
      el("label", { for: "new-silence-service" }, ["Service"]),
      service,
      el("label", { for: "new-silence-rule" }, ["Rule"]),
      rule,
      el("label", { for: "new-silence-duration" }, ["For"]),
      duration,
      el("label", { for: "new-silence-comment" }, ["Comment"]),
      comment,
      el("button", { type: "submit", class: "button button-primary" }, ["Add silence"]),
      this.formStatus,
    ]);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const matchers = [
        { name: "service", value: service.value.trim() },
        // Silences match the rule's name under the label `alertname`.
        { name: "alertname", value: rule.value.trim() },
      ].filter((m) => m.value !== "");
      if (matchers.length === 0) {
        setText(this.formStatus, "Name a service or a rule to silence.");
        return;
      }
      setText(this.formStatus, "Adding…");
      this.callbacks.createSilence(matchers, Number(duration.value), comment.value.trim()).then(
        () => {
          setText(this.formStatus, "Added.");
          form.reset();
        },
        (error: unknown) => setText(this.formStatus, `Could not add: ${error instanceof Error ? error.message : String(error)}`),
      );
    });
    return form;
  }

  private section(title: string, children: Node[]): HTMLElement {
    const id = `alerts-${title.toLowerCase()}-heading`;
    return el("section", { class: "panel-section", "aria-labelledby": id }, [
      el("h2", { class: "section-title", id }, [title]),
      ...children,
    ]);
  }
}

function formatUntil(unixSeconds: number, nowSeconds: number): string {
  const left = Math.round(unixSeconds - nowSeconds);
  if (left <= 0) return "now";
  if (left < 120) return `in ${left} s`;
  if (left < 7200) return `in ${Math.round(left / 60)} min`;
  return `in ${Math.round(left / 3600)} h`;
}
