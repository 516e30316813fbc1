//! The hub API over real store files: commands, queries, merges, imports and exports.

mod util;

use aidmesh_hub::model::{views::ApprovalState, Body, Kind};
use aidmesh_hub::Driver;
use aidmesh_hub::{Error, Event, Hub, HxlKind, VaultState};
use serde_json::json;
use util::*;

fn place(h: &mut aidmesh_hub::Hub, name: &str) -> String {
    add(h, Kind::Place, json!({"name": name}))
}

fn item(h: &mut aidmesh_hub::Hub, name: &str, reorder: u64) -> String {
    add(h, Kind::Item, json!({"name": name, "unit": "bottle", "category": "water", "reorder_level": reorder}))
}

fn movement(h: &mut aidmesh_hub::Hub, item: &str, kind: &str, q: i64, place: &str) -> Result<String, Error> {
    h.add(Kind::Movement, fields(json!({"item": item, "type": kind, "quantity": q, "place": place})))
        .map(|r| r.id().to_string())
}

fn level(h: &aidmesh_hub::Hub, item: &str) -> i64 {
    h.stock(Some(item)).unwrap().iter().map(|s| s.quantity).sum()
}

#[test]
fn init_open_and_wrong_passphrase() {
    let t = new_hub("North", 1);
    let id = t.hub.hub_id().to_string();
    drop(t.hub);
    let e = aidmesh_hub::Hub::open(&t.path, "nope", config("x", &t.clock, 1)).err().unwrap();
    assert_eq!(e.code(), "wrong_passphrase");
    let h = reopen(&t.path, &t.clock);
    assert_eq!(h.hub_id(), id);
    assert_eq!(h.hub_name().unwrap(), "North");
    assert_eq!(h.count(Kind::Hub).unwrap(), 1, "the hub is recorded in the coalition document");
    let missing = t.path.with_file_name("other.aidmesh");
    assert_eq!(aidmesh_hub::Hub::open(&missing, PASS, config("x", &t.clock, 1)).err().unwrap().code(), "no_store");
    assert!(!missing.exists());
}

#[test]
fn stock_levels_follow_movements_and_refuse_overdraw() {
    let mut t = new_hub("North", 1);
    let h = &mut t.hub;
    let hall = place(h, "Hall");
    let tent = place(h, "Tent");
    let water = item(h, "Water", 10);
    movement(h, &water, "receive", 20, &hall).unwrap();
    movement(h, &water, "issue", 5, &hall).unwrap();
    h.add(
        Kind::Movement,
        fields(json!({"item": water, "type": "transfer", "quantity": 4, "place": hall, "to_place": tent})),
    )
    .unwrap();
    assert_eq!(level(h, &water), 15);
    let by_place: Vec<_> = h.stock(Some(&water)).unwrap().into_iter().map(|s| (s.place, s.quantity)).collect();
    assert_eq!(by_place.len(), 2);
    let e = movement(h, &water, "issue", 12, &hall).unwrap_err();
    assert!(e.to_string().contains("only 11 in stock"), "{e}");
    let e = movement(h, &water, "issue", -3, &hall).unwrap_err();
    assert!(e.to_string().contains("quantity"), "{e}");
    let e = movement(h, "nosuchitem", "receive", 3, &hall).unwrap_err();
    assert!(e.to_string().contains("no item with id nosuchitem"), "{e}");
    let e = movement(h, &hall, "receive", 3, &hall).unwrap_err();
    assert!(e.to_string().contains("is a place, not a item"), "{e}");
    assert_eq!(level(h, &water), 15, "refused writes change nothing");
    // Movements are append-only.
    let m = movement(h, &water, "issue", 1, &hall).unwrap();
    let e = h.update(&m, fields(json!({"quantity": 100}))).unwrap_err();
    assert_eq!(e.code(), "append_only");
}

#[test]
fn two_hubs_issuing_apart_end_at_the_sum() {
    let mut a = new_hub("North", 1);
    let hall = place(&mut a.hub, "Hall");
    let water = item(&mut a.hub, "Water", 0);
    movement(&mut a.hub, &water, "receive", 20, &hall).unwrap();
    let mut b = new_hub("South", 2);
    join(&mut a.hub, &mut b.hub);
    merge_into(&mut a.hub, &mut b.hub);
    assert_eq!(level(&b.hub, &water), 20);
    movement(&mut a.hub, &water, "issue", 5, &hall).unwrap();
    movement(&mut b.hub, &water, "issue", 5, &hall).unwrap();
    merge_into(&mut a.hub, &mut b.hub);
    merge_into(&mut b.hub, &mut a.hub);
    assert_eq!(level(&a.hub, &water), 10);
    assert_eq!(level(&b.hub, &water), 10);
    // Merging again changes nothing.
    assert!(merge_into(&mut b.hub, &mut a.hub).is_empty());
    assert_eq!(level(&a.hub, &water), 10);
}

#[test]
fn over_allocation_after_merge_is_flagged_for_a_person() {
    let mut a = new_hub("North", 1);
    let offer = add(&mut a.hub, Kind::Offer, json!({"category": "shelter", "quantity": 10, "description": "blankets"}));
    let r1 = add(&mut a.hub, Kind::Request, json!({"category": "shelter", "quantity": 10}));
    let r2 = add(&mut a.hub, Kind::Request, json!({"category": "shelter", "quantity": 10}));
    let mut b = new_hub("South", 2);
    join(&mut a.hub, &mut b.hub);
    merge_into(&mut a.hub, &mut b.hub);
    add(&mut a.hub, Kind::Allocation, json!({"request": r1, "offer": offer, "quantity": 10}));
    add(&mut b.hub, Kind::Allocation, json!({"request": r2, "offer": offer, "quantity": 10}));
    assert!(a.hub.overview().unwrap().over_allocations.is_empty());
    merge_into(&mut b.hub, &mut a.hub);
    let ov = a.hub.overview().unwrap();
    assert_eq!(ov.over_allocations.len(), 1);
    assert_eq!((ov.over_allocations[0].capacity, ov.over_allocations[0].allocated), (10, 20));
    // Both allocations are still there: nothing was silently dropped.
    assert_eq!(a.hub.count(Kind::Allocation).unwrap(), 2);
}

#[test]
fn concurrent_field_edits_show_as_conflicts() {
    let mut a = new_hub("North", 1);
    let water = item(&mut a.hub, "Water", 0);
    let mut b = new_hub("South", 2);
    join(&mut a.hub, &mut b.hub);
    merge_into(&mut a.hub, &mut b.hub);
    a.hub.update(&water, fields(json!({"name": "Water 1.5 l"}))).unwrap();
    b.hub.update(&water, fields(json!({"name": "Still water"}))).unwrap();
    merge_into(&mut b.hub, &mut a.hub);
    let ov = a.hub.overview().unwrap();
    assert_eq!(ov.field_conflicts.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), vec![water.clone()]);
    let view = a.hub.show(&water).unwrap();
    assert_eq!(view.conflicts.len(), 1);
    assert_eq!(view.conflicts[0].field, "name");
    assert_eq!(view.history.len(), 3, "created, and edited on two hubs");
    a.hub.update(&water, fields(json!({"name": "Water 1.5 l bottle"}))).unwrap();
    assert!(a.hub.overview().unwrap().field_conflicts.is_empty(), "writing the field settles it");
}

#[test]
fn updates_validate_and_name_the_field() {
    let mut t = new_hub("North", 1);
    let water = item(&mut t.hub, "Water", 0);
    let e = t.hub.update(&water, fields(json!({"reorder_level": "many"}))).unwrap_err();
    assert!(e.to_string().contains("reorder_level"), "{e}");
    let e = t.hub.update(&water, fields(json!({"colour": "blue"}))).unwrap_err();
    assert!(e.to_string().contains("no field \"colour\""), "{e}");
    let e = t.hub.update("nope", fields(json!({"name": "x"}))).unwrap_err();
    assert_eq!(e.code(), "not_found");
    let r = t.hub.update(&water, fields(json!({"reorder_level": 7}))).unwrap();
    let Body::Item(i) = &r.body else { panic!() };
    assert_eq!(i.reorder_level, 7);
}

