// The page header: product name and the live connection's state, in words and colour (colour
// alone is not enough for colour-blind users or screen readers).

import type { ConnectionStatus } from "../live/connection";
import { ALERTS_HREF, EXPLORE_HREF, OVERVIEW_HREF, PROFILES_HREF, SERVICES_HREF, pipelineHref } from "../router";
import { resolveTheme, setChoice, storedChoice, THEME_EVENT, type ThemeChoice } from "../theme";
import { el, setText } from "./dom";

const NEXT_CHOICE: Record<ThemeChoice, ThemeChoice> = { system: "light", light: "dark", dark: "system" };
const CHOICE_LABEL: Record<ThemeChoice, string> = { system: "System", light: "Light", dark: "Dark" };

export type Section = "overview" | "pipeline" | "alerts" | "services" | "profiles" | "explore" | null;

export function statusText(status: ConnectionStatus): string {
  switch (status.state) {
    case "connecting":
      return "Connecting…";
    case "live":
      return "Live";
    case "reconnecting":
    case "offline": {
      // Say what is down: the browser's network, or only the server (the usual case).
      const label =
        status.state === "reconnecting"
          ? "Reconnecting"
          : status.cause === "network"
            ? "Offline (no network)"
            : "Server unreachable";
      if (status.retryInMs === undefined) return label;
      return `${label} · retry in ${Math.max(1, Math.ceil(status.retryInMs / 1000))} s`;
    }
  }
}

export class Header {
  private readonly status: HTMLElement;
  private readonly links = new Map<Exclude<Section, null>, HTMLAnchorElement>();
  private readonly alertCount: HTMLElement;
  private readonly themeButton: HTMLButtonElement;
  readonly element: HTMLElement;

  constructor(container: HTMLElement) {
    this.themeButton = el("button", { type: "button", class: "button theme-toggle", "data-testid": "theme-toggle" });
    this.themeButton.addEventListener("click", () => {
      setChoice(NEXT_CHOICE[storedChoice()]);
      this.syncTheme();
    });
    window.addEventListener(THEME_EVENT, () => this.syncTheme());
    this.syncTheme();
    this.status = el("span", {
      class: "status",
      role: "status",
      "aria-live": "polite",
      "data-testid": "connection-status",
      "data-state": "connecting",
    });
    this.status.append(el("span", { class: "status-dot", "aria-hidden": "true" }), el("span", { class: "status-text" }, ["Connecting…"]));
    this.alertCount = el("span", { class: "nav-count", "data-testid": "alert-count", hidden: true });
    const link = (section: Exclude<Section, null>, href: string, label: string, extra: Node[] = []) => {
      const a = el("a", { class: "nav-link", href, "data-nav": section }, [label, ...extra]);
      this.links.set(section, a);
      return el("li", {}, [a]);
    };
    this.element = el("header", { class: "app-header" }, [
        el("a", { class: "brand", href: "#/" }, [el("span", { class: "brand-mark", "aria-hidden": "true" }, ["◆"]), "Flowscope"]),
        el("nav", { class: "main-nav", "aria-label": "Main" }, [
          el("ul", {}, [
            link("overview", OVERVIEW_HREF, "Overview"),
            link("pipeline", pipelineHref(null), "Pipeline"),
            link("alerts", ALERTS_HREF, "Alerts", [this.alertCount]),
            link("services", SERVICES_HREF, "Services"),
            link("profiles", PROFILES_HREF, "Profiles"),
            link("explore", EXPLORE_HREF, "Explore"),
          ]),
        ]),
        el("div", { class: "header-end" }, [this.themeButton, this.status]),
      ]);
    container.append(this.element);
  }

  /** The theme toggle says the choice and what it shows ("Theme: System (dark)"). */
  private syncTheme(): void {
    const choice = storedChoice();
    const label = choice === "system" ? `System (${resolveTheme(choice)})` : CHOICE_LABEL[choice];
    setText(this.themeButton, `Theme: ${label}`);
    this.themeButton.dataset.choice = choice;
    this.themeButton.setAttribute("aria-label", `Theme: ${label}. Switch to ${CHOICE_LABEL[NEXT_CHOICE[choice]]}`);
  }

  setSection(section: Section): void {
    for (const [name, a] of this.links) {
      if (name === section) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
  }

  /** Firing alerts, shown next to "Alerts" (hidden at zero). */
  setAlertCount(count: number, critical: number): void {
    this.alertCount.hidden = count === 0;
    this.alertCount.dataset.critical = String(critical > 0);
    setText(this.alertCount, String(count));
    this.alertCount.setAttribute("aria-label", `${count} active`);
  }

  setStatus(status: ConnectionStatus): void {
    this.status.dataset.state = status.state;
    const text = this.status.querySelector(".status-text");
    if (text !== null) setText(text, statusText(status));
  }
}
