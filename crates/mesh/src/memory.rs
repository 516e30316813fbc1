//! An in-memory replica of bare Automerge documents, and a network that runs sessions between
//! such replicas until quiet: for measuring the sync protocol and for tests of the layer above.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use aidmesh_model::Timestamp;
use automerge::sync::{Message, State, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ROOT};

use crate::changes::{self, ChangeMeta, ChangeSig, Tip, Voucher, Waiting};
use crate::identity::Identity;
use crate::session::{DocId, DocInfo, Frame, PeerId, Replica, Session, VaultItem};

pub struct Mem {
    pub docs: BTreeMap<DocId, AutoCommit>,
    pub states: BTreeMap<(PeerId, DocId), Vec<u8>>,
    /// The authority log, which travels beside the documents.
    pub log: crate::authority::Log,
    actor: Vec<u8>,
    /// Set for a replica that signs its changes and checks those it receives, as hubs do.
    signing: Option<Signing>,
    /// Where member hubs can be reached, as a signing replica keeps it (members only).
    pub whereabouts: crate::whereabouts::Table,
    /// Whereabouts taken since the driver last asked.
    pub whereabouts_changes: Vec<crate::whereabouts::Whereabouts>,
    /// Each document's heads (their digest) as the network driver was last told them
    /// ([`crate::net::Hub::take_changed`]).
    told: BTreeMap<DocId, String>,
    /// Set to have reading the authority log fail, as a store gone bad does.
    pub log_unreadable: bool,
}

/// What a signing replica keeps: its key, the members' keys, and the tips it vouches with.
struct Signing {
    identity: Identity,
    /// The person it writes as, where it writes as one ([`Mem::signed_by`]).
    person: Option<Identity>,
    members: HashSet<[u8; 32]>,
    tips: BTreeMap<(DocId, Vec<u8>), Tip>,
    vouchers: BTreeMap<(DocId, Vec<u8>), Voucher>,
    waiting: BTreeMap<DocId, Waiting>,
}

impl Mem {
    /// A replica that neither signs nor checks changes: the bare sync protocol.
    pub fn new(actor: u8) -> Mem {
        Mem {
            docs: BTreeMap::new(),
            states: BTreeMap::new(),
            log: Default::default(),
            actor: vec![actor; 16],
            signing: None,
            whereabouts: Default::default(),
            whereabouts_changes: Vec::new(),
            told: BTreeMap::new(),
            log_unreadable: false,
        }
    }

    /// A replica with a hub's actor (its key, then 8 bytes) that neither signs nor checks: how
    /// hubs synced before changes were signed, to compare with [`Mem::signed`].
    pub fn unsigned(identity: &Identity) -> Mem {
        let mut actor = identity.public().as_bytes().to_vec();
        actor.extend([0; 8]);
        Mem { actor, ..Mem::new(0) }
    }

    /// A replica that signs each change as a hub does and checks every change it receives
    /// against the members it was told of ([`Mem::admit`]; itself included).
    pub fn signed(identity: Identity) -> Mem {
        let actor = Mem::unsigned(&identity).actor;
        let members = [*identity.public().as_bytes()].into();
        let signing = Signing {
            identity,
            person: None,
            members,
            tips: BTreeMap::new(),
            vouchers: BTreeMap::new(),
            waiting: BTreeMap::new(),
        };
        Mem { actor, signing: Some(signing), ..Mem::new(0) }
    }

    /// [`Mem::signed`], writing as `person` unlocked at the hub: under an actor that names them,
    /// each change signed by both, as a hub does.
    pub fn signed_by(identity: Identity, person: Identity) -> Mem {
        let actor = changes::actor(identity.public().as_bytes(), Some(person.public().as_bytes()), &[0; 8]);
        let mut m = Mem::signed(identity);
        if let Some(s) = &mut m.signing {
            s.person = Some(person);
        }
        Mem { actor, ..m }
    }

    /// Takes `key` as a member's: its signed changes are accepted.
    pub fn admit(&mut self, key: [u8; 32]) {
        if let Some(s) = &mut self.signing {
            s.members.insert(key);
        }
    }

    /// Says where this (signing) replica's hub can be reached, as version `version`.
    pub fn say_whereabouts(&mut self, version: u64, relay: Option<&str>, direct: &[std::net::SocketAddr]) {
        let s = self.signing.as_ref().expect("a signing replica");
        let w = crate::whereabouts::Whereabouts::new(&s.identity, version, relay.map(str::to_string), direct);
        let key = *s.identity.public().as_bytes();
        let taken = self.whereabouts.merge(vec![w], |_| Some(key)).taken;
        self.whereabouts_changes.extend(taken);
    }

    /// Takes a copy of a document made elsewhere, writing to it as this replica's actor.
    pub fn put_doc(&mut self, id: &str, doc: &mut AutoCommit) {
        self.docs.insert(DocId::from(id), doc.fork().with_actor(ActorId::from(self.actor.clone())));
    }

    pub fn doc(&mut self, id: &str) -> &mut AutoCommit {
        let actor = self.actor.clone();
        self.docs.entry(DocId::from(id)).or_insert_with(|| AutoCommit::new().with_actor(ActorId::from(actor)))
    }

    /// One edit: a small record-like map put, one commit (signed, for a signing replica).
    pub fn edit(&mut self, doc: &str, n: u64) -> usize {
        let d = self.doc(doc);
        let obj = d.put_object(ROOT, format!("r{n}-{}", d.get_actor()), automerge::ObjType::Map).unwrap();
        d.put(&obj, "name", format!("item {n}")).unwrap();
        d.put(&obj, "quantity", n as i64).unwrap();
        let hash = d.commit();
        let (size, seq) = d.get_last_local_change().map(|c| (c.raw_bytes().len(), c.seq())).unwrap_or_default();
        if let (Some(s), Some(h)) = (&mut self.signing, hash) {
            let sig = match &s.person {
                Some(p) => ChangeSig::sign_by(&s.identity, p, doc, h.0),
                None => ChangeSig::sign(&s.identity, doc, h.0),
            };
            s.tips.insert((DocId::from(doc), self.actor.clone()), Tip { actor: self.actor.clone(), seq, sig });
        }
        size
    }
}

