import type { ApiError, Backend, Fields, HubEvent, Overview, Rec, StockLine } from "./backend";

// An in-memory hub for unit tests and for working on the UI in a browser. It keeps the rules
// the screens rely on (required fields, stock as the sum of movements, approvals) but none of
// the storage, sync or security of the real hub.

const TEMPLATES: Record<string, Fields> = {
  place: { name: "", location: "", type: "site", notes: "", hub: null },
  item: { name: "", unit: "", category: "other", condition: "good", expiry: null, place: null, reorder_level: 0, notes: "" },
  movement: { type: "receive", item: "", place: "", quantity: 0, to_place: null, counted: null, reason: "" },
  request: { description: "", item: null, quantity: 0, urgency: "normal", status: "open", place: null, needed_by: null, notes: "" },
  offer: { description: "", item: null, quantity: 0, status: "open", place: null, notes: "" },
  volunteer: { handle: "", skills: [], languages: [], availability: "", access_needs: "", notes: "" },
  role: { name: "", skill: null, outputs: "", success_measure: "", handoff_notes: "" },
  shift: { role: "", place: "", start: "", end: "", needed: 1, notes: "" },
  assignment: { shift: "", volunteer: "", active: true },
  check_in: { volunteer: "", shift: null, place: null, checked_in: "", checked_out: null, notes: "" },
  handoff: { shift: "", note: "", next_shift: null },
  follow_up: { incident: "", action: "", owner: "", due: null, done: false },
  allocation: { request: "", offer: null, item: null, place: null, quantity: 0, status: "active" },
  incident: { occurred: "", place: null, category: "other", severity: 1, description: "", reporter: "", status: "open" },
  expense: { date: "", amount_minor: 0, currency: "EUR", fund: "", category: "", payee: "", purpose: "", receipt: "" },
  approval: { expense: "", decision: "approve", approver: "", note: "" },
  grievance: { summary: "", details: "", confidential: false, status: "received", resolution: "" },
  after_action: { title: "", incident: null, worked: "", did_not_work: "", why: "", actions: "" },
};

const REQUIRED: Record<string, string[]> = {
  place: ["name"],
  item: ["name", "unit"],
  movement: ["item", "place"],
  request: ["description"],
  volunteer: ["handle"],
  shift: ["role", "place", "start", "end"],
  assignment: ["shift", "volunteer"],
  incident: ["description", "occurred"],
  expense: ["payee", "fund", "currency"],
  approval: ["expense", "approver"],
  grievance: ["summary"],
  after_action: ["title"],
};

function fail(code: string, message: string): never {
  throw { code, message } satisfies ApiError;
}

