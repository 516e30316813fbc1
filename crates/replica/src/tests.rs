//! Record-level reads and writes, merges, conflicts, history, and convergence of forked replicas.

use std::collections::BTreeMap;

use aidmesh_model::views::{over_allocations, stock_levels, Source};
use aidmesh_model::*;
use proptest::prelude::*;

use super::*;

fn author(hub: &str, at: i64) -> Author {
    Author { hub: hub.into(), handle: format!("{hub}-coord"), at: Timestamp::from_millis(at) }
}

fn record(id: &str, body: impl KindBody) -> Record {
    let body = body.into_body();
    Record {
        meta: Meta {
            id: id.into(),
            kind: body.kind(),
            created_hub: "a".into(),
            created_by: "fox".into(),
            created_at: Timestamp::from_millis(1_764_000_000_000),
        },
        body,
    }
}

fn item(id: &str, name: &str) -> Record {
    record(id, Item { name: name.into(), unit: "box".into(), notes: "keep dry".into(), ..Default::default() })
}

/// An amendment setting a field to `value`, a JSON value of any depth.
fn amendment(id: &str, value: serde_json::Value) -> Record {
    record(id, Amendment { target: "i9".into(), field: "severity".into(), value, reason: "r".into() })
}

/// Document `d` of hub `a` holding `n` items, committed `per_commit` at a time.
fn items_in_commits(n: usize, per_commit: usize) -> Doc {
    let mut a = Doc::new("d", b"a");
    for i in 0..n {
        a.create(&item(&format!("i{i}"), &format!("Item {i}"))).unwrap();
        if i % per_commit == per_commit - 1 {
            a.commit(&author("a", i as i64));
        }
    }
    a
}

#[test]
fn records_round_trip_field_by_field() {
    let mut d = Doc::new("d", b"a");
    let mut v = Volunteer { handle: "fox".into(), languages: vec!["en".into(), "ar".into()], ..Default::default() };
    v.skills.push(Skill {
        skill: SkillKind::Translation,
        languages: vec!["en".into(), "ar".into()],
        ..Default::default()
    });
    let recs =
        vec![item("i1", "Water"), record("v1", v), amendment("x1", serde_json::json!({"deep": [1, "two", null]}))];
    for r in &recs {
        d.create(r).unwrap();
    }
    d.commit(&author("a", 1));
    for r in &recs {
        assert_eq!(d.get(r.id()).unwrap().as_ref(), Some(r));
    }
    assert!(matches!(d.create(&recs[0]), Err(Error::Exists(_))));
    // Survives save and load, in full and incrementally.
    let mut bytes = d.save();
    let mut e = Doc::load("d", &bytes, b"b").unwrap();
    assert_eq!(e.get(recs[1].id()).unwrap().as_ref(), Some(&recs[1]));
    let mut upd = recs[0].clone();
    if let Body::Item(i) = &mut upd.body {
        i.reorder_level = 12;
    }
    assert_eq!(d.update(&upd).unwrap(), vec!["reorder_level".to_string()]);
    d.commit(&author("a", 2));
    bytes.extend(d.save_incremental());
    e = Doc::load("d", &bytes, b"b").unwrap();
    assert_eq!(e.get(upd.id()).unwrap().unwrap(), upd);
    assert!(Doc::load("d", b"not automerge", b"b").is_err());
}

/// A new record goes in as one object tree ([`Doc::create`]); the document it makes holds the
/// same values, of the same types (text fields as Text, nested lists and maps, numbers), in as
/// many operations as writing its fields one by one makes, and edits of it read back.
#[test]
fn a_new_record_is_written_as_its_fields_one_by_one_would_be() {
    let mut v = Volunteer {
        handle: "fox".into(),
        languages: vec!["en".into(), "ar".into()],
        availability: "evenings, not Sundays".into(),
        notes: "ünïcödé ✓ and emoji 🚑".into(),
        ..Default::default()
    };
    v.skills.push(Skill { skill: SkillKind::Translation, languages: vec!["en".into()], ..Default::default() });
    let recs = vec![
        item("i1", "Water"),
        record("v1", v),
        amendment("x1", serde_json::json!({"deep": [1, -2, 2.5, "two", null, true, {"k": []}], "big": u64::MAX})),
        record(
            "n1",
            Incident { severity: 3, description: String::new(), reporter: "desk".into(), ..Default::default() },
        ),
    ];
    let mut whole = Doc::new("d", b"a");
    let mut by_field = Doc::new("d", b"a");
    for r in &recs {
        whole.create(r).unwrap();
        let obj = by_field.doc.put_object(ROOT, r.id().as_str(), ObjType::Map).unwrap();
        for (k, v) in r.to_json() {
            by_field.put_field(&obj, &k, &v).unwrap();
        }
    }
    whole.commit(&author("a", 1));
    by_field.commit(&author("a", 1));
    assert_eq!(whole.doc.hydrate(ROOT, None).unwrap(), by_field.doc.hydrate(ROOT, None).unwrap());
    assert_eq!(whole.doc.stats().num_ops, by_field.doc.stats().num_ops);
    assert!(matches!(
        whole.doc.get(whole.record_obj(recs[1].id()).unwrap().unwrap(), "notes"),
        Ok(Some((Value::Object(ObjType::Text), _)))
    ));
    for r in &recs {
        assert_eq!(whole.get(r.id()).unwrap().as_ref(), Some(r));
    }
    // Its text edits as any text does, and it survives a save and load.
    let mut upd = recs[0].clone();
    if let Body::Item(i) = &mut upd.body {
        i.notes = "keep dry, off the floor".into();
    }
    assert_eq!(whole.update(&upd).unwrap(), vec!["notes".to_string()]);
    whole.commit(&author("a", 2));
    let loaded = Doc::load("d", &whole.save(), b"b").unwrap();
    assert_eq!(loaded.get(upd.id()).unwrap().unwrap(), upd);
}

#[test]
fn a_loaded_document_saves_only_what_came_after_the_load() {
    let mut a = Doc::new("d", b"a");
    for n in 0..200 {
        a.create(&item(&format!("i{n}"), &format!("Item {n}"))).unwrap();
    }
    a.commit(&author("a", 1));
    let whole = a.save();
    let mut b = Doc::load("d", &whole, b"a").unwrap();
    assert!(b.save_incremental().is_empty(), "nothing changed since the load");
    b.create(&item("i200", "One more")).unwrap();
    b.commit(&author("a", 2));
    let chunk = b.save_incremental();
    assert!(
        !chunk.is_empty() && chunk.len() * 5 < whole.len(),
        "{} bytes after the load, {} whole",
        chunk.len(),
        whole.len()
    );
    // What was stored (the save, then the chunk) loads as the whole document.
    let mut stored = whole.clone();
    stored.extend(&chunk);
    assert_eq!(Doc::load("d", &stored, b"a").unwrap().get(&"i200".into()).unwrap().unwrap().id().to_string(), "i200");
}

/// A new hub that takes a whole document as it came ([`Doc::adopt`], [`Doc::receive_taken`])
/// ends in exactly the state of one that applied the message, and says the same next.
#[test]
fn a_document_taken_whole_syncs_on_as_if_applied() {
    use automerge::sync::{State, SyncDoc};
    let mut a = Doc::new("d", b"a");
    for n in 0..300 {
        a.create(&item(&format!("i{n}"), &format!("Item {n}"))).unwrap();
        if n % 50 == 49 {
            a.commit(&author("a", n));
        }
    }
    // The empty side speaks first; the holder answers with the whole document.
    let (mut applied, mut taken) = (Doc::new("d", b"b"), Doc::new("d", b"b"));
    let (mut sa, mut sb, mut sb2) = (State::new(), State::new(), State::new());
    let hello = applied.automerge().sync().generate_sync_message(&mut sb).unwrap();
    assert_eq!(taken.automerge().sync().generate_sync_message(&mut sb2), Some(hello.clone()));
    a.automerge().sync().receive_sync_message(&mut sa, hello).unwrap();
    let whole_msg = a.automerge().sync().generate_sync_message(&mut sa).unwrap();
    let chunks: Vec<Vec<u8>> = whole_msg.changes.iter().map(<[u8]>::to_vec).collect();
    assert_eq!(chunks.len(), 1, "the holder sends one whole save");

    applied.automerge().sync().receive_sync_message(&mut sb, whole_msg.clone()).unwrap();
    let loaded = AutoCommit::load(&chunks[0]).unwrap();
    assert!(taken.adopt(loaded));
    taken.receive_taken(&mut sb2, whole_msg).unwrap();

    assert_eq!(taken.heads(), a.heads());
    assert_eq!(applied.heads(), taken.heads());
    assert_eq!(sb.encode(), sb2.encode(), "the same sync state is kept");
    assert_eq!(format!("{sb:?}"), format!("{sb2:?}"), "the same sync state in memory too");
    let (next, next2) = (
        applied.automerge().sync().generate_sync_message(&mut sb),
        taken.automerge().sync().generate_sync_message(&mut sb2),
    );
    assert!(next.is_some(), "the new hub acknowledges");
    assert_eq!(next, next2, "and says the same either way");
    // Nothing of a taken document counts as saved: its first save is all of it, in this hub's
    // encoding; the next is what came after, under this hub's actor.
    assert!(taken.nothing_saved());
    let mut stored = taken.save();
    assert_eq!(stored, applied.save(), "saved as if it had been applied");
    assert_eq!(taken.actor(), b"b");
    taken.create(&item("i300", "One more")).unwrap();
    taken.commit(&author("b", 400));
    stored.extend(taken.save_incremental());
    assert_eq!(Doc::load("d", &stored, b"c").unwrap().heads(), taken.heads());

    // A document that holds anything takes nothing.
    let mut held = Doc::new("d", b"c");
    held.create(&item("x", "Mine")).unwrap();
    held.commit(&author("c", 1));
    let before = held.heads();
    assert!(!held.adopt(AutoCommit::load(&chunks[0]).unwrap()));
    assert_eq!(held.heads(), before);
}

/// An acknowledgement of all a document holds moves the sync state as receiving it on the
/// document does (in memory, and in the next message), wherever one comes: after a whole
/// document, and after rounds of edits made on both sides.
#[test]
fn an_acknowledgement_is_taken_without_the_document_as_with_it() {
    use automerge::sync::{State, SyncDoc};
    let mut a = items_in_commits(120, 40);
    let mut b = Doc::new("d", b"b");
    let (mut sa, mut sb) = (State::new(), State::new());
    let (mut acks, mut quiet, mut older_summaries) = (0, 0, 0);
    // Rounds of sync, with edits on both sides between some of them.
    for round in 0..6 {
        if round == 2 || round == 4 {
            a.create(&item(&format!("a{round}"), "From a")).unwrap();
            a.commit(&author("a", 1000 + round));
            b.create(&item(&format!("b{round}"), "From b")).unwrap();
            b.commit(&author("b", 1000 + round));
        }
        // Receives `m` on `to`, and where it is an acknowledgement, without `to` as well.
        let mut deliver = |to: &mut Doc, state: &mut State, m: automerge::sync::Message| {
            if acknowledges(&m, &to.heads()) {
                acks += 1;
                let mut without = state.clone();
                acknowledged(&mut without, m.clone());
                to.automerge().sync().receive_sync_message(state, m).unwrap();
                assert_eq!(format!("{without:?}"), format!("{state:?}"), "the same state either way");
                let next = to.automerge().sync().generate_sync_message(&mut without.clone());
                assert_eq!(next, to.automerge().sync().generate_sync_message(&mut state.clone()));
                // What comes next is known without the document too, when it is nothing.
                let heads = to.heads();
                if nothing_to_send(&without, &heads) {
                    assert_eq!(next, None, "nothing to send, yet Automerge sends {next:?}");
                    quiet += 1;
                }
            } else {
                to.automerge().sync().receive_sync_message(state, m).unwrap();
                let next = to.automerge().sync().generate_sync_message(&mut state.clone());
                if nothing_to_send(state, &to.heads()) {
                    assert_eq!(next, None, "nothing to send, yet Automerge sends {next:?}");
                }
            }
        };
        // Once a side answered, whether it has nothing more to send is known from its state,
        // also where the peer's summary names an older sync than these heads (after a whole
        // document: nothing synced before).
        let mut answered = |of: &mut Doc, state: &State| older_summaries += usize::from(quiet_as_said(of, state));
        for _ in 0..8 {
            let to_b = a.automerge().sync().generate_sync_message(&mut sa);
            answered(&mut a, &sa);
            let sent = to_b.is_some();
            if let Some(m) = to_b {
                deliver(&mut b, &mut sb, m);
            }
            let to_a = b.automerge().sync().generate_sync_message(&mut sb);
            answered(&mut b, &sb);
            match to_a {
                Some(m) => deliver(&mut a, &mut sa, m),
                None if !sent => break,
                None => {}
            }
        }
        assert_eq!(a.heads(), b.heads(), "round {round} converged");
    }
    assert!(acks >= 3, "an acknowledgement after the whole document and after each round of edits ({acks})");
    assert_eq!(quiet, acks, "after each acknowledgement, nothing to send is known without the document");
    assert!(older_summaries > 0, "a side at the peer's heads whose summary names an older sync");
    // Not nothing: a fresh state, or one whose peer needs something.
    assert!(!nothing_to_send(&State::new(), &a.heads()));
    let mut needs = sa.clone();
    needs.their_need = Some(a.heads());
    assert!(!nothing_to_send(&needs, &a.heads()));
    // Not an acknowledgement: changes with it, other heads, or none.
    let mut sb2 = State::new();
    let first = Doc::new("d", b"c").automerge().sync().generate_sync_message(&mut sb2).unwrap();
    assert!(!acknowledges(&first, &a.heads()), "a peer that holds nothing");
    assert!(!acknowledges(&first, &[]), "a document with no heads");
}

