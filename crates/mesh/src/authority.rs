//! The coalition's authority log: who belongs, who holds which role, which hubs may sync. It
//! is a set of signed, content-addressed entries that can only grow, sans-IO.
//!
//! Every entry is signed by a person's key and names the entries its author had seen
//! (`preds`), so the entries form a graph of what each author knew. Merging two logs is the
//! union of their entries; nothing is ever edited or removed, so an edit made anywhere changes
//! nothing elsewhere (an edited entry is another entry, refused at the door for its signature).
//!
//! **At the door** ([`Log::offer`]) an entry is checked once, in this order: size and decoding
//! (re-encoding must give back exactly the bytes that arrived), coalition, the signature
//! (`verify_strict`), its `preds` (an entry whose `preds` have not all arrived waits), and
//! whether its author held the right it uses in the state resolved from the entry's own causal
//! past. Every hub reaches the same verdict, whatever else it holds. An entry refused is never
//! stored; the caller reports it with the hub that sent it.
//!
//! **Evaluation** ([`Log::state`]) walks the entries in topological order over `preds`, ties
//! broken by id, removals first. Time claimed by a signer is for display only. Three rules
//! decide the rest (see `docs/threat-model.md`):
//! - *Strong removal*: an entry by a person that is concurrent with (neither before nor after)
//!   that person's removal, demotion or key revocation does not count if it used the right
//!   that was taken away, nor does anything whose authority came from it. What they signed
//!   before, as the remover had seen it, stands. This is what defeats backdating: citing old
//!   `preds` only makes an entry concurrent with the removal.
//! - *Admins remove admins together*: removing or demoting an admin needs a majority of the
//!   other admins (the remover plus [`Body::Endorse`] entries; with two admins, the other one
//!   is enough) and takes effect at the entry that completes the majority. The founder is an
//!   admin like any other once there are two. The last admin cannot be removed, but admins who
//!   remove each other can leave none: then a majority of the coalition's people make one
//!   ([`Body::Recover`]).
//! - *Admins make admins together*: adding or promoting an admin needs a majority of the admins
//!   in the same way (the only admin alone; both of two), so that no admin can make the admins
//!   who would outvote the others. Until then a person added as an admin is a plain member.
//! - *Mutual removal*: admins who remove each other while apart all lose the contested right
//!   ([`State::contested`] lists it for a person to see). Seniority never wins.
//!
//! The resolved state is kept: an entry that extends every head and removes nothing is applied
//! in place; any other entry replays the log.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use aidmesh_model::views::ApprovalState;

use crate::hex::hex_bytes;
use crate::identity::{verify_strict, HubId, Identity};
use crate::membership::Role;

/// The largest entry accepted, in bytes: a revocation, which seals a fresh secret for every
/// remaining hub ([`MAX_SEALED`] slots).
pub const MAX_ENTRY: usize = 16 * 1024;
/// The largest entry of any other kind, in bytes.
pub const MAX_PLAIN_ENTRY: usize = 4 * 1024;
/// The most slots one sealed secret may have: the most hubs a revocation rotates the coalition
/// secret for.
pub const MAX_SEALED: usize = 128;
/// The most `preds` an entry may name.
pub const MAX_PREDS: usize = 32;
/// The most entries kept waiting for their `preds`,
pub const MAX_WAITING: usize = 10_000;
/// and the most bytes they may take together (room for the count of ordinary entries, of about
/// 620 bytes; a sixteenth of it for the largest): anyone with a key can sign entries that
/// follow entries no one has (the door checks their signature, not yet their author's right),
/// and a hub keeps what waits across restarts.
pub const MAX_WAITING_BYTES: usize = 16 * 1024 * 1024;
/// The longest name, handle or role, in characters.
pub const MAX_NAME: usize = 80;
/// The entry format this hub writes and reads.
pub const VERSION: u8 = 1;
const DOMAIN: &[u8] = b"aidmesh authority v1\n";

hex_bytes!(Key, 32, "an Ed25519 public key in hex");
hex_bytes!(Id, 32, "an entry id (64 hex digits)");
hex_bytes!(Sig, 64, "a signature (128 hex digits)");
hex_bytes!(Ephemeral, 32, "an X25519 public key in hex");
hex_bytes!(Slot, 48, "a sealed slot (96 hex digits)");
hex_bytes!(Commit, 32, "a commitment to a sealed secret (64 hex digits)");

/// 32 secret bytes sealed for some hubs ([`crate::seal`]): an ephemeral X25519 public key and
/// one slot per hub, naming no one. A turnover of the coalition secret also commits to the
/// secret (`commit`, see [`crate::keyring`]), so that a hub whose slot holds another secret, or
/// none, knows it was left out, and says so.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sealed {
    pub eph: Ephemeral,
    pub slots: Vec<Slot>,
    #[serde(default)]
    pub commit: Option<Commit>,
}

impl Serialize for Sealed {
    /// In an entry (JSON), a sealed secret without a commitment has no `commit` field, so that
    /// entries signed before it existed keep their bytes; in the kept state (postcard, which
    /// reads fields by position) it always has one.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let skip = s.is_human_readable() && self.commit.is_none();
        let mut out = s.serialize_struct("Sealed", if skip { 2 } else { 3 })?;
        out.serialize_field("eph", &self.eph)?;
        out.serialize_field("slots", &self.slots)?;
        if skip {
            out.skip_field("commit")?;
        } else {
            out.serialize_field("commit", &self.commit)?;
        }
        out.end()
    }
}

impl Key {
    pub fn of(identity: &Identity) -> Key {
        Key(identity.public().to_bytes())
    }

    /// The fingerprint people compare (the same form as a hub id).
    pub fn fingerprint(&self) -> Option<HubId> {
        HubId::of_bytes(&self.0)
    }

    /// The fingerprint's first group, for messages.
    pub fn short(&self) -> String {
        self.fingerprint().map(|f| f.short()).unwrap_or_else(|| self.hex()[..8].to_string())
    }
}

impl Id {
    /// The id of an entry's bytes (an entry is canonical, so its bytes name it).
    pub fn of(bytes: &[u8]) -> Id {
        Id(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &self.hex()[..12])
    }
}

/// What an entry does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Body {
    /// Founds the coalition: the one entry without `preds` or coalition. Its author is the first
    /// admin, its hub the first member hub (which countersigns it: `hub_sig`, see
    /// [`Body::found`]); its id is the coalition's id. `secret` is the coalition secret's start,
    /// sealed for the founding hub alone (see [`crate::keyring`]; none in coalitions founded
    /// before it had one).
    Found {
        coalition: String,
        handle: String,
        hub_name: String,
        hub_sig: Sig,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<Sealed>,
    },
    /// Adds a person, by the key they made at their hub.
    AddPerson { person: Key, handle: String, role: Role },
    /// Makes a person an admin or a plain member. Demoting an admin needs a majority.
    SetRole { person: Key, role: Role },
    /// Removes a person. Removing an admin needs a majority.
    RemovePerson { person: Key },
    /// An admin's signature added to a removal, demotion or promotion waiting for a majority.
    Endorse { entry: Id },
    /// Lets a hub (a laptop, by its key) sync with the coalition. `secret` hands it the
    /// coalition secret as its admitter held it after the revocation `after` (none: before any),
    /// sealed for it alone (see [`crate::keyring`]).
    AdmitHub {
        hub: Key,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<Sealed>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<Id>,
    },
    /// A lost or seized hub: it may no longer connect. `rekey` is a fresh secret sealed for the
    /// hubs that remain, which turns the coalition secret over (see [`crate::keyring`]).
    RevokeHub {
        hub: Key,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rekey: Option<Sealed>,
    },
    /// Turns the coalition secret over without revoking anyone (admins): a fresh secret sealed
    /// for every member hub, as a revocation's `rekey` is (see [`crate::keyring`]). For a
    /// coalition still on a start computable from its founding hub's key, or a secret that leaked
    /// by itself; a copied or seized laptop holds its hub's key and follows, so it is revoked.
    Rotate { rekey: Sealed },
    /// A person's further key (their key at another hub), signed by one of their keys. `proof`
    /// is the new key's own signature of the person's first key ([`key_proof`]): no one can
    /// claim a key they do not hold.
    AddKey { key: Key, proof: Sig },
    /// Withdraws one of a person's keys: by that person, or by an admin.
    RevokeKey { key: Key },
    /// Gives a person a named role (`treasurer`, ...).
    Grant { person: Key, role: String },
    /// Takes a named role back.
    Ungrant { person: Key, role: String },
    /// A version of the purchase policy (admins): who may authorise how much. It supersedes
    /// the versions it names; while two versions stand side by side, the one with the lowest id
    /// applies and people are shown both.
    Policy {
        supersedes: Vec<Id>,
        currency: String,
        limits: Vec<Limit>,
        /// Above this amount (minor units), `approvals_above_threshold` people must approve.
        threshold_minor: i64,
        approvals_above_threshold: u32,
    },
    /// An expense as its author recorded it, under the policy version in force for them:
    /// what approvals of it are judged against. `expense` is the record's id.
    Expense { expense: String, amount_minor: i64, currency: String, payee: String, policy: Option<Id> },
    /// Approves (or rejects) a recorded expense, using one of the approver's named roles.
    Approve { recorded: Id, approve: bool, role: String },
    /// Erases a person's data from every hub's vault (admins; the hub that holds the person's
    /// consent erases its own entries without one). Carries the vault id, never the content.
    Erase { vault: String },
    /// The relays through which the coalition's hubs reach each other over the internet
    /// (admins): `https` URLs of the coalition's own relay servers; none, direct addresses only.
    /// It supersedes the versions it names; versions that stand side by side all apply.
    Relays { supersedes: Vec<Id>, urls: Vec<String> },
    /// When no admin is left (admins who removed each other, keys lost): a person's vote to make
    /// `person` an admin (one vote a person, never withdrawn; votes made apart all count). A
    /// majority of the coalition's people make it so; while any admin is left, admins make admins
    /// and this is refused.
    Recover { person: Key },
}

