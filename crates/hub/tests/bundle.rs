//! USB bundles between hubs that never connect, and every kind of bad bundle refused whole.

mod util;

use aidmesh_hub::Driver;
use std::collections::VecDeque;

use aidmesh_hub::model::Kind;
use aidmesh_hub::{Clock, Hub, VaultState};
use aidmesh_mesh::changes::ChangeSig;
use aidmesh_mesh::session::{Frame, PeerId, Replica, Session};
use aidmesh_mesh::whereabouts::Whereabouts;
use serde_json::json;
use util::*;

/// Two hubs of one coalition that never meet: b joined a's coalition by hand.
fn pair() -> (TestHub, TestHub) {
    let mut a = new_hub("North", 1);
    let mut b = new_hub("South", 2);
    join(&mut a.hub, &mut b.hub);
    (a, b)
}

/// The store file as it lies on disk (with its write-ahead log): a refused bundle leaves it
/// byte-for-byte as it was.
fn disk(t: &TestHub) -> Vec<u8> {
    let mut bytes = std::fs::read(&t.path).unwrap();
    let wal = t.path.with_extension("aidmesh-wal");
    bytes.extend(std::fs::read(wal).unwrap_or_default());
    bytes
}

/// The records of one kind, as every hub should see them.
fn records(h: &Hub, kind: Kind) -> Vec<String> {
    let mut out: Vec<String> =
        h.stored(kind, 1000, 0).unwrap().iter().map(|r| serde_json::to_string(r).unwrap()).collect();
    out.sort();
    out
}

/// One sync between two hubs over the real session protocol, in memory.
fn sync(a: &mut TestHub, b: &mut TestHub) {
    let now = a.clock.now();
    let mut sa = Session::new(PeerId::from(&b.hub.fingerprint()), now);
    let mut sb = Session::new(PeerId::from(&a.hub.fingerprint()), now);
    let mut to_b: VecDeque<Frame> = sa.start(&mut a.hub, now).into();
    let mut to_a: VecDeque<Frame> = sb.start(&mut b.hub, now).into();
    while !to_a.is_empty() || !to_b.is_empty() {
        if let Some(f) = to_b.pop_front() {
            to_a.extend(sb.handle(&mut b.hub, f, now).unwrap().0);
        }
        if let Some(f) = to_a.pop_front() {
            to_b.extend(sa.handle(&mut a.hub, f, now).unwrap().0);
        }
    }
}

/// Everything a person could see change: every record, every stock level, the vault.
fn state(h: &Hub) -> String {
    let mut out = Vec::new();
    h.export_json(&mut out).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    v["exported_at"] = json!(null);
    let mut recs: Vec<String> = v["records"].as_array().unwrap().iter().map(|r| r.to_string()).collect();
    recs.sort();
    format!("{recs:?} {:?} {:?}", h.stock(None).unwrap(), h.vault_snapshot().unwrap())
}

#[test]
fn bundles_carry_changes_both_ways_and_import_twice_changes_nothing() {
    let (mut a, mut b) = pair();
    let hall = add(&mut a.hub, Kind::Place, json!({"name": "Hall"}));
    let water = add(&mut a.hub, Kind::Item, json!({"name": "Water", "unit": "bottle"}));
    add(&mut a.hub, Kind::Movement, json!({"item": water, "type": "receive", "quantity": 20, "place": hall}));
    let vid = a.hub.vault_put(&fields(json!({"name": "Amal"}))).unwrap();
    let first = a.hub.export_bundle(false, &[]).unwrap();
    a.hub.bundle_written(&first).unwrap();
    assert!(!String::from_utf8_lossy(&first.bytes).contains("Water"), "bundles are encrypted");
    let (summary, changed) = b.hub.import_bundle(&first.bytes).unwrap();
    assert!(summary.member && changed >= 3, "{summary:?}");
    assert_eq!(summary.records.get("item"), Some(&1));
    assert!(matches!(b.hub.vault_get(&vid).unwrap(), VaultState::Present(_)));
    // Both sides edit; bundles go both ways; an incremental one carries only what changed.
    b.hub.update(&water, fields(json!({"notes": "from South"}))).unwrap();
    add(&mut b.hub, Kind::Movement, json!({"item": water, "type": "issue", "quantity": 5, "place": hall}));
    add(&mut a.hub, Kind::Movement, json!({"item": water, "type": "issue", "quantity": 5, "place": hall}));
    a.hub.vault_erase(&vid).unwrap();
    let from_b = b.hub.export_bundle(false, &[]).unwrap();
    let from_a = a.hub.export_bundle(false, &[]).unwrap();
    assert!(from_a.bytes.len() < first.bytes.len() * 2);
    assert_eq!(from_a.summary.records.get("item"), None, "the item did not change on North");
    a.hub.import_bundle(&from_b.bytes).unwrap();
    b.hub.import_bundle(&from_a.bytes).unwrap();
    assert!(state(&a.hub) == state(&b.hub), "both hubs hold the same records");
    let level: i64 = a.hub.stock(Some(&water)).unwrap().iter().map(|s| s.quantity).sum();
    assert_eq!(level, 10, "two issues of 5 from 20, made apart");
    assert!(matches!(b.hub.vault_get(&vid).unwrap(), VaultState::Erased { .. }), "erasures travel too");
    // Twice, or in another order: nothing changes.
    let before = state(&a.hub);
    assert_eq!(a.hub.import_bundle(&from_b.bytes).unwrap().1, 0);
    a.hub.import_bundle(&first.bytes).unwrap();
    assert!(state(&a.hub) == before, "the store changed");
}

/// Every write appends a chunk to its document in the store; a full bundle carries such a
/// document as one save instead (what its chunks hold in a fraction of the bytes, and a far hub
/// loads a save whole where it would apply chunked changes one by one), and the far hub holds
/// the same records and stock.
#[test]
fn a_document_written_in_many_commits_travels_in_a_bundle_as_one_save() {
    let (mut a, mut b) = pair();
    let hall = add(&mut a.hub, Kind::Place, json!({"name": "Hall"}));
    let water = add(&mut a.hub, Kind::Item, json!({"name": "Water", "unit": "bottle"}));
    for n in 1..=200 {
        add(&mut a.hub, Kind::Movement, json!({"item": water, "type": "receive", "quantity": n, "place": hall}));
    }
    let stored = a.hub.saved_bytes().unwrap() as usize;
    let full = a.hub.export_bundle(true, &[]).unwrap();
    assert!(
        full.bytes.len() * 2 < stored,
        "a bundle of {} bytes for documents stored in {stored} bytes of chunks",
        full.bytes.len()
    );
    b.hub.import_bundle(&full.bytes).unwrap();
    for kind in [Kind::Place, Kind::Item, Kind::Movement] {
        assert_eq!(records(&a.hub, kind), records(&b.hub, kind), "{kind:?}");
    }
    assert_eq!(records(&b.hub, Kind::Movement).len(), 200);
    assert_eq!(a.hub.stock(None).unwrap(), b.hub.stock(None).unwrap());
}

#[test]
fn bad_bundles_are_refused_and_change_nothing() {
    let (mut a, mut b) = pair();
    add(&mut b.hub, Kind::Item, json!({"name": "Rice", "unit": "kg"}));
    let good = b.hub.export_bundle(true, &[]).unwrap().bytes;
    let mut other = new_hub("Another coalition", 9);
    add(&mut other.hub, Kind::Item, json!({"name": "Spy", "unit": "x"}));
    let foreign = other.hub.export_bundle(true, &[]).unwrap().bytes;
    let before = state(&a.hub);
    let on_disk = disk(&a);
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x20;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", good[..good.len() - 100].to_vec(), "another coalition, or it was altered"),
        ("cut to the header", good[..12].to_vec(), "truncated"),
        ("a byte changed", flipped, "altered"),
        ("another coalition's", foreign, "another coalition"),
        ("not a bundle", b"PK\x03\x04 some zip".to_vec(), "not an aidmesh bundle"),
        ("empty", Vec::new(), "truncated"),
    ];
    for (what, bytes, want) in cases {
        let e = a.hub.import_bundle(&bytes).unwrap_err();
        assert!(e.to_string().contains(want), "{what}: {e}");
        assert!(state(&a.hub) == before, "{what} changed the store");
        assert!(disk(&a) == on_disk, "{what} changed the store file");
        assert!(a.hub.inspect_bundle(&bytes).is_err(), "{what}");
    }
    // A bundle made by a hub after its revocation is refused.
    let b_id = b.hub.fingerprint().to_string();
    a.hub.revoke(&b_id).unwrap();
    let before = state(&a.hub);
    let on_disk = disk(&a);
    let e = a.hub.import_bundle(&good).unwrap_err();
    assert!(e.to_string().contains("revoked"), "{e}");
    assert!(state(&a.hub) == before, "the store changed");
    assert!(disk(&a) == on_disk, "a revoked hub's bundle changed the store file");
    let s = a.hub.inspect_bundle(&good).unwrap();
    assert!(!s.member);
    // A hub that took the founder by hand but was never admitted: its bundle is sealed for the
    // hubs it knows, and refused as a non-member's.
    let mut c = new_hub("Joined by hand", 4);
    c.hub.adopt_founder(&a.hub.founder().unwrap()).unwrap();
    add(&mut c.hub, Kind::Place, json!({"name": "x"}));
    let e = a.hub.import_bundle(&c.hub.export_bundle(true, &[]).unwrap().bytes).unwrap_err();
    assert!(e.to_string().contains("not a member"), "{e}");
}

