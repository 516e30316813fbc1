//! USB bundles between hubs that never connect, and every kind of bad bundle refused whole.

mod util;

use aidmesh_hub::model::Kind;
use aidmesh_hub::{Hub, MemberRole, VaultState};
use serde_json::json;
use util::*;

/// Two hubs of one coalition that never meet: b joined a's coalition by hand.
fn pair() -> (TestHub, TestHub) {
    let mut a = new_hub("North", 1);
    let mut b = new_hub("South", 2);
    b.hub.adopt_founder(&a.hub.founder().unwrap()).unwrap();
    b.hub.set_coalition_key(&a.hub.coalition_key_hex().unwrap().unwrap()).unwrap();
    let key = b.hub.public_key();
    a.hub.admit(&key, "South", MemberRole::Member).unwrap();
    (a, b)
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
    let first = a.hub.export_bundle(false).unwrap();
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
    let from_b = b.hub.export_bundle(false).unwrap();
    let from_a = a.hub.export_bundle(false).unwrap();
    assert!(from_a.bytes.len() < first.bytes.len() * 2);
    assert_eq!(from_a.summary.records.get("item"), None, "the item did not change on North");
    a.hub.import_bundle(&from_b.bytes).unwrap();
    b.hub.import_bundle(&from_a.bytes).unwrap();
    assert_eq!(state(&a.hub), state(&b.hub));
    let level: i64 = a.hub.stock(Some(&water)).unwrap().iter().map(|s| s.quantity).sum();
    assert_eq!(level, 10, "two issues of 5 from 20, made apart");
    assert!(matches!(b.hub.vault_get(&vid).unwrap(), VaultState::Erased { .. }), "erasures travel too");
    // Twice, or in another order: nothing changes.
    let before = state(&a.hub);
    assert_eq!(a.hub.import_bundle(&from_b.bytes).unwrap().1, 0);
    a.hub.import_bundle(&first.bytes).unwrap();
    assert_eq!(state(&a.hub), before);
}

#[test]
fn bad_bundles_are_refused_and_change_nothing() {
    let (mut a, mut b) = pair();
    add(&mut b.hub, Kind::Item, json!({"name": "Rice", "unit": "kg"}));
    let good = b.hub.export_bundle(true).unwrap().bytes;
    let mut other = new_hub("Another coalition", 9);
    add(&mut other.hub, Kind::Item, json!({"name": "Spy", "unit": "x"}));
    let foreign = other.hub.export_bundle(true).unwrap().bytes;
    let before = state(&a.hub);
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
        assert_eq!(state(&a.hub), before, "{what} changed the store");
        assert!(a.hub.inspect_bundle(&bytes).is_err(), "{what}");
    }
    // A bundle made by a hub after its revocation is refused.
    let b_id = b.hub.fingerprint().to_string();
    a.hub.revoke(&b_id).unwrap();
    let before = state(&a.hub);
    let e = a.hub.import_bundle(&good).unwrap_err();
    assert!(e.to_string().contains("revoked"), "{e}");
    assert_eq!(state(&a.hub), before);
    let s = a.hub.inspect_bundle(&good).unwrap();
    assert!(!s.member);
    // A hub without the coalition key says what to do.
    let mut c = new_hub("Joined by hand", 4);
    c.hub.adopt_founder(&a.hub.founder().unwrap()).unwrap();
    let e = c.hub.export_bundle(true).err().unwrap();
    assert!(e.to_string().contains("aidmesh join"), "{e}");
    let _ = add(&mut c.hub, Kind::Place, json!({"name": "x"}));
}

#[test]
fn an_incremental_bundle_without_its_predecessor_is_refused_whole() {
    let (mut a, mut b) = pair();
    add(&mut a.hub, Kind::Item, json!({"name": "Water", "unit": "bottle"}));
    let first = a.hub.export_bundle(false).unwrap();
    a.hub.bundle_written(&first).unwrap();
    add(&mut a.hub, Kind::Item, json!({"name": "Rice", "unit": "kg"}));
    let second = a.hub.export_bundle(false).unwrap();
    let before = state(&b.hub);
    let e = b.hub.import_bundle(&second.bytes).unwrap_err();
    assert!(e.to_string().contains("earlier bundle"), "{e}");
    assert_eq!(state(&b.hub), before);
    b.hub.import_bundle(&first.bytes).unwrap();
    b.hub.import_bundle(&second.bytes).unwrap();
    assert_eq!(b.hub.count(Kind::Item).unwrap(), 2);
}