/// How much one holder of a role may authorise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub role: String,
    pub max_minor: i64,
}

impl Body {
    /// Admits a hub without handing it the coalition secret (it starts from the founder's).
    pub fn admit_hub(hub: Key, name: String) -> Body {
        Body::AdmitHub { hub, name, secret: None, after: None }
    }

    /// Revokes a hub without turning the coalition secret over.
    pub fn revoke_hub(hub: Key) -> Body {
        Body::RevokeHub { hub, rekey: None }
    }

    /// A founding entry's body, countersigned by the founding hub: the hub vouches that this
    /// person founded the coalition with it (what lets hubs of a coalition from before the
    /// authority log accept its founding from their founding hub).
    pub fn found(
        hub: &Identity,
        founder: &Key,
        coalition: &str,
        handle: &str,
        hub_name: &str,
        secret: Option<Sealed>,
    ) -> Body {
        Body::Found {
            coalition: coalition.into(),
            handle: handle.into(),
            hub_name: hub_name.into(),
            hub_sig: Sig(hub.sign(&found_bytes(founder))),
            secret,
        }
    }

    /// Whether the entry takes something away: such entries go first among concurrent ones,
    /// and always replay the log.
    fn removes(&self) -> bool {
        matches!(
            self,
            Body::SetRole { role: Role::Member, .. }
                | Body::RemovePerson { .. }
                | Body::Endorse { .. }
                | Body::RevokeHub { .. }
                | Body::RevokeKey { .. }
                | Body::Ungrant { .. }
        )
    }

    /// Words for the entry, for people.
    pub fn describe(&self) -> String {
        match self {
            Body::Found { coalition, handle, hub_name, .. } => {
                format!("{handle} founded {coalition:?} at hub {hub_name:?}")
            }
            Body::AddPerson { person, handle, role } => format!("added {handle} ({}) as {role:?}", person.short()),
            Body::SetRole { person, role } => format!("made {} {role:?}", person.short()),
            Body::RemovePerson { person } => format!("removed {}", person.short()),
            Body::Endorse { entry } => format!("endorsed {entry}"),
            Body::AdmitHub { hub, name, .. } => format!("admitted hub {name:?} ({})", hub.short()),
            Body::RevokeHub { hub, .. } => format!("revoked hub {}", hub.short()),
            Body::Rotate { rekey } => format!("turned the coalition secret over for {} hubs", rekey.slots.len()),
            Body::AddKey { key, .. } => format!("added key {}", key.short()),
            Body::RevokeKey { key } => format!("revoked key {}", key.short()),
            Body::Grant { person, role } => format!("granted {role:?} to {}", person.short()),
            Body::Ungrant { person, role } => format!("took {role:?} from {}", person.short()),
            Body::Policy { currency, .. } => format!("set the purchase policy ({currency})"),
            Body::Relays { urls, .. } if urls.is_empty() => {
                "named no relay: internet sync on direct addresses only".into()
            }
            Body::Relays { urls, .. } => format!("named the coalition's relays: {}", urls.join(", ")),
            Body::Expense { expense, amount_minor, currency, .. } => {
                format!("recorded expense {expense} of {amount_minor} {currency} (minor units)")
            }
            Body::Approve { recorded, approve, role } => {
                format!("{} expense entry {recorded} as {role}", if *approve { "approved" } else { "rejected" })
            }
            Body::Erase { vault } => format!("erased vault entry {vault}"),
            Body::Recover { person } => format!("voted to make {} an admin, no admin being left", person.short()),
        }
    }
}

/// One signed entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub v: u8,
    /// The coalition's id (the founding entry's); absent only on the founding entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coalition: Option<Id>,
    /// The signing key: one of a person's keys.
    pub author: Key,
    /// The hub where the entry was made.
    pub hub: Key,
    /// The heads of the log as its author saw them, sorted.
    pub preds: Vec<Id>,
    /// The author's clock, milliseconds: shown to people, never used to order.
    pub at: i64,
    pub body: Body,
    pub sig: Sig,
}

/// What a new key signs to be added to a person: that person's first key.
fn key_proof_bytes(person: &Key) -> Vec<u8> {
    let mut out = DOMAIN.to_vec();
    out.extend(b"a key of ");
    out.extend(person.hex().as_bytes());
    out
}

/// The proof that `new_key` (held by whoever signs with it) may be added to `person` (their
/// first key): made where the new key lives, given to the person to sign `AddKey` with.
pub fn key_proof(new_key: &Identity, person: &Key) -> Sig {
    Sig(new_key.sign(&key_proof_bytes(person)))
}

/// What a founding hub signs: the founder's key.
fn found_bytes(founder: &Key) -> Vec<u8> {
    let mut out = DOMAIN.to_vec();
    out.extend(b"founded by ");
    out.extend(founder.hex().as_bytes());
    out
}

#[derive(Serialize)]
struct Content<'a> {
    v: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    coalition: &'a Option<Id>,
    author: &'a Key,
    hub: &'a Key,
    preds: &'a [Id],
    at: i64,
    body: &'a Body,
}

impl Entry {
    /// Signs an entry.
    pub fn sign(signer: &Identity, hub: Key, coalition: Option<Id>, mut preds: Vec<Id>, at: i64, body: Body) -> Entry {
        preds.sort();
        preds.dedup();
        let mut e = Entry { v: VERSION, coalition, author: Key::of(signer), hub, preds, at, body, sig: Sig([0; 64]) };
        e.sig = Sig(signer.sign(&e.content_bytes()));
        e
    }

    /// The bytes the signature covers: a domain tag and every field but the signature.
    fn content_bytes(&self) -> Vec<u8> {
        let c = Content {
            v: self.v,
            coalition: &self.coalition,
            author: &self.author,
            hub: &self.hub,
            preds: &self.preds,
            at: self.at,
            body: &self.body,
        };
        let mut out = DOMAIN.to_vec();
        out.extend(serde_json::to_vec(&c).unwrap_or_default());
        out
    }

    /// The entry's bytes: what travels and what its id hashes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn id(&self) -> Id {
        Id::of(&self.encode())
    }

    /// Reads an entry: within size, well-formed, and canonical (it re-encodes to the very bytes
    /// given, so one entry has one id).
    pub fn decode(bytes: &[u8]) -> Result<Entry, Refusal> {
        if bytes.len() > MAX_ENTRY {
            return Err(Refusal::TooLarge(bytes.len()));
        }
        let e: Entry = serde_json::from_slice(bytes).map_err(|e| Refusal::Malformed(e.to_string()))?;
        if bytes.len() > MAX_PLAIN_ENTRY && !matches!(e.body, Body::RevokeHub { .. } | Body::Rotate { .. }) {
            return Err(Refusal::TooLarge(bytes.len()));
        }
        if e.encode() != bytes {
            return Err(Refusal::Malformed("not in canonical form (it does not re-encode to the same bytes)".into()));
        }
        if e.v != VERSION {
            return Err(Refusal::Malformed(format!("format version {} (this hub reads {VERSION})", e.v)));
        }
        if e.preds.len() > MAX_PREDS || e.preds.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Refusal::Malformed(format!("preds must be sorted, distinct and at most {MAX_PREDS}")));
        }
        let name_ok =
            |s: &str| !s.trim().is_empty() && s.chars().count() <= MAX_NAME && !s.chars().any(char::is_control);
        let names: Vec<&str> = match &e.body {
            Body::Found { coalition, handle, hub_name, .. } => vec![coalition, handle, hub_name],
            Body::AddPerson { handle, .. } => vec![handle],
            Body::AdmitHub { name, .. } => vec![name],
            Body::Grant { role, .. } | Body::Ungrant { role, .. } | Body::Approve { role, .. } => vec![role],
            Body::Expense { expense, payee, .. } => vec![expense, payee],
            Body::Erase { vault } => vec![vault],
            Body::Policy { limits, .. } => limits.iter().map(|l| l.role.as_str()).collect(),
            _ => vec![],
        };
        if names.iter().any(|n| !name_ok(n)) {
            return Err(Refusal::Malformed(format!("names are 1 to {MAX_NAME} printable characters")));
        }
        if let Body::Relays { urls, .. } = &e.body {
            relays_ok(urls).map_err(Refusal::Malformed)?;
        }
        let sealed = match &e.body {
            Body::Found { secret, .. } | Body::AdmitHub { secret, .. } => secret.as_ref(),
            Body::RevokeHub { rekey, .. } => rekey.as_ref(),
            Body::Rotate { rekey } => Some(rekey),
            _ => None,
        };
        if sealed.is_some_and(|s| s.slots.is_empty() || s.slots.len() > MAX_SEALED) {
            return Err(Refusal::Malformed(format!("a sealed secret has 1 to {MAX_SEALED} slots")));
        }

        Ok(e)
    }

    fn check_signature(&self) -> bool {
        let countersigned = match &self.body {
            Body::Found { hub_sig, .. } => verify_strict(&self.hub.0, &found_bytes(&self.author), &hub_sig.0),
            _ => true,
        };
        countersigned && verify_strict(&self.author.0, &self.content_bytes(), &self.sig.0)
    }
}

