//! An in-memory replica of bare Automerge documents, and a network that runs sessions between
//! such replicas until quiet: for measuring the sync protocol and for tests of the layer above.

use std::collections::{BTreeMap, VecDeque};

use aidmesh_model::Timestamp;
use automerge::sync::{Message, State, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ROOT};

use crate::session::{DocInfo, Frame, Replica, Session, VaultItem};

pub struct Mem {
    pub docs: BTreeMap<String, AutoCommit>,
    pub states: BTreeMap<(String, String), Vec<u8>>,
    /// The authority log, which travels beside the documents.
    pub log: crate::authority::Log,
    actor: Vec<u8>,
}

impl Mem {
    pub fn new(actor: u8) -> Mem {
        Mem { docs: BTreeMap::new(), states: BTreeMap::new(), log: Default::default(), actor: vec![actor; 16] }
    }
    pub fn doc(&mut self, id: &str) -> &mut AutoCommit {
        let actor = self.actor.clone();
        self.docs.entry(id.to_string()).or_insert_with(|| AutoCommit::new().with_actor(ActorId::from(actor)))
    }
    /// One edit: a small record-like map put, one commit.
    pub fn edit(&mut self, doc: &str, n: u64) -> usize {
        let d = self.doc(doc);
        let obj = d.put_object(ROOT, format!("r{n}-{}", d.get_actor()), automerge::ObjType::Map).unwrap();
        d.put(&obj, "name", format!("item {n}")).unwrap();
        d.put(&obj, "quantity", n as i64).unwrap();
        d.commit();
        d.get_last_local_change().map(|c| c.raw_bytes().len()).unwrap_or(0)
    }
}

impl Replica for Mem {
    fn docs(&mut self) -> Vec<DocInfo> {
        let heads = |d: &mut AutoCommit| {
            let h: Vec<String> = d.get_heads().iter().map(|h| h.to_string()).collect();
            crate::session::heads_digest(h.iter().map(String::as_str))
        };
        self.docs
            .iter_mut()
            .map(|(d, doc)| DocInfo { doc: d.clone(), partition: "p".into(), created_at: 0, heads: heads(doc) })
            .collect()
    }
    fn vault_versions(&mut self) -> Vec<(String, u64, bool)> {
        Vec::new()
    }
    fn load_state(&mut self, peer: &str, doc: &str) -> Option<Vec<u8>> {
        self.states.get(&(peer.to_string(), doc.to_string())).cloned()
    }
    fn generate(&mut self, doc: &str, state: &mut State) -> Option<Message> {
        self.doc(doc).sync().generate_sync_message(state)
    }
    fn receive(&mut self, peer: &str, doc: &DocInfo, state: &mut State, msg: Message) -> Result<bool, String> {
        let d = self.doc(&doc.doc);
        let before = d.get_heads();
        d.sync().receive_sync_message(state, msg).map_err(|e| e.to_string())?;
        let changed = d.get_heads() != before;
        self.states.insert((peer.to_string(), doc.doc.clone()), state.encode());
        Ok(changed)
    }
    fn vault_items(&mut self) -> Vec<VaultItem> {
        Vec::new()
    }
    fn authority_heads(&mut self) -> Vec<[u8; 32]> {
        self.log.heads().iter().map(|h| h.0).collect()
    }
    fn authority_missing(&mut self, theirs: &[[u8; 32]]) -> Vec<Vec<u8>> {
        let theirs: Vec<crate::authority::Id> = theirs.iter().map(|h| crate::authority::Id(*h)).collect();
        self.log.missing_for(&theirs)
    }
    fn authority_offer(&mut self, _peer: &str, entries: Vec<Vec<u8>>) -> Result<bool, String> {
        let before = self.log.len();
        for e in entries {
            self.log.offer(&e).map_err(|e| e.to_string())?;
        }
        Ok(self.log.len() > before)
    }
    fn vault_merge(&mut self, _peer: &str, items: Vec<VaultItem>) -> Result<bool, String> {
        Ok(!items.is_empty())
    }
}