/// Where [`nothing_to_send`] says so, Automerge sends nothing either, asked with no message in
/// flight (which alone would make it wait). Returns whether it said so while the peer's summary
/// names an older sync than `of`'s heads.
fn quiet_as_said(of: &mut Doc, state: &automerge::sync::State) -> bool {
    use automerge::sync::SyncDoc;
    if !nothing_to_send(state, &of.heads()) {
        return false;
    }
    let mut idle = state.clone();
    idle.in_flight = false;
    let next = of.automerge().sync().generate_sync_message(&mut idle);
    assert_eq!(next, None, "nothing to send, yet Automerge sends {next:?}");
    state.their_have.iter().flatten().any(|h| h.last_sync != of.heads())
}

/// Two hubs that each took the same changes from a third sync with each other: each is at the
/// other's heads from its first message on, its summary naming nothing synced between them.
/// Wherever `nothing_to_send` says so, Automerge sends nothing either (asked with no message in
/// flight, which alone would make it wait). A peer that lies in its summary (an older sync it
/// never had) at these very heads is sent nothing, where Automerge would send it a reset: what
/// the hub then skips is a lying peer's own loss.
#[test]
fn nothing_to_send_is_known_for_a_peer_at_these_heads_whatever_its_summary() {
    use automerge::sync::{State, SyncDoc};
    fn sync(x: &mut Doc, y: &mut Doc, check: &mut dyn FnMut(&mut Doc, &State)) {
        let (mut sx, mut sy) = (State::new(), State::new());
        for _ in 0..10 {
            let to_y = x.automerge().sync().generate_sync_message(&mut sx);
            check(x, &sx);
            let sent = to_y.is_some();
            if let Some(m) = to_y {
                y.automerge().sync().receive_sync_message(&mut sy, m).unwrap();
            }
            let to_x = y.automerge().sync().generate_sync_message(&mut sy);
            check(y, &sy);
            match to_x {
                Some(m) => x.automerge().sync().receive_sync_message(&mut sx, m).unwrap(),
                None if !sent => break,
                None => {}
            }
        }
        assert_eq!(x.heads(), y.heads());
    }
    let mut quiet_apart = 0;
    let mut check = |of: &mut Doc, state: &State| quiet_apart += usize::from(quiet_as_said(of, state));
    let mut c = items_in_commits(90, 30);
    let (mut a, mut b) = (Doc::new("d", b"a"), Doc::new("d", b"b"));
    sync(&mut c, &mut a, &mut check);
    sync(&mut c, &mut b, &mut check);
    sync(&mut a, &mut b, &mut check);
    assert!(quiet_apart > 0, "a peer at these heads whose summary names an older sync");
    // A summary naming a sync at a change this hub never saw, heads and needs as this hub's.
    let (mut sa, mut sb) = (State::new(), State::new());
    let first = a.automerge().sync().generate_sync_message(&mut sa).unwrap();
    b.automerge().sync().receive_sync_message(&mut sb, first).unwrap();
    b.automerge().sync().generate_sync_message(&mut sb).unwrap();
    let mut lying = sb.clone();
    let unknown = automerge::ChangeHash([9; 32]);
    lying.their_have = Some(vec![automerge::sync::Have { last_sync: vec![unknown], bloom: Default::default() }]);
    assert!(nothing_to_send(&lying, &b.heads()));
    lying.in_flight = false;
    let reset = b.automerge().sync().generate_sync_message(&mut lying).expect("Automerge sends a reset");
    assert!(reset.changes.is_empty() && reset.have.iter().all(|h| h.last_sync.is_empty()), "a reset: {reset:?}");
}

/// A document's first message to a peer nothing was heard from is made from its heads alone as
/// Automerge makes it on the document (less the summary, which a message that asks for nothing
/// goes without), and moves the sync state alike: fresh, as persisted after an earlier sync,
/// and on a document with changes that wait for what they depend on. Any other state is left
/// to Automerge.
#[test]
fn a_first_message_is_made_from_the_heads_as_automerge_makes_it_on_the_document() {
    use automerge::sync::{State, SyncDoc};
    let mut a = items_in_commits(60, 20);
    // A sync to its end leaves shared heads, which the persisted state keeps.
    let mut b = Doc::new("d", b"b");
    let (mut sa, mut sb) = (State::new(), State::new());
    for _ in 0..8 {
        if let Some(m) = a.automerge().sync().generate_sync_message(&mut sa) {
            b.automerge().sync().receive_sync_message(&mut sb, m).unwrap();
        }
        if let Some(m) = b.automerge().sync().generate_sync_message(&mut sb) {
            a.automerge().sync().receive_sync_message(&mut sa, m).unwrap();
        }
    }
    assert_eq!(a.heads(), b.heads());
    let persisted = State::decode(&sa.encode()).unwrap();
    assert!(!persisted.shared_heads.is_empty());
    // A change that waits for one it depends on: the heads leave it out.
    let mut c = a.fork(b"c");
    c.create(&item("c1", "First")).unwrap();
    c.commit(&author("c", 1));
    let first = c.heads();
    c.create(&item("c2", "Second")).unwrap();
    c.commit(&author("c", 2));
    let mut waiting = a.fork(b"w");
    waiting.automerge().load_incremental(&c.save_after(&first)).unwrap();
    assert!(!waiting.missing_deps().is_empty());
    let mut made = 0;
    let mut again = a.fork(b"x");
    for (doc, state) in [(&mut a, State::new()), (&mut again, persisted.clone()), (&mut waiting, State::new())] {
        let heads = doc.heads();
        let (mut with, mut without) = (state.clone(), state.clone());
        let mut expected = doc.automerge().sync().generate_sync_message(&mut with).unwrap();
        expected.have.clear();
        let got = heads_message(&mut without, &heads).expect("a first message");
        assert_eq!(got, expected);
        assert_eq!(got.encode(), expected.encode());
        assert_eq!(format!("{without:?}"), format!("{with:?}"), "the same state either way");
        // Past the first message, Automerge decides.
        assert_eq!(heads_message(&mut without.clone(), &heads), None);
        made += 1;
    }
    assert_eq!(made, 3);
    // Not a first message: the peer spoke, no heads, a reset due, read-only, heads out of order.
    let mut spoke = sa.clone();
    assert_eq!(heads_message(&mut spoke, &a.heads()), None);
    assert_eq!(format!("{spoke:?}"), format!("{sa:?}"), "left as it was");
    assert_eq!(heads_message(&mut State::new(), &[]), None);
    let mut reset = State::new();
    reset.needs_reset = true;
    assert_eq!(heads_message(&mut reset, &a.heads()), None);
    let mut read_only = State::new();
    read_only.read_only = true;
    assert_eq!(heads_message(&mut read_only, &a.heads()), None);
    let mut peer_read_only = State::new();
    peer_read_only.peer_read_only = true;
    assert_eq!(heads_message(&mut peer_read_only, &a.heads()), None);
    let mut v2 = State::new();
    v2.their_capabilities = Some(vec![automerge::sync::Capability::MessageV2]);
    assert_eq!(heads_message(&mut v2, &a.heads()), None);
    let mut needs = State::new();
    needs.their_need = Some(Vec::new());
    assert_eq!(heads_message(&mut needs, &a.heads()), None);
    let mut summarised = State::new();
    summarised.their_have = Some(vec![automerge::sync::Have::default()]);
    assert_eq!(heads_message(&mut summarised, &a.heads()), None);
    let two = [a.heads()[0], c.heads()[0]];
    let reversed = if two[0] < two[1] { [two[1], two[0]] } else { two };
    assert_eq!(heads_message(&mut State::new(), &reversed), None);
}

#[test]
fn concurrent_edits_are_flagged_with_both_versions_never_mixed() {
    let mut a = Doc::new("d", b"a");
    a.create(&item("i1", "Water")).unwrap();
    a.commit(&author("a", 1));
    let mut b = a.fork(b"b");
    let mut ra = a.get(&"i1".into()).unwrap().unwrap();
    let mut rb = ra.clone();
    if let (Body::Item(x), Body::Item(y)) = (&mut ra.body, &mut rb.body) {
        x.notes = "keep dry, top shelf".into();
        x.name = "Water 1.5l".into();
        y.notes = "urgent: keep dry".into();
        y.name = "Water bottles".into();
        y.reorder_level = 50;
    }
    a.update(&ra).unwrap();
    a.commit(&author("a", 2));
    b.update(&rb).unwrap();
    b.commit(&author("b", 3));
    let touched = a.merge(&mut b).unwrap();
    assert_eq!(touched.into_iter().collect::<Vec<_>>(), vec![RecordId::from("i1")]);
    b.merge(&mut a).unwrap();
    let got = a.get(&"i1".into()).unwrap().unwrap();
    assert_eq!(got, b.get(&"i1".into()).unwrap().unwrap());
    let Body::Item(i) = &got.body else { panic!() };
    assert!(
        ["keep dry, top shelf", "urgent: keep dry"].contains(&i.notes.as_str()),
        "the notes read as one writer left them, not a mix: {:?}",
        i.notes
    );
    assert_eq!(i.reorder_level, 50, "an edit on one side only is kept");
    // Both fields written on both sides are flagged for a person, each with both versions as
    // their writers left them: the merged text is rarely what either meant.
    let versions = |d: &Doc, field: &str| {
        let c = d.conflicts(&"i1".into()).unwrap();
        let mut vals: Vec<String> = c
            .iter()
            .filter(|c| c.field == field)
            .flat_map(|c| c.values.iter().map(|v| v.as_str().unwrap().to_string()))
            .collect();
        vals.sort();
        vals
    };
    let c = a.conflicts(&"i1".into()).unwrap();
    assert_eq!(c.len(), 2, "{c:?}");
    // Read once for the index, the record and its count are what reading them apart gives.
    assert_eq!(a.get_counted(&"i1".into()).unwrap(), Some((got.clone(), 2)));
    assert_eq!(versions(&a, "name"), vec!["Water 1.5l", "Water bottles"]);
    assert_eq!(versions(&a, "notes"), vec!["keep dry, top shelf", "urgent: keep dry"]);
    assert_eq!(versions(&b, "notes"), versions(&a, "notes"), "every hub flags it alike");
    // The register is no field of the record.
    assert!(!serde_json::to_string(&got).unwrap().contains('~'));
    // Writing the whole record as it reads settles nothing: no one chose a version.
    a.update(&got).unwrap();
    assert_eq!(a.conflicts(&"i1".into()).unwrap().len(), 2);
    // Writing a field settles its conflict, the version it reads now included.
    a.update_settling(&got, &["reorder_level"]).unwrap();
    assert_eq!(a.conflicts(&"i1".into()).unwrap().len(), 2, "a field not in conflict settles nothing");
    let mut settle = got.clone();
    if let Body::Item(i) = &mut settle.body {
        i.name = "Water 1.5 l bottle".into();
    }
    a.update(&settle).unwrap();
    a.commit(&author("a", 4));
    assert_eq!(versions(&a, "name"), Vec::<String>::new());
    assert_eq!(versions(&a, "notes").len(), 2, "the notes still wait for a person");
    a.update_settling(&settle, &["notes"]).unwrap();
    a.commit(&author("a", 5));
    assert!(a.conflicts(&"i1".into()).unwrap().is_empty(), "keeping the version it reads settles it");
    assert_eq!(a.get_counted(&"i1".into()).unwrap().map(|(_, n)| n), Some(0));
    let Body::Item(kept) = a.get(&"i1".into()).unwrap().unwrap().body else { panic!() };
    assert_eq!(kept.notes, i.notes);
}