export function mockBackend(opts: { now?: () => Date } = {}): Backend & { records: Rec[]; chosenFile: string | null } {
  const now = opts.now ?? (() => new Date());
  let created = false;
  let unlocked = false;
  let passphrase = "";
  let seq = 0;
  const records: Rec[] = [];
  const listeners: ((e: HubEvent) => void)[] = [];
  const emit = (e: HubEvent) => listeners.forEach((l) => l(e));
  const get = (id: string) => records.find((r) => r.id === id) ?? fail("not_found", `no record with id ${id}`);
  const need = () => (unlocked ? undefined : fail("locked", "the hub is locked: unlock it first"));
  const stockLines = (item: string | null): StockLine[] => {
    const m = new Map<string, number>();
    for (const r of records.filter((r) => r.kind === "movement" && (!item || r.item === item))) {
      const q = Number(r.quantity);
      const add = (place: string, d: number) => m.set(`${r.item}|${place}`, (m.get(`${r.item}|${place}`) ?? 0) + d);
      if (r.type === "receive") add(String(r.place), q);
      if (r.type === "issue") add(String(r.place), -q);
      if (r.type === "transfer") {
        add(String(r.place), -q);
        add(String(r.to_place), q);
      }
    }
    return [...m].map(([k, quantity]) => ({ item: k.split("|")[0], place: k.split("|")[1], quantity }));
  };
  const level = (item: string) => stockLines(item).reduce((s, l) => s + l.quantity, 0);

  const backend: Backend & { records: Rec[] } = {
    records,
    async status() {
      return { store_exists: created, unlocked, store_path: "(in memory)" };
    },
    async createHub(hubName, location, handle, pass) {
      if (!hubName.trim()) fail("invalid", "the hub name is required");
      if (!handle.trim()) fail("invalid", "your handle (a nickname, not your legal name) is required");
      if (pass.length < 8) fail("invalid", "the passphrase needs at least 8 characters");
      created = unlocked = true;
      passphrase = pass;
      await backend.add("place", { name: hubName, location });
    },
    async joinHub(code, hubName, location, handle, pass) {
      if (!/^[a-z2-7-]{20,}$/i.test(code.trim())) fail("invalid", "invite code: not an aidmesh invite code");
      emit({ type: "join", confirmation: "4711-0815" });
      await backend.createHub(hubName, location, handle, pass);
    },
    async inviteCreate() {
      return { code: "mock-invite-code", qr_svg: "", expires_min: 0 };
    },
    async inviteAnswer() {},
    async unlock(pass) {
      if (pass !== passphrase) fail("wrong_passphrase", "wrong passphrase");
      unlocked = true;
    },
    async overview(): Promise<Overview> {
      need();
      const items = records.filter((r) => r.kind === "item");
      return {
        hub_name: "Mock hub",
        now: now().toISOString(),
        shortages: items
          .filter((i) => Number(i.reorder_level) > 0 && level(i.id) < Number(i.reorder_level))
          .map((i) => ({ item: i.id, name: String(i.name), level: level(i.id), reorder_level: Number(i.reorder_level) })),
        expiring: [],
        urgent_requests: records.filter((r) => r.kind === "request" && r.urgency === "urgent" && r.status === "open"),
        unfilled_shifts: [],
        recent_incidents: records.filter((r) => r.kind === "incident"),
        over_allocations: [],
        double_bookings: [],
        field_conflicts: [],
        unapproved_expenses: records.filter(
          (r) => r.kind === "expense" && !records.some((a) => a.kind === "approval" && a.expense === r.id),
        ),
        counts: Object.fromEntries(Object.keys(TEMPLATES).map((k) => [k, records.filter((r) => r.kind === k).length])),
      };
    },
    async list(kind, limit, offset) {
      need();
      return records.filter((r) => r.kind === kind).slice(offset, offset + limit);
    },
    async search(query, kind, limit) {
      need();
      const q = query.toLowerCase();
      return records
        .filter((r) => (!kind || r.kind === kind) && JSON.stringify(r).toLowerCase().includes(q))
        .slice(0, limit)
        .map((r) => ({ id: r.id, kind: r.kind, label: String(r.name ?? r.description ?? r.summary ?? r.id) }));
    },
    async show(id) {
      need();
      const movements = records.filter((r) => r.kind === "movement" && r.item === id).reverse();
      return { record: get(id), movements, history: [{ at: String(get(id).created_at), by: "mock", hub: "mock", message: "created" }] };
    },
    async template(kind) {
      return structuredClone(TEMPLATES[kind] ?? fail("invalid", `unknown record kind "${kind}"`));
    },
    async add(kind, fields) {
      need();
      const t = TEMPLATES[kind] ?? fail("invalid", `unknown record kind "${kind}"`);
      const rec = { ...structuredClone(t), ...fields } as Fields;
      const missing = (REQUIRED[kind] ?? []).filter((f) => rec[f] === "" || rec[f] === null || rec[f] === undefined);
      if (missing.length) fail("invalid", `invalid ${kind}: ${missing.map((f) => `${f}: is required`).join("; ")}`);
      if (kind === "movement") {
        const q = Number(rec.quantity);
        if (!(q > 0) && rec.type !== "count") fail("invalid", "invalid movement: quantity: must be more than 0");
        if (rec.type === "issue" && level(String(rec.item)) < q)
          fail("invalid", `invalid movement: quantity: only ${level(String(rec.item))} in stock`);
      }
      const r = { ...rec, id: `m${++seq}`, kind, created_at: now().toISOString(), created_hub: "mock" } as Rec;
      records.push(r);
      emit({ type: "records_changed", ids: [r.id] });
      return r;
    },
    async update(id, fields) {
      need();
      const r = get(id);
      Object.assign(r, fields);
      emit({ type: "records_changed", ids: [id] });
      return r;
    },
    async amend(id, field, value, reason) {
      need();
      if (!reason.trim()) fail("invalid", "invalid amendment: reason: is required");
      const r = get(id);
      r[field] = value;
      emit({ type: "records_changed", ids: [id] });
      return r;
    },
    async stock(item) {
      need();
      return stockLines(item);
    },
    async levels(items) {
      need();
      return Object.fromEntries(items.map((i) => [i, level(i)]));
    },
    async suggestions() {
      return [];
    },
    async roster() {
      need();
      return { shifts: records.filter((r) => r.kind === "shift"), unfilled: [], double_bookings: [] };
    },
    async ledger() {
      need();
      const unapproved = (await backend.overview()).unapproved_expenses.map((r) => ({
        ...r,
        approval: { state: "unapproved", have: 0, need: 1, why: "needs 1 approval from a role allowed to authorise it" },
      }));
      return { totals: { per_fund: [], per_category: [] }, unapproved };
    },
    async peers() {
      return { listening: "127.0.0.1:7420", peers: [] };
    },
    async identity() {
      return { hub_name: "Mock hub", fingerprint: "mock-mock-mock", public_key: "00", members: [], has_coalition_key: true };
    },
    async addPeer(addr) {
      if (!/^[\d.]+:\d+$/.test(addr.trim())) fail("invalid", `"${addr}" is not an address like 192.168.1.20:7420`);
    },
    async revoke() {},
    async exportBundle() {
      fail("io", "the mock hub writes no files");
    },
    async importBundle() {
      fail("io", "the mock hub reads no files");
    },
    /** What the file chooser answers next (tests set it; null is a cancel). */
    chosenFile: "/media/stick/chosen.bundle" as string | null,
    async chooseFile() {
      return this.chosenFile;
    },
    async savePdf(sheet, paper) {
      if (!/^[a-z0-9-]+$/.test(sheet)) throw { code: "invalid", message: `sheet "${sheet}" is not a sheet name` };
      return { path: `/pdf/${sheet}-${paper}.pdf`, bytes: 1234 };
    },
    async exportJson() {
      return records.length;
    },
    async changePassphrase(current, next) {
      if (current !== passphrase) fail("wrong_passphrase", "wrong passphrase");
      if (next.length < 8) fail("invalid", "the passphrase needs at least 8 characters");
      passphrase = next;
    },
    onEvent(f) {
      listeners.push(f);
      return () => listeners.splice(listeners.indexOf(f), 1);
    },
  };
  return backend;
}
