//! Signed changes, sans-IO: every Automerge change is vouched for by the hub whose key its actor
//! carries, and checked before it is applied.
//!
//! A hub's actor is its Ed25519 public key (32 bytes) then a few bytes of one run; a change made
//! while a person of the coalition is unlocked at the hub has an actor of its own: the hub's
//! key, the person's key, then the run's bytes ([`actor`]). After each commit the hub signs the
//! change's hash together with the document's id ([`signed_bytes`]), the person too where the
//! actor names one ([`person_signed_bytes`]), and keeps the signatures of the latest change of
//! each of its actors: its *tip*. Automerge
//! makes every change of an actor depend, directly or through others, on that actor's previous
//! change, and a change's hash covers its dependencies, so a tip's signature vouches for the whole
//! chain of that actor's changes before it. A sync message or bundle therefore carries one
//! signature per actor in it, not one per change (a few hundred bytes for a thousand edits).
//!
//! [`check`] is the door: the changes of a message that this hub does not hold yet must each be
//! reached, through their dependencies inside the message, from a signed change of the same
//! actor whose signature holds under the actor's key, and that key must be a member's; where the
//! actor names a person, that person's signature must hold as well. Anything else refuses the
//! whole message before any of it is applied: an unsigned change, a signature that does not
//! hold, a change whose actor carries no key, a non-member's key, a change credited to a person
//! without their signature, a second change passed off under a signed actor's name. Whether the
//! person's key is one the coalition gave a person is not the door's question: the entry that
//! gave it may not have arrived yet (authority travels beside the documents), so history tells,
//! as it reads them, which signing keys are people of the coalition. The verdict depends on the message and on what the
//! hub already holds, never on the peer that relayed it, so changes stay verifiable however
//! many hubs relay them.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::hex;
use crate::identity::{verify_strict, HubId, Identity};

/// The bytes of one signature as it travels: the change hash, then the signature. A person's
/// signature travels as a second such item, right after the hub's, with the same hash.
pub const SIG_LEN: usize = 96;
/// The most signature items one sync message or bundle document may carry.
pub const MAX_SIGS: usize = 65_535;
/// The length of a hub's actor: its 32-byte key, then 8 bytes of one run.
pub const ACTOR_LEN: usize = 40;
/// The length of a person's actor at a hub: the hub's key, the person's key, 8 bytes of one
/// run. Any actor of another length is no hub's.
pub const PERSON_ACTOR_LEN: usize = 72;
/// The most verified changes kept waiting for their dependencies, per document.
pub const MAX_WAITING: usize = 200_000;
const DOMAIN: &str = "aidmesh change v1";
const PERSON_DOMAIN: &str = "aidmesh change by person v1";
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// A hub's signature over one change of one document, and the person's where the change's
/// actor names one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChangeSig {
    pub hash: [u8; 32],
    pub sig: [u8; 64],
    pub person: Option<[u8; 64]>,
}

impl ChangeSig {
    /// The signature of `identity` (a hub) over change `hash` of `doc`.
    pub fn sign(identity: &Identity, doc: &str, hash: [u8; 32]) -> ChangeSig {
        ChangeSig { hash, sig: identity.sign(&signed_bytes(doc, &hash)), person: None }
    }

    /// The signatures of a hub and of the person unlocked there over change `hash` of `doc`.
    pub fn sign_by(hub: &Identity, person: &Identity, doc: &str, hash: [u8; 32]) -> ChangeSig {
        ChangeSig { person: Some(person.sign(&person_signed_bytes(doc, &hash))), ..ChangeSig::sign(hub, doc, hash) }
    }

    /// Whether the hub's signature holds under `key` for change `hash` of `doc`.
    pub fn holds(&self, doc: &str, key: &[u8; 32]) -> bool {
        verify_strict(key, &signed_bytes(doc, &self.hash), &self.sig)
    }

    /// Whether the person's signature is there and holds under `key`.
    pub fn person_holds(&self, doc: &str, key: &[u8; 32]) -> bool {
        self.person.is_some_and(|s| verify_strict(key, &person_signed_bytes(doc, &self.hash), &s))
    }

