// The Profiles page (`#/profiles?service=S&type=cpu&…`): a service's merged flame graph over a
// range, a timeline of per-minute totals with range selection and playback (the flame graph follows
// the current minute), the diff against the previous period coloured by growth, the top functions
// with a sandwich view, and snapshots: downloaded from the server, opened from a file without it.
// Loaded on demand (its own chunk), so pages that do not show profiles do not pay for it.

import type { Credential } from "../auth";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import "./profiles.css";
import { cssColor } from "../theme";
import { el } from "../views/dom";
import { ProfilesClient } from "./api";
import { FlameCanvas } from "./flame-canvas";
import {
  formatSampleValue,
  percent,
  sandwich,
  sortFunctions,
  topFunctions,
  type FlameTree,
  type FunctionRow,
  type SortKey,
} from "./flame";
import {
  baseWindow,
  DEFAULT_STATE,
  formatState,
  openSnapshotFile,
  parseState,
  playbackDelayMs,
  PROFILE_RANGES,
  queryWindow,
  SPEEDS,
  stepMinute,
  toMs,
  type ProfileState,
  type SnapshotData,
  stateForTime,
} from "./model";
import type { GlobalTime } from "../state/time-range";

const REFRESH_MS = 30_000;
const TOP_ROWS = 50;
/** Closed minutes' trees kept for playback (a tree of 8192 frames is under 1 MB). */
const CACHED_TREES = 30;

interface Loaded {
  tree: FlameTree | null;
  unit: string;
}

export class ProfilesPage {
  readonly element: HTMLElement;
  private state: ProfileState = { ...DEFAULT_STATE };
  private readonly serviceSelect: HTMLSelectElement;
  private readonly typeSelect: HTMLSelectElement;
  private readonly rangeSelect: HTMLSelectElement;
  private readonly diffToggle: HTMLInputElement;
  private readonly searchInput: HTMLInputElement;
  private readonly labelsInput: HTMLInputElement;
  private readonly status: HTMLElement;
  private readonly snapshotBanner: HTMLElement;
  private readonly timelineHost: HTMLElement;
  private readonly timelineCaption: HTMLElement;
  private readonly playButton: HTMLButtonElement;
  private readonly speedSelect: HTMLSelectElement;
  private readonly minuteLabel: HTMLElement;
  private readonly flame: FlameCanvas;
  private readonly callers: FlameCanvas;
  private readonly callees: FlameCanvas;
  private readonly sandwichSection: HTMLElement;
  private readonly topBody: HTMLTableSectionElement;
  private readonly fileInput: HTMLInputElement;
  private readonly liveOnly: HTMLElement[] = [];
  private plot: uPlot | null = null;
  private minutes: number[] = [];
  private totals: number[] = [];
  private unit = "";
  /** The timeline's x extent (unix s): the queried range, or the snapshot's. */
  private timelineWindow = { from: 0, to: 60 };
  private tree: FlameTree | null = null;
  private rows: FunctionRow[] = [];
  private sort: { key: SortKey; direction: "asc" | "desc" } = { key: "self", direction: "desc" };
  private services: { service: string; types: string[] }[] = [];
  private snapshot: SnapshotData | null = null;
  private playing = false;
  private speed = 1;
  private playTimer: ReturnType<typeof setTimeout> | null = null;
  private refreshTimer: ReturnType<typeof setInterval> | null = null;
  private generation = 0;
  private readonly minuteCache = new Map<string, Promise<Loaded>>();
  private visible = false;
  private liveReloadQueued = false;

