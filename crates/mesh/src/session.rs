//! The sync session between two hubs, sans-IO.
//!
//! A [`Session`] is fed frames from its peer and local changes, with the time passed in, and
//! answers with frames to send. It runs Automerge's own sync protocol for every document the two
//! hubs hold, keeping one `sync::State` per document; the states are persisted by the
//! [`Replica`] so that a reconnect sends only what changed. Liveness comes from the session's own
//! pings, not from discovery. The tokio driver (and the in-memory test network) only move frames.
//!
//! Connecting costs what changed. Each side opens with a [`Summary`]: one digest over every
//! document's heads and one over the vault's versions, read from what the replica already keeps
//! (no document is loaded). Equal digests end the opening there. Otherwise each side lists its
//! documents with a digest of their heads ([`Frame::Inventory`]), and sync starts only for the
//! documents whose heads differ, started by the side that holds them, so that a document new to
//! the peer is sent once.
//!
//! A change made here goes to every peer at once ([`Session::changed`]); a change that arrived
//! from another peer is relayed heads first ([`Session::relayed`]): the peer answers with what it
//! still lacks, so a change that reached it by another path does not cross this link again.
//!
//! A hub asks one peer at a time for a document's changes. Every sync message a hub sends
//! carries a summary of what it holds, which asks the peer for the rest; when several peers
//! hold the same new changes, asking them all at once brings those changes once from each. The
//! sessions of one hub share [`Fetches`]: a session whose peer holds changes this hub lacks
//! sends for that document only while no other session is fetching it, and waits otherwise
//! ([`Session::retry`]); by then the other peer's changes arrived, and this peer sends only
//! what is still missing. A session fetches at most [`FETCHES_AT_ONCE`] documents at a time
//! (the next asks go as answers arrive), so that a new hub, which lacks everything, is sent
//! what it can take in, not the whole coalition at once; its fetches do not lapse while the
//! peer keeps sending changes (up to [`FETCH_MAX_MS`] after the last fetch it finished), however
//! slowly the hub stores them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use aidmesh_model::Timestamp;
use automerge::sync::{Have, Message, State};
use serde::{Deserialize, Serialize};

use crate::changes::{ChangeSig, MAX_SIGS, SIG_LEN};
use crate::identity::HubId;
pub use crate::whereabouts::Whereabouts;

/// The largest frame a hub accepts: larger ones end the session.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;
/// On the LAN: send a ping after this much silence.
pub const PING_AFTER_MS: i64 = 2_000;
/// On the LAN: consider the peer gone after this much silence.
pub const DEAD_AFTER_MS: i64 = 6_000;

/// How often a session pings in silence, how long a silence ends it, and how long its fetches
/// may go without progress ([`Fetches`]). A LAN answers in milliseconds, so a peer silent for
/// 6 s is gone. The internet may take 2 s for a round trip and more for each lost packet (the
/// frames behind it wait for its retransmission), and every ping costs bytes on a metered link:
/// the simulation of such links (`tests/policy_sim.rs`) ended sessions every few seconds with
/// the LAN's pace, and a fetch lapsing after 5 s there would have another peer asked for the
/// same changes about a third of the time. Over the internet a dead path is also noticed by
/// QUIC itself (iroh's idle timeout, 30 s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    pub ping_after_ms: i64,
    pub dead_after_ms: i64,
    pub fetch_lapse_ms: i64,
    pub fetch_max_ms: i64,
}

impl Pace {
    pub const LAN: Pace = Pace {
        ping_after_ms: PING_AFTER_MS,
        dead_after_ms: DEAD_AFTER_MS,
        fetch_lapse_ms: FETCH_LAPSE_MS,
        fetch_max_ms: FETCH_MAX_MS,
    };
    pub const INTERNET: Pace =
        Pace { ping_after_ms: 10_000, dead_after_ms: 45_000, fetch_lapse_ms: 15_000, fetch_max_ms: 90_000 };
}
/// A fetch that made no progress for this long lapses: another peer may be asked. Changes of
/// any document arriving through the session count as progress for all its fetches (what was
/// asked for comes after what is already on its way).
pub const FETCH_LAPSE_MS: i64 = 5_000;
/// The longest one session fetches one document, counted from when it asked or from the last
/// fetch it finished, whichever is later, progress or not: a peer that trickles a change now
/// and then cannot keep the others from being asked.
pub const FETCH_MAX_MS: i64 = 30_000;
/// The most documents one session fetches at a time; the others wait for one of these to end.
pub const FETCHES_AT_ONCE: usize = 4;

/// A document's id, as hubs announce and sync it (`inventory-2026-12`, `coalition`): text in the
/// store and on the wire, its own type wherever a peer or a hash could be mistaken for it.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DocId(String);

impl DocId {
    pub fn new(id: impl Into<String>) -> DocId {
        DocId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for DocId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for DocId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for DocId {
    fn from(s: &str) -> DocId {
        DocId(s.to_string())
    }
}

impl From<String> for DocId {
    fn from(s: String) -> DocId {
        DocId(s)
    }
}

impl PartialEq<str> for DocId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for DocId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl std::fmt::Display for DocId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who a session is with, as its sync states are kept: a hub, by the id people read (what the
/// mesh uses), or a name that a simulation or a test gives.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(String);

impl PeerId {
    /// A peer named by a simulation or a test.
    pub fn named(name: &str) -> PeerId {
        PeerId(name.to_string())
    }

    /// The text sync states are stored under.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hub, if the peer is one.
    pub fn hub(&self) -> Option<HubId> {
        HubId::parse(&self.0).ok()
    }
}

impl From<&HubId> for PeerId {
    fn from(h: &HubId) -> PeerId {
        PeerId(h.to_string())
    }
}

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which session a hub is fetching each document's missing changes through, shared by the hub's
/// sessions (see the module's documentation). A session holds at most [`FETCHES_AT_ONCE`]
/// claims. A claim lapses after [`FETCH_LAPSE_MS`] without changes arriving through its
/// session, or [`FETCH_MAX_MS`] after it was taken or its session last finished a fetch,
/// whichever is later (on the LAN; over the internet after the
/// longer times of [`Pace::INTERNET`]); its session then may not claim that document again for
/// as long as a lapse, so that another is asked. A claim goes with its session.
#[derive(Debug, Default)]
pub struct Fetches {
    next_session: u64,
    claims: BTreeMap<DocId, Claim>,
    /// (document, session) whose claim lapsed, and until when it may not claim it again.
    benched: BTreeMap<(DocId, u64), i64>,
}

#[derive(Debug)]
struct Claim {
    session: u64,
    peer: PeerId,
    taken: i64,
    renewed: i64,
    /// The pace of the session's link: how long the claim lasts.
    pace: Pace,
    /// Whether changes of this document came through the session since the claim was taken.
    got: bool,
    /// How often the longest time started again (see [`Fetches::release`]).
    restarts: usize,
}

impl Claim {
    fn lapsed(&self, now: Timestamp) -> bool {
        now.millis() - self.renewed >= self.pace.fetch_lapse_ms || now.millis() - self.taken >= self.pace.fetch_max_ms
    }
}

/// The [`Fetches`] of one hub, as its sessions share them.
pub type SharedFetches = Arc<Mutex<Fetches>>;

impl Fetches {
    /// A number for a new session, its key in the claims.
    fn enter(&mut self) -> u64 {
        self.next_session += 1;
        self.next_session
    }

    fn benched(&self, doc: &DocId, session: u64, now: Timestamp) -> bool {
        self.benched.get(&(doc.clone(), session)).is_some_and(|until| now.millis() < *until)
    }

    /// Whether `session` could claim `doc` now.
    fn free(&self, doc: &DocId, session: u64, now: Timestamp) -> bool {
        if self.benched(doc, session, now) {
            return false;
        }
        match self.claims.get(doc) {
            Some(c) if !c.lapsed(now) => c.session == session,
            _ => self.room(doc, session, now),
        }
    }

    /// Whether `session` fetches fewer than [`FETCHES_AT_ONCE`] documents besides `doc`.
    fn room(&self, doc: &DocId, session: u64, now: Timestamp) -> bool {
        let own = self.claims.get(doc).is_some_and(|c| c.session == session && !c.lapsed(now));
        self.slots(session, now) + usize::from(own) > 0
    }

    /// How many more documents `session` may fetch now.
    fn slots(&self, session: u64, now: Timestamp) -> usize {
        let held = self.claims.values().filter(|c| c.session == session && !c.lapsed(now)).count();
        FETCHES_AT_ONCE.saturating_sub(held)
    }

    /// Whether `session` may ask its peer for `doc` now: nobody else is asked, or that claim
    /// lapsed, and the session fetches fewer than [`FETCHES_AT_ONCE`] documents. If so the
    /// claim is the session's. Asking again does not renew it: only changes that arrive do
    /// ([`Fetches::progress`]), so a peer that answers without them cannot keep it.
    fn claim(&mut self, doc: &DocId, session: u64, peer: &PeerId, pace: Pace, now: Timestamp) -> bool {
        self.benched.retain(|_, until| *until > now.millis());
        if self.benched(doc, session, now) {
            return false;
        }
        if !self.room(doc, session, now) {
            return false;
        }
        match self.claims.get(doc) {
            Some(c) if !c.lapsed(now) => return c.session == session,
            Some(c) => {
                self.benched.insert((doc.clone(), c.session), now.millis() + c.pace.fetch_lapse_ms);
                if c.session == session {
                    self.claims.remove(doc);
                    return false;
                }
            }
            None => {}
        }
        let claim = Claim {
            session,
            peer: peer.clone(),
            taken: now.millis(),
            renewed: now.millis(),
            pace,
            got: false,
            restarts: 0,
        };
        self.claims.insert(doc.clone(), claim);
        true
    }

    /// Changes of `doc` arrived through `session`: its claims are renewed (the peer is sending;
    /// what else it was asked for comes after).
    fn progress(&mut self, session: u64, doc: &DocId, now: Timestamp) {
        for (d, c) in self.claims.iter_mut().filter(|(_, c)| c.session == session) {
            c.renewed = now.millis();
            c.got |= d == doc;
        }
    }

    /// `session` holds all of `doc` that its peer holds: its claim ends. A fetch that ended with
    /// the document's changes is progress the longest time cannot stand for, so the session's
    /// other claims start their longest time again: a peer answers one ask after another, and
    /// a new hub that stores slowly would otherwise see the last of a few large documents pass
    /// its longest time while it waits its turn, and ask for it again. A claim waits behind at
    /// most the [`FETCHES_AT_ONCE`] − 1 asked before it, so it starts again that often at
    /// most: a peer that answers other asks (or claims to hold nothing more) cannot keep it.
    fn release(&mut self, doc: &DocId, session: u64, now: Timestamp) {
        let Some(ended) = self.claims.remove(doc) else { return };
        if ended.session != session {
            self.claims.insert(doc.clone(), ended);
            return;
        }
        if !ended.got {
            return;
        }
        for c in self.claims.values_mut().filter(|c| c.session == session && !c.lapsed(now)) {
            if c.restarts < FETCHES_AT_ONCE - 1 {
                c.restarts += 1;
                c.taken = now.millis();
                c.renewed = now.millis();
            }
        }
    }

    fn release_session(&mut self, session: u64) {
        self.claims.retain(|_, c| c.session != session);
        self.benched.retain(|(_, s), _| *s != session);
    }

    /// The documents being fetched, with the peer each is fetched from.
    pub fn fetching(&self) -> Vec<(DocId, PeerId)> {
        self.claims.iter().map(|(d, c)| (d.clone(), c.peer.clone())).collect()
    }
}

/// A document as announced to a peer.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DocInfo {
    pub doc: DocId,
    pub partition: String,
    pub created_at: i64,
    /// A digest of the document's heads ([`heads_digest`]); empty where unknown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub heads: String,
}

/// A digest (16 bytes of SHA-256, hex) of a document's heads, given as hex change hashes in any
/// order: two hubs with the same digest hold the same changes of that document. 128 bits, so
/// that no member can make two documents look the same (finding a collision takes 2^64 work).
pub fn heads_digest<'a>(heads: impl IntoIterator<Item = &'a str>) -> String {
    use sha2::Digest;
    let mut heads: Vec<&str> = heads.into_iter().filter(|h| !h.is_empty()).collect();
    heads.sort_unstable();
    let d = sha2::Sha256::digest(heads.join(" ").as_bytes());
    crate::hex::encode(&d[..16])
}

/// What a hub holds, in three digests: every document with its heads, every vault entry with
/// its version, and every member's whereabouts with its version. Equal summaries mean there is
/// nothing to exchange but the authority log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub docs: [u8; 16],
    pub vault: [u8; 16],
    pub whereabouts: [u8; 16],
}