    /// 96 bytes, or 160 with a person's signature (as kept in the store and in bundles).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SIG_LEN + 64);
        out.extend(self.hash);
        out.extend(self.sig);
        out.extend(self.person.iter().flatten());
        out
    }

    /// Reads 96 or 160 bytes; `None` for any other length.
    pub fn from_bytes(b: &[u8]) -> Option<ChangeSig> {
        let person = match b.len() {
            SIG_LEN => None,
            n if n == SIG_LEN + 64 => Some(b[SIG_LEN..].try_into().expect("64 bytes")),
            _ => return None,
        };
        Some(ChangeSig {
            hash: b[..32].try_into().expect("32 bytes"),
            sig: b[32..SIG_LEN].try_into().expect("64 bytes"),
            person,
        })
    }

    /// As a sync frame carries it: one item, or two with a person's signature (the second with
    /// the same hash).
    pub fn items(&self) -> impl Iterator<Item = [u8; SIG_LEN]> + '_ {
        let item = |sig: &[u8; 64]| {
            let mut out = [0u8; SIG_LEN];
            out[..32].copy_from_slice(&self.hash);
            out[32..].copy_from_slice(sig);
            out
        };
        std::iter::once(item(&self.sig)).chain(self.person.as_ref().map(item))
    }

    /// Reads items written by [`ChangeSig::items`]: an item right after one with the same hash is
    /// the person's signature on that change.
    pub fn from_items<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Vec<ChangeSig> {
        let mut out: Vec<ChangeSig> = Vec::new();
        for b in items {
            let Some(s) = ChangeSig::from_bytes(b) else { continue };
            match out.last_mut() {
                Some(last) if last.hash == s.hash && last.person.is_none() => last.person = Some(s.sig),
                _ => out.push(s),
            }
        }
        out
    }

    /// How many frame items this signature takes.
    pub fn item_count(&self) -> usize {
        1 + usize::from(self.person.is_some())
    }
}

/// What a hub signs for one change: the document's id binds the change to it, so that a change
/// signed for one document cannot be replayed into another.
pub fn signed_bytes(doc: &str, hash: &[u8; 32]) -> Vec<u8> {
    format!("{DOMAIN}\n{doc}\n{}", hex::encode(hash)).into_bytes()
}

/// What a person signs for a change made under their actor (which names their hub too).
pub fn person_signed_bytes(doc: &str, hash: &[u8; 32]) -> Vec<u8> {
    format!("{PERSON_DOMAIN}\n{doc}\n{}", hex::encode(hash)).into_bytes()
}

/// The actor a hub writes under in one run (`run`), as `person` where one is unlocked.
pub fn actor(hub: &[u8; 32], person: Option<&[u8; 32]>, run: &[u8; 8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PERSON_ACTOR_LEN);
    out.extend(hub);
    out.extend(person.into_iter().flatten());
    out.extend(run);
    out
}

/// The hub key an actor carries: its first 32 bytes.
pub fn hub_key(actor: &[u8]) -> Option<[u8; 32]> {
    if actor.len() != ACTOR_LEN && actor.len() != PERSON_ACTOR_LEN {
        return None;
    }
    actor.get(..32)?.try_into().ok()
}

/// The person's key a person's actor carries: its second 32 bytes.
pub fn person_key(actor: &[u8]) -> Option<[u8; 32]> {
    (actor.len() == PERSON_ACTOR_LEN).then(|| actor[32..64].try_into().expect("32 bytes"))
}

/// What the door needs of one change: who claims it, its place in the actor's chain, and what
/// it depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeMeta {
    pub hash: [u8; 32],
    pub actor: Vec<u8>,
    pub seq: u64,
    pub deps: Vec<[u8; 32]>,
    /// The change's own bytes, where it came as a change chunk (empty from a whole document).
    pub bytes: Vec<u8>,
}

impl ChangeMeta {
    fn of(c: &automerge::Change, bytes: &[u8]) -> ChangeMeta {
        ChangeMeta {
            hash: c.hash().0,
            actor: c.actor_id().to_bytes().to_vec(),
            seq: c.seq(),
            deps: c.deps().iter().map(|d| d.0).collect(),
            bytes: bytes.to_vec(),
        }
    }
}

/// Why Automerge bytes were not read as changes: what is wrong with them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadBytes {
    #[error("Automerge bytes cut short")]
    Cut,
    #[error("not Automerge bytes (no chunk header)")]
    NoHeader,
    #[error("an Automerge chunk length that does not end")]
    EndlessLength,
    #[error("an Automerge chunk of type {0}, which hubs do not send")]
    Kind(u8),
    #[error("a damaged change: {0}")]
    Change(String),
    #[error("a damaged document: {0}")]
    Document(String),
}

