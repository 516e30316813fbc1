// Generated from the Rust types by src-tauri/src/edge.rs: do not edit.
// `cargo xtask types` writes it again after a change on the Rust side.

/**
 * An action an after-action review decided, tracked to done.
 */
export type ActionItem = { action: string, 
/**
 * Handle of who takes it on.
 */
owner: string, due: string | null, done: boolean, 
/**
 * When it was marked done (set by the hub).
 */
done_at: Timestamp | null, };

export type AfterAction = { incident: RecordId | null, title: string, worked: string, did_not_work: string, why: string, actions: string, 
/**
 * What is to be done, each tracked to done.
 */
action_items: Array<ActionItem>, };

/**
 * A reservation of quantity for a request, from an offer or from stock of an item at a place.
 */
export type Allocation = { request: RecordId, offer: RecordId | null, item: RecordId | null, place: RecordId | null, quantity: number, status: AllocationStatus, };

export type AllocationStatus = "active" | "delivered" | "released";

/**
 * A step an allocation takes.
 */
export type AllocationStep = "in_transit" | "delivered" | "released";

/**
 * A correction to an append-only record (incident, expense): the original stays as it was.
 */
export type Amendment = { target: RecordId, field: string, value: JsonValue, reason: string, };

/**
 * An error as the UI receives it: a stable code to branch on, and a message for people.
 */
export type ApiError = { code: string, message: string, };

export type Approval = { expense: RecordId, 
/**
 * Handle of the approver; their authority comes from role grants.
 */
approver: string, decision: Decision, note: string, 
/**
 * Public key (hex) of the member hub that recorded and signed the approval.
 */
signer: string, 
/**
 * Ed25519 signature (hex) over the record; checked on read by the hub.
 */
sig: string, };

export type ApprovalState = { "state": "approved", approvers: Array<string>, } | { "state": "rejected", by: string, } | { "state": "unapproved", have: number, need: number, why: string, };

export type Assignment = { shift: RecordId, volunteer: RecordId, 
/**
 * False once the assignment is withdrawn.
 */
active: boolean, };

/**
 * Who may do what in the coalition, as this hub resolves its authority log.
 */
export type Authority = { 
/**
 * The coalition's name; empty before this hub holds its founding entry.
 */
coalition: string, people: Array<PersonView>, waiting: Array<WaitingView>, 
/**
 * Votes to make an admin, while no admin is left ([`Hub::vote_admin`]).
 */
votes: Array<VoteView>, 
/**
 * How many people's votes make an admin: a majority of them.
 */
votes_needed: number, 
/**
 * Every version of the purchase policy, newest first.
 */
policies: Array<PolicyView>, 
/**
 * Admins who removed each other while apart: all of them lost the right (people to see).
 */
contested: Array<string>, 
/**
 * Stored entries that do not count, and why.
 */
not_counted: Array<string>, 
/**
 * The latest entries refused at the door.
 */
refused: Array<RefusedView>, entries: number, 
/**
 * The person this hub acts as now.
 */
acting: LocalPerson | null, 
/**
 * The first key of the coalition's person the acting key signs for: theirs, or another
 * of their keys (made at another hub and added with [`Hub::add_key`]); none if it signs
 * for no one.
 */
acting_as: string | null, 
/**
 * This hub, a member, was left out of a turnover of the coalition secret (its slot
 * missing, or holding another secret than the entry commits to): which entry, by whom,
 * and what to do. It reaches no hub that follows the secret past it.
 */
stranded: string | null, };

/**
 * What a bundle holds, as `aidmesh bundle inspect` shows it.
 */
