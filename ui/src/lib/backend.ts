// What the UI needs from a hub. `tauri.ts` calls the desktop shell; `mock.ts` is an in-memory
// stand-in for unit tests and for working on the UI in a browser.

export type Fields = Record<string, unknown>;
export type Rec = Fields & { id: string; kind: string; created_at: string; created_hub: string };

export interface ApiError {
  code: string;
  message: string;
}

export interface Status {
  store_exists: boolean;
  unlocked: boolean;
  store_path: string;
}

export interface StockLine {
  item: string;
  place: string;
  quantity: number;
}

export interface Hit {
  id: string;
  kind: string;
  label: string;
}

export interface Overview {
  hub_name: string;
  now: string;
  shortages: { item: string; name: string; level: number; reorder_level: number }[];
  expiring: { item: string; name: string; expiry: string; level: number }[];
  urgent_requests: Rec[];
  unfilled_shifts: { shift: string; needed: number; assigned: number; start: string; place: string; role: string }[];
  recent_incidents: Rec[];
  over_allocations: { offer: string; offered: number; allocated: number }[];
  double_bookings: unknown[];
  field_conflicts: [string, string, number][];
  unapproved_expenses: Rec[];
  counts: Record<string, number>;
}

export interface Peer {
  hub: string;
  addr: string;
  dialed: boolean;
  connected_at: string;
  last_synced: string | null;
}

export interface BundleSummary {
  exporter: string;
  exporter_name: string | null;
  created_at: string;
  full: boolean;
  documents: number;
  bytes: number;
  records: Record<string, number>;
  made_for: string[];
  unknown_members: string[];
  waiting_documents: number;
}

export interface Identity {
  hub_name: string;
  fingerprint: string;
  public_key: string;
  members: { id: string; name: string; role: string }[];
  has_coalition_key: boolean;
}

export interface RecordView {
  record: Rec;
  history: { at: string; by: string; hub: string; message: string }[];
  movements?: Rec[];
  [k: string]: unknown;
}

export type HubEvent =
  | { type: "records_changed"; ids: string[] }
  | { type: "join"; confirmation: string }
  | { type: "invite"; state: "pending"; name: string; joiner: string; confirmation: string }
  | { type: "invite"; state: "failed"; message: string }
  | { type: "progress"; task: string; done: number; total: number };

export type Paper = "a4" | "letter";

export interface Backend {
  status(): Promise<Status>;
  createHub(hubName: string, location: string, handle: string, passphrase: string): Promise<void>;
  joinHub(code: string, hubName: string, location: string, handle: string, passphrase: string): Promise<void>;
  unlock(passphrase: string, handle: string): Promise<void>;
  inviteCreate(minutes: number, advertise: string | null): Promise<{ code: string; qr_svg: string; expires_min: number }>;
  inviteAnswer(accept: boolean): Promise<void>;
  overview(): Promise<Overview>;
  list(kind: string, limit: number, offset: number): Promise<Rec[]>;
  search(query: string, kind: string | null, limit: number): Promise<Hit[]>;
  show(id: string): Promise<RecordView>;
  template(kind: string): Promise<Fields>;
  add(kind: string, fields: Fields): Promise<Rec>;
  update(id: string, fields: Fields): Promise<Rec>;
  amend(id: string, field: string, value: unknown, reason: string): Promise<Rec>;
  stock(item: string | null): Promise<StockLine[]>;
  levels(items: string[]): Promise<Record<string, number>>;
  suggestions(request: string | null): Promise<unknown[]>;
  roster(from: string, hours: number): Promise<{ shifts: Rec[]; unfilled: Overview["unfilled_shifts"]; double_bookings: unknown[] }>;
  ledger(): Promise<{ totals: unknown; unapproved: Rec[] }>;
  peers(): Promise<{ listening: string; peers: Peer[] }>;
  identity(): Promise<Identity>;
  addPeer(addr: string): Promise<void>;
  revoke(hub: string): Promise<void>;
  exportBundle(path: string, full: boolean): Promise<BundleSummary>;
  importBundle(path: string): Promise<{ summary: BundleSummary; changed: number }>;
  exportJson(path: string): Promise<number>;
  /** The system's file chooser: a path to write to (`save`) or to read from; null if cancelled. */
  chooseFile(save: boolean, title: string, suggested?: string): Promise<string | null>;
  /** Saves the window's print layout as a PDF in the PDF folder; answers where and how big. */
  savePdf(sheet: string, paper: Paper): Promise<{ path: string; bytes: number }>;
  changePassphrase(current: string, next: string): Promise<void>;
  onEvent(f: (e: HubEvent) => void): () => void;
}

/** The message of an error from any backend, for people. */
export function errorMessage(e: unknown): string {
  if (e && typeof e === "object" && "message" in e) return String((e as ApiError).message);
  return String(e);
}