/// Why an entry was refused at the door. Nothing refused is stored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the entry is {0} bytes, over the limit ({MAX_ENTRY} for a revocation or rotation, {MAX_PLAIN_ENTRY} for any other)")]
    TooLarge(usize),
    #[error("the entry is malformed: {0}")]
    Malformed(String),
    #[error("the entry belongs to another coalition")]
    OtherCoalition,
    #[error("the entry's signature does not match its content or its author")]
    BadSignature,
    #[error("{0}")]
    NoRight(String),
    #[error("too many entries are waiting for the entries they follow (over {MAX_WAITING} entries or {MAX_WAITING_BYTES} bytes)")]
    TooManyWaiting,
}

/// What became of an entry offered to the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Offered {
    /// Stored: this entry, and any waiting entries it let in, in order.
    Added(Vec<Id>),
    /// Already held (or already waiting).
    Known,
    /// Valid so far, waiting for entries it follows.
    Waiting(Vec<Id>),
}

/// Who gave something, where and when (as the signer claimed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Granted {
    pub by: Key,
    pub entry: Id,
    pub hub: Key,
    pub at: i64,
}

/// A person of the coalition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// The key they were added with: who they are.
    pub key: Key,
    pub handle: String,
    pub role: Role,
    /// Every key that signs for them, the first included.
    pub keys: BTreeSet<Key>,
    /// Named roles (`treasurer`, ...), with who granted them.
    pub roles: BTreeMap<String, Granted>,
    pub since: Granted,
}

/// A hub that may sync.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubEntry {
    pub key: Key,
    pub name: String,
    pub admitted: Granted,
    /// The coalition secret its admission handed it, and the revocation it was current after.
    pub handed: Option<(Option<Id>, Sealed)>,
}

/// A revocation that counted, in the order the log resolves: each turns the coalition secret
/// over with the fresh secret it sealed for the hubs that remained (none for revocations
/// written before revocations sealed one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rekey {
    pub entry: Id,
    /// The hub revoked, or none for a rotation.
    pub hub: Option<Key>,
    pub sealed: Option<Sealed>,
}

/// What an entry waiting for admins does once enough of them signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Removes an admin from the coalition (a majority of the other admins).
    Removal,
    /// Makes an admin a plain member (a majority of the other admins).
    Demotion,
    /// Makes a person an admin, or adds one as an admin (a majority of the admins: one admin
    /// alone cannot make the admins who would outvote the others).
    Promotion,
}

/// A removal, demotion or promotion waiting for a majority of the admins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    pub entry: Id,
    pub target: Key,
    pub change: Change,
    /// Admins who signed it so far.
    pub signed: BTreeSet<Key>,
}

/// Admins who removed each other while apart: all lost the contested right.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contest {
    /// People (by their first key) in the cycle.
    pub people: Vec<Key>,
    pub entries: Vec<Id>,
}

/// The most relays a coalition names.
pub const MAX_RELAYS: usize = 8;

/// Whether relay addresses are ones a hub may dial: at most [`MAX_RELAYS`], each once, each in
/// the form [`relay_url`] gives (`https://host[:port]/`).
pub fn relays_ok(urls: &[String]) -> Result<(), String> {
    if urls.len() > MAX_RELAYS {
        return Err(format!("at most {MAX_RELAYS} relays, not {}", urls.len()));
    }
    for u in urls {
        if relay_url(u)? != *u {
            return Err(format!("relay {u:?} is not written as {:?}", relay_url(u)?));
        }
    }
    if urls.iter().collect::<BTreeSet<_>>().len() != urls.len() {
        return Err("a relay is named twice".into());
    }
    Ok(())
}

/// A relay's address as typed, checked and written one way: `https://host[:port]/`, with a
/// host, and nothing that could make it read as another host than the one shown (no user
/// name or password, no path, query or fragment, no spaces).
pub fn relay_url(typed: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("relay {typed:?} is not an https:// address: {why}"));
    if typed.len() > 200 || typed.chars().any(|c| c.is_whitespace() || c.is_control() || c == '\\') {
        return bad("at most 200 characters, no spaces or backslashes");
    }
    let url = match url::Url::parse(typed) {
        Ok(u) => u,
        Err(e) => return bad(&e.to_string()),
    };
    if url.scheme() != "https" {
        return bad("it must start with https://");
    }
    let host = url.host_str().unwrap_or_default();
    if host.is_empty() {
        return bad("it names no host");
    }
    if host.ends_with('.') {
        return bad("no dot after the host's name");
    }
    if url.port() == Some(0) {
        return bad("port 0 is no port");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return bad("no user name or password before the host");
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return bad("the host and port only, no path");
    }
    Ok(url.to_string())
}

/// What the log says, resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub coalition: Option<Id>,
    pub coalition_name: String,
    pub people: BTreeMap<Key, Person>,
    pub hubs: BTreeMap<Key, HubEntry>,
    pub revoked_hubs: BTreeMap<Key, Granted>,
    /// The coalition secret's start, as the founding entry sealed it for its hub.
    pub genesis: Option<(Id, Sealed)>,
    /// Revocations that counted, in resolved order: the coalition secret's chain.
    pub rekeys: Vec<Rekey>,
    pub removed: BTreeMap<Key, Granted>,
    pub waiting: BTreeMap<Id, Waiting>,
    /// Every key ever added (to a person, removed or not): a key is never given twice.
    used_keys: BTreeSet<Key>,
    /// Stored entries that do not count, and why (strong removal, or authority that came from
    /// an entry that does not count).
    pub not_counted: Vec<(Id, String)>,
    pub contested: Vec<Contest>,
    /// Every policy version, and those no other version supersedes.
    pub policies: BTreeMap<Id, PolicyVersion>,
    pub policy_heads: BTreeSet<Id>,
    /// Every version of the coalition's relays, and those no other version supersedes.
    pub relay_versions: BTreeMap<Id, Vec<String>>,
    pub relay_heads: BTreeSet<Id>,
    /// Expenses as recorded by people (by entry), and the entry for each expense record.
    pub expenses: BTreeMap<Id, Recorded>,
    pub expense_entries: BTreeMap<String, Id>,
    /// Approvals and rejections that count, per recorded expense entry.
    pub approvals: BTreeMap<Id, Vec<Approval>>,
    /// Vault entries an admin erased, with who erased them.
    pub erased: BTreeMap<String, Granted>,
    /// While no admin is left: votes to make a person an admin (the candidate's first key, and
    /// the people who voted for them).
    pub recovery: BTreeMap<Key, BTreeSet<Key>>,
    key_owner: BTreeMap<Key, Key>,
}

/// A purchase policy version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersion {
    pub id: Id,
    pub set: Granted,
    pub supersedes: Vec<Id>,
    pub currency: String,
    pub limits: Vec<Limit>,
    pub threshold_minor: i64,
    pub approvals_above_threshold: u32,
}

impl PolicyVersion {
    /// How many people must approve `amount_minor`.
    pub fn needed(&self, amount_minor: i64) -> u32 {
        if amount_minor > self.threshold_minor {
            self.approvals_above_threshold
        } else {
            1
        }
    }
}

/// An expense as its author recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub expense: String,
    pub amount_minor: i64,
    pub currency: String,
    pub payee: String,
    pub policy: Option<Id>,
    /// The person who recorded it (first key).
    pub by: Key,
    pub at: i64,
}

/// An approval or rejection that counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub entry: Id,
    /// The person (first key) and their handle.
    pub by: Key,
    pub handle: String,
    pub approve: bool,
    pub role: String,
    pub hub: Key,
    pub at: i64,
}

impl State {
    /// The person a key signs for, if it is a current key of a current person.
    pub fn person_of(&self, key: &Key) -> Option<&Person> {
        self.key_owner.get(key).and_then(|p| self.people.get(p))
    }

    /// Whether the coalition ever gave `key` to a person (one since removed, or a key since
    /// revoked, included).
    pub fn was_given(&self, key: &Key) -> bool {
        self.used_keys.contains(key) || self.people.contains_key(key)
    }

    pub fn is_admin(&self, key: &Key) -> bool {
        self.person_of(key).is_some_and(|p| p.role == Role::Admin)
    }

    pub fn admins(&self) -> impl Iterator<Item = &Person> {
        self.people.values().filter(|p| p.role == Role::Admin)
    }

    /// Whether a person (by any of their keys) holds a named role.
    pub fn holds(&self, key: &Key, role: &str) -> bool {
        self.person_of(key).is_some_and(|p| p.roles.contains_key(role))
    }

    pub fn hub_is_member(&self, hub: &Key) -> bool {
        self.hubs.contains_key(hub)
    }

