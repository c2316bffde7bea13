// Entry point: read config.json, then start the app. Kept tiny so other pages reuse `App`'s wiring.

import "./styles.css";
import { App } from "./app";
import { loadConfig } from "./config";

async function boot(): Promise<void> {
  const root = document.getElementById("app");
  if (root === null) return;
  const configUrl = new URL("config.json", document.baseURI).toString();
  const { config, warning } = await loadConfig(window.fetch.bind(window), window.location, configUrl);
  const app = new App(root, config, { fetch: window.fetch.bind(window), nowMs: () => Date.now() }, warning);
  // Counters for the benchmark and for curious people in the console.
  (window as unknown as { flowscope: { debugInfo: () => Record<string, number> } }).flowscope = app;
  app.start();
}

void boot();
