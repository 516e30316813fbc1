//! Rules every face shares, through the hub API: the request loop from request to fulfilled,
//! lists that show amended records, confidential grievances withheld from lists, search and
//! history, the passphrase rule, and the removal of a store that never came to be.

mod util;

use aidmesh_hub::model::matching::Reason;
use aidmesh_hub::model::views::Source;
use aidmesh_hub::model::{Body, FlowStatus, Kind};
use aidmesh_hub::{AllocationStep, Hub, InitOptions};
use serde_json::json;
use util::*;

fn status(h: &Hub, id: &str) -> FlowStatus {
    match h.get(id).unwrap().body {
        Body::Request(r) => r.status,
        Body::Offer(o) => o.status,
        b => panic!("{id} is a {:?}", b.kind()),
    }
}

fn level(h: &Hub, item: &str) -> i64 {
    h.stock(Some(item)).unwrap().iter().map(|s| s.quantity).sum()
}

#[test]
fn a_request_by_category_is_matched_allocated_delivered_and_fulfilled() {
    let mut t = new_hub("North", 1);
    let hall = add(&mut t.hub, Kind::Place, json!({"name": "Hall"}));
    let blankets = add(&mut t.hub, Kind::Item, json!({"name": "Blanket", "unit": "piece", "category": "shelter"}));
    add(&mut t.hub, Kind::Movement, json!({"item": blankets, "type": "receive", "quantity": 30, "place": hall}));
    let req = add(
        &mut t.hub,
        Kind::Request,
        json!({"description": "Blankets for the night shelter", "category": "shelter", "quantity": 20, "place": hall}),
    );

    // The suggestion says what, from where, and how much of what is needed.
    let s = t.hub.suggestions(Some(&req), 5).unwrap();
    assert_eq!(s.len(), 1, "{s:?}");
    let s = &s[0];
    assert_eq!((s.request_label.as_str(), s.source_label.as_str()), ("Blankets for the night shelter", "Blanket"));
    assert_eq!((s.quantity, s.needed, s.place_label.as_deref()), (20, 20, Some("Hall")));
    assert!(s.reasons.contains(&Reason::SameCategory) && s.reasons.contains(&Reason::SamePlace), "{:?}", s.reasons);
    assert_eq!(s.source, Source::Stock { item: blankets.as_str().into(), place: hall.as_str().into() });

    let a = t.hub.allocate(&req, &s.source, s.quantity).unwrap().id().to_string();
    assert_eq!(status(&t.hub, &req), FlowStatus::Matched);
    assert!(t.hub.suggestions(Some(&req), 5).unwrap().is_empty(), "an allocated request needs nothing more");
    t.hub.advance_allocation(&a, AllocationStep::InTransit).unwrap();
    assert_eq!(status(&t.hub, &req), FlowStatus::InTransit);
    assert_eq!(level(&t.hub, &blankets), 30, "stock leaves on delivery, not before");
    t.hub.advance_allocation(&a, AllocationStep::Delivered).unwrap();
    assert_eq!(level(&t.hub, &blankets), 10);
    assert_eq!(status(&t.hub, &req), FlowStatus::Fulfilled);

    // A settled allocation takes no further step, and nothing changes.
    let e = t.hub.advance_allocation(&a, AllocationStep::Released).unwrap_err();
    assert!(e.to_string().contains("already delivered"), "{e}");
    assert_eq!(level(&t.hub, &blankets), 10);
    let e = t.hub.advance_allocation(&req, AllocationStep::Delivered).unwrap_err();
    assert_eq!(e.code(), "not_found", "{e}");
}