#[test]
fn incidents_are_amended_not_edited() {
    let mut t = new_hub("North", 1);
    let inc = add(
        &mut t.hub,
        Kind::Incident,
        json!({"occurred": "2026-11-25T09:40:00Z", "severity": 4, "description": "Fall at the gate", "category": "medical"}),
    );
    assert_eq!(t.hub.update(&inc, fields(json!({"severity": 2}))).unwrap_err().code(), "append_only");
    t.clock.advance_ms(60_000);
    t.hub.amend(&inc, "severity", json!(2), "only a scrape").unwrap();
    let e = t.hub.amend(&inc, "severity", json!(9), "typo").unwrap_err();
    assert!(e.to_string().contains("severity"), "{e}");
    let e = t.hub.amend(&inc, "severity", json!(2), "").unwrap_err();
    assert!(e.to_string().contains("reason"), "{e}");
    let v = t.hub.show(&inc).unwrap();
    let (Body::Incident(now), Some(Body::Incident(orig))) = (&v.record.body, v.original.as_ref().map(|r| &r.body))
    else {
        panic!()
    };
    assert_eq!((now.severity, orig.severity), (2, 4));
    assert_eq!(v.amendments.len(), 1);
    let water = item(&mut t.hub, "Water", 0);
    assert!(t.hub.amend(&water, "name", json!("x"), "r").unwrap_err().to_string().contains("not amended"));
}

/// Makes `handle` a person at the hub (their key under a PIN), added to the coalition by the
/// founder "coord", who stays unlocked.
fn person(h: &mut Hub, handle: &str) {
    let p = h.make_person(handle, Some("4321")).unwrap();
    h.add_person(&p.key, handle, false).unwrap();
}

#[test]
fn expenses_show_what_approval_is_missing() {
    let mut t = new_hub("North", 1);
    add(
        &mut t.hub,
        Kind::Policy,
        json!({"currency": "EUR", "limits": [{"role": "treasurer", "max_minor": 100000}], "threshold_minor": 10000, "approvals_above_threshold": 2, "effective": "2026-11-01T00:00:00Z"}),
    );
    for who in ["owl", "elk"] {
        person(&mut t.hub, who);
        add(&mut t.hub, Kind::RoleGrant, json!({"handle": who, "role": "treasurer"}));
    }
    t.clock.advance_ms(1000);
    let e = add(
        &mut t.hub,
        Kind::Expense,
        json!({"amount_minor": 25000, "currency": "EUR", "payee": "Shop", "purpose": "Blankets", "fund": "general", "date": "2026-11-25"}),
    );
    let bad = t.hub.add(Kind::Expense, fields(json!({"amount_minor": -5, "currency": "EURO", "payee": "", "purpose": "x", "fund": "f", "date": "2026-11-31"})));
    let msg = bad.unwrap_err().to_string();
    assert!(msg.contains("date"), "{msg}");
    let bad = t.hub.add(Kind::Expense, fields(json!({"amount_minor": -5, "currency": "EURO", "payee": "", "purpose": "x", "fund": "f", "date": "2026-11-30"})));
    let msg = bad.unwrap_err().to_string();
    assert!(msg.contains("amount_minor") && msg.contains("currency") && msg.contains("payee"), "{msg}");
    // The founder recorded it and holds no role: they cannot approve it.
    let own = t.hub.add(Kind::Approval, fields(json!({"expense": e, "approver": "owl"}))).unwrap_err();
    assert_eq!(own.code(), "not_allowed", "{own}");
    t.clock.advance_ms(1000);
    // A wrong PIN unlocks no one.
    assert_eq!(t.hub.unlock("owl", Some("0000")).unwrap_err().code(), "wrong_pin");
    t.hub.unlock("owl", Some("4321")).unwrap();
    add(&mut t.hub, Kind::Approval, json!({"expense": e, "approver": "owl"}));
    let v = t.hub.show(&e).unwrap();
    assert!(matches!(v.approval, Some(ApprovalState::Unapproved { have: 1, need: 2, .. })), "{:?}", v.approval);
    assert_eq!(t.hub.overview().unwrap().unapproved_expenses.len(), 1);
    // Owl approving again changes nothing.
    assert!(t.hub.add(Kind::Approval, fields(json!({"expense": e, "approver": "elk"}))).is_err());
    t.hub.unlock("elk", Some("4321")).unwrap();
    add(&mut t.hub, Kind::Approval, json!({"expense": e, "approver": "whoever"}));
    assert!(matches!(t.hub.show(&e).unwrap().approval, Some(ApprovalState::Approved { .. })));
    assert!(t.hub.overview().unwrap().unapproved_expenses.is_empty());
    let totals = t.hub.ledger_totals().unwrap();
    assert_eq!(totals.per_fund[&("general".to_string(), "EUR".to_string())], 25000);
}

#[test]
fn search_finds_every_kind() {
    let mut t = new_hub("North", 1);
    let h = &mut t.hub;
    item(h, "Saline eyewash", 0);
    add(h, Kind::Volunteer, json!({"handle": "eyewash-owl", "languages": ["en"]}));
    add(
        h,
        Kind::Incident,
        json!({"occurred": "2026-11-25T09:00:00Z", "severity": 2, "description": "Pepper spray, eyewash used"}),
    );
    let kinds = |q: &str, k: Option<Kind>| {
        let mut v: Vec<String> = h.search(q, k, 10).unwrap().into_iter().map(|x| x.kind).collect();
        v.sort();
        v
    };
    assert_eq!(kinds("eyewash", None), vec!["incident", "item", "volunteer"]);
    assert_eq!(kinds("eyew", Some(Kind::Item)), vec!["item"]);
    assert_eq!(kinds("pepper", None), vec!["incident"]);
}

#[test]
fn json_export_import_round_trip_and_all_or_nothing() {
    let mut a = new_hub("North", 1);
    let hall = place(&mut a.hub, "Hall");
    let water = item(&mut a.hub, "Water", 5);
    movement(&mut a.hub, &water, "receive", 9, &hall).unwrap();
    // A volunteer with a contact: the file carries neither it nor its vault id.
    let fox = add(&mut a.hub, Kind::Volunteer, json!({"handle": "quiet-fox", "consent": {"share": true}}));
    a.hub.set_contact(&fox, &fields(json!({"name": "Amal"}))).unwrap();
    let mut out = Vec::new();
    let n = a.hub.export_json(&mut out).unwrap();
    assert_eq!(n, 5);
    assert!(!String::from_utf8_lossy(&out).contains("Amal"));
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let vol = v["records"].as_array().unwrap().iter().find(|r| r["id"] == json!(fox)).unwrap();
    assert_eq!(vol.get("contact"), None, "{vol}");
    let mut b = new_hub("South", 2);
    let rep = b.hub.import_json(&mut out.as_slice()).unwrap();
    assert_eq!(rep.imported, 5);
    assert_eq!(level(&b.hub, &water), 9);
    let rep = b.hub.import_json(&mut out.as_slice()).unwrap();
    assert_eq!((rep.imported, rep.skipped), (0, 5), "importing twice changes nothing");
    // A file with bad rows changes nothing and names each.
    let mut v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let recs = v["records"].as_array_mut().unwrap();
    for r in recs.iter_mut() {
        let id = r["id"].as_str().unwrap().to_string();
        r["id"] = json!(format!("{id}x"));
        if r["kind"] == "movement" {
            r["quantity"] = json!(-4);
            r["item"] = json!("ghost");
        }
        if r["kind"] == "item" {
            r["colour"] = json!("blue");
        }
    }
    recs.push(json!({"id": "zz1", "kind": "incident", "created_hub": "h", "created_by": "x", "created_at": "2026-13-01T00:00:00Z", "severity": 2, "description": "d"}));
    recs.push(json!("not an object"));
    let c = a.hub.count(Kind::Item).unwrap();
    let e = a.hub.import_json(&mut serde_json::to_vec(&v).unwrap().as_slice()).unwrap_err();
    let Error::Import { rows } = &e else { panic!("{e}") };
    let msg = e.to_string();
    assert_eq!(rows.len(), 4, "{msg}");
    assert!(
        msg.contains("colour")
            && msg.contains("quantity")
            && msg.contains("no item with id ghost")
            && msg.contains("created_at")
            && msg.contains("not a JSON object"),
        "{msg}"
    );
    assert_eq!(a.hub.count(Kind::Item).unwrap(), c);
    let e = a.hub.import_json(&mut &b"{\"records\": 3"[..]).unwrap_err();
    assert_eq!(e.code(), "malformed");
}