export type BundleSummary = { 
/**
 * Hub id of the exporting hub.
 */
exporter: string, 
/**
 * Its name, if it is a member this hub knows.
 */
exporter_name: string | null, 
/**
 * Whether the exporting hub is a current member (only then can the bundle be imported).
 */
member: boolean, created_at: Timestamp, full: boolean, documents: number, bytes: number, 
/**
 * The Automerge data inside (documents or changes), before encryption.
 */
data_bytes: number, 
/**
 * Records per kind in the bundle (new or changed ones, for an incremental bundle).
 */
records: { [key in string]: number }, vault_entries: number, 
/**
 * On export: the hubs an incremental bundle was made for (names, or ids when unnamed).
 */
made_for: Array<string>, 
/**
 * On export: members this hub knows nothing of (never synced, no bundle either way): an
 * incremental bundle may lack what they need, a full one does not.
 */
unknown_members: Array<string>, 
/**
 * On import: documents whose changes wait for an earlier bundle (or a sync) to complete them.
 */
waiting_documents: number, };

export type Category = "food" | "water" | "medical" | "hygiene" | "shelter" | "power" | "tools" | "transport" | "communications" | "other";

/**
 * A row of the ICS-211 check-in list.
 */
export type CheckIn = { volunteer: RecordId, shift: RecordId | null, place: RecordId | null, checked_in: Timestamp, checked_out: Timestamp | null, notes: string, };

export type Condition = "new" | "good" | "used" | "damaged";

export type ConflictEntry = { field: string, values: Array<JsonValue>, };

/**
 * A record with fields written on two hubs apart.
 */
export type Conflicted = { id: string, kind: string, 
/**
 * What people call the record ("Thermal blanket").
 */
label: string, 
/**
 * How many of its fields wait for a person.
 */
fields: number, };

export type Consent = { 
/**
 * May coordinators contact them through the vault contact.
 */
contact: boolean, 
/**
 * May they appear in photos.
 */
photo: boolean, 
/**
 * May their vault contact be shared with other hubs.
 */
share: boolean, };

/**
 * One read of a contact: who, when, which record, and why.
 */
export type ContactRead = { at: Timestamp, by: string, vault: string, record: string, reason: string, };

/**
 * What the vault holds for a record's contact, as this hub knows it.
 */
export type ContactState = { "state": "none" } | { "state": "held", updated_at: Timestamp, here_only: boolean, ours: boolean, } | { "state": "erased", at: Timestamp, } | { "state": "not_here" };

/**
 * A record that names (or may name) a person's contact.
 */
export type ContactView = { record: string, kind: Kind, 
/**
 * The record's label: a volunteer's handle, a request's description.
 */
label: string, 
/**
 * A volunteer's consent; requests and offers carry none.
 */
consent: Consent | null, 
/**
 * The vault id the record names.
 */
vault: string | null, state: ContactState, };

export type Coverage = { shift: RecordId, start: Timestamp, end: Timestamp, needed: number, assigned: number, };

/**
 * A currency the ledger takes: its ISO 4217 code, and the digits of its minor unit (2 for
 * EUR: 42.50; 0 for JPY).
 */
export type Currency = { code: string, digits: number, };

export type Decision = "approve" | "reject";

export type DoubleBooking = { volunteer: RecordId, first: RecordId, second: RecordId, };

export type Expense = { 
/**
 * Amount in minor units of the currency (cents, pence).
 */
amount_minor: number, 
/**
 * ISO 4217 code.
 */
currency: string, payee: string, purpose: string, fund: string, category: string, receipt: string, date: string, };

export type Expiring = { item: RecordId, name: string, expiry: string, level: number, };

/**
 * Status of a request or an offer: open → matched → in transit → fulfilled, or cancelled.
 */
export type FlowStatus = "open" | "matched" | "in_transit" | "fulfilled" | "cancelled";

export type FollowUp = { incident: RecordId, action: string, owner: string, due: Timestamp | null, done: boolean, };

export type Grievance = { summary: string, details: string, confidential: boolean, 
/**
 * Handles who may read a confidential grievance.
 */
readers: Array<string>, 
/**
 * Handles of people involved: recused, they never read it even if listed as readers.
 */
involved: Array<string>, status: GrievanceStatus, resolution: string, 
/**
 * Handle of the person who facilitates the process.
 */
facilitator: string, 
/**
 * What was done, dated, oldest first. Only ever grows: the hub adds a step for each move.
 */
steps: Array<GrievanceStep>, };