#[test]
fn delivery_from_an_offer_uses_it_up_and_a_release_reopens_the_request() {
    let mut t = new_hub("North", 1);
    let req = add(&mut t.hub, Kind::Request, json!({"description": "Water", "category": "water", "quantity": 10}));
    let offer =
        add(&mut t.hub, Kind::Offer, json!({"description": "Corner shop: water", "category": "water", "quantity": 10}));
    let s = &t.hub.suggestions(Some(&req), 5).unwrap()[0];
    assert_eq!(s.source_label, "Corner shop: water");
    let a = t.hub.allocate(&req, &s.source, 10).unwrap().id().to_string();
    t.hub.advance_allocation(&a, AllocationStep::Released).unwrap();
    assert_eq!(status(&t.hub, &req), FlowStatus::Open, "nothing holds for it any more");
    let b = t.hub.allocate(&req, &Source::Offer { offer: offer.as_str().into() }, 10).unwrap().id().to_string();
    t.hub.advance_allocation(&b, AllocationStep::Delivered).unwrap();
    assert_eq!((status(&t.hub, &req), status(&t.hub, &offer)), (FlowStatus::Fulfilled, FlowStatus::Fulfilled));

    // Delivering stock that is not there is refused, and the allocation stays active.
    let hall = add(&mut t.hub, Kind::Place, json!({"name": "Hall"}));
    let soap = add(&mut t.hub, Kind::Item, json!({"name": "Soap", "unit": "bar"}));
    let r2 = add(&mut t.hub, Kind::Request, json!({"item": soap, "quantity": 3}));
    let c = t.hub.allocate(&r2, &Source::Stock { item: soap.as_str().into(), place: hall.as_str().into() }, 3).unwrap();
    let e = t.hub.advance_allocation(c.id().as_str(), AllocationStep::Delivered).unwrap_err();
    assert_eq!(e.code(), "invalid", "{e}");
    match t.hub.get(c.id().as_str()).unwrap().body {
        Body::Allocation(a) => assert_eq!(a.status, aidmesh_hub::model::AllocationStatus::Active),
        _ => unreachable!(),
    }

    // Cancelling releases what is promised; nothing more is sent or delivered for it until it
    // is reopened; other statuses are not set by hand.
    assert_eq!(status(&t.hub, &r2), FlowStatus::Matched);
    t.hub.set_request_status(&r2, FlowStatus::Cancelled).unwrap();
    assert_eq!(status(&t.hub, &r2), FlowStatus::Cancelled);
    match t.hub.get(c.id().as_str()).unwrap().body {
        Body::Allocation(a) => assert_eq!(a.status, aidmesh_hub::model::AllocationStatus::Released),
        _ => unreachable!(),
    }
    let src = Source::Stock { item: soap.as_str().into(), place: hall.as_str().into() };
    let e = t.hub.allocate(&r2, &src, 1).unwrap_err();
    assert!(e.to_string().contains("cancelled"), "{e}");
    let e = t.hub.set_request_status(&r2, FlowStatus::Fulfilled).unwrap_err();
    assert!(e.to_string().contains("follows from its allocations"), "{e}");
    t.hub.set_request_status(&r2, FlowStatus::Open).unwrap();
    assert_eq!(status(&t.hub, &r2), FlowStatus::Open);
    // A fulfilled offer takes no new promise.
    let e = t.hub.allocate(&r2, &Source::Offer { offer: offer.as_str().into() }, 1).unwrap_err();
    assert!(e.to_string().contains("fulfilled"), "{e}");
}

#[test]
fn a_delivery_tried_again_issues_the_stock_once_and_settles_the_request() {
    let mut t = new_hub("North", 1);
    let hall = add(&mut t.hub, Kind::Place, json!({"name": "Hall"}));
    let soap = add(&mut t.hub, Kind::Item, json!({"name": "Soap", "unit": "bar", "category": "hygiene"}));
    add(&mut t.hub, Kind::Movement, json!({"item": soap, "type": "receive", "quantity": 10, "place": hall}));
    let req = add(&mut t.hub, Kind::Request, json!({"item": soap, "quantity": 4}));
    let src = Source::Stock { item: soap.as_str().into(), place: hall.as_str().into() };
    let a = t.hub.allocate(&req, &src, 4).unwrap().id().to_string();
    t.hub.advance_allocation(&a, AllocationStep::Delivered).unwrap();
    t.hub.advance_allocation(&a, AllocationStep::Delivered).unwrap();
    assert_eq!(level(&t.hub, &soap), 6, "issued once");
    assert_eq!(status(&t.hub, &req), FlowStatus::Fulfilled);
    // In transit is refused for a request that is no longer open.
    let b = t.hub.allocate(&req, &src, 1);
    assert!(b.is_err(), "a fulfilled request takes no new promise");
}

