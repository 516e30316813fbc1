//! The connection policy and the sync session, driven together with virtual time: 3–7 hubs that
//! all dial each other (so pairs meet twice, as over mDNS), on a network that delivers frames in
//! a seeded random order, cuts and heals links, restarts hubs and revokes one. The decisions are
//! the driver's (`net.rs`): which connection survives (`Policy::connected`), which close on each
//! tick (`Policy::review`, `Session::tick`), when to dial again (`Policy::dial_failed`,
//! `dial_succeeded`, `should_dial`). Replicas are bare Automerge documents (`memory::Mem`);
//! `hub/tests/mesh_sim.rs` runs real hubs.
//!
//! Every schedule must end with the remaining members identical, every write of theirs on every
//! one of them, and nothing the revoked hub wrote after its revocation anywhere else.
//! `AIDMESH_SIM_SEEDS` sets how many schedules run (500 by default; `cargo xtask soak` runs
//! 20,000).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;

use aidmesh_mesh::identity::{HubId, Identity};
use aidmesh_mesh::memory::Mem;
use aidmesh_mesh::policy::{ConnId, Connected, Limits, Policy, Review};
use aidmesh_mesh::session::{Frame, PeerId, Replica, Session, SharedFetches, Tick};
use aidmesh_model::Timestamp;
use automerge::ReadDoc;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

const DOCS: [&str; 3] = ["coalition", "item", "incident-2026-12"];

struct End {
    peer: usize,
    session: Session,
    /// When it started, and the address it was dialled at if this end dialled it.
    since: i64,
    dialled: Option<SocketAddr>,
}

struct Node {
    id: HubId,
    mem: Mem,
    policy: Policy,
    up: bool,
    conns: BTreeMap<ConnId, End>,
    /// Which connection fetches each document, shared by the node's sessions.
    fetches: SharedFetches,
    /// When this node dials each other node's address next.
    next_dial: BTreeMap<usize, i64>,
}

/// A connection whose TLS handshake is under way: `a` dialled `b`; each end registers it with
/// its policy when its side of the handshake completes.
struct Pending {
    conn: ConnId,
    a: usize,
    b: usize,
    at_a: Option<Connected>,
    at_b: Option<Connected>,
}

struct Sim {
    nodes: Vec<Node>,
    pending: Vec<Pending>,
    /// Frames in flight on each connection, per direction: (conn, from).
    wires: BTreeMap<(ConnId, usize), VecDeque<Frame>>,
    /// Pairs whose link is cut.
    cut: BTreeSet<(usize, usize)>,
    members: BTreeSet<HubId>,
    now: i64,
    next_conn: ConnId,
    rng: ChaCha20Rng,
    /// Every write: (node, key in the document, made after its node was revoked).
    writes: Vec<(usize, String, String, bool)>,
    revoked: Option<usize>,
    edits: u64,
    /// Dials refused at TLS per (dialler, target) since the dialler last started: the back-off
    /// keeps them few.
    refused: BTreeMap<(usize, usize), u32>,
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i as u8 + 1], 7433))
}

impl Sim {
    fn new(n: usize, mut rng: ChaCha20Rng) -> Sim {
        let nodes: Vec<Node> = (0..n)
            .map(|i| {
                let id = Identity::generate(&mut rng).id();
                Node {
                    policy: Policy::new(id.clone(), Limits::default()),
                    id,
                    mem: Mem::new(i as u8 + 1),
                    up: true,
                    conns: BTreeMap::new(),
                    fetches: Default::default(),
                    next_dial: (0..n).filter(|j| *j != i).map(|j| (j, 0)).collect(),
                }
            })
            .collect();
        let members = nodes.iter().map(|n| n.id.clone()).collect();
        Sim {
            nodes,
            pending: Vec::new(),
            wires: BTreeMap::new(),
            cut: BTreeSet::new(),
            members,
            now: 1_000_000,
            next_conn: 1,
            rng,
            writes: Vec::new(),
            revoked: None,
            edits: 0,
            refused: BTreeMap::new(),
        }
    }

    fn t(&self) -> Timestamp {
        Timestamp::from_millis(self.now)
    }

    fn linked(&self, a: usize, b: usize) -> bool {
        !self.cut.contains(&(a.min(b), a.max(b)))
    }

    /// Whether `a` lets `b` past TLS: `a` counts `b` as a member. A revoked hub still counts
    /// itself and the others (it has not heard of its revocation), and is refused by them.
    fn accepts(&self, a: usize, b: usize) -> bool {
        match self.revoked {
            Some(r) if r == a => true,
            _ => self.members.contains(&self.nodes[b].id),
        }
    }

