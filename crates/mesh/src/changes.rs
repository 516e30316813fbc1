//! Signed changes, sans-IO: every Automerge change is vouched for by the hub whose key its actor
//! carries, and checked before it is applied.
//!
//! A hub's actor is its Ed25519 public key (32 bytes) then a few bytes of one run. After each
//! commit the hub signs the change's hash together with the document's id ([`signed_bytes`]),
//! and keeps the signature of the latest change of each of its actors: its *tip*. Automerge
//! makes every change of an actor depend, directly or through others, on that actor's previous
//! change, and a change's hash covers its dependencies, so a tip's signature vouches for the whole
//! chain of that actor's changes before it. A sync message or bundle therefore carries one
//! signature per actor in it, not one per change (a few hundred bytes for a thousand edits).
//!
//! [`check`] is the door: the changes of a message that this hub does not hold yet must each be
//! reached, through their dependencies inside the message, from a signed change of the same
//! actor whose signature holds under the actor's key, and that key must be a member's. Anything
//! else refuses the whole message before any of it is applied: an unsigned change, a signature
//! that does not hold, a change whose actor carries no key, a non-member's key, a second change
//! passed off under a signed actor's name. The verdict depends on the message and on what the
//! hub already holds, never on the peer that relayed it, so changes stay verifiable however
//! many hubs relay them.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::identity::{verify_strict, HubId, Identity};
use crate::membership::hex;

/// The bytes of one signature as it travels: the change hash, then the signature.
pub const SIG_LEN: usize = 96;
/// The most signatures one sync message or bundle document may carry.
pub const MAX_SIGS: usize = 65_535;
/// The most verified changes kept waiting for their dependencies, per document.
pub const MAX_WAITING: usize = 200_000;
const DOMAIN: &str = "aidmesh change v1";
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// A hub's signature over one change of one document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChangeSig {
    pub hash: [u8; 32],
    pub sig: [u8; 64],
}

impl ChangeSig {
    /// The signature of `identity` over change `hash` of `doc`.
    pub fn sign(identity: &Identity, doc: &str, hash: [u8; 32]) -> ChangeSig {
        ChangeSig { hash, sig: identity.sign(&signed_bytes(doc, &hash)) }
    }

    /// Whether the signature holds under `key` for change `hash` of `doc`.
    pub fn holds(&self, doc: &str, key: &[u8; 32]) -> bool {
        verify_strict(key, &signed_bytes(doc, &self.hash), &self.sig)
    }

    pub fn to_bytes(&self) -> [u8; SIG_LEN] {
        let mut out = [0u8; SIG_LEN];
        out[..32].copy_from_slice(&self.hash);
        out[32..].copy_from_slice(&self.sig);
        out
    }

    /// Reads 96 bytes; `None` for any other length.
    pub fn from_bytes(b: &[u8]) -> Option<ChangeSig> {
        (b.len() == SIG_LEN).then(|| ChangeSig {
            hash: b[..32].try_into().expect("32 bytes"),
            sig: b[32..].try_into().expect("64 bytes"),
        })
    }
}

/// What a hub signs for one change: the document's id binds the change to it, so that a change
/// signed for one document cannot be replayed into another.
pub fn signed_bytes(doc: &str, hash: &[u8; 32]) -> Vec<u8> {
    format!("{DOMAIN}\n{doc}\n{}", hex(hash)).into_bytes()
}

/// The hub key an actor carries: its first 32 bytes.
pub fn hub_key(actor: &[u8]) -> Option<[u8; 32]> {
    actor.get(..32)?.try_into().ok()
}

/// What the door needs of one change: who claims it, its place in the actor's chain, and what
/// it depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeMeta {
    pub hash: [u8; 32],
    pub actor: Vec<u8>,
    pub seq: u64,
    pub deps: Vec<[u8; 32]>,
}

impl ChangeMeta {
    fn of(c: &automerge::Change) -> ChangeMeta {
        ChangeMeta {
            hash: c.hash().0,
            actor: c.actor_id().to_bytes().to_vec(),
            seq: c.seq(),
            deps: c.deps().iter().map(|d| d.0).collect(),
        }
    }
}