#[test]
fn lists_show_amended_records_with_a_mark() {
    let mut t = new_hub("North", 1);
    let inc = add(
        &mut t.hub,
        Kind::Incident,
        json!({"occurred": "2026-11-25T09:40:00Z", "severity": 3, "description": "Crush at gate 2"}),
    );
    let other = add(
        &mut t.hub,
        Kind::Incident,
        json!({"occurred": "2026-11-25T09:50:00Z", "severity": 1, "description": "Lost child found"}),
    );
    t.hub.amend(&inc, "severity", json!(4), "two people hurt, not one").unwrap();
    let list = t.hub.list(Kind::Incident, 10, 0).unwrap();
    let row = list.iter().find(|l| l.id().as_str() == inc).unwrap();
    match &row.body {
        Body::Incident(i) => assert_eq!(i.severity, 4),
        _ => unreachable!(),
    }
    assert!(row.amended);
    assert!(!list.iter().find(|l| l.id().as_str() == other).unwrap().amended);
    // As JSON (the command's --json, the app), the mark sits beside the fields.
    let j = serde_json::to_value(row).unwrap();
    assert_eq!((j["severity"].clone(), j["amended"].clone()), (json!(4), json!(true)));
    // The stored record is untouched.
    match &t.hub.stored(Kind::Incident, 10, 0).unwrap().iter().find(|r| r.id().as_str() == inc).unwrap().body {
        Body::Incident(i) => assert_eq!(i.severity, 3),
        _ => unreachable!(),
    }
}

