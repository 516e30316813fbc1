//! Deterministic multi-hub simulation: 3–7 real hubs (real store files) joined by an in-memory
//! network that delivers frames in a seeded random order, with partitions, restarts and
//! concurrent edits. Every run ends with every hub holding identical records, stock equal to the
//! sum of every movement made anywhere, and every over-allocation flagged.

mod util;

use aidmesh_hub::Driver;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use aidmesh_hub::model::views::Source;
use aidmesh_hub::model::{Body, Kind, Timestamp};
use aidmesh_hub::{Hub, ManualClock};
use aidmesh_mesh::session::{Frame, PeerId, Replica, Session, SharedFetches, Tick};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde_json::json;
use util::*;

struct Node {
    hub: Option<Hub>,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
    sessions: BTreeMap<usize, Session>,
    /// Which session fetches each document, shared by the node's sessions as a mesh's are.
    fetches: SharedFetches,
}

struct Net {
    nodes: Vec<Node>,
    /// Frames in flight from a to b, in order (a connection keeps order; links race each other).
    wires: BTreeMap<(usize, usize), VecDeque<Frame>>,
    clock: ManualClock,
    rng: ChaCha20Rng,
    /// What every node should end with: the sum of all movements, the allocations made, and
    /// the incidents reported at each node.
    moved: i64,
    allocated: u64,
    incidents: BTreeMap<usize, usize>,
}

struct Shared {
    place: String,
    item: String,
    offer: String,
    request: String,
    volunteer: String,
}

const OFFER_QTY: u64 = 12;

impl Net {
    /// `n` new hubs on their own store files, not yet connected.
    fn new(n: usize, clock: &ManualClock, rng: ChaCha20Rng) -> Net {
        let nodes = (0..n)
            .map(|i| {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("hub.aidmesh");
                let opts =
                    aidmesh_hub::InitOptions { hub_name: format!("hub {i}"), location: String::new(), pin: None };
                let hub = Hub::init(&path, PASS, &opts, config("coord", clock, i as u8 + 1)).unwrap();
                Node { hub: Some(hub), path, _dir: dir, sessions: BTreeMap::new(), fetches: Default::default() }
            })
            .collect();
        let mut net = Net {
            nodes,
            wires: BTreeMap::new(),
            clock: clock.clone(),
            rng,
            moved: 0,
            allocated: 0,
            incidents: BTreeMap::new(),
        };
        // One coalition: hub 0 founds it and admits the others, whose coordinators are admins.
        // Making an admin needs a majority of the admins: the coordinators made before sign it.
        for i in 1..n {
            let (key, person) = (net.hub(i).public_key(), net.hub(i).acting().unwrap().key.clone());
            let code = net.hub(0).admit(&key, &format!("hub {i}")).unwrap();
            net.hub(i).adopt(&code).unwrap();
            let coord = format!("coord{i}");
            let mut made = net.hub(0).add_person(&person, &coord, true).unwrap();
            for j in 1..i {
                if made {
                    break;
                }
                net.pass_authority(0, j);
                made = net.hub(j).endorse(&coord).unwrap();
                net.pass_authority(j, 0);
            }
            assert!(made, "{coord} is an admin");
        }
        net
    }

    /// Gives hub `to` the authority entries hub `from` holds and it lacks, as a sync would.
    fn pass_authority(&mut self, from: usize, to: usize) {
        let theirs = aidmesh_hub::Driver::authority_heads(self.hub(to)).unwrap();
        let entries = aidmesh_hub::Driver::authority_missing_for(self.hub(from), &theirs).unwrap();
        let r = aidmesh_hub::Driver::offer_authority(self.hub(to), &entries, "the set-up").unwrap();
        assert!(r.refused.is_empty(), "{:?}", r.refused);
    }

    fn hub(&mut self, i: usize) -> &mut Hub {
        self.nodes[i].hub.as_mut().expect("node is up")
    }

    fn connect(&mut self, a: usize, b: usize) {
        if a == b
            || self.nodes[a].sessions.contains_key(&b)
            || self.nodes[a].hub.is_none()
            || self.nodes[b].hub.is_none()
        {
            return;
        }
        let now = self.clock.now_ts();
        for (x, y) in [(a, b), (b, a)] {
            let peer = format!("node{y}");
            let mut s = Session::sharing(PeerId::named(&peer), now, self.nodes[x].fetches.clone());
            let frames = s.start(self.nodes[x].hub.as_mut().unwrap(), now);
            self.nodes[x].sessions.insert(y, s);
            self.wires.entry((x, y)).or_default().extend(frames);
        }
    }

    fn disconnect(&mut self, a: usize, b: usize) {
        self.nodes[a].sessions.remove(&b);
        self.nodes[b].sessions.remove(&a);
        self.wires.remove(&(a, b));
        self.wires.remove(&(b, a));
    }

    fn restart(&mut self, i: usize) {
        let peers: Vec<usize> = self.nodes[i].sessions.keys().copied().collect();
        for p in &peers {
            self.disconnect(i, *p);
        }
        self.nodes[i].hub = None;
        self.nodes[i].hub = Some(reopen(&self.nodes[i].path, &self.clock));
        for p in peers {
            self.connect(i, p);
        }
    }

    /// Offers the documents a node changed to all its peers: at once when the node made the
    /// change, heads first when it merged them from a peer (`relayed`), as the driver does.
    fn offer_changes(&mut self, i: usize, relayed: bool) {
        let now = self.clock.now_ts();
        let node = &mut self.nodes[i];
        let Some(hub) = node.hub.as_mut() else { return };
        let docs = hub.take_changed_docs();
        let vault = aidmesh_mesh::net::Hub::take_vault_changes(hub);
        let authority = hub.take_authority_changes();
        for (peer, s) in node.sessions.iter_mut() {
            let frames = s.authority_changed(authority.clone(), now);
            self.wires.entry((i, *peer)).or_default().extend(frames);
            for d in &docs {
                let frames = if relayed { s.relayed(hub, d, now) } else { s.changed(hub, d, now) };
                self.wires.entry((i, *peer)).or_default().extend(frames);
            }
            let frames = s.vault_changed(vault.clone(), now);
            self.wires.entry((i, *peer)).or_default().extend(frames);
        }
    }

