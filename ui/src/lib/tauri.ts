import { invoke as tauriInvoke } from "@tauri-apps/api/core";
import { listen as tauriListen } from "@tauri-apps/api/event";
import type { Backend, HubEvent } from "./backend";

/** How commands reach the shell: Tauri's IPC in the app; a socket to the same commands in the
 * contract tests (`contract-bridge.ts`). */
export interface Ipc {
  invoke<T>(cmd: string, args?: Record<string, unknown>): Promise<T>;
  /** Calls `f` with each `hub-event`; answers how to stop. */
  listen(f: (e: HubEvent) => void): () => void;
}

const tauriIpc: Ipc = {
  invoke: (cmd, args) => tauriInvoke(cmd, args),
  listen(f) {
    const un = tauriListen<HubEvent>("hub-event", (e) => f(e.payload));
    return () => void un.then((u) => u());
  },
};

/** The desktop shell's commands (src-tauri/src/commands.rs), one to one. */
export function tauriBackend(ipc: Ipc = tauriIpc): Backend {
  const invoke: Ipc["invoke"] = (cmd, args) => ipc.invoke(cmd, args);
  return {
    status: () => invoke("status"),
    createHub: (hubName, location, handle, passphrase) => invoke("create_hub", { hubName, location, handle, passphrase }),
    joinHub: (code, hubName, location, handle, passphrase) =>
      invoke("join_hub", { code, hubName, location, handle, passphrase }),
    unlock: (passphrase, handle) => invoke("unlock", { passphrase, handle }),
    inviteCreate: (minutes, advertise) => invoke("invite_create", { minutes, advertise }),
    inviteAnswer: (accept) => invoke("invite_answer", { accept }),
    overview: () => invoke("overview"),
    list: (kind, limit, offset) => invoke("list", { kindName: kind, limit, offset }),
    search: (query, kind, limit) => invoke("search", { query, kindName: kind, limit }),
    show: (id) => invoke("show", { id }),
    template: (kind) => invoke("template", { kindName: kind }),
    add: (kind, fields) => invoke("add", { kindName: kind, fields }),
    update: (id, fields) => invoke("update", { id, fields }),
    amend: (id, field, value, reason) => invoke("amend", { id, field, value, reason }),
    allocate: (request, source, quantity) => invoke("allocate", { request, source, quantity }),
    stepAllocation: (id, step) => invoke("step_allocation", { id, step }),
    requestStatus: (id, status) => invoke("request_status", { id, status }),
    stock: (item) => invoke("stock", { item }),
    places: () => invoke("places"),
    storedAt: (place) => invoke("stored_at", { place }),
    levels: (items) => invoke("levels", { items }),
    suggestions: (request) => invoke("suggestions", { request }),
    roster: (from, hours) => invoke("roster", { from, hours }),
    ledger: () => invoke("ledger"),
    peers: () => invoke("peers"),
    identity: () => invoke("identity"),
    addPeer: (addr) => invoke("add_peer", { addr }),
    revoke: (hub) => invoke("revoke", { hub }),
    rotateSecret: () => invoke("rotate_secret"),
    internet: () => invoke("internet"),
    setInternet: (on) => invoke("set_internet", { on }),
    setInternetBudget: (bytes) => invoke("set_internet_budget", { bytes }),
    exportBundle: (path, full) => invoke("export_bundle", { path, full }),
    importBundle: (path) => invoke("import_bundle", { path }),
    exportJson: (path) => invoke("export_json", { path }),
    savePdf: (sheet, paper) => invoke("save_pdf", { sheet, paper }),
    chooseFile: (save, title, suggested) => invoke("choose_file", { save, title, suggested: suggested ?? null }),
    changePassphrase: (current, next) => invoke("change_passphrase", { current, new: next }),
    currencies: () => invoke("currencies"),
    authority: () => invoke("authority"),
    peopleHere: () => invoke("people_here"),
    unlockPerson: (who, pin) => invoke("unlock_person", { who, pin }),
    lockPerson: () => invoke("lock_person"),
    makePerson: (handle, pin) => invoke("make_person", { handle, pin }),
    addPerson: (key, handle, admin) => invoke("add_person", { key, handle, admin }),
    removePerson: (who) => invoke("remove_person", { who }),
    setAdmin: (who, admin) => invoke("set_admin", { who, admin }),
    endorse: (who) => invoke("endorse", { who }),
    voteAdmin: (who) => invoke("vote_admin", { who }),
    keyProof: (person) => invoke("key_proof", { person }),
    addKey: (key, proof) => invoke("add_key", { key, proof }),
    grant: (who, role, give) => invoke("grant", { who, role, give }),
    contacts: () => invoke("contacts"),
    setContact: (record, fields) => invoke("set_contact", { record, fields }),
    readContact: (record, reason) => invoke("read_contact", { record, reason }),
    eraseContact: (record) => invoke("erase_contact", { record }),
    contactReads: (limit) => invoke("contact_reads", { limit }),
    grievanceStep: (id, note, status) => invoke("grievance_step", { id, note, status }),
    acknowledgeHandoff: (id) => invoke("acknowledge_handoff", { id }),
    close: (id) => invoke("close_record", { id }),
    onEvent: (f) => ipc.listen(f),
  };
}