export type GrievanceStatus = "received" | "investigating" | "resolved" | "dismissed";

/**
 * One dated step in handling a grievance: what was done, by whom, and the status it left.
 */
export type GrievanceStep = { at: Timestamp, 
/**
 * Handle of the person who recorded it.
 */
by: string, note: string, status: GrievanceStatus, };

/**
 * What one shift hands over to the next.
 */
export type Handoff = { shift: RecordId, next_shift: RecordId | null, note: string, 
/**
 * Handle of the person of the next shift who read it: set by an amendment, as a handoff
 * is append-only.
 */
acknowledged_by: string | null, };

export type HistoryLine = { at: Timestamp, 
/**
 * The hub (its id) where the change was made.
 */
hub: string, 
/**
 * Who made it, as the hub wrote it.
 */
handle: string, 
/**
 * The person whose key signed the change (checked when it arrived), by handle; by the start
 * of the key, marked, where it is no current person's key: one since revoked or removed, or
 * one this hub does not know as a person's (the entry that added them has not arrived yet,
 * or a hub made it up); none for a change made while no person of the coalition was
 * unlocked, whose `handle` is only the hub's word.
 */
person: string | null, 
/**
 * The change's hash: the same on every hub that holds it.
 */
change: string, };

/**
 * A search hit.
 */
export type Hit = { id: string, kind: Kind, label: string, };

/**
 * What the hub tells the window without being asked (the `hub-event` event).
 */
export type HubEvent = { "type": "records_changed", ids: Array<string>, } | { "type": "authority_changed" } | { "type": "vault_changed", ids: Array<string>, } | { "type": "join", confirmation: string, } | { "type": "invite", state: string, name: string | null, joiner: string | null, confirmation: string | null, message: string | null, } | { "type": "progress", task: Task, done: number, total: number, } | { "type": "peers_changed" };

export type HubInfo = { name: string, 
/**
 * Coarse location only ("north side, St Mary's hall"), never an exact address of a person.
 */
location: string, 
/**
 * How to reach the hub: radio channel, runner, signal group name.
 */
channel: string, };

/** A record: its meta and the fields of its kind, in one flat object. */
export type HubRecord = (Omit<Meta, "kind"> & { kind: "hub" } & HubInfo) | (Omit<Meta, "kind"> & { kind: "place" } & Place) | (Omit<Meta, "kind"> & { kind: "role" } & Role) | (Omit<Meta, "kind"> & { kind: "policy" } & Policy) | (Omit<Meta, "kind"> & { kind: "role_grant" } & RoleGrant) | (Omit<Meta, "kind"> & { kind: "member_entry" } & MemberEntry) | (Omit<Meta, "kind"> & { kind: "item" } & Item) | (Omit<Meta, "kind"> & { kind: "volunteer" } & Volunteer) | (Omit<Meta, "kind"> & { kind: "request" } & Request) | (Omit<Meta, "kind"> & { kind: "offer" } & Offer) | (Omit<Meta, "kind"> & { kind: "shift" } & Shift) | (Omit<Meta, "kind"> & { kind: "grievance" } & Grievance) | (Omit<Meta, "kind"> & { kind: "after_action" } & AfterAction) | (Omit<Meta, "kind"> & { kind: "movement" } & Movement) | (Omit<Meta, "kind"> & { kind: "allocation" } & Allocation) | (Omit<Meta, "kind"> & { kind: "assignment" } & Assignment) | (Omit<Meta, "kind"> & { kind: "check_in" } & CheckIn) | (Omit<Meta, "kind"> & { kind: "handoff" } & Handoff) | (Omit<Meta, "kind"> & { kind: "incident" } & Incident) | (Omit<Meta, "kind"> & { kind: "amendment" } & Amendment) | (Omit<Meta, "kind"> & { kind: "follow_up" } & FollowUp) | (Omit<Meta, "kind"> & { kind: "expense" } & Expense) | (Omit<Meta, "kind"> & { kind: "approval" } & Approval);

/**
 * This hub, and the coalition's members as it knows them.
 */