  constructor(
    private readonly client: ProfilesClient,
    private readonly nowMs: () => number,
  ) {
    this.serviceSelect = el("select", { "data-testid": "profile-service", "aria-label": "Service" });
    this.typeSelect = el("select", { "data-testid": "profile-type", "aria-label": "Profile type" });
    this.rangeSelect = el(
      "select",
      { "data-testid": "profile-range", "aria-label": "Range" },
      PROFILE_RANGES.map((r) => el("option", { value: r.name }, [r.label])),
    );
    this.diffToggle = el("input", { type: "checkbox", "data-testid": "profile-diff" });
    this.searchInput = el("input", {
      type: "search",
      class: "flame-search",
      placeholder: "Search functions",
      "aria-label": "Search functions",
      "data-testid": "profile-search",
    });
    this.labelsInput = el("input", {
      type: "text",
      class: "flame-search labels-input",
      placeholder: "Labels: k=v,k2=v2",
      "aria-label": "Label filter (k=v,k2=v2; Enter applies)",
      "data-testid": "profile-labels",
    });
    this.status = el("p", { class: "notice", role: "status", "data-testid": "profile-status", hidden: true });
    this.snapshotBanner = el("div", { class: "snapshot-banner", "data-testid": "snapshot-banner", hidden: true });
    this.fileInput = el("input", { type: "file", accept: ".gz,.json,application/gzip,application/json", "data-testid": "snapshot-file", class: "visually-hidden", "aria-label": "Snapshot file", tabindex: -1 });
    const button = (label: string, testId: string, onClick: () => void, extra: Record<string, string> = {}) => {
      const b = el("button", { type: "button", class: "button", "data-testid": testId, ...extra }, [label]);
      b.addEventListener("click", onClick);
      return b;
    };
    const downloadSnapshot = button("Download snapshot", "snapshot-download", () => void this.download("snapshot"));
    const downloadPprof = button("Download pprof", "pprof-download", () => void this.download("pprof"));
    const openSnapshot = button("Open snapshot…", "snapshot-open", () => this.fileInput.click());
    this.liveOnly.push(this.serviceSelect, this.typeSelect, this.rangeSelect, this.labelsInput, this.diffToggle, downloadSnapshot, downloadPprof);

    this.flame = new FlameCanvas({ label: "Flame graph", testId: "flamegraph", onZoom: () => {} });
    this.callers = new FlameCanvas({ label: "Callers of the selected function", testId: "sandwich-callers" });
    this.callees = new FlameCanvas({ label: "Callees of the selected function", testId: "sandwich-callees" });
    this.timelineHost = el("div", { class: "profile-timeline-plot", "data-testid": "profile-timeline", "data-points": 0 });
    this.timelineCaption = el("p", { class: "flame-caption" }, ["Drag across the timeline to select a range."]);
    this.playButton = button("▶ Play", "playback-play", () => this.togglePlay(), { "aria-pressed": "false" });
    this.speedSelect = el(
      "select",
      { "aria-label": "Playback speed", "data-testid": "playback-speed" },
      SPEEDS.map((s) => el("option", { value: String(s), selected: s === 1 }, [`${s}×`])),
    );
    this.minuteLabel = el("span", { class: "playback-minute", "data-testid": "playback-minute" }, ["All minutes"]);
    const playback = el("div", { class: "playback", role: "group", "aria-label": "Playback" }, [
      button("‹ Step back", "playback-back", () => void this.step(-1)),
      this.playButton,
      button("Step ›", "playback-step", () => void this.step(1)),
      el("label", {}, ["Speed ", this.speedSelect]),
      button("Whole range", "playback-stop", () => this.stopPlayback()),
      button("Clear selection", "selection-clear", () => this.update({ selection: null, minute: null })),
      this.minuteLabel,
    ]);
    this.liveOnly.push(...Array.from(playback.querySelectorAll("button")), this.speedSelect);

    this.topBody = el("tbody", { "data-testid": "top-functions-rows" });
    const header = (key: SortKey, label: string, numeric: boolean) => {
      const th = el("th", { scope: "col", class: numeric ? "numeric" : "", "aria-sort": "none", "data-sort": key }, []);
      const b = el("button", { type: "button", class: "sort-button" }, [label]);
      b.addEventListener("click", () => {
        const direction = this.sort.key === key && this.sort.direction === "desc" ? "asc" : "desc";
        this.sort = { key, direction };
        this.renderTop();
      });
      th.append(b);
      return th;
    };
    const topTable = el("table", { class: "rule-table top-table", "data-testid": "top-functions" }, [
      el("thead", {}, [el("tr", {}, [header("name", "Function", false), header("self", "Self", true), header("total", "Total", true)])]),
      this.topBody,
    ]);
    this.sandwichSection = el("section", { class: "panel-section sandwich", "data-testid": "sandwich", hidden: true }, [
      el("h2", { class: "section-title" }, ["Sandwich"]),
      el("h3", { class: "sandwich-title" }, ["Callers (the function at the top, who calls it below)"]),
      this.callers.element,
      el("h3", { class: "sandwich-title" }, ["Callees"]),
      this.callees.element,
    ]);

    this.element = el("section", { class: "profiles-page", "data-testid": "profiles-page" }, [
      el("h1", { class: "page-title" }, ["Profiles"]),
      el("div", { class: "profile-toolbar" }, [
        el("label", {}, ["Service ", this.serviceSelect]),
        el("label", {}, ["Type ", this.typeSelect]),
        el("label", {}, ["Range ", this.rangeSelect]),
        this.labelsInput,
        el("label", { title: "Compare with the period of the same length just before" }, [this.diffToggle, " Diff vs previous period"]),
        downloadSnapshot,
        downloadPprof,
        openSnapshot,
        this.fileInput,
      ]),
      this.snapshotBanner,
      this.status,
      el("section", { class: "panel-section", "aria-label": "Timeline" }, [this.timelineHost, this.timelineCaption, playback]),
      el("div", { class: "profile-toolbar" }, [this.searchInput, button("Reset zoom", "flame-reset", () => this.flame.reset())]),
      this.flame.element,
      el("section", { class: "panel-section", "aria-labelledby": "top-functions-heading" }, [
        el("h2", { class: "section-title", id: "top-functions-heading" }, ["Top functions"]),
        el("p", { class: "flame-caption" }, ["Click a function for its sandwich view (callers and callees)."]),
        el("div", { class: "table-scroll" }, [topTable]),
      ]),
      this.sandwichSection,
    ]);

    this.serviceSelect.addEventListener("change", () =>
      this.update({ service: this.serviceSelect.value, type: null, selection: null, minute: null, focus: null }),
    );
    this.typeSelect.addEventListener("change", () => this.update({ type: this.typeSelect.value, minute: null }));
    this.rangeSelect.addEventListener("change", () =>
      this.update({ range: this.rangeSelect.value as ProfileState["range"], selection: null, minute: null }),
    );
    this.diffToggle.addEventListener("change", () => this.update({ diff: this.diffToggle.checked, minute: null }));
    this.labelsInput.addEventListener("change", () => this.update({ labels: this.labelsInput.value.trim(), minute: null }));
    this.searchInput.addEventListener("input", () => {
      this.state.search = this.searchInput.value;
      this.flame.setSearch(this.state.search);
      this.writeUrl();
    });
    this.speedSelect.addEventListener("change", () => (this.speed = Number(this.speedSelect.value) || 1));
    this.fileInput.addEventListener("change", () => {
      const file = this.fileInput.files?.[0];
      if (file !== undefined) void this.openFile(file);
      this.fileInput.value = "";
    });
    new ResizeObserver(() => this.fitTimeline()).observe(this.timelineHost);
  }