#[test]
fn a_confidential_grievance_is_withheld_from_lists_search_show_and_history() {
    let mut t = new_hub("North", 1);
    t.hub.act_as("heron");
    let g = add(
        &mut t.hub,
        Kind::Grievance,
        json!({"summary": "Marshal shouted at volunteers", "details": "names inside", "confidential": true,
               "readers": ["heron"]}),
    );
    let listed = |h: &Hub| {
        serde_json::to_string(&h.list(Kind::Grievance, 10, 0).unwrap()).unwrap()
            + &format!("{:?}", h.search("marshal", None, 10).unwrap())
    };
    assert!(listed(&t.hub).contains("Marshal shouted"), "a reader reads it");
    t.hub.act_as("fox");
    let seen = listed(&t.hub);
    assert!(!seen.contains("shouted") && !seen.contains("names inside"), "{seen}");
    assert!(seen.contains("[confidential]"), "the list says something is withheld: {seen}");
    let v = serde_json::to_string(&t.hub.show(&g).unwrap()).unwrap();
    assert!(!v.contains("shouted") && !v.contains("names inside"), "{v}");
    assert!(v.contains(r#""readers":[]"#), "nor who may read it: {v}");
    assert!(t.hub.history(&g).unwrap().is_empty());
    // Nor can a non-reader change it (to make themselves a reader), nor read it in an export.
    let e = t.hub.update(&g, fields(json!({"readers": ["fox"]}))).unwrap_err();
    assert_eq!(e.code(), "invalid", "{e}");
    t.hub.act_as("heron");
    assert!(serde_json::to_string(&t.hub.show(&g).unwrap()).unwrap().contains("Marshal shouted"), "unchanged");
    t.hub.act_as("fox");
    let mut export = Vec::new();
    t.hub.export_json(&mut export).unwrap();
    let export = String::from_utf8(export).unwrap();
    assert!(!export.contains("shouted") && !export.contains("names inside"), "{export}");

    // An open grievance that names someone is withheld from them too, search included.
    t.hub.act_as("heron");
    let open = add(
        &mut t.hub,
        Kind::Grievance,
        json!({"summary": "Kitchen rota unfair to the night shift", "involved": ["elk"]}),
    );
    assert_eq!(t.hub.search("rota", None, 10).unwrap().len(), 1);
    t.hub.act_as("elk");
    assert!(t.hub.search("rota", None, 10).unwrap().is_empty(), "the person it concerns does not find it");
    // Whoever may not read it gets it back from an update as they may read it.
    t.hub.act_as("heron");
    let r = t.hub.update(&open, fields(json!({"status": "investigating"}))).unwrap();
    assert!(serde_json::to_string(&r).unwrap().contains("Kitchen rota"), "a reader reads what they changed");
}

#[test]
fn a_short_or_guessable_passphrase_is_refused_by_every_face_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.aidmesh");
    let clock = aidmesh_hub::ManualClock::at(t0());
    let opts = InitOptions { hub_name: "North".into(), location: String::new(), pin: None };
    let e = Hub::init(&path, "short", &opts, config("coord", &clock, 1)).err().unwrap();
    assert_eq!(e.code(), "invalid");
    assert!(e.to_string().contains("at least 8 characters"), "{e}");
    assert!(!path.exists());
    // Long enough, yet among the first guesses an attacker with the file would try.
    for weak in ["password1", "12345678", "qwertyuiop", "aidmesh hub", "kestrel1"] {
        let e = Hub::init(&path, weak, &opts, config("coord", &clock, 1)).err().unwrap();
        assert_eq!(e.code(), "invalid", "{weak}");
        assert!(e.to_string().contains("too easy to guess"), "{weak}: {e}");
        assert!(!path.exists(), "{weak} created a store");
    }
    let mut hub = Hub::init(&path, "long enough, kestrel", &opts, config("coord", &clock, 1)).unwrap();
    let e = hub.change_passphrase("short").unwrap_err();
    assert!(e.to_string().contains("at least 8 characters"), "{e}");
    let e = hub.change_passphrase("password123").unwrap_err();
    assert!(e.to_string().contains("too easy to guess"), "{e}");
    // A store that never came to be goes with all its files.
    hub.discard().unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing is left in the folder");
}

#[test]
fn notes_rewritten_on_two_hubs_apart_are_flagged_with_both_versions_never_mixed() {
    let mut a = new_hub("North", 1);
    let mut b = new_hub("South", 2);
    join(&mut a.hub, &mut b.hub);
    let item = add(&mut a.hub, Kind::Item, json!({"name": "Tarpaulin", "unit": "piece", "notes": "blue"}));
    merge_into(&mut a.hub, &mut b.hub);
    a.hub.update(&item, fields(json!({"notes": "Wool, for the night shelter only"}))).unwrap();
    b.hub.update(&item, fields(json!({"notes": "Give two per family at the gate"}))).unwrap();
    merge_into(&mut a.hub, &mut b.hub);
    merge_into(&mut b.hub, &mut a.hub);
    for h in [&mut a.hub, &mut b.hub] {
        let v = h.show(&item).unwrap();
        let Body::Item(i) = &v.record.body else { unreachable!() };
        assert!(
            ["Wool, for the night shelter only", "Give two per family at the gate"].contains(&i.notes.as_str()),
            "one writer's version, not a mix: {:?}",
            i.notes
        );
        let notes: Vec<&serde_json::Value> =
            v.conflicts.iter().filter(|c| c.field == "notes").flat_map(|c| &c.values).collect();
        assert_eq!(notes.len(), 2, "{:?}", v.conflicts);
        assert!(
            h.overview()
                .unwrap()
                .field_conflicts
                .iter()
                .any(|c| c.id == item && c.label == "Tarpaulin" && c.fields == 1),
            "the overview flags it"
        );
    }
    // Keeping one settles it, on both hubs once they meet — the one it reads now as well.
    let Body::Item(now) = a.hub.get(&item).unwrap().body else { unreachable!() };
    a.hub.update(&item, fields(json!({"notes": now.notes}))).unwrap();
    assert!(a.hub.show(&item).unwrap().conflicts.is_empty());
    merge_into(&mut a.hub, &mut b.hub);
    assert!(b.hub.show(&item).unwrap().conflicts.is_empty());
    assert!(b.hub.overview().unwrap().field_conflicts.is_empty());
}

#[test]
fn suggestions_for_every_request_are_a_screen_s_worth_most_urgent_first() {
    let mut t = new_hub("North", 1);
    let hall = add(&mut t.hub, Kind::Place, json!({"name": "Hall"}));
    let water = add(&mut t.hub, Kind::Item, json!({"name": "Water", "unit": "bottle", "category": "water"}));
    add(&mut t.hub, Kind::Movement, json!({"item": water, "type": "receive", "quantity": 1000, "place": hall}));
    let n = aidmesh_hub::MAX_SUGGESTIONS + 20;
    for i in 0..n {
        let urgency = if i == n - 1 { "critical" } else { "normal" };
        add(
            &mut t.hub,
            Kind::Request,
            json!({"description": format!("Water {i}"), "item": water, "quantity": 1, "urgency": urgency}),
        );
    }
    let s = t.hub.suggestions(None, 1).unwrap();
    assert_eq!(s.len(), aidmesh_hub::MAX_SUGGESTIONS);
    assert_eq!(s[0].request_label, format!("Water {}", n - 1), "the critical request comes first");
    assert!(s.iter().all(|x| x.source_label == "Water" && x.place_label.as_deref() == Some("Hall")));
}

#[test]
fn a_grievance_keeps_dated_steps_that_only_grow_and_only_its_readers_add() {
    let mut t = new_hub("North", 1);
    t.hub.act_as("heron");
    let g = add(
        &mut t.hub,
        Kind::Grievance,
        json!({"summary": "Rota unfair", "confidential": true, "readers": ["heron"], "facilitator": "heron"}),
    );
    let steps = |h: &Hub| match h.get(&g).unwrap().body {
        Body::Grievance(g) => g.steps.iter().map(|s| (s.by.clone(), s.note.clone(), s.status)).collect::<Vec<_>>(),
        _ => unreachable!(),
    };
    use aidmesh_hub::model::GrievanceStatus as S;
    t.clock.advance_ms(60_000);
    t.hub.grievance_step(&g, "Spoke with both sides", Some(S::Investigating)).unwrap();
    // A move of status by a plain update (any face) adds its step too, with the resolution.
    t.clock.advance_ms(60_000);
    t.hub.update(&g, fields(json!({"status": "resolved", "resolution": "Rota redone with the night shift"}))).unwrap();
    assert_eq!(
        steps(&t.hub),
        vec![
            ("heron".into(), "Spoke with both sides".into(), S::Investigating),
            ("heron".into(), "Rota redone with the night shift".into(), S::Resolved),
        ]
    );
    let Body::Grievance(got) = t.hub.get(&g).unwrap().body else { unreachable!() };
    assert!(got.steps[0].at < got.steps[1].at, "each step is dated");
    // Steps are never rewritten, and a step says something.
    let e = t.hub.update(&g, fields(json!({"steps": []}))).unwrap_err();
    assert!(e.to_string().contains("only ever added"), "{e}");
    let e = t.hub.grievance_step(&g, "  ", None).unwrap_err();
    assert_eq!(e.code(), "invalid");
    assert_eq!(steps(&t.hub).len(), 2, "refusals change nothing");
    // Someone who may not read it adds no step.
    t.hub.act_as("fox");
    assert_eq!(t.hub.grievance_step(&g, "I looked", None).unwrap_err().code(), "invalid");
    t.hub.act_as("heron");
    assert_eq!(steps(&t.hub).len(), 2);
}

#[test]
fn an_action_marked_done_is_stamped_and_a_handoff_is_acknowledged_once() {
    let mut t = new_hub("North", 1);
    let note = add(
        &mut t.hub,
        Kind::AfterAction,
        json!({"title": "Night 1", "action_items": [{"action": "More water", "owner": "fox"}]}),
    );
    let items = |h: &Hub| match h.get(&note).unwrap().body {
        Body::AfterAction(a) => a.action_items,
        _ => unreachable!(),
    };
    let e = t.hub.update(&note, fields(json!({"action_items": [{"action": " "}]}))).unwrap_err();
    assert!(e.to_string().contains("action 1 says nothing"), "{e}");
    t.hub
        .update(&note, fields(json!({"action_items": [{"action": "More water", "owner": "fox", "done": true}]})))
        .unwrap();
    assert_eq!(items(&t.hub)[0].done_at, Some(t.hub.now()));
    t.hub
        .update(&note, fields(json!({"action_items": [{"action": "More water", "owner": "fox", "done": false}]})))
        .unwrap();
    assert_eq!(items(&t.hub)[0].done_at, None, "reopened");

    let (hall, shift) = gate_shift(&mut t.hub);
    let h = add(&mut t.hub, Kind::Handoff, json!({"shift": shift, "note": "Gate 2 lock is stiff"}));
    assert_eq!(t.hub.update(&h, fields(json!({"acknowledged_by": "owl"}))).unwrap_err().code(), "append_only");
    t.hub.act_as("owl");
    let acked = t.hub.acknowledge_handoff(&h).unwrap();
    let Body::Handoff(got) = &acked.body else { unreachable!() };
    assert_eq!(got.acknowledged_by.as_deref(), Some("owl"));
    let listed = serde_json::to_value(t.hub.list(Kind::Handoff, 10, 0).unwrap()).unwrap();
    assert_eq!(listed[0]["acknowledged_by"], json!("owl"), "{listed}");
    t.hub.act_as("elk");
    let e = t.hub.acknowledge_handoff(&h).unwrap_err();
    assert!(e.to_string().contains("owl already acknowledged it"), "{e}");
    assert_eq!(t.hub.acknowledge_handoff(&hall).unwrap_err().code(), "invalid");
}

#[test]
fn steps_and_acknowledgements_are_never_written_in_anothers_name() {
    let mut t = new_hub("North", 1);
    // Steps are added one by one, never written at the start.
    let e = t
        .hub
        .add(
            Kind::Grievance,
            fields(json!({"summary": "x", "steps": [{"at": "2020-01-01T00:00:00Z", "by": "calm-heron", "note": "done", "status": "resolved"}]})),
        )
        .unwrap_err();
    assert!(e.to_string().contains("steps"), "{e}");
    let e = t
        .hub
        .add(Kind::Grievance, fields(json!({"summary": "x", "facilitator": "owl", "involved": ["owl"]})))
        .unwrap_err();
    assert!(e.to_string().contains("recused"), "{e}");
    // An unlocked person who may not read a grievance adds no step, whoever opened the hub.
    t.hub.act_as("heron");
    let g = add(&mut t.hub, Kind::Grievance, json!({"summary": "Rota", "confidential": true, "readers": ["heron"]}));
    t.hub.make_person("elk", None).unwrap();
    t.hub.unlock("elk", None).unwrap();
    let e = t.hub.grievance_step(&g, "I looked", None).unwrap_err();
    assert!(e.to_string().contains("elk may not read"), "{e}");
    // A handoff is acknowledged by whoever reads it, once; never in another's name.
    let (_, shift) = gate_shift(&mut t.hub);
    let e =
        t.hub.add(Kind::Handoff, fields(json!({"shift": shift, "note": "x", "acknowledged_by": "owl"}))).unwrap_err();
    assert!(e.to_string().contains("acknowledged_by"), "{e}");
    let h = add(&mut t.hub, Kind::Handoff, json!({"shift": shift, "note": "Gate 2 lock is stiff"}));
    let e = t.hub.amend(&h, "acknowledged_by", json!("owl"), "owl read it").unwrap_err();
    assert!(e.to_string().contains("not another name"), "{e}");
    t.hub.amend(&h, "acknowledged_by", json!("elk"), "read it").unwrap();
    let e = t.hub.amend(&h, "acknowledged_by", json!("elk"), "read it again").unwrap_err();
    assert!(e.to_string().contains("elk already acknowledged it"), "{e}");
}

/// A place and a shift there, for handoffs: (place, shift).
fn gate_shift(h: &mut Hub) -> (String, String) {
    let hall = add(h, Kind::Place, json!({"name": "Hall"}));
    let role = add(h, Kind::Role, json!({"name": "Gate"}));
    let shift = add(
        h,
        Kind::Shift,
        json!({"role": role, "place": hall, "start": "2026-11-25T08:00:00Z", "end": "2026-11-25T12:00:00Z", "needed": 1}),
    );
    (hall, shift)
}