#[test]
fn hxl_round_trip_and_bad_rows() {
    let mut a = new_hub("North", 1);
    let hall = place(&mut a.hub, "Hall");
    let water = add(
        &mut a.hub,
        Kind::Item,
        json!({"name": "Water, still", "unit": "bottle", "place": hall, "expiry": "2027-01-31", "reorder_level": 5}),
    );
    movement(&mut a.hub, &water, "receive", 9, &hall).unwrap();
    add(
        &mut a.hub,
        Kind::Request,
        json!({"category": "water", "quantity": 30, "place": hall, "urgency": "high", "needed_by": "2026-11-25T18:00:00Z"}),
    );
    add(
        &mut a.hub,
        Kind::Incident,
        json!({"occurred": "2026-11-25T09:00:00Z", "severity": 3, "description": "Heat exhaustion", "category": "medical", "place": hall}),
    );
    let mut b = new_hub("South", 2);
    // Places travel first (as JSON), then the HXL sheets.
    let mut all = Vec::new();
    a.hub.export_json(&mut all).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&all).unwrap();
    v["records"].as_array_mut().unwrap().retain(|r| r["kind"] == "place");
    b.hub.import_json(&mut serde_json::to_vec(&v).unwrap().as_slice()).unwrap();
    for k in [HxlKind::Inventory, HxlKind::Requests, HxlKind::Incidents] {
        let mut csv = Vec::new();
        assert_eq!(a.hub.export_hxl(k, &mut csv).unwrap(), 1);
        let text = String::from_utf8(csv.clone()).unwrap();
        assert!(text.lines().nth(1).unwrap().starts_with('#'), "{text}");
        b.hub.import_hxl(k, &mut csv.as_slice()).unwrap();
    }
    assert_eq!(level(&b.hub, &water), 9, "stock travels with the inventory sheet");
    let got = b.hub.get(&water).unwrap();
    assert_eq!(got.body, a.hub.get(&water).unwrap().body);
    // Bad rows: every one named, nothing written.
    let bad = "Item,Unit,Expiry,Stock,Place\n#item+name,#item+unit,#date+end,#indicator+num+stock,#loc+code\nRice,kg,2026-02-30,3,\n,kg,,,\nBeans,can,,-2,\nOats,kg,,5,nowhere\n";
    let e = b.hub.import_hxl(HxlKind::Inventory, &mut bad.as_bytes()).unwrap_err();
    let msg = e.to_string();
    for want in ["row 3", "expiry", "row 4", "name: is required", "row 5", "stock", "row 6", "no place with id nowhere"]
    {
        assert!(msg.contains(want), "missing {want:?} in {msg}");
    }
    assert_eq!(b.hub.count(Kind::Item).unwrap(), 1);
    let e = b.hub.import_hxl(HxlKind::Inventory, &mut "a,b\n1,2\n".as_bytes()).unwrap_err();
    assert!(e.to_string().contains("hashtag row"), "{e}");
}

#[test]
fn hxl_columns_match_by_attributes_and_names_by_any_case() {
    let mut t = new_hub("North", 1);
    // As other tools write them: extra attributes, another column order, words in capitals.
    let sheet = "Name,Notes,Kind,Unit,Other\n\
                 #item+v_unhcr+name,#description+notes+x_local,#item+type,#item+unit,#description+v_other\n\
                 Tarpaulin,Blue ones,Shelter,piece,ignored\n\
                 Kettle,,OTHER,piece,\n";
    let r = t.hub.import_hxl(HxlKind::Inventory, &mut sheet.as_bytes()).unwrap();
    assert_eq!(r.imported, 2, "{r:?}");
    let items = t.hub.stored(Kind::Item, 10, 0).unwrap();
    let tarp = items.iter().find(|i| i.body.label() == "Tarpaulin").expect("the name column matched #item+name");
    let Body::Item(tarp) = &tarp.body else { unreachable!() };
    assert_eq!((tarp.notes.as_str(), serde_json::to_value(tarp.category).unwrap()), ("Blue ones", json!("shelter")));
    // Requests: quantities under #inneed+num, names in capitals and with spaces.
    let reqs = "Need,Kind,Quantity,Urgency,Status\n#description,#item+type,#inneed+num,#severity,#status\nSoap,Hygiene,4,High,In transit\n";
    t.hub.import_hxl(HxlKind::Requests, &mut reqs.as_bytes()).unwrap();
    let Body::Request(rq) = &t.hub.stored(Kind::Request, 1, 0).unwrap()[0].body else { unreachable!() };
    assert_eq!((rq.quantity, serde_json::to_value(rq.urgency).unwrap()), (4, json!("high")));
    assert_eq!(serde_json::to_value(rq.status).unwrap(), json!("in_transit"));
    // A value that is no name on the list is still refused, naming its row as a spreadsheet does.
    let bad = "Need,Kind,Quantity,Urgency\n#description,#item+type,#inneed,#severity\nSoap,hygiene,4,Very high\n";
    let e = t.hub.import_hxl(HxlKind::Requests, &mut bad.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("row 3") && e.contains("urgency"), "{e}");
}

#[test]
fn vault_holds_personal_data_outside_the_crdt_and_erases_it() {
    let mut t = new_hub("North", 1);
    let vol = add(&mut t.hub, Kind::Volunteer, json!({"handle": "quiet-fox", "consent": {"share": true}}));
    let vid = t
        .hub
        .set_contact(&vol, &fields(json!({"name": "Amal Haddad", "phone": "+34 600 000 000"})))
        .unwrap()
        .vault
        .unwrap();
    let VaultState::Present(bytes) = t.hub.vault_get(&vid).unwrap() else { panic!() };
    assert!(String::from_utf8(bytes).unwrap().contains("Amal"));
    let mut docs = Vec::new();
    for d in t.hub.export_docs().unwrap() {
        docs.extend(d.bytes);
    }
    assert!(!String::from_utf8_lossy(&docs).contains("Amal"), "personal data never enters a document");
    assert_eq!(t.hub.vault_erase(&vid).unwrap(), aidmesh_hub::Erased::Here);
    assert!(matches!(t.hub.vault_get(&vid).unwrap(), VaultState::Erased { .. }));
    assert_eq!(t.hub.vault_erase("vnope").unwrap_err().code(), "not_found");
    assert!(t.hub.get(&vol).is_ok(), "the record keeps its pseudonymous handle");
}

