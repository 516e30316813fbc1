//! The fuzz harness of taking changes in (`cargo fuzz run change_ingest` in `crates/mesh/fuzz`,
//! and the unit tests that replay its corpus and run it on random programs).
//!
//! Its document ([`fuzz_doc`]) holds records of every rule: an item (editable), a stock
//! movement and an incident (never changed), check-ins and a follow-up made once those are
//! append-only (one check-in open, one made checked out), and a check-in made before, which
//! keeps the rule of its time. The input's first byte says what the rest is:
//!
//! - even: bytes a peer sends for the document, a chunk of changes or a whole document, taken
//!   as a hub takes them (a save as a merge does, else a chunk as a bundle's is);
//! - odd: a program of edits, four bytes a step, that two hubs make apart from the document
//!   through Automerge's own API (so every change is well formed and checked by the rules, not
//!   by Automerge's parser); the receiving hub then takes both.
//!
//! Whatever the input, nothing panics; for a program, two properties hold, or it panics:
//! a hub that held the document and one that takes it whole reach the same verdict, and where
//! no rewrite is found, every record that is never changed reads as it did, but for its closing
//! field set from open to a value that closes it.

use automerge::{transaction::Transactable, ObjType, ScalarValue, ROOT};

use crate::{Author, AutoCommit, Doc, Kind, Record, Timestamp};

const IDS: [&str; 8] = ["i1", "m1", "n1", "c0", "c1", "c2", "f1", "new"];
const FIELDS: [&str; 11] =
    ["checked_out", "done", "checked_in", "notes", "quantity", "name", "kind", "created_at", "severity", "action", "x"];

fn fixed(kind: &str) -> bool {
    Kind::parse(kind).is_ok_and(|k| k.append_only())
}

/// Feeds `data` (see the module) and answers whether the document took it with no rewrite.
pub fn feed_changes(data: &[u8]) -> bool {
    match data.split_first() {
        Some((mode, program)) if mode % 2 == 1 => run_program(program),
        Some((_, bytes)) => take_bytes(bytes),
        None => take_bytes(data),
    }
}

fn take_bytes(data: &[u8]) -> bool {
    let mut doc = fuzz_doc();
    let before = doc.heads();
    // As a merge takes a save, checked whole; else as a bundle's chunk of changes, which may
    // wait for what they depend on.
    let applied = doc.apply(data).is_ok() || {
        doc = fuzz_doc();
        doc.apply_checked(data).is_ok()
    };
    let took = applied && doc.rewrite_since(&before, fixed).is_ok_and(|r| r.is_none());
    for id in doc.touched_since(&before) {
        let _ = doc.get_counted(&id);
    }
    if let Ok(whole) = AutoCommit::load(data) {
        let mut d = Doc::arrived("fuzz", whole);
        if let Ok(None) = d.rewrite_since(&[], fixed) {
            for id in d.touched_since(&[]) {
                let _ = d.get_counted(&id);
            }
        }
    }
    took
}

fn run_program(program: &[u8]) -> bool {
    let original = fuzz_doc();
    let mut held = fuzz_doc();
    let start = held.heads();
    let mut hubs = [held.fork(b"fuzz-peer-1"), held.fork(b"fuzz-peer-2")];
    let author = |n: usize| Author { hub: format!("peer-{n}"), handle: "owl".into(), at: Timestamp::from_millis(0) };
    for step in program.chunks(4) {
        let [who, target, field, act] = [0, 1, 2, 3].map(|i| step.get(i).copied().unwrap_or(0));
        let n = usize::from(who % 2);
        let d = &mut hubs[n];
        let (id, field) = (IDS[usize::from(target) % IDS.len()], FIELDS[usize::from(field) % FIELDS.len()]);
        let obj = d.record_obj(&id.into()).ok().flatten().unwrap_or(ROOT);
        let hour = act % 24;
        let am = d.automerge();
        // Automerge may refuse an edit (a key on a text object, say): that is no finding.
        let _ = match act >> 5 {
            0 => am.put(&obj, field, format!("2026-12-08T{hour:02}:00:00Z")),
            1 => am.put(&obj, field, act % 2 == 1),
            2 => am.put(&obj, field, ScalarValue::Null),
            3 => am.put(&obj, field, i64::from(act)),
            4 => am.delete(&obj, field),
            5 => am.put_object(&obj, field, ObjType::Text).and_then(|t| am.splice_text(&t, 0, 0, "x")),
            6 => am.put(ROOT, id, "a value in a record's place"),
            _ => {
                d.commit(&author(n));
                Ok(())
            }
        };
    }
    for (n, d) in hubs.iter_mut().enumerate() {
        d.commit(&author(n));
    }
    let [mut one, mut two] = hubs;
    if held.merge(&mut one).is_err() || held.merge(&mut two).is_err() {
        return false;
    }
    let verdict = held.rewrite_since(&start, fixed).ok();
    // A hub new to the document, taking it whole, reaches the same verdict.
    let mut whole = Doc::arrived("fuzz", AutoCommit::load(&held.save()).expect("a save loads"));
    let anew = whole.rewrite_since(&[], fixed).ok();
    assert_eq!(
        verdict.as_ref().map(Option::is_some),
        anew.as_ref().map(Option::is_some),
        "a hub that held the document found {verdict:?}, one new to it {anew:?}"
    );
    if verdict != Some(None) {
        return false;
    }
    for id in held.touched_since(&start) {
        let _ = held.get_counted(&id);
    }
    for id in ["m1", "n1", "c1", "c2", "f1"] {
        let was = original.get(&id.into()).ok().flatten().expect("the document's own record");
        let now =
            held.get(&id.into()).unwrap_or_else(|e| panic!("{id} no longer reads ({e}) yet no rewrite was found"));
        let now = now.unwrap_or_else(|| panic!("{id} is gone yet no rewrite was found"));
        assert!(same_but_closed(&was, &now), "{id} changed yet no rewrite was found: {was:?} became {now:?}");
    }
    true
}