impl Summary {
    /// The summary of these documents, vault entries (id, version, erased) and whereabouts
    /// (hub, version, signature: two words of one version differ), in any order.
    pub fn of(docs: &[DocInfo], vault: &[(String, u64, bool)], whereabouts: &[(HubId, u64, String)]) -> Summary {
        let mut d: Vec<(&str, &str)> = docs.iter().map(|d| (d.doc.as_str(), d.heads.as_str())).collect();
        d.sort_unstable();
        let mut v: Vec<&(String, u64, bool)> = vault.iter().collect();
        v.sort_unstable();
        let mut w: Vec<&(HubId, u64, String)> = whereabouts.iter().collect();
        w.sort_unstable();
        Summary {
            docs: digest(d.into_iter().map(|(doc, heads)| format!("{doc} {heads}"))),
            vault: digest(v.into_iter().map(|(id, version, erased)| format!("{id} {version} {erased}"))),
            whereabouts: digest(w.into_iter().map(|(hub, version, sig)| format!("{hub} {version} {sig}"))),
        }
    }
}

/// The first 16 bytes of a SHA-256 over `lines`, each ended by a newline.
fn digest(lines: impl Iterator<Item = String>) -> [u8; 16] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for line in lines {
        h.update(line);
        h.update("\n");
    }
    h.finalize()[..16].try_into().expect("16 bytes")
}

/// What travels between two hubs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// The sync protocol the sender speaks ([`PROTOCOL`]): the first frame of a session.
    Hello(u16),
    /// What the sender holds, in two digests: sent at the start of a session.
    Summary(Summary),
    /// Every document the sender holds, (id, digest of its heads): the answer to a summary
    /// that differs from the sender's own. Binary, as it lists the whole coalition.
    Inventory(Vec<(DocId, String)>),
    /// Documents the sender holds that it has not listed to this peer yet.
    Announce(Vec<DocInfo>),
    /// One Automerge sync message for one document, with the signatures that vouch for its
    /// changes (one per actor in it: see [`crate::changes`]).
    Sync {
        doc: DocId,
        msg: Vec<u8>,
        sigs: Vec<ChangeSig>,
    },
    Ping,
    Pong,
    /// Personal-data vault entries, state-based: content, or an erasure without content.
    Vault(Vec<VaultItem>),
    /// The heads of the sender's authority log: the peer answers with the entries not in their
    /// past (see `authority::Log::missing_for`).
    AuthorityHeads(Vec<[u8; 32]>),
    /// Authority log entries, each after the entries it follows.
    Authority(Vec<Vec<u8>>),
    /// The sender has spent its day's budget for this link: for the rest of the session, both
    /// sides list and offer only the documents of urgent kinds ([`urgent`]); the authority
    /// log and the vault still go.
    Metered,
    /// Where member hubs can be reached over the internet, each entry signed by its hub
    /// ([`crate::whereabouts`]): state-based, the newest of each hub wins.
    Whereabouts(Vec<Whereabouts>),
}

/// One vault entry as it travels between member hubs (inside TLS, or sealed in a bundle). An
/// erased entry carries no content; erasure always wins over content.
///
/// An entry belongs to its `origin`, the hub that holds the person's consent: only that hub
/// writes it, numbering its versions, and signs each version (`sig`, see
/// [`VaultItem::signed_bytes`]). A hub takes a version only if that hub's signature holds and
/// the version is newer than its own. An erasure is signed by the origin too, or else stands on
/// an admin's `Erase` entry in the authority log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultItem {
    pub id: String,
    /// The origin's clock when written: shown to people, never used to order.
    pub updated_at: i64,
    /// The hub id of the hub that holds the consent.
    pub origin: String,
    /// Hex of the plaintext; `None` for an erased entry.
    pub content: Option<String>,
    /// The origin's version number of this entry.
    #[serde(default)]
    pub version: u64,
    /// The origin hub's Ed25519 signature (hex) over [`VaultItem::signed_bytes`]; empty for an
    /// erasure that stands on an authority entry.
    #[serde(default)]
    pub sig: String,
}

impl VaultItem {
    /// What the origin signs: the id, version, origin, whether erased, and a SHA-256 of the
    /// content (so the signature reveals nothing of it).
    pub fn signed_bytes(id: &str, version: u64, origin: &str, content: Option<&[u8]>) -> Vec<u8> {
        use sha2::Digest;
        let digest = content.map(|c| crate::hex::encode(sha2::Sha256::digest(c))).unwrap_or_default();
        format!("aidmesh vault v1\n{id}\n{version}\n{origin}\n{}\n{digest}", content.is_none()).into_bytes()
    }
}

const TAG_ANNOUNCE: u8 = 1;
const TAG_SYNC: u8 = 2;
const TAG_PING: u8 = 3;
const TAG_PONG: u8 = 4;
const TAG_VAULT: u8 = 5;
const TAG_AUTHORITY_HEADS: u8 = 6;
const TAG_AUTHORITY: u8 = 7;
const TAG_SUMMARY: u8 = 8;
const TAG_INVENTORY: u8 = 9;
const TAG_HELLO: u8 = 10;
const TAG_METERED: u8 = 12;
const TAG_WHEREABOUTS: u8 = 13;
/// A frame of any other type, deflated: what [`Frame::encode`] sends when that is smaller.
const TAG_DEFLATE: u8 = 11;
/// Frames from this size on are deflated when that makes them smaller (below it, the gain is
/// bytes and the cost a compressor's set-up).
const DEFLATE_FROM: usize = 256;

/// The sync protocol this build speaks. A session opens with it ([`Frame::Hello`]); peers that
/// speak another end the session with an error that names both, so that people know which hub
/// to update. Version 2 is the opening with summaries and inventories; version 3 signs changes;
/// version 4 deflates large frames; version 5 carries people's signatures on their changes;
/// version 6 lets a hub over its day's budget ask for urgent documents only; version 7 carries
/// where member hubs can be reached (a third digest in the summary).
pub const PROTOCOL: u16 = 7;

/// Whether the documents of `partition` (a kind's name, then `/month` for logs; `coalition`
/// for the few shared records) are urgent: what a hub over its day's budget for a metered link
/// still exchanges. The coalition's document is small and holds what urgent records refer to
/// (places, roles, hubs).
pub fn urgent(partition: &str) -> bool {
    let kind = partition.split('/').next().unwrap_or_default();
    kind == "coalition" || aidmesh_model::Kind::parse(kind).is_ok_and(|k| k.urgent())
}
/// The most documents an inventory may list (a whole coalition is a few hundred).
pub const MAX_DOCS: usize = 100_000;
/// How many documents of its answer to an inventory a session offers with each frame it
/// handles: enough to keep the link busy, few enough that no call loads much.
pub const OFFER_AT_ONCE: usize = 2;
/// The signatures a sync frame carries of `sigs`, whole (a person's signature is a second item
/// right after its hub's), as many as fit in [`MAX_SIGS`] items, and how many items they are.
fn whole_sigs(sigs: &[ChangeSig]) -> (&[ChangeSig], usize) {
    let mut items = 0;
    for (n, s) in sigs.iter().enumerate() {
        if items + s.item_count() > MAX_SIGS {
            return (&sigs[..n], items);
        }
        items += s.item_count();
    }
    (sigs, items)
}

/// Authority entries go out in frames of at most this many bytes.
const AUTHORITY_FRAME: usize = 4 * 1024 * 1024;
/// And of at most this many entries (a frame of more is refused): with deflated frames, a few
/// kilobytes could otherwise carry millions of tiny entries for the door to judge.
pub const MAX_AUTHORITY_ENTRIES: usize = 16_384;

impl Frame {
    /// The frame's bytes, without the length prefix the transport adds: deflated (fastest
    /// level) when the frame is large enough and that makes it smaller.
    pub fn encode(&self) -> Vec<u8> {
        let plain = self.encode_plain();
        if plain.len() < DEFLATE_FROM {
            return plain;
        }
        let mut z = flate2::write::DeflateEncoder::new(vec![TAG_DEFLATE], flate2::Compression::fast());
        match z.write_all(&plain).and_then(|()| z.finish()) {
            Ok(deflated) if deflated.len() < plain.len() => deflated,
            _ => plain,
        }
    }

    /// How many bytes [`Frame::encode_plain`] makes, without making them: what a session
    /// counts (deflating is the transport's cost, once per frame).
    pub fn plain_len(&self) -> usize {
        1 + match self {
            Frame::Hello(_) => 2,
            Frame::Summary(_) => 48,
            Frame::Announce(docs) => json_len(docs),
            Frame::Inventory(docs) => docs.iter().map(|(d, h)| 2 + d.len().min(255) + h.len().min(255)).sum(),
            Frame::Sync { doc, msg, sigs } => 2 + doc.len() + 2 + whole_sigs(sigs).1 * SIG_LEN + msg.len(),
            Frame::AuthorityHeads(heads) => heads.len() * 32,
            Frame::Authority(entries) => entries.iter().map(|e| 4 + e.len()).sum(),
            Frame::Ping | Frame::Pong | Frame::Metered => 0,
            Frame::Vault(items) => json_len(items),
            Frame::Whereabouts(items) => json_len(items),
        }
    }

    /// The frame's bytes as [`Frame::encode`] writes them before deflating (to measure what
    /// deflating saves; [`Frame::decode`] reads both).
    pub fn encode_plain(&self) -> Vec<u8> {
        match self {
            Frame::Hello(v) => {
                let mut out = vec![TAG_HELLO];
                out.extend(v.to_be_bytes());
                out
            }
            Frame::Summary(s) => {
                let mut out = vec![TAG_SUMMARY];
                out.extend(s.docs);
                out.extend(s.vault);
                out.extend(s.whereabouts);
                out
            }
            Frame::Announce(docs) => {
                let mut out = vec![TAG_ANNOUNCE];
                out.extend(serde_json::to_vec(docs).unwrap_or_default());
                out
            }
            Frame::Inventory(docs) => {
                let mut out = vec![TAG_INVENTORY];
                for (doc, heads) in docs {
                    for part in [doc.as_str(), heads] {
                        out.push(part.len().min(255) as u8);
                        out.extend(&part.as_bytes()[..part.len().min(255)]);
                    }
                }
                out
            }
            Frame::Sync { doc, msg, sigs } => {
                let (sigs, items) = whole_sigs(sigs);
                let mut out = Vec::with_capacity(5 + doc.len() + items * SIG_LEN + msg.len());
                out.push(TAG_SYNC);
                out.extend((doc.len() as u16).to_be_bytes());
                out.extend(doc.as_bytes());
                out.extend((items as u16).to_be_bytes());
                sigs.iter().flat_map(ChangeSig::items).for_each(|s| out.extend(s));
                out.extend(msg);
                out
            }
            Frame::AuthorityHeads(heads) => {
                let mut out = vec![TAG_AUTHORITY_HEADS];
                heads.iter().for_each(|h| out.extend(h));
                out
            }
            Frame::Authority(entries) => {
                let mut out = vec![TAG_AUTHORITY];
                for e in entries {
                    out.extend((e.len() as u32).to_be_bytes());
                    out.extend(e);
                }
                out
            }
            Frame::Ping => vec![TAG_PING],
            Frame::Pong => vec![TAG_PONG],
            Frame::Metered => vec![TAG_METERED],
            Frame::Vault(items) => {
                let mut out = vec![TAG_VAULT];
                out.extend(serde_json::to_vec(items).unwrap_or_default());
                out
            }
            Frame::Whereabouts(items) => {
                let mut out = vec![TAG_WHEREABOUTS];
                out.extend(serde_json::to_vec(items).unwrap_or_default());
                out
            }
        }
    }