    /// Whether an expense, as its record reads now, is approved: judged against the policy
    /// version in force when its author recorded it, by the approvals that count. A rejection
    /// by someone entitled to decide rejects it; an expense changed since it was recorded (its
    /// amount, currency or payee amended) needs recording again, and approving again.
    pub fn approval(&self, expense: &str, amount_minor: i64, currency: &str, payee: &str) -> ApprovalState {
        let unapproved = |have: u32, need: u32, why: String| ApprovalState::Unapproved { have, need, why };
        let Some(r) = self.expense_entries.get(expense).and_then(|id| self.expenses.get(id).map(|r| (id, r))) else {
            return unapproved(0, 1, "not recorded by a person of the coalition, so no one can approve it yet".into());
        };
        let (rid, r) = r;
        if r.amount_minor != amount_minor || r.currency != currency || r.payee != payee {
            return unapproved(
                0,
                1,
                format!(
                    "changed since it was recorded for {} to {}: approvals were for that",
                    aidmesh_model::format_amount(r.amount_minor, &r.currency),
                    r.payee
                ),
            );
        }
        let Some(policy) = r.policy.and_then(|p| self.policies.get(&p)) else {
            return unapproved(0, 1, "no purchase policy was in force when it was recorded".into());
        };
        let need = policy.needed(amount_minor);
        // In the log's order (what each decider had seen comes first): once enough people have
        // approved, a later rejection is a dispute for people, not a silent reversal.
        let mut approvers = BTreeSet::new();
        for a in self.approvals.get(rid).map(Vec::as_slice).unwrap_or_default() {
            if !a.approve {
                return ApprovalState::Rejected { by: a.handle.clone() };
            }
            approvers.insert(a.handle.clone());
            if approvers.len() as u32 >= need {
                return ApprovalState::Approved { approvers: approvers.into_iter().collect() };
            }
        }
        let have = approvers.len() as u32;
        let roles: Vec<&str> =
            policy.limits.iter().filter(|l| l.max_minor >= amount_minor).map(|l| l.role.as_str()).collect();
        let why = if roles.is_empty() {
            format!(
                "no role may authorise {} under the policy in force",
                aidmesh_model::format_amount(amount_minor, currency)
            )
        } else {
            format!(
                "needs {need} approval{} from {} (not the person who recorded it, nor its payee)",
                if need == 1 { "" } else { "s" },
                roles.join(" or ")
            )
        };
        unapproved(have, need, why)
    }

    /// The policy version in force now: the only one standing, or of several standing side by
    /// side (set while apart), the one with the lowest id until one supersedes the others.
    pub fn policy(&self) -> Option<&PolicyVersion> {
        self.policy_heads.iter().next().and_then(|id| self.policies.get(id))
    }

    /// The coalition's relays now: those of every version no other supersedes (versions set
    /// apart all apply), each once, in order, at most [`MAX_RELAYS`].
    pub fn relays(&self) -> Vec<String> {
        let all: BTreeSet<&String> =
            self.relay_heads.iter().filter_map(|id| self.relay_versions.get(id)).flatten().collect();
        all.into_iter().take(MAX_RELAYS).cloned().collect()
    }

    /// Checks that `e` may be applied here: its author holds the right it uses and the action
    /// makes sense. Pure: the door and the replay both call it. At the `door` the state is the
    /// entry's causal past, so a few checks hold only there (which policy version was in force
    /// for its author); the replay also sees concurrent entries, and skips them.
    fn check(&self, e: &Entry, door: bool) -> Result<(), String> {
        let author = self.person_of(&e.author);
        let who = || author.map(|p| p.handle.clone()).unwrap_or_else(|| e.author.short());
        let admin = || -> Result<&Person, String> {
            match author {
                Some(p) if p.role == Role::Admin => Ok(p),
                Some(p) => Err(format!("{} is not an admin of the coalition", p.handle)),
                None => Err(format!("{} is not a person of the coalition (or that key was revoked)", e.author.short())),
            }
        };
        let member =
            |k: &Key| self.people.get(k).ok_or_else(|| format!("{} is not a person of the coalition", k.short()));
        let key_free = |k: &Key| {
            if self.used_keys.contains(k) || self.people.contains_key(k) {
                Err(format!("key {} was already given to a person: a key is never given twice", k.short()))
            } else {
                Ok(())
            }
        };
        match &e.body {
            Body::Found { .. } => Err("the coalition is already founded".into()),
            Body::AddPerson { person, .. } => {
                admin()?;
                // A removed person may be added again (after their removal); their key may not
                // be given to anyone else.
                if self.removed.contains_key(person) && !self.people.contains_key(person) {
                    return Ok(());
                }
                key_free(person)
            }
            Body::SetRole { person, role } => {
                admin()?;
                let p = member(person)?;
                if p.role == *role {
                    return Err(format!("{} already has that role", p.handle));
                }
                if *role == Role::Admin
                    && self.waiting.values().any(|w| w.target == *person && w.change == Change::Promotion)
                {
                    return Err(format!("making {} an admin already waits for admins to sign: endorse it", p.handle));
                }
                if *role == Role::Member && self.admins().count() == 1 {
                    return Err("the last admin cannot be demoted: make another admin first".into());
                }
                Ok(())
            }
            Body::RemovePerson { person } => {
                admin()?;
                let p = member(person)?;
                if p.role == Role::Admin && self.admins().count() == 1 {
                    return Err("the last admin cannot be removed: make another admin first".into());
                }
                Ok(())
            }
            Body::Endorse { entry } => {
                let a = admin()?;
                let w =
                    self.waiting.get(entry).ok_or_else(|| format!("{entry} is not a removal waiting for admins"))?;
                if w.target == a.key {
                    return Err(format!("{} cannot endorse their own removal", a.handle));
                }
                if w.signed.contains(&a.key) {
                    return Err(format!("{} already signed it", a.handle));
                }
                Ok(())
            }
            Body::AdmitHub { hub, .. } => {
                admin()?;
                if self.hubs.contains_key(hub) {
                    return Err(format!("hub {} is already a member", hub.short()));
                }
                Ok(())
            }
            Body::RevokeHub { hub, .. } => {
                admin()?;
                if !self.hubs.contains_key(hub) {
                    return Err(format!("hub {} is not a member", hub.short()));
                }
                Ok(())
            }
            Body::Rotate { .. } => admin().map(|_| ()),
            Body::AddKey { key, proof } => {
                let p = author.ok_or_else(|| format!("{} is not a person of the coalition", who()))?;
                if !verify_strict(&key.0, &key_proof_bytes(&p.key), &proof.0) {
                    return Err(format!("key {} did not sign for {}: it is not theirs to add", key.short(), p.handle));
                }
                key_free(key)
            }
            Body::RevokeKey { key } => {
                let owner = self.key_owner.get(key).ok_or_else(|| format!("key {} signs for no one", key.short()))?;
                let p = self.people.get(owner).ok_or_else(|| format!("key {} signs for no one", key.short()))?;
                if Some(owner) != author.map(|a| &a.key) {
                    admin()?;
                }
                if p.keys.len() == 1 {
                    return Err(format!("{}'s last key cannot be revoked: remove the person instead", p.handle));
                }
                Ok(())
            }
            Body::Grant { person, role } => {
                admin()?;
                let p = member(person)?;
                if p.roles.contains_key(role) {
                    return Err(format!("{} already holds {role:?}", p.handle));
                }
                Ok(())
            }
            Body::Ungrant { person, role } => {
                admin()?;
                let p = member(person)?;
                if !p.roles.contains_key(role) {
                    return Err(format!("{} does not hold {role:?}", p.handle));
                }
                Ok(())
            }
            Body::Policy { supersedes, currency, limits, threshold_minor, approvals_above_threshold } => {
                admin()?;
                if let Some(unknown) = supersedes.iter().find(|s| !self.policies.contains_key(s)) {
                    return Err(format!("it supersedes {unknown}, which is not a policy version"));
                }
                if !aidmesh_model::is_iso4217(currency) {
                    return Err(format!("{currency:?} is not an ISO 4217 currency code"));
                }
                if limits.is_empty() || limits.iter().any(|l| l.max_minor <= 0) {
                    return Err("a policy names at least one role, each with a positive limit".into());
                }
                if *threshold_minor < 0 || *approvals_above_threshold == 0 {
                    return Err("the threshold is not negative and at least one approval is needed".into());
                }
                Ok(())
            }
            Body::Relays { supersedes, .. } => {
                admin()?;
                if let Some(unknown) = supersedes.iter().find(|s| !self.relay_versions.contains_key(s)) {
                    return Err(format!("it supersedes {unknown}, which is not a version of the relays"));
                }
                Ok(())
            }
            Body::Expense { expense, amount_minor, currency, policy, .. } => {
                author.ok_or_else(|| format!("{} is not a person of the coalition", who()))?;
                if door && self.expense_entries.contains_key(expense) {
                    return Err(format!("expense {expense} is already recorded"));
                }
                if *amount_minor <= 0 || !aidmesh_model::is_iso4217(currency) {
                    return Err("an expense has a positive amount in an ISO 4217 currency".into());
                }
                if door && policy.as_ref() != self.policy().map(|p| &p.id) {
                    return Err("it names a policy version other than the one in force".into());
                }
                if policy.is_some_and(|p| !self.policies.contains_key(&p)) {
                    return Err("it names a policy version that is not one".into());
                }
                Ok(())
            }
            Body::Approve { recorded, role, .. } => {
                let p = author.ok_or_else(|| format!("{} is not a person of the coalition", who()))?;
                if !p.roles.contains_key(role) {
                    return Err(format!("{} does not hold the role {role:?}", p.handle));
                }
                let r = self.expenses.get(recorded).ok_or_else(|| format!("{recorded} is not a recorded expense"))?;
                if r.by == p.key {
                    return Err(format!("{} recorded this expense: someone else approves it", p.handle));
                }
                if r.payee.trim().eq_ignore_ascii_case(p.handle.trim()) {
                    return Err(format!("{} is the payee of this expense: someone else approves it", p.handle));
                }
                let policy = r
                    .policy
                    .and_then(|id| self.policies.get(&id))
                    .ok_or("no purchase policy was in force when the expense was recorded")?;
                if policy.currency != r.currency {
                    return Err(format!("the policy in force covers {}, not {}", policy.currency, r.currency));
                }
                if door && !self.policy_heads.contains(&policy.id) {
                    return Err("the policy it was recorded under has been replaced: record it again".into());
                }
                if !policy.limits.iter().any(|l| l.role == *role && l.max_minor >= r.amount_minor) {
                    return Err(format!("the role {role:?} may not authorise this amount under the policy"));
                }
                if self.approvals.get(recorded).is_some_and(|a| a.iter().any(|a| a.by == p.key)) {
                    return Err(format!("{} already decided on this expense", p.handle));
                }
                Ok(())
            }
            Body::Erase { .. } => admin().map(|_| ()),
            Body::Recover { person } => {
                let voter = author.ok_or_else(|| format!("{} is not a person of the coalition", who()))?;
                if self.admins().next().is_some() {
                    return Err("the coalition has an admin: admins make admins, no vote is needed".into());
                }
                member(person)?;
                // One vote a person at the door, never withdrawn. Votes only add: one that moved,
                // or a vote made apart that voided another, would let a voter undo a recovery
                // that had completed (by a vote concurrent with its last one, with an id that
                // sorts first). So the replay counts every vote that passed its door.
                let voted = self.recovery.iter().find(|(_, v)| v.contains(&voter.key));
                if let Some((for_whom, _)) = voted.filter(|_| door) {
                    let whom = self.people.get(for_whom).map(|p| p.handle.clone()).unwrap_or_else(|| for_whom.short());
                    return Err(format!("{} already voted, for {whom}", voter.handle));
                }
                Ok(())
            }
        }
    }