export type Identity = { hub_name: string, fingerprint: string, public_key: string, founder: string, members: Array<Member>, has_coalition_key: boolean, };

/**
 * What an imported bundle held and how many records it changed here.
 */
export type Imported = { summary: BundleSummary, changed: number, };

export type Incident = { occurred: Timestamp, place: RecordId | null, category: IncidentCategory, 
/**
 * 1 (minor) to 5 (life-threatening).
 */
severity: number, description: string, reporter: string, status: IncidentStatus, };

export type IncidentCategory = "medical" | "safety" | "police_security" | "weather" | "supply_interruption" | "accessibility" | "conduct" | "near_miss" | "other";

export type IncidentStatus = "open" | "monitoring" | "resolved";

/**
 * Whether this hub syncs over the internet, and the relays the coalition names for it.
 */
export type InternetSync = { 
/**
 * Switched on at this hub (it holds across restarts); it runs once a relay is named.
 */
on: boolean, relays: Array<string>, 
/**
 * The day's budget for internet sync, in bytes, if set: past it only urgent records go.
 */
budget: number | null, 
/**
 * What internet sync used today (UTC), as the running hub last kept it.
 */
used_today: number, };

/**
 * An open invite, as the inviting coordinator shows it.
 */
export type Invite = { code: string, qr_svg: string, expires_min: number, };

export type Item = { name: string, category: Category, 
/**
 * Unit of count: "bottle 1.5 l", "box of 50", "kit".
 */
unit: string, 
/**
 * Home place of the item; stock may sit at several places (see movements).
 */
place: RecordId | null, expiry: string | null, condition: Condition, 
/**
 * Below this total level the item shows as a shortage. Zero means no reorder level.
 */
reorder_level: number, notes: string, };

export type JsonValue = number | string | boolean | Array<JsonValue> | { [key in string]: JsonValue } | null;

/**
 * The kinds of record.
 */
export type Kind = "hub" | "place" | "role" | "policy" | "role_grant" | "member_entry" | "item" | "volunteer" | "request" | "offer" | "shift" | "grievance" | "after_action" | "movement" | "allocation" | "assignment" | "check_in" | "handoff" | "incident" | "amendment" | "follow_up" | "expense" | "approval";

/**
 * The ledger: totals, and the expenses still waiting for approval with what each lacks.
 */
export type Ledger = { totals: Totals, unapproved: Array<Waiting>, };

/**
 * A record in a list: as it reads now, and whether amendments changed it (`show` has the
 * original and the amendments).
 */
export type Listed = { amended: boolean, } & ((Omit<Meta, "kind"> & { kind: "hub" } & HubInfo) | (Omit<Meta, "kind"> & { kind: "place" } & Place) | (Omit<Meta, "kind"> & { kind: "role" } & Role) | (Omit<Meta, "kind"> & { kind: "policy" } & Policy) | (Omit<Meta, "kind"> & { kind: "role_grant" } & RoleGrant) | (Omit<Meta, "kind"> & { kind: "member_entry" } & MemberEntry) | (Omit<Meta, "kind"> & { kind: "item" } & Item) | (Omit<Meta, "kind"> & { kind: "volunteer" } & Volunteer) | (Omit<Meta, "kind"> & { kind: "request" } & Request) | (Omit<Meta, "kind"> & { kind: "offer" } & Offer) | (Omit<Meta, "kind"> & { kind: "shift" } & Shift) | (Omit<Meta, "kind"> & { kind: "grievance" } & Grievance) | (Omit<Meta, "kind"> & { kind: "after_action" } & AfterAction) | (Omit<Meta, "kind"> & { kind: "movement" } & Movement) | (Omit<Meta, "kind"> & { kind: "allocation" } & Allocation) | (Omit<Meta, "kind"> & { kind: "assignment" } & Assignment) | (Omit<Meta, "kind"> & { kind: "check_in" } & CheckIn) | (Omit<Meta, "kind"> & { kind: "handoff" } & Handoff) | (Omit<Meta, "kind"> & { kind: "incident" } & Incident) | (Omit<Meta, "kind"> & { kind: "amendment" } & Amendment) | (Omit<Meta, "kind"> & { kind: "follow_up" } & FollowUp) | (Omit<Meta, "kind"> & { kind: "expense" } & Expense) | (Omit<Meta, "kind"> & { kind: "approval" } & Approval));