    /// Delivers the next frame of one randomly chosen wire.
    fn deliver_one(&mut self) -> bool {
        let busy: Vec<(usize, usize)> = self.wires.iter().filter(|(_, q)| !q.is_empty()).map(|(k, _)| *k).collect();
        if busy.is_empty() {
            return false;
        }
        let (a, b) = busy[self.rng.gen_range(0..busy.len())];
        let frame = self.wires.get_mut(&(a, b)).unwrap().pop_front().unwrap();
        // Frames cross the wire as bytes.
        let frame = Frame::decode(&frame.encode()).unwrap();
        let now = self.clock.now_ts();
        let node = &mut self.nodes[b];
        let hub = node.hub.as_mut().unwrap();
        let s = node.sessions.get_mut(&a).unwrap();
        // Half the sync messages arrive as a transport hands over one it read ahead: with what
        // the hub prepared of it apart (whatever its size; a transport does so only past
        // `PREPARE_FROM` bytes).
        let prepared = match &frame {
            Frame::Sync { doc, msg, sigs } if self.rng.gen_bool(0.5) => {
                automerge::sync::Message::decode(msg).ok().and_then(|m| <Hub as Replica>::prepare(doc, &m, sigs))
            }
            _ => None,
        };
        let (out, _) = s.handle_prepared(hub, frame, prepared, now).expect("a member hub's frames are valid");
        self.wires.entry((b, a)).or_default().extend(out);
        self.offer_changes(b, true);
        true
    }

    /// What sessions that waited for another session's fetch send now (a driver's tick).
    fn retry(&mut self) -> bool {
        let now = self.clock.now_ts();
        let mut sent = false;
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let Some(hub) = node.hub.as_mut() else { continue };
            for (peer, s) in node.sessions.iter_mut().filter(|(_, s)| s.is_waiting()) {
                let frames = s.retry(hub, now);
                sent |= !frames.is_empty();
                self.wires.entry((i, *peer)).or_default().extend(frames);
            }
        }
        sent
    }

    /// Delivers until the network is quiet; then no fetch may still wait (on a running hub it
    /// would wait for its claim to lapse, seconds later: a peer asked that never answers).
    fn settle(&mut self) {
        let mut n = 0;
        while self.deliver_one() || self.retry() {
            n += 1;
            assert!(n < 200_000, "the network never went quiet");
        }
        let waiting: Vec<usize> =
            (0..self.nodes.len()).filter(|i| self.nodes[*i].sessions.values().any(Session::is_waiting)).collect();
        assert!(waiting.is_empty(), "quiet, yet hubs {waiting:?} wait for a fetch no frame in flight answers");
    }

    fn edit(&mut self, i: usize, shared: &Shared) {
        let op = self.rng.gen_range(0..5);
        let q = self.rng.gen_range(1..6);
        let hub = self.nodes[i].hub.as_mut().unwrap();
        match op {
            0 => {
                hub.add(
                    Kind::Movement,
                    fields(json!({"item": shared.item, "type": "receive", "quantity": q, "place": shared.place})),
                )
                .unwrap();
                self.moved += q;
            }
            1 => {
                // A hub only issues what it sees; merges may still take the level below zero.
                if hub
                    .add(
                        Kind::Movement,
                        fields(json!({"item": shared.item, "type": "issue", "quantity": q, "place": shared.place})),
                    )
                    .is_ok()
                {
                    self.moved -= q;
                }
            }
            2 => {
                hub.add(
                    Kind::Allocation,
                    fields(json!({"request": shared.request, "offer": shared.offer, "quantity": q})),
                )
                .unwrap();
                self.allocated += q as u64;
            }
            3 => {
                let handle = format!("handle-{}", self.rng.gen_range(0..1000));
                hub.update(&shared.volunteer, fields(json!({"availability": handle}))).unwrap();
            }
            _ => {
                hub.add(Kind::Incident, fields(json!({"occurred": "2026-11-25T10:00:00Z", "severity": q, "description": format!("incident at node {i}")}))).unwrap();
                *self.incidents.entry(i).or_default() += 1;
            }
        }
        self.offer_changes(i, false);
    }
}

trait NowTs {
    fn now_ts(&self) -> Timestamp;
}

impl NowTs for ManualClock {
    fn now_ts(&self) -> Timestamp {
        use aidmesh_hub::Clock;
        self.now()
    }
}

fn snapshot(hub: &Hub) -> Vec<String> {
    let mut out = Vec::new();
    for k in Kind::ALL {
        let mut recs: Vec<String> = hub
            .stored(*k, usize::MAX, 0)
            .unwrap()
            .into_iter()
            .filter(|r| r.kind() != Kind::Hub)
            .map(|r| serde_json::to_string(&r).unwrap())
            .collect();
        recs.sort();
        out.extend(recs);
    }
    out
}