    /// Reads a frame; anything malformed is an error that names what is wrong. A deflated frame
    /// is inflated to at most [`MAX_FRAME`] bytes, and may not hold another.
    pub fn decode(b: &[u8]) -> Result<Frame, SessionError> {
        if b.len() > MAX_FRAME {
            return Err(SessionError::TooLarge(b.len()));
        }
        if b.first() != Some(&TAG_DEFLATE) {
            return Frame::decode_plain(b);
        }
        let bad = |why: String| SessionError::Malformed(format!("deflated frame: {why}"));
        let mut plain = Vec::new();
        flate2::read::DeflateDecoder::new(&b[1..])
            .take(MAX_FRAME as u64 + 1)
            .read_to_end(&mut plain)
            .map_err(|e| bad(e.to_string()))?;
        if plain.len() > MAX_FRAME {
            return Err(bad(format!("inflates to over the limit of {MAX_FRAME} bytes")));
        }
        if plain.first() == Some(&TAG_DEFLATE) {
            return Err(bad("it holds another deflated frame".into()));
        }
        Frame::decode_plain(&plain)
    }

    fn decode_plain(b: &[u8]) -> Result<Frame, SessionError> {
        let bad = |why: &str| SessionError::Malformed(why.to_string());
        match b.first() {
            Some(&TAG_HELLO) => {
                let v: [u8; 2] =
                    b.get(1..).and_then(|r| r.try_into().ok()).ok_or_else(|| bad("hello: not a 2-byte version"))?;
                Ok(Frame::Hello(u16::from_be_bytes(v)))
            }
            Some(&TAG_SUMMARY) => {
                let s =
                    b.get(1..).filter(|r| r.len() == 48).ok_or_else(|| bad("summary: not three 16-byte digests"))?;
                let digest = |n: usize| s[16 * n..16 * (n + 1)].try_into().expect("16 bytes");
                Ok(Frame::Summary(Summary { docs: digest(0), vault: digest(1), whereabouts: digest(2) }))
            }
            Some(&TAG_ANNOUNCE) => {
                let docs: Vec<DocInfo> = serde_json::from_slice(&b[1..]).map_err(|e| bad(&format!("announce: {e}")))?;
                if docs.len() > MAX_DOCS {
                    return Err(bad(&format!("announce: more than {MAX_DOCS} documents")));
                }
                if let Some(d) = docs.iter().find(|d| !valid_doc_id(&d.doc) || !valid_digest(&d.heads)) {
                    return Err(bad(&format!(
                        "announce: document id {:?} or its heads digest is not valid",
                        d.doc.as_str()
                    )));
                }
                if let Some(d) = docs.iter().find(|d| !valid_partition(&d.partition)) {
                    return Err(bad(&format!("announce: document {} names a partition that is not valid", d.doc)));
                }
                if let Some(d) = docs.iter().find(|d| d.created_at < 0) {
                    return Err(bad(&format!("announce: document {} was made before 1970", d.doc)));
                }
                Ok(Frame::Announce(docs))
            }
            Some(&TAG_INVENTORY) => {
                let mut rest = &b[1..];
                let mut docs = Vec::new();
                while !rest.is_empty() {
                    if docs.len() == MAX_DOCS {
                        return Err(bad(&format!("inventory: more than {MAX_DOCS} documents")));
                    }
                    let (doc, heads) = (short_text(&mut rest)?, short_text(&mut rest)?);
                    if !valid_doc_id(&doc) || !valid_digest(&heads) {
                        return Err(bad("inventory: a document id or heads digest is not valid"));
                    }
                    docs.push((DocId(doc), heads));
                }
                Ok(Frame::Inventory(docs))
            }
            Some(&TAG_SYNC) => {
                let n = b
                    .get(1..3)
                    .map(|x| u16::from_be_bytes([x[0], x[1]]) as usize)
                    .ok_or_else(|| bad("sync: truncated"))?;
                let doc = b.get(3..3 + n).ok_or_else(|| bad("sync: truncated document id"))?;
                let doc = std::str::from_utf8(doc).map_err(|_| bad("sync: document id is not text"))?.to_string();
                if !valid_doc_id(&doc) {
                    return Err(bad("sync: document id is not valid"));
                }
                let rest = &b[3 + n..];
                let count = rest
                    .get(..2)
                    .map(|x| u16::from_be_bytes([x[0], x[1]]) as usize)
                    .ok_or_else(|| bad("sync: truncated"))?;
                let sigs = ChangeSig::from_items(
                    rest.get(2..2 + count * SIG_LEN)
                        .ok_or_else(|| bad("sync: the change signatures are cut short"))?
                        .chunks(SIG_LEN),
                );
                Ok(Frame::Sync { doc: DocId(doc), msg: rest[2 + count * SIG_LEN..].to_vec(), sigs })
            }
            Some(&TAG_VAULT) => {
                let items: Vec<VaultItem> = serde_json::from_slice(&b[1..]).map_err(|e| bad(&format!("vault: {e}")))?;
                if items.iter().any(|i| !valid_doc_id(&i.id) || i.content.as_ref().is_some_and(|c| c.len() % 2 != 0)) {
                    return Err(bad("vault: an entry id or content is not valid"));
                }
                Ok(Frame::Vault(items))
            }
            Some(&TAG_WHEREABOUTS) => {
                let items: Vec<Whereabouts> =
                    serde_json::from_slice(&b[1..]).map_err(|e| bad(&format!("whereabouts: {e}")))?;
                if items.len() > crate::whereabouts::MAX_ENTRIES {
                    let most = crate::whereabouts::MAX_ENTRIES;
                    return Err(bad(&format!("whereabouts: {} entries, at most {most}", items.len())));
                }
                Ok(Frame::Whereabouts(items))
            }
            Some(&TAG_AUTHORITY_HEADS) => {
                let rest = &b[1..];
                if !rest.len().is_multiple_of(32) || rest.len() / 32 > crate::authority::MAX_PREDS * 64 {
                    return Err(bad("authority heads: not a list of 32-byte ids"));
                }
                Ok(Frame::AuthorityHeads(rest.chunks(32).map(|c| c.try_into().expect("32 bytes")).collect()))
            }
            Some(&TAG_AUTHORITY) => {
                let mut rest = &b[1..];
                let mut entries = Vec::new();
                while !rest.is_empty() {
                    if entries.len() == MAX_AUTHORITY_ENTRIES {
                        return Err(bad(&format!("authority: more than {MAX_AUTHORITY_ENTRIES} entries")));
                    }
                    let n = rest.get(..4).map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]) as usize);
                    let entry = n
                        .filter(|n| (1..=crate::authority::MAX_ENTRY).contains(n))
                        .and_then(|n| rest.get(4..4 + n))
                        .ok_or_else(|| bad("authority: an entry is empty, truncated or over the size limit"))?;
                    entries.push(entry.to_vec());
                    rest = &rest[4 + entry.len()..];
                }
                Ok(Frame::Authority(entries))
            }
            Some(&TAG_PING) if b.len() == 1 => Ok(Frame::Ping),
            Some(&TAG_PONG) if b.len() == 1 => Ok(Frame::Pong),
            Some(&TAG_METERED) if b.len() == 1 => Ok(Frame::Metered),
            Some(t) => Err(bad(&format!("unknown frame type {t}"))),
            None => Err(bad("empty frame")),
        }
    }
}

/// How many bytes `v` takes as JSON, counted without keeping them.
fn json_len<T: Serialize>(v: &T) -> usize {
    struct Count(usize);
    impl Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    match serde_json::to_writer(&mut c, v) {
        Ok(()) => c.0,
        Err(_) => 0,
    }
}

/// A text of at most 255 bytes after its one-byte length, taken from the front of `rest`.
fn short_text(rest: &mut &[u8]) -> Result<String, SessionError> {
    let bad = || SessionError::Malformed("inventory: truncated".into());
    let n = *rest.first().ok_or_else(bad)? as usize;
    let text = rest.get(1..1 + n).ok_or_else(bad)?;
    *rest = &rest[1 + n..];
    String::from_utf8(text.to_vec()).map_err(|_| SessionError::Malformed("inventory: not text".into()))
}

/// A heads digest: empty (unknown) or 32 lowercase hex digits.
fn valid_digest(h: &str) -> bool {
    h.is_empty() || (h.len() == 32 && h.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
}

/// Whether `p` may name a partition: 1 to 64 lowercase letters, digits, `-`, `_` and `/` (a
/// kind's name, with a month for logs: the replica says which). A peer's announcement carries
/// it, and the hub lists it to every peer after: an endless one would make the hub's own
/// frames too large for anyone to take.
pub fn valid_partition(p: &str) -> bool {
    !p.is_empty() && p.len() <= 64 && p.bytes().all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'/'))
}

/// Whether `d` is a document id hubs exchange: 1 to 128 letters, digits, `-` and `_`.
pub fn valid_doc_id(d: &str) -> bool {
    !d.is_empty() && d.len() <= 128 && d.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SessionError {
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("frame of {0} bytes is over the limit of {MAX_FRAME}")]
    TooLarge(usize),
    #[error("sync for document {0}, which the peer never announced")]
    Unannounced(DocId),
    /// The replica refused what the peer sent (a change that fails its check, an entry that
    /// fails the authority log's door) or could not store it; its own error, kept whole.
    #[error("document {doc}: {why}")]
    Replica { doc: DocId, why: std::sync::Arc<dyn std::error::Error + Send + Sync> },
    /// The peer speaks another sync protocol: the older hub needs updating.
    #[error("the peer speaks sync protocol {theirs}{}, this hub {ours}: update the hub that runs the older aidmesh", if *theirs == 1 { " (an aidmesh from before summaries)" } else { "" })]
    Version { ours: u16, theirs: u16 },
}

/// The most probes and bits per entry a peer's Bloom filter may ask for (Automerge uses 7 and
/// 10), and the most entries it may summarise.
const MAX_BLOOM_PROBES: u64 = 32;
const MAX_BLOOM_BITS_PER_ENTRY: u64 = 32;
const MAX_BLOOM_ENTRIES: u64 = 10_000_000;