/// The changes in Automerge bytes: change chunks (compressed or not) one after another, as sync
/// messages and incremental saves carry them, or whole saved documents. Anything else, or bytes
/// that are cut short or damaged, is an error that says what is wrong.
pub fn changes_in(bytes: &[u8]) -> Result<Vec<ChangeMeta>, BadBytes> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (chunk, kind, tail) = split_chunk(rest)?;
        rest = tail;
        match kind {
            // A change, or a compressed change.
            1 | 2 => {
                let c = std::panic::catch_unwind(|| automerge::Change::try_from(chunk))
                    .map_err(|_| BadBytes::Change("Automerge cannot read it (it panics)".into()))?
                    .map_err(|e| BadBytes::Change(e.to_string()))?;
                out.push(ChangeMeta::of(&c, chunk));
            }
            // A whole document.
            0 => out.extend(metas_of(&mut load_whole(chunk)?)),
            k => return Err(BadBytes::Kind(k)),
        }
    }
    Ok(out)
}

/// Like [`changes_in`], and when `bytes` are one whole saved document and nothing else (what a
/// hub that holds nothing of a document is sent), that document too, loaded: a hub that takes
/// it as it came loads it once, not once for the door and again to apply it.
pub fn changes_in_keeping(bytes: &[u8]) -> Result<(Vec<ChangeMeta>, Option<automerge::AutoCommit>), BadBytes> {
    match split_chunk(bytes)? {
        (chunk, 0, []) => {
            let mut doc = load_whole(chunk)?;
            Ok((metas_of(&mut doc), Some(doc)))
        }
        _ => Ok((changes_in(bytes)?, None)),
    }
}

/// A whole saved document, every change checked against its hash; one that is cut short or
/// damaged is refused, not loaded in part.
/// Automerge panics on some documents it cannot read (see `aidmesh_replica::rebuilt`): refused
/// as damaged, not taking the hub down.
fn load_whole(chunk: &[u8]) -> Result<automerge::AutoCommit, BadBytes> {
    let loaded = std::panic::catch_unwind(|| {
        automerge::AutoCommit::load_with_options(
            chunk,
            automerge::LoadOptions::new()
                .on_partial_load(automerge::OnPartialLoad::Error)
                .verification_mode(automerge::VerificationMode::Check),
        )
    });
    let loaded = loaded.map_err(|_| BadBytes::Document("Automerge cannot read it (it panics)".into()))?;
    loaded.map_err(|e| BadBytes::Document(e.to_string()))
}

fn metas_of(doc: &mut automerge::AutoCommit) -> Vec<ChangeMeta> {
    doc.get_changes_meta(&[])
        .into_iter()
        .map(|c| ChangeMeta {
            hash: c.hash.0,
            actor: c.actor.to_bytes().to_vec(),
            seq: c.seq,
            deps: c.deps.iter().map(|d| d.0).collect(),
            bytes: Vec::new(),
        })
        .collect()
}

/// The first chunk of `b`: its bytes, its type, and what follows it.
fn split_chunk(b: &[u8]) -> Result<(&[u8], u8, &[u8]), BadBytes> {
    if b.get(..4).ok_or(BadBytes::Cut)? != MAGIC {
        return Err(BadBytes::NoHeader);
    }
    let kind = *b.get(8).ok_or(BadBytes::Cut)?;
    let (mut len, mut shift, mut at) = (0u64, 0u32, 9usize);
    loop {
        let byte = *b.get(at).ok_or(BadBytes::Cut)?;
        at += 1;
        len |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 56 {
            return Err(BadBytes::EndlessLength);
        }
    }
    let end =
        usize::try_from(len).ok().and_then(|l| at.checked_add(l)).filter(|e| *e <= b.len()).ok_or(BadBytes::Cut)?;
    Ok((&b[..end], kind, &b[end..]))
}