#[test]
fn a_list_that_grows_or_ticks_apart_keeps_both_hubs_work() {
    let action = |a: &str| ActionItem { action: a.into(), owner: "fox".into(), ..Default::default() };
    let mut a = Doc::new("d", b"a");
    let first = AfterAction { title: "Night 1".into(), action_items: vec![action("more water")], ..Default::default() };
    a.create(&record("n1", first)).unwrap();
    a.commit(&author("a", 1));
    let mut b = a.fork(b"b");
    let edit = |d: &mut Doc, f: &dyn Fn(&mut AfterAction), at: i64, hub: &str| {
        let mut r = d.get(&"n1".into()).unwrap().unwrap();
        if let Body::AfterAction(n) = &mut r.body {
            f(n);
        }
        d.update(&r).unwrap();
        d.commit(&author(hub, at));
    };
    // Hub a ticks the first action off and adds one; hub b adds another, apart.
    edit(
        &mut a,
        &|n| {
            n.action_items[0].done = true;
            n.action_items.push(action("a second radio"));
        },
        2,
        "a",
    );
    edit(&mut b, &|n| n.action_items.push(action("rota for the gate")), 3, "b");
    a.merge(&mut b).unwrap();
    b.merge(&mut a).unwrap();
    let read = |d: &Doc| {
        let Body::AfterAction(n) = d.get(&"n1".into()).unwrap().unwrap().body else { panic!() };
        n.action_items.iter().map(|i| (i.action.clone(), i.done)).collect::<Vec<_>>()
    };
    let got = read(&a);
    assert_eq!(got, read(&b), "every hub reads the same list");
    assert_eq!(got.len(), 3, "both additions are kept: {got:?}");
    assert_eq!(got[0], ("more water".to_string(), true), "the tick is kept");
    assert!(got.contains(&("a second radio".into(), false)) && got.contains(&("rota for the gate".into(), false)));
    assert!(a.conflicts(&"n1".into()).unwrap().is_empty(), "nothing for a person to settle");
    assert_eq!(a.get_counted(&"n1".into()).unwrap().map(|(_, n)| n), Some(0));
    // A list that shrinks is written whole.
    edit(&mut a, &|n| n.action_items.truncate(1), 4, "a");
    assert_eq!(read(&a), vec![("more water".to_string(), true)]);
}

#[test]
fn a_growing_list_first_written_on_two_hubs_reads_as_both() {
    // A record from before the field existed: no `action_items` key at all.
    let mut a = Doc::new("d", b"a");
    a.create(&record("n1", AfterAction { title: "Night 1".into(), ..Default::default() })).unwrap();
    let (_, obj) = a.automerge().get(automerge::ROOT, "n1").unwrap().unwrap();
    a.automerge().delete(&obj, "action_items").unwrap();
    a.commit(&author("a", 1));
    let mut b = a.fork(b"b");
    for (d, what, at) in [(&mut a, "more water", 2), (&mut b, "a second radio", 3)] {
        let mut r = d.get(&"n1".into()).unwrap().unwrap();
        if let Body::AfterAction(n) = &mut r.body {
            n.action_items.push(ActionItem { action: what.into(), ..Default::default() });
        }
        d.update(&r).unwrap();
        d.commit(&author("x", at));
    }
    a.merge(&mut b).unwrap();
    let Body::AfterAction(n) = a.get(&"n1".into()).unwrap().unwrap().body else { panic!() };
    let mut got: Vec<String> = n.action_items.iter().map(|i| i.action.clone()).collect();
    got.sort();
    assert_eq!(got, vec!["a second radio", "more water"], "neither hub's action is hidden");
    assert!(a.conflicts(&"n1".into()).unwrap().is_empty());
}

#[test]
fn a_change_that_rewrites_a_record_that_is_never_changed_is_found_by_the_changes_alone() {
    let fixed = append_only;
    let movement = |id: &str, q: i64| {
        record(
            id,
            Movement {
                item: "i1".into(),
                place: "p1".into(),
                quantity: q,
                reason: "delivery".into(),
                ..Default::default()
            },
        )
    };
    let mut a = Doc::new("d", b"a");
    a.create(&movement("m1", 100)).unwrap();
    a.create(&item("i1", "Insulin pen")).unwrap();
    a.commit(&author("a", 1));
    let created = a.heads();
    // Creating records, and editing one that may change, is no rewrite.
    assert_eq!(a.rewrite_since(&[], fixed).unwrap(), None);
    let mut i = a.get(&"i1".into()).unwrap().unwrap();
    if let Body::Item(x) = &mut i.body {
        x.name = "Insulin pen 3 ml".into();
    }
    a.update(&i).unwrap();
    a.commit(&author("a", 2));
    assert_eq!(a.rewrite_since(&created, fixed).unwrap(), None);
    let honest = a.heads();
    // Hub b rewrites the movement: found whether or not the creation came in the same batch.
    let mut b = a.fork(b"b");
    let mut m = b.get(&"m1".into()).unwrap().unwrap();
    if let Body::Movement(x) = &mut m.body {
        x.quantity = 10;
        x.reason = "delivery (counted again)".into();
    }
    b.update(&m).unwrap();
    b.commit(&author("b", 3));
    let r = b.rewrite_since(&honest, fixed).unwrap().expect("a rewrite");
    assert_eq!(r.record, RecordId::from("m1"));
    assert!(r.what.starts_with("changed"), "{r:?}");
    assert_eq!(r.actor, b"b".to_vec());
    assert!(b.rewrite_since(&[], fixed).unwrap().is_some(), "a hub new to the document finds it too");
    // Removing it, or making it again with other content, is a rewrite too.
    let mut c = a.fork(b"c");
    c.automerge().delete(automerge::ROOT, "m1").unwrap();
    c.commit(&author("c", 4));
    assert_eq!(c.rewrite_since(&honest, fixed).unwrap().map(|r| r.what), Some("removed".into()));
    let mut d = Doc::new("d", b"d");
    d.create(&movement("m1", 10)).unwrap();
    d.commit(&author("d", 5));
    let mut e = a.fork(b"e");
    e.merge(&mut d).unwrap();
    assert_eq!(e.rewrite_since(&honest, fixed).unwrap().map(|r| r.what), Some("made again with other content".into()));
    let whole = e.rewrite_since(&[], fixed).unwrap().map(|r| (r.record, r.what));
    assert_eq!(whole, Some(("m1".into(), "made again with other content".into())), "a hub new to the document too");
    // The same content made again (a repair from the index) is none.
    let mut f = Doc::new("d", b"f");
    f.create(&a.get(&"m1".into()).unwrap().unwrap()).unwrap();
    f.commit(&author("f", 6));
    let mut g = a.fork(b"g");
    g.merge(&mut f).unwrap();
    assert_eq!(g.rewrite_since(&honest, fixed).unwrap(), None);
    assert_eq!(g.rewrite_since(&[], fixed).unwrap(), None);
}

#[test]
fn the_same_text_written_on_two_hubs_is_no_conflict() {
    let mut a = Doc::new("d", b"a");
    a.create(&item("i1", "Water")).unwrap();
    a.commit(&author("a", 1));
    let mut b = a.fork(b"b");
    let mut r = a.get(&"i1".into()).unwrap().unwrap();
    if let Body::Item(x) = &mut r.body {
        x.notes = "top shelf".into();
    }
    a.update(&r).unwrap();
    a.commit(&author("a", 2));
    b.update(&r).unwrap();
    b.commit(&author("b", 3));
    a.merge(&mut b).unwrap();
    assert!(a.conflicts(&"i1".into()).unwrap().is_empty());
    assert_eq!(a.get_counted(&"i1".into()).unwrap().map(|(_, n)| n), Some(0));
    let Body::Item(i) = a.get(&"i1".into()).unwrap().unwrap().body else { panic!() };
    assert_eq!(i.notes, "top shelf", "not written twice over");
}

#[test]
fn history_lists_the_changes_of_a_record() {
    let mut d = Doc::new("d", b"a");
    d.create(&item("i1", "Water")).unwrap();
    d.create(&item("i2", "Rice")).unwrap();
    d.commit(&author("a", 10));
    let mut r = d.get(&"i1".into()).unwrap().unwrap();
    if let Body::Item(i) = &mut r.body {
        i.reorder_level = 3;
    }
    d.update(&r).unwrap();
    d.commit(&Author { hub: "b".into(), handle: "owl".into(), at: Timestamp::from_millis(20) });
    let h = d.history(&"i1".into());
    assert_eq!(
        h.iter().map(|e| (e.at.millis(), e.handle.as_str())).collect::<Vec<_>>(),
        vec![(10, "a-coord"), (20, "owl")]
    );
    assert_eq!(d.history(&"i2".into()).len(), 1);
    assert!(d.history(&"nope".into()).is_empty());
}

#[test]
fn the_records_a_change_touched_are_read_from_its_operations_as_a_diff_would_find_them() {
    let mut a = Doc::new("d", b"a");
    let volunteer = |skills: usize| {
        let mut v = Volunteer { handle: "fox".into(), languages: vec!["en".into()], ..Default::default() };
        for _ in 0..skills {
            v.skills.push(Skill { skill: SkillKind::Translation, languages: vec!["ar".into()], ..Default::default() });
        }
        record("v1", v)
    };
    for n in 0..50 {
        a.create(&item(&format!("quiet{n}"), "Blankets")).unwrap();
    }
    a.create(&item("i1", "Water")).unwrap();
    a.create(&item("i2", "Tents")).unwrap();
    a.create(&volunteer(1)).unwrap();
    a.commit(&author("a", 1));
    let mut b = a.fork(b"b");
    // On b: a text field rewritten (a text object inside the record), a list grown by a map
    // (an object inside a list inside the record), a record made; on a, apart: a name.
    let mut i1 = b.get(&"i1".into()).unwrap().unwrap();
    if let Body::Item(x) = &mut i1.body {
        x.notes = "keep dry, top shelf".into();
    }
    b.update(&i1).unwrap();
    b.update(&volunteer(2)).unwrap();
    b.create(&item("i3", "Soap")).unwrap();
    b.commit(&author("b", 2));
    let mut i2 = a.get(&"i2".into()).unwrap().unwrap();
    if let Body::Item(x) = &mut i2.body {
        x.name = "Tents (large)".into();
    }
    a.update(&i2).unwrap();
    a.commit(&author("a", 3));
    let ids = |v: &[&str]| v.iter().map(|s| RecordId::from(*s)).collect::<BTreeSet<_>>();
    let merge = |into: &mut Doc, from: &mut Doc, expected: BTreeSet<RecordId>| {
        let before = into.heads();
        let touched = into.merge(from).unwrap();
        let after = into.heads();
        assert_eq!(into.written_since(&before), Some(expected.clone()), "read from the operations");
        assert_eq!(touched, expected);
        assert_eq!(into.diffed_since(&before, &after), expected, "a diff finds the same");
    };
    merge(&mut a, &mut b, ids(&["i1", "v1", "i3"]));
    merge(&mut b, &mut a, ids(&["i2"]));
}

