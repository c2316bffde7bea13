// Wires the pieces together: query API + live connection → state (metrics, traces, alerts, the
// service graph) → views. The router picks the page; every page is redrawn at most once per frame,
// and only the visible one.

import { AlertStore } from "./alerts/store";
import type { Alert } from "./alerts/model";
import { ApiError, QueryClient } from "./api";
import { currentToken, type Credential } from "./auth";
import { withToken, type DashboardConfig } from "./config";
import { formatAge, formatRate } from "./format";
import { edgeHealth, nodeHealth } from "./graph/health";
import {
  applyEvent,
  healthFromScore,
  SCORE_METRIC,
  scoreExplanation,
  scoreHistoryColumns,
  serviceRows,
  type HealthScore,
  type ServiceHealthRow,
} from "./registry/model";
import { emptyNode, type GraphNode, type ServiceGraph } from "./graph/model";
import { LiveConnection, type ConnectionStatus } from "./live/connection";
import { parseRoute, pipelineHref, type Route } from "./router";
import { latencyHeatmap } from "./state/heatmap";
import { overviewCharts, overviewStats } from "./state/overview";
import { resolutionSeconds } from "./state/range";
import {
  absoluteTime,
  DEFAULT_TIME,
  effectiveResolution,
  hashWithTime,
  isLiveTime,
  parseTime,
  sameTime,
  splitHash,
  timeWindow,
  viewExtent,
  type GlobalTime,
} from "./state/time-range";
import { CoverageTracker, freshness, staleNote, type Freshness } from "./state/rates";
import {
  currentRate,
  METRICS,
  PAGE_METRICS,
  requestSource,
  serviceCharts,
  serviceStats,
  toMilliseconds,
  type ServiceBuckets,
  type ServiceStats,
} from "./state/service-stats";
import { TelemetryState } from "./state/telemetry";
import type { TraceEvent, TraceSummary } from "./traces/model";
import { TraceStore } from "./traces/store";
import type { Bucket, ServerMessage } from "./types";
import { AlertsPage } from "./views/alerts-page";
import { ServicesPage } from "./views/services-page";
import { el, setText } from "./views/dom";
import { onChartZoom } from "./views/chart";
import { Header, type Section } from "./views/header";
import { TimePicker } from "./views/time-picker";
import { OverviewPage } from "./views/overview";
import { PipelineView, type PipelineEdge, type PipelineNode } from "./views/pipeline";
import { ServiceList } from "./views/service-list";
import { ServicePage, traceRows } from "./views/service-page";
import { Toasts } from "./views/toasts";
import type { ProfilesPage } from "./profiles/page";
import { loadTraceInto, TracePage } from "./views/trace-page";
import type { ExplorePage } from "./explore/page";

const RESOLUTION = "1m";
const BUCKET_SECONDS = 60;
/** Charts keep at most this much live data (live updates extend the loaded history up to it). */
const RETENTION_SECONDS = 60 * 60;
/** RED metrics derived from spans (per service, and per operation as an attribute). */
export const RED_METRICS = {
  requests: "red.requests",
  errors: "red.errors",
  duration: "red.duration",
} as const;
/** Metrics the overview charts read for every service. */
const OVERVIEW_METRICS = [METRICS.latency, METRICS.requests, METRICS.errors];
/** The overview's live history (the live state keeps this much; longer ranges load on their own). */
const OVERVIEW_SECONDS = 60 * 60;
/** The graph covers this much recent time. */
const GRAPH_WINDOW_SECONDS = 5 * 60;
const GRAPH_REFRESH_MS = 5_000;
const SERVICES_REFRESH_MS = 30_000;
/** Reloading history replaces client-side quantile merges with the server's exact ones. */
const HISTORY_REFRESH_MS = 60_000;
/** The open service's current-minute latency, exact from the server (live merges approximate). */
const RECENT_LATENCY_REFRESH_MS = 10_000;
const ALERTS_REFRESH_MS = 15_000;
const ALERT_DETAILS_REFRESH_MS = 30_000;
const TRACES_REFRESH_MS = 15_000;
const RECENT_TRACES = 20;
/** Stat cards depend on the clock too (a filling bucket's rate), so pages are redrawn this often. */
const TICK_MS = 1_000;
/** Who the dashboard says acknowledged or silenced something (no user accounts here). */
const ACTOR = "dashboard";
/** History requests in flight at once when loading many services. */
const HISTORY_CONCURRENCY = 4;

export interface AppDependencies {
  fetch: typeof fetch;
  nowMs: () => number;
}

/** The session's credential: sent on every request, and what to do when the server refuses it. */
export interface AppCredential {
  /** "" for none; a function for a token that is refreshed (read at each request). */
  token: Credential;
  /** Called with the server's reason when the API answers 401. */
  onUnauthorized: (reason: string) => void;
}

