// What the UI needs from a hub. `tauri.ts` calls the desktop shell; `mock.ts` is an in-memory
// stand-in for unit tests and for working on the UI in a browser. Both keep the promises of
// `contract.ts`, which runs against each of them (the real hub through the app's own commands).
//
// Every type the hub sends or takes comes from `hub.gen.ts`, generated from the Rust types:
// nothing here copies a hub type by hand.

import type * as H from "./hub.gen";

export type {
  AllocationStep,
  ApiError,
  Authority,
  BundleSummary,
  ContactRead,
  ContactState,
  ContactView,
  Currency,
  FlowStatus,
  HubEvent,
  HubRecord,
  Identity,
  Imported,
  InternetSync,
  Invite,
  Kind,
  Ledger,
  Listed,
  LocalPerson,
  Overview,
  Paper,
  Peer,
  Peers,
  PersonView,
  PlaceView,
  RecordView,
  RefusedView,
  Roster,
  SavedPdf,
  Source,
  Status,
  StockLine,
  Stored,
  SuggestionView,
  WaitingChange,
  WaitingView,
} from "./hub.gen";

export type Fields = Record<string, unknown>;
/** A record of one kind, as lists show it. */
export type ListedOf<K extends H.Kind> = Extract<H.Listed, { kind: K }>;
/** A record of one kind, as stored or just written. */
export type RecordOf<K extends H.Kind> = Extract<H.HubRecord, { kind: K }>;
/** Any record, field by field: what generic tables and forms read. */
export type Rec = Fields & { id: string; kind: H.Kind; created_at: string; created_hub: string };
export type Hit = H.Hit;