/**
 * A person whose key this hub keeps.
 */
export type LocalPerson = { handle: string, 
/**
 * Public key, hex.
 */
key: string, 
/**
 * The key's fingerprint, as people compare it.
 */
fingerprint: string, 
/**
 * Whether a PIN guards the key.
 */
pin: boolean, };

/**
 * A member hub of the coalition.
 */
export type Member = { id: string, name: string, 
/**
 * "admin" or "member".
 */
role: string, since: Timestamp, };

/**
 * One signed entry of the coalition's membership log. Its meaning and its signature are
 * checked on read (`aidmesh-mesh`); as written, it proves nothing.
 */
export type MemberEntry = { 
/**
 * The action: `{"action": "admit" | "revoke" | "set_role", ...}`.
 */
action: JsonValue, 
/**
 * Public key of the signing hub, hex.
 */
signer: string, at: Timestamp, 
/**
 * Ed25519 signature, hex.
 */
sig: string, };

/**
 * Who made a record, on which hub, and when. Never changes after creation.
 */
export type Meta = { id: RecordId, kind: Kind, 
/**
 * Hub id of the hub that created the record.
 */
created_hub: string, 
/**
 * Pseudonymous handle of the person who created it.
 */
created_by: string, created_at: Timestamp, };

/**
 * One entry of the stock log. Stock levels are the sum of these, never a stored number.
 */
export type Movement = { item: RecordId, type: MovementKind, 
/**
 * Units moved; positive, except for `adjust` where it is the signed correction.
 */
quantity: number, place: RecordId, to_place: RecordId | null, 
/**
 * For `adjust`: the number actually counted, for the record.
 */
counted: number | null, reason: string, };

export type MovementKind = "receive" | "issue" | "transfer" | "adjust" | "discard";

export type Offer = { item: RecordId | null, category: Category | null, skill: SkillKind | null, description: string, quantity: number, place: RecordId | null, available_until: Timestamp | null, expiry: string | null, status: FlowStatus, contact: string | null, notes: string, };

/**
 * A source promised beyond what it holds: shown to a person to settle, never resolved silently.
 */
export type OverAllocation = { source: Source, capacity: number, allocated: number, allocations: Array<RecordId>, };

/**
 * What a coordinator needs to see first.
 */
export type Overview = { hub_name: string, now: Timestamp, shortages: Array<Shortage>, expiring: Array<Expiring>, urgent_requests: Array<HubRecord>, unfilled_shifts: Array<Coverage>, recent_incidents: Array<HubRecord>, over_allocations: Array<OverAllocation>, double_bookings: Array<DoubleBooking>, 
/**
 * Records with fields written on two hubs apart, waiting for a person to keep a version.
 */
field_conflicts: Array<Conflicted>, unapproved_expenses: Array<HubRecord>, counts: { [key in string]: number }, };

/**
 * The paper a sheet is printed on.
 */
export type Paper = "a4" | "letter";

/**
 * A connected peer, named as the coalition knows it.
 */
export type Peer = { hub: string, 
/**
 * The member's name, if this hub knows the peer as a member.
 */
name: string | null, addr: string, reach: Reach, dialed: boolean, connected_at: Timestamp, last_synced: Timestamp | null, 
/**
 * Documents waiting to go to the peer or to be asked of it.
 */
waiting: number, 
/**
 * Documents the peer lacks that the day's internet budget holds back.
 */
held: number, };

/**
 * Where this hub listens, and who it is connected to.
 */
export type Peers = { listening: string, peers: Array<Peer>, };

/**
 * A person of the coalition, for people to read.
 */