#[test]
fn bundles_imported_out_of_order_wait_for_their_predecessor_and_give_the_same_state() {
    let (mut a, mut b) = pair();
    let mut c = new_hub("West", 3);
    join(&mut a.hub, &mut c.hub);
    let water = add(&mut a.hub, Kind::Item, json!({"name": "Water", "unit": "bottle"}));
    let first = a.hub.export_bundle(false, &[]).unwrap();
    a.hub.bundle_written(&first).unwrap();
    a.hub.update(&water, fields(json!({"notes": "cold"}))).unwrap();
    add(&mut a.hub, Kind::Item, json!({"name": "Rice", "unit": "kg"}));
    let second = a.hub.export_bundle(false, &[]).unwrap();
    assert!(second.bytes.len() < first.bytes.len(), "the second bundle holds only what changed");
    // South gets the second bundle first: nothing is refused, the changes wait.
    let (s, _) = b.hub.import_bundle(&second.bytes).unwrap();
    assert!(s.waiting_documents >= 1, "{s:?}");
    assert_eq!(b.hub.count(Kind::Item).unwrap(), 0, "changes without their predecessor are not shown yet");
    // They wait in the store, not in memory: a restart keeps them.
    drop(b.hub);
    b.hub = reopen(&b.path, &b.clock);
    let (s, _) = b.hub.import_bundle(&first.bytes).unwrap();
    assert_eq!(s.waiting_documents, 0, "{s:?}");
    // West imports them in order; both end alike, and alike with North.
    c.hub.import_bundle(&first.bytes).unwrap();
    c.hub.import_bundle(&second.bytes).unwrap();
    assert_eq!(b.hub.count(Kind::Item).unwrap(), 2);
    assert_eq!(b.hub.get(&water).unwrap().body.to_fields()["notes"], json!("cold"));
    assert_eq!(records(&b.hub, Kind::Item), records(&c.hub, Kind::Item));
    assert_eq!(records(&b.hub, Kind::Item), records(&a.hub, Kind::Item));
    // The waiting changes are gone once applied: importing again changes nothing.
    assert_eq!(b.hub.import_bundle(&second.bytes).unwrap().1, 0);
    // South vouches for what waited across the restart: a hub that gets South's stick takes it.
    let mut d = new_hub("East", 4);
    join(&mut a.hub, &mut d.hub);
    let theirs = d.hub.authority_heads().unwrap();
    d.hub.offer_authority(&a.hub.authority_missing_for(&theirs).unwrap(), "North").unwrap();
    let theirs = b.hub.authority_heads().unwrap();
    b.hub.offer_authority(&a.hub.authority_missing_for(&theirs).unwrap(), "North").unwrap();
    d.hub.import_bundle(&b.hub.export_bundle(true, &[]).unwrap().bytes).unwrap();
    assert_eq!(records(&d.hub, Kind::Item), records(&a.hub, Kind::Item));
}

#[test]
fn incremental_bundles_leave_out_what_the_other_hubs_are_known_to_hold() {
    let (mut a, mut b) = pair();
    for n in 0..30 {
        add(&mut a.hub, Kind::Item, json!({"name": format!("item {n}"), "unit": "box"}));
    }
    // North knows nothing of any member yet: its first bundle holds everything, for everyone.
    let full = a.hub.export_bundle(false, &[]).unwrap();
    assert_eq!(full.summary.made_for, vec!["South".to_string()]);
    assert_eq!(full.summary.records.get("item"), Some(&30));
    a.hub.bundle_written(&full).unwrap();
    // A third member North knows nothing of is left out of incremental bundles, and named.
    let c = new_hub("West", 3);
    a.hub.admit(&c.hub.public_key(), "West").unwrap();
    let e = a.hub.export_bundle(false, &[]).unwrap();
    assert_eq!(e.summary.unknown_members, vec!["West".to_string()]);
    assert_eq!(e.summary.made_for, vec!["South".to_string()]);
    a.hub.bundle_written(&e).unwrap();
    b.hub.import_bundle(&full.bytes).unwrap();
    assert!(!b.hub.members().unwrap().is_member(&c.hub.fingerprint()));
    b.hub.import_bundle(&e.bytes).unwrap();
    // The bundle carried the authority log: South knows West is a member.
    assert!(b.hub.members().unwrap().is_member(&c.hub.fingerprint()));
    // South learnt what North holds from its bundle: South's bundle carries only South's place.
    add(&mut b.hub, Kind::Place, json!({"name": "Clinic"}));
    let back = b.hub.export_bundle(false, &[]).unwrap();
    assert_eq!(back.summary.made_for, vec!["North".to_string()]);
    assert_eq!(back.summary.records.get("item"), None, "{:?}", back.summary.records);
    assert_eq!(back.summary.records.get("place"), Some(&1));
    assert!(back.bytes.len() * 2 < full.bytes.len(), "{} vs {}", back.bytes.len(), full.bytes.len());
    a.hub.import_bundle(&back.bytes).unwrap();
    assert!(state(&a.hub) == state(&b.hub), "both hubs hold the same records");
    // After a sync, each knows what the other holds: a bundle for it holds nothing more.
    let (mut x, mut y) = pair();
    add(&mut x.hub, Kind::Item, json!({"name": "Tea", "unit": "box"}));
    add(&mut y.hub, Kind::Item, json!({"name": "Soap", "unit": "bar"}));
    sync(&mut x, &mut y);
    assert_eq!(y.hub.count(Kind::Item).unwrap(), 2);
    let e = x.hub.export_bundle(false, &[]).unwrap();
    assert_eq!(e.summary.made_for, vec!["South".to_string()]);
    assert_eq!(e.summary.documents, 0, "{:?}", e.summary);
    // Naming a hub that is not a member is refused with the reason.
    let err = x.hub.export_bundle(false, &["not-a-hub".into()]).err().unwrap();
    assert!(err.to_string().contains("hub id"), "{err}");
    let outsider = new_hub("Outsider", 7).hub.fingerprint().to_string();
    let err = x.hub.export_bundle(false, &[outsider]).err().unwrap();
    assert!(err.to_string().contains("not a member"), "{err}");
}

/// A removed admin's laptop, taken while apart, signs authority as if it still held it and
/// carries it in a bundle. Imported, its entries are kept (each was valid where it was made) but
/// count for nothing, and the hub that made them drops them too once it learns of the removal.
#[test]
fn a_removed_admins_backdated_authority_carried_in_a_bundle_counts_for_nothing() {
    let (mut a, mut b) = pair();
    // Owl works at South; North's founder makes them an admin.
    let owl = b.hub.make_person("owl", Some("2468")).unwrap();
    a.hub.add_person(&owl.key, "owl", true).unwrap();
    merge_into(&mut a.hub, &mut b.hub);
    // Apart: North removes owl (with two admins, the other one is enough).
    assert!(a.hub.remove_person("owl").unwrap());
    // At South, owl's key (unaware of the removal) adds a mole and admits a van.
    b.hub.unlock("owl", Some("2468")).unwrap();
    let mole = b.hub.make_person("mole", None).unwrap();
    b.hub.add_person(&mole.key, "mole", true).unwrap();
    let van = new_hub("Van", 5);
    b.hub.admit(&van.hub.public_key(), "Van").unwrap();
    assert!(b.hub.members().unwrap().is_member(&van.hub.fingerprint()), "South believes it, for now");
    let there = b.hub.export_bundle(true, &[]).unwrap();
    a.hub.import_bundle(&there.bytes).unwrap();
    let north = a.hub.authority().unwrap();
    assert!(!north.people.iter().any(|p| p.handle == "owl" || p.handle == "mole"), "{:?}", north.people);
    assert!(!a.hub.members().unwrap().is_member(&van.hub.fingerprint()));
    assert_eq!(north.not_counted.len(), 2, "{:?}", north.not_counted);
    // The bundle back tells South of the removal: it drops what owl did while apart.
    let back = a.hub.export_bundle(true, &[]).unwrap();
    b.hub.import_bundle(&back.bytes).unwrap();
    assert!(!b.hub.members().unwrap().is_member(&van.hub.fingerprint()));
    assert_eq!(b.hub.authority().unwrap().people, north.people);
    let e = b.hub.admit(&van.hub.public_key(), "Van").unwrap_err();
    assert_eq!(e.code(), "not_allowed", "{e}");
}

/// Two admins at two hubs remove each other while apart, and bundles carry both removals:
/// no admin is left at either hub, so no one could admit or revoke a hub. The remaining people
/// vote an admin in, across the hubs; a removed admin's vote and a lone vote do nothing.
#[test]
fn admins_who_removed_each_other_by_bundle_leave_the_people_to_vote_an_admin_in() {
    let (mut a, mut b) = pair();
    let owl = b.hub.make_person("owl", Some("2468")).unwrap();
    let wren = b.hub.make_person("wren", None).unwrap();
    let jay = a.hub.make_person("jay", None).unwrap();
    assert!(a.hub.add_person(&owl.key, "owl", true).unwrap(), "the only admin makes the second alone");
    a.hub.add_person(&wren.key, "wren", false).unwrap();
    a.hub.add_person(&jay.key, "jay", false).unwrap();
    merge_into(&mut a.hub, &mut b.hub);
    // Apart: each of the two admins removes the other (with two admins, the other is enough).
    assert!(a.hub.remove_person("owl").unwrap());
    b.hub.unlock("owl", Some("2468")).unwrap();
    assert!(b.hub.remove_person("coord").unwrap());
    let north = a.hub.export_bundle(true, &[]).unwrap();
    let south = b.hub.export_bundle(true, &[]).unwrap();
    b.hub.import_bundle(&north.bytes).unwrap();
    a.hub.import_bundle(&south.bytes).unwrap();
    for h in [&a.hub, &b.hub] {
        let st = h.authority().unwrap();
        assert!(!st.people.iter().any(|p| p.admin), "{:?}", st.people);
        assert_eq!(st.contested.len(), 1, "{:?}", st.contested);
        assert_eq!(st.votes_needed, 2, "two people are left: both must vote");
    }
    let van = new_hub("Van", 5);
    a.hub.unlock("jay", None).unwrap();
    assert_eq!(a.hub.admit(&van.hub.public_key(), "Van").unwrap_err().code(), "not_allowed");
    // A removed admin has no vote; one vote of two is not enough.
    a.hub.unlock("coord", None).unwrap();
    assert_eq!(a.hub.vote_admin("jay").unwrap_err().code(), "not_allowed");
    a.hub.unlock("jay", None).unwrap();
    assert!(!a.hub.vote_admin("jay").unwrap());
    assert_eq!(a.hub.vote_admin("jay").unwrap_err().code(), "not_allowed", "no one votes twice");
    // Wren, at South, votes for jay when the bundle brings jay's vote: jay is an admin, at
    // South at once and at North with the bundle back.
    b.hub.import_bundle(&a.hub.export_bundle(true, &[]).unwrap().bytes).unwrap();
    b.hub.unlock("wren", None).unwrap();
    assert!(b.hub.vote_admin("jay").unwrap());
    a.hub.import_bundle(&b.hub.export_bundle(true, &[]).unwrap().bytes).unwrap();
    let st = a.hub.authority().unwrap();
    assert!(st.people.iter().any(|p| p.handle == "jay" && p.admin) && st.votes.is_empty(), "{st:?}");
    a.hub.admit(&van.hub.public_key(), "Van").unwrap();
    // With an admin again, votes are refused: admins make admins.
    b.hub.import_bundle(&a.hub.export_bundle(true, &[]).unwrap().bytes).unwrap();
    assert_eq!(b.hub.vote_admin("wren").unwrap_err().code(), "not_allowed");
}

/// A bundle of South's own making (sealed with the coalition key, signed by South, a member)
/// carrying the given vault items: what a hostile member can put on a stick.
fn forged_bundle(b: &TestHub, items: Vec<aidmesh_mesh::session::VaultItem>) -> Vec<u8> {
    forged_bundle_with(b, items, &[])
}

/// [`forged_bundle`], with documents (their info and bytes) too.
fn forged_bundle_with(
    b: &TestHub,
    items: Vec<aidmesh_mesh::session::VaultItem>,
    docs: &[(aidmesh_mesh::session::DocInfo, Vec<u8>, Vec<ChangeSig>)],
) -> Vec<u8> {
    forged_bundle_where(b, items, docs, vec![])
}

