// The global time-range picker under the header: relative ranges (5 min … 7 days), an absolute
// range (from/to), zoom out (×2) and in (÷2), and the resolution. It only reports picks; the app
// puts them in the URL, and the URL drives every view.

import { RESOLUTIONS } from "../state/range";
import {
  absoluteTime,
  allowedFor,
  describeTime,
  fromLocalInput,
  localInput,
  RELATIVE_RANGES,
  spanOf,
  viewExtent,
  zoom,
  type GlobalTime,
} from "../state/time-range";
import type { Resolution } from "../types";
import { el, setText } from "./dom";

const WIDE = "(min-width: 701px)";

function wideScreen(): boolean {
  return window.matchMedia?.(WIDE).matches ?? true;
}

export class TimePicker {
  readonly element: HTMLElement;
  private readonly rangeButtons = new Map<number, HTMLButtonElement>();
  private readonly from: HTMLInputElement;
  private readonly to: HTMLInputElement;
  private readonly resolution: HTMLSelectElement;
  private readonly summary: HTMLElement;
  private readonly error: HTMLElement;
  private time: GlobalTime | null = null;

  constructor(
    private readonly onPick: (time: GlobalTime) => void,
    private readonly nowSeconds: () => number,
  ) {
    const relative = el("div", { class: "picker", role: "group", "aria-label": "Relative range", "data-testid": "time-range" });
    for (const range of RELATIVE_RANGES) {
      const button = el("button", { type: "button", class: "picker-button", "data-value": range.name, title: `Last ${range.label}` }, [
        range.name,
      ]);
      button.addEventListener("click", () => this.onPick({ range: { kind: "relative", seconds: range.seconds }, resolution: null }));
      this.rangeButtons.set(range.seconds, button);
      relative.append(button);
    }
    const zoomOut = el("button", { type: "button", class: "button", "data-testid": "time-zoom-out", "aria-label": "Zoom out (twice the range)" }, ["−"]);
    const zoomIn = el("button", { type: "button", class: "button", "data-testid": "time-zoom-in", "aria-label": "Zoom in (half the range)" }, ["+"]);
    zoomOut.addEventListener("click", () => this.zoomBy(2));
    zoomIn.addEventListener("click", () => this.zoomBy(0.5));
    this.from = el("input", { type: "datetime-local", "data-testid": "time-from", "aria-label": "From" });
    this.to = el("input", { type: "datetime-local", "data-testid": "time-to", "aria-label": "To" });
    const apply = el("button", { type: "submit", class: "button" }, ["Apply"]);
    this.error = el("span", { class: "time-error", role: "alert" });
    const absolute = el("form", { class: "time-absolute", "aria-label": "Absolute range", "data-testid": "time-absolute" }, [
      el("label", {}, ["From ", this.from]),
      el("label", {}, ["To ", this.to]),
      apply,
      this.error,
    ]);
    absolute.addEventListener("submit", (event) => {
      event.preventDefault();
      const from = fromLocalInput(this.from.value);
      const to = fromLocalInput(this.to.value);
      if (from === null || to === null || to - from < 60) {
        setText(this.error, "From must be at least a minute before To.");
        return;
      }
      setText(this.error, "");
      this.onPick(absoluteTime(from, to));
    });
    this.resolution = el("select", { "data-testid": "time-resolution", "aria-label": "Resolution" });
    this.resolution.addEventListener("change", () => {
      if (this.time === null) return;
      const value = this.resolution.value;
      this.onPick({ range: this.time.range, resolution: value === "auto" ? null : (value as Resolution) });
    });
    // From/To and the resolution fold away on a phone (open on wider screens).
    const custom = el("details", { class: "time-custom", "data-testid": "time-custom", open: wideScreen() }, [
      el("summary", { class: "button" }, ["Custom range"]),
      el("div", { class: "time-custom-body" }, [absolute, el("label", { class: "time-resolution" }, ["Resolution ", this.resolution])]),
    ]);
    window.matchMedia?.(WIDE).addEventListener?.("change", (event) => {
      custom.open = event.matches;
    });
    this.summary = el("span", { class: "time-summary", "data-testid": "time-summary", "aria-live": "polite" });
    this.element = el("div", { class: "time-bar", role: "toolbar", "aria-label": "Time range", "data-testid": "time-picker" }, [
      this.summary,
      relative,
      el("div", { class: "picker", role: "group", "aria-label": "Zoom" }, [zoomOut, zoomIn]),
      custom,
    ]);
  }

  get current(): GlobalTime | null {
    return this.time;
  }

  setTime(time: GlobalTime): void {
    this.time = time;
    const range = time.range;
    for (const [seconds, button] of this.rangeButtons) {
      button.setAttribute("aria-pressed", String(range.kind === "relative" && range.seconds === seconds));
    }
    const extent = viewExtent(time, this.nowSeconds());
    this.from.value = localInput(extent.from);
    this.to.value = localInput(extent.to);
    const allowed = allowedFor(spanOf(range));
    this.resolution.replaceChildren(
      el("option", { value: "auto" }, ["Auto"]),
      ...RESOLUTIONS.filter((r) => allowed.includes(r.name)).map((r) => el("option", { value: r.name }, [r.label])),
    );
    this.resolution.value = time.resolution ?? "auto";
    setText(this.summary, describeTime(time));
    this.element.dataset.kind = range.kind;
  }

  private zoomBy(factor: number): void {
    if (this.time !== null) this.onPick(zoom(this.time, factor, this.nowSeconds()));
  }
}