/// A change no honest hub makes: `forge` rewrites the one operation of a change that makes a
/// record at the root. The records it touched must still include every record whose state it
/// changed, however it came to change it.
#[test]
fn a_forged_change_cannot_hide_which_records_it_touched() {
    use automerge::legacy::{ElementId, Key, OpId};
    let forged = |forge: &dyn Fn(&mut automerge::legacy::Op, &OpId)| {
        let mut a = Doc::new("d", b"a");
        a.create(&item("abc", "Water")).unwrap();
        a.create(&item("mmm", "Tents")).unwrap();
        a.commit(&author("a", 1));
        let victim = match a.automerge().get(automerge::ROOT, "abc").unwrap() {
            Some((_, ObjId::Id(counter, actor, _))) => OpId(counter, actor),
            other => panic!("{other:?}"),
        };
        let mut b = a.fork(b"b");
        let before = b.heads();
        b.automerge().put(automerge::ROOT, "zzz", "a value at the root").unwrap();
        b.commit(&author("b", 2));
        let mut change = b.changes_after(&before).remove(0).decode();
        assert_eq!(change.operations.len(), 1);
        forge(&mut change.operations[0], &victim);
        let bytes = automerge::Change::from(change).raw_bytes().to_vec();
        let before = a.heads();
        // Automerge may refuse it, or panic taking it (the hub's ingest catches that and drops
        // the document); if it takes it, every record it changed is reported.
        let taken =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.apply_checked(&bytes).is_ok())).unwrap_or(false);
        if taken {
            let touched = a.touched_since(&before);
            let after = a.heads();
            let diffed = a.diffed_since(&before, &after);
            assert!(touched.is_superset(&diffed), "touched {touched:?}, yet {diffed:?} changed");
        }
        taken
    };
    // Overwrites the record at another key: Automerge takes it and "abc" is gone from the
    // document; rebuilding the change then panics in Automerge, and the diff says what changed.
    assert!(forged(&|op, victim| op.pred = vec![victim.clone()].into()));
    // A position at the root map, not a name, with and without the overwrite (Automerge panics
    // taking these today; whatever it does, nothing it changed goes unreported).
    let _ = forged(&|op, _| op.key = Key::Seq(ElementId::Head));
    let _ = forged(&|op, victim| {
        op.key = Key::Seq(ElementId::Id(victim.clone()));
        op.pred = vec![victim.clone()].into();
    });
}

/// Objects nested deeper than any record's fields: the record is still found, whether the
/// objects came with the change (their places known as they are made) or were there before
/// (their places read, at most `MAX_DEPTH` deep, else a diff).
#[test]
fn a_write_deep_inside_a_record_touches_that_record() {
    let mut a = Doc::new("d", b"a");
    a.create(&item("quiet", "Blankets")).unwrap();
    a.commit(&author("a", 1));
    let mut b = a.fork(b"b");
    let before = b.heads();
    let mut obj = b.automerge().put_object(automerge::ROOT, "deep", ObjType::Map).unwrap();
    for depth in 0..20 {
        obj = b.automerge().put_object(&obj, format!("level{depth}"), ObjType::Map).unwrap();
    }
    b.commit(&author("b", 2));
    let deep = BTreeSet::from([RecordId::from("deep")]);
    assert_eq!(b.written_since(&before), Some(deep.clone()), "made in these changes");
    let before_a = a.heads();
    assert_eq!(a.merge(&mut b).unwrap(), deep);
    assert_eq!(a.written_since(&before_a), Some(deep.clone()));
    // Written into later: the place of the deepest object is read, and is too deep.
    let before = b.heads();
    b.automerge().put(&obj, "note", "here").unwrap();
    b.commit(&author("b", 3));
    assert_eq!(b.written_since(&before), None, "deeper than a record's fields: a diff says");
    assert_eq!(b.touched_since(&before), deep);
}

/// A hub checks the changes a message brought, may then apply changes that waited for them,
/// and reads the records touched since the same heads: the changes both read are those at the
/// document's heads each time, never the ones the check read before more came.
#[test]
fn changes_read_since_the_same_heads_follow_what_was_applied_in_between() {
    let mut a = Doc::new("d", b"a");
    a.create(&item("i0", "Blankets")).unwrap();
    a.commit(&author("a", 0));
    let mut b = a.fork(b"b");
    let before = b.heads();
    a.create(&item("i1", "Water")).unwrap();
    a.commit(&author("a", 1));
    let first = a.save_incremental();
    a.create(&item("i2", "Tents")).unwrap();
    a.commit(&author("a", 2));
    let second = a.save_incremental();
    b.apply_checked(&first).unwrap();
    assert_eq!(b.rewrite_since(&before, |_| true).unwrap(), None);
    b.apply_checked(&second).unwrap();
    let ids = |v: &[&str]| v.iter().map(|s| RecordId::from(*s)).collect::<BTreeSet<_>>();
    assert_eq!(b.touched_since(&before), ids(&["i1", "i2"]));
    // And a check before a rewrite came, then after: the second sees it.
    let mid = b.heads();
    let mut i1 = a.get(&"i1".into()).unwrap().unwrap();
    if let Body::Item(x) = &mut i1.body {
        x.name = "Water (5 l)".into();
    }
    a.update(&i1).unwrap();
    a.commit(&author("a", 3));
    assert_eq!(b.rewrite_since(&mid, |_| true).unwrap(), None);
    b.apply_checked(&a.save_incremental()).unwrap();
    assert!(b.rewrite_since(&mid, |_| true).unwrap().is_some(), "an item made fixed for the test is rewritten");
    assert_eq!(b.touched_since(&mid), ids(&["i1"]));
    // A change that waits for one it depends on leaves the heads as they were; once that one
    // comes, both apply.
    let mid = b.heads();
    a.create(&item("i3", "Soap")).unwrap();
    a.commit(&author("a", 4));
    let third = a.save_incremental();
    a.create(&item("i4", "Rope")).unwrap();
    a.commit(&author("a", 5));
    b.apply_checked(&a.save_incremental()).unwrap();
    assert_eq!(b.heads(), mid, "the fourth waits for the third");
    assert_eq!(b.rewrite_since(&mid, |_| true).unwrap(), None);
    b.apply_checked(&third).unwrap();
    assert_eq!(b.touched_since(&mid), ids(&["i3", "i4"]));
}

/// The save after a message's changes were checked and read appends exactly what Automerge
/// would save after the last save: those changes when they are all that came since, the
/// document's own otherwise (more applied in between, or checked since other heads).
#[test]
fn what_is_saved_after_changes_were_checked_is_what_came_since_the_last_save() {
    let mut a = Doc::new("d", b"a");
    a.create(&item("i0", "Blankets")).unwrap();
    a.commit(&author("a", 0));
    let mut stored = a.save();
    let mut b = Doc::load("d", &stored, b"b").unwrap();
    let mut edit = |n: i64| {
        a.create(&item(&format!("i{n}"), "Water")).unwrap();
        a.commit(&author("a", n));
        a.save_incremental()
    };
    let (first, second, third, fourth) = (edit(1), edit(2), edit(3), edit(4));
    let save_and_check = |b: &mut Doc, stored: &mut Vec<u8>, saved: &[ChangeHash]| {
        let want = b.save_after(saved);
        let got = b.save_incremental();
        assert_eq!(got, want, "appended");
        stored.extend(got);
        assert_eq!(Doc::load("d", stored, b"c").unwrap().heads(), b.heads(), "and it loads as held");
        assert!(b.save_incremental().is_empty(), "nothing more");
    };
    // Checked and read, then saved: the changes checked.
    let before = b.heads();
    b.apply_checked(&first).unwrap();
    assert_eq!(b.rewrite_since(&before, |_| false).unwrap(), None);
    assert_eq!(b.touched_since(&before).len(), 1);
    save_and_check(&mut b, &mut stored, &before);
    // Checked, then more applied before the save: all of it.
    let before = b.heads();
    b.apply_checked(&second).unwrap();
    assert_eq!(b.rewrite_since(&before, |_| false).unwrap(), None);
    b.apply_checked(&third).unwrap();
    save_and_check(&mut b, &mut stored, &before);
    // Checked since heads older than the last save: what came after the save.
    let saved = b.heads();
    b.apply_checked(&fourth).unwrap();
    assert_eq!(b.rewrite_since(&[], |_| false).unwrap(), None);
    save_and_check(&mut b, &mut stored, &saved);
    // Changes read since other heads (an export's, since a peer's) are not kept on the
    // document after: only those since the last save are, until it is saved.
    assert_eq!(b.touched_since(&before).len(), 3);
    assert!(b.since.is_none(), "nothing kept");
    let before = b.heads();
    b.apply_checked(&edit(5)).unwrap();
    assert_eq!(b.touched_since(&before).len(), 1);
    assert!(b.since.is_some(), "kept for the save");
    b.save();
    assert!(b.since.is_none(), "until it is saved");
}

#[test]
fn apply_reports_touched_records_and_rejects_garbage() {
    let mut a = Doc::new("d", b"a");
    let mut b = a.fork(b"b");
    a.create(&item("i1", "Water")).unwrap();
    a.commit(&author("a", 1));
    let chunk = a.save_incremental();
    let touched = b.apply(&chunk).unwrap();
    assert!(touched.contains(&RecordId::from("i1")));
    assert!(b.apply(&chunk).unwrap().is_empty(), "applying twice changes nothing");
    let before = b.save();
    assert!(b.apply(b"\x85\x6f\x4a\x83garbage").is_err());
    let mut truncated = a.save();
    truncated.truncate(truncated.len() - 3);
    assert!(b.apply(&truncated).is_err());
    let mut flipped = chunk.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x55;
    assert!(b.apply(&flipped).is_err());
    assert_eq!(b.save(), before);
}

/// What hubs file documents under, and what a peer's word is held to: every partition
/// `partition_for` makes is valid, whatever the record's time; ids name their partition.
#[test]
fn partitions_are_those_hubs_make_and_ids_name_them() {
    // Now; about year 12,100; about 1 BC (an import's time, or a peer's record).
    for (at, month) in
        [(1_795_600_800_000_i64, "2026-11"), (320_000_000_000_000, "9999-12"), (-62_200_000_000_000, "0000-01")]
    {
        let t = Timestamp::from_millis(at);
        assert_eq!(partition_for(Kind::Incident, t), format!("incident/{month}"), "{at}");
        for kind in [Kind::Incident, Kind::Item, Kind::Hub] {
            let p = partition_for(kind, t);
            assert!(valid_partition(&p), "{p}");
            assert!(valid_filing(&format!("{}-01abc", p.replace('/', "-")), &p), "{p}");
        }
    }
    for bad in [
        "",
        "Item",
        "item/2026-11",
        "incident",
        "incident/2026-13",
        "incident/2026-1",
        "incident/+12026-01",
        "coalition/2026-11",
        "nothing",
        "item ",
    ] {
        assert!(!valid_partition(bad), "{bad:?}");
    }
    for (doc, partition) in [
        ("x1", "coalition"),
        ("coalition", "coalition"),
        ("coalition-", "coalition"),
        ("item-01abc", "coalition"),
        ("incident-2026-12-01abc", "incident/2026-11"),
        ("items-01abc", "item"),
    ] {
        assert!(!valid_filing(doc, partition), "{doc} under {partition}");
    }
}

#[test]
fn index_lists_documents_and_shards_roll_over() {
    let mut ix = Index::new(b"a");
    let e1 = DocEntry { doc: "d1".into(), partition: "item".into(), created_at: Timestamp::from_millis(5) };
    let e2 = DocEntry { doc: "d2".into(), partition: "item".into(), created_at: Timestamp::from_millis(9) };
    ix.add(&e2, &author("a", 1)).unwrap();
    ix.add(&e1, &author("a", 1)).unwrap();
    assert_eq!(ix.entries(), vec![e1.clone(), e2.clone()]);
    assert_eq!(choose_shard([(&e1, 10), (&e2, 0)], Family::Catalogue), Some(&e1));
    assert_eq!(choose_shard([(&e1, SHARD_TARGET), (&e2, 0)], Family::Catalogue), Some(&e2));
    assert_eq!(choose_shard([(&e1, SHARD_TARGET), (&e2, SHARD_TARGET)], Family::Log), None);
    assert_eq!(choose_shard([(&e1, SHARD_TARGET)], Family::Coalition), Some(&e1));
    let t = Timestamp::parse("2026-11-25T10:00:00Z").unwrap();
    assert_eq!(partition_for(Kind::Movement, t), "movement/2026-11");
    assert_eq!(partition_for(Kind::Item, t), "item");
    assert_eq!(partition_for(Kind::Place, t), "coalition");
}

// ---------------------------------------------------------------------------------------------
// Convergence of forked replicas.

#[derive(Clone, Debug)]
enum Op {
    Issue { replica: usize, qty: i64 },
    Receive { replica: usize, qty: i64 },
    Allocate { replica: usize, qty: u64 },
    Release { replica: usize, nth: usize },
    Rename { replica: usize, name: u8 },
    Sync { from: usize, to: usize },
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..n, 1i64..8).prop_map(|(replica, qty)| Op::Issue { replica, qty }),
        (0..n, 1i64..8).prop_map(|(replica, qty)| Op::Receive { replica, qty }),
        (0..n, 1u64..6).prop_map(|(replica, qty)| Op::Allocate { replica, qty }),
        (0..n, 0usize..8).prop_map(|(replica, nth)| Op::Release { replica, nth }),
        (0..n, any::<u8>()).prop_map(|(replica, name)| Op::Rename { replica, name }),
        (0..n, 0..n).prop_map(|(from, to)| Op::Sync { from, to }),
    ]
}

