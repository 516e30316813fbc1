//! A hub asks one peer at a time for a document's changes (`session::Fetches`): changes that
//! two peers hold cross to it once, and a fetch that ends or goes silent lets the other peer be
//! asked. In-memory replicas, frames encoded as on the wire.

use std::collections::VecDeque;

use aidmesh_mesh::memory::Mem;
use aidmesh_mesh::session::{Frame, PeerId, Replica, Session, SharedFetches, FETCH_LAPSE_MS};
use aidmesh_model::Timestamp;

/// Hub X between two peers that hold the same changes X lacks, each link a session pair.
struct Hubs {
    x: Mem,
    peers: [Mem; 2],
    /// X's session with each peer, sharing X's fetches.
    at_x: [Option<Session>; 2],
    /// Each peer's session with X.
    at_peer: [Session; 2],
    /// Frames in flight to X from each peer, and from X to each peer.
    to_x: [VecDeque<Frame>; 2],
    to_peer: [VecDeque<Frame>; 2],
    /// Bytes of changes X received from each peer.
    received: [usize; 2],
    now: i64,
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// Two peers that hold the same 200 edits; X holds the document's first edit only. Returns
/// the hubs with both links open; `shared`: X's sessions share their fetches, as a hub's do.
fn hubs(shared: bool) -> Hubs {
    let mut p1 = Mem::new(2);
    p1.edit("d", 0);
    let mut x = Mem::new(1);
    x.put_doc("d", p1.doc("d"));
    let mut p2 = Mem::new(3);
    for n in 1..=200 {
        p1.edit("d", n);
    }
    p2.put_doc("d", p1.doc("d"));
    let fetches = SharedFetches::default();
    let session = |peer: &str| match shared {
        true => Session::sharing(PeerId::named(peer), ts(0), fetches.clone()),
        false => Session::new(PeerId::named(peer), ts(0)),
    };
    let mut at_x = [Some(session("p1")), Some(session("p2"))];
    let mut at_peer = [Session::new(PeerId::named("x"), ts(0)), Session::new(PeerId::named("x"), ts(0))];
    let mut peers = [p1, p2];
    let mut to_x: [VecDeque<Frame>; 2] = Default::default();
    let mut to_peer: [VecDeque<Frame>; 2] = Default::default();
    for i in 0..2 {
        to_peer[i].extend(at_x[i].as_mut().unwrap().start(&mut x, ts(0)));
        to_x[i].extend(at_peer[i].start(&mut peers[i], ts(0)));
    }
    Hubs { x, peers, at_x, at_peer, to_x, to_peer, received: [0; 2], now: 0 }
}

impl Hubs {
    /// Delivers one frame on link `i`, X's way first; relays X's news to its other link as a
    /// driver does. Returns whether a frame moved.
    fn step(&mut self, i: usize) -> bool {
        let now = ts(self.now);
        if let Some(f) = self.to_x[i].pop_front() {
            let f = Frame::decode(&f.encode()).unwrap();
            if let Frame::Sync { msg, .. } = &f {
                let m = automerge::sync::Message::decode(msg).unwrap();
                self.received[i] += m.changes.iter().map(|c| c.len()).sum::<usize>();
            }
            let Some(s) = self.at_x[i].as_mut() else { return true };
            let (out, changed) = s.handle(&mut self.x, f, now).unwrap();
            self.to_peer[i].extend(out);
            if changed {
                let other = 1 - i;
                let docs = self.x.docs();
                if let Some(s) = self.at_x[other].as_mut() {
                    for d in &docs {
                        self.to_peer[other].extend(s.relayed(&mut self.x, d, now));
                    }
                }
            }
            return true;
        }
        if let Some(f) = self.to_peer[i].pop_front() {
            if self.at_x[i].is_none() {
                return true;
            }
            let f = Frame::decode(&f.encode()).unwrap();
            let (out, _) = self.at_peer[i].handle(&mut self.peers[i], f, now).unwrap();
            self.to_x[i].extend(out);
            return true;
        }
        false
    }

    /// Time passes on X: what waited asks if it may.
    fn tick(&mut self) {
        let now = ts(self.now);
        for i in 0..2 {
            if let Some(s) = self.at_x[i].as_mut().filter(|s| s.is_waiting()) {
                self.to_peer[i].extend(s.retry(&mut self.x, now));
            }
        }
    }

    fn settle(&mut self, links: &[usize]) {
        loop {
            let mut moved = false;
            for &i in links {
                moved |= self.step(i);
            }
            if !moved {
                self.tick();
                if links.iter().all(|&i| self.to_x[i].is_empty() && self.to_peer[i].is_empty()) {
                    return;
                }
            }
        }
    }