export type PersonView = { handle: string, 
/**
 * Their first key, hex: who they are.
 */
key: string, fingerprint: string, admin: boolean, 
/**
 * Named roles (`treasurer`, ...).
 */
roles: Array<string>, 
/**
 * When they were added (as the adding admin's clock said) and by whom.
 */
since: Timestamp, added_by: string, 
/**
 * How many keys sign for them (one per hub they work at).
 */
keys: number, };

export type Place = { name: string, type: PlaceKind, 
/**
 * The hub this place belongs to, if any.
 */
hub: RecordId | null, location: string, notes: string, };

export type PlaceKind = "site" | "staging" | "route" | "vehicle";

/**
 * A place, and how much is stored there.
 */
export type PlaceView = { place: HubRecord, 
/**
 * Items with stock there.
 */
items: number, 
/**
 * Units of all of them together.
 */
units: number, };

/**
 * Purchase rules: who may authorise how much, and how many approvals large purchases need.
 */
export type Policy = { currency: string, limits: Array<RoleLimit>, 
/**
 * Above this amount, `approvals_above_threshold` distinct approvers are needed.
 */
threshold_minor: number, approvals_above_threshold: number, 
/**
 * When the policy comes into force; the latest in force at an expense's date applies.
 */
effective: Timestamp, };

/**
 * A version of the purchase policy.
 */
export type PolicyView = { 
/**
 * The version's entry id, hex.
 */
id: string, set_by: string, at: Timestamp, currency: string, 
/**
 * Per role, how much one holder may authorise, in words ("treasurer: up to 5000.00 EUR").
 */
limits: Array<string>, threshold: string, approvals_above_threshold: number, 
/**
 * The version in force now (of several standing side by side, the one with the lowest id).
 */
in_force: boolean, 
/**
 * Whether a later version replaced it (expenses recorded under it keep it).
 */
superseded: boolean, };

/**
 * How a connected peer is reached: on the local network, over the internet on a direct path,
 * or through one of the coalition's relays.
 */
export type Reach = "lan" | "direct" | "relayed";

/**
 * One reason a candidate fits a request; front ends put it in the person's language.
 */
export type Reason = { "type": "skill_matches" } | { "type": "same_item" } | { "type": "same_category" } | { "type": "covers", quantity: number, needed: number, } | { "type": "expires", date: string, } | { "type": "same_place" } | { "type": "same_hub" };

/**
 * A record's stable id: lowercase Crockford base32 of 48 bits of creation time and 80 random bits.
 */
export type RecordId = string;

/**
 * A record as a person reads it: amended, with its conflicts, history and derived facts.
 */
export type RecordView = { 
/**
 * The record as it reads now (amendments applied for append-only kinds).
 */
record: HubRecord, 
/**
 * The original, when amendments changed it.
 */
original: HubRecord | null, amendments: Array<HubRecord>, conflicts: Array<ConflictEntry>, history: Array<HistoryLine>, 
/**
 * For items: stock per place.
 */
stock: Array<StockLine>, 
/**
 * For items: every movement of it, newest first.
 */
movements: Array<HubRecord>, 
/**
 * For expenses: whether the approvals satisfy the policy.
 */
approval: ApprovalState | null, };

/**
 * An entry the door refused, and who sent it.
 */
export type RefusedView = { at: Timestamp, 
/**
 * The hub (or bundle, or welcome) it came from.
 */
source: string, reason: string, };

export type Request = { 
/**
 * A specific catalogue item, or
 */
item: RecordId | null, 
/**
 * any item of a category, or
 */
category: Category | null, 
/**
 * a person with a skill (a service request).
 */
skill: SkillKind | null, description: string, quantity: number, place: RecordId | null, urgency: Urgency, needed_from: Timestamp | null, needed_by: Timestamp | null, status: FlowStatus, 
/**
 * Vault id of the contact: personal data never enters the CRDT.
 */
contact: string | null, notes: string, };

/**
 * A role on shift, with what it must produce and how to hand it over.
 */
export type Role = { name: string, outputs: string, success_measure: string, handoff_notes: string, 
/**
 * The skill the role needs, if any.
 */
skill: SkillKind | null, };