/// Whether `now` reads as `was`, but for its closing field set from open to a value that closes
/// it (a check-out not before the check-in, or done).
fn same_but_closed(was: &Record, now: &Record) -> bool {
    let (mut a, mut b) = (was.body.to_fields(), now.body.to_fields());
    if was.meta != now.meta {
        return false;
    }
    if let Some(field) = was.kind().closing_field() {
        let (before, after) = (a.remove(field), b.remove(field));
        let open = matches!(before, None | Some(serde_json::Value::Null) | Some(serde_json::Value::Bool(false)));
        let closes = match (field, &after) {
            ("checked_out", Some(serde_json::Value::String(t))) => {
                let came = a.get("checked_in").and_then(|c| c.as_str()).and_then(|c| Timestamp::parse(c).ok());
                Timestamp::parse(t).ok().zip(came).is_some_and(|(out, came)| out >= came)
            }
            ("done", Some(serde_json::Value::Bool(true))) => true,
            _ => false,
        };
        if before != after && !(open && closes) {
            return false;
        }
    }
    a == b
}

/// The document [`feed_changes`] feeds (see the module), made by one hub in one commit.
pub fn fuzz_doc() -> Doc {
    use aidmesh_model::{Body, CheckIn, FollowUp, Incident, Item, Meta, Movement};
    let early = Timestamp::from_millis(1_764_000_000_000);
    let late = Timestamp::parse("2026-12-08T08:00:00Z").expect("a time");
    let record = |id: &str, at: Timestamp, body: Body| Record {
        meta: Meta {
            id: id.into(),
            kind: body.kind(),
            created_hub: "a".into(),
            created_by: "fox".into(),
            created_at: at,
        },
        body,
    };
    let mut doc = Doc::new("fuzz", b"fuzz-seed-actor");
    let item = Item { name: "Insulin pen".into(), unit: "pen".into(), notes: "keep cold".into(), ..Default::default() };
    let movement = Movement {
        item: "i1".into(),
        place: "p1".into(),
        quantity: 100,
        reason: "delivery".into(),
        ..Default::default()
    };
    let incident = Incident { description: "Fall at the gate".into(), severity: 3, ..Default::default() };
    let check_in = |out: Option<Timestamp>| {
        Body::CheckIn(CheckIn { volunteer: "v1".into(), checked_in: late, checked_out: out, ..Default::default() })
    };
    let follow_up = FollowUp { incident: "n1".into(), action: "Call back".into(), ..Default::default() };
    for (id, at, body) in [
        ("i1", early, Body::Item(item)),
        ("m1", early, Body::Movement(movement)),
        ("n1", early, Body::Incident(incident)),
        ("c0", early, check_in(None)),
        ("c1", late, check_in(None)),
        ("c2", late, check_in(Some(late))),
        ("f1", late, Body::FollowUp(follow_up)),
    ] {
        doc.create(&record(id, at, body)).expect("a fresh document takes new records");
    }
    doc.commit(&Author { hub: "a".into(), handle: "fox".into(), at: early });
    doc
}
