// The dashboard's types are generated from the contract: this fails when `api.ts` is not what
// openapi-typescript makes of the committed docs/openapi.json (regenerate with scripts/contract.sh).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const here = fileURLToPath(new URL(".", import.meta.url));
const dashboard = join(here, "..", "..");

describe("generated/api.ts", () => {
  it("is what openapi-typescript generates from docs/openapi.json", () => {
    const dir = mkdtempSync(join(tmpdir(), "flowscope-types-"));
    try {
      const out = join(dir, "api.ts");
      execFileSync(join(dashboard, "node_modules", ".bin", "openapi-typescript"), [join(dashboard, "..", "docs", "openapi.json"), "-o", out], {
        stdio: "pipe",
      });
      const generated = readFileSync(out, "utf8");
      const committed = readFileSync(join(here, "api.ts"), "utf8");
      expect(committed === generated, "dashboard/src/generated/api.ts is stale: run scripts/contract.sh and commit the result").toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
