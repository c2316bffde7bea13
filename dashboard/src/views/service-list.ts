// The service list: one link per service (links are focusable and work with the hash router),
// with its live throughput and when it last reported. Arrow keys move between entries.

import { el, setText } from "./dom";
import { serviceHref } from "../router";

export interface ServiceListItem {
  name: string;
  /** Already formatted, e.g. "12.3 req/s" or "—". */
  throughput: string;
  /** Already formatted, e.g. "12 s ago". */
  lastSeen: string;
  /** "" while current; else why the throughput is greyed, e.g. "no data since 14:03:12". */
  stale?: string;
}

export class ServiceList {
  private readonly list: HTMLUListElement;
  private readonly empty: HTMLElement;
  private readonly entries = new Map<string, HTMLLIElement>();

  constructor(container: HTMLElement) {
    this.list = el("ul", { class: "service-list", "data-testid": "service-list" });
    this.empty = el("p", { class: "empty", "data-testid": "no-services" }, [
      "No services yet. Send OTLP metrics to port 4318 (for example, run ",
      el("code", {}, ["flowscope loadgen"]),
      ").",
    ]);
    const nav = el("nav", { class: "sidebar", "aria-label": "Services" }, [
      el("h2", { class: "sidebar-title", id: "services-heading" }, ["Services"]),
      this.list,
      this.empty,
    ]);
    nav.addEventListener("keydown", (event) => this.onKeyDown(event));
    container.append(nav);
  }

  render(items: readonly ServiceListItem[], selected: string | null): void {
    this.empty.hidden = items.length > 0;
    const wanted = new Set(items.map((item) => item.name));
    for (const [name, entry] of this.entries) {
      if (!wanted.has(name)) {
        entry.remove();
        this.entries.delete(name);
      }
    }
    items.forEach((item, index) => {
      const entry = this.entries.get(item.name) ?? this.createEntry(item.name);
      if (this.list.children[index] !== entry) this.list.insertBefore(entry, this.list.children[index] ?? null);
      const link = entry.querySelector("a");
      if (link === null) return;
      if (item.name === selected) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
      const throughput = entry.querySelector(".service-throughput");
      const lastSeen = entry.querySelector(".service-last-seen");
      if (throughput !== null) {
        setText(throughput, item.throughput);
        const stale = item.stale ?? "";
        throughput.classList.toggle("is-stale", stale !== "");
        if (stale === "") throughput.removeAttribute("title");
        else throughput.setAttribute("title", stale);
      }
      if (lastSeen !== null) setText(lastSeen, item.lastSeen);
    });
  }

  private createEntry(name: string): HTMLLIElement {
    const entry = el("li", {}, [
      el("a", { class: "service-link", href: serviceHref(name), "data-service": name }, [
        el("span", { class: "service-name" }, [name]),
        el("span", { class: "service-meta" }, [
          el("span", { class: "service-throughput" }),
          el("span", { class: "service-last-seen" }),
        ]),
      ]),
    ]);
    this.entries.set(name, entry);
    return entry;
  }

  private onKeyDown(event: KeyboardEvent): void {
    const links = [...this.list.querySelectorAll<HTMLAnchorElement>("a.service-link")];
    const current = links.indexOf(document.activeElement as HTMLAnchorElement);
    if (current < 0) return;
    let next: number;
    switch (event.key) {
      case "ArrowDown":
      case "ArrowRight":
        next = Math.min(links.length - 1, current + 1);
        break;
      case "ArrowUp":
      case "ArrowLeft":
        next = Math.max(0, current - 1);
        break;
      case "Home":
        next = 0;
        break;
      case "End":
        next = links.length - 1;
        break;
      default:
        return;
    }
    event.preventDefault();
    links[next]?.focus();
  }
}