    /// Closes a connection at both ends.
    fn close(&mut self, conn: ConnId) {
        let ids = self.ids();
        let now = self.now;
        for n in self.nodes.iter_mut() {
            if let Some(end) = n.conns.remove(&conn) {
                n.policy.disconnected(&ids[end.peer], conn);
                if let Some(a) = end.dialled {
                    n.policy.session_ended(a, end.session.heard_from_peer(), now - end.since);
                }
            }
        }
        self.wires.retain(|(c, _), _| *c != conn);
    }

    fn ids(&self) -> Vec<HubId> {
        self.nodes.iter().map(|n| n.id.clone()).collect()
    }

    /// The members as hub `i` sees them. A revoked hub does not know it is revoked: it keeps
    /// counting everyone.
    fn view(&self, i: usize) -> BTreeSet<HubId> {
        if Some(i) == self.revoked {
            self.ids().into_iter().collect()
        } else {
            self.members.clone()
        }
    }

    /// `a` dials `b`'s address, as its dial loop does.
    fn dial(&mut self, a: usize, b: usize) {
        if !self.nodes[a].policy.should_dial(addr(b)) {
            self.nodes[a].next_dial.insert(b, self.now + 1_000);
            return;
        }
        let reachable = self.nodes[b].up && self.linked(a, b);
        // TLS: both sides check the other's key against their members.
        let tls = reachable && self.accepts(b, a) && self.accepts(a, b);
        if reachable && !tls {
            *self.refused.entry((a, b)).or_default() += 1;
        }
        if tls {
            // The handshake completes at the two ends at different moments, in either order:
            // another connection between the same hubs may complete in between.
            let conn = self.next_conn;
            self.next_conn += 1;
            self.pending.push(Pending { conn, a, b, at_a: None, at_b: None });
        }
        let r = self.rng.gen::<u64>();
        let wait = self.nodes[a].policy.dial_failed(addr(b), r);
        // A live connection keeps its dialler from dialling again (`should_dial`); the wait is
        // what the loop sleeps after it drops.
        self.nodes[a].next_dial.insert(b, self.now + wait);
    }

    /// One end of a random handshake under way completes; once both have, the connection runs
    /// if both ends keep it, and closes if either calls it a duplicate.
    fn handshake_step(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let ids = self.ids();
        let k = self.rng.gen_range(0..self.pending.len());
        let first_a = self.rng.gen_bool(0.5);
        let p = &mut self.pending[k];
        if p.at_a.is_none() && (first_a || p.at_b.is_some()) {
            p.at_a = Some(self.nodes[p.a].policy.connected(&ids[p.b], p.conn, true, addr(p.b)));
        } else if p.at_b.is_none() {
            p.at_b = Some(self.nodes[p.b].policy.connected(&ids[p.a], p.conn, false, addr(p.a)));
        }
        let (Some(at_a), Some(at_b)) = (p.at_a.clone(), p.at_b.clone()) else { return };
        let Pending { conn, a, b, .. } = self.pending.remove(k);
        match (at_a, at_b) {
            (Connected::Keep { .. }, Connected::Keep { .. }) => {
                let t = self.t();
                for (x, y) in [(a, b), (b, a)] {
                    let mut session =
                        Session::sharing(PeerId::named(&format!("n{y}")), t, self.nodes[x].fetches.clone());
                    let first = session.start(&mut self.nodes[x].mem, t);
                    let dialled = (x == a).then_some(addr(b));
                    self.nodes[x].conns.insert(conn, End { peer: y, session, since: self.now, dialled });
                    self.wires.entry((conn, x)).or_default().extend(first);
                }
            }
            (ka, kb) => {
                // One end closes it: the other end's policy forgets it too.
                if matches!(ka, Connected::Keep { .. }) {
                    self.nodes[a].policy.disconnected(&ids[b], conn);
                }
                if matches!(kb, Connected::Keep { .. }) {
                    self.nodes[b].policy.disconnected(&ids[a], conn);
                }
            }
        }
    }

    /// Drops the handshakes under way that `gone` says are cut off.
    fn drop_pending(&mut self, gone: impl Fn(&Pending) -> bool) {
        let ids = self.ids();
        let (dropped, kept): (Vec<Pending>, Vec<Pending>) =
            std::mem::take(&mut self.pending).into_iter().partition(|p| gone(p));
        self.pending = kept;
        for p in dropped {
            if matches!(p.at_a, Some(Connected::Keep { .. })) {
                self.nodes[p.a].policy.disconnected(&ids[p.b], p.conn);
            }
            if matches!(p.at_b, Some(Connected::Keep { .. })) {
                self.nodes[p.b].policy.disconnected(&ids[p.a], p.conn);
            }
        }
    }