/// Why changes were refused at the door.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("change {hash} names no hub key as its actor (a hub's key and 8 bytes)")]
    NoKey { hash: String },
    #[error("change {hash} carries a signature that does not hold for hub {hub}")]
    BadSignature { hash: String, hub: String },
    #[error("change {hash} is signed by hub {hub}, which is not a member of this coalition")]
    NotMember { hash: String, hub: String },
    #[error("change {hash}, which claims hub {hub}, is not signed by that hub")]
    Unsigned { hash: String, hub: String },
    #[error("change {hash} of hub {hub}, which claims person {person}, is not signed by that person")]
    PersonUnsigned { hash: String, hub: String, person: String },
    #[error("change {hash} of hub {hub} carries a person's signature, but its actor names no person")]
    StrayPersonSignature { hash: String, hub: String },
    #[error("more than {MAX_SIGS} signatures")]
    TooMany,
    #[error("hub {hub} made two different changes numbered {seq} (a hub misbehaving, or its key copied): revoke it")]
    TwoChanges { hub: String, seq: u64 },
}

/// The hub whose key an actor carries, if it is a hub's actor.
pub fn hub_id(actor: &[u8]) -> Option<HubId> {
    hub_key(actor).and_then(|k| HubId::of_bytes(&k))
}

/// The hub id of the key an actor carries, for messages.
pub fn hub_name(actor: &[u8]) -> String {
    hub_id(actor).map(|h| h.to_string()).unwrap_or_else(|| "(none)".into())
}

/// The start of the person's key a person's actor carries, for messages.
pub fn person_name(actor: &[u8]) -> Option<String> {
    person_key(actor).map(|k| hex::encode(&k[..8]))
}

/// The latest signed change of one actor that a check vouched for: what a hub keeps to pass on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tip {
    pub actor: Vec<u8>,
    pub seq: u64,
    pub sig: ChangeSig,
}

/// A signed change that waits here for a change it depends on, kept with its bytes and those of
/// its actor's waiting changes before it (`change`, oldest first): its signature vouches for the
/// changes of its actor before it that this hub holds, so when those are passed on, it goes with
/// them (the peer keeps it waiting in turn).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Voucher {
    pub actor: Vec<u8>,
    pub seq: u64,
    pub sig: ChangeSig,
    pub change: Vec<u8>,
}

/// Changes that passed the door but wait for dependencies this hub lacks (they came before what
/// they build on, as a sync with a false positive in a Bloom filter or a bundle may bring them),
/// with the signatures that vouched for them: a later message that brings the missing changes
/// is checked against them too.
#[derive(Debug, Default)]
pub struct Waiting {
    changes: HashMap<[u8; 32], (ChangeMeta, Option<ChangeSig>)>,
}

impl Waiting {
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The signed changes that still wait, with their bytes: what vouches for the held changes
    /// of their actors before them ([`Voucher`]).
    pub fn vouchers(&self) -> Vec<Voucher> {
        let mut out = Vec::new();
        for (m, sig) in self.changes.values() {
            let Some(sig) = *sig else { continue };
            // The signed change and the actor's waiting changes before it, oldest first: the
            // peer walks down through them to the held ones.
            let mut chain = vec![m];
            while let Some(prev) = chain.last().and_then(|c| {
                c.deps.iter().find_map(|d| {
                    self.changes
                        .get(d)
                        .map(|w| &w.0)
                        .filter(|p| p.actor == c.actor && p.seq.checked_add(1) == Some(c.seq))
                })
            }) {
                chain.push(prev);
            }
            if chain.iter().any(|c| c.bytes.is_empty()) {
                continue;
            }
            let change = chain.iter().rev().flat_map(|c| c.bytes.iter().copied()).collect();
            out.push(Voucher { actor: m.actor.clone(), seq: m.seq, sig, change });
        }
        out
    }

    /// Forgets the changes that are held now, returning the signed ones among them as tips.
    pub fn settle(&mut self, mut held: impl FnMut(&[u8; 32]) -> bool) -> Vec<Tip> {
        let mut tips = Vec::new();
        self.changes.retain(|h, (meta, sig)| {
            if !held(h) {
                return true;
            }
            if let Some(sig) = sig {
                tips.push(Tip { actor: meta.actor.clone(), seq: meta.seq, sig: *sig });
            }
            false
        });
        latest(tips)
    }
}