/// A record's contact is set by the contact form only: a new record naming a typed phone number,
/// an entry stored apart (an admin's to read) or another record's entry (whose contact it would
/// read under its own name) is refused, and no record's contact is changed by hand.
#[test]
fn a_contact_is_never_typed_into_a_record_nor_pointed_at_anothers() {
    let mut t = new_hub("North", 1);
    let apart = t.hub.vault_put(&fields(json!({"name": "Cy"}))).unwrap();
    let fox = add(&mut t.hub, Kind::Volunteer, json!({"handle": "quiet-fox"}));
    let vid = t.hub.set_contact(&fox, &fields(json!({"name": "Amal"}))).unwrap().vault.unwrap();
    let refused = |t: &mut TestHub, kind: Kind, fields: serde_json::Value| {
        let e = t.hub.add(kind, util::fields(fields)).unwrap_err();
        assert_eq!(e.code(), "invalid", "{e}");
        e.to_string()
    };
    let e = refused(&mut t, Kind::Request, json!({"category": "food", "quantity": 1, "contact": "+34 600 123 456"}));
    assert!(e.contains("contact") && e.contains("no vault id"), "{e}");
    for taken in [&vid, &apart] {
        let e = refused(&mut t, Kind::Volunteer, json!({"handle": "loud-owl", "contact": taken}));
        assert!(e.contains("contact form"), "{e}");
    }
    let owl = add(&mut t.hub, Kind::Volunteer, json!({"handle": "loud-owl"}));
    let e = t.hub.update(&owl, fields(json!({"contact": vid}))).unwrap_err();
    assert!(e.to_string().contains("contact form"), "{e}");
    assert_eq!(t.hub.get(&owl).unwrap().to_json()["contact"], json!(null));
    // Nor cleared by hand while it names an entry (which would be left named by no record).
    let e = t.hub.update(&fox, fields(json!({"contact": null}))).unwrap_err();
    assert!(e.to_string().contains("contact form"), "{e}");
    assert_eq!(t.hub.get(&fox).unwrap().to_json()["contact"], json!(vid));
}

/// A volunteer's access needs are health data: kept with their contact in the vault, where an
/// erasure reaches them, never typed into the record, whose history every hub keeps for good.
/// Neither a form, an update nor an import takes them into the record; one written there before
/// may be cleared; exports leave them out.
#[test]
fn access_needs_are_kept_with_the_contact_never_in_the_record() {
    let mut t = new_hub("North", 1);
    let e = t
        .hub
        .add(Kind::Volunteer, fields(json!({"handle": "loud-owl", "access_needs": "wheelchair user"})))
        .unwrap_err();
    assert_eq!(e.code(), "invalid", "{e}");
    assert!(e.to_string().contains("access_needs") && e.to_string().contains("contact form"), "{e}");
    let fox = add(&mut t.hub, Kind::Volunteer, json!({"handle": "quiet-fox", "access_needs": "  "}));
    let e = t.hub.update(&fox, fields(json!({"access_needs": "diabetic"}))).unwrap_err();
    assert!(e.to_string().contains("access_needs") && e.to_string().contains("health data"), "{e}");
    t.hub.update(&fox, fields(json!({"access_needs": "", "availability": "mornings"}))).unwrap();
    let file = json!({"format": "aidmesh-records", "version": 1, "records": [
        {"id": "01hzzzzzzzzzzzzzzzzzzzzzzz", "kind": "volunteer", "created_hub": "h", "created_by": "x",
         "created_at": "2026-05-01T10:00:00Z", "handle": "odd-hare", "access_needs": "epilepsy"}]});
    let e = t.hub.import_json(&mut serde_json::to_vec(&file).unwrap().as_slice()).unwrap_err();
    assert!(e.to_string().contains("access_needs"), "{e}");
    // Nor by an amendment to a volunteer of the same file (amendments are checked against the
    // rows they amend as against stored records: a volunteer is edited, never amended), while an
    // incident and its amendment in one file are taken.
    let meta = |id: &str, kind: &str| json!({"id": id, "kind": kind, "created_hub": "h", "created_by": "x", "created_at": "2026-05-01T10:00:00Z"});
    let row = |id: &str, kind: &str, body: serde_json::Value| {
        let mut r = meta(id, kind);
        r.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
        r
    };
    let hare = row("01hzzzzzzzzzzzzzzzzzzzzzzz", "volunteer", json!({"handle": "odd-hare"}));
    let amend = |id: &str, target: &str, field: &str, value: &str| {
        row(id, "amendment", json!({"target": target, "field": field, "value": value, "reason": "typo"}))
    };
    let file = json!({"format": "aidmesh-records", "version": 1, "records": [
        hare, amend("01hzzzzzzzzzzzzzzzzzzzzzzy", "01hzzzzzzzzzzzzzzzzzzzzzzz", "access_needs", "epilepsy")]});
    let e = t.hub.import_json(&mut serde_json::to_vec(&file).unwrap().as_slice()).unwrap_err();
    assert!(e.to_string().contains("volunteer records are not amended"), "{e}");
    assert_eq!(t.hub.count(Kind::Volunteer).unwrap(), 1);
    let spill = row("01hzzzzzzzzzzzzzzzzzzzzzzx", "incident", json!({"severity": 2, "description": "spill"}));
    let file = json!({"format": "aidmesh-records", "version": 1, "records": [
        spill, amend("01hzzzzzzzzzzzzzzzzzzzzzzw", "01hzzzzzzzzzzzzzzzzzzzzzzx", "severity", "loud")]});
    let e = t.hub.import_json(&mut serde_json::to_vec(&file).unwrap().as_slice()).unwrap_err();
    assert!(e.to_string().contains("severity"), "an amendment to a row is checked as to a record: {e}");
    let file = json!({"format": "aidmesh-records", "version": 1, "records": [
        row("01hzzzzzzzzzzzzzzzzzzzzzzx", "incident", json!({"severity": 2, "description": "spill"})),
        row("01hzzzzzzzzzzzzzzzzzzzzzzw", "amendment", json!({"target": "01hzzzzzzzzzzzzzzzzzzzzzzx", "field": "severity", "value": 3, "reason": "worse"}))]});
    assert_eq!(t.hub.import_json(&mut serde_json::to_vec(&file).unwrap().as_slice()).unwrap().imported, 2);
    // The contact form keeps them, readable for a reason and erased with the contact.
    let vid = t.hub.set_contact(&fox, &fields(json!({"name": "Amal", "access_needs": "step-free access"}))).unwrap();
    let vid = vid.vault.unwrap();
    let read = t.hub.read_contact(&fox, "plan Tuesday's shift").unwrap();
    assert_eq!(read["access_needs"], json!("step-free access"));
    // The form changes the fields it is given and keeps the others; one given empty is removed;
    // nothing left is refused (the contact is erased instead).
    let read = |t: &mut TestHub| t.hub.read_contact(&fox, "plan Tuesday's shift").unwrap();
    t.hub.set_contact(&fox, &fields(json!({"phone": "+34 600"}))).unwrap();
    assert_eq!(read(&mut t), fields(json!({"name": "Amal", "phone": "+34 600", "access_needs": "step-free access"})));
    t.hub.set_contact(&fox, &fields(json!({"phone": " ", "name": null, "access_needs": "step-free access"}))).unwrap();
    assert_eq!(read(&mut t), fields(json!({"access_needs": "step-free access"})));
    // No value at all is refused, whatever the contact holds (the refusal tells nothing of it).
    for given in [json!({"access_needs": ""}), json!({"phone": ""}), json!({})] {
        let e = t.hub.set_contact(&fox, &fields(given)).unwrap_err();
        assert!(e.to_string().contains("no value given") && e.to_string().contains("erase"), "{e}");
    }
    assert_eq!(read(&mut t), fields(json!({"access_needs": "step-free access"})));
    let rec = t.hub.get(&fox).unwrap().to_json();
    assert_eq!(rec["access_needs"], json!(""), "{rec:?}");
    let mut out = Vec::new();
    t.hub.export_json(&mut out).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert!(v["records"].as_array().unwrap().iter().all(|r| r.get("access_needs").is_none()), "{v}");
    t.hub.vault_erase(&vid).unwrap();
    assert!(t.hub.read_contact(&fox, "plan Tuesday's shift").is_err());
}