/// [`forged_bundle_with`], with whereabouts too.
fn forged_bundle_where(
    b: &TestHub,
    items: Vec<aidmesh_mesh::session::VaultItem>,
    docs: &[(aidmesh_mesh::session::DocInfo, Vec<u8>, Vec<ChangeSig>)],
    whereabouts: Vec<Whereabouts>,
) -> Vec<u8> {
    // Sealed, as South's own bundles are, for every member South knows.
    let mut recipients = vec![*b.hub.identity().public().as_bytes()];
    for m in b.hub.members().unwrap().members.values() {
        recipients.push(m.key.0);
    }
    let header = aidmesh_mesh::bundle::Header {
        exporter: String::new(),
        created_at: 1,
        full: false,
        docs: vec![],
        vault: items,
        records: Default::default(),
        heads: Default::default(),
        authority: vec![],
        sigs: docs
            .iter()
            .map(|(i, _, s)| (i.doc.to_string(), s.iter().map(|s| aidmesh_mesh::hex::encode(s.to_bytes())).collect()))
            .collect(),
        whereabouts,
    };
    let docs: Vec<_> = docs.iter().map(|(i, b, _)| (i.clone(), b.clone())).collect();
    let seal = aidmesh_mesh::bundle::Seal { ephemeral: [5; 32], content_key: [6; 32], nonce: [5; 24] };
    aidmesh_mesh::bundle::write(&b.hub.identity(), &recipients, &seal, header, &docs)
}

/// Where a hub says it can be reached travels in bundles to hubs that never meet it; a member
/// who carries an altered copy, or one it signed in another hub's name, has the whole bundle
/// refused (its documents too), named among the refusals.
#[test]
fn whereabouts_travel_in_bundles_and_a_forged_one_refuses_the_bundle() {
    let (mut a, mut b) = pair();
    let mut c = new_hub("East", 3);
    join(&mut a.hub, &mut c.hub);
    let log = a.hub.authority_entries().unwrap();
    b.hub.offer_authority(&log, "test").unwrap();
    c.hub.offer_authority(&log, "test").unwrap();
    let addr: std::net::SocketAddr = "192.0.2.7:4433".parse().unwrap();
    let relay = "https://relay.example.org/".to_string();
    assert_eq!(a.hub.say_whereabouts(Some(relay.clone()), &[addr]).unwrap(), Some(true));
    assert_eq!(a.hub.say_whereabouts(Some(relay.clone()), &[addr]).unwrap(), Some(false), "said once while it holds");
    let stranger = new_hub("Elsewhere", 4);
    assert_eq!(stranger.hub.whereabouts_of(&a.hub.identity().id()).unwrap(), None);
    let said = a.hub.whereabouts_of(&a.hub.identity().id()).unwrap().expect("kept");
    b.hub.import_bundle(a.hub.export_bundle(true, &[]).unwrap().bytes).unwrap();
    assert_eq!(b.hub.whereabouts_of(&a.hub.identity().id()).unwrap(), Some(said.clone()));

    // East, a member, carries North's entry pointed elsewhere, and one it signed as North.
    let elsewhere: std::net::SocketAddr = "198.51.100.9:53".parse().unwrap();
    let altered = Whereabouts { direct: vec![elsewhere], version: said.version + 1, ..said.clone() };
    let in_norths_name = Whereabouts {
        hub: a.hub.identity().id(),
        ..Whereabouts::new(&c.hub.identity(), said.version + 1, None, &[elsewhere])
    };
    let rice = add(&mut c.hub, Kind::Item, json!({"name": "Rice", "unit": "kg"}));
    let docs: Vec<_> = c
        .hub
        .export_docs()
        .unwrap()
        .into_iter()
        .map(|d| {
            let info = aidmesh_mesh::session::DocInfo {
                doc: d.doc.into(),
                partition: d.partition,
                created_at: d.created_at.millis(),
                ..Default::default()
            };
            (info, d.bytes, d.sigs)
        })
        .collect();
    for forged in [altered, in_norths_name] {
        let stick = forged_bundle_where(&c, vec![], &docs, vec![forged]);
        let e = b.hub.import_bundle(stick).unwrap_err().to_string();
        assert!(e.contains(&format!("whereabouts of {}: not signed by that hub", a.hub.identity().id())), "{e}");
        assert_eq!(b.hub.whereabouts_of(&a.hub.identity().id()).unwrap(), Some(said.clone()), "unchanged");
        assert!(b.hub.get(&rice).is_err(), "nothing of the bundle was taken");
    }
    let refused = b.hub.authority().unwrap().refused;
    assert!(
        refused.iter().any(|r| r.source.contains("bundle made by") && r.reason.contains("whereabouts")),
        "{refused:?}"
    );
    // The same bundle without the forged entry is taken whole.
    b.hub.import_bundle(forged_bundle_where(&c, vec![], &docs, vec![])).unwrap();
    assert!(b.hub.get(&rice).is_ok());

    // A revoked hub's whereabouts go with it.
    let east = c.hub.identity().id();
    c.hub.say_whereabouts(None, &[addr]).unwrap();
    b.hub.import_bundle(c.hub.export_bundle(true, &[]).unwrap().bytes).unwrap();
    assert!(b.hub.whereabouts_of(&east).unwrap().is_some());
    a.hub.revoke(&east.to_string()).unwrap();
    b.hub.offer_authority(&a.hub.authority_entries().unwrap(), "test").unwrap();
    assert_eq!(b.hub.whereabouts_of(&east).unwrap(), None);
}

/// Personal data belongs to the hub that holds the person's consent. A member can neither
/// overwrite it (a forged version, however large its number), nor erase it, nor claim it; the
/// consent hub, or an admin anywhere, erases it on every hub.
#[test]
fn a_member_cannot_overwrite_erase_or_claim_anothers_vault_entry() {
    use aidmesh_mesh::session::VaultItem;
    let (mut a, mut b) = pair();
    let vid = a.hub.vault_put(&fields(json!({"name": "Amal", "phone": "+34 600 000 001"}))).unwrap();
    let to_south = a.hub.export_bundle(true, &[]).unwrap();
    b.hub.import_bundle(&to_south.bytes).unwrap();
    assert!(matches!(b.hub.vault_get(&vid).unwrap(), VaultState::Present(_)));
    let north_id = a.hub.hub_id().to_string();
    let false_phone = aidmesh_mesh::hex::encode(br#"{"name":"Amal","phone":"+34 600 666 666"}"#);
    let forged = vec![
        // A newer version in North's name, with a made-up signature.
        VaultItem {
            id: vid.clone(),
            updated_at: i64::MAX,
            origin: north_id.clone(),
            content: Some(false_phone.clone()),
            version: u64::MAX,
            sig: "00".repeat(64),
        },
        // An erasure in North's name.
        VaultItem {
            id: vid.clone(),
            updated_at: i64::MAX,
            origin: north_id.clone(),
            content: None,
            version: u64::MAX,
            sig: "11".repeat(64),
        },
    ];
    // South claiming the entry as its own, with its own valid signature.
    let south_id = b.hub.hub_id().to_string();
    let claim_sig = aidmesh_mesh::hex::encode(b.hub.identity().sign(&VaultItem::signed_bytes(
        &vid,
        7,
        &south_id,
        Some(br#"{"name":"Amal","phone":"+34 600 666 666"}"#),
    )));
    let mut all = forged;
    all.push(VaultItem {
        id: vid.clone(),
        updated_at: 5,
        origin: south_id,
        content: Some(false_phone),
        version: 7,
        sig: claim_sig,
    });
    a.hub.import_bundle(forged_bundle(&b, all)).unwrap();
    match a.hub.vault_get(&vid).unwrap() {
        VaultState::Present(pt) => {
            assert!(String::from_utf8(pt).unwrap().contains("000 001"), "the entry survives unchanged")
        }
        s => panic!("{s:?}"),
    }
    // One line for the three, from the bundle (a flood of forged entries costs one write).
    let refused = a.hub.authority().unwrap().refused;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].source.starts_with("bundle made by"), "{refused:?}");
    assert!(refused[0].reason.starts_with("3 vault entries refused; the first: "), "{refused:?}");
    // South's coordinator is no admin: South cannot erase North's entry either.
    assert_eq!(b.hub.vault_erase(&vid).unwrap_err().code(), "not_allowed");
    // An admin at South can: the erasure travels as an authority entry and reaches North.
    let owl = b.hub.make_person("owl", None).unwrap();
    a.hub.add_person(&owl.key, "owl", true).unwrap();
    merge_into(&mut a.hub, &mut b.hub);
    b.hub.unlock("owl", None).unwrap();
    b.hub.vault_erase(&vid).unwrap();
    let back = b.hub.export_bundle(true, &[]).unwrap();
    a.hub.import_bundle(&back.bytes).unwrap();
    assert!(matches!(a.hub.vault_get(&vid).unwrap(), VaultState::Erased { .. }), "the admin's erasure reached North");
    // North, holding the consent of a second person, erases its own entry; South follows.
    let v2 = a.hub.vault_put(&fields(json!({"name": "Bo"}))).unwrap();
    b.hub.import_bundle(&a.hub.export_bundle(true, &[]).unwrap().bytes).unwrap();
    a.hub.vault_erase(&v2).unwrap();
    b.hub.import_bundle(&a.hub.export_bundle(true, &[]).unwrap().bytes).unwrap();
    assert!(matches!(b.hub.vault_get(&v2).unwrap(), VaultState::Erased { .. }));
}

/// Someone who works at two hubs is one person: their key at the second hub, certified by the
/// first, signs for them there; withdrawn (a lost laptop), it signs for no one.
#[test]
fn a_person_at_two_hubs_signs_with_a_key_at_each() {
    let (mut a, mut b) = pair();
    let owl = a.hub.make_person("owl", Some("1357")).unwrap();
    a.hub.add_person(&owl.key, "owl", true).unwrap();
    // At South, owl makes a key of their own; at North, unlocked, they certify it.
    let there = b.hub.make_person("owl", Some("2468")).unwrap();
    b.hub.unlock("owl", Some("2468")).unwrap();
    let proof = b.hub.key_proof(&owl.key).unwrap();
    a.hub.unlock("owl", Some("1357")).unwrap();
    // A proof made for someone else does not do.
    let wrong = b.hub.key_proof(&there.key).unwrap();
    assert_eq!(a.hub.add_key(&there.key, &wrong).unwrap_err().code(), "not_allowed");
    a.hub.add_key(&there.key, &proof).unwrap();
    merge_into(&mut a.hub, &mut b.hub);
    b.hub.unlock("owl", Some("2468")).unwrap();
    assert!(b.hub.acting_is_admin().unwrap(), "South's key signs for owl, an admin");
    let van = new_hub("Van", 6);
    b.hub.admit(&van.hub.public_key(), "Van").unwrap();
    merge_into(&mut b.hub, &mut a.hub);
    assert!(a.hub.members().unwrap().is_member(&van.hub.fingerprint()));
    let people = a.hub.authority().unwrap().people;
    assert_eq!(people.iter().filter(|p| p.handle == "owl").count(), 1, "one person, two keys");
    assert_eq!(people.iter().find(|p| p.handle == "owl").unwrap().keys, 2);
    // South's laptop is lost: owl withdraws that key at North.
    a.hub.revoke_key(&there.key).unwrap();
    merge_into(&mut a.hub, &mut b.hub);
    assert!(!b.hub.acting_is_admin().unwrap());
    assert_eq!(b.hub.revoke(&van.hub.fingerprint().to_string()).unwrap_err().code(), "not_allowed");
}

