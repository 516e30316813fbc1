import type {
  AllocationStep,
  ApiError,
  Authority,
  Backend,
  ContactRead,
  ContactView,
  Fields,
  FlowStatus,
  HubEvent,
  Identity,
  HubRecord,
  Kind,
  Listed,
  ListedOf,
  LocalPerson,
  Overview,
  Peer,
  Rec,
  RecordView,
  Source,
  StockLine,
  SuggestionView,
  WaitingChange,
} from "./backend";

// An in-memory hub for unit tests and for working on the UI in a browser. It keeps the rules
// the screens rely on, as `contract.ts` states them (required fields, the passphrase rule,
// stock as the sum of movements, amendments, the request loop, who may do what in the
// authority log) but none of the storage, sync or security of the real hub: its keys are made
// up and nothing is signed. The contract runs against it and against the real hub alike.

// As the hub says it (`ACCESS_NEEDS_IN_THE_VAULT`): health data is kept with the contact.
const ACCESS_NEEDS =
  "are health data, kept with the person's contact in the vault, where they can be erased: write them in the contact form (aidmesh vault contact ID access_needs=…), never in the record, whose history every hub keeps for good";

const TEMPLATES: Record<string, Fields> = {
  hub: { name: "", location: "", channel: "" },
  place: { name: "", location: "", type: "site", notes: "", hub: null },
  item: { name: "", unit: "", category: "other", condition: "good", expiry: null, reorder_level: 0, place: null, notes: "" },
  movement: { item: "", type: "receive", quantity: 0, place: "", to_place: null, counted: null, reason: "" },
  request: {
    item: null,
    category: null,
    skill: null,
    description: "",
    quantity: 0,
    place: null,
    urgency: "normal",
    needed_from: null,
    needed_by: null,
    status: "open",
    contact: null,
    notes: "",
  },
  offer: {
    item: null,
    category: null,
    skill: null,
    description: "",
    quantity: 0,
    place: null,
    available_until: null,
    expiry: null,
    status: "open",
    contact: null,
    notes: "",
  },
  volunteer: {
    handle: "",
    skills: [],
    languages: [],
    availability: "",
    access_needs: "",
    consent: { contact: false, photo: false, share: false },
    contact: null,
    notes: "",
  },
  role: { name: "", skill: null, outputs: "", success_measure: "", handoff_notes: "" },
  shift: { role: "", place: "", start: "", end: "", needed: 1, notes: "" },
  assignment: { shift: "", volunteer: "", active: true },
  check_in: { volunteer: "", shift: null, place: null, checked_in: "", checked_out: null, notes: "" },
  handoff: { shift: "", note: "", next_shift: null, acknowledged_by: null },
  follow_up: { incident: "", action: "", owner: "", due: null, done: false },
  allocation: { request: "", offer: null, item: null, place: null, quantity: 0, status: "active" },
  incident: { occurred: "", place: null, category: "other", severity: 1, description: "", reporter: "", status: "open" },
  amendment: { target: "", field: "", value: null, reason: "" },
  expense: { amount_minor: 0, currency: "EUR", payee: "", purpose: "", fund: "", category: "", receipt: "", date: "" },
  approval: { expense: "", decision: "approve", approver: "", note: "", signer: "", sig: "" },
  role_grant: { handle: "", role: "", revoked: false, signer: "", sig: "" },
  member_entry: { action: null, at: "1970-01-01T00:00:00Z", signer: "", sig: "" },
  grievance: { summary: "", details: "", confidential: false, readers: [], involved: [], status: "received", resolution: "", facilitator: "", steps: [] },
  after_action: { title: "", incident: null, worked: "", did_not_work: "", why: "", actions: "", action_items: [] },
  policy: { currency: "", limits: [], threshold_minor: 0, approvals_above_threshold: 1, effective: "" },
};

const REQUIRED: Record<string, string[]> = {
  place: ["name"],
  item: ["name", "unit"],
  movement: ["item", "place"],
  volunteer: ["handle"],
  shift: ["role", "place", "start", "end"],
  assignment: ["shift", "volunteer"],
  incident: ["description", "occurred"],
  amendment: ["reason"],
  expense: ["payee", "fund", "currency"],
  approval: ["expense", "approver"],
  grievance: ["summary"],
  after_action: ["title"],
};

const APPEND_ONLY = new Set([
  "role_grant", "member_entry", "movement", "handoff", "incident", "amendment", "expense", "approval", "check_in", "follow_up",
]);

function fail(code: string, message: string): never {
  throw { code, message } satisfies ApiError;
}

const active = (s: unknown) => s !== "fulfilled" && s !== "cancelled";

