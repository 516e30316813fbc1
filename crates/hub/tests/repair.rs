//! Stores damaged before a store had one owner: `aidmesh serve` and the `aidmesh` command both
//! wrote as the hub's one Automerge actor and gave two changes the same (actor, seq), and every
//! later open failed with "duplicate seq N found for actor …". The fixture was made by the old
//! code: two `Hub`s open on one file, as the two processes were (see its README).

mod util;

use aidmesh_hub::model::{Kind, Timestamp};
use aidmesh_hub::{Config, Hub, ManualClock};
use serde_json::json;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/damaged-by-two-writers.aidmesh");
const PASS: &str = "fixture passphrase";
/// Items X, Y, Z, the volunteer and the incident the old code acknowledged.
const IDS: [&str; 5] = [
    "01m892bq78ytgjsa7zrc56djgm",
    "01m892br6g71an7ah3m95h9p5v",
    "01m892bs5rbqcsz3nasa7wwzw2",
    "01m892bt50ykvnrcyt8h5q4dsb",
    "01m892bv48yr32ezt49r29f5xe",
];

fn copy() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.aidmesh");
    std::fs::copy(FIXTURE, &path).unwrap();
    (dir, path)
}

fn config(seed: u8) -> Config {
    let clock = ManualClock::at(Timestamp::parse("2026-12-01T10:00:00Z").unwrap());
    Config { handle: "coord".into(), clock: Box::new(clock), seed: [seed; 32] }
}

#[test]
fn the_fixture_is_damaged_as_the_old_stores_were() {
    // Automerge refuses the index document and the item document as the old code saved them.
    let (_dir, path) = copy();
    for (doc, err) in load_each(&path) {
        if doc == "index" || doc.starts_with("item") {
            assert!(err.contains("duplicate seq"), "{doc}: {err}");
        } else {
            assert_eq!(err, "loads", "{doc}");
        }
    }
}

/// Loads each document's saved bytes with Automerge directly, as the old `Hub::open` did.
fn load_each(path: &std::path::Path) -> Vec<(String, String)> {
    // Keyed with Argon2id once a hub opened it; the fixture itself predates that.
    let keyed = |key: &str| {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.pragma_update(None, "key", key).unwrap();
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0)).map(|_| conn)
    };
    let conn =
        keyed(aidmesh_store::Store::sqlcipher_key(path, PASS).unwrap().as_str()).or_else(|_| keyed(PASS)).unwrap();
    let docs: Vec<String> = conn
        .prepare("SELECT DISTINCT doc FROM chunks ORDER BY doc")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    docs.into_iter()
        .map(|d| {
            let mut st = conn.prepare("SELECT bytes FROM chunks WHERE doc = ?1 ORDER BY seq").unwrap();
            let bytes: Vec<u8> = st.query_map([&d], |r| r.get::<_, Vec<u8>>(0)).unwrap().flatten().flatten().collect();
            let res = match automerge::AutoCommit::load(&bytes) {
                Ok(_) => "loads".to_string(),
                Err(e) => e.to_string(),
            };
            (d, res)
        })
        .collect()
}

#[test]
fn a_damaged_store_opens_repaired_and_keeps_every_acknowledged_record() {
    let (_dir, path) = copy();
    let mut hub = Hub::open(&path, PASS, config(5)).unwrap();
    for id in IDS {
        hub.get(id).unwrap_or_else(|e| panic!("{id}: {e}"));
    }
    // Every document loads now, and the records in the documents are the index's records:
    // the item that lost its change was written again.
    assert_eq!(hub.repair().unwrap(), vec![]);
    let before: Vec<_> = [Kind::Item, Kind::Volunteer, Kind::Incident].map(|k| hub.count(k).unwrap()).into();
    assert_eq!(before, vec![3, 1, 1]);
    assert_eq!(hub.rebuild_index().unwrap() as i64, hub_total(&hub));
    let after: Vec<_> = [Kind::Item, Kind::Volunteer, Kind::Incident].map(|k| hub.count(k).unwrap()).into();
    assert_eq!(after, before, "the documents hold every record the index held");
    let names: Vec<String> =
        hub.stored(Kind::Item, 10, 0).unwrap().iter().map(|r| r.body.label().to_string()).collect();
    for n in ["water X", "water Y", "water Z"] {
        assert!(names.iter().any(|l| l.contains(n)), "{n} in {names:?}");
    }
    // It takes writes and opens again.
    hub.add(Kind::Item, util::fields(json!({"name": "water W", "unit": "bottle", "category": "water"}))).unwrap();
    drop(hub);
    let hub = Hub::open(&path, PASS, config(6)).unwrap();
    assert_eq!(hub.count(Kind::Item).unwrap(), 4);
}