/// A member that rewrites a record that is never changed (100 insulin pens received become 10)
/// at the Automerge level, bypassing its own hub's refusal, and hands the change on: merged
/// directly or on a stick, it is refused whole with a tamper alert naming the hub whose key
/// the change carries; nothing is stored, and honest changes still merge.
/// A member's rewrite of a stock movement: South edits the movement document by hand, as South
/// (its key, an actor of its own), setting `quantity`. Returns South's export of the document,
/// the document with the rewrite, the rewriting change alone, and South's signature of it.
/// North and South, both holding North's 100 insulin pens received at the hall: the hall's id,
/// the pens' and the movement's.
/// A place, an item and the stock movement that receives 100 of it there: their ids.
fn a_movement(h: &mut Hub) -> (String, String, String) {
    let hall = add(h, Kind::Place, json!({"name": "Hall"}));
    let pens = add(h, Kind::Item, json!({"name": "Insulin pen", "unit": "pen"}));
    let m = add(h, Kind::Movement, json!({"item": pens, "type": "receive", "quantity": 100, "place": hall}));
    (hall, pens, m)
}

fn pair_with_a_movement() -> (TestHub, TestHub, String, String, String) {
    let (mut a, mut b) = pair();
    let (hall, pens, m) = a_movement(&mut a.hub);
    merge_into(&mut a.hub, &mut b.hub);
    (a, b, hall, pens, m)
}

/// How a document a hub exported is named in a bundle or a sync session.
fn info_of(export: &aidmesh_hub::DocExport) -> aidmesh_mesh::session::DocInfo {
    aidmesh_mesh::session::DocInfo {
        doc: export.doc.as_str().into(),
        partition: export.partition.clone(),
        created_at: export.created_at.millis(),
        heads: String::new(),
    }
}

fn rewrite_movement(
    b: &mut TestHub,
    m: &str,
    quantity: i64,
) -> (aidmesh_hub::DocExport, aidmesh_replica::Doc, Vec<u8>, ChangeSig) {
    rewrite_record(b, m, |body| {
        if let aidmesh_hub::model::Body::Movement(mv) = body {
            mv.quantity = quantity;
        }
    })
}

/// South's coordinator edits record `id` in its document by hand, as South (its key), and signs
/// the change: the document as South exported it, the edited copy, the change, its signature.
fn rewrite_record(
    b: &mut TestHub,
    id: &str,
    edit: impl FnOnce(&mut aidmesh_hub::model::Body),
) -> (aidmesh_hub::DocExport, aidmesh_replica::Doc, Vec<u8>, ChangeSig) {
    let mut actor = b.hub.identity().public().as_bytes().to_vec();
    actor.extend([7; 8]);
    let (export, mut doc) = b
        .hub
        .export_docs()
        .unwrap()
        .into_iter()
        .find_map(|e| {
            let d = aidmesh_replica::Doc::load(&e.doc, &e.bytes, &actor).ok()?;
            d.get(&id.into()).ok()??;
            Some((e, d))
        })
        .unwrap();
    let mut rec = doc.get(&id.into()).unwrap().unwrap();
    edit(&mut rec.body);
    let heads = doc.heads();
    doc.update(&rec).unwrap();
    let author = aidmesh_replica::Author { hub: b.hub.hub_id().into(), handle: "fox".into(), at: t0() };
    let hash = doc.commit(&author).unwrap();
    let tampered = doc.save_after(&heads);
    let sig = ChangeSig::sign(&b.hub.identity(), &export.doc, hash.0);
    (export, doc, tampered, sig)
}

/// A record a member pointed by hand at a volunteer's contact (their name and access needs):
/// saving a contact for either is refused, naming the other, until an admin erases the entry
/// (which reaches it everywhere); it is neither copied (where erasing the volunteer's would not
/// reach) nor overwritten. Then each gets a contact of its own.
#[test]
fn saving_a_contact_for_a_record_pointed_at_anothers_never_copies_nor_changes_it() {
    let (mut a, mut b) = pair();
    let vol = add(&mut a.hub, Kind::Volunteer, json!({"handle": "quiet-fox", "consent": {"share": true}}));
    let theirs = a.hub.set_contact(&vol, &fields(json!({"name": "Amal", "access_needs": "epilepsy"}))).unwrap();
    let theirs = theirs.vault.unwrap();
    let req = add(&mut a.hub, Kind::Request, json!({"category": "food", "quantity": 1}));
    merge_into(&mut a.hub, &mut b.hub);
    let (export, _, tampered, sig) = rewrite_record(&mut b, &req, |body| {
        if let aidmesh_hub::model::Body::Request(r) = body {
            r.contact = Some(theirs.clone());
        }
    });
    a.hub.import_bundle(forged_bundle_with(&b, vec![], &[(info_of(&export), tampered, vec![sig])])).unwrap();
    assert_eq!(a.hub.get(&req).unwrap().to_json()["contact"], json!(theirs));
    let why = "deliver the food parcel";
    for (record, other) in [(&req, &vol), (&vol, &req)] {
        let e = a.hub.set_contact(record, &fields(json!({"phone": "+34 600"}))).unwrap_err();
        assert!(e.to_string().contains("also named by") && e.to_string().contains(other.as_str()), "{e}");
    }
    assert_eq!(a.hub.read_contact(&vol, why).unwrap(), fields(json!({"name": "Amal", "access_needs": "epilepsy"})));
    for r in [&vol, &req] {
        assert_eq!(a.hub.get(r).unwrap().to_json()["contact"], json!(theirs), "nothing copied");
    }
    a.hub.vault_erase(&theirs).unwrap();
    let mine = a.hub.set_contact(&req, &fields(json!({"phone": "+34 600"}))).unwrap().vault.unwrap();
    assert_ne!(mine, theirs);
    assert_eq!(a.hub.read_contact(&req, why).unwrap(), fields(json!({"phone": "+34 600"})));
}

/// Access needs two hubs' members wrote by hand into one volunteer while apart (or an earlier
/// release took from its form) conflict: keeping either value, or clearing it, settles the
/// conflict, as the Overview's *Keep* does; any other value is refused as health data.
#[test]
fn access_needs_written_apart_are_settled_by_keeping_one_or_clearing() {
    let (mut a, mut b) = pair();
    let mut c = new_hub("East", 3);
    join(&mut a.hub, &mut c.hub);
    let vol = add(&mut b.hub, Kind::Volunteer, json!({"handle": "quiet-fox"}));
    merge_into(&mut b.hub, &mut a.hub);
    merge_into(&mut a.hub, &mut c.hub);
    let written = |hub: &mut TestHub, needs: &str| {
        let (export, _, tampered, sig) = rewrite_record(hub, &vol, |body| {
            if let aidmesh_hub::model::Body::Volunteer(v) = body {
                v.access_needs = needs.into();
            }
        });
        forged_bundle_with(hub, vec![], &[(info_of(&export), tampered, vec![sig])])
    };
    // Written by hand at South and East apart, both reach North.
    let (from_b, from_c) = (written(&mut b, "step-free access"), written(&mut c, "wheelchair user"));
    a.hub.import_bundle(&from_b).unwrap();
    a.hub.import_bundle(&from_c).unwrap();
    let e = a.hub.update(&vol, fields(json!({"access_needs": "diabetic"}))).unwrap_err();
    assert!(e.to_string().contains("health data"), "{e}");
    a.hub.update(&vol, fields(json!({"access_needs": "step-free access"}))).unwrap();
    merge_into(&mut a.hub, &mut b.hub);
    assert_eq!(b.hub.get(&vol).unwrap().to_json()["access_needs"], json!("step-free access"));
    // Once settled, no value but the empty one is taken.
    let e = b.hub.update(&vol, fields(json!({"access_needs": "wheelchair user"}))).unwrap_err();
    assert!(e.to_string().contains("health data"), "{e}");
    b.hub.update(&vol, fields(json!({"access_needs": ""}))).unwrap();
    assert_eq!(b.hub.get(&vol).unwrap().to_json()["access_needs"], json!(""));
}

/// A member writes by hand, and signs, two movements that each receive `i64::MAX` pens (no form
/// would take them; nothing checks a peer's records against the forms' rules): the hub takes
/// them, each counted as the most one movement may move, so the stock still reads, the same
/// merged or rebuilt, rather than wrapping negative or turning into a number no read takes.
#[test]
fn a_members_movements_of_absurd_quantities_count_as_the_most_a_movement_moves() {
    let (mut a, mut b, _, pens, m) = pair_with_a_movement();
    let mut actor = b.hub.identity().public().as_bytes().to_vec();
    actor.extend([7; 8]);
    let export = b.hub.export_docs().unwrap().into_iter().find(|d| d.doc.starts_with("movement")).unwrap();
    let mut doc = aidmesh_replica::Doc::load(&export.doc, &export.bytes, &actor).unwrap();
    let honest = doc.get(&m.as_str().into()).unwrap().unwrap();
    for n in 0..2 {
        let mut rec = honest.clone();
        rec.meta.id = format!("{m}{n}").as_str().into();
        if let aidmesh_hub::model::Body::Movement(mv) = &mut rec.body {
            mv.quantity = i64::MAX;
        }
        doc.create(&rec).unwrap();
    }
    let author = aidmesh_replica::Author { hub: b.hub.hub_id().into(), handle: "fox".into(), at: t0() };
    let hash = doc.commit(&author).unwrap();
    let mut sigs = export.sigs.clone();
    sigs.push(ChangeSig::sign(&b.hub.identity(), &export.doc, hash.0));
    a.hub.merge_doc(&export.doc, &export.partition, export.created_at, &doc.save(), &sigs).unwrap();
    let most = aidmesh_hub::model::MAX_QUANTITY;
    let stock: Vec<i64> = a.hub.stock(Some(&pens)).unwrap().iter().map(|s| s.quantity).collect();
    assert_eq!(stock, vec![100 + 2 * most]);
    // Rebuilt from the documents, the same.
    a.hub.rebuild_index().unwrap();
    let stock: Vec<i64> = a.hub.stock(Some(&pens)).unwrap().iter().map(|s| s.quantity).collect();
    assert_eq!(stock, vec![100 + 2 * most]);
}