export interface Backend {
  status(): Promise<H.Status>;
  createHub(hubName: string, location: string, handle: string, passphrase: string): Promise<void>;
  joinHub(code: string, hubName: string, location: string, handle: string, passphrase: string): Promise<void>;
  unlock(passphrase: string, handle: string): Promise<void>;
  inviteCreate(minutes: number, advertise: string | null): Promise<H.Invite>;
  inviteAnswer(accept: boolean): Promise<void>;
  overview(): Promise<H.Overview>;
  list<K extends H.Kind>(kind: K, limit: number, offset: number): Promise<ListedOf<K>[]>;
  search(query: string, kind: H.Kind | null, limit: number): Promise<H.Hit[]>;
  show(id: string): Promise<H.RecordView>;
  template(kind: H.Kind): Promise<Fields>;
  add(kind: H.Kind, fields: Fields): Promise<H.HubRecord>;
  update(id: string, fields: Fields): Promise<H.HubRecord>;
  amend(id: string, field: string, value: unknown, reason: string): Promise<H.HubRecord>;
  /** Allocates `quantity` from `source` to `request`; an open request becomes matched. */
  allocate(request: string, source: H.Source, quantity: number): Promise<H.HubRecord>;
  /** An allocation's next step: delivered issues stock and fulfils the request once covered. */
  stepAllocation(id: string, step: H.AllocationStep): Promise<H.HubRecord>;
  /** Cancels a request ("cancelled") or reopens it ("open"). */
  requestStatus(id: string, status: H.FlowStatus): Promise<H.HubRecord>;
  stock(item: string | null): Promise<H.StockLine[]>;
  /** Every place, with how many items and units are stored there. */
  places(): Promise<H.PlaceView[]>;
  /** What is stored at one place, by item name. */
  storedAt(place: string): Promise<H.Stored[]>;
  levels(items: string[]): Promise<Record<string, number>>;
  suggestions(request: string | null): Promise<H.SuggestionView[]>;
  roster(from: string, hours: number): Promise<H.Roster>;
  ledger(): Promise<H.Ledger>;
  peers(): Promise<H.Peers>;
  identity(): Promise<H.Identity>;
  addPeer(addr: string): Promise<void>;
  revoke(hub: string): Promise<void>;
  /** Turns the coalition secret over without revoking anyone (admins): how many member hubs it was sealed for. */
  rotateSecret(): Promise<number>;
  /** Whether this hub syncs over the internet, and the relays the coalition names. */
  internet(): Promise<H.InternetSync>;
  /** Switches sync over the internet on or off at this hub (kept across restarts). */
  setInternet(on: boolean): Promise<H.InternetSync>;
  /** Sets the day's budget for internet sync in bytes (at least 1), or lifts it (`null`). */
  setInternetBudget(bytes: number | null): Promise<H.InternetSync>;
  exportBundle(path: string, full: boolean): Promise<H.BundleSummary>;
  importBundle(path: string): Promise<H.Imported>;
  exportJson(path: string): Promise<number>;
  /** The system's file chooser: a path to write to (`save`) or to read from; null if cancelled. */
  chooseFile(save: boolean, title: string, suggested?: string): Promise<string | null>;
  /** Saves the window's print layout as a PDF in the PDF folder; answers where and how big. */
  savePdf(sheet: string, paper: H.Paper): Promise<H.SavedPdf>;
  changePassphrase(current: string, next: string): Promise<void>;
  /** The ISO 4217 currencies the ledger takes, with their minor-unit digits. */
  currencies(): Promise<H.Currency[]>;
  /** Who may do what in the coalition: people, admins, roles, removals waiting for signatures,
   * what was refused and from where, and who acts here now. */
  authority(): Promise<H.Authority>;
  /** The people whose keys this laptop keeps: whom one can unlock here. */
  peopleHere(): Promise<H.LocalPerson[]>;
  /** Acts as `who` (handle or key) from now on; a PIN-guarded key needs its PIN ("wrong_pin"). */
  unlockPerson(who: string, pin: string | null): Promise<H.LocalPerson>;
  /** Nobody acts: authority work needs an unlock first. */
  lockPerson(): Promise<void>;
  /** Makes a key for someone new at this laptop (PIN of at least 4 characters, or none). */
  makePerson(handle: string, pin: string | null): Promise<H.LocalPerson>;
  /** Adds a person by the key they made (admins only: "not_allowed" otherwise). */
  /** Adds a person; false while making them an admin waits for a majority of the admins. */
  addPerson(key: string, handle: string, admin: boolean): Promise<boolean>;
  /** Removes a person; false while an admin's removal waits for a majority of the other admins. */
  removePerson(who: string): Promise<boolean>;
  /** Makes a person an admin or a plain member; false while a demotion waits for signatures. */
  setAdmin(who: string, admin: boolean): Promise<boolean>;
  /** Signs a waiting removal, demotion or promotion: by its entry id (or the person, if only one
   * change of theirs waits); true once it has taken effect. */
  endorse(who: string): Promise<boolean>;
  /** With no admin left: the unlocked person's vote to make `who` an admin; whether they are one now. */
  voteAdmin(who: string): Promise<boolean>;
  /** At a new hub, as the key made there: the proof that lets `person` (your first key) add it. */
  keyProof(person: string): Promise<string>;
  /** Makes `key` (made at another hub, with its proof) one of the unlocked person's keys. */
  addKey(key: string, proof: string): Promise<void>;
  /** Gives a person a named role (`treasurer`, ...), or takes it back (`give` false). */
  grant(who: string, role: string, give: boolean): Promise<void>;
  /** Every volunteer, and every request and offer naming a contact, with what the vault holds. */
  contacts(): Promise<H.ContactView[]>;
  /** Stores a record's contact; kept here only when a volunteer did not consent to share it. */
  setContact(record: string, fields: Record<string, string>): Promise<H.ContactView>;
  /** A record's contact, read as the unlocked person for a reason (at least 4 characters),
   * logged before it is shown: "invalid" without one, "not_allowed" with no person unlocked. */
  readContact(record: string, reason: string): Promise<Record<string, unknown>>;
  /** Erases a record's contact: by the hub that holds the consent, or an admin. */
  eraseContact(record: string): Promise<H.ContactView>;
  /** Who read which contact here, when and why, newest first. */
  contactReads(limit: number): Promise<H.ContactRead[]>;
  /** Records a dated step in handling a grievance, as the unlocked person, and the status it
   * leaves (readers only; a step says something or moves the status). */
  grievanceStep(id: string, note: string, status: H.GrievanceStatus | null): Promise<H.HubRecord>;
  /** Marks a handoff read by the next shift (an amendment: "invalid" if someone already did). */
  acknowledgeHandoff(id: string): Promise<H.HubRecord>;
  /** Checks a volunteer out now, or marks a follow-up done (an amendment: both are append-only;
   * "invalid" if it is closed already, or of another kind). */
  close(id: string): Promise<H.HubRecord>;
  onEvent(f: (e: H.HubEvent) => void): () => void;
}

/** The message of an error from any backend, for people. */
export function errorMessage(e: unknown): string {
  if (e && typeof e === "object" && "message" in e) return String((e as H.ApiError).message);
  return String(e);
}

/** The code of an error from any backend ("invalid", "not_found", ...), or "" if it has none. */
export function errorCode(e: unknown): string {
  if (e && typeof e === "object" && "code" in e) return String((e as H.ApiError).code);
  return "";
}