fn scenario() -> impl Strategy<Value = (usize, Vec<Op>, Vec<usize>)> {
    (2usize..=5).prop_flat_map(|n| {
        (Just(n), prop::collection::vec(op(n), 1..40), Just((0..n).collect::<Vec<_>>()).prop_shuffle())
    })
}

fn all_records(d: &Doc) -> Vec<Record> {
    let (recs, bad) = d.records();
    assert!(bad.is_empty());
    recs
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random concurrent operations on 2–5 replicas, merged in a random order, converge; stock is
    /// the sum of every movement made anywhere; every over-allocation shows.
    #[test]
    fn forked_replicas_converge((n, ops, order) in scenario()) {
        let mut base = Doc::new("log", &[0]);
        base.create(&item("water", "Water")).unwrap();
        base.create(&record("offer", Offer { category: Some(Category::Shelter), quantity: 10, ..Default::default() })).unwrap();
        base.create(&record("mv0", Movement { item: "water".into(), kind: MovementKind::Receive, quantity: 20, place: "hall".into(), ..Default::default() })).unwrap();
        base.commit(&author("base", 0));
        let mut reps: Vec<Doc> = (0..n).map(|i| base.fork(&[i as u8 + 1])).collect();
        let mut expected_level = 20i64;
        let mut allocations: Vec<(usize, RecordId)> = Vec::new();
        for (step, o) in ops.iter().enumerate() {
            let id = RecordId::from(format!("r{step}").as_str());
            let mk = |body: Body| Record { meta: Meta { id: id.clone(), kind: body.kind(), created_hub: "h".into(), created_by: "p".into(), created_at: Timestamp::from_millis(step as i64) }, body };
            match o.clone() {
                Op::Issue { replica, qty } | Op::Receive { replica, qty } => {
                    let kind = if matches!(o, Op::Issue { .. }) { MovementKind::Issue } else { MovementKind::Receive };
                    expected_level += if kind == MovementKind::Issue { -qty } else { qty };
                    reps[replica].create(&mk(Body::Movement(Movement { item: "water".into(), kind, quantity: qty, place: "hall".into(), ..Default::default() }))).unwrap();
                    reps[replica].commit(&author("h", step as i64));
                }
                Op::Allocate { replica, qty } => {
                    reps[replica].create(&mk(Body::Allocation(Allocation { request: "req".into(), offer: Some("offer".into()), quantity: qty, ..Default::default() }))).unwrap();
                    reps[replica].commit(&author("h", step as i64));
                    allocations.push((replica, id.clone()));
                }
                Op::Release { replica, nth } => {
                    let mine: Vec<_> = allocations.iter().filter(|(r, _)| *r == replica).collect();
                    if let Some((_, aid)) = mine.get(nth) {
                        if let Some(mut a) = reps[replica].get(aid).unwrap() {
                            if let Body::Allocation(x) = &mut a.body { x.status = AllocationStatus::Released; }
                            reps[replica].update(&a).unwrap();
                            reps[replica].commit(&author("h", step as i64));
                        }
                    }
                }
                Op::Rename { replica, name } => {
                    let mut it = reps[replica].get(&"water".into()).unwrap().unwrap();
                    if let Body::Item(i) = &mut it.body { i.name = format!("water {name}"); }
                    reps[replica].update(&it).unwrap();
                    reps[replica].commit(&author("h", step as i64));
                }
                Op::Sync { from, to } if from != to => {
                    let (a, b) = if from < to { let (x, y) = reps.split_at_mut(to); (&mut x[from], &mut y[0]) } else { let (x, y) = reps.split_at_mut(from); (&mut y[0], &mut x[to]) };
                    let before = b.heads();
                    let touched = b.merge(a).unwrap();
                    let after = b.heads();
                    // What changed is read from the changes: at least every record a diff finds.
                    let diffed = b.diffed_since(&before, &after);
                    prop_assert!(touched.is_superset(&diffed), "touched {:?}, diffed {:?}", touched, diffed);
                }
                Op::Sync { .. } => {}
            }
        }
        // Merge everything into the first in the shuffled order, then back out to all.
        let (first, rest) = order.split_first().unwrap();
        let mut acc = reps[*first].fork(&[99]);
        for i in rest { acc.merge(&mut reps[*i]).unwrap(); }
        for r in reps.iter_mut() { r.merge(&mut acc).unwrap(); }
        let reference = all_records(&reps[0]);
        let mut sorted_ref = reference.clone();
        sorted_ref.sort_by(|a, b| a.id().cmp(b.id()));
        for r in &reps[1..] {
            let mut recs = all_records(r);
            recs.sort_by(|a, b| a.id().cmp(b.id()));
            prop_assert_eq!(&recs, &sorted_ref);
        }
        // Conservation: the level is the sum of every movement made on any replica.
        let levels = stock_levels(&reference);
        prop_assert_eq!(levels.get(&("water".into(), "hall".into())).copied().unwrap_or(0), expected_level);
        // Every over-allocation is flagged: compute the oracle from the final allocations.
        let held: u64 = of_kind::<Allocation>(&reference).filter(|(_, a)| a.holds()).map(|(_, a)| a.quantity).sum();
        let flagged: BTreeMap<Source, u64> = over_allocations(&reference, &levels).into_iter().map(|o| (o.source, o.allocated)).collect();
        if held > 10 {
            prop_assert_eq!(flagged.get(&Source::Offer { offer: "offer".into() }).copied(), Some(held));
        } else {
            prop_assert!(flagged.is_empty());
        }
    }
}

/// The seed corpus of the `change_ingest` fuzz target (in `crates/mesh/fuzz`), made from
/// [`fuzz_doc`]: a new record, an edit, a rewrite of the movement, whole documents (one saved by
/// hand), and programs (run with
/// AIDMESH_WRITE_CORPUS=1 to refresh it). Each seed does what it says to [`feed_changes`].
#[test]
fn change_ingest_seeds_are_current() {
    let mut seeds: Vec<(&str, Vec<u8>, bool)> = Vec::new();
    let peer = |edit: &dyn Fn(&mut Doc)| {
        let mut d = fuzzing::fuzz_doc().fork(b"fuzz-peer");
        let before = d.heads();
        edit(&mut d);
        d.commit(&author("b", 2));
        d.automerge().save_after(&before)
    };
    let new_item = peer(&|d| d.create(&item("i2", "Tarpaulin")).unwrap());
    seeds.push(("new-record", new_item, true));
    fn edit(d: &mut Doc, id: &str, f: impl Fn(&mut Body)) {
        let mut r = d.get(&id.into()).unwrap().unwrap();
        f(&mut r.body);
        d.update(&r).unwrap();
    }
    let renamed = |d: &mut Doc| {
        edit(d, "i1", |b| {
            if let Body::Item(x) = b {
                x.name = "Insulin pen 3 ml".into();
            }
        })
    };
    seeds.push(("item-edit", peer(&renamed), true));
    let recounted = |d: &mut Doc| {
        edit(d, "m1", |b| {
            if let Body::Movement(x) = b {
                x.quantity = 10;
            }
        })
    };
    seeds.push(("movement-rewrite", peer(&recounted), false));
    // A whole document holds the seed's own creation, which is no news: it applies.
    seeds.push(("whole", fuzzing::fuzz_doc().save(), true));
    let mut grown = fuzzing::fuzz_doc().fork(b"fuzz-peer");
    grown.create(&item("i3", "Water")).unwrap();
    grown.commit(&author("b", 3));
    seeds.push(("whole-grown", grown.save(), true));
    // A document saved by hand with a movement marked overwritten (its own records clash with
    // the seed's, made again with other content: refused).
    let hand = fuzzing::saved_by_hand("fuzz", [b"fuzz-a", b"fuzz-b", b"fuzz-c"]);
    seeds.push(("whole-saved-by-hand", hand.bytes, false));
    // The bytes above go as they are (a first byte that is even); programs of edits two hubs
    // make apart follow (a first byte that is odd: four bytes a step, who, record, field, what;
    // see `fuzzing`): c1 checked out at noon by one hub, at one by the other (two closes, both
    // kept), f1 done, and the movement's quantity written.
    let mut seeds: Vec<(&str, Vec<u8>, bool)> =
        seeds.into_iter().map(|(n, b, t)| (n, [&[0u8][..], &b].concat(), t)).collect();
    seeds.push(("program-close", vec![1, 0, 4, 0, 12, 1, 4, 0, 13, 0, 6, 1, 33], true));
    seeds.push(("program-rewrite", vec![1, 0, 1, 4, 96 + 5], false));
    // The item's notes edited in place by one hub, and by the other.
    seeds.push(("program-text", vec![1, 0, 0, 3, 160 + 3, 1, 0, 3, 160 + 5], true));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../mesh/fuzz/corpus/change_ingest");
    for (name, bytes, takes) in seeds {
        assert_eq!(feed_changes(&bytes), takes, "{name}");
        let p = dir.join(name);
        if std::env::var_os("AIDMESH_WRITE_CORPUS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&p, &bytes).unwrap();
        }
        assert_eq!(std::fs::read(&p).unwrap(), bytes, "{name}: refresh with AIDMESH_WRITE_CORPUS=1");
    }
}

proptest! {
    /// Programs of edits two hubs make apart, as the fuzzer makes them: a hub that held the
    /// document and one new to it reach the same verdict, and where no rewrite is found, no
    /// record that is never changed changed, but for a check-out or a follow-up done set once
    /// (`fuzzing` panics otherwise).
    #[test]
    fn edits_apart_never_rewrite_a_fixed_record_unseen(program in proptest::collection::vec(any::<u8>(), 0..16)) {
        feed_changes(&[&[1u8][..], &program].concat());
    }
}

/// Every edit of the harness's program, alone and after a close by the same hub or by the
/// other one, on each record that is never changed: the rules hold (`fuzzing` panics
/// otherwise), and what is taken is only a first close.
#[test]
fn every_single_edit_of_a_fixed_record_is_judged_by_the_rules() {
    // Check-out times (before the check-in at 8, at it, after it), true and false, null, a
    // number, a removal, a text, a value in the record's place, a commit.
    let acts = [6u8, 8, 12, 32, 33, 64, 96, 128, 160, 192, 224];
    let (fixed, fields) = ([1u8, 2, 4, 5, 6], 0..11u8);
    let mut taken = 0;
    for target in fixed {
        for field in fields.clone() {
            for act in acts {
                taken += usize::from(feed_changes(&[1, 0, target, field, act]));
                // After a first close of c1 (at noon) or of f1: by the same hub, and by the other.
                for who in [0, 1] {
                    feed_changes(&[1, 0, 4, 0, 12, who, target, field, act]);
                    feed_changes(&[1, 0, 6, 1, 33, who, target, field, act]);
                }
            }
        }
    }
    // Taken: closing c1 at 8 or 12 o'clock, f1 done, and what changes nothing (a commit alone,
    // removing a field a record lacks): nothing else.
    assert!((3..150).contains(&taken), "{taken} single edits taken");
    for (program, takes) in [
        ([1, 0, 4, 0, 8], true),
        ([1, 0, 4, 0, 12], true),
        ([1, 0, 6, 1, 33], true),
        ([1, 0, 4, 0, 6], false),
        ([1, 0, 5, 0, 12], false),
        ([1, 0, 6, 1, 64], false),
        ([1, 0, 1, 4, 96], false),
    ] {
        assert_eq!(feed_changes(&program), takes, "{program:?}");
    }
}

/// Every input the `change_ingest` fuzzer was seeded with or ever crashed on stays a test.
#[test]
fn change_ingest_corpus_and_regressions_never_panic() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../mesh/fuzz");
    let mut n = 0;
    for dir in ["corpus/change_ingest", "regressions/change_ingest"] {
        for e in std::fs::read_dir(root.join(dir)).into_iter().flatten().flatten() {
            feed_changes(&std::fs::read(e.path()).unwrap());
            n += 1;
        }
    }
    assert!(n >= 5, "the seed corpus is missing");
}