/// Refuses a sync message whose heads are out of order or repeat (Automerge compares heads in
/// order: a peer's reordered heads would read as news), or whose Bloom filters Automerge would
/// choke on when it answers: a filter that summarises entries with no bits (a division by
/// zero, a panic, in Automerge 0.12: found by the `sync_frames` fuzz target), or asks for absurd
/// probes or sizes (memory and time).
fn check_message(msg: &Message) -> Result<(), String> {
    // Automerge sends its heads sorted, each once, and compares them in order.
    if !msg.heads.windows(2).all(|w| w[0] < w[1]) {
        return Err("its heads are not in order, or repeat".into());
    }
    for have in &msg.have {
        let bytes = have.bloom.to_bytes();
        if bytes.is_empty() {
            continue;
        }
        let mut rest = &bytes[..];
        let mut leb = || -> Result<u64, String> {
            let (mut v, mut shift) = (0u64, 0u32);
            loop {
                let (&b, tail) = rest.split_first().ok_or("a Bloom filter is cut short")?;
                rest = tail;
                v |= u64::from(b & 0x7f).checked_shl(shift).ok_or("a Bloom filter's header is too long")?;
                shift += 7;
                if b & 0x80 == 0 {
                    return Ok(v);
                }
                if shift > 35 {
                    return Err("a Bloom filter's header is too long".into());
                }
            }
        };
        let (entries, bits_per_entry, probes) = (leb()?, leb()?, leb()?);
        if rest.is_empty()
            || !(1..=MAX_BLOOM_PROBES).contains(&probes)
            || !(1..=MAX_BLOOM_BITS_PER_ENTRY).contains(&bits_per_entry)
            || entries > MAX_BLOOM_ENTRIES
        {
            return Err(format!(
                "a Bloom filter of {entries} entries, {bits_per_entry} bits each, {probes} probes and {} bytes is not one this hub takes",
                rest.len()
            ));
        }
    }
    Ok(())
}

/// What a session needs from the hub: its documents and their sync states.
pub trait Replica {
    /// Why this replica refuses what a peer sent, or cannot store it.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Every document to sync, with the digest of its heads, read without loading documents.
    fn docs(&mut self) -> Vec<DocInfo>;
    /// Every vault entry's id, version and whether it is erased, read without decrypting.
    fn vault_versions(&mut self) -> Vec<(String, u64, bool)>;
    /// The whereabouts this hub keeps: the newest of each member.
    fn whereabouts(&mut self) -> Vec<Whereabouts>;
    /// Merges whereabouts from `peer`; returns whether anything changed here. Entries not signed
    /// by their hub are refused and reported by the replica; a non-member's are passed over.
    fn whereabouts_merge(&mut self, peer: &PeerId, items: Vec<Whereabouts>) -> Result<bool, Self::Error>;
    /// The persisted sync state for (peer, doc), if any.
    fn load_state(&mut self, peer: &PeerId, doc: &DocId) -> Option<Vec<u8>>;
    /// The next sync message for a document, updating `state`.
    fn generate(&mut self, doc: &DocId, state: &mut State) -> Option<Message>;
    /// The message [`Replica::generate`] would make for `doc` to a peer nothing was heard from
    /// about it yet, less its summary of what this replica holds (a message that asks for
    /// nothing goes without one), if the replica can make it without loading the document:
    /// `state` moves as `generate` would move it. `None` leaves `state` as it was, and the
    /// message is generated.
    fn offer_heads(&mut self, _doc: &DocId, _state: &mut State) -> Option<Message> {
        None
    }
    /// Whether the document lacks any of these changes (a peer's heads).
    fn lacks(&mut self, doc: &DocId, heads: &[automerge::ChangeHash]) -> bool;
    /// The signatures that vouch for the changes of a message this replica generated: for each
    /// actor in it, the latest change of that actor held here, or a signed change that waits
    /// here, which then goes with the message ([`crate::changes::vouch_message`]).
    fn vouch(&mut self, doc: &DocId, msg: &mut Message) -> Vec<ChangeSig>;
    /// What receiving a sync message needs that depends on the message alone, worked out ahead
    /// ([`Replica::prepare`]).
    type Prepared: Send + 'static;
    /// Works out what receiving `msg` for `doc` with `sigs` needs that depends on nothing this
    /// replica holds (reading the changes it carries, loading a whole document), so that a
    /// transport can do it on another thread while the replica applies earlier messages; `None`
    /// if there is nothing worth doing ahead. What it returns goes to [`Replica::receive`] with
    /// the same message, and nowhere else.
    fn prepare(doc: &DocId, msg: &Message, sigs: &[ChangeSig]) -> Option<Self::Prepared>;
    /// Checks a sync message's changes against `sigs` ([`crate::changes::check`]), applies it,
    /// creating the document if new, and persists it with the encoded `state` for (peer, doc)
    /// in one write. Returns whether any record changed. A change that fails the check refuses
    /// the whole message: nothing is stored, and the error ends the session. `prepared` is
    /// what [`Replica::prepare`] made of this very message, if it was called.
    fn receive(
        &mut self,
        peer: &PeerId,
        doc: &DocInfo,
        state: &mut State,
        msg: Message,
        sigs: &[ChangeSig],
        prepared: Option<Self::Prepared>,
    ) -> Result<bool, Self::Error>;
    /// Every vault entry, to offer a peer.
    fn vault_items(&mut self) -> Vec<VaultItem>;
    /// Merges vault entries from `peer`; returns whether anything changed here. Entries whose
    /// signature or version does not hold are refused and reported by the replica.
    fn vault_merge(&mut self, peer: &PeerId, items: Vec<VaultItem>) -> Result<bool, Self::Error>;
    /// The heads of the authority log.
    fn authority_heads(&mut self) -> Vec<[u8; 32]>;
    /// The authority entries a peer with these heads lacks, each after those it follows. An
    /// error (the log cannot be read) ends the session: the peer is not counted as answered.
    fn authority_missing(&mut self, theirs: &[[u8; 32]]) -> Result<Vec<Vec<u8>>, Self::Error>;
    /// Offers authority entries from `peer` to the log's door: refused ones are reported by the
    /// replica (naming the peer), never stored, and an error ends the session. Returns whether
    /// the log grew.
    fn authority_offer(&mut self, peer: &PeerId, entries: Vec<Vec<u8>>) -> Result<bool, Self::Error>;
}

/// What `r` holds, as a summary, with the listing it was made from.
fn summary(r: &mut impl Replica) -> (Summary, Vec<DocInfo>) {
    let docs = r.docs();
    let whereabouts: Vec<(HubId, u64, String)> =
        r.whereabouts().into_iter().map(|w| (w.hub, w.version, w.sig)).collect();
    (Summary::of(&docs, &r.vault_versions(), &whereabouts), docs)
}

/// Sync messages of at least this many bytes are worth preparing ahead ([`prepare`]); a smaller
/// one (an edit, an acknowledgement) is applied at once, without a trip to another thread.
pub const PREPARE_FROM: usize = 64 * 1024;

/// What `R` makes ahead of a frame ([`Replica::prepare`]): `Some` only for a sync message of
/// [`PREPARE_FROM`] bytes or more that decodes. The rest is read, checked and reported when the
/// frame is handled.
pub fn prepare<R: Replica>(frame: &Frame) -> Option<R::Prepared> {
    match frame {
        Frame::Sync { doc, msg, sigs } if msg.len() >= PREPARE_FROM => {
            R::prepare(doc, &Message::decode(msg).ok()?, sigs)
        }
        _ => None,
    }
}

/// Whether `frame` is a sync message large enough to prepare ahead ([`PREPARE_FROM`]).
pub fn worth_preparing(frame: &Frame) -> bool {
    matches!(frame, Frame::Sync { msg, .. } if msg.len() >= PREPARE_FROM)
}

/// A sync message as a frame, with the signatures that vouch for its changes.
fn sync_frame(r: &mut impl Replica, doc: &DocId, mut msg: Message) -> Frame {
    let sigs = if msg.changes.is_empty() { Vec::new() } else { r.vouch(doc, &mut msg) };
    Frame::Sync { doc: doc.clone(), msg: msg.encode(), sigs }
}

/// Authority entries as frames within the size limit.
fn authority_frames(entries: Vec<Vec<u8>>) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut batch = Vec::new();
    let mut size = 0;
    for e in entries {
        if (size + e.len() + 4 > AUTHORITY_FRAME || batch.len() == MAX_AUTHORITY_ENTRIES) && !batch.is_empty() {
            out.push(Frame::Authority(std::mem::take(&mut batch)));
            size = 0;
        }
        size += e.len() + 4;
        batch.push(e);
    }
    if !batch.is_empty() {
        out.push(Frame::Authority(batch));
    }
    out
}

/// Bytes and messages a session has moved, for `aidmesh peers` and benchmarks. Bytes are the
/// frames' before deflating ([`Frame::plain_len`]), without length prefixes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    pub frames_in: u64,
    pub frames_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// One sync session with one peer.
pub struct Session {
    peer: PeerId,
    states: BTreeMap<DocId, State>,
    theirs: BTreeMap<DocId, DocInfo>,
    /// Our documents as last listed, so that a sync message for one needs no new listing.
    ours: BTreeMap<DocId, DocInfo>,
    /// Whether the peer's hello came: its first frame, once a session.
    got_hello: bool,
    /// Whether the peer's summary came: it comes once a session.
    got_summary: bool,
    /// Whether the peer's inventory came: once a session too.
    got_inventory: bool,
    announced: BTreeSet<DocId>,
    /// The fetches of this session's hub, when its sessions share them, and this session's
    /// number in them.
    fetches: Option<(SharedFetches, u64)>,
    /// Documents whose next message waits for another session's fetch (see [`Fetches`]).
    waiting: BTreeSet<DocId>,
    /// Documents this session asked the peer for and heard nothing of since: no second ask
    /// goes until the peer answers (it would send the whole answer again).
    asked: BTreeSet<DocId>,
    /// Documents the peer's inventory lacks: nothing to ask it for.
    lacking: BTreeSet<DocId>,
    /// Documents the answer to the peer's inventory still has to offer: a few go with each
    /// frame handled (and each retry), so that sending starts at once and no call loads every
    /// document of the coalition.
    to_offer: std::collections::VecDeque<DocInfo>,
    last_heard: Timestamp,
    last_sent: Timestamp,
    last_synced: Option<Timestamp>,
    traffic: Traffic,
    pace: Pace,
    /// This hub is over its day's budget for the link (it said so at the start).
    metered: bool,
    /// The peer is over its budget (it said so).
    peer_metered: bool,
    /// Documents left out because a side is over its budget: a later session takes them.
    held: BTreeSet<DocId>,
    /// This hub's authority heads when it last sent the peer what it lacked of the log: asked
    /// again with the log unchanged here, it has nothing more to send (a peer that asks over and
    /// over in a few bytes would have the whole log deflated and sent each time).
    authority_answered: Option<Vec<[u8; 32]>>,
}

/// What waits in a session, as the coordinator sees it: documents queued to go or to be asked
/// for, and documents held back by a day's budget (they go in a later session).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Backlog {
    pub queued: u64,
    pub held: u64,
}

/// Why a session sends a sync message for a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Offer {
    /// In answer, or to open: Automerge's next message.
    Reply,
    /// Changes made here: they go to the peer at once.
    Local,
    /// Changes merged from another peer: heads first, without the changes the peer asked for
    /// (what the peer had told us stays for the next exchange), so that the peer asks for what
    /// it still lacks rather than getting, again, what reached it already.
    Relayed,
}

/// What a session's next message for a document does about what its hub lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fetch {
    /// Asks the peer for it.
    Ask,
    /// Nothing is lacked of the peer's known heads: gives without asking (what the peer makes
    /// later, it offers).
    Give,
    /// Another session fetches the document: gives without asking now, asks later.
    Wait,
}

impl Drop for Session {
    /// A session that ends fetches nothing more: another session may be asked at once.
    fn drop(&mut self) {
        if let Some((f, id)) = &self.fetches {
            f.lock().unwrap_or_else(|e| e.into_inner()).release_session(*id);
        }
    }
}

/// What the passing of time asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Tick {
    Idle,
    Send(Frame),
    /// The peer has been silent too long: close the connection.
    Dead,
}

