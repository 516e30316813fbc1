//! Hostile and broken peers against a real hub over real TLS on loopback: each is dropped, the
//! hub keeps serving its members, and no record changes.

mod util;

use aidmesh_hub::Driver;
use std::net::SocketAddr;
use std::time::Duration;

use aidmesh_hub::model::Kind;
use aidmesh_mesh::keyring::Keyring;
use aidmesh_mesh::net::{connect, throwaway_configs, Mesh};
use aidmesh_mesh::session::{Frame, MAX_FRAME};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use util::*;

/// Dials a hub as `identity` holding `keyring`, through the real handshake, and reads the
/// hub's first frame.
async fn tls(
    identity: &aidmesh_mesh::Identity,
    keyring: &Keyring,
    server: &aidmesh_mesh::HubId,
    addr: SocketAddr,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let (_, client) = throwaway_configs([9; 32]).map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(client);
    let (mut s, _) =
        connect(&connector, identity, keyring, |id| id == server, addr).await.map_err(|e| e.to_string())?;
    let mut len = [0u8; 4];
    match tokio::time::timeout(Duration::from_secs(3), s.read_exact(&mut len)).await {
        Ok(Ok(_)) => {
            let n = u32::from_be_bytes(len) as usize;
            let mut buf = vec![0; n];
            s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
            Ok(s)
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no first frame".into()),
    }
}

/// North's hub served on a mesh (the caller keeps North's folder), and what South dials it
/// with: North's key, South's identity and keyring.
fn north_served(
    north: aidmesh_hub::Hub,
    south: &TestHub,
) -> (Mesh<aidmesh_hub::Hub>, aidmesh_mesh::HubId, aidmesh_mesh::Identity, Keyring) {
    let (north_id, north_identity) = (north.fingerprint(), north.identity());
    let mesh = Mesh::new(north, &north_identity, [1; 32]).unwrap();
    (mesh, north_id, south.hub.identity(), south.hub.keyring().unwrap())
}

/// Writes frames as the driver does (each after its 4-byte length), in one write.
async fn send(s: &mut tokio_rustls::client::TlsStream<TcpStream>, frames: Vec<Frame>) {
    let bytes: Vec<u8> = frames
        .into_iter()
        .flat_map(|f| {
            let f = f.encode();
            [(f.len() as u32).to_be_bytes().to_vec(), f].concat()
        })
        .collect();
    s.write_all(&bytes).await.unwrap();
    s.flush().await.unwrap();
}

/// Reads until the server closes the connection; true if it did within the time.
async fn closed_by_server(s: &mut tokio_rustls::client::TlsStream<TcpStream>, within: Duration) -> bool {
    let mut buf = vec![0u8; 65536];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[test]
fn hostile_peers_are_dropped_and_the_hub_keeps_serving() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut a = new_hub("North", 1);
    let mut m = new_hub("Member", 2);
    let mut good = new_hub("Good", 3);
    let outsider = new_hub("Outsider", 4);
    for h in [&mut m, &mut good] {
        let code = a.hub.admit(&h.hub.public_key(), "member").unwrap();
        h.hub.adopt(&code).unwrap();
    }
    add(&mut a.hub, Kind::Item, json!({"name": "Water", "unit": "bottle"}));
    let before = a.hub.count(Kind::Item).unwrap();
    let (a_id, m_identity, outsider_identity) = (a.hub.fingerprint(), m.hub.identity(), outsider.hub.identity());
    let (m_ring, outsider_ring) = (m.hub.keyring().unwrap(), outsider.hub.keyring().unwrap());
    let a_identity = a.hub.identity();
    let mesh = Mesh::new(a.hub, &a_identity, [1; 32]).unwrap();
    let good_identity = good.hub.identity();
    let good_mesh = Mesh::new(good.hub, &good_identity, [2; 32]).unwrap();
    rt.block_on(async {
        let addr = mesh.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
        // A hub of another coalition is refused at the handshake.
        assert!(
            tls(&outsider_identity, &outsider_ring, &a_id, addr).await.is_err(),
            "an outsider must not get a frame"
        );
        // Malformed frames, an oversized frame, a sync for a document never announced.
        let framed = |f: Frame| {
            let f = f.encode();
            let mut v = (f.len() as u32).to_be_bytes().to_vec();
            v.extend(f);
            v
        };
        // Each after a proper opening, so that what is tested is the bad frame itself; and an
        // opening in a sync protocol this hub does not speak.
        // Deflated frames (tag 11): one that inflates past the frame limit from 17 KB, and one
        // that holds another deflated frame.
        let deflated = |plain: &[u8]| {
            let mut z = flate2::write::DeflateEncoder::new(vec![11u8], flate2::Compression::best());
            std::io::Write::write_all(&mut z, plain).unwrap();
            let f = z.finish().unwrap();
            let mut v = (f.len() as u32).to_be_bytes().to_vec();
            v.extend(f);
            v
        };
        let bomb = deflated(&[&[2u8][..], &vec![0; MAX_FRAME + 1]].concat());
        let inner = Frame::Sync { doc: "nope".into(), msg: vec![7; 4096], sigs: vec![] }.encode();
        assert_eq!(inner[0], 11, "a frame this hub would send deflated");
        let nested = deflated(&inner);
        let bad: Vec<Vec<u8>> = vec![
            vec![0, 0, 0, 1, 77],
            ((MAX_FRAME + 1) as u32).to_be_bytes().to_vec(),
            framed(Frame::Sync { doc: "nope".into(), msg: vec![1, 2, 3], sigs: vec![] }),
            framed(Frame::Sync { doc: "nope".into(), msg: vec![0x42; 10], sigs: vec![] }),
            bomb,
            nested,
        ];
        let old = framed(Frame::Hello(aidmesh_mesh::session::PROTOCOL + 1));
        let mut s = tls(&m_identity, &m_ring, &a_id, addr).await.unwrap();
        s.write_all(&old).await.unwrap();
        s.flush().await.unwrap();
        assert!(closed_by_server(&mut s, Duration::from_secs(5)).await, "another protocol ends the connection");
        for (i, bytes) in bad.iter().enumerate() {
            let mut s =
                tls(&m_identity, &m_ring, &a_id, addr).await.unwrap_or_else(|e| panic!("member connection {i}: {e}"));
            s.write_all(&framed(Frame::Hello(aidmesh_mesh::session::PROTOCOL))).await.unwrap();
            s.write_all(bytes).await.unwrap();
            s.flush().await.unwrap();
            assert!(closed_by_server(&mut s, Duration::from_secs(5)).await, "bad input {i} must end the connection");
        }
        // A member that stops mid-frame is dropped once it goes silent.
        let mut s = tls(&m_identity, &m_ring, &a_id, addr).await.unwrap();
        s.write_all(&[0, 0, 1, 0, 1, 2]).await.unwrap();
        s.flush().await.unwrap();
        assert!(closed_by_server(&mut s, Duration::from_secs(12)).await, "a stalled peer must be dropped");
        // A flood of connections that never handshake does not stop the hub: a good member
        // (which redials with backoff, as every hub does) still gets through and syncs.
        let mut idle = Vec::new();
        for _ in 0..60 {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        let mut watching = good_mesh.watch_peers();
        good_mesh.dial(addr);
        for _ in 0..300 {
            if good_mesh.with_hub(|h| h.count(Kind::Item).unwrap()) == before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(good_mesh.with_hub(|h| h.count(Kind::Item).unwrap()), before, "the hub kept serving its members");
        // What a front end shows of its peers changed, as it happened (no need to ask).
        assert!(watching.has_changed().unwrap(), "connecting changed the peers view");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            watching.borrow_and_update();
            let peers = good_mesh.peers();
            if peers.len() == 1 && peers[0].last_synced.is_some() {
                break;
            }
            let next = tokio::time::timeout_at(deadline, watching.changed()).await;
            assert!(next.is_ok(), "the sync with the peer never showed: {peers:?}");
        }
        drop(idle);
    });
    assert_eq!(mesh.with_hub(|h| h.count(Kind::Item).unwrap()), before, "no record changed");
}

/// A plain member's attacks on the coalition's authority, sent to a real hub over real TLS:
/// a revocation altered to let a seized laptop back in, a self-made admission, a flood of
/// junk entries. Every one is refused at the door, recorded with the hub that sent it, and
/// changes nothing: the revoked hub stays refused at the handshake.
#[test]
fn a_members_forged_authority_is_refused_at_the_door_over_tls() {
    use aidmesh_mesh::authority::{Body, Entry, Key};
    use rand_chacha::rand_core::SeedableRng;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut north = new_hub("North", 1);
    let mut south = new_hub("South", 2);
    let mut lost = new_hub("Lost", 3);
    let code = north.hub.admit(&south.hub.public_key(), "South").unwrap();
    south.hub.adopt(&code).unwrap();
    north.hub.admit(&lost.hub.public_key(), "Lost").unwrap();
    // Heron, a plain member, works at South; their key is theirs alone.
    let heron = aidmesh_mesh::Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(77));
    north.hub.add_person(&Key::of(&heron).hex(), "heron", false).unwrap();
    north.hub.revoke(&lost.hub.fingerprint().to_string()).unwrap();
    // South and the lost laptop both hold the log, the revocation included.
    let log = north.hub.authority_entries().unwrap();
    south.hub.offer_authority(&log, "test").unwrap();
    lost.hub.offer_authority(&log, "test").unwrap();
    let (south_ring, lost_ring) = (south.hub.keyring().unwrap(), lost.hub.keyring().unwrap());
    let entries_before = north.hub.authority().unwrap().entries;
    let (coalition, heads) = (north.hub.coalition_id().unwrap(), north.hub.authority_heads().unwrap());
    let coalition = coalition.map(|c| aidmesh_mesh::authority::Id::parse(&c).unwrap());
    let south_key = Key::parse(&south.hub.public_key()).unwrap();
    let lost_key = Key::parse(&lost.hub.public_key()).unwrap();
    // 1. The founder's revocation, one field changed: another entry, whose signature fails.
    let revocation = north.hub.authority_entries().unwrap().pop().unwrap();
    let mut altered: Entry = serde_json::from_slice(&revocation).unwrap();
    altered.body = Body::revoke_hub(south_key);
    // 2. Heron admits the lost laptop again, and makes themself an admin, under their own key.
    let sign = |body: Body| Entry::sign(&heron, south_key, coalition, heads.clone(), 0, body).encode();
    let mut forged = vec![
        altered.encode(),
        sign(Body::admit_hub(lost_key, "Lost".into())),
        sign(Body::SetRole { person: Key::of(&heron), role: aidmesh_mesh::Role::Admin }),
    ];
    // 3. A flood of well-signed junk.
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(78);
    for n in 0..2_000 {
        let k = Key::of(&aidmesh_mesh::Identity::generate(&mut rng));
        forged.push(sign(Body::admit_hub(k, format!("junk {n}"))));
    }
    let (north_id, south_identity, lost_identity) =
        (north.hub.fingerprint(), south.hub.identity(), lost.hub.identity());
    let north_identity = north.hub.identity();
    let mesh = Mesh::new(north.hub, &north_identity, [1; 32]).unwrap();
    rt.block_on(async {
        let addr = mesh.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
        assert!(tls(&lost_identity, &lost_ring, &north_id, addr).await.is_err(), "the revoked laptop is refused");
        // Each batch of refused entries ends South's session: it dials again for the next.
        for (i, chunk) in forged.chunks(500).enumerate() {
            let mut s = tls(&south_identity, &south_ring, &north_id, addr).await.unwrap();
            for f in [Frame::Hello(aidmesh_mesh::session::PROTOCOL), Frame::Authority(chunk.to_vec())] {
                let f = f.encode();
                s.write_all(&(f.len() as u32).to_be_bytes()).await.unwrap();
                s.write_all(&f).await.unwrap();
            }
            s.flush().await.unwrap();
            assert!(
                closed_by_server(&mut s, Duration::from_secs(5)).await,
                "batch {i}: a refusing peer is dropped at once"
            );
        }
        // Of each batch, the first refusals are named and the rest counted in one line.
        let named = aidmesh_hub::REFUSALS_NAMED;
        let rows = 4 * (named + 1) + 3;
        for _ in 0..600 {
            if mesh.with_hub(|h| h.authority_refusals_count().unwrap()) >= rows {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let a = mesh.with_hub(|h| h.authority().unwrap());
        assert_eq!(a.entries, entries_before, "nothing refused is stored");
        assert_eq!(a.refused.len(), 50, "the latest refusals are shown");
        assert!(a.refused.iter().all(|r| r.source == format!("hub {}", south_identity.id())), "{:?}", a.refused[0]);
        assert!(a.refused.iter().any(|r| r.reason.contains("heron is not an admin")), "{:?}", a.refused);
        let counted = format!("{} more entries refused in the same batch", 500 - named);
        // The latest 50 rows reach back into the second batch, whose count line was its last.
        assert_eq!(a.refused.iter().filter(|r| r.reason.starts_with(&counted)).count(), 3, "{:?}", a.refused);
        assert!(!a.people.iter().any(|p| p.handle == "heron" && p.admin));
        assert!(tls(&lost_identity, &lost_ring, &north_id, addr).await.is_err(), "the revocation stands");
    });
    let refused = mesh.with_hub(|h| h.authority_refusals_count().unwrap());
    assert_eq!(refused, 4 * (aidmesh_hub::REFUSALS_NAMED + 1) + 3, "every one was refused, named or counted");
}

/// A member's entry that follows one not yet here waits, across restarts too; once what it
/// follows arrives and it turns out to use a right its author lacks, it is refused, forgotten
/// (not offered again at every start) and listed among the refusals.
#[test]
fn a_waiting_entry_refused_once_what_it_follows_arrives_is_forgotten_and_listed() {
    use aidmesh_mesh::authority::{Body, Entry, Id, Key};
    use aidmesh_mesh::Identity;
    use rand_chacha::rand_core::SeedableRng;
    let mut t = new_hub("North", 1);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(90);
    // Kite, a second admin, and heron, a plain member, whose keys the test holds.
    let (kite, heron) = (Identity::generate(&mut rng), Identity::generate(&mut rng));
    assert!(t.hub.add_person(&Key::of(&kite).hex(), "kite", true).unwrap());
    t.hub.add_person(&Key::of(&heron).hex(), "heron", false).unwrap();
    let coalition = t.hub.coalition_id().unwrap().map(|c| Id::parse(&c).unwrap());
    let at = Key::parse(&t.hub.public_key()).unwrap();
    let (van, car) = (Key::of(&Identity::generate(&mut rng)), Key::of(&Identity::generate(&mut rng)));
    let first =
        Entry::sign(&kite, at, coalition, t.hub.authority_heads().unwrap(), 0, Body::admit_hub(van, "Van".into()));
    let follows = Entry::sign(&heron, at, coalition, vec![first.id()], 0, Body::admit_hub(car, "Car".into()));
    let r = t.hub.offer_authority(&[follows.encode()], "hub South").unwrap();
    assert_eq!((r.added, r.waiting), (0, 1));
    drop(t.hub);
    t.hub = reopen(&t.path, &t.clock);
    assert_eq!(t.hub.authority_waiting_count().unwrap(), 1, "it waits across a restart");
    let r = t.hub.offer_authority(&[first.encode()], "hub South").unwrap();
    assert_eq!((r.added, r.refused.len()), (1, 0), "what arrived now is sound: its sender is not blamed");
    assert_eq!(t.hub.authority_waiting_count().unwrap(), 0);
    let refused = t.hub.authority().unwrap().refused;
    assert!(
        refused.iter().any(|x| x.source == aidmesh_hub::LAPSED && x.reason.contains("heron is not an admin")),
        "{refused:?}"
    );
    drop(t.hub);
    let mut h = reopen(&t.path, &t.clock);
    assert_eq!(h.authority_waiting_count().unwrap(), 0);
    let members = h.members().unwrap();
    assert!(members.members.values().any(|m| m.key == van) && !members.members.values().any(|m| m.key == car));
    // An entry that waits and comes in within one offer leaves nothing waiting.
    let (bus, cab) = (Key::of(&Identity::generate(&mut rng)), Key::of(&Identity::generate(&mut rng)));
    let a = Entry::sign(&kite, at, coalition, h.authority_heads().unwrap(), 0, Body::admit_hub(bus, "Bus".into()));
    let b = Entry::sign(&kite, at, coalition, vec![a.id()], 0, Body::admit_hub(cab, "Cab".into()));
    let r = h.offer_authority(&[b.encode(), a.encode()], "hub South").unwrap();
    assert_eq!((r.added, r.refused.len()), (2, 0));
    assert_eq!(h.authority_waiting_count().unwrap(), 0);
    // Many that lapse at once are all forgotten; the first are named, the rest counted, so they
    // cannot push the named refusals of senders out of the list.
    let listed = h.authority_refusals_count().unwrap();
    let gate_key = Key::of(&Identity::generate(&mut rng));
    let gate =
        Entry::sign(&kite, at, coalition, h.authority_heads().unwrap(), 0, Body::admit_hub(gate_key, "Gate".into()));
    let junk: Vec<Vec<u8>> = (0..30)
        .map(|n| {
            let k = Key::of(&Identity::generate(&mut rng));
            Entry::sign(&heron, at, coalition, vec![gate.id()], n, Body::admit_hub(k, format!("junk {n}"))).encode()
        })
        .collect();
    assert_eq!(h.offer_authority(&junk, "hub South").unwrap().waiting, 30);
    assert_eq!(h.offer_authority(&[gate.encode()], "hub South").unwrap().added, 1);
    assert_eq!(h.authority_waiting_count().unwrap(), 0, "every lapsed entry is forgotten");
    assert_eq!(h.authority_refusals_count().unwrap() - listed, aidmesh_hub::REFUSALS_NAMED + 1);
    let refused = h.authority().unwrap().refused;
    assert!(refused.iter().any(|x| x.source == aidmesh_hub::LAPSED && x.reason.starts_with("10 more entries refused")));
}

/// Forged changes sent by a member over real TLS: changes no member hub's signature vouches for
/// (its own change unsigned, a change made in North's name, a change signed for another
/// document, an outsider's signed change), and its own signed change that Automerge panics
/// applying (a write into an object that does not exist). Each ends the session, nothing of it
/// is stored, and the refusal is listed with the hub that sent it; the hub goes on, and the
/// same document, properly signed, is then taken.
#[test]
fn forged_changes_end_the_session_and_nothing_is_stored() {
    forged_changes("");
}

/// The same, with documents large enough that the receiving hub reads their changes and loads
/// them ahead, off the hub, while it applies the frames before them.
#[test]
fn forged_changes_are_refused_when_read_ahead_too() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    let notes: String = (0..160_000).map(|_| rng.gen_range(b'a'..=b'z') as char).collect();
    forged_changes(&notes);
}

fn forged_changes(notes: &str) {
    use aidmesh_mesh::changes::ChangeSig;
    use aidmesh_mesh::session::{DocInfo, PREPARE_FROM};
    use automerge::sync::{Message, MessageVersion};
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut north = new_hub("North", 1);
    let mut south = new_hub("South", 2);
    let outsider = new_hub("Outsider", 3);
    join(&mut north.hub, &mut south.hub);
    add(&mut south.hub, Kind::Item, json!({"name": "Insulin pen", "unit": "pen", "notes": notes}));
    let export = south.hub.export_docs().unwrap().into_iter().find(|d| d.partition == "item").unwrap();
    // Read ahead only past PREPARE_FROM bytes: each case goes one way or the other as meant.
    assert_eq!(export.bytes.len() >= PREPARE_FROM, !notes.is_empty(), "{} bytes", export.bytes.len());
    let info = DocInfo {
        doc: export.doc.as_str().into(),
        partition: export.partition.clone(),
        created_at: export.created_at.millis(),
        heads: String::new(),
    };
    // A change of South's item document made under another hub's actor.
    let as_actor = |key: &[u8; 32]| {
        let mut actor = key.to_vec();
        actor.extend([9; 8]);
        let mut doc = aidmesh_replica::Doc::load(&export.doc, &export.bytes, &actor).unwrap();
        let mut rec = doc.records().0.pop().unwrap();
        if let aidmesh_hub::model::Body::Item(i) = &mut rec.body {
            i.name = "Saline".into();
        }
        doc.update(&rec).unwrap();
        let author = aidmesh_replica::Author { hub: String::new(), handle: "x".into(), at: t0() };
        let hash = doc.commit(&author).unwrap();
        (doc.save(), hash)
    };
    let (south_identity, outsider_identity) = (south.hub.identity(), outsider.hub.identity());
    let south_ring = south.hub.keyring().unwrap();
    let north_key = *north.hub.identity().public().as_bytes();
    let (in_norths_name, h1) = as_actor(&north_key);
    let (outsiders, h2) = as_actor(outsider_identity.public().as_bytes());
    // South's own change, signed by South, with its write aimed into an object that does not
    // exist: Automerge panics applying it.
    let into_nothing = {
        let mut actor = south_identity.public().as_bytes().to_vec();
        actor.extend([9; 8]);
        let mut doc = aidmesh_replica::Doc::load(&export.doc, &export.bytes, &actor).unwrap();
        let heads = doc.heads();
        let mut rec = doc.records().0.pop().unwrap();
        if let aidmesh_hub::model::Body::Item(i) = &mut rec.body {
            i.name = "Saline".into();
        }
        doc.update(&rec).unwrap();
        doc.commit(&aidmesh_replica::Author { hub: String::new(), handle: "x".into(), at: t0() }).unwrap();
        let mut change = doc.changes_after(&heads).remove(0).decode();
        let nowhere = automerge::legacy::OpId(999_999, automerge::ActorId::from(actor.as_slice()));
        change.operations[0].obj = automerge::legacy::ObjectId::Id(nowhere);
        automerge::Change::from(change)
    };
    let cases: Vec<(&str, Vec<u8>, Vec<ChangeSig>, &str)> = vec![
        ("unsigned", export.bytes.clone(), vec![], "is not signed by that hub"),
        (
            "in North's name",
            in_norths_name,
            [export.sigs.clone(), vec![ChangeSig::sign(&south_identity, &export.doc, h1.0)]].concat(),
            "does not hold",
        ),
        (
            "for another document",
            export.bytes.clone(),
            vec![ChangeSig::sign(&south_identity, "item-other", export.sigs[0].hash)],
            "does not hold",
        ),
        (
            "an outsider's",
            outsiders,
            [export.sigs.clone(), vec![ChangeSig::sign(&outsider_identity, &export.doc, h2.0)]].concat(),
            "not a member",
        ),
        (
            "one Automerge cannot apply",
            [export.bytes.clone(), into_nothing.raw_bytes().to_vec()].concat(),
            [export.sigs.clone(), vec![ChangeSig::sign(&south_identity, &export.doc, into_nothing.hash().0)]].concat(),
            "Automerge cannot read",
        ),
    ];
    let frames = |bytes: Vec<u8>, sigs: Vec<ChangeSig>| {
        let msg = Message {
            heads: vec![],
            need: vec![],
            have: vec![],
            changes: vec![bytes].into(),
            flags: None,
            version: MessageVersion::V1,
        };
        let mut out = Vec::new();
        for f in [
            Frame::Hello(aidmesh_mesh::session::PROTOCOL),
            Frame::Announce(vec![info.clone()]),
            Frame::Sync { doc: info.doc.clone(), msg: msg.encode(), sigs },
        ] {
            let f = f.encode();
            out.extend((f.len() as u32).to_be_bytes());
            out.extend(f);
        }
        out
    };
    let north_id = north.hub.fingerprint();
    let north_identity = north.hub.identity();
    let mesh = Mesh::new(north.hub, &north_identity, [1; 32]).unwrap();
    let items = || mesh.with_hub(|h| h.count(Kind::Item).unwrap());
    assert_eq!(items(), 0);
    rt.block_on(async {
        let addr = mesh.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
        for (what, bytes, sigs, _) in &cases {
            let mut s = tls(&south_identity, &south_ring, &north_id, addr).await.unwrap();
            s.write_all(&frames(bytes.clone(), sigs.clone())).await.unwrap();
            s.flush().await.unwrap();
            assert!(closed_by_server(&mut s, Duration::from_secs(5)).await, "{what}: the session ends");
        }
        assert_eq!(items(), 0, "nothing refused is stored");
        assert!(
            !mesh.with_hub(|h| h.doc_partitions().unwrap()).contains_key(info.doc.as_str()),
            "not even the document"
        );
        let refused = mesh.with_hub(|h| h.authority().unwrap().refused);
        for (what, _, _, why) in &cases {
            assert!(
                refused.iter().any(|r| r.source == format!("hub {}", south_identity.id()) && r.reason.contains(why)),
                "{what}: listed with South and {why:?}: {refused:?}"
            );
        }
        // South's own change with South's signature: taken.
        let mut s = tls(&south_identity, &south_ring, &north_id, addr).await.unwrap();
        s.write_all(&frames(export.bytes.clone(), export.sigs.clone())).await.unwrap();
        s.flush().await.unwrap();
        for _ in 0..100 {
            if items() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(items(), 1, "a member's signed change is taken");
    });
}

/// What a hub's port tells whoever dials it, and what a member tells a listener that is not
/// one: no key, no name. The certificate is a throwaway that names nothing; a hello without a
/// secret that lets it in (junk, another coalition's, one made from the founding hub's key, a
/// revoked hub's with the log from before its revocation or with the whole log) meets silence
/// and a closed connection; a member that has not heard of the revocation still gets in; and
/// a member that dials a listener which is not a member closes having shown its key to no one.
#[test]
fn a_hubs_port_tells_an_outsider_nothing() {
    use aidmesh_mesh::handshake::{self, Side, EXPORTER_LABEL};
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut north = new_hub("North", 1);
    let mut south = new_hub("South", 2);
    let mut lost = new_hub("Lost", 3);
    let outsider = new_hub("Outsider", 4);
    let mut east = new_hub("East", 5);
    join(&mut north.hub, &mut south.hub);
    join(&mut north.hub, &mut lost.hub);
    join(&mut north.hub, &mut east.hub);
    let seized_ring = lost.hub.keyring().unwrap();
    north.hub.revoke(&lost.hub.fingerprint().to_string()).unwrap();
    let log = north.hub.authority_entries().unwrap();
    south.hub.offer_authority(&log, "test").unwrap();
    lost.hub.offer_authority(&log, "test").unwrap();
    let (south_ring, lost_ring, outsider_ring) =
        (south.hub.keyring().unwrap(), lost.hub.keyring().unwrap(), outsider.hub.keyring().unwrap());
    // East has not heard of the revocation.
    let (east_ring, east_identity) = (east.hub.keyring().unwrap(), east.hub.identity());
    assert_eq!(east_ring, seized_ring);
    let (lost_identity, outsider_identity) = (lost.hub.identity(), outsider.hub.identity());
    let south_identity = south.hub.identity();
    let south_members: Vec<aidmesh_mesh::HubId> = south.hub.members().unwrap().members.into_keys().collect();
    let north_identity = north.hub.identity();
    let (north_id, north_key) = (north_identity.id(), north_identity.public().to_bytes());
    let mesh = Mesh::new(north.hub, &north_identity, [1; 32]).unwrap();
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    rt.block_on(async {
        let addr = mesh.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let (_, client) = throwaway_configs([7; 32]).unwrap();
        let connector = tokio_rustls::TlsConnector::from(client);
        let open = || async {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
            connector.connect(name, tcp).await.unwrap()
        };
        // The certificate: not North's key, no name, and a new one for each connection, so
        // that two connections cannot be tied to one hub by it.
        let s = open().await;
        let cert = s.get_ref().1.peer_certificates().unwrap()[0].to_vec();
        assert!(!contains(&cert, &north_key), "the certificate does not carry the hub's key");
        for word in [&b"aidmesh"[..], b"rcgen", b"North"] {
            assert!(!contains(&cert, word), "the certificate names nothing: {}", String::from_utf8_lossy(word));
        }
        drop(s);
        let again = open().await;
        assert_ne!(again.get_ref().1.peer_certificates().unwrap()[0].to_vec(), cert, "a new key each connection");
        drop(again);
        // Nor does a resumed session tie two connections together: a client that would resume
        // is handed no ticket, and its next connection is a full handshake again.
        let mut resuming = (*throwaway_configs([7; 32]).unwrap().1).clone();
        resuming.resumption = rustls::client::Resumption::default();
        let resuming = tokio_rustls::TlsConnector::from(std::sync::Arc::new(resuming));
        for _ in 0..2 {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
            let mut s = resuming.connect(name, tcp).await.unwrap();
            assert_eq!(s.get_ref().1.handshake_kind(), Some(rustls::HandshakeKind::Full));
            // Reading takes in whatever came after the handshake (tickets, had there been any).
            let _ = tokio::time::timeout(Duration::from_millis(300), s.read_u8()).await;
        }
        // Hellos without the current secret: the hub closes and has sent not one byte.
        let junk = |_: &[u8; 32]| {
            let mut h = vec![1u8];
            h.extend([0x5a; 32]);
            h
        };
        let other = |e: &[u8; 32]| handshake::hello(&outsider_ring, &outsider_identity, e);
        let founders = Keyring::base(&north_key);
        let from_founders_key = |e: &[u8; 32]| handshake::hello(&founders, &outsider_identity, e);
        let seized = |e: &[u8; 32]| handshake::hello(&seized_ring, &lost_identity, e);
        let revoked = |e: &[u8; 32]| handshake::hello(&lost_ring, &lost_identity, e);
        let silent = |_: &[u8; 32]| Vec::new();
        type Hello<'a> = &'a dyn Fn(&[u8; 32]) -> Vec<u8>;
        let hellos: [(&str, Hello); 6] = [
            ("junk", &junk),
            ("another coalition", &other),
            ("the founding hub's key", &from_founders_key),
            ("the revoked hub, as seized", &seized),
            ("the revoked hub, with the whole log", &revoked),
            ("silence", &silent),
        ];
        for (what, hello) in hellos {
            let mut s = open().await;
            let exporter = s.get_ref().1.export_keying_material([0u8; 32], EXPORTER_LABEL, None).unwrap();
            s.write_all(&hello(&exporter)).await.unwrap();
            s.flush().await.unwrap();
            let mut got = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await;
            assert!(read.is_ok(), "{what}: the hub closes the connection");
            assert!(got.is_empty(), "{what}: the hub sent {} bytes", got.len());
        }
        // A member's own hello passes: the hub proves who it is, to a member only.
        let (_, peer) = connect(&connector, &south_identity, &south_ring, |_| true, addr).await.unwrap();
        assert_eq!(peer, north_id);
        // So does that of a member that has not heard of the revocation: it shows itself, under
        // the secret it holds, as a hub North still counts.
        let (_, peer) = connect(&connector, &east_identity, &east_ring, |_| true, addr).await.unwrap();
        assert_eq!(peer, north_id);

        // A listener that is no member (it accepts any hello and proves its own key): the
        // member that dials it closes having sent its hello and nothing more.
        let (server, _) = throwaway_configs([8; 32]).unwrap();
        let fake = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake_addr = fake.local_addr().unwrap();
        let listener = tokio::spawn(async move {
            let (tcp, _) = fake.accept().await.unwrap();
            let mut s = tokio_rustls::TlsAcceptor::from(server).accept(tcp).await.unwrap();
            let exporter = s.get_ref().1.export_keying_material([0u8; 32], EXPORTER_LABEL, None).unwrap();
            s.write_all(&handshake::proof(&outsider_identity, Side::Listener, &exporter)).await.unwrap();
            s.flush().await.unwrap();
            let mut got = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await;
            (exporter, got)
        });
        let dialled =
            connect(&connector, &south_identity, &south_ring, |id| south_members.contains(id), fake_addr).await;
        assert!(dialled.unwrap_err().to_string().contains("is not a member"));
        let (exporter, got) = listener.await.unwrap();
        assert_eq!(got.len(), 1 + 32 * handshake::MAX_HELLO + handshake::SEALED_PROOF, "only the hello");
        assert!(!contains(&got, south_identity.public().as_bytes()), "the member showed no key in the clear");
        let proof = &got[got.len() - handshake::SEALED_PROOF..];
        assert!(south_ring.unseal(&exporter, proof).is_some(), "sealed under South's secret");
        for ring in [&outsider_ring, &seized_ring, &founders] {
            assert!(ring.unseal(&exporter, proof).is_none(), "and no other");
        }
    });
}

/// An admin (or a stolen admin key) turns the coalition secret over with a slot that opens for
/// no hub: every hub it left out says so, naming the entry and its signer, whether or not the
/// turnover commits to its secret (releases before commitments wrote none).
#[test]
fn a_hub_left_out_of_a_turnover_is_told_who_signed_it() {
    use aidmesh_mesh::authority::{Body, Entry, Id, Key, Log, Slot};
    use rand_chacha::rand_core::SeedableRng;
    let mut north = new_hub("North", 1);
    let mut south = new_hub("South", 2);
    join(&mut north.hub, &mut south.hub);
    let mole = aidmesh_mesh::Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(91));
    north.hub.add_person(&Key::of(&mole).hex(), "mole", true).unwrap();
    let log = north.hub.authority_entries().unwrap();
    south.hub.offer_authority(&log, "test").unwrap();
    assert_eq!(south.hub.authority().unwrap().stranded, None);
    let state = Log::load(&log).unwrap();
    let north_key = Key::parse(&north.hub.public_key()).unwrap();
    for committed in [false, true] {
        let heads = north.hub.authority_heads().unwrap();
        let sign = |body: Body| Entry::sign(&mole, north_key, state.coalition(), heads.clone(), 0, body).encode();
        // Every slot garbage: no hub can follow.
        let fresh = [6 + u8::from(committed); 32];
        let Body::Rotate { mut rekey } = aidmesh_mesh::keyring::rotate(state.state(), [5; 32], fresh).unwrap() else {
            panic!("a rotation")
        };
        rekey.slots.iter_mut().for_each(|s| *s = Slot([0x42; 48]));
        if !committed {
            rekey.commit = None;
        }
        let garbage = sign(Body::Rotate { rekey });
        let id = Id::of(&garbage).to_string();
        for hub in [&mut north.hub, &mut south.hub] {
            assert_eq!(hub.offer_authority(std::slice::from_ref(&garbage), "hub Mole").unwrap().added, 1);
            let told = hub.authority().unwrap().stranded.expect("the hub knows it was left out");
            // The first turnover it could not follow is the one named.
            if !committed {
                assert!(told.contains(&format!("entry {id} by mole")) && told.contains("in no slot"), "{told}");
            }
        }
    }
}

/// A member that passes on another hub's whereabouts altered (pointed at an address of its
/// choosing), or signs some in another hub's name, has its session ended with the refusal
/// named; the hub keeps the true entry. An entry of a hub that is not a member is passed over
/// without ending anything (the sender may not have seen a revocation yet).
#[test]
fn forged_whereabouts_end_the_session_and_change_nothing_over_tls() {
    use aidmesh_mesh::whereabouts::Whereabouts;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut north = new_hub("North", 1);
    let mut south = new_hub("South", 2);
    let mut east = new_hub("East", 3);
    let outsider = new_hub("Outsider", 4);
    for h in [&mut south, &mut east] {
        let code = north.hub.admit(&h.hub.public_key(), "member").unwrap();
        h.hub.adopt(&code).unwrap();
    }
    let addr: SocketAddr = "192.0.2.7:4433".parse().unwrap();
    assert_eq!(east.hub.say_whereabouts(None, &[addr]).unwrap(), None, "not a member before it holds the log");
    east.hub.offer_authority(&north.hub.authority_entries().unwrap(), "test").unwrap();
    east.hub.set_coalition_key(&north.hub.coalition_key_hex().unwrap().unwrap()).unwrap();
    assert_eq!(east.hub.say_whereabouts(None, &[addr]).unwrap(), Some(true));
    let east_id = east.hub.identity().id();
    let said = east.hub.whereabouts_of(&east_id).unwrap().unwrap();
    north.hub.import_bundle(east.hub.export_bundle(true, &[]).unwrap().bytes).unwrap();
    assert_eq!(north.hub.whereabouts_of(&east_id).unwrap(), Some(said.clone()));
    let elsewhere: SocketAddr = "198.51.100.9:53".parse().unwrap();
    let forgeries = [
        Whereabouts { direct: vec![elsewhere], version: said.version + 1, ..said.clone() },
        Whereabouts {
            hub: east_id.clone(),
            ..Whereabouts::new(&south.hub.identity(), said.version + 1, None, &[elsewhere])
        },
    ];
    let strangers = Whereabouts::new(&outsider.hub.identity(), 1, None, &[elsewhere]);
    let (mesh, north_id, south_identity, south_ring) = north_served(north.hub, &south);
    rt.block_on(async {
        let listen = mesh.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let hello = Frame::Hello(aidmesh_mesh::session::PROTOCOL);
        // A stranger's entry: passed over, the session goes on.
        let mut s = tls(&south_identity, &south_ring, &north_id, listen).await.unwrap();
        send(&mut s, vec![hello.clone(), Frame::Whereabouts(vec![strangers.clone()])]).await;
        assert!(!closed_by_server(&mut s, Duration::from_secs(2)).await, "a stranger's entry ends nothing");
        drop(s);
        for (i, forged) in forgeries.iter().enumerate() {
            let mut s = tls(&south_identity, &south_ring, &north_id, listen).await.unwrap();
            send(&mut s, vec![hello.clone(), Frame::Whereabouts(vec![forged.clone()])]).await;
            assert!(closed_by_server(&mut s, Duration::from_secs(5)).await, "forgery {i}: the session ends");
        }
    });
    mesh.with_hub(|h| {
        assert_eq!(h.whereabouts_of(&east_id).unwrap(), Some(said.clone()), "North keeps East's own word");
        assert_eq!(h.whereabouts_of(&outsider.hub.identity().id()).unwrap(), None);
        let refused = h.authority().unwrap().refused;
        let named = format!("whereabouts of {east_id}: not signed by that hub");
        let from_south = format!("hub {}", south_identity.id());
        assert_eq!(refused.iter().filter(|r| r.reason == named && r.source == from_south).count(), 2, "{refused:?}");
    });
}

/// Where a document new to a hub is filed, and when it says it was made, are the sender's word:
/// a member cannot have the hub file a document without changes (nothing signed would say who
/// did), nor under a partition no hub makes (a partition of megabytes, listed to every peer
/// after, made every honest peer refuse the hub's frames) or at a time not yet come.
#[test]
fn a_member_cannot_file_documents_with_nothing_signed_or_where_no_hub_files_them() {
    use aidmesh_mesh::session::DocInfo;
    use automerge::sync::{Message, MessageVersion};
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut north = new_hub("North", 1);
    let mut south = new_hub("South", 2);
    join(&mut north.hub, &mut south.hub);
    add(&mut south.hub, Kind::Item, json!({"name": "Insulin pen", "unit": "pen"}));
    let export = south.hub.export_docs().unwrap().into_iter().find(|d| d.partition == "item").unwrap();
    let info = |doc: &str, partition: &str, created_at: i64| DocInfo {
        doc: doc.into(),
        partition: partition.into(),
        created_at,
        heads: String::new(),
    };
    let message = |heads: Vec<automerge::ChangeHash>, changes: Vec<Vec<u8>>| {
        Message { heads, need: vec![], have: vec![], changes: changes.into(), flags: None, version: MessageVersion::V1 }
            .encode()
    };
    let (mesh, north_id, south_identity, south_ring) = north_served(north.hub, &south);
    let filed = |doc: &str| mesh.with_hub(|h| h.doc_partitions().unwrap().contains_key(doc));
    let hello = Frame::Hello(aidmesh_mesh::session::PROTOCOL);
    let now = t0().millis();
    rt.block_on(async {
        let listen = mesh.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
        // Heads offered, nothing signed: the session goes on, and nothing is filed.
        let mut s = tls(&south_identity, &south_ring, &north_id, listen).await.unwrap();
        let offered = info("item-nothing-signed", "item", now);
        let sync = Frame::Sync {
            doc: offered.doc.clone(),
            msg: message(vec![automerge::ChangeHash([7; 32])], vec![]),
            sigs: vec![],
        };
        send(&mut s, vec![hello.clone(), Frame::Announce(vec![offered]), sync]).await;
        assert!(!closed_by_server(&mut s, Duration::from_secs(2)).await, "an offer of heads ends nothing");
        assert!(!filed("item-nothing-signed"), "and files nothing");
        drop(s);
        // An empty save (no change in it, so nothing to sign): the same.
        let mut s = tls(&south_identity, &south_ring, &north_id, listen).await.unwrap();
        let empty = info("item-empty-save", "item", now);
        let sync = Frame::Sync {
            doc: empty.doc.clone(),
            msg: message(vec![], vec![automerge::AutoCommit::new().save()]),
            sigs: vec![],
        };
        send(&mut s, vec![hello.clone(), Frame::Announce(vec![empty]), sync]).await;
        assert!(!closed_by_server(&mut s, Duration::from_secs(2)).await, "an empty save ends nothing");
        assert!(!filed("item-empty-save"), "and files nothing");
        drop(s);
        // Partitions no peer may name: the frame is refused as it is read.
        for partition in ["!".repeat(100_000), "Item".into(), String::new()] {
            let mut s = tls(&south_identity, &south_ring, &north_id, listen).await.unwrap();
            send(&mut s, vec![hello.clone(), Frame::Announce(vec![info("item-odd", &partition, now)])]).await;
            assert!(closed_by_server(&mut s, Duration::from_secs(5)).await, "{partition:.10}: the session ends");
        }
        // South's signed change, under a partition no hub makes or a time not yet come.
        let cases = [
            (info(&export.doc, "item/2026-11", now), "no hub files it under"),
            (info(&export.doc, "incident", now), "no hub files it under"),
            (info(&export.doc, "incident/2026-13", now), "no hub files it under"),
            (info(&export.doc, "coalition", now), "no hub files it under"),
        ];
        for (announced, _) in &cases {
            let mut s = tls(&south_identity, &south_ring, &north_id, listen).await.unwrap();
            let sync = Frame::Sync {
                doc: announced.doc.clone(),
                msg: message(vec![], vec![export.bytes.clone()]),
                sigs: export.sigs.clone(),
            };
            send(&mut s, vec![hello.clone(), Frame::Announce(vec![announced.clone()]), sync]).await;
            assert!(closed_by_server(&mut s, Duration::from_secs(5)).await, "{announced:?}: the session ends");
        }
        assert!(!filed(&export.doc), "nothing filed");
        let refused = mesh.with_hub(|h| h.authority().unwrap().refused);
        for (announced, why) in &cases {
            assert!(
                refused.iter().any(|r| r.reason.contains(why) && r.reason.contains(&export.doc)),
                "{announced:?}: listed with {why:?}: {refused:?}"
            );
        }
        // Filed where hubs file it, it is taken; made, it says, days from now: as made now (the
        // time orders the shards a hub writes into, oldest first).
        let mut s = tls(&south_identity, &south_ring, &north_id, listen).await.unwrap();
        let announced = info(&export.doc, "item", now + 3 * 86_400_000);
        let sync = Frame::Sync {
            doc: announced.doc.clone(),
            msg: message(vec![], vec![export.bytes.clone()]),
            sigs: export.sigs.clone(),
        };
        send(&mut s, vec![hello.clone(), Frame::Announce(vec![announced]), sync]).await;
        for _ in 0..50 {
            if filed(&export.doc) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(filed(&export.doc), "a member's signed document, filed where hubs file it, is taken");
        let docs = mesh.with_hub(aidmesh_mesh::session::Replica::docs);
        let taken = docs.iter().find(|d| d.doc.as_str() == export.doc).unwrap();
        assert_eq!((taken.partition.as_str(), taken.created_at), ("item", now), "filed as made now");
    });
}

/// A document filed where no hub files it, by a member before hubs checked (a row of an older
/// store), is not offered to peers (they would refuse the listing, and every frame with it),
/// nor put in a bundle (refused whole), nor written into (what went there would stay here).
#[test]
fn a_document_filed_where_no_hub_files_it_is_not_offered_to_peers() {
    use aidmesh_mesh::session::{PeerId, Replica, Session};
    let mut north = new_hub("North", 1);
    let mut south = new_hub("South", 2);
    join(&mut north.hub, &mut south.hub);
    let (path, clock) = (north.path.clone(), north.clock.clone());
    let mut hub = north.hub;
    add(&mut hub, Kind::Item, json!({"name": "Insulin pen", "unit": "pen"}));
    // x1 holds North's own changes (which North signs for it as it hands it on).
    let items = hub.export_docs().unwrap().into_iter().find(|d| d.partition == "item").unwrap();
    drop(hub);
    let mut store = aidmesh_store::Store::open(&path, PASS).unwrap();
    store
        .write(|tx| {
            tx.add_doc("x1", "coalition", 1)?;
            tx.append_chunk("x1", &items.bytes)?;
            tx.add_doc("item-01big", &"!".repeat(100_000), 1)?;
            tx.add_doc("incident-01abc", "incident", -5)?;
            tx.add_doc("item-01early", "item", -5)
        })
        .unwrap();
    drop(store);
    let mut hub = reopen(&path, &clock);
    let docs = Replica::docs(&mut hub);
    assert!(docs.iter().any(|d| d.partition == "item"), "{docs:?}");
    assert!(docs.iter().all(|d| aidmesh_replica::valid_filing(d.doc.as_str(), &d.partition)), "{docs:?}");
    // What a session opens with, and lists, every peer takes.
    let now = t0();
    let mut session = Session::new(PeerId::named("peer"), now);
    let mut frames = session.start(&mut hub, now);
    frames.push(Frame::Announce(docs));
    for f in frames {
        Frame::decode(&f.encode()).unwrap();
    }
    // A coalition record goes into a document filed as hubs file it (x1 is the oldest filed
    // under `coalition`), and a full bundle, taken whole by a member, carries it.
    let place = add(&mut hub, Kind::Place, json!({"name": "Medic tent"}));
    let bundle = hub.export_bundle(true, &[]).unwrap();
    south.hub.import_bundle(&bundle.bytes).unwrap();
    assert!(south.hub.get(&place).is_ok(), "the place reached South");
}

/// A member that asks for the authority log again and again, in a few bytes each time, is
/// sent nothing more in a session while the log is unchanged at the hub (each answer is the
/// whole log, deflated): driven over real TLS against a real hub.
#[test]
fn a_member_asking_for_the_authority_log_again_is_sent_it_once() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut north = new_hub("North", 1);
    let mut south = new_hub("South", 2);
    join(&mut north.hub, &mut south.hub);
    let (mesh, north_id, south_identity, south_ring) = north_served(north.hub, &south);
    rt.block_on(async {
        let listen = mesh.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let mut s = tls(&south_identity, &south_ring, &north_id, listen).await.unwrap();
        // The authority frames North sends within a second and a half.
        async fn authority_frames(s: &mut tokio_rustls::client::TlsStream<TcpStream>) -> usize {
            let (mut n, mut len) = (0, [0u8; 4]);
            let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
            while let Ok(Ok(_)) = tokio::time::timeout_at(deadline, s.read_exact(&mut len)).await {
                let mut buf = vec![0; u32::from_be_bytes(len) as usize];
                s.read_exact(&mut buf).await.unwrap();
                n += usize::from(matches!(Frame::decode(&buf).unwrap(), Frame::Authority(_)));
            }
            n
        }
        let ask = Frame::AuthorityHeads(vec![]);
        send(&mut s, vec![Frame::Hello(aidmesh_mesh::session::PROTOCOL), ask.clone()]).await;
        assert!(authority_frames(&mut s).await >= 1, "the log, to a peer that asks for all of it");
        send(&mut s, vec![ask.clone(), ask.clone(), ask]).await;
        assert_eq!(authority_frames(&mut s).await, 0, "asked again with nothing new here: nothing more");
    });
}