fn run(seed: u64) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let n = rng.gen_range(3..=7);
    let clock = ManualClock::at(t0());
    let mut net = Net::new(n, &clock, rng);
    // Hub 0 sets up what everyone shares, then all meet once.
    let h0 = net.hub(0);
    let place = add(h0, Kind::Place, json!({"name": "Hall"}));
    let item = add(h0, Kind::Item, json!({"name": "Water", "unit": "bottle"}));
    add(h0, Kind::Movement, json!({"item": item, "type": "receive", "quantity": 20, "place": place}));
    let offer = add(h0, Kind::Offer, json!({"category": "shelter", "quantity": OFFER_QTY, "description": "blankets"}));
    let request = add(h0, Kind::Request, json!({"category": "shelter", "quantity": 50}));
    let volunteer = add(h0, Kind::Volunteer, json!({"handle": "fox"}));
    net.moved = 20;
    let shared = Shared { place, item, offer, request, volunteer };
    for a in 0..n {
        for b in a + 1..n {
            net.connect(a, b);
        }
    }
    net.settle();
    // Random life: edits, partial delivery, partitions, heals, restarts, time passing.
    for _ in 0..60 {
        clock.advance_ms(net.rng.gen_range(10..500));
        match net.rng.gen_range(0..10) {
            0..=3 => {
                let i = net.rng.gen_range(0..n);
                net.edit(i, &shared);
            }
            4..=6 => {
                for _ in 0..net.rng.gen_range(1..20) {
                    net.deliver_one();
                }
                net.retry();
            }
            7 => {
                let (a, b) = (net.rng.gen_range(0..n), net.rng.gen_range(0..n));
                net.disconnect(a, b);
            }
            8 => {
                let (a, b) = (net.rng.gen_range(0..n), net.rng.gen_range(0..n));
                net.connect(a, b);
            }
            _ => {
                let i = net.rng.gen_range(0..n);
                net.restart(i);
            }
        }
    }
    // Heal everything and let the network go quiet.
    for a in 0..n {
        for b in a + 1..n {
            net.connect(a, b);
        }
    }
    net.settle();
    let reference = snapshot(net.hub(0));
    for i in 1..n {
        assert_eq!(snapshot(net.hub(i)), reference, "seed {seed}: hub {i} differs from hub 0");
    }
    for i in 0..n {
        let water = &shared.item;
        let level: i64 = net.hub(i).stock(Some(water)).unwrap().iter().map(|s| s.quantity).sum();
        assert_eq!(level, net.moved, "seed {seed}: hub {i} stock is not the sum of all movements");
        let over = net.hub(i).overview().unwrap().over_allocations;
        if net.allocated > OFFER_QTY {
            assert_eq!(over.len(), 1, "seed {seed}: hub {i} must flag the over-allocation");
            assert_eq!(over[0].source, Source::Offer { offer: shared.offer.as_str().into() });
            assert_eq!(over[0].allocated, net.allocated);
        } else {
            assert!(over.is_empty(), "seed {seed}");
        }
    }
    // No incident was lost: every hub holds, for each node, as many as were reported there.
    for i in 0..n {
        let mut held: BTreeMap<usize, usize> = BTreeMap::new();
        for r in net.hub(i).stored(Kind::Incident, usize::MAX, 0).unwrap() {
            let Body::Incident(x) = &r.body else { panic!("seed {seed}: not an incident") };
            let node = x.description.strip_prefix("incident at node ").and_then(|n| n.parse().ok());
            *held.entry(node.unwrap_or_else(|| panic!("seed {seed}: {:?}", x.description))).or_default() += 1;
        }
        assert_eq!(held, net.incidents, "seed {seed}: hub {i}'s incidents per reporting node");
    }
}

#[test]
fn hubs_converge_under_partitions_reorderings_and_restarts() {
    for seed in 0..6 {
        run(seed);
    }
}

#[test]
fn a_silent_peer_is_declared_gone() {
    let clock = ManualClock::at(t0());
    let mut s = Session::new(PeerId::named("peer"), clock.now_ts());
    clock.advance_ms(aidmesh_mesh::session::DEAD_AFTER_MS + 1);
    assert_eq!(s.tick(clock.now_ts()), Tick::Dead);
}

/// How the sessions of [`sync_pair_with`] fetch documents.
#[derive(Clone, Copy, Debug)]
enum Fetching {
    /// Each shares its hub's fetches, as a node's sessions do: a message asks only where its
    /// hub fetches the document through it; the others give.
    Shared,
    /// Each asks for every document itself (`Session::new`).
    Own,
}

/// Both directions of one session between `a` and `b`, run until quiet, each sharing its hub's
/// fetches as a node's sessions do: the bytes both sent, the documents their sync messages were
/// about, and whether both sides count it as a sync.
fn sync_pair(a: &mut Hub, b: &mut Hub, now: Timestamp) -> (u64, BTreeSet<String>, bool) {
    sync_pair_with(a, b, now, Fetching::Shared)
}

/// [`sync_pair`], with sessions that fetch as `fetching` says.
fn sync_pair_with(a: &mut Hub, b: &mut Hub, now: Timestamp, fetching: Fetching) -> (u64, BTreeSet<String>, bool) {
    let session = |peer: &str| match fetching {
        Fetching::Shared => Session::sharing(PeerId::named(peer), now, SharedFetches::default()),
        Fetching::Own => Session::new(PeerId::named(peer), now),
    };
    let (mut sa, mut sb) = (session("b"), session("a"));
    let mut to_b: VecDeque<Frame> = sa.start(a, now).into();
    let mut to_a: VecDeque<Frame> = sb.start(b, now).into();
    let mut synced = BTreeSet::new();
    loop {
        if to_a.is_empty() && to_b.is_empty() {
            // What waited for a fetch to end, or its turn in the answer to an inventory, goes.
            to_b.extend(sa.retry(a, now));
            to_a.extend(sb.retry(b, now));
            if to_a.is_empty() && to_b.is_empty() {
                break;
            }
        }
        let mut note = |f: &Frame| {
            if let Frame::Sync { doc, .. } = f {
                synced.insert(doc.to_string());
            }
        };
        if let Some(f) = to_b.pop_front() {
            note(&f);
            to_a.extend(sb.handle(b, f, now).unwrap().0);
        }
        if let Some(f) = to_a.pop_front() {
            note(&f);
            to_b.extend(sa.handle(a, f, now).unwrap().0);
        }
    }
    let both = sa.last_synced().is_some() && sb.last_synced().is_some();
    (sa.traffic().bytes_out + sb.traffic().bytes_out, synced, both)
}

/// An incident a month for `months` months on `a`: a month log each.
fn incidents_a_month(a: &mut TestHub, months: usize) {
    for month in 0..months {
        a.clock.advance_ms(31 * 24 * 3_600_000);
        let at = a.clock.now_ts();
        add(
            &mut a.hub,
            Kind::Incident,
            json!({"occurred": at, "severity": 2, "description": format!("month {month}")}),
        );
    }
}

/// Every document a hub holds, with its heads.
fn heads(h: &mut Hub) -> Vec<(String, String)> {
    let mut v: Vec<_> = Replica::docs(h).into_iter().map(|d| (d.doc.to_string(), d.heads)).collect();
    v.sort();
    v
}