/**
 * Gives (or, revoked, takes back) a role from a person. Grants are entries of a log: the
 * latest entry for a person and role decides, and an entry is never edited (its signature
 * covers it).
 */
export type RoleGrant = { handle: string, role: string, revoked: boolean, 
/**
 * Public key (hex) of the admin hub that signed the grant.
 */
signer: string, 
/**
 * Ed25519 signature (hex) over the record; checked on read by the hub.
 */
sig: string, };

export type RoleLimit = { role: string, 
/**
 * The largest amount, in minor units, that one holder of the role may authorise.
 */
max_minor: number, };

/**
 * The shifts of a window of time, with those short of people and the double-bookings.
 */
export type Roster = { shifts: Array<HubRecord>, unfilled: Array<Coverage>, double_bookings: Array<DoubleBooking>, };

/**
 * A saved PDF: where, and how big.
 */
export type SavedPdf = { path: string, bytes: number, };

export type Shift = { role: RecordId, place: RecordId, start: Timestamp, end: Timestamp, needed: number, notes: string, };

export type Shortage = { item: RecordId, name: string, level: number, reorder_level: number, };

export type Skill = { skill: SkillKind, level: SkillLevel, 
/**
 * Handle of the person who verified the skill (saw the certificate, trained them).
 */
verified_by: string | null, 
/**
 * For translation: the languages (BCP 47 tags).
 */
languages: Array<string>, };

export type SkillKind = "first_aid" | "medic" | "translation" | "childcare" | "marshal" | "de_escalation" | "legal_observer" | "driver" | "logistics" | "cook" | "radio" | "other";

export type SkillLevel = "basic" | "trained" | "expert";

/**
 * Where an allocation draws from.
 */
export type Source = { "type": "offer", offer: RecordId, } | { "type": "stock", item: RecordId, place: RecordId, };

/**
 * Whether a store exists and whether it is open.
 */
export type Status = { store_exists: boolean, unlocked: boolean, store_path: string, };

export type StockLine = { item: string, place: string, quantity: number, };

/**
 * An item stored at a place, by name.
 */
export type Stored = { item: string, name: string, unit: string, quantity: number, };

/**
 * A suggestion with what a person needs to decide on it: what is asked, where it would come
 * from, how much of what is still needed it covers.
 */
export type SuggestionView = { request: RecordId, source: Source, 
/**
 * How much to allocate.
 */
quantity: number, 
/**
 * What the request still needs (asked, less what is allocated).
 */
needed: number, score: number, reasons: Array<Reason>, 
/**
 * The request as people read it ("Blankets for the night shelter").
 */
request_label: string, 
/**
 * The offer, or the item in stock ("Corner shop: 10 blankets", "Blanket").
 */
source_label: string, 
/**
 * The place the source is at, by name, if known.
 */
place_label: string | null, };

/**
 * Long tasks that report [`Event::Progress`].
 */
export type Task = "bundle_export" | "bundle_import";

/**
 * A point in time, milliseconds since the Unix epoch, UTC.
 *
 * Serialized as RFC 3339 text (`2026-11-25T14:00:00Z`) so that exports and the CRDT stay readable.
 */
export type Timestamp = string;

/**
 * One line of [`Totals`] as front ends read it (JSON has no tuple keys).
 */
export type TotalLine = { name: string, currency: string, minor: number, 
/**
 * The amount in the currency's units, e.g. "42.50 EUR".
 */
amount: string, };

export type Totals = { 
/**
 * (fund, currency) → minor units.
 */
per_fund: Array<TotalLine>, 
/**
 * (category, currency) → minor units.
 */
per_category: Array<TotalLine>, };

export type Urgency = "low" | "normal" | "high" | "critical";

export type Volunteer = { 
/**
 * Pseudonymous handle: the only name in the CRDT.
 */
handle: string, skills: Array<Skill>, languages: Array<string>, availability: string, access_needs: string, consent: Consent, 
/**
 * Vault id of the real name and contact.
 */
contact: string | null, notes: string, };

/**
 * While no admin is left: the people who voted to make someone an admin.
 */