/// The fuzz harness of the sync protocol (`cargo fuzz run sync_frames`, and the unit test that
/// replays its corpus): `data` is frames a peer sends, each a 2-byte length then its bytes, to a
/// session over a replica that holds one document. Whatever the bytes, nothing panics; every
/// frame that decodes encodes back to itself; a session ends at its first error, as the driver
/// ends the connection.
pub fn feed_frames(data: &[u8]) {
    let mut r = Mem::new(1);
    r.edit("item-1", 1);
    r.edit("item-1", 2);
    let now = Timestamp::from_millis(1_764_000_000_000);
    let mut s = Session::new("peer", now);
    let _ = s.start(&mut r, now);
    let mut rest = data;
    while rest.len() >= 2 {
        let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let (frame, tail) = rest[2..].split_at(n.min(rest.len() - 2));
        rest = tail;
        let Ok(frame) = Frame::decode(frame) else { continue };
        assert_eq!(Frame::decode(&frame.encode()).ok(), Some(frame.clone()), "a frame encodes back to itself");
        if s.handle(&mut r, frame, now).is_err() {
            break;
        }
    }
}

/// What one side of a first sync sends, in [`feed_frames`]'s format: a seed for the fuzzer.
pub fn sample_frames() -> Vec<u8> {
    let mut a = Mem::new(2);
    a.edit("item-1", 7);
    a.edit("item-2", 8);
    let mut b = Mem::new(1);
    let now = Timestamp::from_millis(1_764_000_000_000);
    let (mut sa, mut sb) = (Session::new("b", now), Session::new("a", now));
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
#[allow(clippy::needless_range_loop)]
pub fn converge(nodes: &mut [Mem], persist: bool) -> u64 {
    let n = nodes.len();
    let mut sessions: BTreeMap<(usize, usize), Session> = BTreeMap::new();
    let mut wires: BTreeMap<(usize, usize), VecDeque<Frame>> = BTreeMap::new();
    if !persist {
        for m in nodes.iter_mut() {
            m.states.clear();
        }
    }
    for a in 0..n {
        for b in 0..n {
            if a != b {
                let mut s = Session::new(&format!("n{b}"), t());
                wires.entry((a, b)).or_default().extend(s.start(&mut nodes[a], t()));
                sessions.insert((a, b), s);
            }
        }
    }
    let mut bytes = 0u64;
    loop {
        let mut progressed = false;
        let keys: Vec<(usize, usize)> = wires.keys().copied().collect();
        for (a, b) in keys {
            while let Some(f) = wires.get_mut(&(a, b)).and_then(|q| q.pop_front()) {
                let enc = f.encode();
                bytes += enc.len() as u64 + 4;
                let f = Frame::decode(&enc).unwrap();
                let s = sessions.get_mut(&(b, a)).unwrap();
                let (out, changed) = s.handle(&mut nodes[b], f, t()).unwrap();
                wires.entry((b, a)).or_default().extend(out);
                if changed {
                    // Relay the news to b's other peers.
                    let docs = nodes[b].docs();
                    for c in 0..n {
                        if c != b && c != a {
                            let s = sessions.get_mut(&(b, c)).unwrap();
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
            return bytes;
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
    }

    /// The seed is what it claims: a peer's side of a first sync, which a fresh session takes
    /// without an error, ending with the peer's documents.
    #[test]
    fn the_sample_is_a_whole_first_sync() {
        let frames = sample_frames();
        assert!(frames.len() > 100, "{} bytes", frames.len());
        let mut r = Mem::new(1);
        let now = Timestamp::from_millis(1_764_000_000_000);
        let mut s = Session::new("peer", now);
        let _ = s.start(&mut r, now);
        let mut rest = &frames[..];
        while rest.len() >= 2 {
            let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
            let f = Frame::decode(&rest[2..2 + n]).unwrap();
            rest = &rest[2 + n..];
            s.handle(&mut r, f, now).unwrap();
        }
        assert!(r.docs.contains_key("item-1") && r.docs.contains_key("item-2"), "{:?}", r.docs.keys());
    }
}