/// The changes in Automerge bytes: change chunks (compressed or not) one after another, as sync
/// messages and incremental saves carry them, or whole saved documents. Anything else, or bytes
/// that are cut short or damaged, is an error that says what is wrong.
pub fn changes_in(bytes: &[u8]) -> Result<Vec<ChangeMeta>, String> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (chunk, kind, tail) = split_chunk(rest)?;
        rest = tail;
        match kind {
            // A change, or a compressed change.
            1 | 2 => {
                let c = automerge::Change::try_from(chunk).map_err(|e| format!("a damaged change: {e}"))?;
                out.push(ChangeMeta::of(&c));
            }
            // A whole document.
            0 => {
                let doc = automerge::Automerge::load_with_options(
                    chunk,
                    automerge::LoadOptions::new()
                        .on_partial_load(automerge::OnPartialLoad::Error)
                        .verification_mode(automerge::VerificationMode::Check),
                )
                .map_err(|e| format!("a damaged document: {e}"))?;
                out.extend(doc.get_changes_meta(&[]).into_iter().map(|c| ChangeMeta {
                    hash: c.hash.0,
                    actor: c.actor.to_bytes().to_vec(),
                    seq: c.seq,
                    deps: c.deps.iter().map(|d| d.0).collect(),
                }));
            }
            k => return Err(format!("an Automerge chunk of type {k}, which hubs do not send")),
        }
    }
    Ok(out)
}

/// The first chunk of `b`: its bytes, its type, and what follows it.
fn split_chunk(b: &[u8]) -> Result<(&[u8], u8, &[u8]), String> {
    let cut = || "Automerge bytes cut short".to_string();
    if b.get(..4).ok_or_else(cut)? != MAGIC {
        return Err("not Automerge bytes (no chunk header)".into());
    }
    let kind = *b.get(8).ok_or_else(cut)?;
    let (mut len, mut shift, mut at) = (0u64, 0u32, 9usize);
    loop {
        let byte = *b.get(at).ok_or_else(cut)?;
        at += 1;
        len |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 56 {
            return Err("an Automerge chunk length that does not end".into());
        }
    }
    let end = usize::try_from(len).ok().and_then(|l| at.checked_add(l)).filter(|e| *e <= b.len()).ok_or_else(cut)?;
    Ok((&b[..end], kind, &b[end..]))
}

/// Why changes were refused at the door.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("change {hash} names no hub key as its actor")]
    NoKey { hash: String },
    #[error("change {hash} carries a signature that does not hold for hub {hub}")]
    BadSignature { hash: String, hub: String },
    #[error("change {hash} is signed by hub {hub}, which is not a member of this coalition")]
    NotMember { hash: String, hub: String },
    #[error("change {hash}, which claims hub {hub}, is not signed by that hub")]
    Unsigned { hash: String, hub: String },
    #[error("more than {MAX_SIGS} signatures")]
    TooMany,
}

/// The hub id of the key an actor carries, for messages.
pub fn hub_name(actor: &[u8]) -> String {
    hub_key(actor).and_then(|k| HubId::of_bytes(&k)).map(|h| h.to_string()).unwrap_or_else(|| "(none)".into())
}