/// The latest tip of each actor among `tips`.
fn latest(tips: Vec<Tip>) -> Vec<Tip> {
    let mut by_actor: BTreeMap<Vec<u8>, Tip> = BTreeMap::new();
    for t in tips {
        match by_actor.get(&t.actor) {
            Some(old) if old.seq >= t.seq => {}
            _ => {
                by_actor.insert(t.actor.clone(), t);
            }
        }
    }
    by_actor.into_values().collect()
}

/// Checks the changes of one message (or bundle document) for `doc` at the door. `changes` are
/// the message's changes ([`changes_in`]), `sigs` the signatures that came with it, `held`
/// tells which changes this hub holds already, `kept_seq` the sequence number of the latest
/// signed change this hub holds of an actor, `member` whether a hub key belongs to the
/// coalition. On success the changes new here are remembered in `waiting` until they are held
/// ([`Waiting::settle`] then gives their tips). Nothing is remembered on a refusal.
///
/// The cost is linear: for each actor, one signature is checked (on its latest change here) and
/// its chain is followed down through the previous change of the same actor, which Automerge
/// always lists among a change's dependencies.
pub fn check(
    doc: &str,
    changes: Vec<ChangeMeta>,
    sigs: &[ChangeSig],
    mut held: impl FnMut(&[u8; 32]) -> bool,
    mut kept_seq: impl FnMut(&[u8]) -> Option<u64>,
    member: impl Fn(&[u8; 32]) -> bool,
    waiting: &mut Waiting,
) -> Result<(), Refused> {
    if sigs.len() > MAX_SIGS {
        return Err(Refused::TooMany);
    }
    let short = |h: &[u8; 32]| hex::encode(&h[..8]);
    // The changes new here.
    let mut new: HashMap<[u8; 32], ChangeMeta> = HashMap::new();
    for c in changes {
        if !waiting.changes.contains_key(&c.hash) && !new.contains_key(&c.hash) && !held(&c.hash) {
            new.insert(c.hash, c);
        }
    }
    if new.is_empty() {
        return Ok(());
    }
    // One graph with the changes that passed earlier and still wait.
    let meta = |h: &[u8; 32]| new.get(h).or_else(|| waiting.changes.get(h).map(|w| &w.0));
    // For each actor, its latest signed change in the graph: one signature checked per actor.
    let mut latest: HashMap<&[u8], (u64, ChangeSig, bool)> = HashMap::new();
    // Another signature on another change under the same latest number: checked below.
    let mut rivals: HashMap<&[u8], ChangeSig> = HashMap::new();
    for (m, sig, checked) in sigs
        .iter()
        .filter_map(|s| meta(&s.hash).map(|m| (m, *s, false)))
        .chain(waiting.changes.values().filter_map(|(m, s)| s.map(|s| (m, s, true))))
    {
        match latest.get(m.actor.as_slice()) {
            Some((seq, kept, _)) if *seq == m.seq && kept.hash != sig.hash => {
                rivals.insert(&m.actor, sig);
            }
            Some((seq, ..)) if *seq >= m.seq => {}
            _ => {
                rivals.remove(m.actor.as_slice());
                latest.insert(&m.actor, (m.seq, sig, checked));
            }
        }
    }
    let mut covered: HashSet<[u8; 32]> = HashSet::new();
    let mut signed: Vec<ChangeSig> = Vec::new();
    for (actor, (_, sig, checked)) in &latest {
        let hub = hub_name(actor);
        let key = hub_key(actor).ok_or_else(|| Refused::NoKey { hash: short(&sig.hash) })?;
        if !checked {
            if !sig.holds(doc, &key) {
                return Err(Refused::BadSignature { hash: short(&sig.hash), hub });
            }
            if !member(&key) {
                return Err(Refused::NotMember { hash: short(&sig.hash), hub });
            }
            match (person_key(actor), sig.person) {
                (None, None) => {}
                (None, Some(_)) => return Err(Refused::StrayPersonSignature { hash: short(&sig.hash), hub }),
                (Some(p), _) if !sig.person_holds(doc, &p) => {
                    return Err(Refused::PersonUnsigned { hash: short(&sig.hash), hub, person: hex::encode(&p[..8]) });
                }
                (Some(_), _) => {}
            }
            signed.push(*sig);
        }
        // Two changes under its latest number, each with a signature of its own that holds.
        if let Some(r) = rivals.get(actor).filter(|r| r.holds(doc, &key)) {
            return Err(Refused::TwoChanges { hub, seq: meta(&r.hash).map(|m| m.seq).unwrap_or_default() });
        }
        // Down the actor's chain, through each change's previous one.
        let mut at = sig.hash;
        while let Some(m) = meta(&at) {
            covered.insert(at);
            match m
                .deps
                .iter()
                .find(|d| meta(d).is_some_and(|p| p.actor == m.actor && p.seq.checked_add(1) == Some(m.seq)))
            {
                Some(prev) => at = *prev,
                None => break,
            }
        }
    }
    if let Some((h, m)) = new.iter().find(|(h, _)| !covered.contains(*h)) {
        return Err(match hub_key(&m.actor) {
            None => Refused::NoKey { hash: short(h) },
            Some(_) => Refused::Unsigned { hash: short(h), hub: hub_name(&m.actor) },
        });
    }
    // Two changes of one actor under one number, both signed by its hub: that hub equivocates
    // (or its key was copied). Checked on vouched-for changes only, so that no one can make an
    // honest hub look like it.
    let mut numbered: HashMap<(&[u8], u64), [u8; 32]> = HashMap::new();
    for (h, m) in new.iter().chain(waiting.changes.iter().map(|(h, w)| (h, &w.0))) {
        if numbered.insert((&m.actor, m.seq), *h).is_some_and(|other| other != *h) {
            return Err(Refused::TwoChanges { hub: hub_name(&m.actor), seq: m.seq });
        }
    }
    for m in new.values() {
        if kept_seq(&m.actor).is_some_and(|kept| kept >= m.seq) {
            return Err(Refused::TwoChanges { hub: hub_name(&m.actor), seq: m.seq });
        }
    }
    if waiting.changes.len() + new.len() > MAX_WAITING {
        // Too much waits: forget it; those changes come again, with their tips, from a hub that
        // holds what they depend on.
        waiting.changes.clear();
    }
    for (h, m) in new {
        waiting.changes.insert(h, (m, None));
    }
    for s in signed {
        if let Some(w) = waiting.changes.get_mut(&s.hash) {
            w.1 = Some(s);
        }
    }
    Ok(())
}

