#!/usr/bin/env python3
"""Interoperability check: the unmodified OpenTelemetry Python SDK (OTLP/HTTP **protobuf**) against
a running `flowscope local`.

It subscribes to its own service over the WebSocket first, then exports a counter (cumulative, the
SDK default), an up-down counter, a histogram and an observable gauge over several exports, plus a
few spans, and checks that
  * the series are listed by the query API within 2 s of the first export,
  * a `metrics_update` for the service arrives over the WebSocket within 2 s of the first export,
  * within 2 s of the last export the stored buckets hold exactly what was recorded: counter sums
    (cumulative -> delta conversion across exports), the up-down counter's net change, histogram
    count and sum, the gauge's values; and the live updates agree on the counter total.

Recorded values are small integers and binary fractions, so every sum and difference is exact in
float64 and the comparisons can be exact too.

Usage: export_and_verify.py --otlp http://127.0.0.1:4318 --api http://127.0.0.1:8080 [--service NAME]
Prints one line per check and the measured latencies; exits 1 on any failure.
"""

import argparse
import json
import logging
import queue
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from websockets.sync.client import connect as ws_connect

# The promise: visible through the API and the WebSocket within 2 s.
VISIBLE_WITHIN_S = 2.0
POLL_EVERY_S = 0.02
EXPORT_INTERVAL_MS = 500
# Pause between recording and exporting (see the export loop).
RECORD_TO_EXPORT_S = 0.02

COUNTER = "sdk.requests"
UP_DOWN = "sdk.inflight"
HISTOGRAM = "sdk.latency"
GAUGE = "sdk.temperature"
ALL_METRICS = (COUNTER, UP_DOWN, HISTOGRAM, GAUGE)
ROUTES = ("/checkout", "/cart")

# What each export round records. Several rounds, so the cumulative totals the SDK sends grow and the
# server has to turn them into deltas without losing or double-counting anything.
ROUNDS = [
    {"adds": {"/checkout": 3, "/cart": 1}, "up_down": [5, -2], "latencies": [4.5, 12.0, 37.25], "gauge": 21.5},
    {"adds": {"/checkout": 7, "/cart": 0}, "up_down": [1], "latencies": [120.0], "gauge": 22.0},
    {"adds": {"/checkout": 0, "/cart": 4}, "up_down": [-3, 6], "latencies": [0.5, 480.0, 75.75, 9.0], "gauge": 19.25},
    {"adds": {"/checkout": 11, "/cart": 2}, "up_down": [], "latencies": [250.0], "gauge": 23.75},
]


