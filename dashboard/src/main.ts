// Entry point: read config.json, make sure there is a token if the server needs one, then start the
// app. Kept small so other pages reuse `App`'s wiring.

import "./styles.css";
import { App } from "./app";
import { adoptFragmentToken, checkToken, SessionToken, TokenStore, type TokenStorage } from "./auth";
import { loadConfig } from "./config";
import { initTheme } from "./theme";
import { SignInForm } from "./views/sign-in";

/** sessionStorage, or null where the browser refuses it (then the token lives in memory only). */
function sessionStorageOrNull(): TokenStorage | null {
  try {
    return window.sessionStorage;
  } catch {
    return null;
  }
}

// Before anything draws, so the first frame has the right colours.
initTheme();

async function boot(): Promise<void> {
  const root = document.getElementById("app");
  if (root === null) return;
  const store = new TokenStore(sessionStorageOrNull());
  // A `#token=…` link: keep the token for the session and take it out of the address bar at once.
  adoptFragmentToken(window.location, window.history, store);
  const fetchFn = window.fetch.bind(window);
  const configUrl = new URL("config.json", document.baseURI).toString();
  const { config, warning } = await loadConfig(fetchFn, window.location, configUrl);

  let app: App | null = null;
  let prompt: SignInForm | null = null;

  let session: SessionToken | null = null;
  const start = async (): Promise<void> => {
    // The key buys a short-lived token where the server issues them (else the key is sent as is).
    session?.stop();
    const current = new SessionToken(store.get(), fetchFn, config.apiBaseUrl);
    session = current;
    await current.start();
    app = new App(root, config, { fetch: fetchFn, nowMs: () => Date.now() }, warning, {
      token: () => current.current(),
      onUnauthorized: (reason) => askForToken(reason),
    });
    // Counters for the benchmark and for curious people in the console.
    (window as unknown as { flowscope: { debugInfo: () => Record<string, number> } }).flowscope = app;
    app.start();
  };

  const askForToken = (reason?: string): void => {
    if (prompt !== null) return;
    app?.stop();
    session?.stop();
    store.clear();
    const form = new SignInForm({
      reason,
      submit: async (token) => {
        const check = await checkToken(fetchFn, config.apiBaseUrl, token);
        if (!check.ok) return check.reason;
        store.set(token);
        if (app !== null) {
          // The running app holds the refused token everywhere: start afresh.
          window.location.reload();
          return null;
        }
        form.element.remove();
        prompt = null;
        void start();
        return null;
      },
    });
    prompt = form;
    root.append(form.element);
    form.focus();
  };

  if (config.authRequired && store.get() === "") askForToken();
  else void start();
}

void boot();