fn hub_total(hub: &Hub) -> i64 {
    Kind::ALL.iter().map(|k| hub.count(*k).unwrap()).sum()
}

#[test]
fn repair_says_what_it_did() {
    let (_dir, path) = copy();
    // The index document does not load, so opening repairs every document at once.
    let mut hub = Hub::open(&path, PASS, config(7)).unwrap();
    let done = hub.repaired_at_open().to_vec();
    assert_eq!(done.len(), 2, "{done:?}");
    assert_eq!(done[0].doc, "index");
    // Lists the item, volunteer and incident documents again (and the coalition's).
    assert!(done[0].dropped_changes >= 1 && done[0].restored >= 3, "{done:?}");
    assert!(done[1].doc.starts_with("item"), "{done:?}");
    // Z's change clashed with Y's: the item it created was written again from the index.
    assert!(done[1].dropped_changes >= 1 && done[1].restored >= 1, "{done:?}");
    assert_eq!(hub.repair().unwrap(), vec![], "a second repair finds nothing to do");
    // Both documents load with Automerge alone now.
    drop(hub);
    assert!(load_each(&path).iter().all(|(_, r)| r == "loads"), "{:?}", load_each(&path));
}

/// A store whose index document is sound opens without a repair; a record document damaged as
/// the old stores were (two changes of one actor with one seq) is found by `aidmesh reindex`,
/// which repairs it from the index as it was before rebuilding: no record the index held is
/// lost.
#[test]
fn a_rebuild_repairs_a_damaged_document_before_it_empties_the_index() {
    let mut t = util::new_hub("North", 1);
    for n in ["water X", "water Y", "water Z"] {
        util::add(&mut t.hub, Kind::Item, json!({"name": n, "unit": "bottle"}));
    }
    let path = t.path.clone();
    drop(t.hub);
    // The damage: a second change under the last change's actor and seq, with other content.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "key", aidmesh_store::Store::sqlcipher_key(&path, util::PASS).unwrap().as_str())
            .unwrap();
        let doc: String =
            conn.query_row("SELECT doc FROM records WHERE kind = 'item' LIMIT 1", [], |r| r.get(0)).unwrap();
        let mut st = conn.prepare("SELECT bytes FROM chunks WHERE doc = ?1 ORDER BY seq").unwrap();
        let bytes: Vec<u8> = st.query_map([&doc], |r| r.get::<_, Vec<u8>>(0)).unwrap().flatten().flatten().collect();
        let mut am = automerge::AutoCommit::load(&bytes).unwrap();
        let last = am.get_changes(&[]).last().cloned().unwrap();
        let mut clash = am.fork_at(last.deps()).unwrap().with_actor(last.actor_id().clone());
        automerge::transaction::Transactable::put(&mut clash, automerge::ROOT, "clash", "other content").unwrap();
        clash.commit();
        let change = clash.get_last_local_change().unwrap().raw_bytes().to_vec();
        assert_eq!(clash.get_last_local_change().unwrap().seq(), last.seq());
        // Stored before the last item's change, as if it came first: a repair keeps it and
        // drops water Z's change, whose item only the index still holds.
        let last_seq: i64 = conn.query_row("SELECT max(seq) FROM chunks WHERE doc = ?1", [&doc], |r| r.get(0)).unwrap();
        conn.execute("UPDATE chunks SET seq = ?2 + 1 WHERE doc = ?1 AND seq = ?2", rusqlite::params![doc, last_seq])
            .unwrap();
        conn.execute(
            "INSERT INTO chunks(doc, seq, bytes) VALUES (?1, ?2, ?3)",
            rusqlite::params![doc, last_seq, change],
        )
        .unwrap();
        let bytes: Vec<u8> = st.query_map([&doc], |r| r.get::<_, Vec<u8>>(0)).unwrap().flatten().flatten().collect();
        let e = automerge::AutoCommit::load(&bytes).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("duplicate seq"), "{e}");
    }
    let mut hub = util::reopen(&path, &t.clock);
    assert!(hub.repaired_at_open().is_empty(), "the index document is sound: nothing is repaired at open");
    assert_eq!(hub.count(Kind::Item).unwrap(), 3);
    hub.rebuild_index().unwrap();
    assert_eq!(hub.count(Kind::Item).unwrap(), 3, "no record the index held was lost");
    let names: Vec<String> =
        hub.stored(Kind::Item, 10, 0).unwrap().iter().map(|r| r.body.label().to_string()).collect();
    for n in ["water X", "water Y", "water Z"] {
        assert!(names.iter().any(|l| l.contains(n)), "{n} in {names:?}");
    }
    assert_eq!(hub.repair().unwrap(), vec![], "the document was repaired");
}
