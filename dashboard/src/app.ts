// Wires the pieces together: query API (history, service list) + live connection → telemetry state
// → views. Pages are chosen by the router; later pages (pipeline, alerts, traces) plug in the same way.

import { ApiError, QueryClient } from "./api";
import { withToken, type DashboardConfig } from "./config";
import { formatAge, formatRate } from "./format";
import { LiveConnection, type ConnectionStatus } from "./live/connection";
import { parseRoute, serviceHref, type Route } from "./router";
import {
  currentRate,
  METRICS,
  PAGE_METRICS,
  serviceCharts,
  serviceStats,
  type ServiceBuckets,
} from "./state/service-stats";
import { TelemetryState } from "./state/telemetry";
import type { ServerMessage } from "./types";
import { el, setText } from "./views/dom";
import { Header } from "./views/header";
import { ServiceList } from "./views/service-list";
import { ServicePage } from "./views/service-page";

const RESOLUTION = "1m";
const BUCKET_SECONDS = 60;
/** History shown when a service is opened. */
const HISTORY_SECONDS = 15 * 60;
/** Charts keep at most this much (live updates extend the initial 15 minutes up to it). */
const RETENTION_SECONDS = 60 * 60;
const SERVICES_REFRESH_MS = 30_000;
/** Reloading history replaces client-side quantile merges with the server's exact ones. */
const HISTORY_REFRESH_MS = 60_000;
/**
 * Live latency quantiles of several series can only be approximated in the browser; the current
 * minute's exact, server-merged quantiles are fetched this often for the open service.
 */
const RECENT_LATENCY_REFRESH_MS = 10_000;
/** Stat cards depend on the clock too (a filling bucket's rate), so they are redrawn at least this often. */
const TICK_MS = 1_000;

export interface AppDependencies {
  fetch: typeof fetch;
  nowMs: () => number;
}

export class App {
  private readonly state = new TelemetryState({
    resolution: RESOLUTION,
    retentionSeconds: RETENTION_SECONDS,
  });
  private readonly api: QueryClient;
  private readonly connection: LiveConnection;
  private readonly header: Header;
  private readonly serviceList: ServiceList;
  private readonly main: HTMLElement;
  private readonly servicePage = new ServicePage();
  private readonly placeholder = el("section", { class: "placeholder", "data-testid": "placeholder" });
  /** Service → last time it reported (unix s), from the API and from live updates. */
  private readonly lastSeen = new Map<string, number>();
  private route: Route = { page: "services" };
  private selected: string | null = null;
  private historyGeneration = 0;
  private renderQueued = false;
  private readonly timers: ReturnType<typeof setInterval>[] = [];

  constructor(
    root: HTMLElement,
    config: DashboardConfig,
    private readonly deps: AppDependencies,
    configWarning?: string,
  ) {
    this.api = new QueryClient(config.apiBaseUrl, deps.fetch);
    this.header = new Header(root);
    const layout = el("div", { class: "layout" });
    this.main = el("main", { class: "main", id: "main", tabindex: -1 });
    root.append(layout);
    this.serviceList = new ServiceList(layout);
    layout.append(this.main);
    if (configWarning !== undefined) console.warn(configWarning);

    this.connection = new LiveConnection({
      url: withToken(config.wsUrl, config.token),
      subscription: { services: [], metrics: PAGE_METRICS },
      onMessage: (message) => this.onLiveMessage(message),
      onStatus: (status) => this.onStatus(status),
      onProtocolError: (raw) => console.warn("dropped malformed message", raw.slice(0, 200)),
      onResync: () => {
        void this.refreshServices();
        if (this.selected !== null) void this.loadHistory(this.selected);
      },
      isOnline: () => navigator.onLine,
    });
    // Any service's change can move the list's throughput; renders are coalesced per frame.
    this.state.onChange(() => this.scheduleRender());
  }

  start(): void {
    window.addEventListener("hashchange", () => this.onRoute());
    window.addEventListener("online", () => this.connection.retryNow());
    this.onRoute();
    void this.refreshServices();
    this.connection.start();
    this.timers.push(
      setInterval(() => void this.refreshServices(), SERVICES_REFRESH_MS),
      setInterval(() => {
        if (this.selected !== null) void this.loadHistory(this.selected);
      }, HISTORY_REFRESH_MS),
      setInterval(() => void this.refreshRecentLatency(), RECENT_LATENCY_REFRESH_MS),
      setInterval(() => this.scheduleRender(), TICK_MS),
    );
  }

  private nowSeconds(): number {
    return this.deps.nowMs() / 1000;
  }

  private onStatus(status: ConnectionStatus): void {
    this.header.setStatus(status);
  }

  private onLiveMessage(message: ServerMessage): void {
    switch (message.type) {
      case "metrics_update":
      case "snapshot": {
        const now = Math.floor(this.nowSeconds());
        for (const update of message.updates) this.lastSeen.set(update.service, now);
        if (message.type === "snapshot") this.state.replaceWithSnapshot(message.updates);
        else this.state.applyUpdates(message.updates);
        this.scheduleRender();
        break;
      }
      case "error":
        console.warn("server error:", message.message);
        break;
      case "hello":
      case "pong":
        break;
    }
  }