export type VoteView = { target: string, voters: Array<string>, };

/**
 * An expense waiting for approval, and what it lacks (who may approve, how many).
 */
export type Waiting = { approval: ApprovalState, } & ((Omit<Meta, "kind"> & { kind: "hub" } & HubInfo) | (Omit<Meta, "kind"> & { kind: "place" } & Place) | (Omit<Meta, "kind"> & { kind: "role" } & Role) | (Omit<Meta, "kind"> & { kind: "policy" } & Policy) | (Omit<Meta, "kind"> & { kind: "role_grant" } & RoleGrant) | (Omit<Meta, "kind"> & { kind: "member_entry" } & MemberEntry) | (Omit<Meta, "kind"> & { kind: "item" } & Item) | (Omit<Meta, "kind"> & { kind: "volunteer" } & Volunteer) | (Omit<Meta, "kind"> & { kind: "request" } & Request) | (Omit<Meta, "kind"> & { kind: "offer" } & Offer) | (Omit<Meta, "kind"> & { kind: "shift" } & Shift) | (Omit<Meta, "kind"> & { kind: "grievance" } & Grievance) | (Omit<Meta, "kind"> & { kind: "after_action" } & AfterAction) | (Omit<Meta, "kind"> & { kind: "movement" } & Movement) | (Omit<Meta, "kind"> & { kind: "allocation" } & Allocation) | (Omit<Meta, "kind"> & { kind: "assignment" } & Assignment) | (Omit<Meta, "kind"> & { kind: "check_in" } & CheckIn) | (Omit<Meta, "kind"> & { kind: "handoff" } & Handoff) | (Omit<Meta, "kind"> & { kind: "incident" } & Incident) | (Omit<Meta, "kind"> & { kind: "amendment" } & Amendment) | (Omit<Meta, "kind"> & { kind: "follow_up" } & FollowUp) | (Omit<Meta, "kind"> & { kind: "expense" } & Expense) | (Omit<Meta, "kind"> & { kind: "approval" } & Approval));

/**
 * What an entry waiting for admins does once enough of them signed.
 */
export type WaitingChange = "removal" | "demotion" | "promotion";

/**
 * A removal, demotion or promotion of an admin waiting for more admins to sign.
 */
export type WaitingView = { 
/**
 * The entry to endorse, hex.
 */
entry: string, target: string, change: WaitingChange, signed: Array<string>, };

/** Every kind's fields, as the hub's `template` names them. */
export const KIND_FIELDS: { [K in Kind]: string[] } = {"after_action":["action_items","actions","did_not_work","incident","title","why","worked"],"allocation":["item","offer","place","quantity","request","status"],"amendment":["field","reason","target","value"],"approval":["approver","decision","expense","note","sig","signer"],"assignment":["active","shift","volunteer"],"check_in":["checked_in","checked_out","notes","place","shift","volunteer"],"expense":["amount_minor","category","currency","date","fund","payee","purpose","receipt"],"follow_up":["action","done","due","incident","owner"],"grievance":["confidential","details","facilitator","involved","readers","resolution","status","steps","summary"],"handoff":["acknowledged_by","next_shift","note","shift"],"hub":["channel","location","name"],"incident":["category","description","occurred","place","reporter","severity","status"],"item":["category","condition","expiry","name","notes","place","reorder_level","unit"],"member_entry":["action","at","sig","signer"],"movement":["counted","item","place","quantity","reason","to_place","type"],"offer":["available_until","category","contact","description","expiry","item","notes","place","quantity","skill","status"],"place":["hub","location","name","notes","type"],"policy":["approvals_above_threshold","currency","effective","limits","threshold_minor"],"request":["category","contact","description","item","needed_by","needed_from","notes","place","quantity","skill","status","urgency"],"role":["handoff_notes","name","outputs","skill","success_measure"],"role_grant":["handle","revoked","role","sig","signer"],"shift":["end","needed","notes","place","role","start"],"volunteer":["access_needs","availability","consent","contact","handle","languages","notes","skills"]};