impl Session {
    pub fn new(peer: PeerId, now: Timestamp) -> Session {
        Session {
            peer,
            states: BTreeMap::new(),
            theirs: BTreeMap::new(),
            ours: BTreeMap::new(),
            got_hello: false,
            got_summary: false,
            got_inventory: false,
            announced: BTreeSet::new(),
            fetches: None,
            waiting: BTreeSet::new(),
            asked: BTreeSet::new(),
            lacking: BTreeSet::new(),
            to_offer: std::collections::VecDeque::new(),
            last_heard: now,
            last_sent: now,
            last_synced: None,
            traffic: Traffic::default(),
            pace: Pace::LAN,
            metered: false,
            peer_metered: false,
            held: BTreeSet::new(),
            authority_answered: None,
        }
    }

    /// What waits in this session now.
    pub fn backlog(&self) -> Backlog {
        let queued = self.to_offer.len() + self.waiting.len() + self.asked.len();
        Backlog { queued: queued as u64, held: self.held.len() as u64 }
    }

    /// This session for a hub over its day's budget for the link: it says so first, and lists
    /// and offers only urgent documents, as the peer then does.
    pub fn metered(mut self, metered: bool) -> Session {
        self.metered = metered;
        self
    }

    /// Whether this hub started the session over its budget.
    pub fn is_metered(&self) -> bool {
        self.metered
    }

    /// Whether `doc` goes in this session: everything, unless either side is over its budget.
    fn goes(&self, doc: &DocInfo) -> bool {
        !(self.metered || self.peer_metered) || urgent(&doc.partition)
    }

    /// The documents of `docs` that go in this session.
    fn going(&self, docs: Vec<DocInfo>) -> Vec<DocInfo> {
        docs.into_iter().filter(|d| self.goes(d)).collect()
    }

    /// This session at another pace than the LAN's.
    pub fn paced(mut self, pace: Pace) -> Session {
        self.pace = pace;
        self
    }

    /// A session that fetches each document's changes in turn with the hub's other sessions
    /// sharing `fetches` (see [`Fetches`]).
    pub fn sharing(peer: PeerId, now: Timestamp, fetches: SharedFetches) -> Session {
        let mut s = Session::new(peer, now);
        let id = fetches.lock().unwrap_or_else(|e| e.into_inner()).enter();
        s.fetches = Some((fetches, id));
        s
    }

    pub fn peer(&self) -> &PeerId {
        &self.peer
    }

    pub fn traffic(&self) -> Traffic {
        self.traffic
    }

    pub fn last_synced(&self) -> Option<Timestamp> {
        self.last_synced
    }

    /// The first frames: the protocol spoken, the heads of the authority log, and a summary of
    /// what we hold. No document is loaded to make them.
    pub fn start(&mut self, r: &mut impl Replica, now: Timestamp) -> Vec<Frame> {
        let mut out = vec![Frame::Hello(PROTOCOL)];
        // Before the summary, so that the peer's inventory already leaves out what need not go.
        if self.metered {
            out.push(Frame::Metered);
        }
        out.extend([Frame::AuthorityHeads(r.authority_heads()), Frame::Summary(summary(r).0)]);
        self.sent(&out, now);
        out
    }

    /// A frame from the peer.
    pub fn handle(
        &mut self,
        r: &mut impl Replica,
        frame: Frame,
        now: Timestamp,
    ) -> Result<(Vec<Frame>, bool), SessionError> {
        self.handle_prepared(r, frame, None, now)
    }

    /// [`Session::handle`] for a frame a transport read ahead: `prepared` is what
    /// [`Replica::prepare`] made of its sync message (see [`prepare`]).
    pub fn handle_prepared<R: Replica>(
        &mut self,
        r: &mut R,
        frame: Frame,
        mut prepared: Option<R::Prepared>,
        now: Timestamp,
    ) -> Result<(Vec<Frame>, bool), SessionError> {
        self.last_heard = now;
        self.traffic.frames_in += 1;
        self.traffic.bytes_in += frame.plain_len() as u64;
        let mut out = Vec::new();
        let mut changed = false;
        // A session opens with the protocol spoken; a hub from before hellos opens without one.
        if !std::mem::replace(&mut self.got_hello, true) {
            return match frame {
                Frame::Hello(v) if v == PROTOCOL => Ok((out, false)),
                Frame::Hello(v) => Err(SessionError::Version { ours: PROTOCOL, theirs: v }),
                _ => Err(SessionError::Version { ours: PROTOCOL, theirs: 1 }),
            };
        }
        match frame {
            Frame::Hello(_) => return Err(SessionError::Malformed("a second hello in one session".into())),
            Frame::Summary(theirs) => {
                if std::mem::replace(&mut self.got_summary, true) {
                    return Err(SessionError::Malformed("a second summary in one session".into()));
                }
                let (ours, docs) = summary(r);
                if (theirs.docs, theirs.vault) == (ours.docs, ours.vault) {
                    // Both hold the same records and vault: that is a sync too (whereabouts that
                    // differ go across in this same round, and are not records).
                    self.last_synced = Some(now);
                }
                if theirs.docs != ours.docs {
                    let docs = self.going(docs);
                    out.push(Frame::Inventory(docs.into_iter().map(|d| (d.doc, d.heads)).collect()));
                }
                if theirs.vault != ours.vault {
                    let vault = r.vault_items();
                    if !vault.is_empty() {
                        out.push(Frame::Vault(vault));
                    }
                }
                if theirs.whereabouts != ours.whereabouts {
                    let whereabouts = r.whereabouts();
                    if !whereabouts.is_empty() {
                        out.push(Frame::Whereabouts(whereabouts));
                    }
                }
            }
            Frame::Inventory(docs) => {
                if std::mem::replace(&mut self.got_inventory, true) {
                    return Err(SessionError::Malformed("a second inventory in one session".into()));
                }
                // Start sync for our documents that the peer lacks (announced first) or holds at
                // other heads; the peer starts it for the ones we lack.
                let theirs: BTreeMap<DocId, String> = docs.into_iter().collect();
                let ours = r.docs();
                self.ours = ours.iter().map(|d| (d.doc.clone(), d.clone())).collect();
                for d in ours {
                    let differs = theirs.get(&d.doc).is_none_or(|h| h.is_empty() || *h != d.heads);
                    if !self.goes(&d) {
                        // Held for a later session, if the peer lacks some of it.
                        if differs {
                            self.held.insert(d.doc.clone());
                        }
                        continue;
                    }
                    match theirs.get(&d.doc) {
                        Some(h) if !h.is_empty() && *h == d.heads => continue,
                        Some(_) => {
                            self.announced.insert(d.doc.clone());
                        }
                        None => {
                            self.lacking.insert(d.doc.clone());
                        }
                    }
                    self.to_offer.push_back(d);
                }
            }
            Frame::Announce(docs) => {
                // The peer's sync messages for these follow. No coalition holds more documents
                // than an inventory lists: a peer that announces more is not kept on.
                self.theirs.extend(docs.into_iter().map(|d| (d.doc.clone(), d)));
                if self.theirs.len() > MAX_DOCS {
                    return Err(SessionError::Malformed(format!(
                        "announce: more than {MAX_DOCS} documents in one session"
                    )));
                }
            }
            Frame::Sync { doc, msg, sigs } => {
                // The document is one the peer announced, or one of ours it asks about.
                let info = match self.theirs.get(&doc).or_else(|| self.ours.get(&doc)) {
                    Some(i) => i.clone(),
                    None => match r.docs().into_iter().find(|d| d.doc == doc) {
                        Some(i) => i,
                        None => return Err(SessionError::Unannounced(doc)),
                    },
                };
                let msg = Message::decode(&msg)
                    .map_err(|e| SessionError::Malformed(format!("sync message for {doc}: {e}")))?;
                check_message(&msg).map_err(|why| SessionError::Malformed(format!("sync message for {doc}: {why}")))?;
                let peer = self.peer.clone();
                // Anything the peer says of the document answers an ask (it may have had nothing
                // to give then, and has news now).
                self.asked.remove(&doc);
                let state = self.state(r, &doc);
                changed = r
                    .receive(&peer, &info, state, msg, &sigs, prepared.take())
                    .map_err(|why| SessionError::Replica { doc: doc.clone(), why: std::sync::Arc::new(why) })?;
                if let (true, Some((f, id))) = (changed, &self.fetches) {
                    f.lock().unwrap_or_else(|e| e.into_inner()).progress(*id, &doc, now);
                }
                // What the peer says it needs goes again, even if it went before in this session:
                // a change it took before what that change depends on waits in its memory only,
                // and is gone once the document leaves memory or the hub restarts. Automerge
                // would hold it back as sent, and the peer would ask in vain.
                if let Some(st) = self.states.get_mut(&doc) {
                    for h in st.their_need.iter().flatten() {
                        st.sent_hashes.remove(h);
                    }
                }
                // A document we did not have exists now: announce it back so the peer's view of
                // ours is complete, then answer. A document that does not go in this session
                // (it was on its way when the budget ran out) is kept, and not answered.
                // Whether it may go is decided by what this hub knows of the document, not by the
                // partition the peer gave it.
                if self.goes(self.ours.get(&doc).unwrap_or(&info)) {
                    if self.announced.insert(doc.clone()) {
                        out.push(Frame::Announce(vec![info]));
                    }
                    out.extend(self.generate(r, &doc, now));
                }
                // A fetch that ended makes room: documents that waited for it ask now.
                out.extend(self.ask_waiting(r, now));
                self.last_synced = Some(now);
            }
            Frame::Vault(items) => {
                let peer = self.peer.clone();
                changed = r
                    .vault_merge(&peer, items)
                    .map_err(|why| SessionError::Replica { doc: "vault".into(), why: std::sync::Arc::new(why) })?;
            }
            Frame::Whereabouts(items) => {
                let peer = self.peer.clone();
                changed = r.whereabouts_merge(&peer, items).map_err(|why| SessionError::Replica {
                    doc: "whereabouts".into(),
                    why: std::sync::Arc::new(why),
                })?;
            }
            Frame::AuthorityHeads(heads) => {
                let ours = r.authority_heads();
                if self.authority_answered.as_ref() != Some(&ours) {
                    let missing = r.authority_missing(&heads).map_err(|why| SessionError::Replica {
                        doc: "authority".into(),
                        why: std::sync::Arc::new(why),
                    })?;
                    out.extend(authority_frames(missing));
                    self.authority_answered = Some(ours);
                }
            }
            Frame::Authority(entries) => {
                let peer = self.peer.clone();
                changed = r
                    .authority_offer(&peer, entries)
                    .map_err(|why| SessionError::Replica { doc: "authority".into(), why: std::sync::Arc::new(why) })?;
            }
            Frame::Ping => out.push(Frame::Pong),
            Frame::Pong => {}
            // Only before the summary: the peer's budget decides a session from its start (a hub
            // whose budget runs out mid-session starts a new one), so that nothing is half
            // offered under one rule and answered under the other.
            Frame::Metered if self.got_summary => {
                return Err(SessionError::Malformed("metered after the summary".into()));
            }
            Frame::Metered => self.peer_metered = true,
        }
        out.extend(self.offer_next(r, now));
        self.sent(&out, now);
        Ok((out, changed))
    }

    /// The next few documents the inventory's answer offers ([`OFFER_AT_ONCE`] that have
    /// something to send; one the peer already synced in this session sends nothing and does
    /// not count), so that nothing is left queued behind an answer that sent nothing.
    fn offer_next(&mut self, r: &mut impl Replica, now: Timestamp) -> Vec<Frame> {
        let mut out = Vec::new();
        let mut offered = 0;
        while offered < OFFER_AT_ONCE {
            let Some(d) = self.to_offer.pop_front() else { break };
            let frames = self.messages(r, &d, Offer::Reply, now);
            offered += usize::from(!frames.is_empty());
            out.extend(frames);
        }
        out
    }