/// A new hub gets more documents than the serving hub keeps in memory: the serving hub offers
/// documents it no longer holds in memory, and takes the new hub's acknowledgements of them,
/// from the heads its store keeps, and the sync states it keeps make the next sessions cost
/// what changed. With sessions that share their hub's fetches (as a node's do), the serving hub
/// reads each document from its store at most once in the first sync, and the new hub none;
/// neither reads any in a reconnect where nothing changed, and each at most the changed one
/// after an edit. Sessions that ask for everything converge as well.
#[test]
fn a_new_hub_gets_more_documents_than_the_serving_hub_keeps_in_memory() {
    for fetching in [Fetching::Shared, Fetching::Own] {
        let mut a = new_hub("North", 1);
        let mut b = new_hub("South", 2);
        incidents_a_month(&mut a, 10);
        let logs = Replica::docs(&mut a.hub).iter().filter(|d| d.partition.starts_with("incident")).count();
        assert_eq!(logs, 10);
        join(&mut a.hub, &mut b.hub);
        let now = a.clock.now_ts();
        let docs = Replica::docs(&mut a.hub).len() as u64;
        let loads = |a: &Hub, b: &Hub| (a.documents_loaded(), b.documents_loaded());
        let before = loads(&a.hub, &b.hub);
        let (_, first, both) = sync_pair_with(&mut a.hub, &mut b.hub, now, fetching);
        let after = loads(&a.hub, &b.hub);
        assert!(both, "{fetching:?}");
        assert_eq!(b.hub.count(Kind::Incident).unwrap(), 10, "{fetching:?}");
        // Sessions that ask for everything make each first message on the document, for the
        // summary of its changes it carries, and read it again to answer: twice.
        let most = match fetching {
            Fetching::Shared => docs,
            Fetching::Own => 2 * docs,
        };
        assert!(
            after.0 - before.0 <= most && after.1 == before.1,
            "{fetching:?}: the first sync of {docs} documents read {} from the serving hub's store and {} \
             from the new hub's, which held none of them",
            after.0 - before.0,
            after.1 - before.1
        );
        assert_eq!(heads(&mut a.hub), heads(&mut b.hub), "{fetching:?}");
        assert!(first.len() >= 10, "{fetching:?}: every document synced: {first:?}");
        // Nothing changed: a new session syncs nothing, and reads no document.
        let before = loads(&a.hub, &b.hub);
        let (idle, synced, counted) = sync_pair_with(&mut a.hub, &mut b.hub, now, fetching);
        assert!(synced.is_empty() && counted, "{fetching:?}: {synced:?}");
        assert!(idle < 200, "{fetching:?}: a reconnect with nothing changed sent {idle} bytes");
        assert_eq!(loads(&a.hub, &b.hub), before, "{fetching:?}: a reconnect with nothing changed read documents");
        // One more incident in an old month's log: that document alone goes, as changes.
        add(&mut a.hub, Kind::Incident, json!({"occurred": now, "severity": 3, "description": "one more"}));
        let before = loads(&a.hub, &b.hub);
        let (_, synced, _) = sync_pair_with(&mut a.hub, &mut b.hub, now, fetching);
        let after = loads(&a.hub, &b.hub);
        assert_eq!(synced.len(), 1, "{fetching:?}");
        assert!(
            after.0 - before.0 <= 1 && after.1 - before.1 <= 1,
            "{fetching:?}: one changed document, read {before:?} -> {after:?} times"
        );
        assert_eq!(b.hub.count(Kind::Incident).unwrap(), 11, "{fetching:?}");
        assert_eq!(heads(&mut a.hub), heads(&mut b.hub), "{fetching:?}");
    }
}

/// What a hub takes from peers is committed in groups (the store's resendable writes, see
/// `Store::write_resendable`): a hub that crashes, or loses power, before a group commits loses
/// that group whole, with the sync states that say it arrived, and the next sync brings all of
/// it again, although the serving hub's sync state says it was delivered. The crash is the
/// hub's files as they lay on the disk while a group was open.
#[test]
fn a_hub_that_crashes_before_what_peers_sent_is_committed_gets_it_again() {
    let mut a = new_hub("North", 1);
    let mut b = new_hub("South", 2);
    incidents_a_month(&mut a, 10);
    join(&mut a.hub, &mut b.hub);
    let now = a.clock.now_ts();
    let (_, _, both) = sync_pair(&mut a.hub, &mut b.hub, now);
    assert!(both);
    assert_eq!(b.hub.count(Kind::Incident).unwrap(), 10, "reads see what is not yet committed");
    // The crash: the files as they are now (the log's frames past its last commit are not
    // part of the file, as after a power cut).
    let sibling = |p: &std::path::Path, tail: &str| {
        let mut s = p.as_os_str().to_owned();
        s.push(tail);
        std::path::PathBuf::from(s)
    };
    let image = b.path.with_extension("crashed");
    std::fs::copy(&b.path, &image).unwrap();
    let wal = sibling(&b.path, "-wal");
    let had_wal = wal.exists() && std::fs::copy(&wal, sibling(&image, "-wal")).is_ok();
    // The rest of `b` (its folder) stays until the end of the test.
    let TestHub { hub, clock, path, .. } = b;
    drop(hub);
    for tail in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(sibling(&path, tail));
    }
    std::fs::rename(&image, &path).unwrap();
    if had_wal {
        std::fs::rename(sibling(&image, "-wal"), &wal).unwrap();
    }
    let mut b = reopen(&path, &clock);
    let kept = b.count(Kind::Incident).unwrap();
    assert!(kept < 10, "the open group was lost in the crash ({kept} incidents kept)");
    let (_, synced, both) = sync_pair(&mut a.hub, &mut b, now);
    assert!(both && !synced.is_empty());
    assert_eq!(b.count(Kind::Incident).unwrap(), 10, "the next sync brought back what the crash lost");
    assert_eq!(heads(&mut a.hub), heads(&mut b));
    // What the second sync brought was kept: closed and opened again, it is all there.
    drop(b);
    let b = reopen(&path, &clock);
    assert_eq!(b.count(Kind::Incident).unwrap(), 10);
}