    /// The passing of time at every node: session ticks, policy reviews, due dials.
    fn tick(&mut self) {
        for _ in 0..self.rng.gen_range(0..=self.pending.len()) {
            self.handshake_step();
        }
        let ids = self.ids();
        let t = self.t();
        for i in 0..self.nodes.len() {
            if !self.nodes[i].up {
                continue;
            }
            let conns: Vec<ConnId> = self.nodes[i].conns.keys().copied().collect();
            for c in conns {
                let view = self.view(i);
                let node = &mut self.nodes[i];
                let Some(end) = node.conns.get_mut(&c) else { continue };
                let peer = end.peer;
                let review = node.policy.review(&ids[peer], c, &view);
                let tick = end.session.tick(t);
                let retried = if end.session.is_waiting() { end.session.retry(&mut node.mem, t) } else { vec![] };
                match (review, tick) {
                    (Review::Close(_), _) | (_, Tick::Dead) => self.close(c),
                    (Review::Keep, tick) => {
                        let wire = self.wires.entry((c, i)).or_default();
                        if let Tick::Send(f) = tick {
                            wire.push_back(f);
                        }
                        wire.extend(retried);
                    }
                }
            }
            let due: Vec<usize> =
                self.nodes[i].next_dial.iter().filter(|(_, at)| **at <= self.now).map(|(j, _)| *j).collect();
            for j in due {
                self.dial(i, j);
            }
        }
    }

    /// Delivers the next frame of one randomly chosen direction of one connection.
    fn deliver_one(&mut self) -> bool {
        let busy: Vec<(ConnId, usize)> = self.wires.iter().filter(|(_, q)| !q.is_empty()).map(|(k, _)| *k).collect();
        if busy.is_empty() {
            return false;
        }
        let (conn, from) = busy[self.rng.gen_range(0..busy.len())];
        let frame = self.wires.get_mut(&(conn, from)).unwrap().pop_front().unwrap();
        let frame = Frame::decode(&frame.encode()).unwrap();
        let Some(to) = self.nodes[from].conns.get(&conn).map(|e| e.peer) else { return true };
        // As the driver does: nothing from a peer that is no longer a member is applied.
        let view = self.view(to);
        let ids = self.ids();
        if let Review::Close(_) = self.nodes[to].policy.review(&ids[from], conn, &view) {
            self.close(conn);
            return true;
        }
        let t = self.t();
        let node = &mut self.nodes[to];
        let Some(end) = node.conns.get_mut(&conn) else { return true };
        let (out, changed) = end.session.handle(&mut node.mem, frame, t).expect("members send valid frames");
        self.wires.entry((conn, to)).or_default().extend(out);
        if changed {
            self.offer(to, Some(conn));
        }
        true
    }

    /// Offers node `i`'s documents to its connections (but `except`, where they came from).
    fn offer(&mut self, i: usize, except: Option<ConnId>) {
        let t = self.t();
        let node = &mut self.nodes[i];
        let docs = node.mem.docs();
        for (c, end) in node.conns.iter_mut() {
            if Some(*c) == except {
                continue;
            }
            for d in &docs {
                let out = end.session.changed(&mut node.mem, d, t);
                self.wires.entry((*c, i)).or_default().extend(out);
            }
        }
    }

    fn edit(&mut self, i: usize) {
        if !self.nodes[i].up {
            return;
        }
        self.edits += 1;
        let doc = DOCS[self.rng.gen_range(0..DOCS.len())];
        let n = self.edits;
        self.nodes[i].mem.edit(doc, n);
        let actor = self.nodes[i].mem.doc(doc).get_actor().to_string();
        let after_revocation = self.revoked == Some(i);
        self.writes.push((i, doc.to_string(), format!("r{n}-{actor}"), after_revocation));
        self.offer(i, None);
    }

    fn restart(&mut self, i: usize) {
        let conns: Vec<ConnId> = self.nodes[i].conns.keys().copied().collect();
        for c in conns {
            self.close(c);
        }
        self.drop_pending(|p| p.a == i || p.b == i);
        // Memory is gone (the back-off starts again); documents and sync states are on disk.
        self.refused.retain(|(a, _), _| *a != i);
        let id = self.nodes[i].id.clone();
        self.nodes[i].policy = Policy::new(id, Limits::default());
        let others: Vec<usize> = self.nodes[i].next_dial.keys().copied().collect();
        for j in others {
            self.nodes[i].next_dial.insert(j, self.now);
        }
    }

    fn set_cut(&mut self, a: usize, b: usize, cut: bool) {
        if a == b {
            return;
        }
        let key = (a.min(b), a.max(b));
        if cut {
            self.cut.insert(key);
            self.drop_pending(|p| (p.a.min(p.b), p.a.max(p.b)) == key);
            let doomed: Vec<ConnId> =
                self.nodes[a].conns.iter().filter(|(_, e)| e.peer == b).map(|(c, _)| *c).collect();
            for c in doomed {
                self.close(c);
            }
        } else {
            self.cut.remove(&key);
        }
    }