#[test]
fn events_report_changes_from_here_and_from_merges() {
    let mut a = new_hub("North", 1);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    a.hub.subscribe(move |e| {
        if let Event::RecordsChanged { ids } | Event::VaultChanged { ids } = e {
            s2.lock().unwrap().extend(ids.clone());
        }
    });
    let water = item(&mut a.hub, "Water", 0);
    let mut b = new_hub("South", 2);
    join(&mut a.hub, &mut b.hub);
    let rice = item(&mut b.hub, "Rice", 0);
    merge_into(&mut b.hub, &mut a.hub);
    // Contacts too: saved here, and at a peer, whose bundle brings it.
    let fox = add(&mut a.hub, Kind::Volunteer, json!({"handle": "quiet-fox", "consent": {"share": true}}));
    let here = a.hub.set_contact(&fox, &fields(json!({"name": "Amal"}))).unwrap().vault.unwrap();
    let owl = add(&mut b.hub, Kind::Volunteer, json!({"handle": "loud-owl", "consent": {"share": true}}));
    let there = b.hub.set_contact(&owl, &fields(json!({"name": "Bo"}))).unwrap().vault.unwrap();
    a.hub.import_bundle(&b.hub.export_bundle(false, &[]).unwrap().bytes).unwrap();
    let seen = seen.lock().unwrap();
    assert!(seen.contains(&water) && seen.contains(&rice), "{seen:?}");
    assert!(seen.contains(&here) && seen.contains(&there), "{seen:?}");
}

/// A form's movement of an absurd quantity is refused, naming the field, and nothing is stored
/// (a peer's, which no form checks, is summed to a stop: see the bundle tests).
#[test]
fn a_movement_of_an_absurd_quantity_is_refused() {
    let mut t = new_hub("North", 1);
    let (hall, water) = (place(&mut t.hub, "Hall"), item(&mut t.hub, "Water", 0));
    for q in [i64::MAX, 1_000_000_001] {
        let e = movement(&mut t.hub, &water, "receive", q, &hall).unwrap_err();
        assert!(e.to_string().contains("quantity") && e.to_string().contains("at most 1000000000"), "{e}");
    }
    assert!(t.hub.stock(Some(&water)).unwrap().is_empty());
    movement(&mut t.hub, &water, "receive", 1_000_000_000, &hall).unwrap();
}

#[test]
fn rebuilt_index_matches_the_documents() {
    let mut t = new_hub("North", 1);
    let recs = aidmesh_hub::generate(aidmesh_hub::Scale::demo(), 7, t0());
    let n = recs.len();
    t.hub.import_records(recs.into_iter().enumerate().map(|(i, r)| (i + 1, Ok(r))).collect()).unwrap();
    let before = t.hub.stock(None).unwrap();
    let ov1 = t.hub.overview().unwrap();
    let search = |h: &aidmesh_hub::Hub| {
        let mut ids: Vec<String> = h.search("water", None, 1000).unwrap().into_iter().map(|h| h.id).collect();
        ids.sort();
        ids
    };
    let found = search(&t.hub);
    assert!(!found.is_empty());
    assert_eq!(t.hub.rebuild_index().unwrap(), n + 1);
    assert_eq!(t.hub.stock(None).unwrap(), before);
    let ov2 = t.hub.overview().unwrap();
    assert_eq!(ov1.counts, ov2.counts);
    assert_eq!(search(&t.hub), found, "the same hits, once each");
    // The demo shows every panel of the overview.
    assert!(!ov2.shortages.is_empty() && !ov2.expiring.is_empty() && !ov2.urgent_requests.is_empty());
    assert!(!ov2.unfilled_shifts.is_empty() && !ov2.recent_incidents.is_empty() && !ov2.over_allocations.is_empty());
    assert!(!ov2.unapproved_expenses.is_empty() && !ov2.double_bookings.is_empty(), "{:?}", ov2.double_bookings);
    // The overview's index-driven panels agree with the model's views over every item.
    let mut all: Vec<aidmesh_hub::model::Record> = t.hub.stored(Kind::Item, usize::MAX, 0).unwrap();
    all.extend(t.hub.stored(Kind::Movement, usize::MAX, 0).unwrap());
    let levels = aidmesh_hub::model::views::stock_levels(&all);
    let mut want = aidmesh_hub::model::views::shortages(&all, &levels);
    want.truncate(20);
    assert_eq!(ov2.shortages, want);
    let mut want = aidmesh_hub::model::views::expiring(&all, &levels, t0().date(), 7);
    want.truncate(20);
    assert_eq!(ov2.expiring, want);
    // Urgent requests (read from the `requests_by_status` index, one range per active status): open critical ones, then high, each
    // by deadline with none last.
    use aidmesh_hub::model::{Body, FlowStatus, Timestamp, Urgency};
    let mut want: Vec<_> = t
        .hub
        .stored(Kind::Request, usize::MAX, 0)
        .unwrap()
        .into_iter()
        .filter_map(|r| match &r.body {
            Body::Request(q)
                if q.urgency >= Urgency::High && !matches!(q.status, FlowStatus::Fulfilled | FlowStatus::Cancelled) =>
            {
                Some((std::cmp::Reverse(q.urgency), q.needed_by.unwrap_or(Timestamp(i64::MAX)), r.id().clone()))
            }
            _ => None,
        })
        .collect();
    want.sort();
    want.truncate(20);
    let got: Vec<_> = ov2.urgent_requests.iter().map(|r| r.id().clone()).collect();
    assert_eq!(got, want.into_iter().map(|w| w.2).collect::<Vec<_>>());
    // Unfilled shifts (read from the `shifts_start` index) agree with the view over every shift.
    let mut roster = t.hub.stored(Kind::Shift, usize::MAX, 0).unwrap();
    roster.extend(t.hub.stored(Kind::Assignment, usize::MAX, 0).unwrap());
    let now = t.hub.now();
    let want = aidmesh_hub::model::views::unfilled_shifts(&roster, now, now.plus_hours(12));
    assert_eq!(ov2.unfilled_shifts, want);
    // Levels never go below zero in generated data.
    assert!(before.iter().all(|s| s.quantity >= 0));
    // Reopening sees everything.
    let path = t.path.clone();
    drop(t.hub);
    let h = reopen(&path, &t.clock);
    assert_eq!(h.overview().unwrap().counts, ov2.counts);
}

#[test]
fn suggestions_come_from_the_matching_engine() {
    let mut t = new_hub("North", 1);
    let hall = place(&mut t.hub, "Hall");
    let water = item(&mut t.hub, "Water", 0);
    movement(&mut t.hub, &water, "receive", 8, &hall).unwrap();
    let req =
        add(&mut t.hub, Kind::Request, json!({"item": water, "quantity": 5, "place": hall, "urgency": "critical"}));
    let s = t.hub.suggestions(Some(&req), 5).unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].quantity, 5);
    assert!(t.hub.suggestions(Some(&water), 5).is_err());
}