export class App {
  private readonly state = new TelemetryState({ resolution: RESOLUTION, retentionSeconds: RETENTION_SECONDS });
  /** What the page saw of each service's rate source: when its data last grew (see state/rates.ts). */
  private readonly coverage = new CoverageTracker();
  /** Whether the live connection is up: while it is down every live value is stale. */
  private connected = false;
  /** Each service's reading for the render in progress: sidebar, cards and nodes share one. */
  private readonly readings = new Map<string, { now: number; stats: ServiceStats; fresh: Freshness; data: ServiceBuckets }>();
  private readonly traces = new TraceStore(100);
  private readonly alerts = new AlertStore();
  /** The latest health score per service (live `health` events); nodes show it when known. */
  private readonly scores = new Map<string, HealthScore>();
  private readonly servicesPage = new ServicesPage();
  /** The Explore page, loaded (its own chunk) the first time it is opened. */
  private explorePage: ExplorePage | null = null;
  private exploreLoad: Promise<ExplorePage> | null = null;
  /** The global time range (URL `t`, `res`): every view's window. */
  private time: GlobalTime = DEFAULT_TIME;
  private readonly timePicker: TimePicker;
  /** The overview's history when live updates cannot keep it (service → metric → buckets). */
  private overviewStatic = new Map<string, Map<string, Bucket[]>>();
  private overviewGeneration = 0;
  /** The Services page's rows: `GET /api/services` when it opens, then live events. */
  private serviceRows: ServiceHealthRow[] = [];
  private readonly api: QueryClient;
  private readonly connection: LiveConnection;
  private readonly header: Header;
  private readonly serviceList: ServiceList;
  private readonly main: HTMLElement;
  private readonly toasts: Toasts;
  /** When the last stale-answer warning was shown (ms). */
  private staleNoticeMs = -Infinity;
  private readonly overviewPage: OverviewPage;
  private readonly pipeline: PipelineView;
  private readonly pipelineLayout: HTMLElement;
  private readonly panel: HTMLElement;
  private readonly servicePage: ServicePage;
  private readonly tracePage = new TracePage();
  private readonly alertsPage: AlertsPage;
  private readonly placeholder = el("section", { class: "placeholder", "data-testid": "placeholder" });
  /** Service → last time it reported (unix s), from the API and from live updates. */
  private readonly lastSeen = new Map<string, number>();
  private route: Route = { page: "overview" };
  private selected: string | null = null;
  private graph: ServiceGraph | null = null;
  private graphError: string | null = null;
  private recentTraces: TraceSummary[] = [];
  /** History at a resolution live updates do not cover (e.g. 24 h at 5 min), per metric. */
  private staticHistory = new Map<string, Bucket[]>();
  private historyGeneration = 0;
  private renderQueued = false;
  private overviewLoadedAt = 0;
  /** Services whose last hour the overview has loaded (new ones are loaded when they appear). */
  private readonly overviewLoaded = new Set<string>();
  private readonly timers: ReturnType<typeof setInterval>[] = [];
  private alertDetailsTimer: ReturnType<typeof setTimeout> | null = null;
  /** The Profiles page, loaded (its own chunk) the first time it is opened. */
  private profilesPage: ProfilesPage | null = null;
  private profilesLoad: Promise<ProfilesPage> | null = null;
  private readonly loadProfilesPage: () => Promise<ProfilesPage>;