/// A member's change that names as its predecessor a stock movement's record, from a value it
/// puts at another key (Automerge takes it, and the movement is gone): refused whole as a forged
/// change, not a crash of the hub, and the movement stays.
#[test]
fn a_change_with_a_forged_predecessor_is_refused_and_the_hub_goes_on() {
    let (mut a, mut b, _, pens, m) = pair_with_a_movement();
    let export = b.hub.export_docs().unwrap().into_iter().find(|d| d.doc.starts_with("movement")).unwrap();
    let mut actor = b.hub.identity().public().as_bytes().to_vec();
    actor.extend([7; 8]);
    let mut doc = aidmesh_replica::Doc::load(&export.doc, &export.bytes, &actor).unwrap();
    let victim = match automerge::ReadDoc::get(doc.automerge(), automerge::ROOT, m.as_str()).unwrap() {
        Some((_, automerge::ObjId::Id(counter, actor, _))) => automerge::legacy::OpId(counter, actor),
        other => panic!("{other:?}"),
    };
    let heads = doc.heads();
    automerge::transaction::Transactable::put(doc.automerge(), automerge::ROOT, "zzz", "a value at the root").unwrap();
    let author = aidmesh_replica::Author { hub: b.hub.hub_id().into(), handle: "fox".into(), at: t0() };
    doc.commit(&author).unwrap();
    let honest = doc.changes_after(&heads).remove(0).decode();
    let level = |h: &Hub| h.stock(Some(&pens)).unwrap().iter().map(|s| s.quantity).sum::<i64>();
    // Each: the forgery, the error's code and what it says. The last two make Automerge panic
    // as it applies them (an operation into an object that does not exist, a predecessor made
    // by an actor it never saw): refused, and the hub goes on.
    type Forge = Box<dyn Fn(&mut automerge::legacy::Op)>;
    let stranger = automerge::ActorId::from([9u8; 40].as_slice());
    let own = automerge::ActorId::from(actor.as_slice());
    let forgeries: [(Forge, &str, &str); 3] = [
        (Box::new(move |op| op.pred = vec![victim.clone()].into()), "tampered", "does not rebuild as it was made"),
        (
            Box::new(move |op| op.obj = automerge::legacy::ObjectId::Id(automerge::legacy::OpId(999_999, own.clone()))),
            "tampered",
            "Automerge cannot read",
        ),
        (
            Box::new(move |op| op.pred = vec![automerge::legacy::OpId(1, stranger.clone())].into()),
            "tampered",
            "Automerge cannot read",
        ),
    ];
    for (forge, code, says) in forgeries {
        let mut change = honest.clone();
        forge(&mut change.operations[0]);
        let forged = automerge::Change::from(change);
        let sig = ChangeSig::sign(&b.hub.identity(), &export.doc, forged.hash().0);
        let stick = forged_bundle_with(&b, vec![], &[(info_of(&export), forged.raw_bytes().to_vec(), vec![sig])]);
        let e = a.hub.import_bundle(&stick).unwrap_err();
        assert_eq!(e.code(), code, "{e}");
        assert!(e.to_string().contains(says), "{e}");
        assert!(a.hub.get(&m).is_ok(), "the movement is still there");
        assert_eq!(level(&a.hub), 100, "and counts");
    }
    // The refusal is listed for people to see, with the bundle it came in.
    let refused = a.hub.authority().unwrap().refused;
    assert!(
        refused.iter().any(|r| r.source.starts_with("bundle made by") && r.reason.contains("does not rebuild")),
        "{refused:?}"
    );
    // The hub goes on: it writes, and takes South's honest changes.
    add(&mut a.hub, Kind::Item, json!({"name": "Gauze", "unit": "roll"}));
    add(&mut b.hub, Kind::Item, json!({"name": "Tarpaulin", "unit": "sheet"}));
    merge_into(&mut b.hub, &mut a.hub);
    assert_eq!(a.hub.search("Tarpaulin", None, 10).unwrap().len(), 1);
}

/// A hub joined to `a`'s coalition that knows its members and holds no document yet.
fn joined_knowing_members(a: &mut TestHub, name: &str, seed: u8) -> TestHub {
    let mut c = new_hub(name, seed);
    join(&mut a.hub, &mut c.hub);
    let missing = a.hub.authority_missing_for(&c.hub.authority_heads().unwrap()).unwrap();
    c.hub.offer_authority(&missing, "test merge").unwrap();
    c
}

/// North and South holding an item document, and South's item document saved by hand
/// ([`aidmesh_replica::fuzzing::saved_by_hand`]) under runs of South's key, which signs its
/// honest changes: with those signatures.
fn hand_saved() -> (TestHub, TestHub, aidmesh_hub::DocExport, aidmesh_replica::fuzzing::HandSaved, Vec<ChangeSig>) {
    let (mut a, mut b) = pair();
    add(&mut a.hub, Kind::Item, json!({"name": "Water", "unit": "bottle"}));
    merge_into(&mut a.hub, &mut b.hub);
    let export = b.hub.export_docs().unwrap().into_iter().find(|d| d.doc.starts_with("item")).unwrap();
    let run = |n: u8| [b.hub.identity().public().as_bytes().as_slice(), &[n; 8]].concat();
    let forged = aidmesh_replica::fuzzing::saved_by_hand(&export.doc, [&run(1), &run(2), &run(3)]);
    let sigs = forged.changes.iter().map(|ch| ChangeSig::sign(&b.hub.identity(), &export.doc, ch.hash().0)).collect();
    (a, b, export, forged, sigs)
}

/// A sync message carrying `forged` whole, at its heads, with a summary naming `last_sync`.
fn whole_message(
    forged: &aidmesh_replica::fuzzing::HandSaved,
    last_sync: Option<automerge::ChangeHash>,
) -> automerge::sync::Message {
    let have = last_sync.map(|h| automerge::sync::Have { last_sync: vec![h], bloom: Default::default() });
    automerge::sync::Message {
        heads: vec![forged.changes[1].hash()],
        need: vec![],
        have: have.into_iter().collect(),
        changes: vec![forged.bytes.clone()].into(),
        flags: None,
        version: automerge::sync::MessageVersion::V2,
    }
}

/// A member saves a document whole by hand, under honest changes and their signatures, with a
/// stock movement marked overwritten by a write elsewhere (Automerge loads a saved document's
/// operations as saved, and rebuilds its changes, and their hashes, without such a mark): the
/// movement would be gone, though no change removed it. A hub that holds nothing of the
/// document takes it from the stick as its changes make it: the movement is there. So does one
/// sent it in a sync message prepared ahead whose summary falsely names a sync before.
#[test]
fn a_document_saved_by_hand_to_hide_a_movement_is_taken_as_its_changes_make_it() {
    let (mut a, mut b, export, forged, sigs) = hand_saved();
    // East holds no document yet; South learns of it (its stick is sealed for the members it knows).
    let mut c = joined_knowing_members(&mut a, "East", 3);
    merge_into(&mut a.hub, &mut b.hub);
    let loaded = automerge::AutoCommit::load(&forged.bytes).unwrap();
    assert!(automerge::ReadDoc::get(&loaded, automerge::ROOT, forged.hidden).unwrap().is_none(), "loaded as saved");
    let stick = forged_bundle_with(&b, vec![], &[(info_of(&export), forged.bytes.clone(), sigs.clone())]);
    // And in a sync message prepared ahead whose summary names a sync before, falsely (the
    // preparation then takes the hub to hold some of it, and rebuilds nothing ahead), to a
    // fourth hub that holds nothing of it.
    let mut d = joined_knowing_members(&mut a, "West", 5);
    let msg = whole_message(&forged, Some(forged.changes[0].hash()));
    let prepared = <Hub as Replica>::prepare(&info_of(&export).doc, &msg, &sigs);
    let mut state = automerge::sync::State::new();
    <Hub as Replica>::receive(&mut d.hub, &PeerId::named("south"), &info_of(&export), &mut state, msg, &sigs, prepared)
        .unwrap();
    assert!(d.hub.get(forged.hidden).is_ok(), "the movement is there");
    c.hub.import_bundle(&stick).unwrap();
    assert!(c.hub.get(forged.hidden).is_ok(), "the movement is there");
    assert_eq!(c.hub.search("Still water", None, 10).unwrap().len(), 1, "and the rename");
}

/// The same hand-saved document, in a sync message to a hub that holds part of it already
/// (Automerge sends a whole save whenever more than a third of a document is new to its peer):
/// its changes are applied to what the hub holds, and the movement stays.
#[test]
fn a_document_saved_by_hand_to_a_hub_holding_part_of_it_is_taken_as_its_changes_make_it() {
    let (mut a, mut b, export, forged, sigs) = hand_saved();
    let mut c = joined_knowing_members(&mut a, "East", 3);
    merge_into(&mut a.hub, &mut b.hub);
    // East holds the first change (the movement made) from a stick.
    let first = forged.changes[0].raw_bytes().to_vec();
    let stick = forged_bundle_with(&b, vec![], &[(info_of(&export), first, vec![sigs[0]])]);
    c.hub.import_bundle(&stick).unwrap();
    assert!(c.hub.get(forged.hidden).is_ok(), "held before");
    let msg = whole_message(&forged, None);
    let mut state = automerge::sync::State::new();
    <Hub as Replica>::receive(&mut c.hub, &PeerId::named("south"), &info_of(&export), &mut state, msg, &sigs, None)
        .unwrap();
    assert!(c.hub.get(forged.hidden).is_ok(), "the movement is there");
    assert_eq!(c.hub.search("Still water", None, 10).unwrap().len(), 1, "and the rename");
}