/// The latest signed change of one actor that a check vouched for: what a hub keeps to pass on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tip {
    pub actor: Vec<u8>,
    pub seq: u64,
    pub sig: ChangeSig,
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
/// tells which changes this hub holds already, `member` whether a hub key belongs to the
/// coalition. On success the changes new here are remembered in `waiting` until they are held
/// ([`Waiting::settle`] then gives their tips). Nothing is remembered on a refusal.
pub fn check(
    doc: &str,
    changes: Vec<ChangeMeta>,
    sigs: &[ChangeSig],
    mut held: impl FnMut(&[u8; 32]) -> bool,
    member: impl Fn(&[u8; 32]) -> bool,
    waiting: &mut Waiting,
) -> Result<(), Refused> {
    if sigs.len() > MAX_SIGS {
        return Err(Refused::TooMany);
    }
    // The changes new here, and those that passed earlier and still wait: one graph.
    let mut graph: HashMap<[u8; 32], (ChangeMeta, Option<ChangeSig>)> = HashMap::new();
    for c in changes {
        if !held(&c.hash) && !waiting.changes.contains_key(&c.hash) {
            graph.entry(c.hash).or_insert((c, None));
        }
    }
    if graph.is_empty() {
        return Ok(());
    }
    let new: Vec<[u8; 32]> = graph.keys().copied().collect();
    for (h, w) in &waiting.changes {
        graph.entry(*h).or_insert_with(|| w.clone());
    }
    let short = |h: &[u8; 32]| hex(&h[..8]);
    // Every signature on a change in the graph must hold, under a member's key.
    for s in sigs {
        let Some((meta, sig)) = graph.get_mut(&s.hash) else { continue };
        let hub = hub_name(&meta.actor);
        let key = hub_key(&meta.actor).ok_or_else(|| Refused::NoKey { hash: short(&s.hash) })?;
        if !s.holds(doc, &key) {
            return Err(Refused::BadSignature { hash: short(&s.hash), hub });
        }
        if !member(&key) {
            return Err(Refused::NotMember { hash: short(&s.hash), hub });
        }
        *sig = Some(*s);
    }
    // Each signed change vouches for its own actor's changes in its past.
    let mut covered: HashSet<[u8; 32]> = HashSet::new();
    for (start, (meta, _)) in graph.iter().filter(|(_, (_, s))| s.is_some()) {
        let mut seen: HashSet<[u8; 32]> = HashSet::new();
        let mut stack = vec![*start];
        while let Some(h) = stack.pop() {
            if !seen.insert(h) {
                continue;
            }
            let Some((m, _)) = graph.get(&h) else { continue };
            if m.actor == meta.actor {
                covered.insert(h);
            }
            stack.extend(m.deps.iter().filter(|d| !seen.contains(*d)));
        }
    }
    if let Some(h) = new.iter().find(|h| !covered.contains(*h)) {
        let meta = &graph[h].0;
        let hub = hub_name(&meta.actor);
        return Err(match hub_key(&meta.actor) {
            None => Refused::NoKey { hash: short(h) },
            Some(_) => Refused::Unsigned { hash: short(h), hub },
        });
    }
    if waiting.changes.len() + new.len() > MAX_WAITING {
        // Too much waits: forget it; those changes come again, with their tips, from a hub that
        // holds what they depend on.
        waiting.changes.clear();
    }
    for h in new {
        if let Some(entry) = graph.remove(&h) {
            waiting.changes.insert(h, entry);
        }
    }
    for (h, (_, sig)) in graph {
        if let (Some(s), Some(w)) = (sig, waiting.changes.get_mut(&h)) {
            w.1 = Some(s);
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
pub fn carried(msg: &automerge::sync::Message) -> Result<Carried, String> {
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

/// The signature a sender attaches for `actor`'s latest change `(seq, hash)` in a message: the
/// tip it keeps, if that tip is as late; else, for an actor of its own (a change made before
/// changes were signed), a new signature, returned as a tip to keep. `None` if neither: the
/// receiver will refuse those changes, as it should.
pub fn vouch_for(
    doc: &str,
    actor: &[u8],
    seq: u64,
    hash: [u8; 32],
    kept: Option<&Tip>,
    own: &Identity,
) -> Option<(ChangeSig, Option<Tip>)> {
    match kept {
        Some(t) if t.seq >= seq => Some((t.sig, None)),
        _ if hub_key(actor) == Some(*own.public().as_bytes()) => {
            let sig = ChangeSig::sign(own, doc, hash);
            Some((sig, Some(Tip { actor: actor.to_vec(), seq, sig })))
        }
        kept => kept.map(|t| (t.sig, None)),
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