  /** The page is shown with this URL query (also on back/forward and pasted links). */
  show(fullQuery: string): void {
    this.visible = true;
    // The global time range's keys are the app's (it calls `applyTime`).
    const own = new URLSearchParams(fullQuery);
    own.delete("t");
    own.delete("res");
    const query = own.toString();
    // The bare `#/profiles` (the header's link) comes back to the view left, not to the defaults.
    const next = query === "" && this.state.service !== null ? this.state : parseState(query);
    if (this.snapshot !== null && formatState(next) === formatState(this.state)) return;
    this.snapshot = null;
    this.state = next;
    this.searchInput.value = next.search;
    this.labelsInput.value = next.labels;
    this.flame.setSearch(next.search);
    this.refreshTimer ??= setInterval(() => {
      if (this.visible && this.snapshot === null && this.state.selection === null && !this.playing && !document.hidden) {
        void this.load(false);
      }
    }, REFRESH_MS);
    void this.load(true);
  }

  /** The global time range changed (or a link named one): follow it. */
  applyTime(time: GlobalTime): void {
    if (this.snapshot !== null) return;
    const next = stateForTime(this.state, time, this.nowMs() / 1000);
    if (formatState(next) === formatState(this.state)) return;
    this.update(next);
  }

  /** A live `profile` event: the shown service/type got samples; reload unless looking elsewhere. */
  onProfileEvent(service: string, type: string): void {
    if (!this.visible || this.snapshot !== null || this.playing || this.state.selection !== null) return;
    if (service !== this.state.service || type !== this.state.type || this.state.minute !== null) return;
    if (this.liveReloadQueued) return;
    // Events come once per service/type/minute; several at once reload once.
    this.liveReloadQueued = true;
    setTimeout(() => {
      this.liveReloadQueued = false;
      void this.load(false);
    }, 500);
  }