/// A signing replica's side of [`changes::vouch_message`] for one document.
struct MemVouching<'a> {
    mem: &'a mut Mem,
    doc: &'a str,
}

impl changes::Vouching for MemVouching<'_> {
    fn doc_tips(&mut self) -> Vec<(Vec<u8>, u64, [u8; 32])> {
        let metas: Vec<ChangeMeta> = self
            .mem
            .doc(self.doc)
            .get_changes_meta(&[])
            .into_iter()
            .map(|c| ChangeMeta {
                hash: c.hash.0,
                actor: c.actor.to_bytes().to_vec(),
                seq: c.seq,
                deps: vec![],
                bytes: vec![],
            })
            .collect();
        changes::actor_tips(&metas)
    }
    fn doc_changes(&mut self) -> Vec<u8> {
        self.mem.doc(self.doc).save_after(&[])
    }
    fn vouch(&mut self, latest: Vec<(Vec<u8>, u64, [u8; 32])>) -> Vec<changes::Vouch> {
        let s = self.mem.signing.as_mut().expect("a signing replica");
        let mut out = Vec::new();
        for (actor, seq, hash) in latest {
            let key = (DocId::from(self.doc), actor.clone());
            let (kept, voucher) = (s.tips.get(&key), s.vouchers.get(&key));
            if let Some(v) = changes::vouch_for(self.doc, &actor, seq, hash, kept, voucher, &s.identity) {
                if let changes::Vouch::Tip(_, Some(t)) = &v {
                    s.tips.insert(key, t.clone());
                }
                out.push(v);
            }
        }
        out
    }
}