/// A hub whose disk fills in the middle of a first sync ends that session with the disk's
/// error and keeps only what it stored: the group of what the peer sent that the full disk
/// undid is forgotten in memory too, so its own writes meanwhile build on what is stored. Once
/// there is room, the next sync brings the rest, and after a restart every document is whole.
#[test]
fn a_hub_whose_disk_fills_in_a_sync_keeps_what_it_stored_and_gets_the_rest_later() {
    let mut a = new_hub("North", 1);
    let mut b = new_hub("South", 2);
    let now = a.clock.now_ts();
    // A march's records (about 2,000, in documents of every kind), a few MiB in an index.
    let scale = aidmesh_hub::Scale {
        items: 300,
        volunteers: 200,
        incidents: 500,
        movements: 1000,
        requests: 40,
        offers: 30,
        shifts: 30,
        expenses: 20,
    };
    let recs = aidmesh_hub::generate(scale, 3, now);
    a.hub.import_records(recs.into_iter().map(Ok).enumerate().collect()).unwrap();
    join(&mut a.hub, &mut b.hub);
    // Room for a part of it only.
    b.hub.limit_store_size(1).unwrap();
    let (mut sa, mut sb) = (Session::new(PeerId::named("b"), now), Session::new(PeerId::named("a"), now));
    let mut to_b: VecDeque<Frame> = sa.start(&mut a.hub, now).into();
    let mut to_a: VecDeque<Frame> = sb.start(&mut b.hub, now).into();
    let mut ended = None;
    while ended.is_none() && (!to_a.is_empty() || !to_b.is_empty()) {
        if let Some(f) = to_b.pop_front() {
            match sb.handle(&mut b.hub, f, now) {
                Ok((out, _)) => to_a.extend(out),
                // The driver ends the connection at a session's error.
                Err(e) => ended = Some(e.to_string()),
            }
        }
        if let Some(f) = to_a.pop_front() {
            to_b.extend(sa.handle(&mut a.hub, f, now).unwrap().0);
        }
    }
    let ended = ended.expect("the disk filled before the sync ended");
    assert!(ended.contains("disk is full"), "{ended}");
    let (all, kept) = (a.hub.count(Kind::Movement).unwrap(), b.hub.count(Kind::Movement).unwrap());
    assert!(kept < all, "{kept} of {all} movements kept");
    // What it holds in memory is what it stored: its own write to a document it took from the
    // peer builds on that.
    b.hub.limit_store_size(1000).unwrap();
    add(&mut b.hub, Kind::Incident, json!({"occurred": now, "severity": 1, "description": "after the full disk"}));
    let (_, _, both) = sync_pair(&mut a.hub, &mut b.hub, now);
    assert!(both);
    assert_eq!(b.hub.count(Kind::Movement).unwrap(), all, "the next sync brought the rest");
    assert_eq!(heads(&mut a.hub), heads(&mut b.hub));
    let (path, clock) = (b.path.clone(), b.clock.clone());
    drop(b.hub);
    let mut b = reopen(&path, &clock);
    assert_eq!(b.count(Kind::Movement).unwrap(), all);
    assert_eq!(heads(&mut a.hub), heads(&mut b), "every document whole after a restart");
}

/// A document a peer only offered its heads for (the link dropped before its content came) is
/// not filed here (nothing signed came with the offer); a full bundle written then imports on
/// every hub, and the next sync brings the content.
#[test]
fn a_bundle_written_after_a_peer_only_offered_a_document_imports_everywhere() {
    let mut a = new_hub("North", 1);
    let mut b = new_hub("South", 2);
    let mut c = new_hub("East", 3);
    for n in 0..3 {
        add(&mut a.hub, Kind::Item, json!({"name": format!("item {n}"), "unit": "box"}));
    }
    join(&mut a.hub, &mut b.hub);
    join(&mut a.hub, &mut c.hub);
    let now = a.clock.now_ts();
    // A session in which nothing B asks reaches A.
    let mut sa = Session::sharing(PeerId::named("b"), now, SharedFetches::default());
    let mut sb = Session::sharing(PeerId::named("a"), now, SharedFetches::default());
    let mut to_b: VecDeque<Frame> = sa.start(&mut a.hub, now).into();
    let mut to_a: VecDeque<Frame> = sb.start(&mut b.hub, now).into();
    let mut offered = 0;
    while !to_a.is_empty() || !to_b.is_empty() {
        if let Some(f) = to_b.pop_front() {
            offered += usize::from(matches!(f, Frame::Sync { .. }));
            to_a.extend(sb.handle(&mut b.hub, f, now).unwrap().0);
        }
        if let Some(f) = to_a.pop_front() {
            if !matches!(f, Frame::Sync { .. }) {
                to_b.extend(sa.handle(&mut a.hub, f, now).unwrap().0);
            }
        }
    }
    assert!(offered > 0, "A offered its documents");
    assert_eq!(b.hub.count(Kind::Item).unwrap(), 0, "nothing but the offers reached B");
    let item_docs = |h: &mut Hub| Replica::docs(h).into_iter().filter(|d| d.partition == "item").count();
    assert_eq!(item_docs(&mut b.hub), 0, "B filed nothing it was only offered");
    let bundle = b.hub.export_bundle(true, &[]).unwrap();
    for (name, hub) in [("A", &mut a.hub), ("C", &mut c.hub)] {
        if let Err(e) = hub.import_bundle(&bundle.bytes) {
            panic!("{name} refused B's bundle: {e}");
        }
    }
    let now = a.clock.now_ts();
    sync_pair(&mut a.hub, &mut b.hub, now);
    assert_eq!(b.hub.count(Kind::Item).unwrap(), 3);
}

