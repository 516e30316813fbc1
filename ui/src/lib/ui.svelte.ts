import type { Backend, HubEvent, Paper, Peers } from "./backend";
import { errorMessage } from "./backend";
import { RTL, translate, type Key, type Lang } from "./i18n";

// The UI's shared state: language, theme, the backend, and a counter that screens watch to
// reload when the hub reports changes (from this window, a peer or a bundle).

export const ui = $state({
  lang: (localStorage.getItem("aidmesh.lang") as Lang) || "en",
  theme: localStorage.getItem("aidmesh.theme") || "light",
  paper: (localStorage.getItem("aidmesh.paper") as Paper) || "a4",
  changes: 0,
  /** Counts changes to what the hub's peers view shows (a hub connected or went, a sync done). */
  peers: 0,
  /** The screen shown, and the record it should open (an overview item clicked). */
  screen: "overview",
  focus: null as string | null,
  /** Minor-unit digits per currency code, as the hub names them (loaded by the ledger). */
  digits: {} as Record<string, number>,
  progress: null as null | { task: string; done: number; total: number },
});

export function setLang(l: Lang) {
  ui.lang = l;
  localStorage.setItem("aidmesh.lang", l);
  document.documentElement.lang = l;
  document.documentElement.dir = RTL.includes(l) ? "rtl" : "ltr";
}

export function setTheme(t: string) {
  ui.theme = t;
  localStorage.setItem("aidmesh.theme", t);
  document.documentElement.dataset.theme = t;
}

/** The paper sheets are laid out for, on a printer and in saved PDFs. */
export function setPaper(p: Paper) {
  ui.paper = p;
  localStorage.setItem("aidmesh.paper", p);
  let style = document.getElementById("page-size");
  if (!style) {
    style = document.createElement("style");
    style.id = "page-size";
    document.head.append(style);
  }
  style.textContent = `@page { size: ${p === "letter" ? "letter" : "A4"}; margin: 15mm; }`;
}

/** Shows `screen`, opening record `id` there if the screen shows records one by one. */
export function open(screen: string, id: string | null = null) {
  ui.focus = id;
  ui.screen = screen;
}

export function t(key: Key, vars?: Record<string, string | number>): string {
  return translate(ui.lang, key, vars);
}

export function watch(backend: Backend): () => void {
  return backend.onEvent((e: HubEvent) => {
    if (e.type === "records_changed" || e.type === "authority_changed" || e.type === "vault_changed") ui.changes++;
    if (e.type === "peers_changed") ui.peers++;
    if (e.type === "progress") ui.progress = e.done >= e.total ? null : e;
  });
}

/** Shows only one form (ICS 211, ICS 214) in the print layout while `action` prints it. */
export async function withPrintView<T>(name: string | undefined, action: () => Promise<T>): Promise<T> {
  if (name) document.body.dataset.print = name;
  try {
    return await action();
  } finally {
    delete document.body.dataset.print;
  }
}

/** Prints one form (ICS 211, ICS 214), or the screen's print layout, through the system dialog. */
export function printView(name?: string) {
  if (name) document.body.dataset.print = name;
  const done = () => {
    delete document.body.dataset.print;
    window.removeEventListener("afterprint", done);
  };
  window.addEventListener("afterprint", done);
  window.print();
}

/** Runs `load` now and again whenever the hub reports a change (here, from a peer, a bundle).
 *  Call it while a component initialises. */
export function live(load: () => unknown) {
  $effect(() => {
    void ui.changes;
    load();
  });
}

/**
 * Shows the hub's peers now and again whenever they change (`peers_changed`): no timer. An
 * answer that comes back after a newer question was asked is dropped, so the newest one shows.
 */
export function livePeers(ask: () => Promise<Peers>, show: (p: Peers) => void, said: (error: string) => void) {
  let asked = 0;
  $effect(() => {
    void ui.peers;
    const mine = ++asked;
    ask().then(
      (p) => mine === asked && (show(p), said("")),
      (e) => mine === asked && said(errorMessage(e)),
    );
  });
}

/** Runs an action; resolves to its error message for people, or "" when it worked. */
export async function attempt(action: () => Promise<unknown>): Promise<string> {
  try {
    await action();
    return "";
  } catch (e) {
    return errorMessage(e);
  }
}
