import { mount } from "svelte";
import App from "./App.svelte";
import "./app.css";
import { tauriBackend } from "./lib/tauri";
import { mockBackend } from "./lib/mock";

// Outside the desktop shell (a plain browser, `vite dev`), the mock backend stands in.
const inTauri = "__TAURI_INTERNALS__" in window;
const app = mount(App, {
  target: document.getElementById("app")!,
  props: { backend: inTauri ? tauriBackend() : mockBackend() },
});
export default app;