    /// Delivers frames on both links until X holds back an ask to one peer; returns the link
    /// being fetched from, then the one that waits.
    fn until_one_waits(&mut self) -> (usize, usize) {
        for _ in 0..100 {
            self.step(0);
            self.step(1);
            if let Some(k) = (0..2).find(|&k| self.at_x[k].as_ref().is_some_and(|s| s.is_waiting())) {
                return (1 - k, k);
            }
        }
        panic!("X never held back an ask");
    }

    fn holds_all(&mut self) -> bool {
        let theirs = self.peers[0].doc("d").get_heads();
        self.x.doc("d").get_heads() == theirs
    }
}

#[test]
fn changes_that_two_peers_hold_reach_the_hub_once() {
    // Sessions that ask on their own both bring the changes.
    let mut alone = hubs(false);
    alone.settle(&[0, 1]);
    assert!(alone.holds_all());
    assert!(alone.received.iter().all(|r| *r > 0), "{:?}", alone.received);
    // Sharing their fetches, one brings them and the other brings nothing.
    let mut h = hubs(true);
    h.settle(&[0, 1]);
    assert!(h.holds_all());
    assert!(h.received.contains(&0) && h.received.iter().any(|r| *r > 0), "{:?}", h.received);
    assert_eq!(h.received.iter().sum::<usize>(), alone.received[0], "the same changes, once");
}

#[test]
fn a_fetch_that_ends_lets_the_other_peer_be_asked() {
    let mut h = hubs(true);
    // The openings cross; X asks one peer and holds back its ask to the other.
    let (first, other) = h.until_one_waits();
    assert!(!h.holds_all());
    // The connection to the peer being asked drops before its changes arrive.
    h.at_x[first] = None;
    h.to_x[first].clear();
    h.settle(&[other]);
    assert!(h.holds_all(), "the other peer was asked once the first fetch ended");
    assert_eq!(h.received[first], 0);
}

#[test]
fn a_silent_fetch_lapses_and_the_other_peer_is_asked() {
    let mut h = hubs(true);
    let (first, other) = h.until_one_waits();
    assert!(!h.holds_all());
    // The peer being asked goes silent: nothing from it arrives.
    h.to_x[first].clear();
    h.to_peer[first].clear();
    // Whether a frame on its way to the other peer asks it for changes.
    let asks = |h: &mut Hubs| {
        h.to_peer[other].iter().any(|f| match f {
            Frame::Sync { msg, .. } => !automerge::sync::Message::decode(msg).unwrap().have.is_empty(),
            _ => false,
        })
    };
    h.now += FETCH_LAPSE_MS - 1;
    h.tick();
    assert!(!asks(&mut h), "the fetch has not lapsed yet: nothing asks the other peer");
    h.now += 1;
    h.tick();
    assert!(asks(&mut h), "the lapsed fetch lets the other peer be asked");
    h.settle(&[other]);
    assert!(h.holds_all());
}

/// Frames from one session to the other until both are quiet.
fn pump(a: &mut Mem, sa: &mut Session, b: &mut Mem, sb: &mut Session, mut to_b: Vec<Frame>, mut to_a: Vec<Frame>) {
    while !to_a.is_empty() || !to_b.is_empty() {
        for f in std::mem::take(&mut to_b) {
            to_a.extend(sb.handle(b, Frame::decode(&f.encode()).unwrap(), ts(0)).unwrap().0);
        }
        for f in std::mem::take(&mut to_a) {
            to_b.extend(sa.handle(a, Frame::decode(&f.encode()).unwrap(), ts(0)).unwrap().0);
        }
    }
}

/// The changes a batch of frames carries, in bytes.
fn changes_in(frames: &[Frame]) -> usize {
    frames
        .iter()
        .map(|f| match f {
            Frame::Sync { msg, .. } => {
                automerge::sync::Message::decode(msg).unwrap().changes.iter().map(|c| c.len()).sum()
            }
            _ => 0,
        })
        .sum()
}

#[test]
fn an_edit_goes_to_a_connected_peer_in_the_first_message() {
    let (mut a, mut b) = (Mem::new(1), Mem::new(2));
    a.edit("d", 0);
    let (mut sa, mut sb) = (
        Session::sharing(PeerId::named("b"), ts(0), SharedFetches::default()),
        Session::sharing(PeerId::named("a"), ts(0), SharedFetches::default()),
    );
    let (to_b, to_a) = (sa.start(&mut a, ts(0)), sb.start(&mut b, ts(0)));
    pump(&mut a, &mut sa, &mut b, &mut sb, to_b, to_a);
    assert_eq!(a.doc("d").get_heads(), b.doc("d").get_heads());
    // Quiet now, and each side last told the other it asks for nothing: an edit still goes with
    // the first message, both ways, and the exchange ends with both at the same heads.
    for round in 0..3 {
        a.edit("d", 10 + round);
        let docs = a.docs();
        let out = sa.changed(&mut a, &docs[0], ts(0));
        assert!(changes_in(&out) > 0, "round {round}: a's edit went without its change");
        pump(&mut a, &mut sa, &mut b, &mut sb, out, vec![]);
        b.edit("d", 20 + round);
        let docs = b.docs();
        let out = sb.changed(&mut b, &docs[0], ts(0));
        assert!(changes_in(&out) > 0, "round {round}: b's edit went without its change");
        pump(&mut b, &mut sb, &mut a, &mut sa, out, vec![]);
        assert_eq!(a.doc("d").get_heads(), b.doc("d").get_heads());
    }
}

/// A new hub, which lacks every document of a peer and takes seconds to store each, is sent
/// each document once: it asks for a few at a time, and its fetches do not lapse while the
/// peer's documents wait in its queue (even when the peer offers everything again meanwhile).
#[test]
fn a_new_hub_slow_to_store_gets_each_document_once() {
    let docs: Vec<String> = (0..12).map(|n| format!("d{n}")).collect();
    let mut p = Mem::new(2);
    for d in &docs {
        for n in 0..20 {
            p.edit(d, n);
        }
    }
    let mut x = Mem::new(1);
    let fetches = SharedFetches::default();
    let mut at_x = Session::sharing(PeerId::named("p"), ts(0), fetches);
    // The peer is a hub too: its sessions share their fetches.
    let mut at_p = Session::sharing(PeerId::named("x"), ts(0), SharedFetches::default());
    let mut to_x: VecDeque<Frame> = at_p.start(&mut p, ts(0)).into();
    let mut to_p: VecDeque<Frame> = at_x.start(&mut x, ts(0)).into();
    let mut now = 0;
    // Sync messages with changes that reached X, per document.
    let mut deliveries: std::collections::BTreeMap<String, usize> = Default::default();
    let mut resynced = false;
    loop {
        let mut moved = false;
        // The peer's driver fell behind once, just as X's first ask came: it offers every
        // document again, ahead of its answers.
        if to_p.iter().any(|f| matches!(f, Frame::Sync { .. })) && !std::mem::replace(&mut resynced, true) {
            to_x.extend(at_p.resync(&mut p, ts(now)));
        }
        // The peer answers at once; everything it sent waits in X's queue.
        moved |= answer(&mut at_p, &mut p, &mut to_p, &mut to_x, now);
        if let Some(f) = to_x.pop_front() {
            let f = Frame::decode(&f.encode()).unwrap();
            if let Frame::Sync { doc, msg, .. } = &f {
                if !automerge::sync::Message::decode(msg).unwrap().changes.is_empty() {
                    *deliveries.entry(doc.as_str().to_string()).or_default() += 1;
                    if deliveries.len() == 1 {
                        // X stores something big: for twenty seconds it reads nothing from its
                        // peer, while its ticks go on and the peer answers what they send.
                        for _ in 0..40 {
                            now += 500;
                            to_p.extend(at_x.retry(&mut x, ts(now)));
                            answer(&mut at_p, &mut p, &mut to_p, &mut to_x, now);
                        }
                    }
                    // Storing a document takes X three seconds; its ticks go on meanwhile.
                    for _ in 0..6 {
                        now += 500;
                        if at_x.is_waiting() {
                            to_p.extend(at_x.retry(&mut x, ts(now)));
                        }
                    }
                }
            }
            to_p.extend(at_x.handle(&mut x, f, ts(now)).unwrap().0);
            moved = true;
        }
        if !moved {
            now += 500;
            let out = at_x.retry(&mut x, ts(now));
            if out.is_empty() && !at_x.is_waiting() {
                break;
            }
            to_p.extend(out);
        }
    }
    for d in &docs {
        assert_eq!(x.doc(d).get_heads(), p.doc(d).get_heads(), "{d}");
        assert_eq!(deliveries.get(d.as_str()), Some(&1), "{d} sent once: {deliveries:?}");
    }
}

/// The peer handles every frame on its way to it, its answers queued for X; whether any moved.
fn answer(at_p: &mut Session, p: &mut Mem, to_p: &mut VecDeque<Frame>, to_x: &mut VecDeque<Frame>, now: i64) -> bool {
    let moved = !to_p.is_empty();
    while let Some(f) = to_p.pop_front() {
        to_x.extend(at_p.handle(p, Frame::decode(&f.encode()).unwrap(), ts(now)).unwrap().0);
    }
    moved
}