#[test]
fn a_check_out_or_a_follow_up_done_written_once_where_it_was_open_is_no_rewrite() {
    let fixed = append_only;
    let t = |h: u32| Timestamp::parse(&format!("2026-11-25T{h:02}:00:00Z")).unwrap();
    // Made once check-ins and follow-ups are append-only (`Kind::append_only_from`).
    let late = |mut r: Record| {
        r.meta.created_at = Timestamp::parse("2026-12-08T08:00:00Z").unwrap();
        r
    };
    let check_in = |id: &str, out: Option<Timestamp>| {
        late(record(id, CheckIn { volunteer: "v1".into(), checked_in: t(8), checked_out: out, ..Default::default() }))
    };
    let close = |d: &mut Doc, id: &str, at: Option<Timestamp>, done: bool| {
        let mut r = d.get(&id.into()).unwrap().unwrap();
        match &mut r.body {
            Body::CheckIn(c) => c.checked_out = at,
            Body::FollowUp(f) => f.done = done,
            _ => unreachable!(),
        }
        d.update(&r).unwrap();
    };
    let mut a = Doc::new("d", b"a");
    a.create(&check_in("c1", None)).unwrap();
    a.create(&late(record("f1", FollowUp { incident: "n1".into(), action: "Call back".into(), ..Default::default() })))
        .unwrap();
    // One made by a release that still edited check-ins.
    a.create(&record("c0", CheckIn { volunteer: "v1".into(), checked_in: t(8), ..Default::default() })).unwrap();
    a.create(&check_in("c2", Some(t(9)))).unwrap();
    a.commit(&author("a", 1));
    let made = a.heads();
    // Closed in the record itself, as hubs of earlier releases did: no rewrite, for a hub that
    // holds the records and for one new to the document.
    let mut b = a.fork(b"b");
    close(&mut b, "c1", Some(t(12)), false);
    close(&mut b, "f1", None, true);
    b.commit(&author("b", 2));
    assert_eq!(b.rewrite_since(&made, fixed).unwrap(), None);
    assert_eq!(b.rewrite_since(&[], fixed).unwrap(), None);
    let closed = b.heads();
    let rewrite =
        |d: &mut Doc, since: &[ChangeHash]| d.rewrite_since(since, fixed).unwrap().map(|r| (r.record, r.what));
    // A check-out time changed, a follow-up reopened: rewrites.
    let mut c = b.fork(b"c");
    close(&mut c, "c1", Some(t(13)), false);
    c.commit(&author("c", 3));
    assert_eq!(rewrite(&mut c, &closed), Some(("c1".into(), "changed (checked_out)".into())));
    assert!(rewrite(&mut c, &[]).is_some(), "a hub new to the document finds it too");
    let mut d = b.fork(b"d");
    close(&mut d, "f1", None, false);
    d.commit(&author("d", 4));
    assert_eq!(rewrite(&mut d, &closed), Some(("f1".into(), "changed (done)".into())));
    // One made closed is never closed again; another field is never changed.
    let mut e = a.fork(b"e");
    close(&mut e, "c2", Some(t(10)), false);
    e.commit(&author("e", 5));
    assert_eq!(rewrite(&mut e, &made), Some(("c2".into(), "changed (checked_out)".into())));
    let mut f = a.fork(b"f");
    let mut r = f.get(&"c1".into()).unwrap().unwrap();
    if let Body::CheckIn(c) = &mut r.body {
        c.volunteer = "v2".into();
    }
    f.update(&r).unwrap();
    f.commit(&author("f", 6));
    assert_eq!(rewrite(&mut f, &made), Some(("c1".into(), "changed (volunteer)".into())));
    // Removing the check-out is no closing either.
    let mut g = b.fork(b"g");
    let obj = g.record_obj(&"c1".into()).unwrap().unwrap();
    g.automerge().delete(&obj, "checked_out").unwrap();
    g.commit(&author("g", 7));
    assert!(rewrite(&mut g, &closed).is_some());
    // Two hubs that close one check-in apart leave both times: a conflict people see.
    let mut h = a.fork(b"h");
    close(&mut h, "c1", Some(t(14)), false);
    h.commit(&author("h", 8));
    let mut both = b.fork(b"i");
    both.merge(&mut h).unwrap();
    assert_eq!(rewrite(&mut both, &made), None);
    assert_eq!(rewrite(&mut both, &[]), None);
    assert!(both.conflicts(&"c1".into()).unwrap().iter().any(|c| c.field == "checked_out"));
    // A check-in made before check-ins were append-only keeps the edits of its time: its
    // document still syncs.
    let mut old = a.fork(b"j");
    close(&mut old, "c0", Some(t(12)), false);
    old.commit(&author("j", 9));
    close(&mut old, "c0", Some(t(13)), false);
    let mut r = old.get(&"c0".into()).unwrap().unwrap();
    if let Body::CheckIn(c) = &mut r.body {
        c.notes = "left early".into();
    }
    old.update(&r).unwrap();
    old.commit(&author("j", 10));
    assert_eq!(rewrite(&mut old, &made), None);
    assert_eq!(rewrite(&mut old, &[]), None);
    // Closing with a value of another type, or a check-out before the check-in: rewrites.
    let put = |from: &mut Doc, id: &str, field: &str, v: ScalarValue| {
        let mut d = from.fork(b"k");
        let obj = d.record_obj(&id.into()).unwrap().unwrap();
        d.automerge().put(&obj, field, v).unwrap();
        d.commit(&author("k", 11));
        d
    };
    for (id, field, v) in [
        ("c1", "checked_out", ScalarValue::Str("junk".into())),
        ("c1", "checked_out", ScalarValue::Int(1)),
        ("c1", "checked_out", ScalarValue::Str(t(7).to_string().into())),
        ("f1", "done", ScalarValue::Str("yes".into())),
        ("f1", "done", ScalarValue::Int(1)),
    ] {
        let mut d = put(&mut a, id, field, v.clone());
        assert_eq!(rewrite(&mut d, &made), Some((id.into(), format!("changed ({field})"))), "{field} = {v:?}");
    }
    // What a record is, and when it was made, is never written again, whatever its kind: an item
    // made a check-in, or an old check-in made new.
    a.create(&item("i1", "Water")).unwrap();
    a.commit(&author("a", 12));
    let items = a.heads();
    let mut d = put(&mut a, "i1", "kind", ScalarValue::Str("check_in".into()));
    assert_eq!(rewrite(&mut d, &items), Some(("i1".into(), "changed (kind)".into())));
    let mut d = put(&mut a, "c0", "created_at", ScalarValue::Str("2027-01-01T00:00:00Z".into()));
    assert_eq!(rewrite(&mut d, &items), Some(("c0".into(), "changed (created_at)".into())));
    // A close forged to write over less than the writer saw (no value, or only the open one,
    // while the close is among its dependencies): a rewrite, not a second close.
    let mut c = b.fork(b"l");
    close(&mut c, "c1", Some(t(15)), false);
    c.commit(&author("l", 13));
    let honest = c.changes_after(&closed).remove(0).decode();
    let c1 = a.record_obj(&"c1".into()).unwrap().unwrap();
    let opened = match a.automerge().get(&c1, "checked_out").unwrap() {
        Some((_, ObjId::Id(counter, actor, _))) => automerge::legacy::OpId(counter, actor),
        other => panic!("{other:?}"),
    };
    // (Naming the open value, which its writer saw overwritten, is a forged predecessor.)
    let forged =
        "holds a change that overwrites a value its writer did not see at that place (its predecessors were forged)";
    for (pred, verdict) in [(vec![], ("c1", "changed (checked_out)")), (vec![opened], ("d", forged))] {
        let mut change = honest.clone();
        change.operations[0].pred = pred.clone().into();
        let bytes = automerge::Change::from(change).raw_bytes().to_vec();
        let mut d = b.fork(b"m");
        d.apply_checked(&bytes).unwrap();
        assert_eq!(rewrite(&mut d, &closed), Some((verdict.0.into(), verdict.1.into())), "pred {pred:?}");
    }
}

/// A change that names as its predecessor an operation elsewhere than its own key (here, a
/// stock movement's record, from a value put at another key of the root) is applied by
/// Automerge all the same: the movement is gone from the document, and rebuilding the change
/// panics. It is refused as a forged change, naming its actor, not let through or crashed on.
#[test]
fn a_change_with_a_forged_predecessor_is_refused() {
    use automerge::legacy::OpId;
    let fixed = append_only;
    let mut a = Doc::new("d", b"a");
    let movement = Movement { item: "i1".into(), place: "p1".into(), quantity: 100, ..Default::default() };
    a.create(&record("m1", movement)).unwrap();
    a.commit(&author("a", 1));
    let victim = match a.automerge().get(automerge::ROOT, "m1").unwrap() {
        Some((_, ObjId::Id(counter, actor, _))) => OpId(counter, actor),
        other => panic!("{other:?}"),
    };
    let before = a.heads();
    let mut b = a.fork(b"b");
    b.automerge().put(automerge::ROOT, "zzz", "a value at the root").unwrap();
    b.commit(&author("b", 2));
    let mut change = b.changes_after(&before).remove(0).decode();
    change.operations[0].pred = vec![victim].into();
    let bytes = automerge::Change::from(change).raw_bytes().to_vec();
    a.apply_checked(&bytes).unwrap();
    assert!(a.get(&"m1".into()).unwrap().is_none(), "Automerge took it: the movement is gone");
    let r = a.rewrite_since(&before, fixed).unwrap().expect("refused");
    assert!(r.what.contains("does not rebuild as it was made"), "{r:?}");
    // (Rebuilding the changes panicked, so which actor made it is not known here: the door
    // checked every new change's signature before, and the hub names the message's source.)
    assert!(r.actor.is_empty(), "{r:?}");
}

/// A change may close at most `MAX_CLOSINGS` records in the record itself (each is read at the
/// change's dependencies; a hub closes one a change): one more is a rewrite.
#[test]
fn a_change_closes_few_records_in_the_records_themselves() {
    let fixed = append_only;
    let late = Timestamp::parse("2026-12-08T08:00:00Z").unwrap();
    let mut a = Doc::new("d", b"a");
    for n in 0..=MAX_CLOSINGS {
        let mut r =
            record(&format!("c{n:02}"), CheckIn { volunteer: "v1".into(), checked_in: late, ..Default::default() });
        r.meta.created_at = late;
        a.create(&r).unwrap();
    }
    a.commit(&author("a", 1));
    let made = a.heads();
    for (closed, refused) in [(MAX_CLOSINGS, false), (MAX_CLOSINGS + 1, true)] {
        let mut b = a.fork(b"b");
        for n in 0..closed {
            let mut r = b.get(&format!("c{n:02}").as_str().into()).unwrap().unwrap();
            if let Body::CheckIn(c) = &mut r.body {
                c.checked_out = Some(Timestamp::parse("2026-12-08T12:00:00Z").unwrap());
            }
            b.update(&r).unwrap();
        }
        b.commit(&author("b", 2));
        let verdict = b.rewrite_since(&made, fixed).unwrap();
        assert_eq!(verdict.is_some(), refused, "{closed} closings in one change: {verdict:?}");
    }
}

/// A write into an editable record that also names, as a predecessor, a value of a record that
/// is never changed, in a batch that writes where that value lies (a first close of a check-in,
/// or a new record at the root). Automerge applies the predecessor where it meets it, hiding the
/// value, and rebuilds the change without it: as a change, it is refused as forged.
#[test]
fn a_write_that_names_a_value_elsewhere_is_refused_as_forged() {
    use automerge::legacy::OpId;
    let fixed = append_only;
    let late = Timestamp::parse("2026-12-08T08:00:00Z").unwrap();
    let mut a = Doc::new("d", b"a");
    a.create(&item("i1", "Water")).unwrap();
    let mut c = record("c1", CheckIn { volunteer: "v1".into(), checked_in: late, ..Default::default() });
    c.meta.created_at = late;
    a.create(&c).unwrap();
    let movement = Movement { item: "i1".into(), place: "p1".into(), quantity: 100, ..Default::default() };
    a.create(&record("m1", movement)).unwrap();
    a.commit(&author("a", 1));
    let made = a.heads();
    let id_of = |d: &mut Doc, obj: &ObjId, key: &str| match d.automerge().get(obj, key).unwrap() {
        Some((_, ObjId::Id(counter, actor, _))) => OpId(counter, actor),
        other => panic!("{key}: {other:?}"),
    };
    let c1 = a.record_obj(&"c1".into()).unwrap().unwrap();
    let i1 = a.record_obj(&"i1".into()).unwrap().unwrap();
    let checked_in = id_of(&mut a, &c1, "checked_in");
    let m1 = id_of(&mut a, &ROOT, "m1");
    let read = |d: &mut Doc, id: &str| d.get(&id.into()).ok().flatten().map(|r| serde_json::to_value(r.body).unwrap());
    // Each: what else the change writes, the value it hides, and the record that loses it.
    type Also = fn(&mut Doc, &ObjId);
    let close: Also = |d, c1| d.automerge().put(c1, "checked_out", "2026-12-08T12:00:00Z").unwrap();
    let new_record: Also = |d, _| d.create(&item("i2", "Tents")).unwrap();
    for (also, victim, hidden) in [(close, checked_in, "c1"), (new_record, m1, "m1")] {
        let mut b = a.fork(b"b");
        also(&mut b, &c1);
        b.automerge().put(&i1, "name", "Still water").unwrap();
        b.commit(&author("b", 2));
        let honest = b.changes_after(&made).remove(0);
        let mut change = honest.decode();
        let put =
            change.operations.iter_mut().find(|op| op.action == automerge::legacy::OpType::Put("Still water".into()));
        let put = put.expect("the write into the item");
        put.pred = put.pred.iter().cloned().chain([victim.clone()]).collect::<Vec<_>>().into();
        let forged = automerge::Change::from(change);
        let want = read(&mut b, hidden);
        assert!(want.is_some());
        let mut d = a.fork(b"c");
        d.apply_checked(forged.raw_bytes()).unwrap();
        assert_ne!(read(&mut d, hidden), want, "{hidden}: Automerge applied the predecessor where it met it");
        let verdict = d.rewrite_since(&made, fixed).unwrap().expect("refused");
        assert!(verdict.what.contains("its predecessors were forged"), "{verdict:?}");
        // The same change as made: taken.
        let mut e = a.fork(b"e");
        e.apply_checked(honest.raw_bytes()).unwrap();
        assert_eq!(e.rewrite_since(&made, fixed).unwrap(), None);
        assert_eq!(read(&mut e, hidden), want);
    }
}

