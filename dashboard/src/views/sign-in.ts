// The sign-in prompt: asks for the API token when the server needs one (config says so, or an API
// request was answered 401). A small form with a labelled password field; a refusal shows the
// server's reason and asks again. Where the token is kept is `auth.ts`'s business, not this view's.

import { el, setText } from "./dom";

export interface SignInOptions {
  /** Why the page asks (the server's reason after a refusal); none on first visit. */
  reason?: string;
  /** Checks the token; resolves to null when accepted, else the reason to show. */
  submit: (token: string) => Promise<string | null>;
}

export class SignInForm {
  readonly element: HTMLElement;
  private readonly input: HTMLInputElement;
  private readonly message: HTMLElement;
  private readonly button: HTMLButtonElement;

  constructor(private readonly options: SignInOptions) {
    this.input = el("input", {
      id: "sign-in-token",
      name: "token",
      type: "password",
      autocomplete: "off",
      spellcheck: "false",
      required: true,
      "aria-describedby": "sign-in-message",
      "data-testid": "sign-in-token",
    });
    this.message = el("p", { id: "sign-in-message", class: "sign-in-message", role: "alert", "data-testid": "sign-in-message" });
    this.button = el("button", { type: "submit", class: "button button-primary" }, ["Sign in"]);
    const form = el("form", { class: "sign-in-form", "aria-labelledby": "sign-in-title", "data-testid": "sign-in" }, [
      el("h1", { id: "sign-in-title", class: "page-title" }, ["Sign in to Flowscope"]),
      el("p", { class: "sign-in-help" }, [
        "This server needs its access token (the one it was started with, e.g. ",
        el("code", {}, ["flowscope local --token"]),
        "). It is kept for this browser tab only.",
      ]),
      el("label", { for: "sign-in-token" }, ["Access token"]),
      this.input,
      this.message,
      this.button,
    ]);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.send();
    });
    this.element = el("div", { class: "sign-in", role: "dialog", "aria-modal": "true", "aria-labelledby": "sign-in-title" }, [form]);
    if (options.reason !== undefined) this.showRefusal(options.reason);
  }

  /** Moves keyboard focus to the token field. */
  focus(): void {
    this.input.focus();
  }

  private async send(): Promise<void> {
    const token = this.input.value.trim();
    if (token === "") {
      setText(this.message, "Enter the token.");
      return;
    }
    this.button.disabled = true;
    setText(this.message, "Checking…");
    const refusal = await this.options.submit(token).catch((error: unknown) => String(error));
    this.button.disabled = false;
    if (refusal === null) {
      setText(this.message, "");
      return;
    }
    this.showRefusal(refusal);
    this.input.select();
    this.input.focus();
  }

  private showRefusal(reason: string): void {
    setText(this.message, `The server refused the token: ${reason}`);
  }
}