  private async refreshServices(): Promise<void> {
    try {
      for (const service of await this.api.services()) {
        const known = this.lastSeen.get(service.name) ?? 0;
        this.lastSeen.set(service.name, Math.max(known, service.last_seen));
      }
    } catch (error) {
      // The live feed still names services; the list just lacks "last seen" for quiet ones.
      console.warn("cannot load services:", error);
    }
    this.onRoute();
  }

  private onRoute(): void {
    this.route = parseRoute(window.location.hash);
    if (this.route.page === "services") {
      const first = this.serviceNames()[0];
      if (first !== undefined) {
        // Opening the dashboard shows a service straight away, without adding a history entry.
        window.location.replace(serviceHref(first));
        this.route = { page: "service", service: first };
      }
    }
    const service = this.route.page === "service" ? this.route.service : null;
    if (service !== this.selected) {
      this.selected = service;
      if (service !== null) {
        this.servicePage.show(service);
        void this.loadHistory(service);
      }
    }
    this.showPage();
    this.scheduleRender();
  }

  private showPage(): void {
    const wanted = this.route.page === "service" ? this.servicePage.element : this.placeholder;
    if (this.route.page === "services") {
      setText(this.placeholder, "No services have reported yet. The list fills in as soon as data arrives.");
    } else if (this.route.page === "not_found") {
      setText(this.placeholder, `Nothing at ${this.route.hash}. Pick a service from the list.`);
    }
    if (this.main.firstChild !== wanted) this.main.replaceChildren(wanted);
  }

  private async loadHistory(service: string): Promise<void> {
    const generation = ++this.historyGeneration;
    const to = Math.floor(this.nowSeconds() / BUCKET_SECONDS) * BUCKET_SECONDS + BUCKET_SECONDS;
    const range = { from: to - HISTORY_SECONDS - BUCKET_SECONDS, to, resolution: RESOLUTION } as const;
    const failures: string[] = [];
    await Promise.all(
      PAGE_METRICS.map(async (metric) => {
        try {
          this.state.setHistory(await this.api.metricHistory(service, metric, range));
        } catch (error) {
          if (error instanceof ApiError && error.isNotFound) this.state.clearHistory(service, metric);
          else failures.push(`${metric}: ${error instanceof Error ? error.message : String(error)}`);
        }
      }),
    );
    // A slower, older load must not overwrite what a newer one says about the page.
    if (generation !== this.historyGeneration || service !== this.selected) return;
    this.servicePage.setEmptyMessage("No data yet");
    this.servicePage.setNotice(
      failures.length === 0 ? null : `Could not load history (${failures.join("; ")}). Live updates continue.`,
    );
    this.scheduleRender();
  }

  private async refreshRecentLatency(): Promise<void> {
    const service = this.selected;
    if (service === null || document.hidden) return;
    const current = Math.floor(this.nowSeconds() / BUCKET_SECONDS) * BUCKET_SECONDS;
    const range = { from: current - BUCKET_SECONDS, to: current + BUCKET_SECONDS, resolution: RESOLUTION } as const;
    try {
      this.state.setHistory(await this.api.metricHistory(service, METRICS.latency, range));
    } catch {
      // The full reload reports errors; this refresh only sharpens quantiles.
    }
  }

  private serviceNames(): string[] {
    const names = new Set<string>(this.lastSeen.keys());
    for (const name of this.state.servicesSeen().keys()) names.add(name);
    return [...names].sort((a, b) => a.localeCompare(b));
  }

  private scheduleRender(): void {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      this.render();
    });
  }

  private render(): void {
    const now = this.nowSeconds();
    if (this.route.page === "services" && this.serviceNames().length > 0) this.onRoute();
    this.serviceList.render(
      this.serviceNames().map((name) => {
        const requests = this.state.buckets(name, METRICS.requests);
        const source = requests.length > 0 ? requests : this.state.buckets(name, METRICS.latency);
        return {
          name,
          throughput: formatRate(currentRate(source, now, BUCKET_SECONDS)),
          lastSeen: formatAge(this.lastSeen.get(name) ?? 0, now),
        };
      }),
      this.selected,
    );
    if (this.selected !== null) {
      const data = this.serviceBuckets(this.selected);
      this.servicePage.render(
        serviceStats(data, now, BUCKET_SECONDS),
        serviceCharts(data, now, BUCKET_SECONDS),
      );
    }
  }

  private serviceBuckets(service: string): ServiceBuckets {
    const buckets = (metric: string) => this.state.buckets(service, metric);
    const unit = (metric: string) => this.state.info(service, metric)?.unit ?? "";
    return {
      latency: buckets(METRICS.latency),
      latencyUnit: unit(METRICS.latency),
      requests: buckets(METRICS.requests),
      errors: buckets(METRICS.errors),
      hasErrorsMetric: this.state.info(service, METRICS.errors) !== null,
      cpu: buckets(METRICS.cpu),
      cpuUnit: unit(METRICS.cpu),
      memory: buckets(METRICS.memory),
      memoryUnit: unit(METRICS.memory),
    };
  }
}