    /// Applies a checked entry by `author` (the person its key signs for); returns the removal
    /// it completed, if any. A `forced` removal (one side of a mutual removal) completes at once.
    fn apply(&mut self, i: usize, id: Id, e: &Entry, author: Option<Key>, forced: bool) -> Option<Event> {
        let granted = Granted { by: e.author, entry: id, hub: e.hub, at: e.at };
        match &e.body {
            Body::Found { coalition, handle, hub_name, secret, .. } => {
                self.coalition = Some(id);
                self.coalition_name = coalition.clone();
                self.genesis = secret.clone().map(|s| (id, s));
                self.add_person(e.author, handle, Role::Admin, granted.clone());
                self.hubs
                    .insert(e.hub, HubEntry { key: e.hub, name: hub_name.clone(), admitted: granted, handed: None });
                None
            }
            Body::AddPerson { person, handle, role } => {
                self.removed.remove(person);
                self.add_person(*person, handle, Role::Member, granted);
                if *role == Role::Admin {
                    return self.start(i, id, author?, *person, Change::Promotion, forced);
                }
                None
            }
            Body::SetRole { person, role: Role::Admin } => {
                self.start(i, id, author?, *person, Change::Promotion, forced)
            }
            Body::SetRole { person, role: Role::Member } => {
                self.start(i, id, author?, *person, Change::Demotion, forced)
            }
            Body::RemovePerson { person } => self.start(i, id, author?, *person, Change::Removal, forced),
            Body::Endorse { entry } => {
                let w = self.waiting.get_mut(entry)?;
                w.signed.insert(author?);
                let w = w.clone();
                if forced {
                    self.waiting.remove(&w.entry);
                    return self.complete(i, &w);
                }
                self.complete_if_enough(i, &w)
            }
            Body::AdmitHub { hub, name, secret, after } => {
                self.revoked_hubs.remove(hub);
                let handed = secret.clone().map(|s| (*after, s));
                self.hubs.insert(*hub, HubEntry { key: *hub, name: name.clone(), admitted: granted, handed });
                None
            }
            Body::RevokeHub { hub, rekey } => {
                self.hubs.remove(hub);
                self.rekeys.push(Rekey { entry: granted.entry, hub: Some(*hub), sealed: rekey.clone() });
                self.revoked_hubs.insert(*hub, granted);
                None
            }
            Body::Rotate { rekey } => {
                self.rekeys.push(Rekey { entry: granted.entry, hub: None, sealed: Some(rekey.clone()) });
                None
            }
            Body::AddKey { key, .. } => {
                let owner = author?;
                self.used_keys.insert(*key);
                self.key_owner.insert(*key, owner);
                self.people.get_mut(&owner)?.keys.insert(*key);
                None
            }
            Body::RevokeKey { key } => {
                let owner = self.key_owner.remove(key)?;
                self.people.get_mut(&owner)?.keys.remove(key);
                Some(Event { target: Target::Key(*key), lost: Lost::All, completion: i, participants: BTreeSet::new() })
            }
            Body::Grant { person, role } => {
                self.people.get_mut(person)?.roles.insert(role.clone(), granted);
                None
            }
            Body::Ungrant { person, role } => {
                self.people.get_mut(person)?.roles.remove(role);
                Some(Event {
                    target: Target::Person(*person),
                    lost: Lost::Role(role.clone()),
                    completion: i,
                    participants: author.into_iter().collect(),
                })
            }
            Body::Policy { supersedes, currency, limits, threshold_minor, approvals_above_threshold } => {
                for s in supersedes {
                    self.policy_heads.remove(s);
                }
                self.policy_heads.insert(id);
                let v = PolicyVersion {
                    id,
                    set: granted,
                    supersedes: supersedes.clone(),
                    currency: currency.clone(),
                    limits: limits.clone(),
                    threshold_minor: *threshold_minor,
                    approvals_above_threshold: *approvals_above_threshold,
                };
                self.policies.insert(id, v);
                None
            }
            Body::Relays { supersedes, urls } => {
                for s in supersedes {
                    self.relay_heads.remove(s);
                }
                self.relay_heads.insert(id);
                self.relay_versions.insert(id, urls.clone());
                None
            }
            Body::Expense { expense, amount_minor, currency, payee, policy } => {
                self.expense_entries.entry(expense.clone()).or_insert(id);
                let r = Recorded {
                    expense: expense.clone(),
                    amount_minor: *amount_minor,
                    currency: currency.clone(),
                    payee: payee.clone(),
                    policy: *policy,
                    by: author?,
                    at: e.at,
                };
                self.expenses.insert(id, r);
                None
            }
            Body::Approve { recorded, approve, role } => {
                let by = author?;
                let handle = self.people.get(&by).map(|p| p.handle.clone()).unwrap_or_default();
                let a = Approval { entry: id, by, handle, approve: *approve, role: role.clone(), hub: e.hub, at: e.at };
                self.approvals.entry(*recorded).or_default().push(a);
                None
            }
            Body::Erase { vault } => {
                self.erased.entry(vault.clone()).or_insert(granted);
                None
            }
            Body::Recover { person } => {
                let votes = self.recovery.entry(*person).or_default();
                votes.insert(author?);
                let counted = votes.iter().filter(|v| self.people.contains_key(v)).count();
                // A majority of the people make the first admin again; the other votes lapse.
                if counted > self.people.len() / 2 {
                    self.people.get_mut(person)?.role = Role::Admin;
                    self.recovery.clear();
                }
                None
            }
        }
    }

    fn add_person(&mut self, key: Key, handle: &str, role: Role, since: Granted) {
        self.key_owner.insert(key, key);
        self.used_keys.insert(key);
        self.people.insert(
            key,
            Person {
                key,
                handle: handle.to_string(),
                role,
                keys: BTreeSet::from([key]),
                roles: BTreeMap::new(),
                since,
            },
        );
    }

    /// Starts a change that needs a majority of the admins: it completes at once if its author
    /// is that majority (removing a plain member, or the only admin promoting someone), else it
    /// waits for [`Body::Endorse`] entries.
    fn start(&mut self, i: usize, id: Id, by: Key, target: Key, change: Change, forced: bool) -> Option<Event> {
        let p = self.people.get(&target)?;
        let w = Waiting { entry: id, target, change, signed: BTreeSet::from([by]) };
        if (change != Change::Promotion && p.role != Role::Admin) || forced {
            return self.complete(i, &w);
        }
        self.waiting.insert(id, w.clone());
        self.complete_if_enough(i, &w)
    }

    fn complete_if_enough(&mut self, i: usize, w: &Waiting) -> Option<Event> {
        // The admins other than the target (all of them, for a promotion).
        let others: Vec<Key> = self.admins().map(|a| a.key).filter(|k| *k != w.target).collect();
        let have = w.signed.iter().filter(|k| others.contains(k)).count();
        // A majority of them.
        if have > others.len() / 2 {
            self.waiting.remove(&w.entry);
            self.complete(i, w)
        } else {
            None
        }
    }

    fn complete(&mut self, i: usize, w: &Waiting) -> Option<Event> {
        let lost = match w.change {
            Change::Promotion => {
                self.people.get_mut(&w.target)?.role = Role::Admin;
                return None;
            }
            Change::Demotion => Lost::Admin,
            Change::Removal => Lost::All,
        };
        if w.change == Change::Demotion {
            self.people.get_mut(&w.target)?.role = Role::Member;
        } else {
            let p = self.people.remove(&w.target)?;
            for k in &p.keys {
                self.key_owner.remove(k);
            }
            self.removed.insert(w.target, p.since.clone());
            self.waiting.retain(|_, x| x.target != w.target);
        }
        Some(Event { target: Target::Person(w.target), lost, completion: i, participants: w.signed.clone() })
    }
}

/// Whose right an event took.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Person(Key),
    Key(Key),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Lost {
    All,
    Admin,
    Role(String),
}

/// A removal, demotion, key revocation or role withdrawal that took effect at `completion`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Event {
    target: Target,
    lost: Lost,
    completion: usize,
    /// People who signed it (their first keys).
    participants: BTreeSet<Key>,
}

/// The right an entry uses.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Need {
    Admin,
    Member,
    Role(String),
}

struct Node {
    id: Id,
    entry: Entry,
    preds: Vec<usize>,
}

/// A set of entry positions.
#[derive(Clone)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn get(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
}