    /// A document changed here (a local write, a bundle): offer the changes.
    pub fn changed(&mut self, r: &mut impl Replica, doc: &DocInfo, now: Timestamp) -> Vec<Frame> {
        self.offer(r, doc, Offer::Local, now)
    }

    /// A document changed by a merge from another peer: offer our heads only, so that the
    /// peer asks for what it still lacks rather than getting, again, what reached it already.
    pub fn relayed(&mut self, r: &mut impl Replica, doc: &DocInfo, now: Timestamp) -> Vec<Frame> {
        self.offer(r, doc, Offer::Relayed, now)
    }

    fn offer(&mut self, r: &mut impl Replica, doc: &DocInfo, offer: Offer, now: Timestamp) -> Vec<Frame> {
        if !self.goes(doc) {
            self.held.insert(doc.doc.clone());
            return Vec::new();
        }
        let out = self.messages(r, doc, offer, now);
        self.sent(&out, now);
        out
    }

    /// The frames that offer a document: its announcement if the peer has not had it yet, then
    /// a sync message.
    fn messages(&mut self, r: &mut impl Replica, doc: &DocInfo, offer: Offer, now: Timestamp) -> Vec<Frame> {
        let mut out = Vec::new();
        if self.announced.insert(doc.doc.clone()) {
            out.push(Frame::Announce(vec![doc.clone()]));
        }
        out.extend(self.message(r, &doc.doc, offer, now));
        out
    }

    /// Vault entries changed here: offer them.
    pub fn vault_changed(&mut self, items: Vec<VaultItem>, now: Timestamp) -> Vec<Frame> {
        let out = if items.is_empty() { vec![] } else { vec![Frame::Vault(items)] };
        self.sent(&out, now);
        out
    }

    /// Whereabouts that changed here (this hub's own, or newer ones from a peer): offer them.
    pub fn whereabouts_changed(&mut self, items: Vec<Whereabouts>, now: Timestamp) -> Vec<Frame> {
        let out = if items.is_empty() { vec![] } else { vec![Frame::Whereabouts(items)] };
        self.sent(&out, now);
        out
    }

    /// Authority entries stored here (made here, or accepted from another peer): offer them.
    pub fn authority_changed(&mut self, entries: Vec<Vec<u8>>, now: Timestamp) -> Vec<Frame> {
        let out = authority_frames(entries);
        self.sent(&out, now);
        out
    }

    /// This hub missed notices of its own changes (the driver fell behind): offer every
    /// document and the whole vault again. Documents the peer already holds cost a few bytes.
    pub fn resync(&mut self, r: &mut impl Replica, now: Timestamp) -> Vec<Frame> {
        let mut out = self.vault_changed(r.vault_items(), now);
        out.extend(self.whereabouts_changed(r.whereabouts(), now));
        out.push(Frame::AuthorityHeads(r.authority_heads()));
        for d in r.docs() {
            out.extend(self.changed(r, &d, now));
        }
        out
    }

    /// Whether the peer has been heard (any frame): the session got past its first exchange.
    pub fn heard_from_peer(&self) -> bool {
        self.traffic.frames_in > 0
    }

    /// The peer was heard at `now` without a frame handled: its frames arrived and wait to be
    /// taken (a transport that prepares large ones ahead may hold them past the time after
    /// which a silent peer is given up).
    pub fn heard(&mut self, now: Timestamp) {
        self.last_heard = self.last_heard.max(now);
    }

    /// Time passed: ping a quiet peer, give up on a silent one.
    pub fn tick(&mut self, now: Timestamp) -> Tick {
        if now.millis() - self.last_heard.millis() > self.pace.dead_after_ms {
            return Tick::Dead;
        }
        if now.millis() - self.last_sent.millis() > self.pace.ping_after_ms {
            self.sent(&[Frame::Ping], now);
            return Tick::Send(Frame::Ping);
        }
        Tick::Idle
    }

    fn state(&mut self, r: &mut impl Replica, doc: &DocId) -> &mut State {
        if !self.states.contains_key(doc) {
            let s = r.load_state(&self.peer, doc).and_then(|b| State::decode(&b).ok()).unwrap_or_default();
            self.states.insert(doc.clone(), s);
        }
        self.states.entry(doc.clone()).or_default()
    }

    fn generate(&mut self, r: &mut impl Replica, doc: &DocId, now: Timestamp) -> Option<Frame> {
        self.message(r, doc, Offer::Reply, now)
    }

    /// The next sync message for `doc`, if one is due, as `offer` says.
    ///
    /// A sync message asks the peer for what it holds and this hub lacks (its summary of what
    /// this hub holds, and the changes it names). With shared [`Fetches`], it asks only where
    /// this hub lacks some of the peer's heads (or does not know them yet) and no other session
    /// of this hub fetches `doc`; asking makes this session the one that fetches. Otherwise
    /// it still gives: it goes without asking if it carries changes for the peer or heads the
    /// peer has not been told, and else nothing goes. A document that must wait for another
    /// fetch asks at a [`Session::retry`] once it may.
    fn message(&mut self, r: &mut impl Replica, doc: &DocId, offer: Offer, now: Timestamp) -> Option<Frame> {
        let fetch = self.fetch(r, doc, now);
        if fetch == Fetch::Wait {
            self.waiting.insert(doc.clone());
        } else {
            self.waiting.remove(doc);
        }
        let shared = self.fetches.is_some();
        // An ask the peer has not answered yet stands: this message only gives.
        let asks = fetch == Fetch::Ask && !(shared && self.asked.contains(doc));
        let state = self.state(r, doc);
        if asks && shared {
            // The peer may not have answered what this hub last sent, having nothing to give:
            // an ask goes all the same (Automerge would hold it back until an answer came).
            state.in_flight = false;
        }
        let before = (!asks).then(|| state.clone());
        let theirs = state.their_have.clone();
        match offer {
            Offer::Reply => {}
            Offer::Relayed => state.their_have = None,
            // A peer that last asked for nothing (it was fetching elsewhere) still gets what was
            // made here since the heads it told us, unless it holds what we lack.
            Offer::Local => {
                let asked_nothing = state.their_have.as_ref().is_some_and(|h| h.is_empty());
                if let (true, Some(heads)) = (asked_nothing, state.their_heads.clone()) {
                    if !r.lacks(doc, &heads) {
                        let state = self.state(r, doc);
                        state.their_have = Some(vec![Have { last_sync: heads, bloom: Default::default() }]);
                        state.their_need.get_or_insert_with(Vec::new);
                    }
                }
            }
        }
        let state = self.state(r, doc);
        // A message that asks for nothing goes without a summary: where the peer said nothing
        // of the document yet, the replica may offer its heads without loading it.
        let msg = match asks {
            false => r.offer_heads(doc, state).or_else(|| r.generate(doc, state)),
            true => r.generate(doc, state),
        };
        if offer != Offer::Reply {
            self.state(r, doc).their_have = theirs;
        }
        let Some(before) = before else {
            if shared && msg.is_some() {
                self.asked.insert(doc.clone());
            }
            return msg.map(|m| sync_frame(r, doc, m));
        };
        let mut msg = msg?;
        // Empty heads tell the peer this hub lost everything, and Automerge answers those with
        // the whole document: a hub that holds nothing of it says nothing until it may ask.
        let tells = (!before.have_responded || msg.heads != before.last_sent_heads) && !msg.heads.is_empty();
        // (A document with no heads has nothing to give: what Automerge sends of it to a peer
        // that says it holds nothing is an empty save.)
        let gives = (!msg.changes.is_empty() && !msg.heads.is_empty()) || tells;
        if !gives {
            // Nothing went: the state stays as if nothing was generated (not waiting for a reply).
            *self.state(r, doc) = before;
            return None;
        }
        msg.have.clear();
        msg.need.clear();
        Some(sync_frame(r, doc, msg))
    }

    /// Whether a message for `doc` asks the peer for what this hub lacks (see
    /// [`Session::message`]); a session that asks is the one fetching `doc` for its hub.
    fn fetch(&mut self, r: &mut impl Replica, doc: &DocId, now: Timestamp) -> Fetch {
        let Some((fetches, id)) = self.fetches.clone() else { return Fetch::Ask };
        let heads = self.states.get(doc).and_then(|s| s.their_heads.clone());
        // A peer whose inventory lacks the document has nothing of it to give (until it speaks).
        let heads = heads.or_else(|| self.lacking.contains(doc).then(Vec::new));
        let mut fetches = fetches.lock().unwrap_or_else(|e| e.into_inner());
        match heads {
            Some(h) if !r.lacks(doc, &h) => {
                // Nothing is lacked of what the peer said it holds: nothing to ask for. What it
                // makes later, it offers (heads first, or its changes at once).
                fetches.release(doc, id, now);
                self.asked.remove(doc);
                Fetch::Give
            }
            _ if fetches.claim(doc, id, &self.peer, self.pace, now) => Fetch::Ask,
            _ => {
                // This session's fetch lapsed: once it may claim again, it asks again.
                if fetches.benched(doc, id, now) {
                    self.asked.remove(doc);
                }
                Fetch::Wait
            }
        }
    }

    /// Whether some document waits for another session's fetch, or for its turn in the answer
    /// to the peer's inventory: then call [`Session::retry`] as time passes.
    pub fn is_waiting(&self) -> bool {
        !self.waiting.is_empty() || !self.to_offer.is_empty()
    }

    /// Sends, for each document that waited, what may go now that the other fetch ended,
    /// lapsed, or brought what this peer had; and the next documents the answer to the peer's
    /// inventory offers.
    pub fn retry(&mut self, r: &mut impl Replica, now: Timestamp) -> Vec<Frame> {
        let mut out = self.ask_waiting(r, now);
        out.extend(self.offer_next(r, now));
        self.sent(&out, now);
        out
    }

    /// The messages of documents that waited and may ask now: no other session fetches them
    /// and this one has room ([`FETCHES_AT_ONCE`]).
    fn ask_waiting(&mut self, r: &mut impl Replica, now: Timestamp) -> Vec<Frame> {
        let mut out = Vec::new();
        if self.waiting.is_empty() {
            return out;
        }
        // As many as may ask: the others would be loaded only to wait again.
        let due: Vec<DocId> = match &self.fetches {
            Some((f, id)) => {
                let f = f.lock().unwrap_or_else(|e| e.into_inner());
                self.waiting.iter().filter(|d| f.free(d, *id, now)).take(f.slots(*id, now)).cloned().collect()
            }
            None => self.waiting.iter().cloned().collect(),
        };
        for doc in due {
            out.extend(self.generate(r, &doc, now));
        }
        out
    }