/// Saved whole by hand under honest changes' hashes (the forger's own, or any member's honest
/// changes, signatures and all), a movement marked overwritten from elsewhere: Automerge loads
/// it with the movement gone, and no change says so. Every way a whole document comes in takes
/// it as its changes make it, the movement there.
#[test]
fn a_document_saved_by_hand_is_taken_as_its_changes_make_it() {
    let fixed = append_only;
    let forged = crate::fuzzing::saved_by_hand("d", [b"a", b"b", b"c"]);
    let (crafted, hidden) = (&forged.bytes, forged.hidden);
    let heads = vec![forged.changes[1].hash()];
    let mut honest = Doc::new("d", b"e");
    for c in &forged.changes {
        honest.apply_checked(c.raw_bytes()).unwrap();
    }
    let read = |d: &mut Doc| d.get(&hidden.into()).ok().flatten().map(|r| serde_json::to_value(r.body).unwrap());
    let want = read(&mut honest);
    assert!(want.is_some());
    // Loaded as saved: the movement is gone.
    let mut loaded = Doc::arrived("d", AutoCommit::load(crafted).unwrap());
    assert_eq!(loaded.heads(), heads);
    assert_eq!(read(&mut loaded), None, "loaded as saved");
    // Taken as its changes make it: whole (a bundle's, a welcome's, a sync message's), ...
    let (whole, changes) = rebuilt("d", AutoCommit::load(crafted).unwrap()).unwrap();
    let mut whole = Doc::arrived("d", whole);
    assert_eq!(whole.rewrite_of_rebuilt(&changes, fixed).unwrap(), None);
    assert_eq!(whole.heads(), heads);
    assert_eq!(read(&mut whole), want, "rebuilt");
    assert_eq!(whole.rewrite_since(&[], fixed).unwrap(), None);
    // ... applied into a document that holds nothing, ...
    let mut applied = Doc::new("d", b"f");
    applied.apply(crafted).unwrap();
    assert_eq!(read(&mut applied), want, "applied");
    let mut checked = Doc::new("d", b"f");
    checked.apply_checked(crafted).unwrap();
    assert_eq!(read(&mut checked), want, "applied, checked");
    // ... or in a sync message to it.
    let mut received = Doc::new("d", b"f");
    let mut msg = automerge::sync::SyncDoc::generate_sync_message(
        &received.automerge().sync(),
        &mut automerge::sync::State::new(),
    )
    .unwrap();
    msg.heads = heads;
    msg.changes = vec![crafted.clone()].into();
    received.receive(&mut automerge::sync::State::new(), msg).unwrap();
    assert_eq!(read(&mut received), want, "received");
}

/// An honest edit, as a hub's coordinators make them through `Doc::update`, on an item or an
/// after-action review: `what` picks the edit, `n` its text.
fn honest_edit(d: &mut Doc, what: u8, n: u16) {
    const WORDS: [&str; 6] = ["water", "eau fraîche", "агуа", "水", "🙂 ok", ""];
    let word = |k: u16| WORDS[usize::from(k) % WORDS.len()];
    let text = format!("{} {}", word(n), word(n / 7));
    let id = if what.is_multiple_of(2) { "i1" } else { "a1" };
    let mut r = d.get(&id.into()).unwrap().unwrap();
    match &mut r.body {
        Body::Item(x) if what.is_multiple_of(4) => x.name = text,
        Body::Item(x) => x.notes = text,
        Body::AfterAction(x) => match what % 5 {
            0 => x.action_items.push(ActionItem { action: text, ..Default::default() }),
            1 => {
                if let Some(a) = x.action_items.get_mut(usize::from(n) % 3) {
                    a.done = !a.done;
                }
            }
            2 => {
                if let Some(a) = x.action_items.get_mut(usize::from(n) % 3) {
                    a.action = text;
                }
            }
            3 => {
                x.action_items.pop();
            }
            _ => x.worked = text,
        },
        _ => unreachable!(),
    }
    d.update(&r).unwrap();
}

/// A document holding an item and an after-action note with two action items, made at hub
/// "a" in one change, then edited apart by two hubs as `steps` say (`honest_edit`) and merged:
/// the document and the heads it was made at.
fn edited_apart(steps: Vec<(usize, u8, u16, bool)>) -> (Doc, Vec<ChangeHash>) {
    let mut held = Doc::new("d", b"a");
    held.create(&item("i1", "Water")).unwrap();
    let first = ActionItem { action: "more water".into(), ..Default::default() };
    held.create(&record(
        "a1",
        AfterAction { title: "Night 1".into(), action_items: vec![first.clone(), first], ..Default::default() },
    ))
    .unwrap();
    held.commit(&author("a", 1));
    let made = held.heads();
    let mut hubs = [held.fork(b"b"), held.fork(b"c")];
    for (who, what, n, commit) in steps {
        honest_edit(&mut hubs[who], what, n);
        if commit {
            hubs[who].commit(&author("b", 2));
        }
    }
    for h in &mut hubs {
        h.commit(&author("b", 3));
        held.merge(h).unwrap();
    }
    (held, made)
}

proptest! {
    /// Honest edits two hubs make apart (names, texts in any script, list items added, ticked,
    /// rewritten, removed) are taken by a hub that held the document and by one that takes it
    /// whole, and both read the same: no check refuses what honest hubs make.
    #[test]
    fn honest_edits_apart_are_taken_held_and_whole(steps in proptest::collection::vec((0..2usize, any::<u8>(), any::<u16>(), any::<bool>()), 0..24)) {
        let fixed = append_only;
        let (mut held, made) = edited_apart(steps);
        prop_assert_eq!(held.rewrite_since(&made, fixed).unwrap(), None);
        let (whole, _) = rebuilt("d", AutoCommit::load(&held.save()).unwrap()).unwrap();
        let mut whole = Doc::arrived("d", whole);
        prop_assert_eq!(whole.rewrite_since(&[], fixed).unwrap(), None);
        for id in ["i1", "a1"] {
            prop_assert_eq!(whole.get(&id.into()).unwrap(), held.get(&id.into()).unwrap());
        }
    }
}

proptest! {
    /// A predecessor forged into the last of two hubs' honest edits (any operation of the
    /// document's, added or instead): following the document as the changes make it, and
    /// reading each change at its dependencies, reach one verdict, for a hub that held the
    /// document and for one new to it.
    #[test]
    fn forged_predecessors_are_judged_alike_followed_or_read(
        steps in proptest::collection::vec((0..2usize, any::<u8>(), any::<u16>(), any::<bool>()), 1..16),
        at in any::<proptest::sample::Index>(),
        named in any::<proptest::sample::Index>(),
        instead in any::<bool>(),
        on_top in proptest::option::of((any::<u8>(), any::<u16>())),
    ) {
        use automerge::legacy::OpId;
        let fixed = append_only;
        let (mut held, made) = edited_apart(steps);
        // What the document was made with: every change but those after it was made.
        let since: Vec<ChangeHash> = held.changes_after(&made).iter().map(|c| c.hash()).collect();
        let base: Vec<_> = held.changes_after(&[]).into_iter().filter(|c| !since.contains(&c.hash())).collect();
        // Or the last, one made on top of both.
        if let Some((what, n)) = on_top {
            honest_edit(&mut held, what, n);
            held.commit(&author("a", 4));
        }
        let mut after = held.changes_after(&made);
        // Every operation of the document, where it lies: the forged predecessor is one at the
        // operation's own place if any (others make changes that do not rebuild as made).
        let place = |op: &automerge::legacy::Op| {
            (op.obj.clone(), match &op.key {
                automerge::legacy::Key::Map(k) => Some(k.to_string()),
                automerge::legacy::Key::Seq(_) => None,
            })
        };
        let all: Vec<_> = base
            .iter()
            .chain(&after)
            .flat_map(|c| {
                let start = c.start_op().get();
                c.decode().operations.into_iter().enumerate().map(move |(i, op)| (OpId(start + i as u64, c.actor_id().clone()), place(&op)))
            })
            .collect();
        prop_assume!(!after.is_empty());
        let mut last = after.pop().unwrap().decode();
        prop_assume!(!last.operations.is_empty());
        let k = at.index(last.operations.len());
        let op = &mut last.operations[k];
        let here: Vec<&OpId> = all.iter().filter(|(_, p)| *p == place(op)).map(|(id, _)| id).collect();
        let candidates: Vec<&OpId> = if here.is_empty() { all.iter().map(|(id, _)| id).collect() } else { here };
        let mut pred: Vec<OpId> = if instead { Vec::new() } else { op.pred.iter().cloned().collect() };
        pred.push(candidates[named.index(candidates.len())].clone());
        op.pred = pred.into();
        after.push(automerge::Change::from(last));
        let judged = |read: bool| {
            READ_EVERY_CHANGE.with(|r| r.set(read));
            let verdict = |doc: &mut Doc, changes: &[automerge::Change], since: &[ChangeHash]| {
                for c in changes {
                    doc.apply_checked(c.raw_bytes()).ok()?;
                }
                Some(doc.rewrite_since(since, fixed).ok()?.map(|r| r.what))
            };
            let mut new = Doc::new("d", b"f");
            let anew = verdict(&mut new, &[base.clone(), after.clone()].concat(), &[]);
            let mut had = Doc::new("d", b"f");
            let had_it = verdict(&mut had, &base, &[]).and_then(|_| verdict(&mut had, &after, &made));
            READ_EVERY_CHANGE.with(|r| r.set(false));
            (anew, had_it)
        };
        prop_assert_eq!(judged(false), judged(true));
    }
}

/// A change Automerge panics applying (an operation into an object that does not exist, or
/// naming an actor it has never seen) is an error, however it comes: in a sync message, applied,
/// or applied into a document that holds nothing.
#[test]
fn a_change_automerge_panics_on_is_an_error() {
    use automerge::legacy::{ObjectId, OpId};
    let mut a = Doc::new("d", b"a");
    a.create(&item("i1", "Water")).unwrap();
    a.commit(&author("a", 1));
    let made = a.heads();
    let mut b = a.fork(b"b");
    let i1 = b.record_obj(&"i1".into()).unwrap().unwrap();
    b.automerge().put(&i1, "name", "Still water").unwrap();
    b.commit(&author("b", 2));
    let honest = b.changes_after(&made).remove(0).decode();
    let nowhere = |op: &mut automerge::legacy::Op| op.obj = ObjectId::Id(OpId(999_999, ActorId::from(b"b".as_slice())));
    let stranger = |op: &mut automerge::legacy::Op| op.pred = vec![OpId(1, ActorId::from(b"zz".as_slice()))].into();
    for forge in [nowhere, stranger] {
        let mut change = honest.clone();
        forge(&mut change.operations[0]);
        let bytes = automerge::Change::from(change).raw_bytes().to_vec();
        let mut d = a.fork(b"c");
        assert!(d.apply_checked(&bytes).is_err());
        let mut d = a.fork(b"c");
        let mut msg =
            automerge::sync::SyncDoc::generate_sync_message(&d.automerge().sync(), &mut automerge::sync::State::new())
                .unwrap();
        msg.heads = vec![];
        msg.changes = vec![bytes.clone()].into();
        assert!(d.receive(&mut automerge::sync::State::new(), msg).is_err());
    }
}