/// The form of [`Resolved`] this build writes: a hub ignores a resolved state of another form
/// and replays its log instead. Bump it with any change to [`State`] or a type in it
/// (`tests/authority.rs` pins the layout and fails until it is bumped), and with any change to
/// the rules that resolve the log (`check`, `apply`, `resolve`, `judge`): a state resolved by other
/// rules must not be served. The package version is part of it, so each release resolves anew.
const RESOLVED_FORM: &[u8] = concat!("aidmesh resolved authority v4 ", env!("CARGO_PKG_VERSION"), "\n").as_bytes();

/// A log's resolved state with its heads and size: what a hub keeps beside its entries, so that
/// opening reads the state instead of replaying every entry (the log itself is loaded when an
/// entry arrives or is made). It never leaves the hub: not sent, not signed, and trusted as the
/// stored entries are (they passed the door, and the store is encrypted and authenticated).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved<'a> {
    pub heads: Vec<Id>,
    pub entries: u64,
    pub coalition: Option<Id>,
    pub state: std::borrow::Cow<'a, State>,
}

impl Resolved<'_> {
    /// A compact binary form (keys and ids as raw bytes): about a third of the entries' size.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = RESOLVED_FORM.to_vec();
        out.extend(postcard::to_allocvec(self).expect("a resolved state always encodes"));
        out
    }

    /// What [`Resolved::encode`] wrote; `None` for any other form or damaged bytes.
    pub fn decode(bytes: &[u8]) -> Option<Resolved<'static>> {
        postcard::from_bytes(bytes.strip_prefix(RESOLVED_FORM)?).ok()
    }

    /// Brings the state forward by an entry stored after it (`id`, `bytes` as the store holds
    /// them), without the log: possible when the entry follows exactly this state's heads and
    /// takes no right away, the case where the log itself applies an entry in place, since the
    /// replay would reach the same state. Whether it could; if not, nothing changed and the
    /// caller replays the log.
    pub fn extend(&mut self, id: Id, bytes: &[u8]) -> bool {
        let Ok(e) = serde_json::from_slice::<Entry>(bytes) else { return false };
        let at_heads = !self.heads.is_empty()
            && e.preds.len() == self.heads.len()
            && e.preds.iter().all(|p| self.heads.contains(p));
        if !at_heads || e.body.removes() || matches!(e.body, Body::Found { .. }) {
            return false;
        }
        let Ok(i) = usize::try_from(self.entries) else { return false };
        let state = self.state.to_mut();
        // As the replay does: an entry that does not hold here is listed, not applied.
        match state.check(&e, false) {
            Err(why) => state.not_counted.push((id, why)),
            Ok(()) => {
                let author = state.key_owner.get(&e.author).copied();
                state.apply(i, id, &e, author, false);
            }
        }
        self.heads = vec![id];
        self.entries += 1;
        true
    }
}

/// The log: entries in an order where every entry follows its `preds`.
#[derive(Default)]
pub struct Log {
    nodes: Vec<Node>,
    index: HashMap<Id, usize>,
    heads: BTreeSet<Id>,
    state: State,
    waiting: BTreeMap<Id, Entry>,
    /// The bytes of the entries in `waiting`.
    waiting_bytes: usize,
    /// The coalition this log belongs to, once known (from its founding entry, or given).
    coalition: Option<Id>,
    /// Before the founding entry is known: the hub whose founding entry is accepted.
    founding_hub: Option<Key>,
    /// Every key some entry added, and the people it was added to (two, if people claimed one
    /// key while apart): the quick check at the door, which must not depend on which of those
    /// entries arrived first.
    ever_owner: HashMap<Key, BTreeSet<Key>>,
    /// People who were ever made admins.
    ever_admin: HashSet<Key>,
    /// The state after the last entry admitted off the heads (a branch made apart arriving):
    /// the next entry of that branch is checked against it without replaying.
    branch: Option<(Id, State)>,
    /// Whether `state` lags behind the stored entries (resolved once at the end of an offer).
    stale: bool,
    /// Entries that waited and were refused once what they follow arrived: their bytes and
    /// why, for the caller to forget and report ([`Log::take_lapsed`]).
    lapsed: Vec<(Id, Vec<u8>, Refusal)>,
}

impl Log {
    /// An empty log that accepts any founding entry.
    pub fn new() -> Log {
        Log::default()
    }

    /// An empty log for one coalition: only its founding entry is accepted.
    pub fn for_coalition(coalition: Id) -> Log {
        Log { coalition: Some(coalition), ..Log::default() }
    }

    /// An empty log of a coalition from before the authority log, known by its founding hub:
    /// only a founding entry that hub countersigned is accepted.
    pub fn for_founding_hub(hub: Key) -> Log {
        Log { founding_hub: Some(hub), ..Log::default() }
    }

    /// A log from entries this hub stored earlier, in the order it stored them. They passed the
    /// door when they arrived (the store is encrypted and authenticated), so signatures are not
    /// checked again; decoding and order are.
    pub fn load<B: AsRef<[u8]>>(entries: impl IntoIterator<Item = B>) -> Result<Log, Refusal> {
        Log::load_with_ids(entries.into_iter().map(|b| (Id::of(b.as_ref()), b)))
    }