/// A check-in is closed once, by an amendment, and never changed after: a hub that closes it in
/// the record itself (as earlier releases did) is taken, one that changes a check-out is refused.
#[test]
fn a_check_in_is_checked_out_once_and_no_member_changes_it_after() {
    use aidmesh_hub::model::Body;
    let (mut a, mut b) = pair();
    // Once check-ins are append-only (`Kind::append_only_from`).
    for h in [&a, &b] {
        h.clock.set(aidmesh_hub::model::Timestamp::parse("2026-12-08T08:00:00Z").unwrap());
    }
    let v = add(&mut a.hub, Kind::Volunteer, json!({"handle": "swift-otter"}));
    let check_in =
        |hub: &mut Hub| add(hub, Kind::CheckIn, json!({"volunteer": v, "checked_in": "2026-11-25T08:00:00Z"}));
    let out = |hub: &Hub, id: &str| match hub
        .list(Kind::CheckIn, 10, 0)
        .unwrap()
        .into_iter()
        .find(|r| r.record.id().as_str() == id)
    {
        Some(l) => match l.record.body {
            Body::CheckIn(c) => c.checked_out.map(|t| t.to_string()),
            _ => unreachable!(),
        },
        None => panic!("{id} is not listed"),
    };
    let first = check_in(&mut a.hub);
    let e = a.hub.update(&first, fields(json!({"checked_out": "2026-11-25T12:00:00Z"}))).unwrap_err();
    assert_eq!(e.code(), "append_only", "{e}");
    a.hub.close(&first).unwrap();
    let at = out(&a.hub, &first).expect("checked out");
    let e = a.hub.close(&first).unwrap_err();
    assert!(e.to_string().contains("checked out already"), "{e}");
    merge_into(&mut a.hub, &mut b.hub);
    assert_eq!(out(&b.hub, &first), Some(at), "the amendment travels");
    // South closes another check-in in the record itself, as a hub of an earlier release did:
    // taken, once.
    let second = check_in(&mut a.hub);
    merge_into(&mut a.hub, &mut b.hub);
    let noon = aidmesh_hub::model::Timestamp::parse("2026-11-25T12:00:00Z").unwrap();
    let (export, mut doc, _, sig) = rewrite_record(&mut b, &second, |body| {
        if let Body::CheckIn(c) = body {
            c.checked_out = Some(noon);
        }
    });
    let whole = doc.save();
    let mut sigs = export.sigs.clone();
    sigs.push(sig);
    a.hub.merge_doc(&export.doc, &export.partition, export.created_at, &whole, &sigs).unwrap();
    assert_eq!(out(&a.hub, &second), Some(noon.to_string()));
    // Changing that check-out, once taken, is a rewrite: refused whole, naming South.
    merge_into(&mut a.hub, &mut b.hub);
    let (export, mut doc, _, sig) = rewrite_record(&mut b, &second, |body| {
        if let Body::CheckIn(c) = body {
            c.checked_out = Some(aidmesh_hub::model::Timestamp::parse("2026-11-25T18:00:00Z").unwrap());
        }
    });
    let mut sigs = export.sigs.clone();
    sigs.push(sig);
    let e = a.hub.merge_doc(&export.doc, &export.partition, export.created_at, &doc.save(), &sigs).unwrap_err();
    assert_eq!(e.code(), "tampered", "{e}");
    assert!(
        e.to_string().contains(&format!("record {second} changed (checked_out)")) && e.to_string().contains("South"),
        "{e}"
    );
    assert_eq!(out(&a.hub, &second), Some(noon.to_string()), "nothing stored");
    // So is a change to any other field of a check-in.
    let (export, mut doc, _, sig) = rewrite_record(&mut b, &first, |body| {
        if let Body::CheckIn(c) = body {
            c.notes = "was never here".into();
        }
    });
    let mut sigs = export.sigs.clone();
    sigs.push(sig);
    let e = a.hub.merge_doc(&export.doc, &export.partition, export.created_at, &doc.save(), &sigs).unwrap_err();
    assert_eq!(e.code(), "tampered", "{e}");
}

