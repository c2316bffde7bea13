// Shared by the browser test and the benchmark: the system Chromium, child processes (servers the
// scripts start, stop and restart themselves), polling, and the `N passed, N failed` summary.

import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, "../..");
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--headless",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until it returns a truthy value; throws with `what` after the timeout. */
export async function waitFor(what, probe, timeoutMs, intervalMs = 500) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value) return value;
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
}

export function assert(condition, message) {
  if (!condition) throw new Error(message);
}

export class Skip extends Error {}

/** Runs named checks, printing one line each, and the summary line last. */
export class Checks {
  results = [];

  async run(name, body) {
    try {
      await body();
      this.results.push({ name, ok: true });
      console.log(`ok   - ${name}`);
      return true;
    } catch (error) {
      if (error instanceof Skip) {
        this.results.push({ name, ok: true, skipped: true });
        console.log(`skip - ${name}: ${error.message}`);
        return true;
      }
      this.results.push({ name, ok: false });
      console.log(`FAIL - ${name}: ${error instanceof Error ? error.message : String(error)}`);
      return false;
    }
  }

  fail(name, error) {
    this.results.push({ name, ok: false });
    console.log(`FAIL - ${name}: ${error instanceof Error ? error.message : String(error)}`);
  }

  get failed() {
    return this.results.filter((r) => !r.ok).length;
  }

  summary() {
    const skipped = this.results.filter((r) => r.skipped).length;
    const passed = this.results.filter((r) => r.ok && !r.skipped).length;
    return `${passed} passed, ${this.failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`;
  }
}

/**
 * A child process the script owns: started with its output in a log file, stopped by its own pid
 * (SIGTERM, then SIGKILL after a grace period), never by name.
 */
export class ManagedProcess {
  child = null;

  constructor(name, command, args, logDir, env = {}) {
    this.name = name;
    this.command = command;
    this.args = args;
    this.logPath = join(logDir, `${name}.log`);
    this.env = env;
  }

  async start() {
    await mkdir(dirname(this.logPath), { recursive: true });
    const log = createWriteStream(this.logPath, { flags: "a" });
    log.write(`\n--- ${new Date().toISOString()} ${this.command} ${this.args.join(" ")}\n`);
    const child = spawn(this.command, this.args, {
      cwd: repoRoot,
      env: { ...process.env, ...this.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    child.on("exit", () => log.end());
    this.child = child;
    const started = await Promise.race([
      new Promise((r) => child.once("spawn", () => r(true))),
      new Promise((r) => child.once("error", (e) => r(e))),
    ]);
    if (started !== true) throw new Error(`cannot start ${this.name} (${this.command}): ${started.message}`);
  }

  get running() {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  async stop(graceMs = 10_000) {
    const child = this.child;
    if (child === null || !this.running) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
    this.child = null;
  }
}

/** Waits until `url` answers 200. */
export async function waitForHttp(url, timeoutMs) {
  await waitFor(
    `${url} to answer`,
    async () => {
      try {
        const response = await fetch(url);
        return response.ok;
      } catch {
        return false;
      }
    },
    timeoutMs,
    250,
  );
}

export function percentile(sorted, q) {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}
