// The mock server (dev/mock-server.mjs: `npm run mock`, the browser test's mock mode, the benchmark)
// must speak the contract the real server speaks: every answer and WebSocket message it sends is
// validated here with the dashboard's own boundary schemas.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import type { GenericSchema } from "valibot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import * as contract from "./contract";
import { contractViolation } from "./contract";

const MOCK = fileURLToPath(new URL("../dev/mock-server.mjs", import.meta.url));
const TOKEN = "contract-test";

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

/** Polls `check` until it returns a value, or fails after `ms`. */
async function eventually<T>(what: string, ms: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

let mock: ChildProcess;
let base = "";

async function get(path: string): Promise<unknown> {
  const response = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(response.status, `${path}: ${response.status}`).toBe(200);
  return response.json();
}

function expectContract(schema: GenericSchema, value: unknown, what: string): void {
  expect(contractViolation(schema, value), `${what}: ${JSON.stringify(value).slice(0, 300)}`).toBeNull();
}

beforeAll(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  mock = spawn(process.execPath, [MOCK, "--port", String(port), "--token", TOKEN, "--traces-per-s", "20"], { stdio: "ignore" });
  await eventually("the mock server", 20_000, async () => ((await fetch(`${base}/config.json`)).ok ? true : undefined));
}, 30_000);

afterAll(() => {
  mock?.kill();
});

describe("the mock server speaks the contract", () => {
  it("answers every query route the dashboard reads as the contract says", async () => {
    const services = await get("/api/services");
    expectContract(contract.ServiceList, services, "/api/services");
    const service = (services as { services: { name: string }[] }).services[0]?.name ?? "";
    expect(service).not.toBe("");
    const metrics = await get(`/api/services/${encodeURIComponent(service)}/metrics`);
    expectContract(contract.MetricList, metrics, "metrics");
    const metric = (metrics as { metrics: { name: string }[] }).metrics[0]?.name ?? "";
    const now = Math.floor(Date.now() / 1000);
    expectContract(contract.History, await get(`/api/services/${encodeURIComponent(service)}/metrics/${encodeURIComponent(metric)}?from=${now - 900}&to=${now}&resolution=1m`), "history");
    expectContract(contract.GraphView, await get(`/api/graph?from=${now - 300}&to=${now}`), "/api/graph");
    expectContract(contract.AlertList, await get("/api/alerts"), "/api/alerts");
    expectContract(contract.AlertHistory, await get("/api/alerts/history"), "/api/alerts/history");
    expectContract(contract.SilenceList, await get("/api/silences"), "/api/silences");
    expectContract(contract.AlertRules, await get("/api/alert-rules"), "/api/alert-rules");
    const list = await eventually("a kept trace", 15_000, async () => {
      const body = (await get(`/api/services/${encodeURIComponent(service)}/traces?limit=5`)) as { traces: { trace_id: string }[] };
      return body.traces.length > 0 ? body : undefined;
    });
    expectContract(contract.TraceList, list, "traces");
    expectContract(contract.TraceView, await get(`/api/traces/${list.traces[0]?.trace_id ?? ""}`), "/api/traces/{id}");
  }, 30_000);

  it("sends WebSocket messages the contract allows", async () => {
    const socket = new WebSocket(`${base.replace("http", "ws")}/ws?token=${TOKEN}`);
    const seen = new Map<string, unknown>();
    socket.on("message", (data) => {
      const message = JSON.parse(String(data)) as { type: string };
      if (!seen.has(message.type)) seen.set(message.type, message);
    });
    await new Promise((resolve, reject) => {
      socket.once("open", resolve);
      socket.once("error", reject);
    });
    socket.send(JSON.stringify({ type: "subscribe", services: [], metrics: [] }));
    socket.send(JSON.stringify({ type: "ping" }));
    await eventually("hello, snapshot, metrics_update, trace and pong", 15_000, async () =>
      ["hello", "snapshot", "metrics_update", "trace", "pong"].every((t) => seen.has(t)) ? true : undefined,
    );
    socket.close();
    for (const [type, message] of seen) expectContract(contract.ServerMessage, message, type);
  }, 30_000);
});
