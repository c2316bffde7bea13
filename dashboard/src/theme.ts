// Light and dark themes: the system setting (`prefers-color-scheme`) unless the user picked one
// with the header's toggle (kept in localStorage). The theme is `data-theme` on <html>; colours
// are CSS variables (styles.css), and canvases (charts) read them and redraw on `theme-change`.

export type ThemeChoice = "system" | "light" | "dark";
export type Theme = "light" | "dark";

const KEY = "flowscope.theme";
export const THEME_EVENT = "flowscope-theme-change";

function storage(): Storage | null {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}

export function storedChoice(): ThemeChoice {
  const value = storage()?.getItem(KEY);
  return value === "light" || value === "dark" ? value : "system";
}

function systemTheme(): Theme {
  return window.matchMedia?.("(prefers-color-scheme: light)").matches ? "light" : "dark";
}

export function resolveTheme(choice: ThemeChoice): Theme {
  return choice === "system" ? systemTheme() : choice;
}

export function currentTheme(): Theme {
  return document.documentElement.dataset.theme === "light" ? "light" : "dark";
}

function apply(choice: ThemeChoice): void {
  const theme = resolveTheme(choice);
  const root = document.documentElement;
  root.dataset.themeChoice = choice;
  if (root.dataset.theme === theme) return;
  root.dataset.theme = theme;
  root.style.colorScheme = theme;
  window.dispatchEvent(new Event(THEME_EVENT));
}

export function setChoice(choice: ThemeChoice): void {
  if (choice === "system") storage()?.removeItem(KEY);
  else storage()?.setItem(KEY, choice);
  apply(choice);
}

/** Applies the stored choice and follows the system setting while the choice is "system". */
export function initTheme(): void {
  apply(storedChoice());
  window.matchMedia?.("(prefers-color-scheme: light)").addEventListener?.("change", () => apply(storedChoice()));
}

/** A CSS variable's value on <html> (e.g. "--text-muted"), for canvases. */
export function cssColor(name: string, fallback: string): string {
  const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return value === "" ? fallback : value;
}
