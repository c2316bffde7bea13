// A list of alerts with their actions: acknowledge, and silence for a chosen time. Used by the
// overview's alert panel, the alerts page and a service's details. Rows are keyed by fingerprint
// and updated in place, so a refresh does not steal keyboard focus from a button.

import type { Alert } from "../alerts/model";
import { formatAge } from "../format";
import { serviceHref } from "../router";
import { el, setText } from "./dom";

export interface AlertActions {
  acknowledge(alert: Alert): Promise<void>;
  silence(alert: Alert, seconds: number, comment: string): Promise<void>;
}

export const SILENCE_CHOICES: readonly { seconds: number; label: string }[] = [
  { seconds: 30 * 60, label: "30 minutes" },
  { seconds: 3600, label: "1 hour" },
  { seconds: 4 * 3600, label: "4 hours" },
  { seconds: 86_400, label: "1 day" },
];

/** "0.21 (threshold 0.05)", or "" when the alert carries no numbers. */
export function valueText(alert: Alert): string {
  if (alert.value === null) return "";
  const unit = alert.unit === "" ? "" : alert.unit === "%" ? "%" : ` ${alert.unit}`;
  const value = `${Number(alert.value.toPrecision(3))}${unit}`;
  return alert.threshold === null ? `value ${value}` : `value ${value} (threshold ${Number(alert.threshold.toPrecision(3))}${unit})`;
}

export function stateText(alert: Alert, nowSeconds: number): string {
  const since = alert.startsAt === null ? "" : ` since ${formatAge(alert.startsAt, nowSeconds)}`;
  const label = alert.state === "pending" ? "pending" : alert.state === "resolved" ? "resolved" : "firing";
  return `${label}${since.replace(" ago", "")}`;
}

export class AlertList {
  readonly element: HTMLElement;
  private readonly list: HTMLUListElement;
  private readonly empty: HTMLElement;
  private readonly rows = new Map<string, HTMLLIElement>();
  private alerts = new Map<string, Alert>();

  constructor(
    private readonly actions: AlertActions,
    private readonly options: { emptyText: string; showService: boolean; testId: string },
  ) {
    this.list = el("ul", { class: "alert-list" });
    this.empty = el("p", { class: "empty" }, [options.emptyText]);
    this.element = el("div", { class: "alert-list-box", "data-testid": options.testId }, [this.list, this.empty]);
  }

  render(alerts: readonly Alert[], nowSeconds: number): void {
    this.empty.hidden = alerts.length > 0;
    this.alerts = new Map(alerts.map((a) => [a.fingerprint, a]));
    for (const [fingerprint, row] of this.rows) {
      if (!this.alerts.has(fingerprint)) {
        row.remove();
        this.rows.delete(fingerprint);
      }
    }
    alerts.forEach((alert, index) => {
      const row = this.rows.get(alert.fingerprint) ?? this.createRow(alert.fingerprint);
      if (this.list.children[index] !== row) this.list.insertBefore(row, this.list.children[index] ?? null);
      this.fill(row, alert, nowSeconds);
    });
  }

  private fill(row: HTMLLIElement, alert: Alert, nowSeconds: number): void {
    row.dataset.severity = alert.severity;
    row.dataset.state = alert.state;
    const set = (selector: string, text: string) => {
      const node = row.querySelector(selector);
      if (node !== null) setText(node, text);
    };
    set(".severity-badge", alert.severity);
    set(".alert-rule", alert.rule);
    set(".alert-summary", alert.summary === alert.rule ? "" : alert.summary);
    const meta = [stateText(alert, nowSeconds), valueText(alert)];
    if (alert.acknowledged) meta.push(`acknowledged${alert.acknowledgedBy ? ` by ${alert.acknowledgedBy}` : ""}`);
    if (alert.silenced) meta.push("silenced");
    set(".alert-meta", meta.filter((m) => m !== "").join(" · "));
    const link = row.querySelector<HTMLAnchorElement>(".alert-service");
    if (link !== null) {
      link.hidden = !this.options.showService || alert.service === null;
      if (alert.service !== null) {
        link.href = serviceHref(alert.service);
        setText(link, alert.service);
      }
    }
    const ack = row.querySelector<HTMLButtonElement>(".ack-button");
    if (ack !== null) {
      ack.disabled = alert.acknowledged || alert.state === "resolved";
      setText(ack, alert.acknowledged ? "Acknowledged" : "Acknowledge");
    }
    const silence = row.querySelector<HTMLButtonElement>(".silence-button");
    if (silence !== null) silence.disabled = alert.silenced || alert.state === "resolved";
  }

  private createRow(fingerprint: string): HTMLLIElement {
    const status = el("p", { class: "alert-action-status", role: "status" });
    const ack = el("button", { type: "button", class: "button ack-button" }, ["Acknowledge"]);
    const silenceToggle = el("button", { type: "button", class: "button silence-button", "aria-expanded": "false" }, [
      "Silence…",
    ]);
    const durationId = `silence-duration-${fingerprint}`;
    const commentId = `silence-comment-${fingerprint}`;
    const duration = el(
      "select",
      { id: durationId, class: "silence-duration" },
      SILENCE_CHOICES.map((c) => el("option", { value: c.seconds, selected: c.seconds === 3600 }, [c.label])),
    );
    const comment = el("input", { id: commentId, class: "silence-comment", type: "text", placeholder: "why (optional)" });
    const form = el("form", { class: "silence-form", hidden: true }, [
      el("label", { for: durationId }, ["Silence for"]),
      duration,
      el("label", { for: commentId, class: "visually-hidden" }, ["Comment"]),
      comment,
      el("button", { type: "submit", class: "button button-primary" }, ["Silence"]),
      el("button", { type: "button", class: "button silence-cancel" }, ["Cancel"]),
    ]);
    const row = el("li", { class: "alert-row", "data-alert": fingerprint }, [
      el("span", { class: "severity-badge" }),
      el("div", { class: "alert-main" }, [
        el("p", { class: "alert-title" }, [
          el("strong", { class: "alert-rule" }),
          " ",
          el("a", { class: "alert-service" }),
        ]),
        el("p", { class: "alert-summary" }),
        el("p", { class: "alert-meta" }),
        status,
      ]),
      el("div", { class: "alert-actions" }, [ack, silenceToggle]),
      form,
    ]);
    const current = () => this.alerts.get(fingerprint);
    const run = async (label: string, action: (alert: Alert) => Promise<void>) => {
      const alert = current();
      if (alert === undefined) return;
      setText(status, `${label}…`);
      try {
        await action(alert);
        setText(status, "");
      } catch (error) {
        setText(status, `Could not ${label.toLowerCase()}: ${error instanceof Error ? error.message : String(error)}`);
      }
    };
    ack.addEventListener("click", () => void run("Acknowledge", (a) => this.actions.acknowledge(a)));
    silenceToggle.addEventListener("click", () => {
      form.hidden = !form.hidden;
      silenceToggle.setAttribute("aria-expanded", String(!form.hidden));
      if (!form.hidden) duration.focus();
    });
    form.querySelector(".silence-cancel")?.addEventListener("click", () => {
      form.hidden = true;
      silenceToggle.setAttribute("aria-expanded", "false");
      silenceToggle.focus();
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const seconds = Number(duration.value);
      void run("Silence", (a) => this.actions.silence(a, seconds, comment.value.trim())).then(() => {
        form.hidden = true;
        silenceToggle.setAttribute("aria-expanded", "false");
      });
    });
    this.rows.set(fingerprint, row);
    return row;
  }
}