    /// [`Log::load`] from entries stored with their ids (the store keeps both): neither hashed
    /// nor re-encoded again.
    pub fn load_with_ids<B: AsRef<[u8]>>(entries: impl IntoIterator<Item = (Id, B)>) -> Result<Log, Refusal> {
        let mut log = Log::new();
        for (id, b) in entries {
            let e: Entry = serde_json::from_slice(b.as_ref()).map_err(|e| Refusal::Malformed(e.to_string()))?;
            if log.index.contains_key(&id) {
                continue;
            }
            if let Body::Found { .. } = e.body {
                log.coalition = Some(id);
            }
            let preds = e
                .preds
                .iter()
                .map(|p| log.index.get(p).copied())
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| Refusal::Malformed(format!("stored entry {id} comes before an entry it follows")))?;
            log.store(id, e, preds);
        }
        log.state = resolve(&log.nodes, None);
        Ok(log)
    }

    pub fn coalition(&self) -> Option<Id> {
        self.coalition
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// The resolved state with the heads it resolves, to keep ([`Resolved`]).
    pub fn resolved(&self) -> Resolved<'_> {
        Resolved {
            heads: self.heads(),
            entries: self.len() as u64,
            coalition: self.coalition,
            state: std::borrow::Cow::Borrowed(&self.state),
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn heads(&self) -> Vec<Id> {
        self.heads.iter().copied().collect()
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.index.contains_key(id)
    }

    pub fn get(&self, id: &Id) -> Option<&Entry> {
        self.index.get(id).map(|i| &self.nodes[*i].entry)
    }

    /// Every entry with its id, in stored order.
    pub fn entries(&self) -> impl Iterator<Item = (Id, &Entry)> {
        self.nodes.iter().map(|n| (n.id, &n.entry))
    }

    /// Entries waiting for entries they follow, to keep across restarts.
    pub fn waiting(&self) -> impl Iterator<Item = &Entry> {
        self.waiting.values()
    }

    /// An entry that waited when this hub last ran, offered again: if it is refused now, it is
    /// among the lapsed, as one refused once what it follows arrived is.
    pub fn offer_stored_waiting(&mut self, bytes: &[u8]) {
        match self.offer(bytes) {
            // A full waiting room says nothing against the entry: it stays stored, for later.
            Ok(_) | Err(Refusal::TooManyWaiting) => {}
            Err(why) => self.lapsed.push((Id::of(bytes), bytes.to_vec(), why)),
        }
    }

    /// The entries that waited and were then refused, since the last call: the caller forgets
    /// them (they were kept as waiting) and reports why.
    pub fn take_lapsed(&mut self) -> Vec<(Id, Vec<u8>, Refusal)> {
        std::mem::take(&mut self.lapsed)
    }

    /// The entries a peer whose heads are `theirs` lacks: everything not in the past of the
    /// heads this log knows, in an order where each follows its `preds`.
    pub fn missing_for(&self, theirs: &[Id]) -> Vec<Vec<u8>> {
        let known: Vec<usize> = theirs.iter().filter_map(|h| self.index.get(h).copied()).collect();
        let past = ancestors(&self.nodes, &known, true);
        (0..self.nodes.len()).filter(|i| !past.get(*i)).map(|i| self.nodes[i].entry.encode()).collect()
    }

    /// The entries at least one of several peers (each known by its heads) lacks, in stored
    /// order: what a bundle for those peers carries.
    pub fn missing_for_any(&self, peers: &[Vec<Id>]) -> Vec<Vec<u8>> {
        let pasts: Vec<Bits> = peers
            .iter()
            .map(|hs| {
                let known: Vec<usize> = hs.iter().filter_map(|h| self.index.get(h).copied()).collect();
                ancestors(&self.nodes, &known, true)
            })
            .collect();
        (0..self.nodes.len())
            .filter(|i| pasts.iter().any(|p| !p.get(*i)))
            .map(|i| self.nodes[i].entry.encode())
            .collect()
    }

    /// Signs a new entry as `signer` at `hub`, after every head, and stores it through the same
    /// door as any other entry.
    pub fn append(&mut self, signer: &Identity, hub: Key, at: i64, body: Body) -> Result<(Id, Vec<u8>), Refusal> {
        let mut preds = self.heads();
        if preds.len() > MAX_PREDS {
            preds.truncate(MAX_PREDS);
        }
        let coalition = if matches!(body, Body::Found { .. }) { None } else { self.coalition };
        let e = Entry::sign(signer, hub, coalition, preds, at, body);
        let bytes = e.encode();
        match self.offer(&bytes)? {
            Offered::Added(ids) => Ok((ids[0], bytes)),
            other => Err(Refusal::Malformed(format!("a new entry was not stored: {other:?}"))),
        }
    }

    /// The door: checks an entry that arrived (from a peer, a bundle, or this hub) and stores it
    /// if it holds. See the module documentation for the order of the checks.
    pub fn offer(&mut self, bytes: &[u8]) -> Result<Offered, Refusal> {
        let r = self.offer_one(bytes);
        self.settle();
        r
    }

    /// [`Log::offer`] for many entries (a bundle, a sync frame): the log's state is resolved
    /// once at the end, and a branch of entries made apart is checked entry by entry against
    /// its own growing past, not replayed for each.
    pub fn offer_many<B: AsRef<[u8]>>(&mut self, entries: &[B]) -> Vec<Result<Offered, Refusal>> {
        let out = entries.iter().map(|b| self.offer_one(b.as_ref())).collect();
        self.settle();
        out
    }

    /// Resolves the state if entries were stored since it was.
    fn settle(&mut self) {
        if self.stale {
            self.state = resolve(&self.nodes, None);
            self.stale = false;
        }
    }

    fn offer_one(&mut self, bytes: &[u8]) -> Result<Offered, Refusal> {
        let e = Entry::decode(bytes)?;
        let id = Id::of(bytes);
        if self.index.contains_key(&id) || self.waiting.contains_key(&id) {
            return Ok(Offered::Known);
        }
        match (&e.body, e.coalition) {
            (Body::Found { .. }, None) if e.preds.is_empty() => {
                if self.coalition.is_some_and(|c| c != id)
                    || !self.nodes.is_empty()
                    || self.founding_hub.is_some_and(|h| h != e.hub)
                {
                    return Err(Refusal::OtherCoalition);
                }
            }
            (Body::Found { .. }, _) => {
                return Err(Refusal::Malformed("a founding entry has no coalition and no preds".into()));
            }
            (_, None) => return Err(Refusal::Malformed("the entry names no coalition".into())),
            (_, Some(c)) => {
                if self.coalition.is_some_and(|ours| ours != c) {
                    return Err(Refusal::OtherCoalition);
                }
                if e.preds.is_empty() {
                    return Err(Refusal::Malformed("only the founding entry has no preds".into()));
                }
            }
        }
        if !e.check_signature() {
            return Err(Refusal::BadSignature);
        }
        let missing: Vec<Id> = e.preds.iter().filter(|p| !self.index.contains_key(p)).copied().collect();
        if !missing.is_empty() {
            if self.waiting.len() >= MAX_WAITING || self.waiting_bytes + bytes.len() > MAX_WAITING_BYTES {
                return Err(Refusal::TooManyWaiting);
            }
            self.waiting_bytes += bytes.len();
            self.waiting.insert(id, e);
            return Ok(Offered::Waiting(missing));
        }
        self.admit(id, e)?;
        let mut added = vec![id];
        // Entries that waited for this one (and for each other) may now come in.
        loop {
            let ready: Vec<Id> = self
                .waiting
                .iter()
                .filter(|(_, w)| w.preds.iter().all(|p| self.index.contains_key(p)))
                .map(|(id, _)| *id)
                .collect();
            if ready.is_empty() {
                break;
            }
            for wid in ready {
                let w = self.waiting.remove(&wid).expect("listed above");
                // Canonical: it encodes to the bytes that arrived.
                let bytes = w.encode();
                self.waiting_bytes -= bytes.len();
                // A waiting entry that turns out invalid is dropped, and kept among the lapsed
                // for the caller (it is not this offer's refusal: it came earlier).
                match self.admit(wid, w) {
                    Ok(()) => added.push(wid),
                    Err(why) => self.lapsed.push((wid, bytes, why)),
                }
            }
        }
        Ok(Offered::Added(added))
    }

    /// The checks that need the entry's causal past, then storage.
    fn admit(&mut self, id: Id, e: Entry) -> Result<(), Refusal> {
        let preds: Vec<usize> = e.preds.iter().map(|p| self.index[p]).collect();
        if !matches!(e.body, Body::Found { .. }) {
            // Quick refusals that need no replay: a key no entry ever added, or admin work by
            // someone who was never an admin.
            let Some(owners) = self.ever_owner.get(&e.author) else {
                return Err(Refusal::NoRight(format!(
                    "signed by key {}, which belongs to no person of the coalition",
                    e.author.short()
                )));
            };
            let admin_work = owners.iter().all(|o| need_of(&e, o, &self.ever_owner) == Need::Admin);
            if admin_work && !owners.iter().any(|o| self.ever_admin.contains(o)) {
                let who = self.state.person_of(&e.author).map(|p| p.handle.clone()).unwrap_or_else(|| e.author.short());
                return Err(Refusal::NoRight(format!("{who} is not an admin of the coalition (and never was)")));
            }
            let at_heads = preds.len() == self.heads.len() && e.preds.iter().all(|p| self.heads.contains(p));
            let on_branch = self.branch.as_ref().is_some_and(|(b, _)| e.preds.len() == 1 && e.preds[0] == *b);
            let past = if at_heads && !self.stale {
                None
            } else if on_branch {
                self.branch.take().map(|b| b.1)
            } else {
                Some(resolve(&self.nodes, Some(&ancestors(&self.nodes, &preds, true))))
            };
            let checked = past.as_ref().unwrap_or(&self.state).check(&e, true);
            if let Err(why) = checked {
                // The branch's state is still the past of its last entry.
                if on_branch {
                    self.branch = past.map(|s| (e.preds[0], s));
                }
                return Err(Refusal::NoRight(why));
            }
            // The entry's own past, with the entry applied: the past of the branch's next entry.
            // An entry that takes something away may drop others: the next one replays.
            self.branch = match past {
                Some(mut s) if !e.body.removes() => {
                    let author = s.key_owner.get(&e.author).copied();
                    s.apply(self.nodes.len(), id, &e, author, false);
                    Some((id, s))
                }
                _ => None,
            };
        }
        let in_place = !e.body.removes()
            && !self.stale
            && preds.len() == self.heads.len()
            && e.preds.iter().all(|p| self.heads.contains(p))
            && !self.nodes.is_empty();
        if let Body::Found { .. } = e.body {
            self.coalition = Some(id);
        }
        let i = self.store(id, e, preds);
        if in_place {
            let n = &self.nodes[i];
            let author = self.state.key_owner.get(&n.entry.author).copied();
            self.state.apply(i, n.id, &n.entry, author, false);
        } else {
            self.stale = true;
        }
        Ok(())
    }

    fn store(&mut self, id: Id, e: Entry, preds: Vec<usize>) -> usize {
        for p in &e.preds {
            self.heads.remove(p);
        }
        self.heads.insert(id);
        match &e.body {
            Body::Found { .. } => {
                self.ever_owner.entry(e.author).or_default().insert(e.author);
                self.ever_admin.insert(e.author);
            }
            Body::AddPerson { person, role, .. } => {
                self.ever_owner.entry(*person).or_default().insert(*person);
                if *role == Role::Admin {
                    self.ever_admin.insert(*person);
                }
            }
            Body::SetRole { person, role: Role::Admin } | Body::Recover { person } => {
                self.ever_admin.insert(*person);
            }
            Body::AddKey { key, .. } => {
                let owners = self.ever_owner.get(&e.author).cloned().unwrap_or_default();
                self.ever_owner.entry(*key).or_default().extend(owners);
            }
            _ => {}
        }
        let i = self.nodes.len();
        self.index.insert(id, i);
        self.nodes.push(Node { id, entry: e, preds });
        i
    }
}

/// The right an entry uses (its author's person is found through `owner`).
fn need(e: &Entry, owner: &HashMap<Key, Key>) -> Need {
    match &e.body {
        Body::AddKey { .. } | Body::Expense { .. } | Body::Recover { .. } => Need::Member,
        Body::Approve { role, .. } => Need::Role(role.clone()),
        Body::RevokeKey { key } if owner.get(key).is_some() && owner.get(key) == owner.get(&e.author) => Need::Member,
        _ => Need::Admin,
    }
}

/// The right an entry uses if its key signs for `person`: the door's quick check, where a key
/// people claimed while apart may sign for any of them.
fn need_of(e: &Entry, person: &Key, owners: &HashMap<Key, BTreeSet<Key>>) -> Need {
    match &e.body {
        Body::RevokeKey { key } if owners.get(key).is_some_and(|o| o.contains(person)) => Need::Member,
        _ => need(e, &HashMap::new()),
    }
}

/// The positions of `from` and everything before them (`inclusive`), or only before them.
fn ancestors(nodes: &[Node], from: &[usize], inclusive: bool) -> Bits {
    let mut seen = Bits::new(nodes.len());
    let mut stack: Vec<usize> =
        if inclusive { from.to_vec() } else { from.iter().flat_map(|i| nodes[*i].preds.clone()).collect() };
    while let Some(i) = stack.pop() {
        if seen.get(i) {
            continue;
        }
        seen.set(i);
        stack.extend(&nodes[i].preds);
    }
    seen
}

/// The positions after `from` (nodes are stored in an order where each follows its preds).
fn descendants(nodes: &[Node], from: usize) -> Bits {
    let mut after = Bits::new(nodes.len());
    for (i, n) in nodes.iter().enumerate().skip(from + 1) {
        if n.preds.iter().any(|p| *p == from || after.get(*p)) {
            after.set(i);
        }
    }
    after
}

/// The canonical order: topological over preds, among entries ready at once removals first,
/// then by id.
fn canonical_order(nodes: &[Node], within: Option<&Bits>) -> Vec<usize> {
    let inside = |i: usize| within.is_none_or(|b| b.get(i));
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut missing = vec![0usize; nodes.len()];
    let mut ready = BinaryHeap::new();
    for (i, n) in nodes.iter().enumerate() {
        if !inside(i) {
            continue;
        }
        missing[i] = n.preds.len();
        for p in &n.preds {
            children[*p].push(i);
        }
        if n.preds.is_empty() {
            ready.push(Reverse((!n.entry.body.removes(), n.id, i)));
        }
    }
    let mut out = Vec::with_capacity(nodes.len());
    while let Some(Reverse((_, _, i))) = ready.pop() {
        out.push(i);
        for c in &children[i] {
            missing[*c] -= 1;
            if missing[*c] == 0 {
                ready.push(Reverse((!nodes[*c].entry.body.removes(), nodes[*c].id, *c)));
            }
        }
    }
    out
}

/// Resolves the entries (all, or an ancestor-closed subset): replays them, finds the entries
/// that strong removal drops and the removal cycles that stand, and replays again until that
/// settles.
fn resolve(nodes: &[Node], within: Option<&Bits>) -> State {
    let order = canonical_order(nodes, within);
    let owner = ever_owner(nodes, &order);
    let mut dropped: BTreeMap<usize, String> = BTreeMap::new();
    let mut forced: BTreeSet<usize> = BTreeSet::new();
    let mut contests = Vec::new();
    for _ in 0..8 {
        let (state, events) = replay(nodes, &order, &owner, &dropped, &forced);
        let (d, f, c) = judge(nodes, &order, &owner, &events);
        if d == dropped && f == forced {
            let mut state = state;
            state.contested = c;
            return state;
        }
        (dropped, forced, contests) = (d, f, c);
    }
    let (mut state, _) = replay(nodes, &order, &owner, &dropped, &forced);
    state.contested = contests;
    state
}

fn ever_owner(nodes: &[Node], order: &[usize]) -> HashMap<Key, Key> {
    let mut owner = HashMap::new();
    for i in order {
        let e = &nodes[*i].entry;
        match &e.body {
            Body::Found { .. } => {
                owner.insert(e.author, e.author);
            }
            Body::AddPerson { person, .. } => {
                owner.entry(*person).or_insert(*person);
            }
            Body::AddKey { key, .. } => {
                if let Some(o) = owner.get(&e.author).copied() {
                    owner.entry(*key).or_insert(o);
                }
            }
            _ => {}
        }
    }
    owner
}

fn replay(
    nodes: &[Node],
    order: &[usize],
    owner: &HashMap<Key, Key>,
    dropped: &BTreeMap<usize, String>,
    forced: &BTreeSet<usize>,
) -> (State, Vec<Event>) {
    let mut state = State::default();
    let mut events = Vec::new();
    for &i in order {
        let n = &nodes[i];
        if let Some(why) = dropped.get(&i) {
            state.not_counted.push((n.id, why.clone()));
            continue;
        }
        if matches!(n.entry.body, Body::Found { .. }) {
            if i == order[0] && state.coalition.is_none() {
                state.apply(i, n.id, &n.entry, Some(n.entry.author), false);
            }
            continue;
        }
        if !forced.contains(&i) {
            if let Err(why) = state.check(&n.entry, false) {
                // A removal whose author lost their right to a removal they had not seen (one
                // side of a mutual removal) is judged as its author saw it, so that the
                // contest can be found; it takes effect only if `judge` forces it.
                if n.entry.body.removes() {
                    events.extend(removal_as_seen(nodes, i, &events, owner));
                }
                state.not_counted.push((n.id, why));
                continue;
            }
        }
        let author = state.key_owner.get(&n.entry.author).or_else(|| owner.get(&n.entry.author)).copied();
        events.extend(state.apply(i, n.id, &n.entry, author, forced.contains(&i)));
    }
    (state, events)
}

/// The removal entry `i` would complete in its own causal past, if its author lost the right
/// to use it only through an event concurrent with it.
fn removal_as_seen(nodes: &[Node], i: usize, events: &[Event], owner: &HashMap<Key, Key>) -> Option<Event> {
    let n = &nodes[i];
    let author = owner.get(&n.entry.author).copied()?;
    let past = ancestors(nodes, &[i], false);
    let lost_concurrently = events
        .iter()
        .any(|e| matches!(e.target, Target::Person(p) if p == author) && !past.get(e.completion) && e.completion != i);
    if !lost_concurrently {
        return None;
    }
    let mut seen = resolve(nodes, Some(&past));
    seen.check(&n.entry, false).ok()?;
    seen.apply(i, n.id, &n.entry, Some(author), false)
}

/// Strong removal and mutual removal: which entries do not count, and which removals stand
/// though their authors were removed at the same time (cycles).
#[allow(clippy::type_complexity)]
fn judge(
    nodes: &[Node],
    order: &[usize],
    owner: &HashMap<Key, Key>,
    events: &[Event],
) -> (BTreeMap<usize, String>, BTreeSet<usize>, Vec<Contest>) {
    if events.is_empty() {
        return (BTreeMap::new(), BTreeSet::new(), Vec::new());
    }
    let pasts: Vec<Bits> = events.iter().map(|e| ancestors(nodes, &[e.completion], true)).collect();
    let futures: Vec<Bits> = events.iter().map(|e| descendants(nodes, e.completion)).collect();
    let concurrent = |ev: usize, i: usize| !pasts[ev].get(i) && !futures[ev].get(i);
    let person_target = |e: &Event| match (&e.target, &e.lost) {
        (Target::Person(p), Lost::All | Lost::Admin) => Some(*p),
        _ => None,
    };
    // Who removed whom: an edge from each signer of a removal to its target.
    let edges: Vec<(Key, Key)> = events
        .iter()
        .filter_map(|e| person_target(e).map(|t| e.participants.iter().map(move |p| (*p, t))))
        .flatten()
        .collect();
    let reaches = |from: Key, to: &BTreeSet<Key>| {
        let mut seen = BTreeSet::from([from]);
        let mut stack = vec![from];
        while let Some(k) = stack.pop() {
            if to.contains(&k) {
                return true;
            }
            for (a, b) in &edges {
                if *a == k && seen.insert(*b) {
                    stack.push(*b);
                }
            }
        }
        false
    };
    // A removal whose signer was removed at the same time stands only inside a cycle.
    let mut forced = BTreeSet::new();
    let mut contests: BTreeMap<BTreeSet<Key>, BTreeSet<Id>> = BTreeMap::new();
    let mut standing = vec![true; events.len()];
    for (a, ea) in events.iter().enumerate() {
        let Some(target) = person_target(ea) else { continue };
        let against: Vec<usize> = (0..events.len())
            .filter(|b| {
                *b != a
                    && person_target(&events[*b]).is_some_and(|t| ea.participants.contains(&t))
                    && concurrent(*b, ea.completion)
            })
            .collect();
        if against.is_empty() {
            continue;
        }
        let in_cycle = against.iter().all(|b| reaches(target, &events[*b].participants));
        if in_cycle {
            let entries = removal_entries(nodes, order, ea, owner);
            let mut people: BTreeSet<Key> = ea.participants.clone();
            people.insert(target);
            for b in &against {
                people.extend(events[*b].participants.iter().copied());
            }
            contests.entry(people).or_default().extend(entries.iter().map(|i| nodes[*i].id));
            forced.extend(entries);
        } else {
            standing[a] = false;
        }
    }
    let mut dropped = BTreeMap::new();
    for (ev, e) in events.iter().enumerate() {
        if !standing[ev] {
            continue;
        }
        for &i in order {
            if forced.contains(&i) || !concurrent(ev, i) || i == e.completion {
                continue;
            }
            let entry = &nodes[i].entry;
            let hit = match (&e.target, &e.lost) {
                (Target::Key(k), _) => entry.author == *k,
                (Target::Person(p), lost) => {
                    owner.get(&entry.author) == Some(p)
                        && match lost {
                            Lost::All => true,
                            Lost::Admin => need(entry, owner) == Need::Admin,
                            Lost::Role(r) => need(entry, owner) == Need::Role(r.clone()),
                        }
                }
            };
            if hit {
                let whose = match &e.target {
                    Target::Key(k) => format!("key {}", k.short()),
                    Target::Person(p) => p.short(),
                };
                dropped.insert(
                    i,
                    format!(
                        "made while {whose} was being removed ({}), without having seen it",
                        nodes[e.completion].id
                    ),
                );
            }
        }
    }
    let contests = contests
        .into_iter()
        .map(|(people, entries)| Contest {
            people: people.into_iter().collect(),
            entries: entries.into_iter().collect(),
        })
        .collect();
    (dropped, forced, contests)
}

/// The removal entry behind an event and the endorsements that completed it.
fn removal_entries(nodes: &[Node], order: &[usize], e: &Event, owner: &HashMap<Key, Key>) -> Vec<usize> {
    let Target::Person(target) = e.target else { return vec![e.completion] };
    let root = match &nodes[e.completion].entry.body {
        Body::Endorse { entry } => *entry,
        _ => nodes[e.completion].id,
    };
    let signed_by_participant =
        |n: &Node| owner.get(&n.entry.author).is_some_and(|p| e.participants.contains(p) && *p != target);
    order
        .iter()
        .copied()
        .filter(|i| {
            let n = &nodes[*i];
            n.id == root
                || (matches!(&n.entry.body, Body::Endorse { entry } if *entry == root) && signed_by_participant(n))
        })
        .collect()
}
