// Toasts: short notices in a corner, announced politely to screen readers. An alert's toast offers
// "Acknowledge" and "View"; toasts leave on their own after a while, except while hovered or
// focused (someone is reading or about to click), and at most MAX_TOASTS show at once.

import type { Alert } from "../alerts/model";
import { serviceHref } from "../router";
import { valueText } from "./alert-list";
import { el } from "./dom";

const MAX_TOASTS = 4;
const TOAST_MS = 12_000;

/** "Critical", "Warning", "Info": the word for the alert's severity, as the alert list says it. */
export function toastTitle(severity: string): string {
  switch (severity) {
    case "critical":
      return "Critical";
    case "warning":
      return "Warning";
    case "info":
      return "Info";
    default:
      return "Alert";
  }
}

export class Toasts {
  private readonly region: HTMLElement;

  constructor(
    container: HTMLElement,
    private readonly acknowledge: (alert: Alert) => Promise<void>,
  ) {
    this.region = el("section", {
      class: "toasts",
      "aria-label": "Notifications",
      "aria-live": "polite",
      "data-testid": "toasts",
    });
    container.append(this.region);
  }

  alert(alert: Alert): void {
    const title = `${toastTitle(alert.severity)}: ${alert.rule}${alert.service ? ` on ${alert.service}` : ""}`;
    // The server's summary already names the value; without one, the value and threshold stand in.
    const details = alert.summary !== alert.rule && alert.summary !== "" ? alert.summary : valueText(alert);
    const ack = el("button", { type: "button", class: "button" }, ["Acknowledge"]);
    const view = el("a", { class: "button", href: alert.service ? serviceHref(alert.service) : "#/alerts" }, ["View"]);
    const toast = this.show(
      [el("strong", { class: "toast-title" }, [title]), el("p", { class: "toast-body" }, [details])],
      [ack, view],
      alert.severity,
    );
    toast.dataset.alert = alert.fingerprint;
    ack.addEventListener("click", () => {
      ack.disabled = true;
      this.acknowledge(alert).then(
        () => toast.remove(),
        () => {
          ack.disabled = false;
          ack.textContent = "Retry acknowledge";
        },
      );
    });
  }

  message(text: string, kind: "info" | "warning" = "info"): void {
    this.show([el("p", { class: "toast-body" }, [text])], [], kind);
  }

  private show(content: Node[], actions: HTMLElement[], kind: string): HTMLElement {
    const close = el("button", { type: "button", class: "toast-close", "aria-label": "Dismiss" }, ["×"]);
    const toast = el("article", { class: "toast", "data-kind": kind, "data-testid": "toast" }, [
      el("div", { class: "toast-content" }, content),
      el("div", { class: "toast-actions" }, actions),
      close,
    ]);
    close.addEventListener("click", () => toast.remove());
    let held = false;
    const hold = () => {
      held = true;
    };
    const release = () => {
      held = false;
    };
    toast.addEventListener("mouseenter", hold);
    toast.addEventListener("mouseleave", release);
    toast.addEventListener("focusin", hold);
    toast.addEventListener("focusout", release);
    const expire = () => {
      if (!toast.isConnected) return;
      if (held) setTimeout(expire, 2000);
      else toast.remove();
    };
    setTimeout(expire, TOAST_MS);
    this.region.prepend(toast);
    while (this.region.children.length > MAX_TOASTS) this.region.lastElementChild?.remove();
    return toast;
  }
}