/// Why the in-memory replica refused what a peer sent.
#[derive(Debug, thiserror::Error)]
pub enum MemRefused {
    #[error(transparent)]
    Bytes(#[from] changes::BadBytes),
    #[error(transparent)]
    Changes(#[from] changes::Refused),
    #[error(transparent)]
    Automerge(#[from] automerge::AutomergeError),
    #[error(transparent)]
    Authority(#[from] crate::authority::Refusal),
    #[error(transparent)]
    Whereabouts(#[from] crate::whereabouts::Refused),
    #[error("the authority log cannot be read")]
    LogUnreadable,
}

impl Replica for Mem {
    type Error = MemRefused;

    fn docs(&mut self) -> Vec<DocInfo> {
        let heads = |d: &mut AutoCommit| {
            let h: Vec<String> = d.get_heads().iter().map(|h| h.to_string()).collect();
            crate::session::heads_digest(h.iter().map(String::as_str))
        };
        self.docs
            .iter_mut()
            .map(|(d, doc)| {
                // The partition is the id up to its first dash: `incident-2026-12` is an incident log.
                let partition = d.as_str().split('-').next().unwrap_or_default().to_string();
                DocInfo { doc: d.clone(), partition, created_at: 0, heads: heads(doc) }
            })
            .collect()
    }
    fn vault_versions(&mut self) -> Vec<(String, u64, bool)> {
        Vec::new()
    }
    fn load_state(&mut self, peer: &PeerId, doc: &DocId) -> Option<Vec<u8>> {
        self.states.get(&(peer.clone(), doc.clone())).cloned()
    }
    fn generate(&mut self, doc: &DocId, state: &mut State) -> Option<Message> {
        self.doc(doc).sync().generate_sync_message(state)
    }
    fn lacks(&mut self, doc: &DocId, heads: &[automerge::ChangeHash]) -> bool {
        let d = self.doc(doc);
        heads.iter().any(|h| d.document().get_change_meta_by_hash(h).is_none())
    }
    fn vouch(&mut self, doc: &DocId, msg: &mut Message) -> Vec<ChangeSig> {
        if self.signing.is_none() {
            return Vec::new();
        }
        changes::vouch_message(msg, &mut MemVouching { mem: self, doc }).map(|(sigs, _)| sigs).unwrap_or_default()
    }
    // Nothing is read ahead: a simulation's documents are small.
    type Prepared = ();
    fn prepare(_: &DocId, _: &Message, _: &[ChangeSig]) -> Option<()> {
        None
    }
    fn receive(
        &mut self,
        peer: &PeerId,
        doc: &DocInfo,
        state: &mut State,
        msg: Message,
        sigs: &[ChangeSig],
        _: Option<()>,
    ) -> Result<bool, MemRefused> {
        if let Some(s) = &mut self.signing {
            let mut d = self.docs.get_mut(&doc.doc);
            let mut metas = Vec::new();
            for c in msg.changes.iter() {
                metas.extend(changes::changes_in(c)?);
            }
            let held = |h: &[u8; 32]| {
                d.as_mut().is_some_and(|d| d.get_change_meta_by_hash(&automerge::ChangeHash(*h)).is_some())
            };
            let (members, tips) = (&s.members, &s.tips);
            let kept = |a: &[u8]| tips.get(&(doc.doc.clone(), a.to_vec())).map(|t| t.seq);
            let waiting = s.waiting.entry(doc.doc.clone()).or_default();
            changes::check(&doc.doc, metas, sigs, held, kept, |k| members.contains(k), waiting)?;
        }
        let d = self.doc(&doc.doc);
        let before = d.get_heads();
        d.sync().receive_sync_message(state, msg)?;
        let changed = d.get_heads() != before;
        if let Some(s) = &mut self.signing {
            let d = self.docs.get_mut(&doc.doc).expect("just written");
            let held = |h: &[u8; 32]| d.get_change_meta_by_hash(&automerge::ChangeHash(*h)).is_some();
            let waiting = s.waiting.entry(doc.doc.clone()).or_default();
            for t in waiting.settle(held) {
                let key = (doc.doc.clone(), t.actor.clone());
                if s.vouchers.get(&key).is_some_and(|v| v.seq <= t.seq) {
                    s.vouchers.remove(&key);
                }
                if s.tips.get(&key).is_none_or(|old| old.seq < t.seq) {
                    s.tips.insert(key, t);
                }
            }
            for v in waiting.vouchers() {
                let key = (doc.doc.clone(), v.actor.clone());
                if s.vouchers.get(&key).is_none_or(|old| old.seq < v.seq) {
                    s.vouchers.insert(key, v);
                }
            }
        }
        self.states.insert((peer.clone(), doc.doc.clone()), state.encode());
        Ok(changed)
    }
    fn vault_items(&mut self) -> Vec<VaultItem> {
        Vec::new()
    }
    fn authority_heads(&mut self) -> Vec<[u8; 32]> {
        self.log.heads().iter().map(|h| h.0).collect()
    }
    fn authority_missing(&mut self, theirs: &[[u8; 32]]) -> Result<Vec<Vec<u8>>, MemRefused> {
        if self.log_unreadable {
            return Err(MemRefused::LogUnreadable);
        }
        let theirs: Vec<crate::authority::Id> = theirs.iter().map(|h| crate::authority::Id(*h)).collect();
        Ok(self.log.missing_for(&theirs))
    }
    fn authority_offer(&mut self, _peer: &PeerId, entries: Vec<Vec<u8>>) -> Result<bool, MemRefused> {
        let before = self.log.len();
        for e in entries {
            self.log.offer(&e)?;
        }
        Ok(self.log.len() > before)
    }
    fn vault_merge(&mut self, _peer: &PeerId, items: Vec<VaultItem>) -> Result<bool, MemRefused> {
        Ok(!items.is_empty())
    }
    fn whereabouts(&mut self) -> Vec<crate::whereabouts::Whereabouts> {
        self.whereabouts.entries().cloned().collect()
    }
    fn whereabouts_merge(
        &mut self,
        _peer: &PeerId,
        items: Vec<crate::whereabouts::Whereabouts>,
    ) -> Result<bool, MemRefused> {
        let members: Vec<[u8; 32]> = self.signing.iter().flat_map(|s| s.members.iter().copied()).collect();
        let key_of = |h: &crate::HubId| members.iter().copied().find(|k| crate::HubId::of_bytes(k).as_ref() == Some(h));
        let merged = self.whereabouts.merge(items, key_of);
        if let Some(why) = merged.refused {
            return Err(MemRefused::Whereabouts(why));
        }
        let any = !merged.taken.is_empty();
        self.whereabouts_changes.extend(merged.taken);
        Ok(any)
    }
}

/// A signing replica runs over the real network too ([`crate::net::Mesh`]): to measure its
/// sessions over TLS sockets beside another implementation's. Its members are the keys it was
/// told of ([`Mem::admit`]) and its own; their coalition secret is the base secret of the lowest
/// of those keys, so that replicas told of each other agree on it. A replica that does not sign
/// has no members, and the network lets no peer in.
impl crate::net::Hub for Mem {
    fn take_changed(&mut self) -> Vec<DocInfo> {
        let mut changed = Vec::new();
        for info in Replica::docs(self) {
            if self.told.get(&info.doc) != Some(&info.heads) {
                self.told.insert(info.doc.clone(), info.heads.clone());
                changed.push(info);
            }
        }
        changed
    }
    fn take_vault_changes(&mut self) -> Vec<VaultItem> {
        Vec::new()
    }
    fn take_authority_changes(&mut self) -> Vec<Vec<u8>> {
        Vec::new()
    }
    fn take_whereabouts_changes(&mut self) -> Vec<crate::whereabouts::Whereabouts> {
        std::mem::take(&mut self.whereabouts_changes)
    }
    fn member_ids(&mut self) -> BTreeSet<crate::HubId> {
        self.signing.iter().flat_map(|s| s.members.iter().filter_map(crate::HubId::of_bytes)).collect()
    }
    fn keyring(&mut self) -> crate::keyring::Keyring {
        let lowest = self.signing.iter().flat_map(|s| s.members.iter().copied()).min().unwrap_or_default();
        crate::keyring::Keyring::base(&lowest)
    }
}

/// The two members of the fuzz harness: the replica under test, and the peer whose frames it is
/// fed (the sample's sender).
fn fuzz_pair() -> (Mem, Mem) {
    let (ours, theirs) = (Identity::from_secret(&[1; 32]), Identity::from_secret(&[2; 32]));
    let (kr, kp) = (*ours.public().as_bytes(), *theirs.public().as_bytes());
    // The peer writes as a person unlocked there: its tips carry two signatures.
    let (mut r, mut p) = (Mem::signed(ours), Mem::signed_by(theirs, Identity::from_secret(&[3; 32])));
    r.admit(kp);
    p.admit(kr);
    (r, p)
}

/// The fuzz harness of the sync protocol and of the door for changes (`cargo fuzz run
/// sync_frames`, and the unit test that replays its corpus): `data` is frames a member peer
/// sends, each a 2-byte length then its bytes, to a session over a signing replica that holds
/// one document. Whatever the bytes, nothing panics; every frame that decodes encodes back to
/// itself; a session ends at its first error, as the driver ends the connection (returned).
pub fn feed_frames(data: &[u8]) -> Option<crate::session::SessionError> {
    let (mut r, _) = fuzz_pair();
    r.edit("item-1", 1);
    r.edit("item-1", 2);
    let now = Timestamp::from_millis(1_764_000_000_000);
    let mut s = Session::new(PeerId::named("peer"), now);
    let _ = s.start(&mut r, now);
    let mut rest = data;
    while rest.len() >= 2 {
        let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let (frame, tail) = rest[2..].split_at(n.min(rest.len() - 2));
        rest = tail;
        let Ok(frame) = Frame::decode(frame) else { continue };
        assert_eq!(Frame::decode(&frame.encode()).ok(), Some(frame.clone()), "a frame encodes back to itself");
        if let Err(e) = s.handle(&mut r, frame, now) {
            return Some(e);
        }
    }
    None
}

/// What one side of a first sync sends, in [`feed_frames`]'s format: a seed for the fuzzer.
pub fn sample_frames() -> Vec<u8> {
    let (mut b, mut a) = fuzz_pair();
    a.edit("item-1", 7);
    a.edit("item-2", 8);
    let now = Timestamp::from_millis(1_764_000_000_000);
    let at = ["192.0.2.7:4433".parse().expect("an address"), "[2001:db8::7]:4433".parse().expect("an address")];
    a.say_whereabouts(now.millis() as u64, Some("https://relay.example.org/"), &at);
    a.whereabouts_changes.clear();
    let (mut sa, mut sb) = (Session::new(PeerId::named("b"), now), Session::new(PeerId::named("a"), now));
    let mut to_b: VecDeque<Frame> = sa.start(&mut a, now).into();
    let mut to_a: VecDeque<Frame> = sb.start(&mut b, now).into();
    let mut sent = Vec::new();
    for _ in 0..100 {
        if to_a.is_empty() && to_b.is_empty() {
            break;
        }
        if let Some(f) = to_b.pop_front() {
            let e = f.encode();
            sent.extend((e.len() as u16).to_be_bytes());
            sent.extend(e);
            to_a.extend(sb.handle(&mut b, f, now).map(|x| x.0).unwrap_or_default());
        }
        if let Some(f) = to_a.pop_front() {
            to_b.extend(sa.handle(&mut a, f, now).map(|x| x.0).unwrap_or_default());
        }
    }
    sent
}

fn t() -> Timestamp {
    Timestamp::from_millis(0)
}

/// Runs sessions between every pair until quiet; returns total frame bytes (with length prefix).
pub fn converge(nodes: &mut [Mem], persist: bool) -> u64 {
    converge_with(nodes, persist, true)
}

/// [`converge`], with each node's sessions sharing their fetches (`share`, as a hub's do) or
/// each asking on its own (to compare).
pub fn converge_with(nodes: &mut [Mem], persist: bool, share: bool) -> u64 {
    converge_traffic(nodes, persist, share).wire
}

/// What [`converge_traffic`] moved, side by side: frames as sent (deflated where that is
/// smaller) and as they would go plain, each with its 4-byte length prefix, and the time spent
/// encoding and decoding them each way.
#[derive(Clone, Copy, Debug, Default)]
pub struct Traffic {
    pub frames: u64,
    pub wire: u64,
    pub plain: u64,
    pub coding: std::time::Duration,
    pub plain_coding: std::time::Duration,
}

/// [`converge_with`], counting the traffic both ways.
pub fn converge_traffic(nodes: &mut [Mem], persist: bool, share: bool) -> Traffic {
    let n = nodes.len();
    let every: BTreeSet<(usize, usize)> = (0..n).flat_map(|a| (a + 1..n).map(move |b| (a, b))).collect();
    converge_over(nodes, &every, persist, share)
}

/// [`converge_traffic`] over the given links only (pairs `(a, b)` with `a < b`, one session
/// each way), as an overlay connects hubs: what a hub learns goes on to its other peers.
#[allow(clippy::needless_range_loop)]
pub fn converge_over(nodes: &mut [Mem], links: &BTreeSet<(usize, usize)>, persist: bool, share: bool) -> Traffic {
    let n = nodes.len();
    let mut sessions: BTreeMap<(usize, usize), Session> = BTreeMap::new();
    let mut wires: BTreeMap<(usize, usize), VecDeque<Frame>> = BTreeMap::new();
    if !persist {
        for m in nodes.iter_mut() {
            m.states.clear();
        }
    }
    // The sessions of each node fetch a document from one peer at a time, as a hub's do.
    let fetches: Vec<crate::session::SharedFetches> = (0..n).map(|_| Default::default()).collect();
    for a in 0..n {
        for b in 0..n {
            if a != b && links.contains(&(a.min(b), a.max(b))) {
                let peer = PeerId::named(&format!("n{b}"));
                let mut s =
                    if share { Session::sharing(peer, t(), fetches[a].clone()) } else { Session::new(peer, t()) };
                wires.entry((a, b)).or_default().extend(s.start(&mut nodes[a], t()));
                sessions.insert((a, b), s);
            }
        }
    }
    let mut traffic = Traffic::default();
    loop {
        let mut progressed = false;
        let keys: Vec<(usize, usize)> = wires.keys().copied().collect();
        for (a, b) in keys {
            while let Some(f) = wires.get_mut(&(a, b)).and_then(|q| q.pop_front()) {
                let clock = std::time::Instant::now();
                let plain = f.encode_plain();
                assert_eq!(Frame::decode(&plain).ok().as_ref(), Some(&f));
                traffic.plain_coding += clock.elapsed();
                let clock = std::time::Instant::now();
                let enc = f.encode();
                let f = Frame::decode(&enc).unwrap();
                traffic.coding += clock.elapsed();
                traffic.frames += 1;
                traffic.wire += enc.len() as u64 + 4;
                traffic.plain += plain.len() as u64 + 4;
                let s = sessions.get_mut(&(b, a)).unwrap();
                let (out, changed) = s.handle(&mut nodes[b], f, t()).unwrap();
                wires.entry((b, a)).or_default().extend(out);
                // Whereabouts new to b go on to its other peers, as a hub's driver offers them.
                let whereabouts = std::mem::take(&mut nodes[b].whereabouts_changes);
                if !whereabouts.is_empty() {
                    for c in (0..n).filter(|c| *c != b && *c != a) {
                        let Some(s) = sessions.get_mut(&(b, c)) else { continue };
                        let out = s.whereabouts_changed(whereabouts.clone(), t());
                        wires.entry((b, c)).or_default().extend(out);
                    }
                }
                if changed {
                    // Relay the news to b's other peers.
                    let docs = nodes[b].docs();
                    for c in 0..n {
                        if c != b && c != a {
                            let Some(s) = sessions.get_mut(&(b, c)) else { continue };
                            for d in &docs {
                                let out = s.relayed(&mut nodes[b], d, t());
                                wires.entry((b, c)).or_default().extend(out);
                            }
                        }
                    }
                }
                progressed = true;
            }
        }
        if !progressed {
            // Quiet: what waited for another fetch goes now, as a driver's tick sends it.
            for ((a, b), s) in sessions.iter_mut() {
                if s.is_waiting() {
                    let out = s.retry(&mut nodes[*a], t());
                    progressed |= !out.is_empty();
                    wires.entry((*a, *b)).or_default().extend(out);
                }
            }
        }
        if !progressed {
            return traffic;
        }
    }
}

pub fn same(nodes: &mut [Mem]) -> bool {
    let heads: Vec<_> = nodes.iter_mut().map(|m| m.doc("d").get_heads()).collect();
    heads.windows(2).all(|w| w[0] == w[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every input the sync fuzzer was seeded with or ever crashed on stays a regression test;
    /// the seed is a real first sync (AIDMESH_WRITE_CORPUS=1 writes it again).
    #[test]
    fn sync_fuzz_corpus_and_regressions_never_panic() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        if std::env::var_os("AIDMESH_WRITE_CORPUS").is_some() {
            let dir = root.join("corpus/sync_frames");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("first_sync"), sample_frames()).unwrap();
        }
        let mut n = 0;
        for dir in ["corpus/sync_frames", "regressions/sync_frames"] {
            for e in std::fs::read_dir(root.join(dir)).into_iter().flatten().flatten() {
                feed_frames(&std::fs::read(e.path()).unwrap());
                n += 1;
            }
        }
        assert!(n >= 1, "the seed corpus is missing");
        let bloom = std::fs::read(root.join("regressions/sync_frames/bloom-without-bits")).unwrap();
        let e = feed_frames(&bloom).map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("Bloom filter"), "the regression still reaches the Bloom check: {e}");
    }

    /// Automerge sends its heads sorted and compares them in order: a sync message whose heads
    /// are out of order or repeat ends the session, and nothing of it is taken.
    #[test]
    fn heads_out_of_order_end_the_session() {
        let mut m = Mem::new(1);
        m.edit("d", 1);
        let heads = m.doc("d").get_heads();
        let now = Timestamp::from_millis(0);
        let (low, high) = (automerge::ChangeHash([0; 32]), automerge::ChangeHash([0xff; 32]));
        let sorted = Message {
            heads: vec![low, high],
            need: vec![],
            have: vec![],
            changes: automerge::sync::ChunkList::empty(),
            flags: None,
            version: automerge::sync::MessageVersion::V2,
        }
        .encode();
        // Automerge will not encode them out of order: the two hashes (after the type byte and
        // the count) are swapped, or the first written twice, in the bytes.
        assert_eq!(sorted[..2], [0x43, 2]);
        let (mut swapped, mut twice) = (sorted.clone(), sorted.clone());
        swapped[2..34].copy_from_slice(&high.0);
        swapped[34..66].copy_from_slice(&low.0);
        twice[34..66].copy_from_slice(&low.0);
        for bad in [swapped, twice] {
            let mut s = Session::new(PeerId::named("peer"), now);
            // A peer that opens the session as any hub does.
            let mut peer = Mem::new(2);
            for f in Session::new(PeerId::named("hub"), now).start(&mut peer, now) {
                s.handle(&mut m, f, now).unwrap();
            }
            let frame = Frame::Sync { doc: DocId::new("d"), msg: bad, sigs: vec![] };
            let e = s.handle(&mut m, frame, now).map(|_| ()).unwrap_err().to_string();
            assert!(e.contains("heads are not in order"), "{e}");
            assert_eq!(m.doc("d").get_heads(), heads);
        }
    }

    /// A hub's word of where it can be reached reaches every member; a reconnect with nothing
    /// new costs what it cost before anyone said anything; a forged entry ends the session
    /// and changes nothing.
    #[test]
    fn whereabouts_travel_by_digest_and_a_forged_one_is_refused() {
        let ids: Vec<Identity> = (7..10).map(|n| Identity::from_secret(&[n; 32])).collect();
        let keys: Vec<[u8; 32]> = ids.iter().map(|i| *i.public().as_bytes()).collect();
        let mut nodes: Vec<Mem> = ids.iter().map(|i| Mem::signed(Identity::from_secret(&i.secret()))).collect();
        for m in nodes.iter_mut() {
            keys.iter().for_each(|k| m.admit(*k));
        }
        let before = converge_traffic(&mut nodes, true, true);
        let addr: std::net::SocketAddr = "192.0.2.7:4433".parse().unwrap();
        nodes[0].say_whereabouts(10, Some("https://relay.example.org/"), &[addr]);
        nodes[0].whereabouts_changes.clear();
        converge_traffic(&mut nodes, true, true);
        for m in nodes.iter() {
            let w = m.whereabouts.get(&ids[0].id()).expect("every member learns it");
            assert_eq!((w.version, w.direct.as_slice()), (10, [addr].as_slice()));
        }
        let again = converge_traffic(&mut nodes, true, true);
        assert_eq!(again.wire, before.wire, "a reconnect with nothing new sends no whereabouts");

        // Said anew while connected: it goes across and on to the members behind.
        nodes[0].say_whereabouts(11, None, &[addr]);
        converge_traffic(&mut nodes, true, true);
        assert!(nodes.iter().all(|m| m.whereabouts.get(&ids[0].id()).map(|w| w.version) == Some(11)));

        let forged = crate::whereabouts::Whereabouts {
            direct: vec!["198.51.100.9:53".parse().unwrap()],
            version: 99,
            ..nodes[1].whereabouts.get(&ids[0].id()).unwrap().clone()
        };
        let table = nodes[1].whereabouts.clone();
        let mut s = Session::new(PeerId::named("n2"), t());
        s.start(&mut nodes[1], t());
        s.handle(&mut nodes[1], Frame::Hello(crate::session::PROTOCOL), t()).unwrap();
        let e = s.handle(&mut nodes[1], Frame::Whereabouts(vec![forged]), t()).unwrap_err().to_string();
        assert!(e.contains("not signed by that hub"), "{e}");
        assert_eq!(nodes[1].whereabouts, table, "nothing of it was kept");
    }

    /// Two hubs whose records agree are in step (the peers view says when they last synced),
    /// whatever whereabouts still cross in the same round.
    #[test]
    fn hubs_whose_records_agree_are_synced_while_whereabouts_cross() {
        let (a, b) = (Identity::from_secret(&[11; 32]), Identity::from_secret(&[12; 32]));
        let (ka, kb, a_id) = (*a.public().as_bytes(), *b.public().as_bytes(), a.id());
        let (mut ma, mut mb) = (Mem::signed(a), Mem::signed(b));
        ma.admit(kb);
        mb.admit(ka);
        ma.say_whereabouts(5, None, &["192.0.2.7:4433".parse().unwrap()]);
        ma.whereabouts_changes.clear();
        let (mut sa, mut sb) = (Session::new(PeerId::named("b"), t()), Session::new(PeerId::named("a"), t()));
        let mut to_b: VecDeque<Frame> = sa.start(&mut ma, t()).into();
        let mut to_a: VecDeque<Frame> = sb.start(&mut mb, t()).into();
        while !to_a.is_empty() || !to_b.is_empty() {
            if let Some(f) = to_b.pop_front() {
                to_a.extend(sb.handle(&mut mb, f, t()).unwrap().0);
            }
            if let Some(f) = to_a.pop_front() {
                to_b.extend(sa.handle(&mut ma, f, t()).unwrap().0);
            }
        }
        assert!(mb.whereabouts.get(&a_id).is_some(), "the whereabouts crossed");
        assert!(sa.last_synced().is_some() && sb.last_synced().is_some(), "both are in step");
    }

    fn pair_of_members() -> (Mem, Mem, Identity) {
        let (a, b) = (Identity::from_secret(&[5; 32]), Identity::from_secret(&[6; 32]));
        let (ka, kb) = (*a.public().as_bytes(), *b.public().as_bytes());
        let (mut ma, mut mb) = (Mem::signed(a), Mem::signed(b));
        ma.admit(kb);
        mb.admit(ka);
        (ma, mb, Identity::from_secret(&[6; 32]))
    }

    /// Runs one session each way between `a` and `b`; the first error either side meets.
    fn sync_pair(a: &mut Mem, b: &mut Mem) -> Result<(), crate::session::SessionError> {
        let now = t();
        let (mut sa, mut sb) = (Session::new(PeerId::named("b"), now), Session::new(PeerId::named("a"), now));
        let (to_b, to_a) = (sa.start(a, now), sb.start(b, now));
        exchange(a, &mut sa, b, &mut sb, to_b, to_a)
    }

    /// Delivers `to_b` and `to_a`, and every answer, until both sides are quiet.
    fn exchange(
        a: &mut Mem,
        sa: &mut Session,
        b: &mut Mem,
        sb: &mut Session,
        to_b: Vec<Frame>,
        to_a: Vec<Frame>,
    ) -> Result<(), crate::session::SessionError> {
        let now = t();
        let (mut to_b, mut to_a): (VecDeque<Frame>, VecDeque<Frame>) = (to_b.into(), to_a.into());
        let mut rounds = 0;
        while !(to_a.is_empty() && to_b.is_empty()) {
            rounds += 1;
            assert!(rounds < 10_000, "the two sides never went quiet");
            if let Some(f) = to_b.pop_front() {
                to_a.extend(sb.handle(b, Frame::decode(&f.encode()).unwrap(), now)?.0);
            }
            if let Some(f) = to_a.pop_front() {
                to_b.extend(sa.handle(a, Frame::decode(&f.encode()).unwrap(), now)?.0);
            }
        }
        Ok(())
    }

    /// A change a peer took before what it depends on waits in its memory only (here the first
    /// of two changes is missing from the message, as when the peer's Bloom filter wrongly says
    /// it holds it). Gone with the document (it left memory, or the hub restarted), the peer
    /// asks again for what it lacks, and what it says it needs goes again, though it went before
    /// in this session. Automerge alone holds it back as sent, and the peer asks in vain until
    /// the session ends.
    #[test]
    fn what_a_peer_says_it_needs_goes_again_though_it_went_before() {
        let now = t();
        let (mut a, mut b) = (Mem::new(1), Mem::new(2));
        // A history long enough that two new changes go as changes, not as the whole document.
        for n in 0..12 {
            a.edit("d", n);
        }
        let (mut sa, mut sb) = (Session::new(PeerId::named("b"), now), Session::new(PeerId::named("a"), now));
        let (to_b, to_a) = (sa.start(&mut a, now), sb.start(&mut b, now));
        exchange(&mut a, &mut sa, &mut b, &mut sb, to_b, to_a).unwrap();
        let d = DocId::from("d");
        let heads = |m: &mut Mem| m.docs.get_mut(&d).unwrap().get_heads();
        assert_eq!(heads(&mut a), heads(&mut b));
        let before = b.docs.get_mut(&d).unwrap().fork();
        // Two changes, the second depending on the first; the message reaches B without the first.
        a.edit("d", 12);
        a.edit("d", 13);
        let info = a.docs().into_iter().find(|i| i.doc == d).unwrap();
        let [Frame::Sync { doc, msg, sigs }] = &sa.changed(&mut a, &info, now)[..] else { panic!("one sync message") };
        let mut m = Message::decode(msg).unwrap();
        let second = a.docs.get_mut(&d).unwrap().get_last_local_change().unwrap().raw_bytes().to_vec();
        m.changes = vec![second].into();
        let cut = Frame::Sync { doc: doc.clone(), msg: m.encode(), sigs: sigs.clone() };
        let (out, _) = sb.handle(&mut b, cut, now).unwrap();
        assert!(!b.docs.get_mut(&d).unwrap().get_missing_deps(&[]).is_empty(), "the second waits for the first");
        // B asks for the first; before the answer comes, what waited is gone.
        b.docs.insert(d.clone(), before);
        exchange(&mut a, &mut sa, &mut b, &mut sb, vec![], out).unwrap();
        assert_eq!(heads(&mut a), heads(&mut b), "B got again what it lost");
    }

    /// The peer's budget decides a session from its start, not halfway: a `Metered` after the
    /// summary ends the session.
    #[test]
    fn metered_comes_before_the_summary_or_not_at_all() {
        let (mut m, now) = (Mem::new(1), t());
        let mut s = Session::new(PeerId::named("p"), now);
        s.handle(&mut m, Frame::Hello(crate::session::PROTOCOL), now).unwrap();
        s.handle(&mut m, Frame::Metered, now).unwrap();
        let summary = Frame::decode(&[[8u8].as_slice(), &[0u8; 48]].concat()).unwrap();
        s.handle(&mut m, summary, now).unwrap();
        let late = s.handle(&mut m, Frame::Metered, now);
        assert!(matches!(late, Err(crate::session::SessionError::Malformed(ref w)) if w.contains("after the summary")));
    }

    /// A hub over its day's budget says so first; from then on both sides list and offer only
    /// documents of urgent kinds (incidents, requests), whichever side is over. The next
    /// session, once the budget is new, brings the rest.
    #[test]
    fn a_hub_over_its_budget_gets_and_gives_urgent_documents_only() {
        let keys = |m: &Mem| m.docs.keys().map(|d| d.as_str().to_string()).collect::<Vec<_>>();
        for a_over in [true, false] {
            let (mut a, mut b) = (Mem::new(1), Mem::new(2));
            b.edit("incident-2026-12", 1);
            b.edit("item-1", 2);
            b.edit("request-1", 3);
            a.edit("shift-1", 4);
            a.edit("follow_up-2026-12", 5);
            a.edit("coalition", 6);
            let now = t();
            let mut sa = Session::new(PeerId::named("b"), now).metered(a_over);
            let mut sb = Session::new(PeerId::named("a"), now).metered(!a_over);
            let first = sa.start(&mut a, now);
            assert_eq!(first.contains(&Frame::Metered), a_over, "the hub over its budget says so first");
            assert!(first.iter().any(|f| matches!(f, Frame::AuthorityHeads(_))), "authority always goes");
            let second = sb.start(&mut b, now);
            exchange(&mut a, &mut sa, &mut b, &mut sb, first, second).unwrap();
            assert_eq!(keys(&a), ["coalition", "follow_up-2026-12", "incident-2026-12", "request-1", "shift-1"]);
            assert_eq!(keys(&b), ["coalition", "follow_up-2026-12", "incident-2026-12", "item-1", "request-1"]);
            // What each side holds back is what the other lacks, no more.
            assert_eq!((sa.backlog().held, sb.backlog().held), (1, 1), "the shift and the item");

            // Changes made during the session: an urgent one goes, the others wait.
            b.edit("item-1", 6);
            let item = b.docs().into_iter().find(|d| d.doc.as_str() == "item-1").unwrap();
            assert!(sb.changed(&mut b, &item, now).is_empty(), "an item waits for the budget");
            b.edit("incident-2026-12", 7);
            let incident = b.docs().into_iter().find(|d| d.doc.as_str() == "incident-2026-12").unwrap();
            let out = sb.changed(&mut b, &incident, now);
            assert!(!out.is_empty(), "an incident goes");
            exchange(&mut a, &mut sa, &mut b, &mut sb, Vec::new(), out).unwrap();
            let heads = |m: &mut Mem| {
                m.docs.iter_mut().map(|(d, doc)| (d.as_str().to_string(), doc.get_heads())).collect::<Vec<_>>()
            };
            assert_eq!(a.doc("incident-2026-12").get_heads(), b.doc("incident-2026-12").get_heads());
            assert_ne!(heads(&mut a), heads(&mut b));
            // A new day: everything.
            sync_pair(&mut a, &mut b).unwrap();
            assert_eq!(heads(&mut a), heads(&mut b), "the rest follows once the budget is new");
        }
    }

    #[test]
    fn signed_changes_relay_through_a_third_member_and_a_non_members_are_refused() {
        let (mut a, mut b, _) = pair_of_members();
        let c_id = Identity::from_secret(&[7; 32]);
        let kc = *c_id.public().as_bytes();
        let mut c = Mem::signed(c_id);
        c.admit(*Identity::from_secret(&[6; 32]).public().as_bytes());
        b.admit(kc);
        for n in 0..20 {
            a.edit("d", n);
        }
        sync_pair(&mut a, &mut b).unwrap();
        // c never met a: a's changes reach it through b, with a's own signature.
        c.admit(*Identity::from_secret(&[5; 32]).public().as_bytes());
        sync_pair(&mut b, &mut c).unwrap();
        assert_eq!(c.doc("d").get_heads(), a.doc("d").get_heads());
        // A hub that c does not count as a member: its changes are refused, nothing is kept.
        let mut stranger = Mem::signed(Identity::from_secret(&[8; 32]));
        stranger.admit(kc);
        stranger.edit("e", 1);
        let e = sync_pair(&mut stranger, &mut c).unwrap_err().to_string();
        assert!(e.contains("not a member"), "{e}");
        assert!(c.docs.get_mut("e").is_none_or(|d| d.get_heads().is_empty()));
    }

    /// A person's changes carry their signature beside their hub's through every relay; a hub
    /// that writes under an actor naming a person whose key it does not hold (it signs as the
    /// hub only, or with a key of its own) ends the session, and nothing of it is kept.
    #[test]
    fn a_persons_changes_relay_with_their_signature_and_a_hub_cannot_write_in_their_name() {
        let (_, mut b, _) = pair_of_members();
        let ana = Identity::from_secret(&[21; 32]);
        let mut at_a = Mem::signed_by(Identity::from_secret(&[5; 32]), Identity::from_secret(&[21; 32]));
        at_a.admit(*b.signing.as_ref().unwrap().identity.public().as_bytes());
        for n in 0..5 {
            at_a.edit("d", n);
        }
        sync_pair(&mut at_a, &mut b).unwrap();
        let c_id = Identity::from_secret(&[7; 32]);
        let mut c = Mem::signed(c_id);
        c.admit(*Identity::from_secret(&[5; 32]).public().as_bytes());
        c.admit(*Identity::from_secret(&[6; 32]).public().as_bytes());
        sync_pair(&mut b, &mut c).unwrap();
        assert_eq!(c.doc("d").get_heads(), at_a.doc("d").get_heads(), "relayed with both signatures");
        // Hub a writes in ana's name without her key: its own signature only, then with another
        // key in her place.
        for forger in [None, Some(Identity::from_secret(&[22; 32]))] {
            let mut forged = Mem::signed(Identity::from_secret(&[5; 32]));
            forged.actor =
                changes::actor(forged.actor[..32].try_into().unwrap(), Some(ana.public().as_bytes()), &[1; 8]);
            forged.signing.as_mut().unwrap().person = forger;
            forged.admit(*Identity::from_secret(&[7; 32]).public().as_bytes());
            forged.edit("e", 1);
            let e = sync_pair(&mut forged, &mut c).unwrap_err().to_string();
            assert!(e.contains("is not signed by that person"), "{e}");
            assert!(c.docs.get_mut("e").is_none_or(|d| d.get_heads().is_empty()));
        }
    }

    /// A member sends its chain with the signature on a change that cannot apply yet (it
    /// depends on a change the member keeps back). The hub holds the earlier changes and keeps
    /// the signed one as a voucher: when it passes them on to a third hub, the voucher goes
    /// with them, so that hub takes them too, instead of refusing them (which would end every
    /// session between the two).
    #[test]
    fn a_signed_change_that_waits_vouches_for_the_held_ones_before_it_when_they_are_passed_on() {
        let ids: Vec<Identity> = (10..14).map(|i| Identity::from_secret(&[i; 32])).collect();
        let keys: Vec<[u8; 32]> = ids.iter().map(|i| *i.public().as_bytes()).collect();
        let mut mems: Vec<Mem> = (10..14).map(|i| Mem::signed(Identity::from_secret(&[i; 32]))).collect();
        for m in &mut mems {
            keys.iter().for_each(|k| m.admit(*k));
        }
        let (mut m, mut x, mut h, mut p) = {
            let mut it = mems.into_iter();
            (it.next().unwrap(), it.next().unwrap(), it.next().unwrap(), it.next().unwrap())
        };
        m.edit("d", 1);
        m.edit("d", 2);
        // x's change reaches m, and m's third change builds on it.
        x.put_doc("d", m.doc("d"));
        x.edit("d", 3);
        sync_pair(&mut x, &mut m).unwrap();
        m.edit("d", 4);
        let mine: Vec<Vec<u8>> = m
            .doc("d")
            .get_changes(&[])
            .iter()
            .filter(|c| c.actor_id().to_bytes() == m.actor.as_slice())
            .map(|c| c.raw_bytes().to_vec())
            .collect();
        assert_eq!(mine.len(), 3);
        let tip = m.signing.as_ref().unwrap().tips[&(DocId::from("d"), m.actor.clone())].sig;
        let msg = Message {
            heads: vec![],
            need: vec![],
            have: vec![],
            changes: mine.into(),
            flags: None,
            version: automerge::sync::MessageVersion::V1,
        };
        let info = DocInfo { doc: "d".into(), partition: "p".into(), created_at: 0, heads: String::new() };
        h.receive(&PeerId::named("m"), &info, &mut State::new(), msg, &[tip], None).unwrap();
        assert_eq!(h.doc("d").get_heads().len(), 1, "m's first two changes are held, the third waits");
        // m's third change goes with the two before it, and waits at p too.
        sync_pair(&mut h, &mut p).expect("the session with a third hub goes on");
        assert_eq!(p.doc("d").get_heads(), h.doc("d").get_heads());
        // Once x's change reaches h, the chain applies and h passes all of it on, vouched for.
        sync_pair(&mut x, &mut h).unwrap();
        sync_pair(&mut h, &mut p).unwrap();
        assert_eq!(p.doc("d").get_heads(), m.doc("d").get_heads());
    }

    #[test]
    fn an_unsigned_change_or_one_made_in_a_members_name_ends_the_session() {
        let (mut a, mut b, b_id) = pair_of_members();
        a.edit("d", 1);
        sync_pair(&mut a, &mut b).unwrap();
        // An old, unsigned replica that uses b's actor: every change it sends claims b.
        let mut forger = Mem::new(0);
        forger.actor = b.actor.clone();
        forger.signing = Some(Signing {
            identity: Identity::from_secret(&[9; 32]),
            person: None,
            members: [*b_id.public().as_bytes(), *Identity::from_secret(&[5; 32]).public().as_bytes()].into(),
            tips: BTreeMap::new(),
            vouchers: BTreeMap::new(),
            waiting: BTreeMap::new(),
        });
        forger.docs.insert("d".into(), a.doc("d").fork().with_actor(ActorId::from(b.actor.clone())));
        forger.edit("d", 2);
        let before = a.doc("d").get_heads();
        let e = sync_pair(&mut forger, &mut a).unwrap_err().to_string();
        assert!(e.contains("does not hold") || e.contains("not signed"), "{e}");
        assert_eq!(a.doc("d").get_heads(), before, "nothing of the forged change is kept");
    }

    /// The seed is what it claims: a peer's side of a first sync, which a fresh session takes
    /// without an error, ending with the peer's documents.
    #[test]
    fn the_sample_is_a_whole_first_sync() {
        let frames = sample_frames();
        assert!(frames.len() > 100, "{} bytes", frames.len());
        let (mut r, _) = fuzz_pair();
        let now = Timestamp::from_millis(1_764_000_000_000);
        let mut s = Session::new(PeerId::named("peer"), now);
        let _ = s.start(&mut r, now);
        let mut rest = &frames[..];
        let mut by_person = 0;
        while rest.len() >= 2 {
            let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
            let f = Frame::decode(&rest[2..2 + n]).unwrap();
            rest = &rest[2 + n..];
            if let Frame::Sync { sigs, .. } = &f {
                by_person += sigs.iter().filter(|s| s.person.is_some()).count();
            }
            s.handle(&mut r, f, now).unwrap();
        }
        assert!(r.docs.contains_key("item-1") && r.docs.contains_key("item-2"), "{:?}", r.docs.keys());
        assert!(by_person >= 2, "the seed carries a person's signatures: {by_person}");
    }
}