  hide(): void {
    this.visible = false;
    this.pause();
    if (this.refreshTimer !== null) clearInterval(this.refreshTimer);
    this.refreshTimer = null;
  }

  /** Changes the state, writes it to the URL (without a history entry) and reloads. */
  private update(change: Partial<ProfileState>): void {
    if (this.snapshot !== null) return;
    this.pause();
    this.state = { ...this.state, ...change };
    this.writeUrl();
    void this.load(false);
  }

  private writeUrl(): void {
    // The global time range's keys (`t`, `res`) stay in the URL beside the page's own.
    const params = new URLSearchParams(formatState(this.state));
    const current = new URLSearchParams(window.location.hash.replace(/^[^?]*\??/, ""));
    for (const key of ["t", "res"]) {
      const value = current.get(key);
      if (value !== null) params.set(key, value);
    }
    const query = params.toString();
    const hash = `#/profiles${query === "" ? "" : `?${query}`}`;
    if (window.location.hash !== hash) window.history.replaceState(null, "", hash);
  }

  private setStatus(text: string | null): void {
    this.status.hidden = text === null;
    this.status.textContent = text ?? "";
  }

  private window(): { from: number; to: number } {
    return queryWindow(this.state, this.nowMs() / 1000);
  }

  /** Services, types, timeline, then the flame graph for the state (stale answers are dropped). */
  private async load(refreshServices: boolean): Promise<void> {
    const generation = ++this.generation;
    try {
      if (refreshServices || this.services.length === 0) this.services = await this.client.services();
      if (generation !== this.generation) return;
      if (this.services.length === 0) {
        this.fillSelects();
        this.setStatus("No profiles yet. Push pprof or folded stacks to /ingest on the OTLP port (Pyroscope push API).");
        this.setTree(null, "");
        return;
      }
      const service = this.services.find((s) => s.service === this.state.service) ?? this.services[0];
      if (service === undefined) return;
      this.state.service = service.service;
      if (this.state.type === null || !service.types.includes(this.state.type)) {
        this.state.type = service.types.includes("cpu") ? "cpu" : (service.types[0] ?? null);
      }
      this.fillSelects();
      this.writeUrl();
      const type = this.state.type;
      if (type === null) return;
      const q = { service: service.service, type, labels: this.state.labels };
      const w = this.window();
      const timelineWindow = this.state.selection === null ? w : this.rangeAround(w);
      const timeline = await this.client.timeline(q, timelineWindow);
      if (generation !== this.generation) return;
      this.unit = timeline.unit;
      const points = timeline.points.map((p) => ({ t: Math.floor(toMs(p.t) / 1000), total: p.total })).sort((a, b) => a.t - b.t);
      this.minutes = points.map((p) => p.t);
      this.totals = points.map((p) => p.total);
      this.timelineWindow = timelineWindow;
      this.drawTimeline();
      this.setStatus(null);
      await this.loadFlame(generation);
    } catch (error) {
      if (generation === this.generation) this.setStatus(`Could not load profiles: ${describe(error)}`);
    }
  }

  /** The timeline shows the whole range even when a part of it is selected. */
  private rangeAround(selection: { from: number; to: number }): { from: number; to: number } {
    const whole = queryWindow({ ...this.state, selection: null }, this.nowMs() / 1000);
    return { from: Math.min(whole.from, selection.from), to: Math.max(whole.to, selection.to) };
  }