/// What a sender knows of one document, to vouch for a message it generated
/// ([`vouch_message`]).
pub trait Vouching {
    /// Each actor's latest change held in the document: (actor, seq, hash).
    fn doc_tips(&mut self) -> Vec<(Vec<u8>, u64, [u8; 32])>;
    /// Every change held in the document, as change chunks one after another.
    fn doc_changes(&mut self) -> Vec<u8>;
    /// How to vouch for each of these latest changes of their actors ([`vouch_for`]).
    fn vouch(&mut self, latest: Vec<(Vec<u8>, u64, [u8; 32])>) -> Vec<Vouch>;
}

/// A sender's side of the door: the signatures for a message it generated, one per actor in
/// it. A whole document goes without the changes that wait in it; one that holds changes only a
/// voucher vouches for goes as its changes instead, and vouchers go with the changes they vouch
/// for. Returns the signatures and how many changes no signature here vouches for (the peer
/// refuses those).
pub fn vouch_message(
    msg: &mut automerge::sync::Message,
    v: &mut impl Vouching,
) -> Result<(Vec<ChangeSig>, usize), BadBytes> {
    let latest = match carried(msg)? {
        Carried::Changes(latest) => latest,
        Carried::Document => {
            drop_orphans(msg)?;
            let latest = v.doc_tips();
            let vouches = v.vouch(latest.clone());
            if vouches.iter().all(|x| matches!(x, Vouch::Tip(..))) && vouches.len() == latest.len() {
                return Ok((vouches.into_iter().map(|x| x.sig()).collect(), 0));
            }
            msg.changes = v.doc_changes().into();
            latest
        }
    };
    let n = latest.len();
    let mut sigs = Vec::new();
    let mut extra = Vec::new();
    let mut unvouched = n;
    for x in v.vouch(latest) {
        if !matches!(x, Vouch::Stale(_)) {
            unvouched -= 1;
        }
        sigs.push(x.sig());
        if let Vouch::Voucher(_, change) = x {
            extra.push(change);
        }
    }
    if !extra.is_empty() {
        let mut all: Vec<Vec<u8>> = msg.changes.iter().map(<[u8]>::to_vec).collect();
        match msg.version {
            automerge::sync::MessageVersion::V1 => all.extend(extra),
            _ => all = vec![[all.concat(), extra.concat()].concat()],
        }
        msg.changes = all.into();
    }
    Ok((sigs, unvouched))
}