#[test]
fn a_rewritten_stock_movement_is_refused_whole_with_a_tamper_alert() {
    let (mut a, mut b, hall, pens, m) = pair_with_a_movement();
    let level = |h: &Hub| h.stock(Some(&pens)).unwrap().iter().map(|s| s.quantity).sum::<i64>();
    assert_eq!(level(&b.hub), 100);
    // South's coordinator edits the movement's document by hand, as South (its key). Signed by
    // South's own key: the change is South's, and the door lets a member's change in.
    let (export, mut doc, tampered, forged_sig) = rewrite_movement(&mut b, &m, 10);
    let mut whole_sigs = export.sigs.clone();
    whole_sigs.push(forged_sig);
    // On a stick, signed by South, a member: refused whole.
    let info = info_of(&export);
    let stick = forged_bundle_with(&b, vec![], &[(info.clone(), tampered, vec![forged_sig])]);
    let e = a.hub.import_bundle(&stick).unwrap_err();
    assert_eq!(e.code(), "tampered", "{e}");
    assert_eq!(level(&a.hub), 100);
    // Merged directly (the whole document, as a sync or `merge_doc` gets it): refused too.
    let whole = doc.save();
    let e = a.hub.merge_doc(&export.doc, &export.partition, export.created_at, &whole, &whole_sigs).unwrap_err();
    assert_eq!(e.code(), "tampered", "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&format!("record {m} changed (quantity)")), "{msg}");
    assert!(msg.contains("South"), "the alert names the hub whose key the change carries: {msg}");
    assert_eq!(level(&a.hub), 100, "nothing stored");
    // A hub that never held the movement gets it and its rewrite together: refused all the same
    // (the verdict rests on the changes, not on what a hub held), so no hub ever splits off. It
    // takes the whole document as the door loaded it (`Doc::adopt`): the check runs on that.
    let mut far = new_hub("Far", 5);
    far.hub.adopt_founder(&a.hub.founder().unwrap()).unwrap();
    let theirs = far.hub.authority_heads().unwrap();
    far.hub.offer_authority(&a.hub.authority_missing_for(&theirs).unwrap(), "North").unwrap();
    let e = far.hub.merge_doc(&export.doc, &export.partition, export.created_at, &whole, &whole_sigs).unwrap_err();
    assert_eq!(e.code(), "tampered", "{e}");
    assert!(far.hub.get(&m).is_err(), "nothing of it stored");
    assert!(far.hub.export_docs().unwrap().iter().all(|d| d.doc != export.doc), "nor the document");
    // Over the sync protocol, from a peer holding the rewritten document: the session ends with
    // the reason, and nothing is stored.
    let mut peer = aidmesh_mesh::memory::Mem::signed(b.hub.identity());
    peer.admit(*a.hub.identity().public().as_bytes());
    peer.docs.insert(export.doc.as_str().into(), automerge::AutoCommit::load(&whole).unwrap());
    let now = a.clock.now();
    let refused_by = |hub: &mut Hub, peer: &mut aidmesh_mesh::memory::Mem| {
        let mut sa = Session::new(PeerId::named("peer"), now);
        let mut sp = Session::new(PeerId::named("north"), now);
        let mut to_p: VecDeque<Frame> = sa.start(hub, now).into();
        let mut to_a: VecDeque<Frame> = sp.start(peer, now).into();
        let mut ended = None;
        while ended.is_none() && (!to_a.is_empty() || !to_p.is_empty()) {
            if let Some(f) = to_p.pop_front() {
                to_a.extend(sp.handle(peer, f, now).unwrap().0);
            }
            if let Some(f) = to_a.pop_front() {
                match sa.handle(hub, f, now) {
                    Ok((frames, _)) => to_p.extend(frames),
                    Err(e) => ended = Some(e.to_string()),
                }
            }
        }
        ended.expect("the session ends")
    };
    let ended = refused_by(&mut a.hub, &mut peer);
    assert!(ended.contains(&format!("record {m} changed (quantity)")) && ended.contains("never changed"), "{ended}");
    assert_eq!(level(&a.hub), 100);
    // To the hub that never held it, as a sync message prepared ahead (what a transport does
    // with a large one): the whole document is loaded and checked before the hub is needed,
    // and refused all the same.
    let heads = doc.heads();
    let msg_of = |bytes: &[u8]| automerge::sync::Message {
        heads: heads.clone(),
        need: vec![],
        have: vec![],
        changes: vec![bytes.to_vec()].into(),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    };
    let msg = msg_of(&whole);
    let prepared = <Hub as Replica>::prepare(&info.doc, &msg, &whole_sigs);
    assert!(prepared.is_some());
    let e = <Hub as Replica>::receive(
        &mut far.hub,
        &PeerId::named("south"),
        &info,
        &mut automerge::sync::State::new(),
        msg,
        &whole_sigs,
        prepared,
    )
    .unwrap_err();
    assert_eq!(e.code(), "tampered", "{e}");
    assert!(e.to_string().contains(&format!("record {m} changed (quantity)")), "{e}");
    // What was prepared of another message (the honest document) is never used for this one.
    let honest =
        automerge::sync::Message { changes: vec![export.bytes.clone()].into(), heads: vec![], ..msg_of(&whole) };
    let prepared = <Hub as Replica>::prepare(&info.doc, &honest, &export.sigs);
    let e = <Hub as Replica>::receive(
        &mut far.hub,
        &PeerId::named("south"),
        &info,
        &mut automerge::sync::State::new(),
        msg_of(&whole),
        &whole_sigs,
        prepared,
    )
    .unwrap_err();
    assert_eq!(e.code(), "tampered", "{e}");
    assert!(far.hub.get(&m).is_err(), "nothing of it stored");
    assert!(far.hub.export_docs().unwrap().iter().all(|d| d.doc != export.doc), "nor the document");

    // Both refusals are listed for people, with where they came from.
    let refused = a.hub.authority().unwrap().refused;
    assert!(
        refused.iter().any(|r| r.source.starts_with("bundle made by") && r.reason.contains("changed (quantity)")),
        "{refused:?}"
    );
    assert!(refused.iter().any(|r| r.source == "a merged document"), "{refused:?}");
    // An honest change of the same document still merges.
    let n = add(&mut b.hub, Kind::Movement, json!({"item": pens, "type": "issue", "quantity": 4, "place": hall}));
    merge_into(&mut b.hub, &mut a.hub);
    assert!(a.hub.get(&n).is_ok());
    assert_eq!(level(&a.hub), 96);
}

/// History names the hub whose key signed a change, never the hub its message claims: South
/// writes a change whose message says North made it; North's history shows South.
#[test]
fn history_names_the_hub_that_signed_a_change_not_the_one_it_claims() {
    let (mut a, mut b) = pair();
    let item = add(&mut a.hub, Kind::Item, json!({"name": "Blanket", "unit": "piece"}));
    merge_into(&mut a.hub, &mut b.hub);
    let export = b.hub.export_docs().unwrap().into_iter().find(|d| d.partition == "item").unwrap();
    let mut actor = b.hub.identity().public().as_bytes().to_vec();
    actor.extend([3; 8]);
    let mut doc = aidmesh_replica::Doc::load(&export.doc, &export.bytes, &actor).unwrap();
    let mut rec = doc.get(&item.as_str().into()).unwrap().unwrap();
    if let aidmesh_hub::model::Body::Item(i) = &mut rec.body {
        i.notes = "wool".into();
    }
    doc.update(&rec).unwrap();
    let claim = aidmesh_replica::Author { hub: a.hub.hub_id().into(), handle: "owl".into(), at: t0() };
    let hash = doc.commit(&claim).unwrap();
    let sig = ChangeSig::sign(&b.hub.identity(), &export.doc, hash.0);
    a.hub.merge_doc(&export.doc, &export.partition, export.created_at, &doc.save(), &[sig]).unwrap();
    let history = a.hub.history(&item).unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    // Both changes carry the same time: which comes first is the replica's tie-break.
    let by = |hub: &str| history.iter().filter(|h| h.hub == hub).count();
    assert_eq!(by(a.hub.hub_id()), 1, "North made the record: {history:?}");
    assert_eq!(by(b.hub.hub_id()), 1, "the signer, not the claim: {history:?}");
}

/// A change made while a person of the coalition is unlocked carries their signature too, and
/// history on every hub names them; a change made with no person of the coalition unlocked names
/// none (its handle is only the hub's word). No hub can credit a change to a person whose key it
/// does not hold; one credited to a key that is no person's says so; and a rewrite signed by a
/// person is refused with an alert that names the hub and the person.
#[test]
fn changes_name_the_person_who_signed_them_and_no_hub_can_credit_another() {
    use aidmesh_mesh::changes::actor;
    let (mut a, mut b, _, pens, m) = pair_with_a_movement();
    // North's founder is unlocked there and a person of the coalition: the change is theirs.
    let h = b.hub.history(&pens).unwrap();
    assert_eq!(h.iter().map(|l| l.person.as_deref()).collect::<Vec<_>>(), [Some("coord")], "{h:?}");
    // South's coordinator is no person of this coalition: South writes as the hub alone.
    b.hub.update(&pens, fields(json!({"notes": "fridge"}))).unwrap();
    merge_into(&mut b.hub, &mut a.hub);
    let h = a.hub.history(&pens).unwrap();
    assert!(h.iter().any(|l| l.hub == b.hub.hub_id() && l.person.is_none()), "{h:?}");
    // Ana is a person of the coalition, her key at South (an admin added it).
    let ana = aidmesh_mesh::Identity::from_secret(&[42; 32]);
    let ana_hex = aidmesh_mesh::hex::encode(ana.public().as_bytes());
    a.hub.add_person(&ana_hex, "ana", false).unwrap();
    merge_into(&mut a.hub, &mut b.hub);
    let founder = a.hub.acting().unwrap().key.clone();
    let founder: [u8; 32] = aidmesh_mesh::hex::decode(&founder).unwrap().try_into().unwrap();
    let stranger = aidmesh_mesh::Identity::from_secret(&[43; 32]);
    let south = b.hub.identity();
    let export = b.hub.export_docs().unwrap().into_iter().find(|d| d.partition == "item").unwrap();
    // South edits the item by hand under an actor that names `person`.
    let edit = |person: &[u8; 32], notes: &str| {
        let mut doc = aidmesh_replica::Doc::load(
            &export.doc,
            &export.bytes,
            &actor(south.public().as_bytes(), Some(person), &[5; 8]),
        )
        .unwrap();
        let mut rec = doc.get(&pens.as_str().into()).unwrap().unwrap();
        if let aidmesh_hub::model::Body::Item(i) = &mut rec.body {
            i.notes = notes.into();
        }
        doc.update(&rec).unwrap();
        let author = aidmesh_replica::Author { hub: b.hub.hub_id().into(), handle: "x".into(), at: t0() };
        let hash = doc.commit(&author).unwrap();
        (doc.save(), hash.0)
    };
    let merge = |to: &mut Hub, (bytes, sig): (Vec<u8>, ChangeSig)| {
        to.merge_doc(
            &export.doc,
            &export.partition,
            export.created_at,
            &bytes,
            &[export.sigs.clone(), vec![sig]].concat(),
        )
    };
    let (bytes, h1) = edit(&founder, "in North's founder's name");
    let e = merge(&mut a.hub, (bytes.clone(), ChangeSig::sign(&south, &export.doc, h1))).unwrap_err();
    assert_eq!(e.code(), "unsigned_change", "{e}");
    assert!(e.to_string().contains("is not signed by that person"), "{e}");
    assert_eq!(a.hub.get(&pens).unwrap().body, b.hub.get(&pens).unwrap().body, "nothing refused is stored");
    // Credited to a key South holds but the coalition never gave a person: South's own word,
    // taken on its signature and shown as no person of the coalition (the entry that adds a
    // person may come after their changes, on another stick).
    let (bytes, h2) = edit(stranger.public().as_bytes(), "a stranger's");
    merge(&mut a.hub, (bytes, ChangeSig::sign_by(&south, &stranger, &export.doc, h2))).unwrap();
    let h = a.hub.history(&pens).unwrap();
    assert!(
        h.iter().any(|l| l.person.as_deref().is_some_and(|p| p.ends_with("(not a person of the coalition)"))),
        "{h:?}"
    );
    // Signed by South and by Ana: taken, and history names Ana on North.
    let (bytes, h3) = edit(ana.public().as_bytes(), "Ana's");
    merge(&mut a.hub, (bytes, ChangeSig::sign_by(&south, &ana, &export.doc, h3))).unwrap();
    let h = a.hub.history(&pens).unwrap();
    assert!(h.iter().any(|l| l.hub == b.hub.hub_id() && l.person.as_deref() == Some("ana")), "{h:?}");
    // Ana rewrites the movement, signed by South and by her: the alert names both.
    let export = b.hub.export_docs().unwrap().into_iter().find(|d| d.doc.starts_with("movement")).unwrap();
    let mut doc = aidmesh_replica::Doc::load(
        &export.doc,
        &export.bytes,
        &actor(south.public().as_bytes(), Some(ana.public().as_bytes()), &[6; 8]),
    )
    .unwrap();
    let mut rec = doc.get(&m.as_str().into()).unwrap().unwrap();
    if let aidmesh_hub::model::Body::Movement(mv) = &mut rec.body {
        mv.quantity = 10;
    }
    doc.update(&rec).unwrap();
    let author = aidmesh_replica::Author { hub: b.hub.hub_id().into(), handle: "ana".into(), at: t0() };
    let hash = doc.commit(&author).unwrap();
    let sigs = [export.sigs.clone(), vec![ChangeSig::sign_by(&south, &ana, &export.doc, hash.0)]].concat();
    let e = a.hub.merge_doc(&export.doc, &export.partition, export.created_at, &doc.save(), &sigs).unwrap_err();
    assert_eq!(e.code(), "tampered", "{e}");
    assert!(e.to_string().contains("South") && e.to_string().contains("person ana"), "{e}");
    // Once Ana is removed, her change still shows as a person's, not as a stranger's.
    a.hub.remove_person(&ana_hex).unwrap();
    let h = a.hub.history(&pens).unwrap();
    assert!(
        h.iter()
            .any(|l| l.person.as_deref().is_some_and(|p| p.ends_with("(a person's key, since revoked or removed)"))),
        "{h:?}"
    );
}

/// South's changes reach Third with the signature on the last one, which cannot apply there
/// yet (it builds on North's edit, which Third lacks). Third holds the first two and keeps the
/// last as a voucher, on disk: after a restart, the bundle it writes carries the voucher with
/// them, and a fourth hub takes them, instead of refusing Third's whole bundle.
#[test]
fn a_signed_change_that_waits_still_vouches_for_the_ones_before_it_after_a_restart() {
    let (mut a, mut b) = pair();
    let (mut c, mut d) = (new_hub("Third", 3), new_hub("Fourth", 4));
    join(&mut a.hub, &mut c.hub);
    join(&mut a.hub, &mut d.hub);
    // South writes two items; North edits one; South, having North's edit, writes a third.
    let first = add(&mut b.hub, Kind::Item, json!({"name": "Tarp", "unit": "piece"}));
    add(&mut b.hub, Kind::Item, json!({"name": "Rope", "unit": "m"}));
    merge_into(&mut b.hub, &mut a.hub);
    a.hub.update(&first, fields(json!({"notes": "blue"}))).unwrap();
    merge_into(&mut a.hub, &mut b.hub);
    add(&mut b.hub, Kind::Item, json!({"name": "Stakes", "unit": "piece"}));
    let export = b.hub.export_docs().unwrap().into_iter().find(|x| x.partition == "item").unwrap();
    let south = b.hub.identity().public().as_bytes().to_vec();
    let mut doc = automerge::AutoCommit::load(&export.bytes).unwrap();
    let souths: Vec<automerge::Change> =
        doc.get_changes(&[]).into_iter().filter(|c| c.actor_id().to_bytes().starts_with(&south)).collect();
    assert_eq!(souths.len(), 3, "South's three commits");
    let tip = export.sigs.iter().find(|s| s.hash == souths[2].hash().0).copied().expect("South's tip");
    let bytes: Vec<u8> = souths.iter().flat_map(|c| c.raw_bytes().to_vec()).collect();
    let info = info_of(&export);
    let theirs = c.hub.authority_heads().unwrap();
    c.hub.offer_authority(&a.hub.authority_missing_for(&theirs).unwrap(), "North").unwrap();
    c.hub.import_bundle(forged_bundle_with(&b, vec![], &[(info, bytes, vec![tip])])).unwrap();
    assert_eq!(c.hub.count(Kind::Item).unwrap(), 2, "the third waits for North's edit");
    drop(c.hub);
    c.hub = reopen(&c.path, &c.clock);
    let stick = c.hub.export_bundle(true, &[]).unwrap();
    d.hub.import_bundle(&stick.bytes).unwrap();
    assert_eq!(d.hub.count(Kind::Item).unwrap(), 2);
    // North's edit reaches Fourth: the third item applies there, vouched for all along.
    merge_into(&mut a.hub, &mut d.hub);
    assert_eq!(d.hub.count(Kind::Item).unwrap(), 3);
}

/// A member's bundle that holds this hub's own registry (`index`), or a document id no hub
/// makes, is refused whole before any change is looked at.
#[test]
fn a_bundle_with_the_index_or_an_odd_document_id_is_refused() {
    let (mut a, b) = pair();
    let before = disk(&a);
    for doc in ["index", "../item", ""] {
        let info = aidmesh_mesh::session::DocInfo {
            doc: doc.into(),
            partition: "item".into(),
            created_at: 1,
            heads: String::new(),
        };
        let e = a.hub.import_bundle(forged_bundle_with(&b, vec![], &[(info, vec![1, 2, 3], vec![])])).unwrap_err();
        assert!(e.to_string().contains("hubs never exchange"), "{doc:?}: {e}");
    }
    assert_eq!(disk(&a), before);
}

/// A lost laptop, revoked: the bundles written before can still be opened by it (it was a
/// member), those written after cannot, while every remaining member opens them.
#[test]
fn a_hub_revoked_before_a_bundle_was_written_cannot_open_it() {
    let (mut a, mut b) = pair();
    let mut lost = new_hub("Lost", 3);
    join(&mut a.hub, &mut lost.hub);
    add(&mut a.hub, Kind::Item, json!({"name": "Tarp", "unit": "piece"}));
    let before = a.hub.export_bundle(true, &[]).unwrap();
    lost.hub.import_bundle(&before.bytes).unwrap();
    assert_eq!(lost.hub.count(Kind::Item).unwrap(), 1);
    a.hub.revoke(&lost.hub.fingerprint().to_string()).unwrap();
    add(&mut a.hub, Kind::Item, json!({"name": "Rope", "unit": "m"}));
    let after = a.hub.export_bundle(true, &[]).unwrap();
    let store = disk(&lost);
    for e in [lost.hub.import_bundle(&after.bytes).unwrap_err(), lost.hub.inspect_bundle(&after.bytes).unwrap_err()] {
        assert!(e.to_string().contains("this hub cannot open the bundle"), "{e}");
    }
    assert_eq!(disk(&lost), store, "nothing changed");
    assert_eq!(lost.hub.count(Kind::Item).unwrap(), 1);
    b.hub.import_bundle(&after.bytes).unwrap();
    assert_eq!(b.hub.count(Kind::Item).unwrap(), 2, "a remaining member opens it");
    // Nothing in the file names a hub: no key of any member appears in it.
    for k in [a.hub.identity(), b.hub.identity(), lost.hub.identity()] {
        assert!(!after.bytes.windows(32).any(|w| w == k.public().as_bytes()));
    }
}

/// North and South as `pair` makes them, and West, admitted by North: each knows who the
/// members are (West holds no document yet).
fn three_who_know_each_other() -> (TestHub, TestHub, TestHub) {
    let (mut a, mut b) = pair();
    let mut c = new_hub("West", 3);
    join(&mut a.hub, &mut c.hub);
    for h in [&mut b, &mut c] {
        let theirs = h.hub.authority_heads().unwrap();
        h.hub.offer_authority(&a.hub.authority_missing_for(&theirs).unwrap(), "North").unwrap();
    }
    (a, b, c)
}

/// A rewrite that waited in a hub for the changes it builds on (it came on a stick alone) is
/// refused when a bundle of several documents brings them, and dropped: the next honest stick
/// goes through, so no hub that lives on USB sticks is held up by it.
#[test]
fn a_waiting_rewrite_is_dropped_when_a_bundle_of_several_documents_brings_what_it_waited_for() {
    let (mut a, mut b, mut c) = three_who_know_each_other();
    let (_, pens, m) = a_movement(&mut a.hub);
    merge_into(&mut a.hub, &mut b.hub);
    // South rewrites the movement, as South, and hands West that one change on a stick.
    let (export, _, tampered, sig) = rewrite_movement(&mut b, &m, 10);
    let info = info_of(&export);
    let stick = forged_bundle_with(&b, vec![], &[(info, tampered, vec![sig])]);
    let (s, _) = c.hub.import_bundle(&stick).unwrap();
    assert_eq!(s.waiting_documents, 1, "West lacks what the change builds on: it waits");
    // North's full stick, several documents, brings the movement: the rewrite is refused.
    let full = a.hub.export_bundle(true, &[]).unwrap();
    assert!(full.summary.documents > 1, "{:?}", full.summary);
    let e = c.hub.import_bundle(&full.bytes).unwrap_err();
    assert_eq!(e.code(), "tampered", "{e}");
    assert!(c.hub.get(&m).is_err(), "nothing of the refused stick stored");
    // The waiting rewrite was dropped with it: the same honest stick now goes through.
    c.hub.import_bundle(&full.bytes).unwrap();
    let level: i64 = c.hub.stock(Some(&pens)).unwrap().iter().map(|s| s.quantity).sum();
    assert_eq!(level, 100);
}

/// A member's change that makes Automerge panic once what it builds on is there (it writes into
/// an object that does not exist) waits in a hub that lacks what it builds on, kept with the
/// document. When an honest bundle brings what it waited for, the bundle is refused as tampered
/// and the waiting change dropped: the same honest bundle then goes through, and the hub goes on.
#[test]
fn a_waiting_change_automerge_panics_on_is_dropped_when_what_it_waited_for_comes() {
    let (mut a, mut b, mut c) = three_who_know_each_other();
    let water = add(&mut a.hub, Kind::Item, json!({"name": "Water", "unit": "bottle"}));
    merge_into(&mut a.hub, &mut b.hub);
    let export = b.hub.export_docs().unwrap().into_iter().find(|d| d.doc.starts_with("item")).unwrap();
    let mut actor = b.hub.identity().public().as_bytes().to_vec();
    actor.extend([7; 8]);
    let mut doc = aidmesh_replica::Doc::load(&export.doc, &export.bytes, &actor).unwrap();
    let heads = doc.heads();
    automerge::transaction::Transactable::put(doc.automerge(), automerge::ROOT, "zzz", "a value").unwrap();
    let author = aidmesh_replica::Author { hub: b.hub.hub_id().into(), handle: "fox".into(), at: t0() };
    doc.commit(&author).unwrap();
    let mut change = doc.changes_after(&heads).remove(0).decode();
    let own = automerge::ActorId::from(actor.as_slice());
    change.operations[0].obj = automerge::legacy::ObjectId::Id(automerge::legacy::OpId(999_999, own));
    let forged = automerge::Change::from(change);
    let sig = ChangeSig::sign(&b.hub.identity(), &export.doc, forged.hash().0);
    let stick = forged_bundle_with(&b, vec![], &[(info_of(&export), forged.raw_bytes().to_vec(), vec![sig])]);
    let (s, _) = c.hub.import_bundle(&stick).unwrap();
    assert_eq!(s.waiting_documents, 1, "West lacks what the change builds on: it waits");
    let full = a.hub.export_bundle(true, &[]).unwrap();
    let e = c.hub.import_bundle(&full.bytes).unwrap_err();
    assert_eq!(e.code(), "tampered", "{e}");
    assert!(e.to_string().contains("Automerge cannot read"), "{e}");
    assert!(e.to_string().contains("dropped"), "{e}");
    assert!(c.hub.get(&water).is_err(), "nothing of the refused stick stored");
    c.hub.import_bundle(&full.bytes).unwrap();
    assert!(c.hub.get(&water).is_ok(), "the honest stick goes through");
    add(&mut c.hub, Kind::Item, json!({"name": "Gauze", "unit": "roll"}));
}

/// A hub that holds nothing gets a stick of several whole documents, read ahead of the hub on
/// more than one thread: one rewritten by hand among them refuses the stick whole, wherever it
/// lies, and nothing of the others is stored; the honest stick is then taken whole, in order.
/// (A refusal that leaves a reading thread waiting to hand over its next document hangs here.)
#[test]
fn a_stick_of_many_documents_with_one_rewritten_among_them_is_refused_whole_by_a_new_hub() {
    let (mut a, mut b, mut c) = three_who_know_each_other();
    let (hall, pens, m) = a_movement(&mut a.hub);
    let fox = add(&mut a.hub, Kind::Volunteer, json!({"handle": "swift-otter"}));
    merge_into(&mut a.hub, &mut b.hub);
    let (export, mut doc, _, sig) = rewrite_movement(&mut b, &m, 10);
    let mut sigs = export.sigs.clone();
    sigs.push(sig);
    let rewritten = (info_of(&export), doc.save(), sigs);
    let mut honest: Vec<_> = b
        .hub
        .export_docs()
        .unwrap()
        .into_iter()
        .filter(|d| d.doc != aidmesh_replica::INDEX_DOC)
        .map(|d| (info_of(&d), d.bytes, d.sigs))
        .collect();
    let at = honest.iter().position(|(i, ..)| i.doc.as_str() == export.doc).unwrap();
    let movement = honest.remove(at);
    assert!(honest.len() >= 3, "documents of places, items and volunteers at least: {}", honest.len());
    let ids = [&hall, &pens, &m, &fox];
    for at in [0, 1, honest.len()] {
        let mut docs = honest.clone();
        docs.insert(at, rewritten.clone());
        let stick = forged_bundle_with(&b, vec![], &docs);
        let e = c.hub.import_bundle(&stick).unwrap_err();
        assert_eq!(e.code(), "tampered", "rewritten document at {at}: {e}");
        assert!(ids.iter().all(|id| c.hub.get(id).is_err()), "nothing of the stick stored (rewrite at {at})");
    }
    honest.insert(1, movement);
    c.hub.import_bundle(forged_bundle_with(&b, vec![], &honest)).unwrap();
    for id in ids {
        assert!(c.hub.get(id).is_ok(), "{id} taken from the honest stick");
    }
}

/// A contact typed into a record by hand (a member's hand-written, signed change; no form takes
/// one) names no vault entry: erasing it is refused, saying what to do, and the typed number is
/// never signed into the authority log, which every hub keeps for good.
#[test]
fn a_contact_typed_into_a_record_is_never_signed_into_the_authority_log() {
    let (mut a, mut b) = pair();
    let req = add(&mut b.hub, Kind::Request, json!({"category": "food", "quantity": 1}));
    merge_into(&mut b.hub, &mut a.hub);
    let phone = "+34 600 123 456";
    let (export, _, tampered, sig) = rewrite_record(&mut b, &req, |body| {
        if let aidmesh_hub::model::Body::Request(r) = body {
            r.contact = Some(phone.into());
        }
    });
    let stick = forged_bundle_with(&b, vec![], &[(info_of(&export), tampered, vec![sig])]);
    a.hub.import_bundle(&stick).unwrap();
    assert_eq!(a.hub.get(&req).unwrap().to_json()["contact"], json!(phone));
    let heads = a.hub.authority_heads().unwrap();
    let e = a.hub.erase_contact(&req).unwrap_err();
    assert_eq!(e.code(), "not_found", "{e}");
    assert!(e.to_string().contains("typed into it by hand") && e.to_string().contains("contact form"), "{e}");
    assert_eq!(a.hub.vault_erase(phone).unwrap_err().code(), "not_found");
    assert_eq!(a.hub.authority_heads().unwrap(), heads, "nothing signed");
    // It may be cleared by hand (what was typed stays in the history), and set again only with
    // the contact form, whose vault entry then erases as any other.
    a.hub.update(&req, fields(json!({"contact": null}))).unwrap();
    assert_eq!(a.hub.get(&req).unwrap().to_json()["contact"], json!(null));
    let e = a.hub.update(&req, fields(json!({"contact": phone}))).unwrap_err();
    assert!(e.to_string().contains("contact form"), "{e}");
    // Meanwhile South saved a contact for it with the form: the two values conflict, and
    // keeping the cleared one settles it as keeping the other would.
    let theirs = b.hub.set_contact(&req, &fields(json!({"name": "Bo"}))).unwrap().vault.unwrap();
    merge_into(&mut b.hub, &mut a.hub);
    a.hub.update(&req, fields(json!({"contact": null}))).unwrap();
    let e = a.hub.update(&req, fields(json!({"contact": phone}))).unwrap_err();
    assert!(e.to_string().contains("contact form"), "{e}");
    merge_into(&mut a.hub, &mut b.hub);
    assert_eq!(b.hub.get(&req).unwrap().to_json()["contact"], json!(null), "{theirs} not kept");
    let c = a.hub.set_contact(&req, &serde_json::from_value(json!({"name": "Amal"})).unwrap()).unwrap();
    assert!(aidmesh_hub::model::is_vault_id(c.vault.as_deref().unwrap()), "{c:?}");
    a.hub.erase_contact(&req).unwrap();
}