  constructor(
    root: HTMLElement,
    config: DashboardConfig,
    private readonly deps: AppDependencies,
    configWarning?: string,
    credential: AppCredential = { token: "", onUnauthorized: () => {} },
  ) {
    this.api = new QueryClient(config.apiBaseUrl, deps.fetch, credential.token, credential.onUnauthorized, (path, age) =>
      this.staleAnswer(path, age),
    );
    this.loadProfilesPage = async () =>
      (await import("./profiles/page")).createProfilesPage(config.apiBaseUrl, deps.fetch, credential, deps.nowMs);
    this.header = new Header(root);
    this.timePicker = new TimePicker((time) => this.pickTime(time), () => this.nowSeconds());
    root.append(this.timePicker.element);
    onChartZoom((from, to) => this.pickTime(absoluteTime(from, to)));
    const layout = el("div", { class: "layout" });
    this.main = el("main", { class: "main", id: "main", tabindex: -1 });
    root.append(layout);
    this.serviceList = new ServiceList(layout);
    layout.append(this.main);
    if (configWarning !== undefined) console.warn(configWarning);

    const alertActions = {
      acknowledge: (alert: Alert) => this.acknowledge(alert),
      silence: (alert: Alert, seconds: number, comment: string) => this.silence(alert, seconds, comment),
    };
    this.toasts = new Toasts(root, (alert) => this.acknowledge(alert));
    this.overviewPage = new OverviewPage(alertActions);
    this.servicePage = new ServicePage({
      ...alertActions,
      onClose: () => this.closePanel(),
      currentTime: () => this.time,
    });
    this.pipeline = new PipelineView({
      onSelect: (id) => window.location.assign(pipelineHref(id)),
      onClose: () => this.closePanel(),
    });
    this.panel = el("aside", { class: "details-panel", "aria-label": "Service details", "data-testid": "details-panel" });
    this.pipelineLayout = el("div", { class: "pipeline-layout" }, [this.pipeline.element, this.panel]);
    this.alertsPage = new AlertsPage({
      ...alertActions,
      deleteSilence: async (id) => {
        await this.api.deleteSilence(id);
        await this.refreshAlertDetails();
        await this.refreshAlerts();
      },
      createSilence: async (matchers, seconds, comment) => {
        await this.api.createSilence({ matchers, durationSeconds: seconds, createdBy: ACTOR, comment });
        await this.refreshAlertDetails();
        await this.refreshAlerts();
      },
    });

    this.connection = new LiveConnection({
      url: () => withToken(config.wsUrl, currentToken(credential.token)),
      subscription: { services: [], metrics: [...PAGE_METRICS, ...Object.values(RED_METRICS)] },
      onMessage: (message) => this.onLiveMessage(message),
      onStatus: (status) => this.onStatus(status),
      onProtocolError: (raw) => console.warn("dropped malformed message", raw.slice(0, 200)),
      onResync: () => {
        void this.refreshServices();
        void this.refreshAlerts();
        void this.refreshGraph();
        if (this.selected !== null) void this.loadHistory(this.selected);
        if (this.route.page === "overview") void this.loadOverviewHistory();
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
    void this.refreshAlerts();
    this.connection.start();
    const whenVisible = (task: () => void) => () => {
      if (!document.hidden) task();
    };
    this.timers.push(
      setInterval(() => void this.refreshServices(), SERVICES_REFRESH_MS),
      setInterval(
        whenVisible(() => {
          if (this.selected !== null) void this.loadHistory(this.selected);
          if (this.route.page === "overview") void this.loadOverviewHistory();
        }),
        HISTORY_REFRESH_MS,
      ),
      setInterval(whenVisible(() => void this.refreshRecentLatency()), RECENT_LATENCY_REFRESH_MS),
      setInterval(whenVisible(() => void this.refreshGraph()), GRAPH_REFRESH_MS),
      setInterval(() => void this.refreshAlerts(), ALERTS_REFRESH_MS),
      setInterval(
        whenVisible(() => {
          if (this.route.page === "alerts") void this.refreshAlertDetails();
        }),
        ALERT_DETAILS_REFRESH_MS,
      ),
      setInterval(whenVisible(() => void this.refreshRecentTraces()), TRACES_REFRESH_MS),
      setInterval(() => this.scheduleRender(), TICK_MS),
    );
  }

  /** Stops polling and the live connection (the credential was refused; the page asks again). */
  stop(): void {
    for (const timer of this.timers.splice(0)) clearInterval(timer);
    this.connection.stop();
  }

  /** Counters for the benchmark and for anyone inspecting the page (`window.flowscope`). */
  debugInfo(): Record<string, number> {
    return {
      buckets: this.state.size(),
      traces: this.traces.size,
      alerts: this.alerts.active().length,
      animatedParticles: this.pipeline.particleCounts.animated,
      droppedParticles: this.pipeline.particleCounts.dropped,
    };
  }

  private nowSeconds(): number {
    return this.deps.nowMs() / 1000;
  }

  private onStatus(status: ConnectionStatus): void {
    this.header.setStatus(status);
    const connected = status.state === "live";
    if (connected !== this.connected) {
      this.connected = connected;
      this.scheduleRender();
    }
  }

  private onLiveMessage(message: ServerMessage): void {
    switch (message.type) {
      case "metrics_update":
      case "snapshot": {
        const now = Math.floor(this.nowSeconds());
        for (const update of message.updates) this.lastSeen.set(update.service, now);
        if (message.type === "snapshot") this.state.replaceWithSnapshot(message.updates);
        else this.state.applyUpdates(message.updates);
        this.onTraces(message.traces);
        this.scheduleRender();
        break;
      }
      case "traces":
        this.onTraces(message.traces);
        break;
      case "alert":
        if (this.alerts.apply(message.alert)) this.toasts.alert(this.alerts.get(message.alert.fingerprint) ?? message.alert);
        if (this.route.page === "alerts") this.refreshAlertDetailsSoon();
        this.scheduleRender();
        break;
      case "health":
        this.scores.set(message.service, message.health);
        applyEvent(this.serviceRows, { type: "health", service: message.service, ...message.health });
        this.scheduleRender();
        break;
      case "registry":
        applyEvent(this.serviceRows, message.event);
        this.scheduleRender();
        break;
      case "error":
        console.warn("server error:", message.message);
        break;
      case "profile":
        if (this.route.page === "profiles") this.profilesPage?.onProfileEvent(message.service, message.profileType);
        break;
      case "hello":
      case "pong":
        break;
    }
  }

  private onTraces(traces: readonly TraceEvent[]): void {
    for (const trace of traces) {
      this.traces.add(trace);
      if (this.route.page === "pipeline") this.pipeline.addTrace(trace);
    }
    // The open service's list of recent traces shows live ones too.
    if (traces.length > 0 && this.selected !== null) this.scheduleRender();
  }

  // ---- loading ----------------------------------------------------------------------------------

  /**
   * The Services page's score history: each service's `flowscope.health.score` series over the
   * picked range (at most 12 services, the first by name), read with the metrics API.
   */
  private async loadScoreHistory(): Promise<void> {
    const window = timeWindow(this.time, this.nowSeconds());
    const services = this.serviceRows.map((r) => r.service).slice(0, 12);
    const histories = await Promise.all(
      services.map(async (service) => {
        try {
          const history = await this.api.metricHistory(service, SCORE_METRIC, window);
          return { service, buckets: history.buckets };
        } catch {
          // A service without a score series yet (404) has no line: a gap, not a zero.
          return { service, buckets: [] };
        }
      }),
    );
    const step = resolutionSeconds(window.resolution);
    this.servicesPage.setScoreHistory(
      services,
      scoreHistoryColumns(histories, window.from, window.to, step),
      viewExtent(this.time, this.nowSeconds()),
    );
  }

  /** The Services page's rows, with instances and scores (`GET /api/services`). */
  private async loadServiceRows(): Promise<void> {
    try {
      this.serviceRows = serviceRows({ services: await this.api.serviceViews() });
      for (const row of this.serviceRows) {
        if (row.score !== null || row.status === "unknown") {
          this.scores.set(row.service, { score: row.score, status: row.status, reasons: row.reasons, inputs: row.inputs });
        }
      }
      this.scheduleRender();
    } catch (error) {
      console.warn("loading services failed:", error);
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
    if (this.route.page === "overview" && this.serviceNames().some((name) => !this.overviewLoaded.has(name))) {
      void this.loadOverviewHistory(true);
    }
    this.scheduleRender();
  }

  private async refreshGraph(): Promise<void> {
    const page = this.route.page;
    if (page !== "pipeline" && page !== "service") return;
    // `from` on a bucket boundary and `to` = now: the buckets read cover exactly [from, to), so
    // the server's rate (count / (to - from)) is neither diluted nor inflated by a partial bucket.
    const to = Math.floor(this.nowSeconds());
    let from = Math.floor((to - GRAPH_WINDOW_SECONDS) / BUCKET_SECONDS) * BUCKET_SECONDS;
    // Right after start-up the window must not include minutes before any service existed: the
    // server divides by the whole window, which would dilute every edge's rate.
    const earliest = this.earliestDataStart();
    if (earliest !== null && earliest > from && earliest < to) from = earliest;
    try {
      this.graph = await this.api.graph(from, to);
      this.graphError = null;
    } catch (error) {
      this.graphError = error instanceof ApiError && error.isNotFound ? "The server has no service graph." : describe(error);
    }
    this.scheduleRender();
  }

  /** The oldest bucket start held for any service's rate source (null: no data yet). */
  private earliestDataStart(): number | null {
    let earliest: number | null = null;
    for (const name of this.serviceNames()) {
      const source = requestSource(this.rawServiceBuckets(name));
      const first = source?.requests[0]?.start;
      if (first !== undefined && (earliest === null || first < earliest)) earliest = first;
    }
    return earliest;
  }

  private async refreshAlerts(): Promise<void> {
    try {
      const fresh = this.alerts.replaceActive(await this.api.alerts());
      for (const alert of fresh) this.toasts.alert(alert);
    } catch (error) {
      if (!(error instanceof ApiError && error.isNotFound)) console.warn("cannot load alerts:", error);
    }
    this.scheduleRender();
  }

  private async refreshAlertDetails(): Promise<void> {
    const now = this.nowSeconds();
    const [silences, rules, history] = await Promise.allSettled([
      this.api.silences(),
      this.api.alertRules(),
      this.api.alertHistory(),
    ]);
    if (silences.status === "fulfilled") this.alertsPage.setSilences(silences.value, now);
    if (rules.status === "fulfilled") this.alertsPage.setRules(rules.value);
    if (history.status === "fulfilled") {
      this.alertsPage.setHistory([...history.value].sort((a, b) => (b.changedAt ?? 0) - (a.changedAt ?? 0)), now);
    }
  }

  /** Coalesces the history reloads a burst of alert events would cause. */
  private refreshAlertDetailsSoon(): void {
    if (this.alertDetailsTimer !== null) return;
    this.alertDetailsTimer = setTimeout(() => {
      this.alertDetailsTimer = null;
      void this.refreshAlertDetails();
    }, 1000);
  }

  private async refreshRecentTraces(): Promise<void> {
    const service = this.selected;
    if (service === null) return;
    try {
      const list = await this.api.serviceTraces(service, RECENT_TRACES);
      if (service === this.selected) this.recentTraces = list;
    } catch {
      // Live trace events still fill the list.
    }
    this.scheduleRender();
  }

  private async acknowledge(alert: Alert): Promise<void> {
    await this.api.acknowledgeAlert(alert.fingerprint, ACTOR);
    this.alerts.markAcknowledged(alert.fingerprint, ACTOR);
    if (this.route.page === "alerts") this.refreshAlertDetailsSoon();
    this.scheduleRender();
  }

  private async silence(alert: Alert, seconds: number, comment: string): Promise<void> {
    const matchers = [{ name: "alertname", value: alert.rule }];
    if (alert.service !== null) matchers.push({ name: "service", value: alert.service });
    await this.api.createSilence({ matchers, durationSeconds: seconds, createdBy: ACTOR, comment });
    this.toasts.message(`Silenced ${alert.rule}${alert.service ? ` on ${alert.service}` : ""}.`);
    await this.refreshAlerts();
    if (this.route.page === "alerts") await this.refreshAlertDetails();
  }

  private async loadHistory(service: string): Promise<void> {
    const generation = ++this.historyGeneration;
    const window = timeWindow(this.time, this.nowSeconds());
    const live = isLiveTime(this.time, RETENTION_SECONDS);
    const failures: string[] = [];
    const fetched = new Map<string, Bucket[]>();
    await Promise.all(
      PAGE_METRICS.map(async (metric) => {
        try {
          const history = await this.api.metricHistory(service, metric, window);
          if (live) this.state.setHistory(history);
          else fetched.set(metric, history.buckets);
        } catch (error) {
          if (error instanceof ApiError && error.isNotFound) {
            if (live) this.state.clearHistory(service, metric);
          } else {
            failures.push(`${metric}: ${describe(error)}`);
          }
        }
      }),
    );
    // A slower, older load must not overwrite what a newer one says about the page.
    if (generation !== this.historyGeneration || service !== this.selected) return;
    if (!live) this.staticHistory = fetched;
    this.servicePage.setEmptyMessage("No data yet");
    this.servicePage.setNotice(
      failures.length === 0 ? null : `Could not load history (${failures.join("; ")}). Live updates continue.`,
    );
    this.scheduleRender();
  }

  /**
   * The overview's metrics for every service (a few requests at a time): the last hour into the
   * live state, or, for a range live updates cannot keep, the range's history on its own.
   */
  private async loadOverviewHistory(force = false): Promise<void> {
    const now = this.nowSeconds();
    if (!force && now - this.overviewLoadedAt < 5) return;
    this.overviewLoadedAt = now;
    if (!isLiveTime(this.time, RETENTION_SECONDS)) {
      await this.loadOverviewStatic();
      return;
    }
    const to = Math.floor(now / BUCKET_SECONDS) * BUCKET_SECONDS + BUCKET_SECONDS;
    const window = { from: to - OVERVIEW_SECONDS, to, resolution: RESOLUTION } as const;
    const jobs = this.serviceNames().flatMap((service) => OVERVIEW_METRICS.map((metric) => ({ service, metric })));
    const worker = async () => {
      for (let job = jobs.shift(); job !== undefined; job = jobs.shift()) {
        try {
          this.overviewLoaded.add(job.service);
          this.state.setHistory(await this.api.metricHistory(job.service, job.metric, window));
        } catch {
          // A service without this metric simply has no line.
        }
      }
    };
    await Promise.all(Array.from({ length: HISTORY_CONCURRENCY }, worker));
    this.scheduleRender();
  }

  private async loadOverviewStatic(): Promise<void> {
    const generation = ++this.overviewGeneration;
    const window = timeWindow(this.time, this.nowSeconds());
    const loaded = new Map<string, Map<string, Bucket[]>>();
    const jobs = this.serviceNames().flatMap((service) => OVERVIEW_METRICS.map((metric) => ({ service, metric })));
    const worker = async () => {
      for (let job = jobs.shift(); job !== undefined; job = jobs.shift()) {
        try {
          const history = await this.api.metricHistory(job.service, job.metric, window);
          const metrics = loaded.get(job.service) ?? new Map<string, Bucket[]>();
          metrics.set(job.metric, history.buckets);
          loaded.set(job.service, metrics);
        } catch {
          // A service without this metric simply has no line.
        }
      }
    };
    await Promise.all(Array.from({ length: HISTORY_CONCURRENCY }, worker));
    if (generation !== this.overviewGeneration) return;
    for (const name of this.serviceNames()) this.overviewLoaded.add(name);
    this.overviewStatic = loaded;
    this.scheduleRender();
  }

  private async refreshRecentLatency(): Promise<void> {
    const service = this.selected;
    if (service === null) return;
    const current = Math.floor(this.nowSeconds() / BUCKET_SECONDS) * BUCKET_SECONDS;
    const range = { from: current - BUCKET_SECONDS, to: current + BUCKET_SECONDS, resolution: RESOLUTION } as const;
    try {
      this.state.setHistory(await this.api.metricHistory(service, METRICS.latency, range));
    } catch {
      // The full reload reports errors; this refresh only sharpens quantiles.
    }
  }

  private async loadTrace(traceId: string): Promise<void> {
    await loadTraceInto(
      this.tracePage,
      traceId,
      (id) => this.api.trace(id),
      () => this.route.page === "trace" && this.route.traceId === traceId,
    );
  }

  // ---- routing ----------------------------------------------------------------------------------

  private closePanel(): void {
    if (this.route.page === "pipeline" && this.route.service !== null) {
      const id = this.route.service;
      window.location.assign(pipelineHref(null));
      requestAnimationFrame(() => this.pipeline.focusNode(id));
    }
  }

  /** A pick in the time picker or a drag on a chart: into the URL, which drives every view. */
  /** The store behind the API failed and an answer came from its recent answers: say so, at most
   * once a minute (the charts keep the data; it may be old). */
  private staleAnswer(path: string, ageSeconds: number | null): void {
    const now = this.deps.nowMs();
    if (now - this.staleNoticeMs < 60_000) return;
    this.staleNoticeMs = now;
    const age = ageSeconds === null ? "" : ` from ${Math.round(ageSeconds)} s ago`;
    this.toasts.message(`Warning: the store is unavailable; ${path} shows a cached answer${age}.`, "warning");
  }

  private pickTime(time: GlobalTime): void {
    const hash = hashWithTime(window.location.hash, time);
    if (hash !== window.location.hash) window.location.assign(hash);
  }

  /**
   * The URL's time range: a link without one keeps the range in use (the header's links carry
   * none), written back into the address so it can be shared; a new one reloads every view.
   */
  private syncTime(): void {
    const params = new URLSearchParams(splitHash(window.location.hash).query);
    if (!params.has("t") && !params.has("res")) {
      if (!sameTime(this.time, DEFAULT_TIME)) {
        window.history.replaceState(null, "", hashWithTime(window.location.hash, this.time));
      }
      this.timePicker.setTime(this.time);
      this.noteTime();
      return;
    }
    const time = parseTime(params);
    const changed = !sameTime(time, this.time);
    this.time = time;
    this.timePicker.setTime(time);
    this.noteTime();
    if (changed) this.onTimeChange();
  }

  private noteTime(): void {
    const live = isLiveTime(this.time, RETENTION_SECONDS);
    this.servicePage.setRangeNote(`${live ? "Live" : "Reloaded every minute"} · ${effectiveResolution(this.time)} buckets`);
  }

  private onTimeChange(): void {
    this.overviewStatic = new Map();
    this.overviewLoaded.clear();
    this.overviewLoadedAt = 0;
    this.staticHistory = new Map();
    this.servicePage.resetCharts();
    if (this.selected !== null) void this.loadHistory(this.selected);
    if (this.route.page === "overview") void this.loadOverviewHistory(true);
    if (this.route.page === "services") void this.loadScoreHistory();
    if (this.route.page === "profiles") this.profilesPage?.applyTime(this.time);
    if (this.route.page === "explore") this.explorePage?.applyTime();
    this.scheduleRender();
  }

  private onRoute(): void {
    const previous = this.route;
    this.route = parseRoute(window.location.hash);
    this.syncTime();
    const page = this.route.page;
    const service =
      this.route.page === "service" ? this.route.service : this.route.page === "pipeline" ? this.route.service : null;
    if (service !== this.selected) {
      this.selected = service;
      this.recentTraces = [];
      this.staticHistory = new Map();
      if (service !== null) {
        this.servicePage.show(service);
        void this.loadHistory(service);
        void this.refreshRecentTraces();
      }
    }
    const section: Section =
      page === "overview" ? "overview" : page === "pipeline" ? "pipeline" : page === "alerts" ? "alerts" : page === "services" ? "services" : page === "profiles" ? "profiles" : page === "explore" ? "explore" : null;
    this.header.setSection(section);
    this.pipeline.setVisible(page === "pipeline");
    if (page === "overview" && (previous.page !== "overview" || this.overviewLoaded.size === 0)) {
      void this.loadOverviewHistory();
    }
    if ((page === "pipeline" || page === "service") && (this.graph === null || previous.page !== page)) {
      void this.refreshGraph();
    }
    if (page === "alerts") void this.refreshAlertDetails();
    if (page === "services") void this.loadServiceRows().then(() => this.loadScoreHistory());
    if (this.route.page === "profiles") void this.showProfiles(this.route.query);
    else this.profilesPage?.hide();
    if (this.route.page === "explore") void this.showExplore(this.route.query);
    if (this.route.page === "trace" && (previous.page !== "trace" || previous.traceId !== this.route.traceId)) {
      void this.loadTrace(this.route.traceId);
    }
    this.showPage();
    this.scheduleRender();
  }

  private showPage(): void {
    let wanted: HTMLElement;
    switch (this.route.page) {
      case "overview":
        wanted = this.overviewPage.element;
        break;
      case "pipeline":
        wanted = this.pipelineLayout;
        this.panel.hidden = this.route.service === null;
        this.pipelineLayout.classList.toggle("has-panel", this.route.service !== null);
        if (this.route.service !== null && this.panel.firstChild !== this.servicePage.element) {
          this.panel.replaceChildren(this.servicePage.element);
        }
        this.servicePage.setPanelMode(true);
        break;
      case "service":
        wanted = this.servicePage.element;
        this.servicePage.setPanelMode(false);
        break;
      case "trace":
        wanted = this.tracePage.element;
        break;
      case "alerts":
        wanted = this.alertsPage.element;
        break;
      case "services":
        wanted = this.servicesPage.element;
        break;
      case "profiles":
        setText(this.placeholder, "Loading profiles…");
        wanted = this.profilesPage?.element ?? this.placeholder;
        break;
      case "explore":
        setText(this.placeholder, "Loading Explore…");
        wanted = this.explorePage?.element ?? this.placeholder;
        break;
      case "not_found":
        setText(this.placeholder, `Nothing at ${this.route.hash}. Pick a page above or a service from the list.`);
        wanted = this.placeholder;
        break;
    }
    if (this.main.firstChild !== wanted) this.main.replaceChildren(wanted);
  }

  private async showExplore(query: string): Promise<void> {
    try {
      this.exploreLoad ??= import("./explore/page").then(
        ({ ExplorePage }) =>
          new ExplorePage({
            api: this.api,
            window: () => {
              const window = timeWindow(this.time, this.nowSeconds());
              return { ...window, step: resolutionSeconds(window.resolution), extent: viewExtent(this.time, this.nowSeconds()) };
            },
          }),
      );
      this.explorePage = await this.exploreLoad;
    } catch (error) {
      this.exploreLoad = null;
      setText(this.placeholder, `Could not load the Explore page: ${describe(error)}`);
      return;
    }
    if (this.route.page !== "explore" || this.route.query !== query) return;
    this.explorePage.show(query);
    this.showPage();
  }

  private async showProfiles(query: string): Promise<void> {
    try {
      this.profilesLoad ??= this.loadProfilesPage();
      this.profilesPage = await this.profilesLoad;
    } catch (error) {
      this.profilesLoad = null;
      setText(this.placeholder, `Could not load the Profiles page: ${describe(error)}`);
      return;
    }
    if (this.route.page !== "profiles" || this.route.query !== query) return;
    this.profilesPage.show(query);
    // A link with a time range (`t=`) sets the page's range; a plain link keeps the page's own.
    if (new URLSearchParams(query).has("t")) this.profilesPage.applyTime(this.time);
    this.showPage();
  }

  private serviceNames(): string[] {
    const names = new Set<string>(this.lastSeen.keys());
    for (const name of this.state.servicesSeen().keys()) names.add(name);
    return [...names].sort((a, b) => a.localeCompare(b));
  }

  // ---- rendering --------------------------------------------------------------------------------

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
    // Readings are per render: drop those of services no longer listed.
    if (this.readings.size > 4 * Math.max(16, this.lastSeen.size)) this.readings.clear();
    const firing = this.alerts.firing();
    this.header.setAlertCount(firing.length, firing.filter((a) => a.severity === "critical").length);
    const names = this.serviceNames();
    this.serviceList.render(
      names.map((name) => {
        const { stats, fresh } = this.serviceNow(name, now);
        return {
          name,
          throughput: formatRate(stats.throughput, stats.rateKind === "spans" ? "req/s (spans)" : "req/s"),
          lastSeen: formatAge(this.lastSeen.get(name) ?? 0, now),
          stale: staleNote(fresh),
        };
      }),
      this.selected,
    );
    switch (this.route.page) {
      case "overview":
        this.renderOverview(names, now);
        break;
      case "pipeline":
        this.renderPipeline(now);
        if (this.selected !== null) this.renderDetails(this.selected, now);
        break;
      case "service":
        this.renderDetails(this.route.service, now);
        break;
      case "alerts":
        this.alertsPage.setActive(this.alerts.active(), now);
        break;
      case "services":
        this.servicesPage.render(this.serviceRows, now);
        break;
      case "trace":
      case "not_found":
        break;
    }
  }

  private renderOverview(names: readonly string[], now: number): void {
    const services = new Map(names.map((name) => [name, this.serviceBuckets(name, now)]));
    // Charts read the range's history when live updates cannot keep it; the cards stay "now".
    const live = isLiveTime(this.time, RETENTION_SECONDS);
    const step = resolutionSeconds(effectiveResolution(this.time));
    const charted = live
      ? services
      : new Map(
          names.map((name) => {
            const metrics = this.overviewStatic.get(name);
            const get = (metric: string) => metrics?.get(metric) ?? [];
            const data: ServiceBuckets = {
              ...this.rawServiceBuckets(name),
              latency: get(METRICS.latency),
              requests: get(METRICS.requests),
              errors: get(METRICS.errors),
            };
            return [name, data];
          }),
        );
    const active = this.alerts.active();
    const newest = names.reduce<number | null>((latest, name) => {
      const at = this.coverage.lastChange(rateKey(name));
      return at === null ? latest : Math.max(latest ?? at, at);
    }, null);
    const fresh = freshness(newest, now, this.connected);
    const stats = overviewStats(services, now, BUCKET_SECONDS, {
      active: active.filter((a) => a.state === "firing").length,
      critical: active.filter((a) => a.state === "firing" && a.severity === "critical").length,
    });
    const heatmap = latencyHeatmap(
      [...charted.values()].map((data) => ({
        buckets: data.latency,
        toMs: (v: number) => toMilliseconds(v, data.latencyUnit),
      })),
    );
    this.overviewPage.render(
      stats,
      overviewCharts(charted, now, live ? BUCKET_SECONDS : step),
      heatmap,
      viewExtent(this.time, now),
      step,
    );
    this.overviewPage.setFreshness(fresh.stale ? staleNote(fresh) : null);
    this.overviewPage.setAlerts(active, now);
  }

  /** Nodes: the graph's, with live numbers from RED metrics where a service has them. */
  private renderPipeline(now: number): void {
    const graph = this.graph;
    const severities = this.alerts.severitiesByService();
    const graphNodes = new Map((graph?.nodes ?? []).map((n) => [n.id, n]));
    // Services that report metrics but have no spans yet still appear (as "no data" islands).
    for (const name of this.serviceNames()) if (!graphNodes.has(name)) graphNodes.set(name, emptyNode(name));
    const nodes: PipelineNode[] = [...graphNodes.values()].map((node) => {
      // A service's numbers are the sidebar's and the cards' (one source per kind); a virtual node
      // (database, broker) has no telemetry of its own: the calls into it over the graph's window.
      const own = node.virtual ? null : this.serviceNow(node.id, now);
      const hasSource = own !== null && own.stats.rateKind !== null;
      const rate = hasSource ? own.stats.throughput : node.rate;
      const errorRatio = hasSource ? own.stats.errorRatio : node.errorRatio;
      const alertSeverities = severities.get(node.id) ?? [];
      return {
        id: node.id,
        name: node.name,
        kind: node.kind,
        virtual: node.virtual,
        rate,
        rateKind: hasSource ? (own.stats.rateKind ?? "calls") : "calls",
        errorRatio,
        p95Ms: hasSource ? own.stats.p95LatencyMs : node.p95Ms,
        avgMs: hasSource ? own.stats.avgLatencyMs : null,
        health: this.scores.has(node.id)
          ? healthFromScore(this.scores.get(node.id) ?? null)
          : nodeHealth({ count: rate ?? node.count, errorRatio, alertSeverities }),
        alerts: alertSeverities.length,
        stale: hasSource ? staleNote(own.fresh) : this.connected ? "" : "server unreachable",
        why: this.scores.has(node.id) ? scoreExplanation(this.scores.get(node.id) ?? null, now) : [],
      };
    });
    const edges: PipelineEdge[] = (graph?.edges ?? []).map((edge) => ({
      source: edge.source,
      target: edge.target,
      kind: edge.kind,
      rate: edge.rate,
      errorRatio: edge.errorRatio,
      p95Ms: edge.p95Ms,
      health: edgeHealth(edge.count, edge.errorRatio),
    }));
    this.pipeline.render(nodes, edges, this.selected);
    const caption =
      this.graphError !== null
        ? `Could not load the graph: ${this.graphError}`
        : graph === null
          ? "Loading the service graph…"
          : `${nodes.length} nodes, ${edges.length} edges · calls over the last ${windowText(graph.to - graph.from)}`;
    this.pipeline.setCaption(caption);
  }

  /**
   * A service's current RED numbers from the live `red.*` metrics (derived from its spans, like the
   * graph's), or null when it has none.
   */
  private liveRed(service: string, now: number): { rate: number | null; errorRatio: number | null; p95Ms: number | null } | null {
    const requests = this.state.buckets(service, RED_METRICS.requests);
    if (requests.length === 0) return null;
    const rate = currentRate(requests, now, BUCKET_SECONDS);
    const errors = currentRate(this.state.buckets(service, RED_METRICS.errors), now, BUCKET_SECONDS);
    const duration = this.state.buckets(service, RED_METRICS.duration);
    const latest = duration.at(-1);
    const unit = this.state.info(service, RED_METRICS.duration)?.unit ?? "ms";
    const stale = latest === undefined || latest.start + 3 * BUCKET_SECONDS < now;
    return {
      rate,
      errorRatio: rate !== null && rate > 0 ? Math.min(1, (errors ?? 0) / rate) : null,
      p95Ms: stale || latest.p95 === null ? null : toMilliseconds(latest.p95, unit),
    };
  }

  private renderDetails(service: string, now: number): void {
    const live = this.serviceBuckets(service, now);
    const { stats, fresh } = this.serviceNow(service, now);
    this.servicePage.element.dataset.stale = String(fresh.stale);
    this.servicePage.element.title = staleNote(fresh);
    const chartData = isLiveTime(this.time, RETENTION_SECONDS) ? live : this.staticBuckets(service);
    const step = resolutionSeconds(effectiveResolution(this.time));
    this.servicePage.render(stats, serviceCharts(chartData, now, step), viewExtent(this.time, now));
    const node: GraphNode | null = this.graph?.nodes.find((n) => n.id === service) ?? null;
    const severities = this.alerts.severitiesByService().get(service) ?? [];
    const red = this.liveRed(service, now);
    this.servicePage.setRed(
      node,
      nodeHealth({
        count: red?.rate ?? node?.count ?? stats.throughput,
        errorRatio: red?.errorRatio ?? node?.errorRatio ?? stats.errorRatio,
        alertSeverities: severities,
      }),
    );
    this.servicePage.setAlerts(this.alerts.forService(service), now);
    // The traces list shows the traces that started inside the global range.
    const extent = viewExtent(this.time, now);
    const inRange = (row: { startMs: number | null }) =>
      row.startMs === null || (row.startMs >= extent.from * 1000 && row.startMs <= extent.to * 1000 + BUCKET_SECONDS * 1000);
    this.servicePage.setTraces(
      traceRows(this.recentTraces, this.traces.involving(service, RECENT_TRACES), RECENT_TRACES).filter(inRange),
    );
  }

  /** A service's current numbers (the one reading every view shows) and whether they are fresh. */
  private serviceNow(service: string, now: number): { stats: ServiceStats; fresh: Freshness; data: ServiceBuckets } {
    const cached = this.readings.get(service);
    if (cached !== undefined && cached.now === now) return cached;
    const data = this.serviceBuckets(service, now);
    // CPU and memory only show on the open service's page.
    const stats = serviceStats(data, now, BUCKET_SECONDS, service === this.selected);
    const fresh = freshness(this.coverage.lastChange(rateKey(service)), now, this.connected);
    const reading = { now, stats, fresh, data };
    this.readings.set(service, reading);
    return reading;
  }

  private serviceBuckets(service: string, now = this.nowSeconds()): ServiceBuckets {
    const cached = this.readings.get(service);
    if (cached !== undefined && cached.now === now) return cached.data;
    const data = this.rawServiceBuckets(service);
    const source = requestSource(data);
    data.coverage = this.coverage.observe(rateKey(service), source?.requests ?? [], now, BUCKET_SECONDS);
    return data;
  }

  private rawServiceBuckets(service: string): ServiceBuckets {
    const buckets = (metric: string) => this.state.buckets(service, metric);
    const unit = (metric: string) => this.state.info(service, metric)?.unit ?? "";
    // Merging live series costs: what only some views read is merged when first read.
    const cpu = lazy(() => buckets(METRICS.cpu));
    const memory = lazy(() => buckets(METRICS.memory));
    const red = lazy(() => ({
      requests: buckets(RED_METRICS.requests),
      errors: buckets(RED_METRICS.errors),
      duration: buckets(RED_METRICS.duration),
      durationUnit: this.state.info(service, RED_METRICS.duration)?.unit ?? "ms",
    }));
    return {
      latency: buckets(METRICS.latency),
      latencyUnit: unit(METRICS.latency),
      requests: buckets(METRICS.requests),
      errors: buckets(METRICS.errors),
      hasErrorsMetric: this.state.info(service, METRICS.errors) !== null,
      get cpu() {
        return cpu();
      },
      cpuUnit: unit(METRICS.cpu),
      get memory() {
        return memory();
      },
      memoryUnit: unit(METRICS.memory),
      get red() {
        return red();
      },
    };
  }

  private staticBuckets(service: string): ServiceBuckets {
    const live = this.rawServiceBuckets(service);
    const get = (metric: string) => this.staticHistory.get(metric) ?? [];
    return {
      ...live,
      latency: get(METRICS.latency),
      requests: get(METRICS.requests),
      errors: get(METRICS.errors),
      cpu: get(METRICS.cpu),
      memory: get(METRICS.memory),
    };
  }
}

/** A value made on first use, then kept. */
function lazy<T>(make: () => T): () => T {
  let made: { value: T } | null = null;
  return () => (made ??= { value: make() }).value;
}

/** "5 minutes", "1 minute", "40 s": how long the graph's numbers are averaged over. */
function windowText(seconds: number): string {
  if (seconds < 90) return `${Math.max(1, Math.round(seconds))} s`;
  const minutes = Math.round(seconds / 60);
  return `${minutes} minute${minutes === 1 ? "" : "s"}`;
}

/** The coverage tracker's key for a service's rate source. */
function rateKey(service: string): string {
  return `rate\u0000${service}`;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