  /** The flame graph for the current minute (playback), or the selection/range (merged or diff). */
  private async loadFlame(generation = this.generation): Promise<void> {
    const { service, type } = this.state;
    if (service === null || type === null) return;
    const q = { service, type, labels: this.state.labels };
    const minute = this.state.minute;
    const w = minute !== null ? { from: minute, to: minute + 60 } : this.window();
    this.minuteLabel.textContent =
      minute !== null ? `Minute ${clock(minute)}` : this.state.selection !== null ? `Selection ${clock(w.from)}–${clock(w.to)}` : "All minutes";
    const key = `${service}|${type}|${this.state.labels}|${this.state.diff ? "diff" : "flame"}|${w.from}|${w.to}`;
    let loading = this.minuteCache.get(key);
    if (loading === undefined) {
      loading = this.state.diff ? this.client.diff(q, w, baseWindow(w)) : this.client.flamegraph(q, w);
      // Closed minutes do not change; the open one and ranges reaching now are fetched again.
      if (w.to * 1000 < this.nowMs() - 120_000) {
        this.minuteCache.set(key, loading);
        if (this.minuteCache.size > CACHED_TREES) this.minuteCache.delete(this.minuteCache.keys().next().value ?? "");
      }
      loading.catch(() => this.minuteCache.delete(key));
    }
    const loaded = await loading;
    if (generation !== this.generation) return;
    this.setTree(loaded.tree, loaded.unit);
    this.plot?.redraw(false);
    // What is drawn, for tests and anyone inspecting the page.
    this.element.dataset.shown = `${minute !== null ? "minute" : "range"}:${w.from}-${w.to}${this.state.diff ? ":diff" : ""}`;
  }

  private setTree(tree: FlameTree | null, unit: string): void {
    this.tree = tree !== null && tree.total + tree.baseTotal > 0 ? tree : null;
    this.unit = unit || this.unit;
    this.flame.setTree(this.tree, this.unit, this.flame.zoomPath);
    this.rows = this.tree === null ? [] : topFunctions(this.tree);
    this.renderTop();
    this.renderSandwich();
  }

  private fillSelects(): void {
    const options = (select: HTMLSelectElement, values: string[], current: string | null) => {
      const same = select.options.length === values.length && values.every((v, i) => select.options[i]?.value === v);
      if (!same) select.replaceChildren(...values.map((v) => el("option", { value: v }, [v])));
      if (current !== null) select.value = current;
    };
    options(this.serviceSelect, this.services.map((s) => s.service), this.state.service);
    options(this.typeSelect, this.services.find((s) => s.service === this.state.service)?.types ?? [], this.state.type);
    this.rangeSelect.value = this.state.range;
    this.diffToggle.checked = this.state.diff;
  }

  // ---- top functions and sandwich -------------------------------------------------------------

  private renderTop(): void {
    const tree = this.tree;
    const total = tree?.total ?? 0;
    const fmt = (v: number) => formatSampleValue(v, this.unit);
    const rows = sortFunctions(this.rows, this.sort.key, this.sort.direction).slice(0, TOP_ROWS);
    this.topBody.replaceChildren(
      ...rows.map((row) => {
        const name = el("button", { type: "button", class: "link-button", title: "Show callers and callees" }, [row.name]);
        name.addEventListener("click", () => {
          this.state.focus = this.state.focus === row.name ? null : row.name;
          this.writeUrl();
          this.renderSandwich();
        });
        return el("tr", { "data-function": row.name, class: row.name === this.state.focus ? "selected" : "" }, [
          el("td", {}, [name]),
          el("td", { class: "numeric" }, [`${fmt(row.self)} (${percent(row.self, total)})`]),
          el("td", { class: "numeric" }, [`${fmt(row.total)} (${percent(row.total, total)})`]),
        ]);
      }),
    );
    for (const th of this.element.querySelectorAll<HTMLElement>(".top-table th")) {
      const key = th.dataset.sort;
      th.setAttribute("aria-sort", key === this.sort.key ? (this.sort.direction === "asc" ? "ascending" : "descending") : "none");
    }
  }

  private renderSandwich(): void {
    const focus = this.state.focus;
    const tree = this.tree;
    if (focus === null || tree === null || tree.diff || !tree.names.includes(focus)) {
      this.sandwichSection.hidden = true;
      return;
    }
    const { callers, callees } = sandwich(tree, focus);
    this.sandwichSection.hidden = false;
    this.callers.setTree(callers, this.unit);
    this.callees.setTree(callees, this.unit);
    for (const tr of this.topBody.querySelectorAll<HTMLElement>("tr")) tr.classList.toggle("selected", tr.dataset.function === focus);
  }

