// The page header: product name and the live connection's state, in words and colour (colour
// alone is not enough for colour-blind users or screen readers).

import type { ConnectionStatus } from "../live/connection";
import { el, setText } from "./dom";

export function statusText(status: ConnectionStatus): string {
  switch (status.state) {
    case "connecting":
      return "Connecting…";
    case "live":
      return "Live";
    case "reconnecting":
    case "offline": {
      const label = status.state === "offline" ? "Offline" : "Reconnecting";
      if (status.retryInMs === undefined) return label;
      return `${label} · retry in ${Math.max(1, Math.ceil(status.retryInMs / 1000))} s`;
    }
  }
}

export class Header {
  private readonly status: HTMLElement;

  constructor(container: HTMLElement) {
    this.status = el("span", {
      class: "status",
      role: "status",
      "aria-live": "polite",
      "data-testid": "connection-status",
      "data-state": "connecting",
    });
    this.status.append(el("span", { class: "status-dot", "aria-hidden": "true" }), el("span", { class: "status-text" }, ["Connecting…"]));
    container.append(
      el("header", { class: "app-header" }, [
        el("a", { class: "brand", href: "#/" }, [el("span", { class: "brand-mark", "aria-hidden": "true" }, ["◆"]), "Flowscope"]),
        this.status,
      ]),
    );
  }

  setStatus(status: ConnectionStatus): void {
    this.status.dataset.state = status.state;
    const text = this.status.querySelector(".status-text");
    if (text !== null) setText(text, statusText(status));
  }
}
