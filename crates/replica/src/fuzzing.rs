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
//!   through Automerge's own API (a text is edited in place, replacing a character, or made),
//!   so every change is well formed and checked by the rules, not
//!   by Automerge's parser); the receiving hub then takes both.
//!
//! Whatever the input, nothing panics; for a program, two properties hold, or it panics:
//! a hub that held the document and one that takes it whole reach the same verdict, and where
//! no rewrite is found, every record that is never changed reads as it did, but for its closing
//! field set from open to a value that closes it.

use automerge::{transaction::Transactable, ObjType, ReadDoc, ScalarValue, ROOT};

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
    // As a hub takes a whole document: as its changes make it.
    if let Ok(Ok((whole, _))) = AutoCommit::load(data).map(|w| crate::rebuilt("fuzz", w)) {
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
            // A text edited where it is (a character replaced), else made.
            5 => match am.get(&obj, field) {
                Ok(Some((automerge::Value::Object(ObjType::Text), t))) if am.length(&t) > 0 => {
                    am.splice_text(&t, usize::from(hour) % am.length(&t), 1, "y")
                }
                _ => am.put_object(&obj, field, ObjType::Text).and_then(|t| am.splice_text(&t, 0, 0, "x")),
            },
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
    let whole = crate::rebuilt("fuzz", AutoCommit::load(&held.save()).expect("a save loads"));
    let mut whole = Doc::arrived("fuzz", whole.expect("an honest save rebuilds").0);
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

/// A record `id` made at hub "a" by "fox" at `at`.
fn record(id: &str, at: Timestamp, body: aidmesh_model::Body) -> Record {
    let meta = aidmesh_model::Meta {
        id: id.into(),
        kind: body.kind(),
        created_hub: "a".into(),
        created_by: "fox".into(),
        created_at: at,
    };
    Record { meta, body }
}

/// The document [`feed_changes`] feeds (see the module), made by one hub in one commit.
pub fn fuzz_doc() -> Doc {
    use aidmesh_model::{Body, CheckIn, FollowUp, Incident, Item, Movement};
    let early = Timestamp::from_millis(1_764_000_000_000);
    let late = Timestamp::parse("2026-12-08T08:00:00Z").expect("a time");
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

/// `saved`, one uncompressed saved document, with its head `from` written as `to` and its
/// checksum made again: what a forger makes by hand to pass a document off under another
/// change's hash (see [`crate::rebuilt`]).
pub fn with_heads(saved: &[u8], from: automerge::ChangeHash, to: automerge::ChangeHash) -> Vec<u8> {
    use sha2::Digest;
    let mut out = saved.to_vec();
    let at = out.windows(32).position(|w| w == from.0).expect("the head is in the document");
    out[at..at + 32].copy_from_slice(&to.0);
    let sum = sha2::Sha256::digest(&out[8..]);
    out[4..8].copy_from_slice(&sum[..4]);
    out
}

/// A document saved by hand ([`saved_by_hand`]).
pub struct HandSaved {
    /// The saved document, under the honest changes' hashes.
    pub bytes: Vec<u8>,
    /// The honest changes it claims to hold, in order (a forger signs these).
    pub changes: Vec<automerge::Change>,
    /// The record it hides: a stock movement, there in the honest document.
    pub hidden: &'static str,
}

/// A document `id` as a forger saves it by hand. Under one run (`runs[0]`), an item `i1`, a
/// check-in and a stock movement `m1` are made; under another, an item `i2` is made and `i1`
/// renamed, the rename naming `m1` as what it overwrites. Automerge applies that where it meets
/// it (the batch writes at the root), saves `m1` marked overwritten, and rebuilds the changes
/// without the mark: the save goes under the honest rename's hash (a third run saves it).
pub fn saved_by_hand(id: &str, runs: [&[u8]; 3]) -> HandSaved {
    use aidmesh_model::{Body, CheckIn, Item, Movement};
    let at = Timestamp::parse("2026-12-08T08:00:00Z").expect("a time");
    let record = |id: &str, body: Body| record(id, at, body);
    let item = |name: &str| {
        Body::Item(Item { name: name.into(), unit: "box".into(), notes: "keep dry".into(), ..Default::default() })
    };
    let author = |hub: &str| Author { hub: hub.into(), handle: "fox".into(), at };
    let mut a = Doc::new(id, runs[0]);
    a.create(&record("i1", item("Water"))).expect("made");
    a.create(&record("c1", Body::CheckIn(CheckIn { volunteer: "v1".into(), checked_in: at, ..Default::default() })))
        .expect("made");
    let movement = Movement { item: "i1".into(), place: "p1".into(), quantity: 100, ..Default::default() };
    a.create(&record("m1", Body::Movement(movement))).expect("made");
    a.commit(&author("a"));
    let made = a.heads();
    let first = a.changes_after(&[]).remove(0);
    let victim = match a.automerge().get(ROOT, "m1").expect("read") {
        Some((_, automerge::ObjId::Id(counter, actor, _))) => automerge::legacy::OpId(counter, actor),
        other => panic!("{other:?}"),
    };
    let mut b = a.fork(runs[1]);
    b.create(&record("i2", item("Tents"))).expect("made");
    let i1 = match b.automerge().get(ROOT, "i1").expect("read") {
        Some((_, obj)) => obj,
        None => panic!("no i1"),
    };
    b.automerge().put(&i1, "name", "Still water").expect("written");
    b.commit(&author("b"));
    let honest = b.changes_after(&made).remove(0);
    let mut change = honest.decode();
    let rename =
        change.operations.iter_mut().find(|op| op.action == automerge::legacy::OpType::Put("Still water".into()));
    let rename = rename.expect("the rename");
    rename.pred = rename.pred.iter().cloned().chain([victim]).collect::<Vec<_>>().into();
    let forged = automerge::Change::from(change);
    let mut d = a.fork(runs[2]);
    d.apply_checked(forged.raw_bytes()).expect("Automerge takes it");
    let bytes = with_heads(&d.automerge().document().save_nocompress(), forged.hash(), honest.hash());
    HandSaved { bytes, changes: vec![first, honest], hidden: "m1" }
}