impl Vouch {
    pub fn sig(&self) -> ChangeSig {
        match self {
            Vouch::Tip(s, _) | Vouch::Voucher(s, _) | Vouch::Stale(s) => *s,
        }
    }
}

/// Keeps only the whole document of a message that carries one, leaving out the changes
/// Automerge saves after it that still wait for what they depend on (this hub cannot vouch for
/// them, and the peer cannot apply them).
pub fn drop_orphans(msg: &mut automerge::sync::Message) -> Result<(), BadBytes> {
    let first = msg.changes.iter().next().map(<[u8]>::to_vec);
    if let Some(bytes) = first {
        let (chunk, kind, tail) = split_chunk(&bytes)?;
        if kind == 0 && (!tail.is_empty() || msg.changes.len() > 1) {
            msg.changes = chunk.to_vec().into();
        }
    }
    Ok(())
}

/// What a sync message carries, for its sender to vouch for.
#[derive(Debug, PartialEq, Eq)]
pub enum Carried {
    /// Changes: each actor's latest among them (actor, seq, hash).
    Changes(Vec<(Vec<u8>, u64, [u8; 32])>),
    /// A whole document: every actor's latest change in it.
    Document,
}

/// What `msg`'s changes are, read from their chunk headers (a whole document is not loaded).
pub fn carried(msg: &automerge::sync::Message) -> Result<Carried, BadBytes> {
    let mut metas = Vec::new();
    for bytes in msg.changes.iter() {
        let mut rest = bytes;
        while !rest.is_empty() {
            let (chunk, kind, tail) = split_chunk(rest)?;
            rest = tail;
            if kind == 0 {
                return Ok(Carried::Document);
            }
            metas.extend(changes_in(chunk)?);
        }
    }
    Ok(Carried::Changes(actor_tips(&metas)))
}

/// How a sender vouches for `actor`'s latest change `(seq, hash)` in a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Vouch {
    /// With the tip it keeps (as late), or, for an actor of its own (a change made before changes
    /// were signed), with a new signature: the new tip to keep, if any.
    Tip(ChangeSig, Option<Tip>),
    /// With a voucher: its signature, and its change, which goes with the message.
    Voucher(ChangeSig, Vec<u8>),
    /// With the latest tip it keeps, which is not as late: the receiver will refuse the changes
    /// after it (changes from before signing, of another hub).
    Stale(ChangeSig),
}

/// How to vouch for `actor`'s latest change `(seq, hash)` in a message; `None` if nothing can.
pub fn vouch_for(
    doc: &str,
    actor: &[u8],
    seq: u64,
    hash: [u8; 32],
    kept: Option<&Tip>,
    voucher: Option<&Voucher>,
    own: &Identity,
) -> Option<Vouch> {
    match (kept, voucher) {
        (Some(t), _) if t.seq >= seq => Some(Vouch::Tip(t.sig, None)),
        // A person's actor is signed as its change is committed; a hub cannot sign for the
        // person later.
        _ if actor.len() == ACTOR_LEN && hub_key(actor) == Some(*own.public().as_bytes()) => {
            let sig = ChangeSig::sign(own, doc, hash);
            Some(Vouch::Tip(sig, Some(Tip { actor: actor.to_vec(), seq, sig })))
        }
        (_, Some(v)) if v.seq >= seq => Some(Vouch::Voucher(v.sig, v.change.clone())),
        (kept, _) => kept.map(|t| Vouch::Stale(t.sig)),
    }
}

/// For each actor among `changes`, its change with the highest sequence number: the tips a
/// sender must vouch for.
pub fn actor_tips(changes: &[ChangeMeta]) -> Vec<(Vec<u8>, u64, [u8; 32])> {
    let mut by_actor: BTreeMap<&[u8], (u64, [u8; 32])> = BTreeMap::new();
    for c in changes {
        let e = by_actor.entry(&c.actor).or_insert((c.seq, c.hash));
        if c.seq > e.0 {
            *e = (c.seq, c.hash);
        }
    }
    by_actor.into_iter().map(|(a, (s, h))| (a.to_vec(), s, h)).collect()
}

#[cfg(test)]
mod tests;