export function mockBackend(opts: { now?: () => Date } = {}): Backend & { records: Rec[]; chosenFile: string | null } {
  const now = opts.now ?? (() => new Date());
  let created = false;
  let unlocked = false;
  let passphrase = "";
  let handle = "";
  let seq = 0;
  const records: Rec[] = [];
  // People: the keys this laptop keeps, the coalition's people, changes waiting for admins.
  type Kept = LocalPerson & { secretPin: string | null };
  // `key` is who they are (their first key); `more` their keys made at other hubs.
  type Person = { handle: string; key: string; admin: boolean; roles: string[]; since: string; addedBy: string; more: string[] };
  type Waiting = { entry: string; target: string; change: WaitingChange; signed: string[] };
  let coalition = "";
  let kept: Kept[] = [];
  let people: Person[] = [];
  let waiting: Waiting[] = [];
  // While no admin is left: votes to make someone an admin (candidate key → voters' keys).
  let votes = new Map<string, string[]>();
  let acting: LocalPerson | null = null;
  let keySeq = 0;
  const listeners: ((e: HubEvent) => void)[] = [];
  const emit = (e: HubEvent) => listeners.forEach((l) => l(e));
  const connected: Peer[] = [];
  let internetOn = true;
  let internetBudget: number | null = null;
  const internetSync = () => ({ on: internetOn, relays: [], budget: internetBudget, used_today: 0 });
  // The coalition's member hubs, as the authority log admits them: this one, and the hubs the
  // mock's dial connects to (`addPeer`), in turn.
  const members: Identity["members"] = [
    { id: "mock-mock-mock", name: "Mock hub", role: "member", since: "2026-11-20T08:00:00Z" },
    ...[1, 2].map((n) => ({ id: `mock-peer-${n}`, name: `Peer ${n}`, role: "member", since: "2026-11-20T08:00:00Z" })),
  ];
  const find = (id: string) => records.find((r) => r.id === id);
  const get = (id: string) => find(id) ?? fail("not_found", `no record with id ${id}`);
  const need = () => (unlocked ? undefined : fail("locked", "the hub is locked: unlock it first"));

  // A made-up Ed25519-sized key (64 hex digits) and its fingerprint, grouped as the hub's are.
  const newKey = (seed: string) => {
    let h = 2166136261 ^ ++keySeq;
    let out = "";
    for (let i = 0; out.length < 64; i++) {
      h = Math.imul(h ^ (seed.charCodeAt(i % Math.max(seed.length, 1)) || 0) ^ i, 16777619) >>> 0;
      out += h.toString(16).padStart(8, "0");
    }
    return out.slice(0, 64);
  };
  const fingerprintOf = (key: string) => key.slice(0, 16).match(/.{4}/g)!.join("-");
  const localView = (k: Kept): LocalPerson => ({ handle: k.handle, key: k.key, fingerprint: k.fingerprint, pin: k.pin });
  const admins = () => people.filter((p) => p.admin);
  const personOf = (key: string) => people.find((p) => p.key === key || p.more.includes(key));
  // Proofs made here (`keyProof`): which key signed for which person. The real hub checks a
  // signature; the mock, that it made this proof.
  const proofs = new Map<string, { key: string; person: string }>();
  // Every key ever given to a person: a key is never given twice.
  const usedKeys = new Set<string>();
  const nameOf = (key: string) => personOf(key)?.handle ?? key.slice(0, 8);
  const personKey = (who: string) => {
    const w = who.trim();
    const p = people.find((x) => x.handle === w) ?? people.find((x) => x.key === w || fingerprintOf(x.key) === w);
    return p ? p.key : fail("not_found", `no record with id person "${w}" in the coalition`);
  };
  /** The acting person, if they are a person of the coalition (what signing needs). */
  const signer = (): Person => {
    if (!acting) return fail("not_allowed", "not allowed: no one is unlocked at this hub: unlock yourself with your PIN first");
    return (
      personOf(acting.key) ??
      fail("not_allowed", `not allowed: ${acting.handle} is not a person of the coalition (or was removed): an admin adds them by their key`)
    );
  };
  const admin = (): Person => {
    const me = signer();
    return me.admin ? me : fail("not_allowed", `not allowed: ${me.handle} is not an admin of the coalition`);
  };
  // Removing or demoting an admin needs a majority of the other admins (the remover counts);
  // making an admin, a majority of the admins.
  const completeIfEnough = (w: Waiting) => {
    const others = admins()
      .map((a) => a.key)
      .filter((k) => k !== w.target);
    const have = w.signed.filter((k) => others.includes(k)).length;
    if (have <= Math.floor(others.length / 2)) return false;
    waiting = waiting.filter((x) => x !== w);
    complete(w);
    return true;
  };
  const complete = (w: Waiting) => {
    if (w.change === "promotion") personOf(w.target)!.admin = true;
    else if (w.change === "demotion") personOf(w.target)!.admin = false;
    else {
      people = people.filter((p) => p.key !== w.target);
      waiting = waiting.filter((x) => x.target !== w.target);
    }
  };
  const start = (by: string, target: string, change: WaitingChange) => {
    const w: Waiting = { entry: newKey("entry"), target, change, signed: [by] };
    if (change !== "promotion" && !personOf(target)!.admin) {
      complete(w);
      return;
    }
    waiting.push(w);
    completeIfEnough(w);
  };
  const ofKind = (k: string) => records.filter((r) => r.kind === k);
  type Step = { at: string; by: string; note: string; status: string };
  type Action = { action: string; owner: string; due: string | null; done: boolean; done_at: string | null };
  /** Who a step or an acknowledgement is by: the unlocked person, else the hub's handle. */
  const actor = () => acting?.handle ?? handle;
  // The vault: contacts kept outside records, by vault id; and who read which, newest first.
  type Entry = { fields: Record<string, string>; erasedAt: string | null; local: boolean; at: string };
  const vault = new Map<string, Entry>();
  const reads: ContactRead[] = [];
  // An erasure destroys the content and blanks the reasons given for reading it (who and when
  // stay), as the hub's store does.
  const eraseEntry = (vid: string) => {
    const e = vault.get(vid);
    if (!e) return;
    e.fields = {};
    e.erasedAt ??= now().toISOString();
    for (const read of reads) if (read.vault === vid) read.reason = "";
  };
  const withContact = (id: string) => {
    const r = get(id);
    if (!["volunteer", "request", "offer"].includes(r.kind))
      fail("invalid", `invalid ${r.kind}: contact: a ${r.kind} names no person's contact; volunteers, requests and offers do`);
    return r;
  };
  const contactView = (r: Rec): ContactView => {
    const e = r.contact ? vault.get(String(r.contact)) : undefined;
    const state: ContactView["state"] = !r.contact
      ? { state: "none" }
      : !e
        ? { state: "not_here" }
        : e.erasedAt
          ? { state: "erased", at: e.erasedAt }
          : { state: "held", updated_at: e.at, here_only: e.local, ours: true };
    return {
      record: r.id,
      kind: r.kind as ContactView["kind"],
      label: String(r.handle || r.description || ""),
      consent: r.kind === "volunteer" ? ({ ...(r.consent as object) } as ContactView["consent"]) : null,
      vault: r.contact ? String(r.contact) : null,
      state,
    };
  };
  const label = (r: Rec | undefined) =>
    r ? String(r.name || r.description || r.summary || r.title || r.payee || r.id) : "";
  const stockLines = (item: string | null): StockLine[] => {
    const m = new Map<string, number>();
    for (const r of ofKind("movement").filter((r) => !item || r.item === item)) {
      const q = Number(r.quantity);
      const add = (place: string, d: number) => m.set(`${r.item}|${place}`, (m.get(`${r.item}|${place}`) ?? 0) + d);
      if (r.type === "receive" || r.type === "adjust") add(String(r.place), q);
      if (r.type === "issue" || r.type === "discard") add(String(r.place), -q);
      if (r.type === "transfer") {
        add(String(r.place), -q);
        add(String(r.to_place), q);
      }
    }
    return [...m]
      .filter(([, q]) => q !== 0)
      .map(([k, quantity]) => ({ item: k.split("|")[0], place: k.split("|")[1], quantity }));
  };
  const level = (item: string, place?: string) =>
    stockLines(item)
      .filter((l) => !place || l.place === place)
      .reduce((s, l) => s + l.quantity, 0);
  const amendmentsOf = (id: string) => ofKind("amendment").filter((a) => a.target === id);
  const amended = (r: Rec): Rec => {
    const ams = amendmentsOf(r.id);
    return ams.length ? ({ ...r, ...Object.fromEntries(ams.map((a) => [a.field, a.value])) } as Rec) : r;
  };
  // A confidential grievance as the acting person may read it (the hub's rule, `readable_by`).
  const readable = (r: Rec) => {
    if (r.kind !== "grievance") return true;
    if ((r.involved as string[]).includes(handle)) return false;
    return !r.confidential || (r.readers as string[]).includes(handle);
  };
  const redacted = (r: Rec): Rec =>
    readable(r)
      ? r
      : ({ ...r, summary: "[confidential]", details: "[confidential]", resolution: "[confidential]", readers: [], involved: [], steps: [], facilitator: "" } as Rec);
  const listed = (r: Rec) => ({ ...redacted(amended(r)), amended: amendmentsOf(r.id).length > 0 }) as unknown as Listed;
  const allocations = (field: string, id: string) => ofKind("allocation").filter((a) => a[field] === id);
  const held = (a: Rec) => a.status !== "released";

  const write = (kind: Kind, fields: Fields): Rec => {
    const t = TEMPLATES[kind] ?? fail("invalid", `unknown record kind "${kind}"`);
    const rec = { ...structuredClone(t), ...fields } as Fields;
    const missing = (REQUIRED[kind] ?? []).filter((f) => rec[f] === "" || rec[f] === null || rec[f] === undefined);
    if (missing.length) fail("invalid", `invalid ${kind}: ${missing.map((f) => `${f}: is required`).join("; ")}`);
    // Approvals are signed as the unlocked person, whose handle replaces the one typed (the hub
    // wants one there all the same); expenses are recorded by a person of the coalition.
    const named = rec.contact !== null && rec.contact !== undefined;
    if (named && !/^v[0-9a-hjkmnp-tv-z]{26}$/.test(String(rec.contact)))
      fail("invalid", `invalid ${kind}: contact: ${JSON.stringify(rec.contact)} is no vault id: a contact is set with the contact form, never typed into the record`);
    if (named) fail("invalid", `invalid ${kind}: contact: a new record names no contact: set it with the contact form once the record exists`);
    if (kind === "volunteer" && String(rec.access_needs ?? "").trim() !== "") fail("invalid", `invalid volunteer: access_needs: ${ACCESS_NEEDS}`);
    if (kind === "approval") rec.approver = signer().handle;
    if (kind === "expense") signer();
    if (kind === "grievance" && (rec.steps as unknown[]).length)
      fail("invalid", "invalid grievance: steps: are added one at a time once the grievance is recorded (aidmesh grievance-step ID NOTE)");
    if (kind === "grievance" && rec.facilitator && (rec.involved as string[]).includes(String(rec.facilitator)))
      fail("invalid", `invalid grievance: facilitator: ${rec.facilitator} is involved and so recused: they cannot facilitate it`);
    if (kind === "handoff" && rec.acknowledged_by)
      fail("invalid", "invalid handoff: acknowledged_by: is set by the next shift acknowledging it (aidmesh acknowledge ID)");
    if (kind === "amendment" && rec.field === "acknowledged_by") {
      if (rec.value !== actor()) fail("invalid", `invalid amendment: value: a handoff is acknowledged by whoever reads it: ${actor()}, not another name`);
      const h = amended(get(String(rec.target)));
      if (h.acknowledged_by) fail("invalid", `invalid handoff: acknowledged_by: ${h.acknowledged_by} already acknowledged it`);
    }
    if (kind === "policy") {
      const limits = rec.limits as { role: string; max_minor: number }[];
      const errs: string[] = [];
      if (!/^[A-Z]{3}$/.test(String(rec.currency))) errs.push(`currency: "${rec.currency}" is not an ISO 4217 currency code`);
      if (!limits.length) errs.push("limits: name at least one role that may authorise purchases");
      for (const l of limits)
        if (!(l.max_minor > 0) || !l.role.trim()) errs.push(`limits: limit for "${l.role}" needs a role and a positive amount`);
      if (Number(rec.threshold_minor) < 0) errs.push("threshold_minor: must not be negative");
      if (!(Number(rec.approvals_above_threshold) >= 1) || !Number.isInteger(Number(rec.approvals_above_threshold)))
        errs.push("approvals_above_threshold: must be at least 1");
      if (errs.length) fail("invalid", `invalid policy: ${errs.join("; ")}`);
      admin();
    }
    if ((kind === "request" || kind === "offer" || kind === "allocation") && !(Number(rec.quantity) > 0))
      fail("invalid", `invalid ${kind}: quantity: must be greater than zero`);
    if ((kind === "request" || kind === "offer") && !rec.item && !rec.category && !rec.skill)
      fail("invalid", `invalid ${kind}: item: say what: an item, a category or a skill`);
    if (kind === "movement") {
      const q = Number(rec.quantity);
      if (!(q > 0) && rec.type !== "adjust") fail("invalid", `invalid movement: quantity: must be greater than zero, got ${q}`);
      const have = level(String(rec.item), String(rec.place));
      if ((rec.type === "issue" || rec.type === "transfer" || rec.type === "discard") && have < q)
        fail("invalid", `invalid movement: quantity: only ${have} in stock at that place, cannot take ${q}`);
    }
    if (kind === "amendment") {
      const target = get(String(rec.target));
      if (!(String(rec.field) in target)) fail("invalid", `invalid amendment: field: ${target.kind} has no field ${rec.field}`);
    }
    const r = {
      ...rec,
      id: `m${String(++seq).padStart(6, "0")}`,
      kind,
      created_at: now().toISOString(),
      created_hub: "mock",
      created_by: handle,
    } as Rec;
    records.push(r);
    emit({ type: "records_changed", ids: [r.id] });
    return r;
  };
  const patch = (id: string, fields: Fields): Rec => {
    const r = get(id);
    if (APPEND_ONLY.has(r.kind)) fail("append_only", `${r.kind} records are append-only: record an amendment instead`);
    if (!readable(r))
      fail("invalid", "invalid grievance: only its readers may change a confidential grievance, and not the people it concerns");
    Object.assign(r, fields);
    emit({ type: "records_changed", ids: [id] });
    return r;
  };
  const settleRequest = (id: string) => {
    const r = get(id);
    if (!active(r.status)) return;
    const allocs = allocations("request", id);
    const delivered = allocs.filter((a) => a.status === "delivered").reduce((s, a) => s + Number(a.quantity), 0);
    if (delivered >= Number(r.quantity)) patch(id, { status: "fulfilled" });
    else if (!allocs.some(held)) patch(id, { status: "open" });
    else if (!allocs.some((a) => a.status === "active") && r.status === "in_transit") patch(id, { status: "matched" });
  };
  const suggestionsFor = (req: Rec): SuggestionView[] => {
    const allocated = allocations("request", req.id)
      .filter(held)
      .reduce((s, a) => s + Number(a.quantity), 0);
    const still = Number(req.quantity) - allocated;
    if (still <= 0 || !active(req.status)) return [];
    const out: SuggestionView[] = [];
    const consider = (source: Source, left: number, item: Rec | undefined, category: unknown, place: unknown, what: string) => {
      const sameItem = !!req.item && req.item === item?.id;
      const wantCat = req.category ?? (req.item ? find(String(req.item))?.category : null);
      if (left <= 0 || (!sameItem && (!wantCat || wantCat !== category))) return;
      const quantity = Math.min(left, still);
      const reasons: SuggestionView["reasons"] = [sameItem ? { type: "same_item" } : { type: "same_category" }];
      reasons.push({ type: "covers", quantity, needed: still });
      if (req.place && req.place === place) reasons.push({ type: "same_place" });
      out.push({
        request: req.id,
        source,
        quantity,
        needed: still,
        score: (sameItem ? 1000 : 400) + Math.floor((quantity * 300) / still) + (req.place === place ? 200 : 0),
        reasons,
        request_label: label(req),
        source_label: what,
        place_label: place ? label(find(String(place))) : null,
      });
    };
    for (const o of ofKind("offer").filter((o) => active(o.status) && !o.skill)) {
      const used = allocations("offer", o.id)
        .filter(held)
        .reduce((s, a) => s + Number(a.quantity), 0);
      const item = o.item ? find(String(o.item)) : undefined;
      consider({ type: "offer", offer: o.id }, Number(o.quantity) - used, item, o.category ?? item?.category, o.place, label(o));
    }
    if (!req.skill)
      for (const l of stockLines(null)) {
        const used = ofKind("allocation")
          .filter((a) => a.item === l.item && a.place === l.place && a.status === "active")
          .reduce((s, a) => s + Number(a.quantity), 0);
        const item = find(l.item);
        consider({ type: "stock", item: l.item, place: l.place }, l.quantity - used, item, item?.category, l.place, label(item));
      }
    return out.sort((a, b) => b.score - a.score);
  };

  const backend: Backend & { records: Rec[]; chosenFile: string | null } = {
    records,
    async status() {
      return { store_exists: created, unlocked, store_path: "(in memory)" };
    },
    async createHub(hubName, location, who, pass) {
      if (!who.trim()) fail("invalid", "your handle (a nickname, not your legal name) is required");
      if ([...pass].length < 8) fail("invalid", "invalid hub: passphrase: needs at least 8 characters");
      if (!hubName.trim()) fail("invalid", "invalid hub: name: is required");
      created = unlocked = true;
      passphrase = pass;
      handle = who.trim();
      // The founding coordinator: a key with no PIN, the coalition's first admin, unlocked.
      const key = newKey(handle);
      const founder: Kept = { handle, key, fingerprint: fingerprintOf(key), pin: false, secretPin: null };
      kept = [founder];
      coalition = hubName.trim();
      people = [{ handle, key, admin: true, roles: [], since: now().toISOString(), addedBy: handle, more: [] }];
      usedKeys.add(key);
      waiting = [];
      acting = localView(founder);
      write("hub", { name: hubName, location });
    },
    async joinHub(code, hubName, location, who, pass) {
      if (!/^[a-z2-7-]{20,}$/i.test(code.trim())) fail("invalid", "invite code: not an aidmesh invite code");
      emit({ type: "join", confirmation: "4711-0815" });
      await backend.createHub(hubName, location, who, pass);
    },
    async inviteCreate() {
      return { code: "mock-invite-code", qr_svg: "", expires_min: 0 };
    },
    async inviteAnswer() {},
    async unlock(pass, who) {
      if (pass !== passphrase) fail("wrong_passphrase", "wrong passphrase");
      unlocked = true;
      // As the hub opens: the person it is opened as acts, if no PIN guards their key.
      const open = kept.find((k) => k.handle === who.trim() && !k.pin);
      acting = open ? localView(open) : null;
    },
    async overview(): Promise<Overview> {
      need();
      const items = ofKind("item");
      return {
        hub_name: label(ofKind("hub")[0]) || "Mock hub",
        now: now().toISOString(),
        shortages: items
          .filter((i) => Number(i.reorder_level) > 0 && level(i.id) < Number(i.reorder_level))
          .map((i) => ({ item: i.id, name: String(i.name), level: level(i.id), reorder_level: Number(i.reorder_level) })),
        expiring: [],
        urgent_requests: ofKind("request").filter(
          (r) => (r.urgency === "critical" || r.urgency === "high") && active(r.status),
        ) as unknown as HubRecord[],
        unfilled_shifts: [],
        recent_incidents: ofKind("incident").map(amended) as unknown as HubRecord[],
        over_allocations: [],
        double_bookings: [],
        field_conflicts: [],
        unapproved_expenses: ofKind("expense").filter(
          (r) => !records.some((a) => a.kind === "approval" && a.expense === r.id),
        ) as unknown as HubRecord[],
        counts: Object.fromEntries(Object.keys(TEMPLATES).map((k) => [k, ofKind(k).length])),
      };
    },
    async list<K extends Kind>(kind: K, limit: number, offset: number) {
      need();
      return ofKind(kind)
        .slice()
        .reverse()
        .slice(offset, offset + limit)
        .map(listed) as ListedOf<K>[];
    },
    async search(query, kind, limit) {
      need();
      const q = query.toLowerCase();
      return records
        .filter((r) => r.kind !== "amendment" && readable(r) && !(r.kind === "grievance" && r.confidential))
        .filter((r) => (!kind || r.kind === kind) && JSON.stringify(r).toLowerCase().includes(q))
        .slice(0, limit)
        .map((r) => ({ id: r.id, kind: r.kind, label: label(r) }));
    },
    async show(id): Promise<RecordView> {
      need();
      const r = get(id);
      const now = amended(r);
      const open = readable(r);
      return {
        record: redacted(now) as unknown as HubRecord,
        original: now === r || !open ? null : (r as unknown as HubRecord),
        amendments: (open ? amendmentsOf(id) : []) as unknown as HubRecord[],
        conflicts: [],
        history: open ? [{ at: String(r.created_at), hub: "mock", handle: String(r.created_by), person: String(r.created_by), change: `${r.id}0000` }] : [],
        stock: r.kind === "item" ? stockLines(id) : [],
        movements: (r.kind === "item" ? ofKind("movement").filter((m) => m.item === id).reverse() : []) as unknown as HubRecord[],
        approval: null,
      };
    },
    async template(kind) {
      return structuredClone(TEMPLATES[kind] ?? fail("invalid", `unknown record kind "${kind}"`));
    },
    async add(kind, fields) {
      need();
      return write(kind, fields) as unknown as HubRecord;
    },
    async update(id, fields) {
      need();
      const kind = get(id).kind;
      const ruled =
        kind === "allocation"
          ? ["status", "quantity", "request", "offer", "item", "place"]
          : kind === "request"
            ? ["status", "contact"]
            : kind === "volunteer"
              ? ["contact", "access_needs"]
              : kind === "offer"
                ? ["contact"]
                : [];
      // Access needs written before they moved to the contact may be cleared.
      const cleared = (k: string) => k === "access_needs" && typeof fields[k] === "string" && String(fields[k]).trim() === "";
      const f = Object.keys(fields).find((k) => ruled.includes(k) && !cleared(k));
      if (f === "contact") fail("invalid", `invalid ${kind}: contact: is not changed by hand: set it with the contact form`);
      if (f === "access_needs") fail("invalid", `invalid ${kind}: access_needs: ${ACCESS_NEEDS}`);
      if (f) fail("invalid", `invalid ${kind}: ${f}: is not changed by hand: move it on with its steps`);
      const r = get(id);
      const extra: Fields = {};
      // The hub's rules for grievances and reviews (`care.rs`): steps only grow, a move of
      // status adds one, and an action marked done is stamped.
      if (kind === "grievance" && readable(r)) {
        if ("steps" in fields && JSON.stringify(fields.steps) !== JSON.stringify(r.steps))
          fail("invalid", "invalid grievance: steps: are only ever added, one at a time (aidmesh grievance-step ID NOTE)");
        const status = fields.status ?? r.status;
        if (status !== r.status) {
          const note = status === "resolved" || status === "dismissed" ? String(fields.resolution ?? r.resolution).trim() : "";
          extra.steps = [...(r.steps as Step[]), { at: now().toISOString(), by: actor(), note, status }];
        }
      }
      if (kind === "after_action" && Array.isArray(fields.action_items)) {
        const old = r.action_items as Action[];
        const items = fields.action_items as Action[];
        if (items.some((a) => !String(a.action ?? "").trim()))
          fail("invalid", `invalid after_action: action_items: action ${items.findIndex((a) => !String(a.action ?? "").trim()) + 1} says nothing to do`);
        extra.action_items = items.map((a, i) => ({
          ...a,
          done_at: !a.done ? null : old[i]?.done ? (old[i].done_at ?? null) : now().toISOString(),
        }));
      }
      const done = patch(id, { ...fields, ...extra });
      // Consent to share withdrawn: the shared copy is erased and the contact kept here under a
      // new id (the hub's `keep_withdrawn_here`).
      const kept = done.contact ? vault.get(String(done.contact)) : undefined;
      if (kind === "volunteer" && !(done.consent as { share?: boolean }).share && kept && !kept.local && !kept.erasedAt) {
        const vid = `v${String(++seq).padStart(26, "0")}`;
        vault.set(vid, { fields: { ...kept.fields }, erasedAt: null, local: true, at: now().toISOString() });
        eraseEntry(String(done.contact));
        done.contact = vid;
      }
      return redacted(done) as unknown as HubRecord;
    },
    async grievanceStep(id, note, status) {
      need();
      const r = get(id);
      if (r.kind !== "grievance") fail("invalid", `invalid ${r.kind}: id: is not a grievance`);
      if (!readable(r))
        fail("invalid", "invalid grievance: only its readers may change a confidential grievance, and not the people it concerns");
      if (!note.trim() && (status === null || status === r.status))
        fail("invalid", "invalid grievance step: note: say what was done, or move the grievance to another status");
      const next = status ?? r.status;
      const closing = next === "resolved" || next === "dismissed";
      const text = !note.trim() && closing ? String(r.resolution).trim() : note.trim();
      const steps = [...(r.steps as Step[]), { at: now().toISOString(), by: actor(), note: text, status: next }];
      return redacted(patch(id, { steps, status: next })) as unknown as HubRecord;
    },
    async acknowledgeHandoff(id) {
      need();
      const r = amended(get(id));
      if (r.kind !== "handoff") fail("invalid", `invalid ${r.kind}: id: is not a handoff`);
      if (r.acknowledged_by) fail("invalid", `invalid handoff: acknowledged_by: ${r.acknowledged_by} already acknowledged it`);
      write("amendment", { target: id, field: "acknowledged_by", value: actor(), reason: "acknowledged by the next shift" });
      return amended(get(id)) as unknown as HubRecord;
    },
    async close(id) {
      need();
      const r = amended(get(id));
      if (r.kind === "check_in") {
        if (r.checked_out) fail("invalid", `invalid check_in: checked_out: was checked out already, at ${r.checked_out}: correct it with an amendment`);
        write("amendment", { target: id, field: "checked_out", value: now().toISOString().replace(/\.\d{3}Z$/, "Z"), reason: "checked out" });
      } else if (r.kind === "follow_up") {
        if (r.done) fail("invalid", "invalid follow_up: done: is done already");
        write("amendment", { target: id, field: "done", value: true, reason: "done" });
      } else fail("invalid", `invalid ${r.kind}: id: is a ${r.kind}: only check-ins (checked out) and follow-ups (done) are closed`);
      return amended(get(id)) as unknown as HubRecord;
    },
    async amend(id, field, value, reason) {
      need();
      return write("amendment", { target: id, field, value, reason: reason.trim() }) as unknown as HubRecord;
    },
    async allocate(request, source, quantity) {
      need();
      const req = get(request);
      if (req.kind !== "request") fail("not_found", `no record with id request ${request}`);
      if (!active(req.status)) fail("invalid", `invalid request: status: the request is ${req.status}: reopen it to allocate to it`);
      if (source.type === "offer" && !active(get(source.offer).status))
        fail("invalid", `invalid allocation: offer: the offer is ${get(source.offer).status}: nothing is left to promise`);
      const from = source.type === "offer" ? { offer: source.offer } : { item: source.item, place: source.place };
      const a = write("allocation", { request, ...from, quantity, status: "active" });
      if (req.status === "open") patch(request, { status: "matched" });
      return a as unknown as HubRecord;
    },
    async stepAllocation(id, step: AllocationStep) {
      need();
      const a = get(id);
      if (a.kind !== "allocation") fail("not_found", `no record with id allocation ${id}`);
      if (a.status === "delivered" && step === "delivered") {
        settleRequest(String(a.request));
        return a as unknown as HubRecord;
      }
      if (a.status !== "active") fail("invalid", `invalid allocation: status: this allocation is already ${a.status}`);
      const req = get(String(a.request));
      if (step !== "released" && !active(req.status))
        fail("invalid", `invalid request: status: the request is ${req.status}: reopen it to send or deliver for it`);
      if (step === "in_transit") {
        patch(String(a.request), { status: "in_transit" });
        return a as unknown as HubRecord;
      }
      if (step === "delivered") {
        if (a.item) write("movement", { type: "issue", item: a.item, place: a.place, quantity: a.quantity, reason: "delivered" });
        patch(id, { status: "delivered" });
      } else patch(id, { status: "released" });
      settleRequest(String(a.request));
      if (a.offer) {
        const o = get(String(a.offer));
        const delivered = allocations("offer", o.id)
          .filter((x) => x.status === "delivered")
          .reduce((s, x) => s + Number(x.quantity), 0);
        if (active(o.status) && delivered >= Number(o.quantity)) patch(o.id, { status: "fulfilled" });
      }
      return a as unknown as HubRecord;
    },
    async requestStatus(id, status: FlowStatus) {
      need();
      const r = get(id);
      if (r.kind !== "request") fail("not_found", `no record with id request ${id}`);
      const allocs = allocations("request", id).filter((a) => a.status === "active");
      if (status === "cancelled") {
        allocs.forEach((a) => patch(a.id, { status: "released" }));
        return patch(id, { status }) as unknown as HubRecord;
      }
      if (status === "open") return patch(id, { status: allocs.length ? "matched" : "open" }) as unknown as HubRecord;
      return fail("invalid", `invalid request: status: a request is cancelled or reopened by hand; ${status} follows from its allocations`);
    },
    async stock(item) {
      need();
      return stockLines(item);
    },
    async places() {
      need();
      const lines = stockLines(null);
      return ofKind("place")
        .map((p) => {
          const here = lines.filter((l) => l.place === p.id);
          return { place: p as unknown as HubRecord, items: here.length, units: here.reduce((s, l) => s + l.quantity, 0) };
        })
        .sort((a, b) => label(a.place as unknown as Rec).localeCompare(label(b.place as unknown as Rec)));
    },
    async storedAt(place) {
      need();
      if (get(place).kind !== "place") fail("not_found", `no record with id place ${place}`);
      return stockLines(null)
        .filter((l) => l.place === place)
        .map((l) => ({ item: l.item, name: String(get(l.item).name), unit: String(get(l.item).unit), quantity: l.quantity }))
        .sort((a, b) => a.name.localeCompare(b.name));
    },
    async levels(items) {
      need();
      return Object.fromEntries(items.map((i) => [i, level(i)]));
    },
    async suggestions(request) {
      need();
      // The most urgent requests first, as the hub orders them.
      const rank = (r: Rec) => ["low", "normal", "high", "critical"].indexOf(String(r.urgency));
      const reqs = request ? [get(request)] : ofKind("request").sort((a, b) => rank(b) - rank(a));
      return reqs.flatMap((r) => suggestionsFor(r).slice(0, request ? 50 : 1)).slice(0, 200);
    },
    async roster() {
      need();
      return { shifts: ofKind("shift") as unknown as HubRecord[], unfilled: [], double_bookings: [] };
    },
    async ledger() {
      need();
      const expenses = ofKind("expense").map(amended);
      const unapproved = expenses
        .filter((r) => !records.some((a) => a.kind === "approval" && a.expense === r.id))
        .map((r) => ({
          ...r,
          approval: { state: "unapproved" as const, have: 0, need: 1, why: "no purchase policy in force" },
        }));
      const totals = new Map<string, { name: string; currency: string; minor: number; amount: string }>();
      for (const e of expenses) {
        const key = `${e.fund}|${e.currency}`;
        const t = totals.get(key) ?? { name: String(e.fund), currency: String(e.currency), minor: 0, amount: "" };
        t.minor += Number(e.amount_minor);
        t.amount = `${(t.minor / 100).toFixed(2)} ${t.currency}`;
        totals.set(key, t);
      }
      return {
        totals: { per_fund: [...totals.values()], per_category: [] },
        unapproved: unapproved as unknown as Awaited<ReturnType<Backend["ledger"]>>["unapproved"],
      };
    },
    async peers() {
      return { listening: "127.0.0.1:7420", peers: [...connected] };
    },
    async identity() {
      return {
        hub_name: "Mock hub",
        fingerprint: "mock-mock-mock",
        public_key: "00",
        founder: "Mock hub",
        members: [...members],
        has_coalition_key: true,
      };
    },
    async addPeer(addr) {
      if (!/^[\d.]+:\d+$/.test(addr.trim())) fail("invalid", `"${addr}" is not an address like 192.168.1.20:7420`);
      // The mock's dial reaches the next member hub not connected yet, and says so as a hub
      // does: with a peers event. A revoked hub is no member, so it never connects again.
      const next = members.find((m) => m.id !== "mock-mock-mock" && !connected.some((p) => p.hub === m.id));
      if (!next) fail("network", `no member hub answered at ${addr.trim()}`);
      connected.push({
        hub: next.id, name: next.name, addr: addr.trim(), reach: "lan", dialed: true,
        connected_at: (opts.now?.() ?? new Date()).toISOString(), last_synced: null, waiting: 0, held: 0,
      });
      emit({ type: "peers_changed" });
    },
    async revoke(hub) {
      // As a hub does: a member it does not know is not found; a revoked one is dropped at once,
      // its connection closed, and both the members and the peers shown change.
      const i = members.findIndex((m) => m.id === hub.trim());
      const letters = hub.replace(/[^a-z0-9]/gi, "");
      if (i < 0 && letters.length !== 34) {
        fail("invalid", `invalid hub: hub: "${hub}" is not a hub id: expected 34 letters and digits, got ${letters.length}`);
      }
      if (i < 0) fail("not_found", `no record with id member hub ${hub}`);
      members.splice(i, 1);
      const c = connected.findIndex((p) => p.hub === hub.trim());
      if (c >= 0) connected.splice(c, 1);
      emit({ type: "authority_changed" });
      emit({ type: "peers_changed" });
    },
    async internet() {
      need();
      return internetSync();
    },
    async setInternet(on) {
      need();
      internetOn = on;
      return internetSync();
    },
    async setInternetBudget(bytes) {
      need();
      if (bytes !== null && !(bytes >= 1)) {
        fail("malformed", "malformed internet budget: 0 bytes a day: give at least 1 byte, or lift the budget");
      }
      internetBudget = bytes;
      return internetSync();
    },
    async rotateSecret() {
      need();
      // Sealed for every member hub, this one included; who may do what changed.
      emit({ type: "authority_changed" });
      return members.length;
    },
    async exportBundle() {
      fail("io", "the mock hub writes no files");
    },
    async importBundle() {
      fail("io", "the mock hub reads no files");
    },
    /** What the file chooser answers next (tests set it; null is a cancel). */
    chosenFile: "/media/stick/chosen.bundle",
    async chooseFile() {
      return backend.chosenFile;
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
      if ([...next].length < 8) fail("invalid", "invalid hub: passphrase: needs at least 8 characters");
      passphrase = next;
    },
    async currencies() {
      return [
        { code: "EUR", digits: 2 },
        { code: "GBP", digits: 2 },
        { code: "JPY", digits: 0 },
        { code: "KWD", digits: 3 },
        { code: "USD", digits: 2 },
      ];
    },
    async authority(): Promise<Authority> {
      need();
      return {
        coalition,
        people: people.map((p) => ({
          handle: p.handle,
          key: p.key,
          fingerprint: fingerprintOf(p.key),
          admin: p.admin,
          roles: [...p.roles].sort(),
          since: p.since,
          added_by: p.addedBy,
          keys: 1 + p.more.length,
        })),
        waiting: waiting.map((w) => ({ entry: w.entry, target: nameOf(w.target), change: w.change, signed: w.signed.map(nameOf) })),
        votes: [...votes].map(([target, voters]) => ({ target: nameOf(target), voters: voters.filter((v) => personOf(v)).map(nameOf) })),
        votes_needed: Math.floor(people.length / 2) + 1,
        // Policy versions, newest first: the newest is in force, the others were replaced.
        policies: records
          .filter((r) => r.kind === "policy")
          .sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)))
          .map((r, i) => {
            const money = (minor: number) => `${(minor / 100).toFixed(2)} ${String(r.currency)}`;
            const limits = (r.limits as { role: string; max_minor: number }[]) ?? [];
            return {
              id: r.id,
              set_by: String(r.created_by ?? ""),
              at: String(r.created_at),
              currency: String(r.currency),
              limits: limits.map((l) => `${l.role}: up to ${money(l.max_minor)}`),
              threshold: money(Number(r.threshold_minor ?? 0)),
              approvals_above_threshold: Number(r.approvals_above_threshold ?? 1),
              in_force: i === 0,
              superseded: i > 0,
            };
          }),
        contested: [],
        not_counted: [],
        refused: [],
        entries: 0,
        acting: acting ? { ...acting } : null,
        acting_as: acting ? (personOf(acting.key)?.key ?? null) : null,
        stranded: null,
      };
    },
    async peopleHere() {
      need();
      return kept.map(localView);
    },
    async unlockPerson(who, pin) {
      need();
      const k =
        kept.find((x) => x.handle === who.trim() || x.key === who.trim()) ??
        fail("not_found", `no record with id person "${who}" at this hub (aidmesh person new makes a key)`);
      if (k.pin && (pin ?? "") !== k.secretPin) fail("wrong_pin", `that PIN does not unlock ${k.handle}'s key`);
      acting = localView(k);
      return localView(k);
    },
    async lockPerson() {
      need();
      acting = null;
    },
    async makePerson(who, pin) {
      need();
      const h = who.trim();
      const errs: string[] = [];
      if (!h || [...h].length > 80) errs.push("handle: is required (at most 80 characters)");
      if (kept.some((k) => k.handle === h)) errs.push(`handle: ${h} already has a key at this hub`);
      if (errs.length) fail("invalid", `invalid person: ${errs.join("; ")}`);
      const p = pin || null;
      if (p !== null && [...p].length < 4) fail("invalid", "invalid person: pin: must be at least 4 characters");
      const key = newKey(h);
      const k: Kept = { handle: h, key, fingerprint: fingerprintOf(key), pin: p !== null, secretPin: p };
      kept.push(k);
      return localView(k);
    },
    async addPerson(key, who, asAdmin) {
      need();
      const k = key.trim().toLowerCase();
      if (!/^[0-9a-f]{64}$/.test(k)) fail("invalid", "invalid person: key: not an Ed25519 public key in hex");
      if (!who.trim()) fail("invalid", "invalid person: handle: is required");
      const me = admin();
      if (personOf(k)) fail("not_allowed", `not allowed: key ${k.slice(0, 8)} already signs for a person`);
      people.push({ handle: who.trim(), key: k, admin: false, roles: [], since: now().toISOString(), addedBy: me.handle, more: [] });
      usedKeys.add(k);
      if (asAdmin) start(me.key, k, "promotion");
      return personOf(k)!.admin === asAdmin;
    },
    async removePerson(who) {
      need();
      const target = personKey(who);
      const me = admin();
      if (personOf(target)!.admin && admins().length === 1)
        fail("not_allowed", "not allowed: the last admin cannot be removed: make another admin first");
      start(me.key, target, "removal");
      return !personOf(target);
    },
    async setAdmin(who, asAdmin) {
      need();
      const target = personKey(who);
      const me = admin();
      const p = personOf(target)!;
      if (p.admin === asAdmin) fail("not_allowed", `not allowed: ${p.handle} already has that role`);
      if (!asAdmin && admins().length === 1)
        fail("not_allowed", "not allowed: the last admin cannot be demoted: make another admin first");
      if (asAdmin && waiting.some((w) => w.target === target && w.change === "promotion"))
        fail("not_allowed", `not allowed: making ${p.handle} an admin already waits for admins to sign: endorse it`);
      start(me.key, target, asAdmin ? "promotion" : "demotion");
      return personOf(target)?.admin === asAdmin;
    },
    async endorse(what) {
      need();
      // By entry id, else the one change waiting for the person named.
      let w = waiting.find((x) => x.entry === what.trim().toLowerCase());
      if (!w) {
        const target = personKey(what);
        const all = waiting.filter((x) => x.target === target);
        if (all.length > 1) fail("invalid", `invalid endorse: what: several changes of ${what} wait: sign one by its entry id, as the list shows it`);
        w = all[0] ?? fail("not_found", `no record with id a change of ${what} waiting for signatures`);
      }
      const me = admin();
      if (w.target === me.key) fail("not_allowed", `not allowed: ${me.handle} cannot endorse their own removal`);
      if (w.signed.includes(me.key)) fail("not_allowed", `not allowed: ${me.handle} already signed it`);
      w.signed.push(me.key);
      completeIfEnough(w);
      return !waiting.includes(w);
    },
    async keyProof(person) {
      need();
      const p = person.trim().toLowerCase();
      if (!/^[0-9a-f]{64}$/.test(p)) fail("invalid", "invalid person: person: not an Ed25519 public key in hex");
      if (!acting) fail("not_allowed", "not allowed: no one is unlocked at this hub: unlock yourself with your PIN first");
      const proof = newKey("proof") + newKey("proof");
      proofs.set(proof, { key: acting!.key, person: p });
      return proof;
    },
    async addKey(key, proof) {
      need();
      const k = key.trim().toLowerCase();
      if (!/^[0-9a-f]{64}$/.test(k)) fail("invalid", "invalid person: key: not an Ed25519 public key in hex");
      const pr = proof.trim();
      if (!/^[0-9a-f]{128}$/.test(pr)) fail("invalid", `invalid person: proof: "${pr}" is not a signature (128 hex digits)`);
      const me = signer();
      const made = proofs.get(pr);
      if (!made || made.key !== k || made.person !== me.key)
        fail("not_allowed", `not allowed: key ${k.slice(0, 12)} did not sign for ${me.handle}: it is not theirs to add`);
      if (usedKeys.has(k)) fail("not_allowed", `not allowed: key ${k.slice(0, 12)} was already given to a person: a key is never given twice`);
      me.more.push(k);
      usedKeys.add(k);
    },
    async voteAdmin(who) {
      need();
      const target = personKey(who);
      const me = signer();
      if (admins().length) fail("not_allowed", "not allowed: the coalition has an admin: admins make admins, no vote is needed");
      // One vote a person, never withdrawn.
      const before = [...votes].find(([, vs]) => vs.includes(me.key));
      if (before) fail("not_allowed", `not allowed: ${me.handle} already voted, for ${nameOf(before[0])}`);
      const voters = votes.get(target) ?? [];
      voters.push(me.key);
      votes.set(target, voters);
      // A majority of the people make the first admin again; the other votes lapse.
      if (voters.filter((v) => personOf(v)).length > Math.floor(people.length / 2)) {
        personOf(target)!.admin = true;
        votes = new Map();
      }
      return personOf(target)!.admin;
    },
    async grant(who, role, give) {
      need();
      const p = personOf(personKey(who))!;
      const r = role.trim();
      if (!r) fail("invalid", "invalid grant: role: is required");
      admin();
      const has = p.roles.includes(r);
      if (give && has) fail("not_allowed", `not allowed: ${p.handle} already holds "${r}"`);
      if (!give && !has) fail("not_allowed", `not allowed: ${p.handle} does not hold "${r}"`);
      p.roles = give ? [...p.roles, r] : p.roles.filter((x) => x !== r);
    },
    async contacts() {
      need();
      const views = (["volunteer", "request", "offer"] as const).flatMap((k) =>
        ofKind(k)
          .filter((r) => k === "volunteer" || r.contact)
          .map(contactView)
          .sort((a, b) => a.label.toLowerCase().localeCompare(b.label.toLowerCase())),
      );
      return views;
    },
    async setContact(record, fields) {
      need();
      const r = withContact(record);
      if (Object.values(fields).every((v) => !String(v ?? "").trim()))
        fail("invalid", "invalid contact: no value given: give at least one field with a value (one given empty is removed from the contact; to remove the contact, erase it)");
      const hereOnly = r.kind === "volunteer" && !(r.consent as { share?: boolean } | undefined)?.share;
      const current = r.contact ? vault.get(String(r.contact)) : undefined;
      // The fields given change the contact's, the others stay; one given empty is removed.
      const merged: Record<string, string> = current && !current.erasedAt ? { ...current.fields } : {};
      for (const [k, v] of Object.entries(fields)) {
        if (!String(v ?? "").trim()) delete merged[k];
        else merged[k] = v;
      }
      let vid: string;
      if (current && !current.erasedAt && (current.local || !hereOnly)) {
        vid = String(r.contact);
      } else {
        vid = `v${String(++seq).padStart(26, "0")}`;
        if (current && !current.erasedAt) eraseEntry(String(r.contact));
      }
      vault.set(vid, { fields: merged, erasedAt: null, local: hereOnly, at: now().toISOString() });
      r.contact = vid;
      emit({ type: "vault_changed", ids: [vid] });
      return contactView(r);
    },
    async readContact(record, reason) {
      need();
      if ([...reason.trim()].length < 4)
        fail("invalid", "invalid contact read: reason: say why you need this person's contact (at least 4 characters): every read is logged with its reason");
      const me = signer();
      const r = withContact(record);
      const e = r.contact ? vault.get(String(r.contact)) : undefined;
      if (!e) return fail("not_found", `no record with id a contact for record ${record}`);
      if (e.erasedAt) return fail("not_found", `no record with id contact ${r.contact}: erased at ${e.erasedAt}`);
      reads.unshift({ at: now().toISOString(), by: me.handle, vault: String(r.contact), record, reason: reason.trim() });
      return { ...e.fields };
    },
    async eraseContact(record) {
      need();
      const r = withContact(record);
      const e = r.contact ? vault.get(String(r.contact)) : undefined;
      if (!e) return fail("not_found", `no record with id a contact for record ${record}`);
      eraseEntry(String(r.contact));
      emit({ type: "vault_changed", ids: [String(r.contact)] });
      return contactView(r);
    },
    async contactReads(limit) {
      need();
      signer();
      return reads.slice(0, limit);
    },
    onEvent(f) {
      listeners.push(f);
      return () => void listeners.splice(listeners.indexOf(f), 1);
    },
  };
  return backend;
}