  // ---- timeline and playback ------------------------------------------------------------------

  private drawTimeline(): void {
    this.timelineHost.dataset.points = String(this.minutes.length);
    const data: uPlot.AlignedData = [this.minutes.map((m) => m + 30), this.totals];
    if (this.plot !== null) {
      this.plot.setData(data);
      requestAnimationFrame(() => this.syncSelectionBox());
      return;
    }
    const fmt = (v: number) => formatSampleValue(v, this.unit);
    this.plot = new uPlot(
      {
        width: Math.max(200, this.timelineHost.clientWidth),
        height: 120,
        legend: { show: false },
        cursor: { drag: { x: true, y: false, setScale: false } },
        select: { show: true, left: 0, top: 0, width: 0, height: 0 },
        scales: {
          x: { time: true, range: () => [this.timelineWindow.from, this.timelineWindow.to] },
          y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
        },
        axes: [
          { stroke: () => cssColor("--text-muted", "#9da7b3"), grid: { stroke: () => cssColor("--grid", "rgba(157,167,179,0.15)") }, space: 70, values: (_u, vals) => vals.map((v) => clock(v)) },
          { stroke: () => cssColor("--text-muted", "#9da7b3"), grid: { stroke: () => cssColor("--grid", "rgba(157,167,179,0.15)") }, size: 60, values: (_u, vals) => vals.map(fmt) },
        ],
        series: [
          {},
          { label: "total", stroke: "#e0703a", fill: "rgba(224,112,58,0.25)", paths: uPlot.paths.bars?.({ size: [0.9, 40] }) },
        ],
        hooks: {
          setSelect: [(u) => this.onSelect(u)],
          draw: [(u) => this.drawMinuteMarker(u)],
          // uPlot lays out after creation: the selection box (e.g. from the URL) is placed then.
          ready: [() => requestAnimationFrame(() => this.syncSelectionBox())],
        },
      },
      data,
      this.timelineHost,
    );
  }

  private fitTimeline(): void {
    if (this.plot !== null) this.plot.setSize({ width: Math.max(200, this.timelineHost.clientWidth), height: 120 });
  }

  private onSelect(u: uPlot): void {
    if (u.select.width < 2) return;
    const from = Math.floor(u.posToVal(u.select.left, "x") / 60) * 60;
    const to = Math.ceil(u.posToVal(u.select.left + u.select.width, "x") / 60) * 60;
    if (to > from) this.update({ selection: { from, to }, minute: null });
  }

  /** Shows the selection (e.g. from the URL) as uPlot's selection box. */
  private syncSelectionBox(): void {
    const u = this.plot;
    if (u === null) return;
    const s = this.state.selection;
    if (s === null) {
      u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
      return;
    }
    const left = u.valToPos(s.from, "x");
    const right = u.valToPos(s.to, "x");
    u.setSelect({ left, top: 0, width: Math.max(0, right - left), height: u.bbox.height / (window.devicePixelRatio || 1) }, false);
  }

  private drawMinuteMarker(u: uPlot): void {
    const minute = this.state.minute;
    if (minute === null) return;
    const left = u.valToPos(minute, "x", true);
    const right = u.valToPos(minute + 60, "x", true);
    const ctx = u.ctx;
    ctx.save();
    ctx.fillStyle = "rgba(90, 140, 255, 0.35)";
    ctx.fillRect(left, u.bbox.top, Math.max(2, right - left), u.bbox.height);
    ctx.restore();
  }

  /** Playback walks the minutes of the selection (or the whole range). */
  private playableMinutes(): number[] {
    const s = this.state.selection;
    return s === null ? this.minutes : this.minutes.filter((m) => m >= s.from && m < s.to);
  }

  private async step(delta: number): Promise<boolean> {
    if (this.snapshot !== null) return false;
    const next = stepMinute(this.playableMinutes(), this.state.minute, delta);
    if (next === null) return false;
    this.state.minute = next;
    this.writeUrl();
    this.plot?.redraw(false);
    try {
      await this.loadFlame();
      return true;
    } catch (error) {
      this.setStatus(`Could not load minute ${clock(next)}: ${describe(error)}`);
      return false;
    }
  }