    fn sent(&mut self, frames: &[Frame], now: Timestamp) {
        if !frames.is_empty() {
            self.last_sent = now;
        }
        for f in frames {
            self.traffic.frames_out += 1;
            self.traffic.bytes_out += f.plain_len() as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame holds at most [`MAX_SIGS`] signature items, and only whole signatures: a
    /// person's is never cut from its hub's (the receiver would refuse the change as unsigned by
    /// that person, again on every try).
    #[test]
    fn a_frame_carries_whole_signatures_only() {
        let sig = |n: u32, person: bool| {
            let mut hash = [0; 32];
            hash[..4].copy_from_slice(&n.to_be_bytes());
            ChangeSig { hash, sig: [1; 64], person: person.then_some([2; 64]) }
        };
        let fits = MAX_SIGS / 2;
        let sigs: Vec<ChangeSig> = (0..=fits as u32).map(|n| sig(n, true)).collect();
        let f = Frame::Sync { doc: "d".into(), msg: vec![], sigs: sigs.clone() };
        let Ok(Frame::Sync { sigs: back, .. }) = Frame::decode(&f.encode()) else { panic!("a sync frame") };
        assert_eq!(back, sigs[..fits], "{} signatures of {}", back.len(), sigs.len());
    }

    #[test]
    fn frames_round_trip_and_bad_bytes_are_named() {
        let frames = vec![
            Frame::Announce(vec![DocInfo {
                doc: "item-01abc".into(),
                partition: "item".into(),
                created_at: 5,
                ..Default::default()
            }]),
            Frame::Inventory(vec![("d".into(), heads_digest(["ab", "cd"])), ("item-01abc".into(), String::new())]),
            Frame::Summary(Summary { docs: [1; 16], vault: [2; 16], whereabouts: [3; 16] }),
            Frame::Sync { doc: "d1".into(), msg: vec![1, 2, 3], sigs: vec![] },
            Frame::Sync {
                doc: "d1".into(),
                msg: vec![4],
                sigs: vec![
                    ChangeSig { hash: [1; 32], sig: [2; 64], person: None },
                    ChangeSig { hash: [3; 32], sig: [4; 64], person: Some([5; 64]) },
                    ChangeSig { hash: [6; 32], sig: [7; 64], person: None },
                ],
            },
            Frame::Ping,
            Frame::Pong,
            Frame::Vault(vec![VaultItem {
                id: "v1".into(),
                updated_at: 3,
                origin: "h".into(),
                content: Some("6869".into()),
                version: 2,
                sig: "ab".into(),
            }]),
            Frame::AuthorityHeads(vec![[7; 32], [9; 32]]),
            Frame::Authority(vec![b"{}".to_vec(), b"[1]".to_vec()]),
            Frame::Whereabouts(vec![crate::whereabouts::Whereabouts::new(
                &crate::Identity::from_secret(&[3; 32]),
                5,
                Some("https://relay.example.org/".into()),
                &["192.0.2.1:4433".parse().unwrap(), "[2001:db8::1]:4433".parse().unwrap()],
            )]),
        ];
        for f in frames {
            assert_eq!(f.plain_len(), f.encode_plain().len(), "{f:?}");
            assert_eq!(Frame::decode(&f.encode()).unwrap(), f);
        }
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty"),
            (&[99], "unknown frame type 99"),
            (&[TAG_SUMMARY, 1, 2], "summary: not three 16-byte digests"),
            (&[&[TAG_SUMMARY][..], &[0; 32]].concat(), "summary: not three 16-byte digests"),
            (&[TAG_WHEREABOUTS, b'['], "whereabouts: "),
            (&[&[TAG_WHEREABOUTS][..], br#"[{"hub":"x"}]"#].concat(), "whereabouts: "),
            (&[TAG_INVENTORY, 1, b'd', 9], "inventory: truncated"),
            (&[TAG_INVENTORY, 1, b'd', 2, b'z', b'z'], "heads digest is not valid"),
            (&[TAG_SYNC, 0], "truncated"),
            (&[TAG_SYNC, 0, 9, b'a'], "truncated document id"),
            (&[TAG_SYNC, 0, 1, b'/'], "not valid"),
            (&[TAG_SYNC, 0, 1, b'd', 0], "sync: truncated"),
            (&[TAG_SYNC, 0, 1, b'd', 0, 1, 9, 9], "signatures are cut short"),
            (&[TAG_ANNOUNCE, b'{'], "announce"),
            (&[TAG_PING, 0], "unknown frame type 3"),
            (&[TAG_AUTHORITY, 0, 0, 0, 0], "authority: an entry is empty"),
        ];
        for (b, want) in cases {
            let e = Frame::decode(b).unwrap_err().to_string();
            assert!(e.contains(want), "{b:?}: {e}");
        }
        assert!(matches!(Frame::decode(&vec![TAG_SYNC; MAX_FRAME + 1]), Err(SessionError::TooLarge(_))));
    }

    fn deflated(plain: &[u8]) -> Vec<u8> {
        let mut z = flate2::write::DeflateEncoder::new(vec![TAG_DEFLATE], flate2::Compression::best());
        z.write_all(plain).unwrap();
        z.finish().unwrap()
    }

    /// Large frames travel deflated when that is smaller; small ones and ones that do not shrink
    /// go as they are. A deflated frame that is damaged, inflates past the frame limit, or holds
    /// another deflated frame is refused with what is wrong.
    #[test]
    fn large_frames_travel_deflated_and_bad_deflated_frames_are_named() {
        let repetitive = Frame::Authority(vec![br#"{"body":"the same words again and again"}"#.repeat(100)]);
        let b = repetitive.encode();
        assert_eq!(b[0], TAG_DEFLATE);
        assert!(b.len() * 10 < repetitive.encode_plain().len(), "{} bytes", b.len());
        assert_eq!(Frame::decode(&b).unwrap(), repetitive);
        let small = Frame::Sync { doc: "d1".into(), msg: vec![0; 100], sigs: vec![] };
        assert_eq!(small.encode(), small.encode_plain(), "under {DEFLATE_FROM} bytes it goes as it is");
        let mut noise = vec![0u8; 4096];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut noise);
        let random = Frame::Sync { doc: "d1".into(), msg: noise, sigs: vec![] };
        assert_eq!(random.encode(), random.encode_plain(), "what deflate does not shrink goes as it is");
        assert_eq!(Frame::decode(&random.encode()).unwrap(), random);

        let bomb = deflated(&[&[TAG_SYNC][..], &vec![0; MAX_FRAME]].concat());
        assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![TAG_DEFLATE, 0xff, 0xff, 0xff], "deflated frame: "),
            (b[..b.len() / 2].to_vec(), "deflated frame: "),
            (bomb, "inflates to over the limit"),
            (deflated(&b), "holds another deflated frame"),
            (deflated(&[99]), "unknown frame type 99"),
        ];
        for (bytes, want) in cases {
            let e = Frame::decode(&bytes).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
        // A few kilobytes deflated cannot carry millions of entries for the door to judge: a
        // frame holds a bounded number, and a sender splits by that number too.
        let many = |n: usize| [&[TAG_AUTHORITY][..], &[0, 0, 0, 1, b'x'].repeat(n)].concat();
        assert!(
            matches!(Frame::decode(&many(MAX_AUTHORITY_ENTRIES)), Ok(Frame::Authority(e)) if e.len() == MAX_AUTHORITY_ENTRIES)
        );
        let e = Frame::decode(&deflated(&many(MAX_AUTHORITY_ENTRIES + 1))).unwrap_err().to_string();
        assert!(e.contains("more than 16384 entries"), "{e}");
        let frames = authority_frames(vec![b"{}".to_vec(); MAX_AUTHORITY_ENTRIES + 5]);
        assert_eq!(frames.len(), 2);
        // Exactly at the limit is a frame like any other.
        let at_limit = deflated(&[&[TAG_SYNC, 0, 1, b'd', 0, 0][..], &vec![0; MAX_FRAME - 6]].concat());
        assert!(matches!(Frame::decode(&at_limit), Ok(Frame::Sync { msg, .. }) if msg.len() == MAX_FRAME - 6));
    }

    #[test]
    fn a_peer_opens_once_and_lists_a_bounded_inventory() {
        let mut r = crate::memory::Mem::new(1);
        let t0 = Timestamp::from_millis(0);
        let mut s = Session::new(PeerId::named("peer"), t0);
        s.handle(&mut r, Frame::Hello(PROTOCOL), t0).unwrap();
        let summary = Frame::Summary(Summary { docs: [1; 16], vault: [2; 16], whereabouts: [3; 16] });
        s.handle(&mut r, summary.clone(), t0).unwrap();
        let e = s.handle(&mut r, summary, t0).unwrap_err();
        assert!(e.to_string().contains("a second summary"), "{e}");
        let inventory = Frame::Inventory(vec![("d".into(), String::new())]);
        s.handle(&mut r, inventory.clone(), t0).unwrap();
        assert!(s.handle(&mut r, inventory, t0).unwrap_err().to_string().contains("a second inventory"));
        // Each entry is three bytes; a frame of them would cost far more in memory than on the wire.
        let mut big = vec![TAG_INVENTORY];
        for _ in 0..=MAX_DOCS {
            big.extend([1, b'd', 0]);
        }
        assert!(Frame::decode(&big).unwrap_err().to_string().contains("more than 100000 documents"));
        // An announcement names partitions and times that hubs make, and no more documents
        // than an inventory may list, in one frame or across a session.
        let info = |doc: &str, partition: &str, created_at: i64| DocInfo {
            doc: doc.into(),
            partition: partition.into(),
            created_at,
            heads: String::new(),
        };
        let announce = |docs: Vec<DocInfo>| Frame::decode(&Frame::Announce(docs).encode());
        assert!(announce(vec![info("d1", "incident/2026-11", 1)]).is_ok());
        for (bad, why) in [
            (info("d1", &"a".repeat(65), 1), "names a partition that is not valid"),
            (info("d1", "Item", 1), "names a partition that is not valid"),
            (info("d1", "", 1), "names a partition that is not valid"),
            (info("d1", "item", -1), "made before 1970"),
            (info("d 1", "item", 1), "document id \"d 1\""),
        ] {
            let e = announce(vec![bad.clone()]).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        let many = |from: usize, n: usize| (from..from + n).map(|i| info(&format!("d{i}"), "item", 1)).collect();
        assert!(announce(many(0, MAX_DOCS + 1)).unwrap_err().to_string().contains("more than 100000 documents"));
        let mut s = Session::new(PeerId::named("peer"), t0);
        s.handle(&mut r, Frame::Hello(PROTOCOL), t0).unwrap();
        s.handle(&mut r, Frame::Announce(many(0, MAX_DOCS)), t0).unwrap();
        s.handle(&mut r, Frame::Announce(many(0, 10)), t0).unwrap();
        let e = s.handle(&mut r, Frame::Announce(many(MAX_DOCS, 1)), t0).unwrap_err().to_string();
        assert!(e.contains("more than 100000 documents in one session"), "{e}");
    }

    /// A peer that asks for the authority log again, with nothing new here since this hub
    /// answered, is sent nothing more (a few bytes asking would otherwise have the whole log
    /// deflated and sent each time); once the log grows here, it is answered again.
    #[test]
    fn the_authority_log_is_sent_again_only_once_it_grew() {
        use crate::authority::{Body, Key};
        use crate::identity::Identity;
        let person = |n: u8| Identity::from_secret(&[n; 32]);
        let mut r = crate::memory::Mem::new(1);
        let fox = person(1);
        r.log
            .append(&fox, Key::of(&person(9)), 0, Body::found(&person(9), &Key::of(&fox), "R", "fox", "North", None))
            .unwrap();
        let t0 = Timestamp::from_millis(0);
        let mut s = Session::new(PeerId::named("peer"), t0);
        s.handle(&mut r, Frame::Hello(PROTOCOL), t0).unwrap();
        let sent = |s: &mut Session, r: &mut crate::memory::Mem| {
            let (out, _) = s.handle(r, Frame::AuthorityHeads(vec![]), t0).unwrap();
            out.iter().filter(|f| matches!(f, Frame::Authority(_))).count()
        };
        assert_eq!(sent(&mut s, &mut r), 1, "the log, to a peer that holds none of it");
        for _ in 0..3 {
            assert_eq!(sent(&mut s, &mut r), 0, "nothing new since");
        }
        let owl = person(2);
        let body = Body::AddPerson { person: Key::of(&owl), handle: "owl".into(), role: crate::Role::Member };
        r.log.append(&fox, Key::of(&person(9)), 1, body).unwrap();
        assert_eq!(sent(&mut s, &mut r), 1, "the log grew here");
        // A log that cannot be read here ends the session: the peer is not taken as answered
        // with nothing, and the next session answers it.
        r.log_unreadable = true;
        let mut s = Session::new(PeerId::named("peer"), t0);
        s.handle(&mut r, Frame::Hello(PROTOCOL), t0).unwrap();
        let e = s.handle(&mut r, Frame::AuthorityHeads(vec![]), t0).unwrap_err().to_string();
        assert!(e.contains("authority") && e.contains("cannot be read"), "{e}");
        r.log_unreadable = false;
        let mut s = Session::new(PeerId::named("peer"), t0);
        s.handle(&mut r, Frame::Hello(PROTOCOL), t0).unwrap();
        assert_eq!(sent(&mut s, &mut r), 1, "answered in the next session");
    }

    /// A peer that lacks every document is answered a few documents at a time: the answer to
    /// its inventory loads and offers [`OFFER_AT_ONCE`] documents, each later frame or retry the
    /// next few, and the two replicas still converge.
    #[test]
    fn an_inventory_is_answered_a_few_documents_at_a_time() {
        use crate::memory::{converge, Mem};
        let mut r = Mem::new(1);
        let names: Vec<String> = (0..9).map(|n| format!("doc-{n}")).collect();
        for (n, d) in names.iter().enumerate() {
            r.edit(d, n as u64);
        }
        let t0 = Timestamp::from_millis(0);
        let mut s = Session::new(PeerId::named("new"), t0);
        s.handle(&mut r, Frame::Hello(PROTOCOL), t0).unwrap();
        let offered = |out: &[Frame]| out.iter().filter(|f| matches!(f, Frame::Sync { .. })).count();
        let (out, _) = s.handle(&mut r, Frame::Inventory(Vec::new()), t0).unwrap();
        assert_eq!(offered(&out), OFFER_AT_ONCE);
        assert!(s.is_waiting(), "the rest waits for its turn");
        let (out, _) = s.handle(&mut r, Frame::Pong, t0).unwrap();
        assert_eq!(offered(&out), OFFER_AT_ONCE, "each frame handled offers the next few");
        let mut rest = 0;
        for _ in 0..names.len() {
            rest += offered(&s.retry(&mut r, t0));
        }
        assert!(!s.is_waiting(), "every document was offered");
        assert_eq!(rest, names.len() - 2 * OFFER_AT_ONCE);
        // End to end, a new replica gets every document.
        let mut pair = vec![r, Mem::new(2)];
        converge(&mut pair, true);
        for d in &names {
            assert_eq!(pair[0].doc(d).get_heads(), pair[1].doc(d).get_heads(), "{d}");
        }
    }

    #[test]
    fn a_fetch_lapses_without_changes_and_ends_at_its_longest_whatever_trickles_in() {
        let t = Timestamp::from_millis;
        let mut f = Fetches::default();
        let (a, b) = (f.enter(), f.enter());
        let (pa, pb) = (PeerId::named("pa"), PeerId::named("pb"));
        let d = DocId::from("d");
        assert!(f.claim(&d, a, &pa, Pace::LAN, t(0)));
        assert!(!f.claim(&d, b, &pb, Pace::LAN, t(1_000)), "one session fetches a document at a time");
        // Asking again renews nothing: without changes the claim lapses.
        assert!(f.claim(&d, a, &pa, Pace::LAN, t(4_000)));
        assert!(!f.free(&d, b, t(4_999)));
        assert!(f.free(&d, b, t(5_000)));
        // Changes that arrive renew it, but a trickle keeps it no longer than FETCH_MAX_MS.
        for ms in (4_000..30_000).step_by(4_000) {
            f.progress(a, &d, t(ms));
            assert!(!f.claim(&d, b, &pb, Pace::LAN, t(ms + 1)), "renewed at {ms}");
        }
        assert!(!f.claim(&d, b, &pb, Pace::LAN, t(FETCH_MAX_MS - 1)));
        assert!(f.claim(&d, b, &pb, Pace::LAN, t(FETCH_MAX_MS)), "at its longest the claim passes on");
        // The session whose claim lapsed waits a lapse before it may claim that document again.
        f.release(&d, b, t(FETCH_MAX_MS));
        assert!(!f.claim(&d, a, &pa, Pace::LAN, t(FETCH_MAX_MS + FETCH_LAPSE_MS - 1)));
        assert!(f.claim(&d, a, &pa, Pace::LAN, t(FETCH_MAX_MS + FETCH_LAPSE_MS)));
        // A claim goes with its session.
        f.release_session(a);
        assert!(f.claim(&d, b, &pb, Pace::LAN, t(FETCH_MAX_MS + FETCH_LAPSE_MS + 1)));
        assert_eq!(f.fetching(), vec![(d.clone(), pb)]);
    }

    /// A new hub lacks every document: it asks for a few at a time, and while the peer sends
    /// (whatever document), none of its fetches lapses (up to `FETCH_MAX_MS`).
    #[test]
    fn a_session_fetches_a_few_documents_at_a_time_and_changes_renew_them_all() {
        let t = Timestamp::from_millis;
        let mut f = Fetches::default();
        let (a, b) = (f.enter(), f.enter());
        let pa = PeerId::named("pa");
        let docs: Vec<DocId> = (0..=FETCHES_AT_ONCE).map(|n| DocId::from(format!("d{n}").as_str())).collect();
        for d in &docs[..FETCHES_AT_ONCE] {
            assert!(f.claim(d, a, &pa, Pace::LAN, t(0)), "{d}");
        }
        let last = &docs[FETCHES_AT_ONCE];
        assert!(!f.claim(last, a, &pa, Pace::LAN, t(0)), "a session fetches {FETCHES_AT_ONCE} documents at a time");
        assert!(!f.free(last, a, t(0)));
        assert!(f.free(last, b, t(0)), "another session may fetch it meanwhile");
        // Changes of the first document renew every claim of the session.
        f.progress(a, &docs[0], t(4_000));
        for d in &docs[..FETCHES_AT_ONCE] {
            assert!(!f.free(d, b, t(8_999)), "{d} renewed");
            assert!(f.free(d, b, t(9_000)), "{d} lapses without more");
        }
        // A fetch that ends makes room.
        f.release(&docs[0], a, t(8_000));
        assert!(f.claim(last, a, &pa, Pace::LAN, t(8_000)));
    }

    /// A peer answers one ask after another: while it finishes fetches, the session's other
    /// claims last (a new hub that stores large documents slowly asks for none twice), but a
    /// trickle of changes with no fetch finished keeps none of them past its longest time.
    #[test]
    fn a_fetch_that_ends_starts_the_longest_time_of_the_others_again() {
        let t = Timestamp::from_millis;
        let mut f = Fetches::default();
        let (a, b) = (f.enter(), f.enter());
        let pa = PeerId::named("pa");
        let docs: Vec<DocId> = (0..FETCHES_AT_ONCE).map(|n| DocId::from(format!("d{n}").as_str())).collect();
        for d in &docs {
            assert!(f.claim(d, a, &pa, Pace::LAN, t(0)), "{d}");
        }
        // Each document takes 20 s to arrive and be stored, its changes renewing the claims.
        let step = 20_000;
        for (i, d) in docs.iter().enumerate().take(FETCHES_AT_ONCE - 1) {
            let done = (i as i64 + 1) * step;
            for ms in (done - step + 4_000..=done).step_by(4_000) {
                f.progress(a, d, t(ms));
            }
            f.release(d, a, t(done));
            for rest in &docs[i + 1..] {
                assert!(!f.free(rest, b, t(done + 1)), "{rest} waits its turn at {done} ms");
            }
        }
        // The last goes on renewed by a trickle but never finishes: it passes on at its longest
        // time after the last fetch ended.
        let last = &docs[FETCHES_AT_ONCE - 1];
        let ended = (FETCHES_AT_ONCE as i64 - 1) * step;
        for ms in (ended + 4_000..ended + FETCH_MAX_MS).step_by(4_000) {
            f.progress(a, last, t(ms));
        }
        assert!(!f.free(last, b, t(ended + FETCH_MAX_MS - 1)));
        assert!(f.free(last, b, t(ended + FETCH_MAX_MS)));
        // A fetch that ends without changes of its document (the peer says it holds nothing
        // more) starts no other again, and none starts again more often than it can wait its
        // turn: a peer that ends fetch after fetch keeps no claim past that.
        let mut g = Fetches::default();
        let (c, e) = (g.enter(), g.enter());
        let kept = DocId::from("kept");
        let other = |n: usize| DocId::from(format!("o{n}").as_str());
        assert!(g.claim(&kept, c, &pa, Pace::LAN, t(0)));
        assert!(g.claim(&other(0), c, &pa, Pace::LAN, t(0)));
        for ms in (4_000..=28_000).step_by(4_000) {
            g.progress(c, &kept, t(ms));
            if ms == 20_000 {
                g.release(&other(0), c, t(ms));
            }
        }
        assert!(!g.free(&kept, e, t(FETCH_MAX_MS - 1)));
        assert!(g.free(&kept, e, t(FETCH_MAX_MS)), "an empty answer started nothing again");
        let mut g = Fetches::default();
        let (c, e) = (g.enter(), g.enter());
        assert!(g.claim(&kept, c, &pa, Pace::LAN, t(0)));
        let mut now = 0;
        for n in 0..FETCHES_AT_ONCE + 2 {
            assert!(g.claim(&other(n), c, &pa, Pace::LAN, t(now)));
            for _ in 0..5 {
                now += 4_000;
                g.progress(c, &other(n), t(now));
            }
            g.release(&other(n), c, t(now));
        }
        for _ in 0..10 {
            now += 4_000;
            g.progress(c, &kept, t(now));
        }
        let last_restart = (FETCHES_AT_ONCE as i64 - 1) * 20_000;
        assert!(!g.free(&kept, e, t(last_restart + FETCH_MAX_MS - 1)));
        assert!(
            g.free(&kept, e, t(last_restart + FETCH_MAX_MS)),
            "started again at most {} times",
            FETCHES_AT_ONCE - 1
        );
        // A lapsed claim is not revived by another fetch ending.
        let mut g = Fetches::default();
        let (c, e) = (g.enter(), g.enter());
        assert!(g.claim(&docs[0], c, &pa, Pace::LAN, t(0)));
        assert!(g.claim(&docs[1], c, &pa, Pace::LAN, t(0)));
        g.release(&docs[0], c, t(FETCH_LAPSE_MS + 1));
        assert!(g.free(&docs[1], e, t(FETCH_LAPSE_MS + 2)));
    }

    #[test]
    fn liveness_comes_from_the_session() {
        let t0 = Timestamp::from_millis(0);
        let mut s = Session::new(PeerId::named("peer"), t0);
        assert_eq!(s.tick(Timestamp::from_millis(1_000)), Tick::Idle);
        assert_eq!(s.tick(Timestamp::from_millis(PING_AFTER_MS + 1)), Tick::Send(Frame::Ping));
        assert_eq!(s.tick(Timestamp::from_millis(DEAD_AFTER_MS + 1)), Tick::Dead);
        // Over the internet a session pings less often and waits longer for its peer.
        let mut s = Session::new(PeerId::named("peer"), t0).paced(Pace::INTERNET);
        assert_eq!(s.tick(Timestamp::from_millis(DEAD_AFTER_MS + 1)), Tick::Idle);
        let ping = Pace::INTERNET.ping_after_ms + 1;
        assert_eq!(s.tick(Timestamp::from_millis(ping)), Tick::Send(Frame::Ping));
        assert_eq!(s.tick(Timestamp::from_millis(ping + 1)), Tick::Idle, "one ping per silence");
        assert_eq!(s.tick(Timestamp::from_millis(Pace::INTERNET.dead_after_ms + 1)), Tick::Dead);
    }
}
