import { describe, expect, it } from "vitest";
import { ProfilesClient } from "./api";

function client(answer: (url: string) => Response, seen: string[] = [], refused: string[] = []) {
  const fetchFn = (async (input: RequestInfo | URL, init?: RequestInit) => {
    seen.push(`${String(input)} ${JSON.stringify(init?.headers ?? {})}`);
    return answer(String(input));
  }) as typeof fetch;
  return new ProfilesClient("http://h", fetchFn, "tok", (reason) => refused.push(reason));
}

const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

describe("ProfilesClient", () => {
  it("sends the range in unix seconds, the label filter encoded, and the credential", async () => {
    const seen: string[] = [];
    const c = client(() => json({ service: "a b", type: "cpu", unit: "nanoseconds", points: [{ t: 60_000, total: 5 }] }), seen);
    const timeline = await c.timeline({ service: "a b", type: "cpu", labels: "env=prod,region=eu" }, { from: 60, to: 120 });
    expect(timeline.points).toEqual([{ t: 60_000, total: 5 }]);
    expect(seen[0]).toBe(
      'http://h/api/profiles/timeline?service=a%20b&type=cpu&from=60&to=120&labels=env%3Dprod%2Cregion%3Deu {"accept":"application/json","authorization":"Bearer tok"}',
    );
  });

  it("builds the flame graph and the diff trees from the answers", async () => {
    const c = client((url) =>
      url.includes("/diff")
        ? json({ service: "s", type: "cpu", unit: "ns", from: 0, to: 1, base_from: 0, base_to: 1, total: 3, base_total: 1, names: ["total"], levels: [[0, 4, 0, 3, 0, 1, 0]] })
        : json({ service: "s", type: "cpu", unit: "ns", from: 0, to: 1, total: 3, names: ["total"], levels: [[0, 3, 3, 0]] }),
    );
    expect((await c.flamegraph({ service: "s", type: "cpu" }, { from: 0, to: 60 })).tree.total).toBe(3);
    const diff = await c.diff({ service: "s", type: "cpu" }, { from: 60, to: 120 }, { from: 0, to: 60 });
    expect([diff.tree.total, diff.tree.baseTotal, diff.tree.levels[0]?.[0]?.width]).toEqual([3, 1, 4]);
  });

  it("says which field breaks the contract, and passes the server's reason and 401 on", async () => {
    await expect(client(() => json({ services: [{ service: 1, types: [] }] })).services()).rejects.toThrow(
      /\/api\/profiles\/services: the server's answer does not match the API contract \(services\.0\.service/,
    );
    const refused: string[] = [];
    const c = client(() => json({ error: "invalid credential" }, 401), [], refused);
    await expect(c.services()).rejects.toMatchObject({ status: 401, message: "invalid credential" });
    expect(refused).toEqual(["invalid credential"]);
    await expect(client(() => json({ error: "`from` must be before `to`" }, 400)).top({ service: "s", type: "cpu" }, { from: 2, to: 1 })).rejects.toThrow(
      "`from` must be before `to`",
    );
  });

  it("downloads with the server's file name, or a made-up one", async () => {
    const named = client(() => new Response(new Uint8Array([0x1f, 0x8b]), { headers: { "content-disposition": 'attachment; filename="api-cpu-1-2.pb.gz"' } }));
    const file = await named.download("pprof", { service: "api", type: "cpu" }, { from: 1, to: 2 });
    expect(file.filename).toBe("api-cpu-1-2.pb.gz");
    expect(file.blob.size).toBe(2);
    const unnamed = client(() => new Response("x"));
    expect((await unnamed.download("snapshot", { service: "api", type: "cpu" }, { from: 1, to: 2 })).filename).toBe("api-cpu-1-2.json.gz");
  });
});