#[test]
fn a_reconnect_sends_only_what_changed() {
    let mut a = new_hub("North", 1);
    let mut b = new_hub("South", 2);
    for n in 0..200 {
        add(&mut a.hub, Kind::Item, json!({"name": format!("item {n}"), "unit": "box"}));
    }
    for n in 0..20 {
        add(&mut a.hub, Kind::Place, json!({"name": format!("place {n}")}));
        add(&mut a.hub, Kind::Volunteer, json!({"handle": format!("v{n}")}));
    }
    let now = a.clock.now_ts();
    let sync = |a: &mut Hub, b: &mut Hub| sync_pair(a, b, now);
    // One coalition: b takes a's founding hub and is admitted, and the first sync brings a's
    // authority log.
    join(&mut a.hub, &mut b.hub);
    let (first, _, _) = sync(&mut a.hub, &mut b.hub);
    assert_eq!(b.hub.count(Kind::Item).unwrap(), 200);
    assert_eq!(b.hub.count(Kind::Volunteer).unwrap(), 20);
    assert_eq!(b.hub.authority_heads().unwrap(), a.hub.authority_heads().unwrap());
    let docs = Replica::docs(&mut a.hub);
    assert!(docs.len() >= 3, "the records span several documents: {docs:?}");
    // Nothing changed: new sessions, as after a restart, exchange two summaries and no document.
    let (idle, synced, counted) = sync(&mut a.hub, &mut b.hub);
    assert!(synced.is_empty(), "a reconnect with nothing changed synced {synced:?}");
    assert!(counted, "holding the same is a sync: the peer is shown as synced just now");
    assert!(idle < 200, "a reconnect with nothing changed sent {idle} bytes");
    // One record changed: only its document is synced, and the persisted sync states keep it small.
    add(&mut a.hub, Kind::Item, json!({"name": "one more", "unit": "box"}));
    let (second, synced, _) = sync(&mut a.hub, &mut b.hub);
    assert_eq!(b.hub.count(Kind::Item).unwrap(), 201);
    assert_eq!(synced.len(), 1, "one record changed, yet {synced:?} synced");
    // The first sync carried 240 records; this one carries one, besides the opening.
    assert!(second * 5 < first, "reconnect sent {second} bytes, first sync {first}");
}

#[test]
fn vault_entries_and_their_erasure_reach_every_member_hub() {
    let clock = ManualClock::at(t0());
    let mut net = Net::new(3, &clock, ChaCha20Rng::seed_from_u64(9));
    let vid = net.hub(0).vault_put(&fields(json!({"name": "Amal Haddad", "phone": "+34 600"}))).unwrap();
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        net.connect(a, b);
    }
    net.settle();
    for i in 0..3 {
        // Hubs that joined by adopting the founder send nothing of the coalition they left.
        assert_eq!(net.hub(i).authority_refusals_count().unwrap(), 0, "hub {i} refused an entry");
        let aidmesh_hub::VaultState::Present(pt) = net.hub(i).vault_get(&vid).unwrap() else {
            panic!("hub {i} lacks the entry")
        };
        assert!(String::from_utf8(pt).unwrap().contains("Amal"));
    }
    // Admins at hubs 0 and 1 read it, saying why (a reason that names the person).
    // What someone who seized the laptop and has its passphrase finds on disk, every page of
    // the file and its log decrypted (free ones too).
    let on_disk = |net: &Net, i: usize| {
        String::from_utf8_lossy(&aidmesh_store::forensic::plaintext(&net.nodes[i].path, util::PASS).unwrap())
            .into_owned()
    };
    for i in [0, 1] {
        net.hub(i).read_contact(&vid, "drive Amal to the clinic").unwrap();
        assert!(on_disk(&net, i).contains("drive Amal to the clinic"), "hub {i}");
    }
    // Hub 1 is away while hub 2 erases the entry; when it comes back, the erasure reaches it.
    net.disconnect(0, 1);
    net.disconnect(1, 2);
    net.hub(2).vault_erase(&vid).unwrap();
    net.offer_changes(2, false);
    net.settle();
    assert!(matches!(net.hub(0).vault_get(&vid).unwrap(), aidmesh_hub::VaultState::Erased { .. }));
    assert!(matches!(net.hub(1).vault_get(&vid).unwrap(), aidmesh_hub::VaultState::Present(_)));
    net.restart(1);
    net.connect(1, 2);
    net.settle();
    for i in 0..3 {
        assert!(matches!(net.hub(i).vault_get(&vid).unwrap(), aidmesh_hub::VaultState::Erased { .. }), "hub {i}");
        assert!(!on_disk(&net, i).contains("Amal"), "hub {i}");
    }
    // The reasons are blanked where the erasure arrived from elsewhere too; who read it stays.
    for i in [0, 1] {
        let reads = net.hub(i).contact_reads(10).unwrap();
        let reasons: Vec<&str> = reads.iter().filter(|r| r.vault == vid).map(|r| r.reason.as_str()).collect();
        assert_eq!(reasons, vec![""], "hub {i}");
    }
    // Hub 1's stale copy never brings the content back.
    net.connect(0, 1);
    net.settle();
    assert!(matches!(net.hub(0).vault_get(&vid).unwrap(), aidmesh_hub::VaultState::Erased { .. }));
}