#[test]
fn a_full_disk_is_an_error_that_changes_nothing() {
    let mut t = new_hub("North", 1);
    let hall = place(&mut t.hub, "Hall");
    let water = item(&mut t.hub, "Water", 0);
    movement(&mut t.hub, &water, "receive", 10, &hall).unwrap();
    t.hub.limit_store_size(0).unwrap();
    let before = t.hub.count(Kind::Item).unwrap();
    let mut err = None;
    for n in 0..2000 {
        let big = "x".repeat(2000);
        match t.hub.add(Kind::Item, fields(json!({"name": format!("item {n}"), "unit": "box", "notes": big}))) {
            Ok(_) => {}
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let e = err.expect("the capped store fills up");
    assert_eq!(e.code(), "disk_full", "{e}");
    assert!(e.to_string().contains("disk is full"), "{e}");
    // The hub keeps serving: reads work, the failed write left no trace, stock is intact.
    let after = t.hub.count(Kind::Item).unwrap();
    assert!(after >= before);
    assert_eq!(t.hub.stored(Kind::Item, usize::MAX, 0).unwrap().len() as i64, after);
    assert_eq!(level(&t.hub, &water), 10);
    // Once there is room again, writing goes on and memory agrees with the disk.
    t.hub.limit_store_size(1000).unwrap();
    item(&mut t.hub, "Rice", 0);
    let after = after + 1;
    t.hub.rebuild_index().unwrap();
    assert_eq!(t.hub.count(Kind::Item).unwrap(), after);
    let path = t.path.clone();
    drop(t.hub);
    let h = reopen(&path, &t.clock);
    assert_eq!(h.count(Kind::Item).unwrap(), after, "what was acknowledged is there, nothing else");
}

#[test]
fn membership_is_signed_and_checked_on_read() {
    let mut a = new_hub("North", 1);
    let mut b = new_hub("South", 2);
    let members = a.hub.members().unwrap();
    assert_eq!(members.members.len(), 1, "the founder alone");
    assert!(members.is_member(&a.hub.fingerprint()));
    let fp = a.hub.fingerprint().to_string();
    assert_eq!(aidmesh_hub::HubId::parse(&fp).unwrap(), a.hub.fingerprint());
    // The founder admits South.
    a.hub.admit(&b.hub.public_key(), "South").unwrap();
    assert!(a.hub.members().unwrap().is_member(&b.hub.fingerprint()));
    assert!(a.hub.admit("nothex", "x").unwrap_err().to_string().contains("Ed25519"));
    // A membership record written straight into the documents (how membership was kept before
    // the authority log) changes nothing.
    let c = new_hub("Outsider", 3);
    let forged = json!({"action": {"action": "admit", "key": c.hub.public_key(), "name": "evil", "role": "admin"},
                        "signer": a.hub.public_key(), "at": "2026-11-25T10:00:00Z", "sig": "00".repeat(64)});
    a.hub.add(Kind::MemberEntry, fields(forged)).unwrap();
    assert!(!a.hub.members().unwrap().is_member(&c.hub.fingerprint()));
    // South joins North's coalition. Its coordinator is not a person of it yet: nothing they
    // sign counts; once added as a plain member, they still cannot admit anyone.
    b.hub.adopt_founder(&a.hub.founder().unwrap()).unwrap();
    merge_into(&mut a.hub, &mut b.hub);
    assert!(b.hub.members().unwrap().is_member(&b.hub.fingerprint()));
    let e = b.hub.admit(&c.hub.public_key(), "Outsider").unwrap_err();
    assert_eq!(e.code(), "not_allowed", "{e}");
    assert!(e.to_string().contains("not a person of the coalition"), "{e}");
    let heron = b.hub.acting().unwrap().key.clone();
    a.hub.add_person(&heron, "heron", false).unwrap();
    merge_into(&mut a.hub, &mut b.hub);
    let e = b.hub.admit(&c.hub.public_key(), "Outsider").unwrap_err();
    assert!(e.to_string().contains("heron is not an admin"), "{e}");
    assert!(!b.hub.members().unwrap().is_member(&c.hub.fingerprint()));
    a.hub.revoke(&b.hub.fingerprint().to_string()).unwrap();
    assert!(!a.hub.members().unwrap().is_member(&b.hub.fingerprint()));
    assert_eq!(a.hub.revoke(&b.hub.fingerprint().to_string()).unwrap_err().code(), "not_found");
    assert!(a.hub.revoke("not-a-hub-id").is_err());
    // Identity survives reopening.
    let fp_before = a.hub.fingerprint();
    let path = a.path.clone();
    drop(a.hub);
    assert_eq!(reopen(&path, &a.clock).fingerprint(), fp_before);
}

/// An admin turns the coalition secret over: the other member hubs follow once the entry
/// reaches them; someone who is not an admin of the coalition cannot.
#[test]
fn an_admin_turns_the_coalition_secret_over_and_the_member_hubs_follow() {
    let (mut a, mut b) = (new_hub("North", 1), new_hub("South", 2));
    join(&mut a.hub, &mut b.hub);
    let before = *a.hub.keyring().unwrap().current();
    assert_eq!(*b.hub.keyring().unwrap().current(), before);
    assert_eq!(a.hub.rotate_secret().unwrap(), 2, "sealed for North and South");
    let after = *a.hub.keyring().unwrap().current();
    assert_ne!(after, before);
    assert_eq!(*b.hub.keyring().unwrap().current(), before, "South has not heard yet");
    merge_into(&mut a.hub, &mut b.hub);
    assert_eq!(*b.hub.keyring().unwrap().current(), after, "South follows once the entry reaches it");
    // South's coordinator is no person of North's coalition: refused, nothing signed.
    let entries = b.hub.authority_entries().unwrap().len();
    let e = b.hub.rotate_secret().unwrap_err();
    assert_eq!(e.code(), "not_allowed", "{e}");
    assert_eq!(b.hub.authority_entries().unwrap().len(), entries);
    assert_eq!(*b.hub.keyring().unwrap().current(), after);
}

/// A hub joined by hand adopts the code its admission made: it carries the coalition secret
/// sealed for that hub alone, so the hub reaches its coalition before it holds the log; the
/// founder's own code carries none. A code that is malformed, or made for another hub, is
/// refused and changes nothing.
#[test]
fn a_hub_joined_by_hand_adopts_the_code_its_admission_made_for_it_alone() {
    use aidmesh_hub::FounderCode;
    let mut a = new_hub("North", 1);
    let mut b = new_hub("South", 2);
    let mut c = new_hub("East", 3);
    let early = a.hub.authority_entries().unwrap();
    let code = a.hub.admit(&b.hub.public_key(), "South:Gate").unwrap();
    assert!(code.welcome.is_some());
    assert_eq!(FounderCode::parse(&code.to_string()).unwrap(), code, "the code reads back as written");
    let plain = a.hub.founder_code().unwrap();
    assert!(plain.welcome.is_none());
    assert_eq!(FounderCode::parse(&plain.to_string()).unwrap(), plain);
    // A founder's name may hold colons.
    let mut named = code.clone();
    named.founder.name = "North: the hall".into();
    assert_eq!(FounderCode::parse(&named.to_string()).unwrap(), named);

    // Bad input, each named; nothing adopted.
    let before = c.hub.founder().unwrap();
    let text = code.to_string();
    let (key, rest) = text.split_once(':').unwrap();
    let mut mistyped = text.clone().into_bytes();
    let at = key.len() + rest.find(':').unwrap() + 10;
    mistyped[at] = if mistyped[at] == b'0' { b'1' } else { b'0' };
    let mistyped = String::from_utf8(mistyped).unwrap();
    for (bad, why) in [
        (String::new(), "not a founder code"),
        (format!("{key}:soon:{}", plain.founder.name), "not a number"),
        (text.replace(&code.founder.key, &"zz".repeat(32)), "Ed25519"),
        (mistyped, "mistyped"),
        (
            text.replacen(
                &rest[..rest.find(':').unwrap() + 3],
                &format!("{}g", &rest[..rest.find(':').unwrap() + 2]),
                1,
            ),
            "160 hex digits",
        ),
    ] {
        let e = FounderCode::parse(&bad).and_then(|code| c.hub.adopt(&code)).unwrap_err();
        assert!(e.to_string().contains(why), "{bad:?}: {e}");
    }
    // South's code on East: refused, East keeps its coalition.
    let e = c.hub.adopt(&code).unwrap_err();
    assert!(e.to_string().contains("made for another hub"), "{e}");
    // Copied in capitals, it still reads.
    assert_eq!(FounderCode::parse(&format!("{key}:{}", rest.to_uppercase())).unwrap().welcome, code.welcome);
    assert_eq!(c.hub.founder().unwrap(), before);

    // South, with no log yet, holds North's current secret.
    b.hub.adopt(&code).unwrap();
    assert_eq!(b.hub.founder().unwrap(), a.hub.founder().unwrap());
    assert_eq!(b.hub.keyring().unwrap().current(), a.hub.keyring().unwrap().current());
    // A log from before South's admission (an old bundle) hands it nothing: it keeps the
    // secret its code carried.
    b.hub.offer_authority(&early, "an old bundle").unwrap();
    assert_eq!(b.hub.keyring().unwrap().current(), a.hub.keyring().unwrap().current());
    // With the founder's code alone, East holds nothing North holds; with that old log too, it
    // holds a secret of its own, and has none to hand on.
    c.hub.adopt(&plain).unwrap();
    let (north, east) = (a.hub.keyring().unwrap(), c.hub.keyring().unwrap());
    assert!(north.newest_first().all(|s| s != east.current()));
    c.hub.offer_authority(&early, "an old bundle").unwrap();
    assert!(c.hub.keyring().unwrap().is_own());
    let e = c.hub.admit(&b.hub.public_key(), "South").unwrap_err();
    assert!(e.to_string().contains("no secret of the coalition"), "{e}");
    // Nor does it turn a secret over that it could not follow itself.
    let e = c.hub.rotate_secret().unwrap_err();
    assert!(e.to_string().contains("no secret of the coalition"), "{e}");
}

/// A purchase policy (treasurers approve up to 1,000 EUR, one of them), owl and fox added as
/// people (PIN 4321), and a 25 EUR expense that fox, unlocked, records: its id.
fn policy_people_and_an_expense(h: &mut Hub, grant_owl: bool) -> String {
    add(
        h,
        Kind::Policy,
        json!({"currency": "EUR", "limits": [{"role": "treasurer", "max_minor": 100000}], "threshold_minor": 100000, "approvals_above_threshold": 1, "effective": "2026-11-01T00:00:00Z"}),
    );
    person(h, "owl");
    person(h, "fox");
    if grant_owl {
        h.grant("owl", "treasurer", true).unwrap();
    }
    h.unlock("fox", Some("4321")).unwrap();
    add(
        h,
        Kind::Expense,
        json!({"amount_minor": 2500, "currency": "EUR", "payee": "Shop", "purpose": "Water", "fund": "general", "date": "2026-11-25"}),
    )
}

#[test]
fn approvals_and_grants_are_signed_entries_that_no_typed_name_or_record_can_forge() {
    let mut t = new_hub("North", 1);
    let e = policy_people_and_an_expense(&mut t.hub, false);
    // A grant and an approval written into the records (as any member can) count for nothing.
    let fake = json!({"format": "aidmesh-records", "records": [
        {"id": "01forgedgrant0000000000000", "kind": "role_grant", "created_at": "2026-11-25T09:00:00Z",
         "created_by": "coord", "created_hub": "x", "handle": "owl", "role": "treasurer", "revoked": false},
        {"id": "01forgedapproval000000000", "kind": "approval", "created_at": "2026-11-25T09:00:00Z",
         "created_by": "owl", "created_hub": "x", "expense": e, "approver": "owl", "decision": "approve",
         "signer": t.hub.public_key(), "sig": "11".repeat(64)}
    ]});
    t.hub.import_json(&mut serde_json::to_vec(&fake).unwrap().as_slice()).unwrap();
    assert!(matches!(t.hub.show(&e).unwrap().approval, Some(ApprovalState::Unapproved { .. })));
    // Fox, who recorded the expense, types the treasurer's name as approver: refused (fox
    // holds no role, and recorded it); owl has no role yet either.
    let e1 = t.hub.add(Kind::Approval, fields(json!({"expense": e, "approver": "owl"}))).unwrap_err();
    assert_eq!(e1.code(), "not_allowed", "{e1}");
    t.hub.unlock("owl", Some("4321")).unwrap();
    let e2 = t.hub.add(Kind::Approval, fields(json!({"expense": e, "approver": "owl"}))).unwrap_err();
    assert!(e2.to_string().contains("holds no role"), "{e2}");
    // Owl cannot grant themself the role; the founder (an admin) can.
    let e3 = t.hub.add(Kind::RoleGrant, fields(json!({"handle": "owl", "role": "treasurer"}))).unwrap_err();
    assert!(e3.to_string().contains("not an admin"), "{e3}");
    t.hub.unlock("coord", None).unwrap();
    add(&mut t.hub, Kind::RoleGrant, json!({"handle": "owl", "role": "treasurer"}));
    t.hub.unlock("owl", Some("4321")).unwrap();
    let a = t.hub.add(Kind::Approval, fields(json!({"expense": e, "approver": "the treasurer, honest"}))).unwrap();
    let aidmesh_hub::model::Body::Approval(x) = &a.body else { panic!() };
    assert_eq!(x.approver, "owl", "the approver is the unlocked person, never a typed name");
    match t.hub.show(&e).unwrap().approval {
        Some(ApprovalState::Approved { approvers }) => assert_eq!(approvers, vec!["owl".to_string()]),
        s => panic!("{s:?}"),
    }
    // A plain member cannot rewrite the policy.
    let p = t.hub.add(
        Kind::Policy,
        fields(json!({"currency": "EUR", "limits": [{"role": "treasurer", "max_minor": 1}], "threshold_minor": 0, "approvals_above_threshold": 5, "effective": "2020-01-01T00:00:00Z"})),
    );
    assert_eq!(p.unwrap_err().code(), "not_allowed");
    assert!(matches!(t.hub.show(&e).unwrap().approval, Some(ApprovalState::Approved { .. })));
    let a = t.hub.authority().unwrap();
    assert_eq!(a.policies.len(), 1, "{:?}", a.policies);
    assert!(a.policies[0].in_force && a.policies[0].set_by == "coord");
    assert_eq!(a.policies[0].limits, vec!["treasurer: up to 1000.00 EUR".to_string()]);
}

#[test]
fn the_passphrase_changes_only_for_whoever_knows_the_current_one() {
    let mut t = new_hub("North", 1);
    let e = t.hub.change_passphrase_checked("not it", "a new passphrase").unwrap_err();
    assert_eq!(e.code(), "wrong_passphrase", "{e}");
    t.hub.change_passphrase_checked(PASS, "a new passphrase").unwrap();
    drop(t.hub);
    let e = Hub::open(&t.path, PASS, config("coord", &t.clock, 3)).err().unwrap();
    assert_eq!(e.code(), "wrong_passphrase");
    Hub::open(&t.path, "a new passphrase", config("coord", &t.clock, 3)).unwrap();
}

/// A store from before the authority log: membership as hub-signed records, no people. Its
/// founding hub founds the log as it opens (its coordinator gets a key without a PIN), admits
/// again the hubs its records admitted, and from then on the old records count for nothing.
#[test]
fn a_founding_hub_from_before_the_authority_log_migrates_as_it_opens() {
    use aidmesh_mesh::membership::{Action, Entry, Role};
    let mut t = new_hub("North", 1);
    let south = new_hub("South", 2);
    let outsider = new_hub("Outsider", 3);
    // Membership as it was kept: an admission signed by the founding hub's own key.
    let identity = t.hub.identity();
    let admit = |key: String, name: &str| {
        Entry::sign(&identity, Action::Admit { key, name: name.into(), role: Role::Member }, t0())
    };
    let e = admit(south.hub.public_key(), "South");
    let rec = json!({"action": serde_json::to_value(&e.action).unwrap(), "signer": e.signer, "at": e.at, "sig": e.sig});
    t.hub.add(Kind::MemberEntry, fields(rec)).unwrap();
    drop(t.hub);
    // Take the store back to before the log: no entries, no people.
    let conn = rusqlite::Connection::open(&t.path).unwrap();
    conn.pragma_update(None, "key", aidmesh_store::Store::sqlcipher_key(&t.path, PASS).unwrap().as_str()).unwrap();
    conn.execute_batch("DELETE FROM authority; DELETE FROM meta WHERE key IN ('people', 'coalition_id');").unwrap();
    drop(conn);
    let mut hub = reopen(&t.path, &t.clock);
    let a = hub.authority().unwrap();
    assert_eq!(a.people.len(), 1, "{:?}", a.people);
    assert!(a.people[0].admin && a.people[0].handle == "coord");
    assert!(!hub.local_people().unwrap()[0].pin, "a key without a PIN: the guide says to set one");
    let m = hub.members().unwrap();
    assert!(m.is_member(&hub.fingerprint()) && m.is_member(&south.hub.fingerprint()));
    // Old records count for nothing now: a forged one admits no one.
    let forged = admit(outsider.hub.public_key(), "Outsider");
    let rec = json!({"action": serde_json::to_value(&forged.action).unwrap(), "signer": forged.signer, "at": forged.at, "sig": forged.sig});
    hub.add(Kind::MemberEntry, fields(rec)).unwrap();
    assert!(!hub.members().unwrap().is_member(&outsider.hub.fingerprint()));
    // Opening again migrates nothing twice.
    let entries = hub.authority().unwrap().entries;
    drop(hub);
    assert_eq!(reopen(&t.path, &t.clock).authority().unwrap().entries, entries);
}

/// Opening answers from the authority log's resolved state as a resting hub kept it, without
/// replaying the log; entries stored since the state was kept bring it forward when they can,
/// else the log is replayed. The answers are the same either way.
#[test]
fn opening_reads_the_authority_state_a_resting_hub_kept_and_brings_it_forward_or_replays() {
    let mut t = new_hub("North", 1);
    let e = policy_people_and_an_expense(&mut t.hub, true);
    t.hub.unlock("owl", Some("4321")).unwrap();
    add(&mut t.hub, Kind::Approval, json!({"expense": e}));
    let seen = |h: &mut Hub| {
        let a = h.authority().unwrap();
        (
            a.people,
            a.policies,
            a.entries,
            h.members().unwrap(),
            h.show(&e).unwrap().approval,
            h.authority_heads().unwrap(),
        )
    };
    let before = seen(&mut t.hub);
    assert!(matches!(before.4, Some(ApprovalState::Approved { .. })), "{:?}", before.4);
    // Closed before it rested: nothing kept, so opening replays the log.
    drop(t.hub);
    let mut h = reopen(&t.path, &t.clock);
    assert_eq!(seen(&mut h), before);
    assert!(h.authority_log_loaded());
    // Resting, it keeps the state (after its first look, which finds it busy); the next
    // opening answers from it.
    h.upkeep().unwrap();
    while h.upkeep().unwrap() {}
    assert!(!h.upkeep().unwrap());
    drop(h);
    let mut h = reopen(&t.path, &t.clock);
    assert_eq!(seen(&mut h), before);
    assert!(!h.authority_log_loaded(), "it answered from the kept state");
    // A peer that holds every entry asks what it lacks: still no replay.
    assert!(h.authority_missing_for(&before.5).unwrap().is_empty());
    assert!(!h.authority_log_loaded());
    // An entry made now loads the log. Closed before resting, the kept state no longer stands
    // for the stored entries: the next opening brings it forward by that entry (it follows the
    // heads and takes no right away) without loading the log, and sees it.
    h.unlock("coord", None).unwrap();
    h.grant("fox", "treasurer", true).unwrap();
    assert!(h.authority_log_loaded());
    drop(h);
    let mut h = reopen(&t.path, &t.clock);
    let a = h.authority().unwrap();
    assert!(!h.authority_log_loaded(), "the kept state was brought forward by the new entry");
    assert_eq!(a.entries, before.2 + 1);
    let fox_is_treasurer = |a: &aidmesh_hub::Authority| {
        a.people.iter().any(|p| p.handle == "fox" && p.roles == vec!["treasurer".to_string()])
    };
    assert!(fox_is_treasurer(&a), "{:?}", a.people);
    let granted = h.authority_heads().unwrap();
    // Resting keeps what it brought forward, then loads the log for the entries to come.
    h.upkeep().unwrap();
    while h.upkeep().unwrap() {}
    assert!(h.authority_log_loaded());
    drop(h);
    // Taking a right away is never brought forward: the next opening replays the log.
    let mut h = reopen(&t.path, &t.clock);
    assert_eq!(h.authority_heads().unwrap(), granted, "it kept the state brought forward");
    assert!(!h.authority_log_loaded());
    h.unlock("coord", None).unwrap();
    h.grant("fox", "treasurer", false).unwrap();
    drop(h);
    let h = reopen(&t.path, &t.clock);
    let a = h.authority().unwrap();
    assert!(h.authority_log_loaded(), "an entry that takes a right away is replayed");
    assert_eq!(a.entries, before.2 + 2);
    assert!(!fox_is_treasurer(&a), "{:?}", a.people);
}

#[test]
fn a_resting_hub_does_its_upkeep_in_steps_and_a_document_written_record_by_record_keeps_every_record() {
    let mut t = new_hub("North", 1);
    let ids: Vec<String> = (0..70).map(|n| item(&mut t.hub, &format!("item {n}"), 0)).collect();
    // Each write appended a chunk; the writes themselves folded nothing. Upkeep waits for the
    // hub to rest (no write since its last look), then works in steps until nothing is left:
    // the search index's segments, the piled-up document, the log.
    let steps = |h: &mut aidmesh_hub::Hub| (0..100).map_while(|_| h.upkeep().unwrap().then_some(())).count();
    assert!(!t.hub.upkeep().unwrap(), "written since upkeep last looked: the hub is busy");
    let done = steps(&mut t.hub);
    assert!(done >= 3, "{done} steps of upkeep");
    assert_eq!(t.hub.fold_chunks(10, false).unwrap(), 0, "upkeep folded the piled-up document");
    assert!(!t.hub.upkeep().unwrap() && !t.hub.upkeep().unwrap(), "nothing is left: it rests");
    // A write makes it busy for one look, then there is work again.
    item(&mut t.hub, "item 70", 0);
    assert!(!t.hub.upkeep().unwrap());
    assert!(steps(&mut t.hub) >= 1);
    assert_eq!(t.hub.search("item", Some(Kind::Item), 100).unwrap().len(), 71, "the merged index finds every item");
    // A hub that never rests still gets a step every ten seconds.
    item(&mut t.hub, "item 71", 0);
    assert!(!t.hub.upkeep().unwrap());
    t.clock.advance_ms(aidmesh_hub::UPKEEP_AT_LEAST_MS);
    item(&mut t.hub, "item 72", 0);
    assert!(t.hub.upkeep().unwrap(), "busy for ten seconds: a step all the same");
    item(&mut t.hub, "item 73", 0);
    assert!(!t.hub.upkeep().unwrap(), "and then not again at once");
    drop(t.hub);
    let mut h = reopen(&t.path, &t.clock);
    assert_eq!(h.count(Kind::Item).unwrap(), 74);
    // The folded document loads: a record in it can still be changed.
    let patch = json!({"name": "item zero"}).as_object().cloned().unwrap();
    h.update(&ids[0], patch).unwrap();
    assert_eq!(h.get(&ids[69]).unwrap().body.to_fields()["name"], json!("item 69"));
}

/// A batch of junk costs the door its verdict and no more: the first refusals are named (in
/// the offer, the log and the People screen's list), the rest counted in one line, and the
/// count of forged entries is whole.
#[test]
fn a_batch_of_junk_names_its_first_refusals_and_counts_the_rest() {
    let mut t = new_hub("North", 1);
    let before = t.hub.authority().unwrap().refused.len();
    let junk: Vec<Vec<u8>> = (0..500).map(|n| format!("not an entry {n}").into_bytes()).collect();
    let offer = t.hub.offer_authority(&junk, "a junk peer").unwrap();
    assert_eq!(offer.added, 0);
    assert_eq!(offer.forged_count, 500);
    assert_eq!(offer.forged.len(), aidmesh_hub::REFUSALS_NAMED);
    assert_eq!(offer.refused.len(), aidmesh_hub::REFUSALS_NAMED + 1);
    assert!(offer.refused[0].contains("malformed") || offer.refused[0].contains("Malformed"), "{:?}", offer.refused[0]);
    assert!(offer.refused.last().unwrap().starts_with("480 more entries refused"), "{:?}", offer.refused.last());
    let listed = t.hub.authority().unwrap().refused;
    assert_eq!(listed.len() - before, aidmesh_hub::REFUSALS_NAMED + 1);
    assert!(listed.iter().all(|r| r.source == "a junk peer"));
}