  private togglePlay(): void {
    if (this.playing) {
      this.pause();
      return;
    }
    const minutes = this.playableMinutes();
    // At the end (or not started): start again from the first minute.
    if (this.state.minute === null || this.state.minute === minutes.at(-1)) this.state.minute = null;
    this.playing = true;
    this.playButton.textContent = "⏸ Pause";
    this.playButton.setAttribute("aria-pressed", "true");
    const tick = async () => {
      if (!this.playing) return;
      const moved = await this.step(1);
      if (!moved || !this.playing) {
        this.pause();
        return;
      }
      this.playTimer = setTimeout(() => void tick(), playbackDelayMs(this.speed));
    };
    void tick();
  }

  private pause(): void {
    this.playing = false;
    if (this.playTimer !== null) clearTimeout(this.playTimer);
    this.playTimer = null;
    this.playButton.textContent = "▶ Play";
    this.playButton.setAttribute("aria-pressed", "false");
  }

  private stopPlayback(): void {
    this.pause();
    if (this.state.minute === null) return;
    this.update({ minute: null });
  }

  // ---- snapshots --------------------------------------------------------------------------------

  private async download(kind: "snapshot" | "pprof"): Promise<void> {
    const { service, type } = this.state;
    if (service === null || type === null) return;
    const minute = this.state.minute;
    const w = minute !== null ? { from: minute, to: minute + 60 } : this.window();
    try {
      const { blob, filename } = await this.client.download(kind, { service, type, labels: this.state.labels }, w);
      const url = URL.createObjectURL(blob);
      const a = el("a", { href: url, download: filename, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (error) {
      this.setStatus(`Could not download the ${kind}: ${describe(error)}`);
    }
  }

  /** Opens a snapshot file: gunzip in the browser, validate, render; no server involved. */
  async openFile(file: File): Promise<void> {
    try {
      const { snapshot, tree } = await openSnapshotFile(file);
      this.pause();
      this.generation += 1;
      this.snapshot = snapshot;
      this.state = { ...this.state, minute: null, diff: false, selection: null };
      for (const control of this.liveOnly) (control as HTMLButtonElement).disabled = true;
      this.snapshotBanner.hidden = false;
      const back = el("button", { type: "button", class: "button", "data-testid": "snapshot-close" }, ["Back to live data"]);
      back.addEventListener("click", () => this.closeSnapshot());
      this.snapshotBanner.replaceChildren(
        `Snapshot ${file.name}: ${snapshot.service} · ${snapshot.type} · ${clock(toSeconds(snapshot.from))}–${clock(toSeconds(snapshot.to))} (opened from the file, not the server) `,
        back,
      );
      this.snapshotBanner.dataset.service = snapshot.service;
      this.unit = snapshot.unit;
      const points = snapshot.timeline.map((p) => ({ t: Math.floor(toMs(p.t) / 1000), total: p.total })).sort((a, b) => a.t - b.t);
      this.minutes = points.map((p) => p.t);
      this.totals = points.map((p) => p.total);
      this.minuteLabel.textContent = "Snapshot";
      this.timelineWindow = { from: toSeconds(snapshot.from), to: toSeconds(snapshot.to) };
      this.setStatus(null);
      this.drawTimeline();
      this.setTree(tree, snapshot.unit);
      this.element.dataset.shown = `snapshot:${snapshot.service}`;
    } catch (error) {
      this.setStatus(`Could not open ${file.name}: ${describe(error)}`);
    }
  }

  private closeSnapshot(): void {
    this.snapshot = null;
    this.snapshotBanner.hidden = true;
    for (const control of this.liveOnly) (control as HTMLButtonElement).disabled = false;
    void this.load(true);
  }
}

/** What the app calls after loading this chunk. */
export function createProfilesPage(
  apiBaseUrl: string,
  fetchFn: typeof fetch,
  credential: { token: Credential; onUnauthorized: (reason: string) => void },
  nowMs: () => number,
): ProfilesPage {
  return new ProfilesPage(new ProfilesClient(apiBaseUrl, fetchFn, credential.token, credential.onUnauthorized), nowMs);
}

function toSeconds(t: number): number {
  return Math.floor(toMs(t) / 1000);
}

function clock(seconds: number): string {
  const d = new Date(seconds * 1000);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