/// A contact saved again (a health detail removed, a number changed) is not kept as it was
/// anywhere: the key that opens the old version is on no page of either hub's file or log, as
/// someone who seized the laptop with its passphrase would look, once the new one reached it.
#[test]
fn a_contact_saved_again_leaves_its_old_version_on_no_hubs_disk() {
    let clock = ManualClock::at(t0());
    let mut net = Net::new(2, &clock, ChaCha20Rng::seed_from_u64(13));
    let owl = add(net.hub(0), Kind::Volunteer, json!({"handle": "loud-owl", "consent": {"share": true}}));
    let v = net.hub(0).set_contact(&owl, &fields(json!({"name": "Bo", "access_needs": "epilepsy"}))).unwrap();
    let vid = v.vault.unwrap();
    net.connect(0, 1);
    net.settle();
    // The key each hub sealed the entry under, read with SQLCipher beside the running hub.
    let key_at = |net: &Net, i: usize| -> Vec<u8> {
        let path = &net.nodes[i].path;
        let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        conn.pragma_update(None, "key", aidmesh_store::Store::sqlcipher_key(path, util::PASS).unwrap().as_str())
            .unwrap();
        conn.query_row("SELECT key FROM vault_keys WHERE id = ?1", [&vid], |r| r.get(0)).unwrap()
    };
    let on_disk = |net: &Net, i: usize, key: &[u8]| {
        let disk = aidmesh_store::forensic::plaintext(&net.nodes[i].path, util::PASS).unwrap();
        disk.windows(key.len()).any(|w| w == key)
    };
    let old: Vec<Vec<u8>> = (0..2).map(|i| key_at(&net, i)).collect();
    for (i, key) in old.iter().enumerate() {
        assert!(on_disk(&net, i, key), "hub {i} holds the entry");
    }
    net.hub(0).set_contact(&owl, &fields(json!({"phone": "+34 600", "access_needs": ""}))).unwrap();
    net.offer_changes(0, false);
    net.settle();
    assert_eq!(
        net.hub(1).read_contact(&owl, "call about the kitchen rota").unwrap(),
        fields(json!({"name": "Bo", "phone": "+34 600"}))
    );
    for (i, key) in old.iter().enumerate() {
        assert_ne!(&key_at(&net, i), key, "hub {i} sealed the new version under a new key");
        assert!(!on_disk(&net, i, key), "hub {i} keeps the key to the old version");
    }
}

#[test]
fn a_contact_without_consent_to_share_stays_at_its_hub_and_every_read_is_logged() {
    use aidmesh_hub::ContactState;
    let clock = ManualClock::at(t0());
    let mut net = Net::new(2, &clock, ChaCha20Rng::seed_from_u64(11));
    let private =
        add(net.hub(0), Kind::Volunteer, json!({"handle": "quiet-fox", "consent": {"contact": true, "share": false}}));
    let shared =
        add(net.hub(0), Kind::Volunteer, json!({"handle": "loud-owl", "consent": {"contact": true, "share": true}}));
    let pv = net.hub(0).set_contact(&private, &fields(json!({"name": "Amal Haddad", "phone": "+34 600"}))).unwrap();
    let sv = net.hub(0).set_contact(&shared, &fields(json!({"name": "Bo Lind"}))).unwrap();
    assert!(matches!(pv.state, ContactState::Held { here_only: true, ours: true, .. }), "{pv:?}");
    assert!(matches!(sv.state, ContactState::Held { here_only: false, ours: true, .. }), "{sv:?}");
    assert_eq!(net.hub(0).get(&private).unwrap().to_json()["contact"], json!(pv.vault.clone().unwrap()));
    // Neither a bundle nor a session carries the contact kept here.
    let bundle = net.hub(0).export_bundle(true, &[]).unwrap();
    assert_eq!(bundle.summary.vault_entries, 1);
    net.connect(0, 1);
    net.settle();
    assert_eq!(net.hub(1).contact(&private).unwrap().state, ContactState::NotHere);
    assert!(net.hub(1).vault_get(pv.vault.as_deref().unwrap()).is_err(), "hub 1 never received it");
    assert!(matches!(
        net.hub(1).contact(&shared).unwrap().state,
        ContactState::Held { here_only: false, ours: false, .. }
    ));
    // Consent to share withdrawn: the shared copy is erased on every hub; a new one stays here.
    net.hub(0).update(&shared, fields(json!({"consent": {"contact": true, "share": false}}))).unwrap();
    let sv2 = net.hub(0).set_contact(&shared, &fields(json!({"name": "Bo Lind", "phone": "+46 70"}))).unwrap();
    assert_ne!(sv2.vault, sv.vault);
    assert!(matches!(sv2.state, ContactState::Held { here_only: true, .. }));
    net.offer_changes(0, false);
    net.settle();
    assert!(matches!(
        net.hub(1).vault_get(sv.vault.as_deref().unwrap()).unwrap(),
        aidmesh_hub::VaultState::Erased { .. }
    ));
    assert_eq!(net.hub(1).contact(&shared).unwrap().state, ContactState::NotHere);
    // A read needs a reason; a refused read is not logged and shows nothing.
    let e = net.hub(0).read_contact(&private, "  ok ").unwrap_err();
    assert_eq!(e.code(), "invalid");
    assert!(e.to_string().contains("reason"), "{e}");
    assert!(net.hub(0).contact_reads(10).unwrap().is_empty());
    let m = net.hub(0).read_contact(&private, "call about the night shift").unwrap();
    assert_eq!(m["name"], json!("Amal Haddad"));
    let reads = net.hub(0).contact_reads(10).unwrap();
    assert_eq!(reads.len(), 1);
    assert_eq!((reads[0].by.as_str(), reads[0].record.as_str()), ("coord", private.as_str()));
    assert_eq!(reads[0].reason, "call about the night shift");
    // With no one unlocked, no one reads, nor sees who read what.
    net.hub(0).lock_person();
    assert_eq!(net.hub(0).read_contact(&private, "just looking").unwrap_err().code(), "not_allowed");
    assert_eq!(net.hub(0).contact_reads(10).unwrap_err().code(), "not_allowed");
    net.hub(0).unlock("coord", None).unwrap();
    assert_eq!(net.hub(0).contact_reads(10).unwrap().len(), 1);
    // Read by its vault id, the read is logged with the record that names it.
    net.hub(0).read_contact(pv.vault.as_deref().unwrap(), "checking the number").unwrap();
    assert_eq!(net.hub(0).contact_reads(1).unwrap()[0].record, private);
    // A plain member at another hub may not erase a contact whose consent hub 0 holds.
    let other = net.hub(1).acting().unwrap().key.clone();
    assert!(net.hub(0).set_admin(&other, false).unwrap(), "with two admins, the other one is enough");
    let shared2 = add(net.hub(0), Kind::Volunteer, json!({"handle": "tall-elk", "consent": {"share": true}}));
    let v3 = net.hub(0).set_contact(&shared2, &fields(json!({"name": "Cy"}))).unwrap();
    net.offer_changes(0, false);
    net.settle();
    let e = net.hub(1).erase_contact(&shared2).unwrap_err();
    assert_eq!(e.code(), "not_allowed", "{e}");
    assert!(matches!(net.hub(1).contact(&shared2).unwrap().state, ContactState::Held { .. }));
    assert!(matches!(net.hub(0).vault_get(v3.vault.as_deref().unwrap()).unwrap(), aidmesh_hub::VaultState::Present(_)));
    // A member at hub 1 reads it, saying why; its own hub erases it, and the erasure reaches
    // hub 1, where the reason given is blanked (it may name the person).
    net.hub(1).read_contact(&shared2, "drive Cy to the clinic on Calle Mayor").unwrap();
    net.hub(0).erase_contact(&shared2).unwrap();
    net.offer_changes(0, false);
    net.settle();
    assert!(matches!(net.hub(1).contact(&shared2).unwrap().state, ContactState::Erased { .. }));
    let reads = net.hub(1).contact_reads(10).unwrap();
    assert_eq!(reads.len(), 1);
    assert_eq!((reads[0].record.as_str(), reads[0].reason.as_str()), (shared2.as_str(), ""));
}

