// The mock server's profile routes (dev/mock-profiles.mjs) answer what the dashboard validates
// (model.ts, the contract in docs/openapi.json once the backend lands), and merge exactly: a range's
// tree is the sum of its minutes, as the real server's must be.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import type { GenericSchema } from "valibot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseDiff, parseFlamegraph, topFunctions } from "./flame";
import { Diff, Flamegraph, ProfileServices, ProfileTypes, readSnapshot, Timeline, Top, violation } from "./model";

const MOCK = fileURLToPath(new URL("../../dev/mock-server.mjs", import.meta.url));
const TOKEN = "profiles-test";
let mock: ChildProcess;
let base = "";

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

async function get(path: string, schema: GenericSchema): Promise<unknown> {
  const response = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(response.status, path).toBe(200);
  const body: unknown = await response.json();
  expect(violation(schema, body), `${path}: ${JSON.stringify(body).slice(0, 300)}`).toBeNull();
  return body;
}

async function push(minute: number, body: string, name = "unit-shop.cpu{env=test}"): Promise<Response> {
  const query = new URLSearchParams({ name, from: String(minute + 1), until: String(minute + 11), format: "folded", sampleRate: "100" });
  return fetch(`${base}/ingest?${query}`, { method: "POST", body });
}

const MINUTE = Math.floor(Date.now() / 60_000) * 60 - 600;

beforeAll(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  mock = spawn(process.execPath, [MOCK, "--port", String(port), "--token", TOKEN], { stdio: "ignore" });
  const deadline = Date.now() + 20_000;
  for (;;) {
    const up = await fetch(`${base}/config.json`).then((r) => r.ok, () => false);
    if (up) break;
    if (Date.now() > deadline) throw new Error("mock server did not start");
    await new Promise((r) => setTimeout(r, 100));
  }
  expect((await push(MINUTE, "main;work;hot 30\nmain;work 10\nmain;idle 5\n")).status).toBe(200);
  expect((await push(MINUTE + 60, "main;work;hot 90\nmain;idle 5\n")).status).toBe(200);
}, 30_000);

afterAll(() => {
  mock?.kill();
});

describe("the mock's profile routes", () => {
  const q = `service=unit-shop&type=cpu`;
  const ns = 1e9 / 100;

  it("lists services and types, and refuses a malformed push with a reason", async () => {
    const services = (await get("/api/profiles/services", ProfileServices)) as { services: { service: string; types: string[] }[] };
    expect(services.services.find((s) => s.service === "unit-shop")?.types).toEqual(["cpu"]);
    await get("/api/profiles/types?service=unit-shop", ProfileTypes);
    const bad = await push(MINUTE, "main;work notanumber\n");
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/line 1/);
  });

  it("a range's flame graph is the sum of its minutes", async () => {
    const range = `${q}&from=${MINUTE}&to=${MINUTE + 120}`;
    const timeline = (await get(`/api/profiles/timeline?${range}`, Timeline)) as { points: { t: number; total: number }[] };
    expect(timeline.points).toEqual([
      { t: MINUTE * 1000, total: 45 * ns },
      { t: (MINUTE + 60) * 1000, total: 95 * ns },
    ]);
    const body = (await get(`/api/profiles/flamegraph?${range}`, Flamegraph)) as { names: string[]; levels: number[][]; total: number };
    const tree = parseFlamegraph(body.names, body.levels);
    expect(tree.total).toBe(140 * ns);
    expect(topFunctions(tree)[0]).toEqual({ name: "hot", self: 120 * ns, total: 120 * ns });
    await get(`/api/profiles/top?${range}&limit=5`, Top);
  });

  it("diffs two ranges over the union tree", async () => {
    const body = (await get(
      `/api/profiles/diff?${q}&from=${MINUTE + 60}&to=${MINUTE + 120}&base_from=${MINUTE}&base_to=${MINUTE + 60}`,
      Diff,
    )) as { names: string[]; levels: number[][]; total: number; base_total: number };
    const tree = parseDiff(body.names, body.levels, body.total, body.base_total);
    const hot = tree.levels[3]?.find((n) => tree.names[n.name] === "hot");
    expect([hot?.total, hot?.baseTotal]).toEqual([90 * ns, 30 * ns]);
    expect(tree.levels[0]?.[0]?.width).toBe(140 * ns);
  });

  it("filters by labels: only label sets with all the given values", async () => {
    const minute = MINUTE - 600;
    expect((await push(minute, "main;a 10\n", "unit-labels.cpu{env=prod,region=eu}")).status).toBe(200);
    expect((await push(minute, "main;b 5\n", "unit-labels.cpu{env=dev,region=eu}")).status).toBe(200);
    const range = `service=unit-labels&type=cpu&from=${minute}&to=${minute + 60}`;
    const total = async (labels: string) =>
      ((await get(`/api/profiles/flamegraph?${range}&labels=${encodeURIComponent(labels)}`, Flamegraph)) as { total: number }).total;
    expect(await total("env=prod")).toBe(10 * ns);
    expect(await total("region=eu")).toBe(15 * ns);
    expect(await total("env=prod,region=us")).toBe(0);
    const timeline = (await get(`/api/profiles/timeline?${range}&labels=env%3Ddev`, Timeline)) as { points: { total: number }[] };
    expect(timeline.points.map((p) => p.total)).toEqual([5 * ns]);
  });

  it("downloads a gzip snapshot that the dashboard opens", async () => {
    const response = await fetch(`${base}/api/profiles/snapshot?${q}&from=${MINUTE}&to=${MINUTE + 120}`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(response.headers.get("content-disposition")).toMatch(/attachment; filename=".+\.json\.gz"/);
    const value: unknown = JSON.parse(gunzipSync(Buffer.from(await response.arrayBuffer())).toString("utf8"));
    expect(readSnapshot(value).tree.total).toBe(140 * ns);
  });
});