class Checks:
    """One line per check; remembers whether any failed."""

    def __init__(self, label):
        self.label = label
        self.failed = 0
        self.passed = 0

    def check(self, ok, what, detail=""):
        status = "PASS" if ok else "FAIL"
        suffix = f" ({detail})" if detail else ""
        print(f"{status}: [{self.label}] {what}{suffix}", flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        return ok


class ExportErrors(logging.Handler):
    """The SDK reports export failures only through logging; collect them so they fail the run."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(f"{record.name}: {record.getMessage()}")


class LiveListener(threading.Thread):
    """Reads the WebSocket in the background and timestamps every message on arrival."""

    def __init__(self, url, service):
        super().__init__(daemon=True)
        self.url = url
        self.service = service
        self.messages = queue.Queue()
        self.first_update_at = None
        self.error = None
        # Latest live totals per (series, resolution, bucket start), as a client keeps them.
        self.latest = {}
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.stop = threading.Event()
        self.socket = None

    def run(self):
        try:
            with ws_connect(self.url, open_timeout=5, close_timeout=1) as socket:
                self.socket = socket
                hello = json.loads(socket.recv(timeout=5))
                if hello.get("type") != "hello":
                    raise RuntimeError(f"first message was not hello: {hello}")
                socket.send(json.dumps({"type": "subscribe", "services": [self.service], "metrics": []}))
                reply = json.loads(socket.recv(timeout=5))
                self.messages.put(("reply", reply))
                self.subscribed.set()
                while not self.stop.is_set():
                    try:
                        text = socket.recv(timeout=0.2)
                    except TimeoutError:
                        continue
                    arrived = time.monotonic()
                    message = json.loads(text)
                    if message.get("type") == "metrics_update":
                        self._absorb(message, arrived)
        except Exception as error:  # reported by the main thread as a failed check
            self.error = f"{type(error).__name__}: {error}"
            self.subscribed.set()

    def _absorb(self, message, arrived):
        ours = [u for u in message.get("updates", []) if u.get("service") == self.service]
        if not ours:
            return
        with self.lock:
            if self.first_update_at is None:
                self.first_update_at = arrived
            for update in ours:
                key = (update["series_id"], update["resolution"], update["start"])
                self.latest[key] = update

    def live_sum(self, metric, resolution="1m"):
        with self.lock:
            return sum(
                u["sum"] for (_, res, _), u in self.latest.items() if u["metric"] == metric and res == resolution
            )


def get_json(url):
    """GET → (status, parsed JSON or None)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        return 0, str(error)


def metric_listing(api, service):
    status, body = get_json(f"{api}/api/services/{urllib.parse.quote(service, safe='')}/metrics")
    if status != 200 or not isinstance(body, dict):
        return {}
    return {m["name"]: m for m in body.get("metrics", [])}


def history(api, service, metric, since, resolution="1m"):
    now = int(time.time())
    query = urllib.parse.urlencode({"from": since - 120, "to": now + 120, "resolution": resolution})
    path = f"{urllib.parse.quote(service, safe='')}/metrics/{urllib.parse.quote(metric, safe='')}"
    status, body = get_json(f"{api}/api/services/{path}?{query}")
    return body.get("buckets", []) if status == 200 and isinstance(body, dict) else None


def series_history(api, series_id, since):
    now = int(time.time())
    query = urllib.parse.urlencode({"from": since - 120, "to": now + 120, "resolution": "1m"})
    status, body = get_json(f"{api}/api/series/{series_id}?{query}")
    return body.get("buckets", []) if status == 200 and isinstance(body, dict) else None


def wait_until(deadline, probe):
    """Polls `probe` until it returns a truthy value or the deadline passes; returns the last value."""
    while True:
        value = probe()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(POLL_EVERY_S)


def totals(buckets):
    return {
        "count": sum(b["count"] for b in buckets),
        "sum": sum(b["sum"] for b in buckets),
        "min": min((b["min"] for b in buckets if b["min"] is not None), default=None),
        "max": max((b["max"] for b in buckets if b["max"] is not None), default=None),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--otlp", default="http://127.0.0.1:4318", help="OTLP/HTTP base URL")
    parser.add_argument("--api", default="http://127.0.0.1:8080", help="query API + WebSocket base URL")
    parser.add_argument("--service", default=f"sdk-python-{uuid.uuid4().hex[:10]}", help="service.name to export as")
    args = parser.parse_args()
    otlp, api, service = args.otlp.rstrip("/"), args.api.rstrip("/"), args.service
    checks = Checks("python/protobuf")
    started_unix = int(time.time())

    export_errors = ExportErrors()
    logging.getLogger("opentelemetry").addHandler(export_errors)

    # (a) Subscribe first, so the first update for this service cannot be missed.
    listener = LiveListener(api.replace("http://", "ws://", 1) + "/ws", service)
    listener.start()
    listener.subscribed.wait(timeout=10)
    try:
        _, reply = listener.messages.get(timeout=0.5)
    except queue.Empty:
        reply = None
    if not checks.check(
        listener.error is None and reply is not None and reply.get("type") == "snapshot",
        "WebSocket hello + subscribe answered with a snapshot",
        listener.error or f"reply {reply}",
    ):
        return finish(checks)

    # (b) An unmodified SDK setup, as any service would have it.
    resource = Resource.create({"service.name": service, "service.instance.id": uuid.uuid4().hex})
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{otlp}/v1/metrics", timeout=5),
        export_interval_millis=EXPORT_INTERVAL_MS,
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter = meter_provider.get_meter("flowscope.sdk-interop")
    counter = meter.create_counter(COUNTER, unit="1", description="requests served")
    up_down = meter.create_up_down_counter(UP_DOWN, unit="1", description="requests in flight")
    latency = meter.create_histogram(HISTOGRAM, unit="ms", description="request latency")
    gauge_value = {"now": ROUNDS[0]["gauge"]}

    def observe_gauge(_options: CallbackOptions):
        yield Observation(gauge_value["now"], {"sensor": "cpu0"})

    meter.create_observable_gauge(GAUGE, callbacks=[observe_gauge], unit="Cel", description="temperature")

    expected_per_route = {route: 0 for route in ROUTES}
    expected_up_down = 0
    expected_latencies = []
    gauge_values = []
    first_export_done = None
    last_export_done = None
    for index, round_ in enumerate(ROUNDS):
        for route, amount in round_["adds"].items():
            counter.add(amount, {"route": route})
            expected_per_route[route] += amount
        for change in round_["up_down"]:
            up_down.add(change)
            expected_up_down += change
        for value in round_["latencies"]:
            latency.record(value, {"route": "/checkout"})
            expected_latencies.append(value)
        gauge_value["now"] = round_["gauge"]
        gauge_values.append(round_["gauge"])
        # As in a real service, the export comes some time after the first measurement: a cumulative
        # point whose start equals its time reads as a baseline (see the Node verifier).
        time.sleep(RECORD_TO_EXPORT_S)
        # force_flush collects and exports synchronously: when it returns, the request has been answered.
        meter_provider.force_flush(timeout_millis=5000)
        last_export_done = time.monotonic()
        if index == 0:
            first_export_done = last_export_done
            measure_first_visibility(checks, api, service, listener, first_export_done)
        else:
            # Let the periodic reader export too, between our flushes, as it would in a real service.
            time.sleep(0.3)

    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp}/v1/traces", timeout=5)))
    tracer = tracer_provider.get_tracer("flowscope.sdk-interop")
    with tracer.start_as_current_span("GET /checkout", attributes={"http.route": "/checkout"}):
        with tracer.start_as_current_span("SELECT orders", attributes={"db.system": "postgresql"}):
            pass
        with tracer.start_as_current_span("cache get", attributes={"db.system": "redis"}):
            pass
    tracer_provider.force_flush(timeout_millis=5000)

    # (d) Exact values, within 2 s of the last export.
    deadline = last_export_done + VISIBLE_WITHIN_S
    verify_values(
        checks, api, service, listener, started_unix, deadline,
        expected_per_route, expected_up_down, expected_latencies, gauge_values,
    )

    meter_provider.shutdown(timeout_millis=5000)
    tracer_provider.shutdown()
    listener.stop.set()
    listener.join(timeout=2)
    checks.check(not export_errors.messages, "the SDK logged no export error", "; ".join(export_errors.messages[:3]))
    return finish(checks)


def measure_first_visibility(checks, api, service, listener, export_done):
    """(c) Time from the first export's completion until the API lists all series and the WS pushes."""
    deadline = export_done + VISIBLE_WITHIN_S
    listing = wait_until(deadline, lambda: all(m in metric_listing(api, service) for m in ALL_METRICS))
    api_latency = time.monotonic() - export_done
    checks.check(listing, f"all {len(ALL_METRICS)} metrics listed by the query API within {VISIBLE_WITHIN_S:.0f} s",
                 f"{api_latency * 1000:.0f} ms" if listing else f"after {api_latency * 1000:.0f} ms: {sorted(metric_listing(api, service))}")
    print(f"latency: query API lists series {api_latency * 1000:.0f} ms after export", flush=True)

    got_update = wait_until(deadline, lambda: listener.first_update_at is not None)
    if got_update:
        ws_latency = listener.first_update_at - export_done
        checks.check(ws_latency <= VISIBLE_WITHIN_S, f"metrics_update for the service within {VISIBLE_WITHIN_S:.0f} s",
                     f"{ws_latency * 1000:.0f} ms")
        print(f"latency: WebSocket metrics_update {ws_latency * 1000:.0f} ms after export", flush=True)
    else:
        checks.check(False, f"metrics_update for the service within {VISIBLE_WITHIN_S:.0f} s",
                     listener.error or "none arrived")


def verify_values(checks, api, service, listener, since, deadline, per_route, up_down_net, latencies, gauge_values):
    listing = metric_listing(api, service)
    kinds = {name: listing.get(name, {}).get("kind") for name in ALL_METRICS}
    checks.check(
        kinds == {COUNTER: "counter", UP_DOWN: "up_down_counter", HISTOGRAM: "histogram", GAUGE: "gauge"},
        "metric kinds are counter, up_down_counter, histogram, gauge", str(kinds),
    )
    checks.check(listing.get(HISTOGRAM, {}).get("unit") == "ms", "histogram unit is kept", str(listing.get(HISTOGRAM, {}).get("unit")))
    counter_series = {
        s.get("attributes", {}).get("route"): s["id"] for s in listing.get(COUNTER, {}).get("series", [])
    }
    checks.check(sorted(counter_series) == sorted(ROUTES), "one counter series per route attribute", str(sorted(counter_series, key=str)))

    total = sum(per_route.values())
    # Poll until everything matches (or the deadline passes), then report each check on the last read.
    def all_match():
        state = read_state(api, service, since, counter_series)
        state["ok"] = (
            state["counter"] is not None and state["counter"]["sum"] == total
            and all(state["routes"].get(r) == per_route[r] for r in ROUTES)
            and state["up_down"] is not None and state["up_down"]["sum"] == up_down_net
            and state["histogram"] is not None and state["histogram"]["count"] == len(latencies)
            and state["histogram"]["sum"] == sum(latencies)
            and state["gauge"] is not None and state["gauge"]["min"] == min(gauge_values)
            and state["gauge"]["max"] == max(gauge_values)
            and listener.live_sum(COUNTER) == total
        )
        return state if state["ok"] else None

    matched = wait_until(deadline, all_match)
    state = matched or read_state(api, service, since, counter_series)
    elapsed_note = "within 2 s of the last export" if matched else "still wrong 2 s after the last export"

    counter = state["counter"] or {}
    checks.check(counter.get("sum") == total, f"counter: bucket sums equal the {total} added over {len(ROUNDS)} cumulative exports ({elapsed_note})",
                 f"got {counter.get('sum')}")
    for route in ROUTES:
        checks.check(state["routes"].get(route) == per_route[route], f"counter series route={route}: sum {per_route[route]}",
                     f"got {state['routes'].get(route)}")
    up = state["up_down"] or {}
    checks.check(up.get("sum") == up_down_net, f"up-down counter: net change {up_down_net}", f"got {up.get('sum')}")
    hist = state["histogram"] or {}
    checks.check(hist.get("count") == len(latencies) and hist.get("sum") == sum(latencies),
                 f"histogram: count {len(latencies)} and sum {sum(latencies)} exact",
                 f"got count {hist.get('count')} sum {hist.get('sum')}")
    quantiles = hist.get("quantiles") or [[None]]
    # Explicit buckets only bound a quantile to the bucket holding it: all recorded values lie in
    # the SDK's default buckets (0, 500], so every estimate must too, in increasing order.
    checks.check(all(None not in q and 0 <= q[0] <= q[1] <= q[2] <= 500 for q in quantiles),
                 "histogram: p50 <= p95 <= p99 within the recorded buckets (0, 500]", str(quantiles))
    gauge = state["gauge"] or {}
    checks.check(gauge.get("min") == min(gauge_values) and gauge.get("max") == max(gauge_values),
                 f"gauge: observed values present (min {min(gauge_values)}, max {max(gauge_values)})",
                 f"got min {gauge.get('min')} max {gauge.get('max')}")
    live = listener.live_sum(COUNTER)
    checks.check(live == total, f"WebSocket live buckets agree: counter total {total}", f"got {live}")


def read_state(api, service, since, counter_series):
    def merged(metric):
        buckets = history(api, service, metric, since)
        if not buckets:
            return None
        summary = totals(buckets)
        summary["quantiles"] = [[b.get("p50"), b.get("p95"), b.get("p99")] for b in buckets if b["count"] > 0]
        return summary

    routes = {}
    for route, series_id in counter_series.items():
        buckets = series_history(api, series_id, since)
        if buckets is not None:
            routes[route] = sum(b["sum"] for b in buckets)
    return {
        "counter": merged(COUNTER),
        "routes": routes,
        "up_down": merged(UP_DOWN),
        "histogram": merged(HISTOGRAM),
        "gauge": merged(GAUGE),
    }


def finish(checks):
    print(f"{checks.label}: {checks.passed} passed, {checks.failed} failed", flush=True)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as crash:  # a crash is a failure with a clear message, not a bare traceback
        print(f"FAIL: [python/protobuf] verifier crashed: {type(crash).__name__}: {crash}", flush=True)
        raise