/// Every hub refuses `rest` as forged: one that held `held` (changes after `base`) and takes
/// `rest`, one new to the document that takes all at once, and one that takes a document
/// holding them all whole; each takes `honest` (changes after `base`) instead.
fn refused_by_every_hub_alike(
    base: &mut Doc,
    held: &[&automerge::Change],
    rest: &[&automerge::Change],
    honest: &[&automerge::Change],
) {
    let refused = |verdict: Option<Rewrite>| verdict.is_some_and(|r| r.what.contains("forged"));
    let made = base.heads();
    let mut had = base.fork(b"c");
    for c in held {
        had.apply_checked(c.raw_bytes()).unwrap();
    }
    let before = had.heads();
    for c in rest {
        had.apply_checked(c.raw_bytes()).unwrap();
    }
    assert!(refused(had.rewrite_since(&before, append_only).unwrap()), "a hub that held {} of them", held.len());
    let mut fresh = Doc::new("d", b"f");
    for c in base.changes_after(&[]).iter().chain(held.iter().copied()).chain(rest.iter().copied()) {
        fresh.apply_checked(c.raw_bytes()).unwrap();
    }
    assert!(refused(fresh.rewrite_since(&[], append_only).unwrap()), "a hub new to the document");
    let (whole, changes) = rebuilt("d", AutoCommit::load(&had.save()).unwrap()).unwrap();
    assert!(refused(Doc::arrived("d", whole).rewrite_of_rebuilt(&changes, append_only).unwrap()), "taken whole");
    let mut taken = base.fork(b"c");
    for c in honest {
        taken.apply_checked(c.raw_bytes()).unwrap();
    }
    assert_eq!(taken.rewrite_since(&made, append_only).unwrap(), None);
}

/// A change naming as overwritten a value at its own place that its writer never saw (made
/// apart, by a change it does not depend on): Automerge takes it and the value is gone without a
/// conflict. Every hub refuses it alike: one that held the value, one that gets both changes at
/// Whether records of a kind are never changed.
fn append_only(kind: &str) -> bool {
    Kind::parse(kind).is_ok_and(|k| k.append_only())
}

/// A document holding item i1, made in one change at hub "a": the document, its heads, and the
/// item's object.
fn one_item() -> (Doc, Vec<ChangeHash>, ObjId) {
    let mut base = Doc::new("d", b"a");
    base.create(&item("i1", "Water")).unwrap();
    base.commit(&author("a", 1));
    let made = base.heads();
    let i1 = base.record_obj(&"i1".into()).unwrap().unwrap();
    (base, made, i1)
}

/// once, and one that takes a document holding both whole.
#[test]
fn a_predecessor_its_writer_never_saw_is_refused_by_every_hub_alike() {
    use automerge::legacy::OpId;
    let (mut base, made, i1) = one_item();
    // One hub renames the item.
    let mut h = base.fork(b"h");
    h.automerge().put(&i1, "name", "Still water").unwrap();
    h.commit(&author("h", 2));
    let renamed = h.changes_after(&made).remove(0);
    let x = match h.automerge().get(&i1, "name").unwrap() {
        Some((_, ObjId::Id(counter, actor, _))) => OpId(counter, actor),
        other => panic!("{other:?}"),
    };
    // Another, apart, writes its unit, then the name, naming the first hub's name as what it
    // overwrites (its counter is past it, so the change rebuilds as made).
    let mut b = base.fork(b"z");
    b.automerge().put(&i1, "unit", "crate").unwrap();
    b.commit(&author("z", 3));
    b.automerge().put(&i1, "name", "Sparkling water").unwrap();
    b.commit(&author("z", 4));
    let apart = b.changes_after(&made);
    let mut forged = apart[1].decode();
    forged.operations[0].pred = vec![x].into();
    let forged = automerge::Change::from(forged);
    refused_by_every_hub_alike(&mut base, &[&renamed], &[&apart[0], &forged], &[&renamed, &apart[0], &apart[1]]);
}

/// A change naming as overwritten a value its writer had already seen overwritten (made by a
/// change it depends on, but no longer there at its dependencies): Automerge takes it as made.
/// Every hub refuses it alike: one that held the first value before, one that gets all at once,
/// and one that takes the document whole.
#[test]
fn a_predecessor_already_overwritten_is_refused_by_every_hub_alike() {
    use automerge::legacy::OpId;
    let (mut base, made, i1) = one_item();
    let name_id = |d: &mut Doc| match d.automerge().get(&i1, "name").unwrap() {
        Some((_, ObjId::Id(counter, actor, _))) => OpId(counter, actor),
        other => panic!("{other:?}"),
    };
    let mut h = base.fork(b"h");
    let first = name_id(&mut h);
    h.automerge().put(&i1, "name", "Still water").unwrap();
    h.commit(&author("h", 2));
    h.automerge().put(&i1, "name", "Sparkling water").unwrap();
    h.commit(&author("h", 3));
    let two = h.changes_after(&made);
    let mut forged = two[1].decode();
    let mut pred: Vec<OpId> = forged.operations[0].pred.iter().cloned().collect();
    pred.push(first);
    forged.operations[0].pred = pred.into();
    let forged = automerge::Change::from(forged);
    refused_by_every_hub_alike(&mut base, &[], &[&two[0], &forged], &[&two[0], &two[1]]);
}

/// A change out of its writer's line: one that skips its writer's previous change (does not
/// name it among its dependencies), or whose operations are numbered at or below those of a
/// change it depends on. No hub makes either, and reading what a change's writer saw counts on
/// neither happening. Refused alike whether the writer's previous change came with it or was
/// held before.
#[test]
fn a_change_out_of_its_writers_line_is_refused() {
    let fixed = append_only;
    let (mut base, made, i1) = one_item();
    let mut b = base.fork(b"z");
    for unit in ["crate", "box"] {
        b.automerge().put(&i1, "unit", unit).unwrap();
        b.commit(&author("z", 2));
    }
    let two = b.changes_after(&made);
    let mut astray = two[1].decode();
    astray.deps = made.clone();
    astray.operations[0].pred = vec![].into();
    let astray = automerge::Change::from(astray);
    // The writer's first change, its operations numbered from 1 (those of the change it
    // depends on are too).
    let mut early = two[0].decode();
    early.start_op = std::num::NonZeroU64::MIN;
    let early = automerge::Change::from(early);
    // (Automerge cannot rebuild that one as made: refused either way.)
    let follows = "does not follow its writer's previous change";
    let cases = [
        (&two[..1], &astray, "skips its writer's previous change", &[follows][..]),
        (&[][..], &early, "numbered too low", &[follows, "does not rebuild as it was made"][..]),
    ];
    for (first, forged, what, says) in cases {
        let mut together = base.fork(b"c");
        for c in first.iter().chain([forged]) {
            together.apply_checked(c.raw_bytes()).unwrap();
        }
        let verdict = together.rewrite_since(&made, fixed).unwrap().expect(what);
        assert!(says.iter().any(|s| verdict.what.contains(s)), "{what}: {verdict:?}");
        let mut apart = base.fork(b"c");
        for c in first {
            apart.apply_checked(c.raw_bytes()).unwrap();
        }
        let held = apart.heads();
        assert_eq!(apart.rewrite_since(&made, fixed).unwrap(), None);
        apart.apply_checked(forged.raw_bytes()).unwrap();
        let verdict = apart.rewrite_since(&held, fixed).unwrap().expect(what);
        assert!(says.iter().any(|s| verdict.what.contains(s)), "{what}, held apart: {verdict:?}");
    }
    let mut honest = base.fork(b"c");
    for c in &two {
        honest.apply_checked(c.raw_bytes()).unwrap();
    }
    assert_eq!(honest.rewrite_since(&made, fixed).unwrap(), None);
}

/// Operations no hub makes are refused, whatever they write into: a counter's increment
/// (Automerge takes one that names a value that is no counter as overwriting it, which hubs
/// following the document and hubs reading it would judge apart), a mark in a text, a value put
/// on a character of a text (Automerge reads a text's places by width, not by character).
#[test]
fn an_operation_no_hub_makes_is_refused() {
    use automerge::marks::{ExpandMark, Mark};
    let fixed = append_only;
    let (mut base, made, i1) = one_item();
    let notes = match base.automerge().get(&i1, "notes").unwrap() {
        Some((automerge::Value::Object(ObjType::Text), t)) => t,
        other => panic!("notes are a text: {other:?}"),
    };
    // An increment of the item's name, made from an honest rename.
    let mut h = base.fork(b"h");
    h.automerge().put(&i1, "name", "Still water").unwrap();
    h.commit(&author("h", 2));
    let mut increment = h.changes_after(&made).remove(0).decode();
    increment.operations[0].action = automerge::legacy::OpType::Increment(1);
    let increment = automerge::Change::from(increment);
    let mut marked = base.fork(b"m");
    marked.automerge().mark(&notes, Mark::new("bold".into(), true, 0, 4), ExpandMark::None).unwrap();
    marked.commit(&author("m", 3));
    let mut put = base.fork(b"p");
    put.automerge().put(&notes, 0, "K").unwrap();
    put.commit(&author("p", 4));
    for (what, change) in [
        ("an increment", increment),
        ("a mark", marked.changes_after(&made).remove(0)),
        ("a put on a character", put.changes_after(&made).remove(0)),
    ] {
        let mut d = base.fork(b"c");
        d.apply_checked(change.raw_bytes()).unwrap();
        let verdict = d.rewrite_since(&made, fixed).unwrap().unwrap_or_else(|| panic!("{what} taken"));
        assert!(verdict.what.contains("no hub makes"), "{what}: {verdict:?}");
    }
    // Texts written as hubs write them are taken.
    let mut honest = base.fork(b"c");
    let mut r = honest.get(&"i1".into()).unwrap().unwrap();
    if let Body::Item(i) = &mut r.body {
        i.notes = "Keep it dry".into();
    }
    honest.update(&r).unwrap();
    honest.commit(&author("c", 5));
    assert_eq!(honest.rewrite_since(&made, fixed).unwrap(), None);
}

/// A batch that writes into more records than are placed one by one (`PLACES_BEFORE_A_WALK`):
/// every object in view is placed in one walk of the document, and the verdict is the one
/// Automerge's own reading of each place gives: a movement's quantity rewritten among a
/// hundred honest renames, in the middle of them or as the last write, is refused; the renames
/// alone, and notes rewritten in place, are taken.
#[test]
fn a_rewrite_among_many_writes_is_found_when_every_object_is_placed_at_once() {
    let mut base = Doc::new("d", b"a");
    for i in 0..120 {
        base.create(&item(&format!("i{i}"), "Water")).unwrap();
    }
    base.create(&record(
        "mv0",
        Movement {
            item: "i0".into(),
            kind: MovementKind::Receive,
            quantity: 20,
            place: "hall".into(),
            ..Default::default()
        },
    ))
    .unwrap();
    base.commit(&author("a", 1));
    let made = base.heads();
    let edit = |d: &mut Doc, i: usize| {
        let mut r = d.get(&format!("i{i}").as_str().into()).unwrap().unwrap();
        if let Body::Item(it) = &mut r.body {
            it.name = format!("Water {i}");
            it.notes = format!("keep {i} dry");
        }
        d.update(&r).unwrap();
    };
    let mv = base.record_obj(&"mv0".into()).unwrap().unwrap();
    for rewrite_at in [None, Some(50), Some(120)] {
        let mut h = base.fork(b"h");
        for i in 0..120 {
            if rewrite_at == Some(i) {
                h.automerge().put(&mv, "quantity", 2).unwrap();
            }
            edit(&mut h, i);
        }
        if rewrite_at == Some(120) {
            h.automerge().put(&mv, "quantity", 2).unwrap();
        }
        h.commit(&author("h", 2));
        let mut d = base.fork(b"c");
        for c in h.changes_after(&made) {
            d.apply_checked(c.raw_bytes()).unwrap();
        }
        let verdict = d.rewrite_since(&made, append_only).unwrap();
        match rewrite_at {
            None => assert_eq!(verdict, None),
            Some(at) => assert!(verdict.is_some_and(|r| r.record.as_str() == "mv0"), "rewritten at {at}"),
        }
    }
}