    /// Advances time in small steps, delivering frames as they come, until `ms` passed.
    fn run_for(&mut self, ms: i64) {
        let end = self.now + ms;
        while self.now < end {
            self.now += 250;
            for _ in 0..self.rng.gen_range(0..60) {
                if !self.deliver_one() {
                    break;
                }
            }
            self.tick();
        }
    }

    /// Runs until no frame is in flight and every pair of remaining members is connected.
    fn settle(&mut self) {
        let keep: Vec<usize> = (0..self.nodes.len()).filter(|i| Some(*i) != self.revoked).collect();
        for _ in 0..2_000 {
            while self.deliver_one() {}
            // Each pair of members on one connection (a replaced one closes at its next tick).
            let all_linked = keep.iter().all(|a| {
                keep.iter().all(|b| a == b || self.nodes[*a].conns.values().filter(|e| e.peer == *b).count() == 1)
            });
            if all_linked && self.pending.is_empty() && self.wires.values().all(VecDeque::is_empty) {
                // A last round of pings and offers crosses, then everything is quiet.
                return;
            }
            self.now += 250;
            self.tick();
        }
        panic!("the network never settled");
    }
}

fn keys(m: &mut Mem, doc: &str) -> BTreeSet<String> {
    let d = m.doc(doc);
    d.keys(automerge::ROOT).collect()
}

fn run(seed: u64) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let n = rng.gen_range(3..=7);
    let mut sim = Sim::new(n, rng);
    let revoke_at = sim.rng.gen_range(0..80);
    for step in 0..80 {
        match sim.rng.gen_range(0..12) {
            0..=4 => {
                let i = sim.rng.gen_range(0..n);
                sim.edit(i);
            }
            5 | 6 => {
                let (a, b) = (sim.rng.gen_range(0..n), sim.rng.gen_range(0..n));
                sim.set_cut(a, b, true);
            }
            7 | 8 => {
                let (a, b) = (sim.rng.gen_range(0..n), sim.rng.gen_range(0..n));
                sim.set_cut(a, b, false);
            }
            9 => {
                let i = sim.rng.gen_range(0..n);
                sim.nodes[i].up = false;
                sim.restart(i);
            }
            10 => {
                let i = sim.rng.gen_range(0..n);
                sim.nodes[i].up = true;
            }
            _ => {}
        }
        if step == revoke_at && n > 3 {
            // An admin revokes a hub; every other hub learns it at once (in the coalition
            // document, modelled here as the shared member list).
            let r = sim.rng.gen_range(1..n);
            sim.revoked = Some(r);
            let id = sim.nodes[r].id.clone();
            sim.members.remove(&id);
        }
        let ms = sim.rng.gen_range(0..3_000);
        sim.run_for(ms);
    }
    // Heal: every link up, every hub up; the policy's back-off must bring them all together.
    sim.cut.clear();
    for i in 0..n {
        sim.nodes[i].up = true;
    }
    sim.settle();
    let keep: Vec<usize> = (0..n).filter(|i| Some(*i) != sim.revoked).collect();
    // One connection per pair of members, and none with the revoked hub.
    for &a in &keep {
        for b in 0..n {
            let links = sim.nodes[a].conns.values().filter(|e| e.peer == b).count();
            let want = usize::from(a != b && Some(b) != sim.revoked);
            assert_eq!(links, want, "seed {seed}: hub {a} has {links} connections to hub {b}");
        }
    }
    // A refused hub is redialled ever more rarely: about log2(60 s / 0.2 s) quick tries, then
    // one a minute.
    let minutes = (sim.now - 1_000_000) / 60_000;
    for ((a, b), n) in &sim.refused {
        assert!(
            i64::from(*n) <= 12 + 2 * minutes,
            "seed {seed}: hub {a} dialled refusing hub {b} {n} times in {minutes} min"
        );
    }
    for doc in DOCS {
        let reference = keys(&mut sim.nodes[keep[0]].mem, doc);
        for &i in &keep[1..] {
            assert_eq!(keys(&mut sim.nodes[i].mem, doc), reference, "seed {seed}: hub {i} diverged on {doc}");
        }
        for (by, d, key, after_revocation) in &sim.writes {
            if d != doc {
                continue;
            }
            if *after_revocation {
                assert!(!reference.contains(key), "seed {seed}: a write of revoked hub {by} reached the members");
            } else if Some(*by) != sim.revoked {
                assert!(reference.contains(key), "seed {seed}: hub {by}'s write {key} was lost");
            }
        }
    }
}

#[test]
fn members_converge_under_the_real_connection_policy() {
    let seeds: u64 = std::env::var("AIDMESH_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(500);
    let first: u64 = std::env::var("AIDMESH_SIM_FIRST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    for seed in first..first + seeds {
        run(seed);
    }
}