#[test]
fn consent_changed_at_another_hub_never_widens_a_contact_and_a_withdrawal_keeps_it_here() {
    use aidmesh_hub::ContactState;
    let clock = ManualClock::at(t0());
    let mut net = Net::new(2, &clock, ChaCha20Rng::seed_from_u64(12));
    let fox = add(net.hub(0), Kind::Volunteer, json!({"handle": "quiet-fox", "consent": {"share": false}}));
    let owl = add(net.hub(0), Kind::Volunteer, json!({"handle": "loud-owl", "consent": {"share": true}}));
    net.hub(0).set_contact(&fox, &fields(json!({"name": "Amal"}))).unwrap();
    let shared = net.hub(0).set_contact(&owl, &fields(json!({"name": "Bo"}))).unwrap().vault.unwrap();
    net.connect(0, 1);
    net.settle();
    // A member at hub 1 says fox consented to share, and that owl withdrew it.
    net.hub(1).update(&fox, fields(json!({"consent": {"share": true}}))).unwrap();
    net.hub(1).update(&owl, fields(json!({"consent": {"share": false}}))).unwrap();
    net.offer_changes(1, false);
    net.settle();
    // Fox's contact stays here, even when a coordinator saves it again.
    let f = net.hub(0).set_contact(&fox, &fields(json!({"name": "Amal", "phone": "+34 600"}))).unwrap();
    assert!(matches!(f.state, ContactState::Held { here_only: true, .. }), "{f:?}");
    // Owl's shared copy is erased on every hub; hub 0 keeps the contact here under a new id.
    let o = net.hub(0).contact(&owl).unwrap();
    assert!(matches!(o.state, ContactState::Held { here_only: true, .. }), "{o:?}");
    assert_ne!(o.vault.as_deref(), Some(shared.as_str()));
    // Moving it was the hub's doing, not its unlocked coordinator's: signed by the hub alone.
    let here = net.hub(0).hub_id().to_string();
    let h = net.hub(0).history(&owl).unwrap();
    assert!(h.iter().any(|l| l.hub == here && l.person.is_some()), "the coordinator added owl: {h:?}");
    assert!(h.iter().any(|l| l.hub == here && l.person.is_none()), "the hub moved the contact: {h:?}");
    net.offer_changes(0, false);
    net.settle();
    assert!(matches!(net.hub(1).vault_get(&shared).unwrap(), aidmesh_hub::VaultState::Erased { .. }));
    assert_eq!(net.hub(1).contact(&fox).unwrap().state, ContactState::NotHere);
    assert_eq!(net.hub(1).contact(&owl).unwrap().state, ContactState::NotHere);
    assert_eq!(
        net.hub(0).read_contact(&owl, "call about the kitchen").unwrap()["name"],
        json!("Bo"),
        "the contact itself is kept"
    );
    // An admin at hub 1 erases fox's contact, which only hub 0 holds: signed here, destroyed
    // there when the erasure reaches it (hub 1 says so, not that it destroyed it).
    let fv = net.hub(1).contact(&fox).unwrap().vault.unwrap();
    assert_eq!(net.hub(1).vault_erase(&fv).unwrap(), aidmesh_hub::Erased::Elsewhere);
    assert!(matches!(net.hub(0).contact(&fox).unwrap().state, ContactState::Held { .. }), "not yet");
    net.offer_changes(1, false);
    net.settle();
    assert!(matches!(net.hub(0).contact(&fox).unwrap().state, ContactState::Erased { .. }));
    // A vault id that no record names is not erased from afar (a typo signs nothing).
    assert_eq!(net.hub(1).vault_erase("vnothing").unwrap_err().code(), "not_found");
}

/// Two hubs apart each save a contact for the same request: its `contact` holds both values, a
/// conflict the Overview lists, and keeping one by hand settles it (any other value by hand is
/// refused: only the contact form points a record at a vault entry).
#[test]
fn a_contact_saved_on_two_hubs_apart_is_settled_by_keeping_one() {
    let clock = ManualClock::at(t0());
    let mut net = Net::new(2, &clock, ChaCha20Rng::seed_from_u64(13));
    let req = add(net.hub(0), Kind::Request, json!({"category": "water", "quantity": 2}));
    net.connect(0, 1);
    net.settle();
    net.disconnect(0, 1);
    let here = net.hub(0).set_contact(&req, &fields(json!({"name": "Amal"}))).unwrap().vault.unwrap();
    let there = net.hub(1).set_contact(&req, &fields(json!({"name": "Amal H."}))).unwrap().vault.unwrap();
    let apart = net.hub(0).vault_put(&fields(json!({"name": "Cy"}))).unwrap();
    net.connect(0, 1);
    net.settle();
    let e = net.hub(0).update(&req, fields(json!({"contact": apart}))).unwrap_err();
    assert!(e.to_string().contains("contact form"), "{e}");
    net.hub(0).update(&req, fields(json!({"contact": there}))).unwrap();
    net.offer_changes(0, false);
    net.settle();
    for i in 0..2 {
        assert_eq!(net.hub(i).get(&req).unwrap().to_json()["contact"], json!(there), "hub {i}");
    }
    assert_ne!(here, there);
}
