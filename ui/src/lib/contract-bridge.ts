// The app's own commands over a Unix socket, for the contract tests: the Rust side
// (src-tauri/tests/contract.rs) runs them on Tauri's mock runtime over a real hub and store.
// One JSON object per line each way: {id, cmd, args} → {id, ok} | {id, err}; events arrive as
// {event}. `__reset` gives a fresh, empty data folder and no running hub.
import { createConnection, type Socket } from "node:net";
import type { Backend, HubEvent } from "./backend";
import { tauriBackend, type Ipc } from "./tauri";

class Bridge implements Ipc {
  private next = 1;
  private waiting = new Map<number, { ok: (v: unknown) => void; err: (e: unknown) => void }>();
  private listeners = new Set<(e: HubEvent) => void>();
  private buffer = "";

  constructor(private socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.buffer += chunk;
      let nl: number;
      while ((nl = this.buffer.indexOf("\n")) >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        const m = JSON.parse(line);
        if ("event" in m) this.listeners.forEach((f) => f(m.event as HubEvent));
        else {
          const w = this.waiting.get(m.id);
          this.waiting.delete(m.id);
          if ("ok" in m) w?.ok(m.ok);
          else w?.err(m.err);
        }
      }
    });
  }

  invoke<T>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.next++;
    return new Promise<T>((ok, err) => {
      this.waiting.set(id, { ok: ok as (v: unknown) => void, err });
      this.socket.write(JSON.stringify({ id, cmd, args }) + "\n");
    });
  }

  listen(f: (e: HubEvent) => void): () => void {
    this.listeners.add(f);
    return () => void this.listeners.delete(f);
  }
}

let bridge: Bridge | null = null;

/** A fresh real hub's Backend: the data folder emptied, the UI's own `tauriBackend` over it. */
export async function bridgeBackend(path: string): Promise<Backend> {
  if (!bridge) {
    const socket = createConnection(path);
    await new Promise<void>((ok, err) => socket.once("connect", ok).once("error", err));
    bridge = new Bridge(socket);
  }
  await bridge.invoke("__reset");
  return tauriBackend(bridge);
}
