//! Unit tests of every record kind's rules and of every derived view.

use chrono::NaiveDate;
use serde_json::{json, Map, Value};

use crate::matching::{suggest, suggest_all};
use crate::views::*;
use crate::*;

fn t(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

fn rec(id: &str, at: &str, by: &str, body: impl KindBody) -> Record {
    let body = body.into_body();
    Record {
        meta: Meta {
            id: id.into(),
            kind: body.kind(),
            created_hub: "hub-a".into(),
            created_by: by.into(),
            created_at: t(at),
        },
        body,
    }
}

fn fields(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// Validates a body given as JSON; returns the fields named in errors.
fn check(kind: &str, v: Value) -> Vec<String> {
    let kind = Kind::parse(kind).unwrap();
    match Body::from_fields_strict(kind, fields(v)) {
        Err(e) => vec![e.field],
        Ok(b) => b.validate().err().unwrap_or_default().into_iter().map(|e| e.field).collect(),
    }
}

#[test]
fn every_kind_validates_its_fields() {
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        ("hub", json!({"name": "North"}), vec![]),
        ("hub", json!({"name": " "}), vec!["name"]),
        ("place", json!({"name": "Hall", "type": "staging"}), vec![]),
        ("place", json!({"name": "Hall", "type": "castle"}), vec!["type"]),
        ("item", json!({"name": "Water", "unit": "bottle", "category": "water", "expiry": "2026-12-01"}), vec![]),
        ("item", json!({"name": "Water", "unit": "bottle", "expiry": "2026-13-01"}), vec!["expiry"]),
        ("item", json!({"name": "Water", "unit": "bottle", "reorder_level": -3}), vec!["reorder_level"]),
        ("item", json!({"name": "", "unit": ""}), vec!["name", "unit"]),
        ("item", json!({"name": "Water", "unit": "l", "colour": "blue"}), vec!["colour"]),
        ("movement", json!({"item": "i1", "place": "p1", "type": "issue", "quantity": 5}), vec![]),
        ("movement", json!({"item": "i1", "place": "p1", "type": "issue", "quantity": -5}), vec!["quantity"]),
        ("movement", json!({"item": "i1", "place": "p1", "type": "adjust", "quantity": -2}), vec![]),
        ("movement", json!({"item": "i1", "place": "p1", "type": "receive", "quantity": 1_000_000_000}), vec![]),
        (
            "movement",
            json!({"item": "i1", "place": "p1", "type": "receive", "quantity": 1_000_000_001}),
            vec!["quantity"],
        ),
        (
            "movement",
            json!({"item": "i1", "place": "p1", "type": "adjust", "quantity": -1_000_000_001}),
            vec!["quantity"],
        ),
        ("movement", json!({"item": "i1", "place": "p1", "type": "issue", "quantity": i64::MIN}), vec!["quantity"]),
        ("movement", json!({"item": "i1", "place": "p1", "type": "transfer", "quantity": 2}), vec!["to_place"]),
        (
            "movement",
            json!({"item": "i1", "place": "p1", "type": "transfer", "quantity": 2, "to_place": "p1"}),
            vec!["to_place"],
        ),
        (
            "movement",
            json!({"item": "i1", "place": "p1", "type": "receive", "quantity": 2, "to_place": "p2"}),
            vec!["to_place"],
        ),
        ("request", json!({"category": "food", "quantity": 10}), vec![]),
        ("request", json!({"quantity": 10}), vec!["item"]),
        ("request", json!({"item": "i1", "skill": "medic", "quantity": 1}), vec!["skill"]),
        ("request", json!({"category": "food", "quantity": 0}), vec!["quantity"]),
        ("request", json!({"category": "food", "quantity": 1_000_000_000}), vec![]),
        ("request", json!({"category": "food", "quantity": 1_000_000_001}), vec!["quantity"]),
        ("offer", json!({"category": "food", "quantity": u64::MAX}), vec!["quantity"]),
        ("allocation", json!({"request": "r1", "offer": "o1", "quantity": 1_000_000_001}), vec!["quantity"]),
        (
            "request",
            json!({"category": "food", "quantity": 1, "needed_from": "2026-11-25T10:00", "needed_by": "2026-11-25T09:00"}),
            vec!["needed_by"],
        ),
        ("offer", json!({"skill": "translation", "quantity": 2}), vec![]),
        ("allocation", json!({"request": "r1", "offer": "o1", "quantity": 3}), vec![]),
        ("allocation", json!({"request": "r1", "quantity": 3}), vec!["offer"]),
        (
            "allocation",
            json!({"request": "r1", "offer": "o1", "item": "i1", "place": "p", "quantity": 3}),
            vec!["offer"],
        ),
        (
            "volunteer",
            json!({"handle": "fox", "languages": ["en", "pt-BR"], "skills": [{"skill": "first_aid", "level": "trained"}]}),
            vec![],
        ),
        ("volunteer", json!({"handle": "fox", "languages": ["english please"]}), vec!["languages"]),
        (
            "volunteer",
            json!({"handle": "fox", "skills": [{"skill": "translation", "languages": ["en"]}]}),
            vec!["skills"],
        ),
        ("role", json!({"name": "Marshal lead"}), vec![]),
        (
            "shift",
            json!({"role": "r", "place": "p", "start": "2026-11-25T08:00", "end": "2026-11-25T12:00", "needed": 2}),
            vec![],
        ),
        (
            "shift",
            json!({"role": "r", "place": "p", "start": "2026-11-25T08:00", "end": "2026-11-25T08:00", "needed": 0}),
            vec!["end", "needed"],
        ),
        ("assignment", json!({"shift": "s", "volunteer": "v", "active": true}), vec![]),
        (
            "check_in",
            json!({"volunteer": "v", "checked_in": "2026-11-25T08:00", "checked_out": "2026-11-25T07:00"}),
            vec!["checked_out"],
        ),
        ("handoff", json!({"shift": "s", "note": ""}), vec!["note"]),
        (
            "incident",
            json!({"occurred": "2026-11-25T08:00", "severity": 3, "description": "fall", "category": "medical"}),
            vec![],
        ),
        ("incident", json!({"occurred": "2026-11-25T08:00", "severity": 6, "description": "x"}), vec!["severity"]),
        ("incident", json!({"occurred": "yesterday", "severity": 2, "description": "x"}), vec!["occurred"]),
        ("amendment", json!({"target": "x", "field": "severity", "value": 2, "reason": ""}), vec!["reason"]),
        ("follow_up", json!({"incident": "x", "action": "call"}), vec![]),
        (
            "expense",
            json!({"amount_minor": 1250, "currency": "EUR", "payee": "Shop", "purpose": "water", "fund": "general", "date": "2026-11-25"}),
            vec![],
        ),
        (
            "expense",
            json!({"amount_minor": 0, "currency": "EUR", "payee": "Shop", "purpose": "water", "fund": "general", "date": "2026-11-25"}),
            vec!["amount_minor"],
        ),
        (
            "expense",
            json!({"amount_minor": 10, "currency": "XYZ", "payee": "Shop", "purpose": "water", "fund": "general", "date": "2026-11-25"}),
            vec!["currency"],
        ),
        ("approval", json!({"expense": "e", "approver": "owl"}), vec![]),
        (
            "policy",
            json!({"currency": "EUR", "limits": [{"role": "treasurer", "max_minor": 10000}], "threshold_minor": 5000, "approvals_above_threshold": 2}),
            vec![],
        ),
        (
            "policy",
            json!({"currency": "EUR", "limits": [], "approvals_above_threshold": 0}),
            vec!["limits", "approvals_above_threshold"],
        ),
        ("role_grant", json!({"handle": "owl", "role": "treasurer"}), vec![]),
        (
            "grievance",
            json!({"summary": "rude marshal", "confidential": true, "readers": ["owl"], "involved": ["fox"]}),
            vec![],
        ),
        ("grievance", json!({"summary": "rude marshal", "confidential": true}), vec!["readers"]),
        ("grievance", json!({"summary": "x", "readers": ["fox"], "involved": ["fox"]}), vec!["readers"]),
        ("after_action", json!({"title": "March day 1"}), vec![]),
        (
            "member_entry",
            json!({"action": {"action": "revoke"}, "signer": "ab".repeat(32), "sig": "cd".repeat(64)}),
            vec![],
        ),
        ("member_entry", json!({"action": 3, "signer": "xyz", "sig": ""}), vec!["signer", "sig", "action"]),
    ];
    let mut covered = std::collections::BTreeSet::new();
    for (kind, v, want) in cases {
        covered.insert(Kind::parse(kind).unwrap());
        let got = check(kind, v.clone());
        assert_eq!(got, want, "{kind} {v}");
    }
    for k in Kind::ALL {
        assert!(covered.contains(k), "no validation case for {k}");
    }
}

#[test]
fn type_errors_name_the_field() {
    let e = Body::from_fields_strict(Kind::Item, fields(json!({"name": "x", "unit": "u", "reorder_level": "lots"})))
        .unwrap_err();
    assert_eq!(e.field, "reorder_level");
    assert!(e.to_string().contains("reorder_level"), "{e}");
    let e = Kind::parse("widget").unwrap_err();
    assert_eq!(e, ParseError::Kind("widget".into()));
    assert!(e.to_string().contains("widget") && e.to_string().contains("item"), "{e}");
    assert_eq!(Kind::parse("Items").unwrap(), Kind::Item);
    assert_eq!(Kind::parse("check-in").unwrap(), Kind::CheckIn);
}

#[test]
fn records_round_trip_as_flat_json() {
    for k in Kind::ALL {
        let r = Record {
            meta: Meta {
                id: "abc".into(),
                kind: *k,
                created_hub: "h".into(),
                created_by: "fox".into(),
                created_at: t("2026-11-25T10:00"),
            },
            body: k.template(),
        };
        let j = serde_json::to_value(&r).unwrap();
        for key in META_KEYS {
            assert!(j.get(key).is_some(), "{k} lacks {key}");
        }
        let back: Record = serde_json::from_value(j).unwrap();
        assert_eq!(back, r);
        for f in k.field_names() {
            assert!(!META_KEYS.contains(&f.as_str()), "{k} field {f} collides with meta");
        }
    }
}

/// The store is handed these names to find records by status and urgency: they must be what
/// records carry.
#[test]
fn status_and_urgency_names_are_the_serialized_ones() {
    for s in FlowStatus::ALL {
        assert_eq!(serde_json::to_value(s).unwrap(), json!(s.name()));
    }
    for u in [Urgency::Low, Urgency::Normal, Urgency::High, Urgency::Critical] {
        assert_eq!(serde_json::to_value(u).unwrap(), json!(u.name()));
    }
    let active: Vec<_> = FlowStatus::active().map(FlowStatus::name).collect();
    assert_eq!(active, ["open", "matched", "in_transit"]);
    assert!(Urgency::URGENT.windows(2).all(|w| w[0] > w[1]), "most urgent first");
}

#[test]
fn ids_are_sortable_by_time_and_distinct() {
    let a = RecordId::generate(t("2026-11-25T10:00"), [0; 10]);
    let b = RecordId::generate(t("2026-11-25T10:01"), [0; 10]);
    let c = RecordId::generate(t("2026-11-25T10:01"), [1; 10]);
    assert_eq!(a.as_str().len(), 26);
    assert!(a < b && b != c);
    assert_eq!(RecordId::parse(&a.as_str().to_uppercase()).unwrap(), a);
    assert!(RecordId::parse("no spaces").is_err());
}

#[test]
fn a_vault_id_is_v_and_a_record_id() {
    let id = RecordId::generate(t("2026-11-25T10:00"), [7; 10]);
    assert!(crate::is_vault_id(&format!("v{id}")));
    for not in [
        "",
        "v",
        &id.to_string(),
        &format!("x{id}"),
        &format!("v{id}0"),
        &format!("V{}", id.as_str().to_uppercase()),
        "+34 600 123 456",
        "v+34 600 123 456 7890123456",
    ] {
        assert!(!crate::is_vault_id(not), "{not:?}");
    }
}

fn mv(id: &str, kind: MovementKind, q: i64, place: &str, to: Option<&str>) -> Record {
    rec(
        id,
        "2026-11-25T10:00",
        "fox",
        Movement {
            item: "water".into(),
            kind,
            quantity: q,
            place: place.into(),
            to_place: to.map(Into::into),
            ..Default::default()
        },
    )
}

fn item(id: &str, name: &str, reorder: u64, expiry: Option<&str>) -> Record {
    rec(
        id,
        "2026-11-01T00:00",
        "fox",
        Item {
            name: name.into(),
            unit: "unit".into(),
            category: Category::Water,
            reorder_level: reorder,
            expiry: expiry.map(|e| parse_date(e).unwrap()),
            ..Default::default()
        },
    )
}

#[test]
fn stock_is_the_sum_of_movements() {
    let recs = vec![
        mv("m1", MovementKind::Receive, 20, "hall", None),
        mv("m2", MovementKind::Issue, 5, "hall", None),
        mv("m3", MovementKind::Issue, 5, "hall", None),
        mv("m4", MovementKind::Transfer, 4, "hall", Some("tent")),
        mv("m5", MovementKind::Adjust, -1, "tent", None),
        mv("m6", MovementKind::Discard, 2, "hall", None),
    ];
    let l = stock_levels(&recs);
    assert_eq!(l[&("water".into(), "hall".into())], 4);
    assert_eq!(l[&("water".into(), "tent".into())], 3);
    assert_eq!(item_totals(&l)[&RecordId::from("water")], 7);
}

#[test]
fn shortages_and_expiring_stock() {
    let mut recs = vec![
        item("water", "Water", 10, Some("2026-11-30")),
        item("rice", "Rice", 100, Some("2027-06-01")),
        item("gauze", "Gauze", 0, Some("2026-11-20")),
        item("masks", "Masks", 5, Some("2026-11-27")),
    ];
    recs.push(mv("m1", MovementKind::Receive, 4, "hall", None));
    let mut m = mv("m2", MovementKind::Receive, 50, "hall", None);
    if let Body::Movement(b) = &mut m.body {
        b.item = "rice".into();
    }
    recs.push(m);
    let mut g = mv("m3", MovementKind::Receive, 3, "hall", None);
    if let Body::Movement(b) = &mut g.body {
        b.item = "gauze".into();
    }
    recs.push(g);
    let l = stock_levels(&recs);
    let s: Vec<_> = shortages(&recs, &l).into_iter().map(|s| (s.item.to_string(), s.level)).collect();
    // masks 0/5 first, then water 4/10, then rice 50/100.
    assert_eq!(s, vec![("masks".into(), 0), ("water".into(), 4), ("rice".into(), 50)]);
    let today = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
    let e: Vec<_> = expiring(&recs, &l, today, 7).into_iter().map(|e| e.item.to_string()).collect();
    // Gauze already expired, then water; masks have no stock; rice is months away.
    assert_eq!(e, vec!["gauze", "water"]);
}

fn alloc(id: &str, req: &str, offer: Option<&str>, stock: Option<(&str, &str)>, q: u64) -> Record {
    rec(
        id,
        "2026-11-25T11:00",
        "fox",
        Allocation {
            request: req.into(),
            offer: offer.map(Into::into),
            item: stock.map(|s| s.0.into()),
            place: stock.map(|s| s.1.into()),
            quantity: q,
            status: AllocationStatus::Active,
        },
    )
}

#[test]
fn over_allocation_is_flagged_not_resolved() {
    let recs = vec![
        rec(
            "blankets",
            "2026-11-25T09:00",
            "owl",
            Offer { category: Some(Category::Shelter), quantity: 10, ..Default::default() },
        ),
        item("water", "Water", 0, None),
        mv("m1", MovementKind::Receive, 6, "hall", None),
        alloc("a1", "r1", Some("blankets"), None, 10),
        alloc("a2", "r2", Some("blankets"), None, 10),
        alloc("a3", "r1", None, Some(("water", "hall")), 6),
    ];
    let l = stock_levels(&recs);
    let over = over_allocations(&recs, &l);
    assert_eq!(over.len(), 1);
    assert_eq!(over[0].source, Source::Offer { offer: "blankets".into() });
    assert_eq!((over[0].capacity, over[0].allocated), (10, 20));
    assert_eq!(over[0].allocations, vec![RecordId::from("a1"), "a2".into()]);
    // Releasing one settles it.
    let mut settled = recs.clone();
    if let Body::Allocation(a) = &mut settled[4].body {
        a.status = AllocationStatus::Released;
    }
    assert!(over_allocations(&settled, &l).is_empty());
    // Issuing the stock that was promised makes the stock allocation over-allocated.
    let mut issued = recs.clone();
    issued.push(mv("m2", MovementKind::Issue, 2, "hall", None));
    let l2 = stock_levels(&issued);
    assert_eq!(over_allocations(&issued, &l2).len(), 2);
}

fn shift(id: &str, start: &str, end: &str, needed: u32) -> Record {
    rec(
        id,
        "2026-11-20T00:00",
        "owl",
        Shift { role: "r".into(), place: "p".into(), start: t(start), end: t(end), needed, notes: String::new() },
    )
}

fn assign(id: &str, s: &str, v: &str, active: bool) -> Record {
    rec(id, "2026-11-20T00:00", "owl", Assignment { shift: s.into(), volunteer: v.into(), active })
}

#[test]
fn shift_coverage_unfilled_and_double_booking() {
    let recs = vec![
        shift("s1", "2026-11-25T08:00", "2026-11-25T12:00", 2),
        shift("s2", "2026-11-25T11:00", "2026-11-25T15:00", 1),
        shift("s3", "2026-11-25T15:00", "2026-11-25T19:00", 1),
        shift("s4", "2026-11-27T08:00", "2026-11-27T12:00", 3),
        assign("a1", "s1", "fox", true),
        assign("a2", "s2", "fox", true),
        assign("a3", "s3", "fox", true),
        assign("a4", "s1", "owl", false),
        assign("a5", "s1", "fox", true),
    ];
    let cov = shift_coverage(&recs);
    assert_eq!(cov.iter().map(|c| c.assigned).collect::<Vec<_>>(), vec![1, 1, 1, 0]);
    let unfilled: Vec<_> = unfilled_shifts(&recs, t("2026-11-25T07:00"), t("2026-11-25T19:00"))
        .into_iter()
        .map(|c| c.shift.to_string())
        .collect();
    assert_eq!(unfilled, vec!["s1"]);
    let db = double_bookings(&recs);
    // s1 and s2 overlap; s2 and s3 only touch.
    assert_eq!(db, vec![DoubleBooking { volunteer: "fox".into(), first: "s1".into(), second: "s2".into() }]);
}

#[test]
fn a_shift_lasts_at_most_a_day() {
    assert!(shift("s", "2026-11-25T08:00", "2026-11-26T08:00", 1).body.validate().is_ok(), "24 hours is a shift");
    let errs = shift("s", "2026-11-25T08:00", "2026-11-26T08:01", 1).body.validate().unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "end");
    assert!(errs[0].message.contains("24 hours"), "{}", errs[0].message);
}

#[test]
fn amendments_correct_without_touching_the_original() {
    let inc = rec(
        "i1",
        "2026-11-25T10:00",
        "fox",
        Incident {
            occurred: t("2026-11-25T09:50"),
            severity: 4,
            description: "fall at gate".into(),
            ..Default::default()
        },
    );
    let a1 = rec(
        "x1",
        "2026-11-25T10:05",
        "owl",
        Amendment { target: "i1".into(), field: "severity".into(), value: json!(2), reason: "minor".into() },
    );
    let a2 = rec(
        "x2",
        "2026-11-25T10:06",
        "owl",
        Amendment { target: "i1".into(), field: "severity".into(), value: json!(9), reason: "typo".into() },
    );
    let a3 = rec(
        "x3",
        "2026-11-25T10:07",
        "owl",
        Amendment { target: "i1".into(), field: "status".into(), value: json!("resolved"), reason: "done".into() },
    );
    let recs = vec![inc.clone(), a3, a2, a1];
    let ams = amendments_of(&recs, &"i1".into());
    assert_eq!(ams.iter().map(|(m, _)| m.id.to_string()).collect::<Vec<_>>(), vec!["x1", "x2", "x3"]);
    let (now, rejected) = amended(&inc, &ams);
    let Body::Incident(i) = &now.body else { panic!() };
    assert_eq!((i.severity, i.status), (2, IncidentStatus::Resolved));
    assert_eq!(rejected, vec![RecordId::from("x2")]);
    assert_eq!(recs[0], inc);
    assert!(check_amendment(&inc, "severity", &json!(7)).is_err());
    assert!(check_amendment(&inc, "colour", &json!(7)).unwrap_err().message.contains("no field"));
    assert!(check_amendment(&inc, "severity", &json!(1)).is_ok());
}

fn governance() -> Vec<Record> {
    vec![
        rec(
            "pol",
            "2026-11-01T00:00",
            "founder",
            Policy {
                currency: "EUR".into(),
                limits: vec![
                    RoleLimit { role: "coordinator".into(), max_minor: 20_000 },
                    RoleLimit { role: "treasurer".into(), max_minor: 500_000 },
                ],
                threshold_minor: 10_000,
                approvals_above_threshold: 2,
                effective: t("2026-11-01T00:00"),
            },
        ),
        rec(
            "g1",
            "2026-11-01T00:00",
            "founder",
            RoleGrant { handle: "owl".into(), role: "treasurer".into(), revoked: false, ..Default::default() },
        ),
        rec(
            "g2",
            "2026-11-01T00:00",
            "founder",
            RoleGrant { handle: "fox".into(), role: "coordinator".into(), revoked: false, ..Default::default() },
        ),
        rec(
            "g3",
            "2026-11-01T00:00",
            "founder",
            RoleGrant { handle: "elk".into(), role: "treasurer".into(), revoked: false, ..Default::default() },
        ),
        rec(
            "g4",
            "2026-11-24T00:00",
            "founder",
            RoleGrant { handle: "elk".into(), role: "treasurer".into(), revoked: true, ..Default::default() },
        ),
    ]
}

fn expense(id: &str, by: &str, amount: i64, fund: &str) -> Record {
    rec(
        id,
        "2026-11-25T10:00",
        by,
        Expense {
            amount_minor: amount,
            currency: "EUR".into(),
            payee: "Shop".into(),
            purpose: "water".into(),
            fund: fund.into(),
            category: "supplies".into(),
            receipt: "R1".into(),
            date: parse_date("2026-11-25").unwrap(),
        },
    )
}

#[test]
fn ledger_totals_use_amended_amounts_and_skip_rejected() {
    let mut recs = governance();
    recs.push(expense("e1", "bee", 1_000, "general"));
    recs.push(expense("e2", "bee", 2_000, "medical"));
    recs.push(expense("e3", "bee", 4_000, "medical"));
    recs.push(rec(
        "x1",
        "2026-11-25T12:00",
        "bee",
        Amendment { target: "e1".into(), field: "amount_minor".into(), value: json!(1_500), reason: "receipt".into() },
    ));
    let t = ledger_totals(&recs, |r| r.id().as_str() == "e3");
    assert_eq!(t.per_fund[&("general".to_string(), "EUR".to_string())], 1_500);
    assert_eq!(t.per_fund[&("medical".to_string(), "EUR".to_string())], 2_000);
    assert_eq!(t.per_category[&("supplies".to_string(), "EUR".to_string())], 3_500);
    assert_eq!(format_amount(123_456, "EUR"), "1234.56 EUR");
    assert_eq!(format_amount(500, "JPY"), "500 JPY");
    assert_eq!(format_amount(-1_005, "KWD"), "-1.005 KWD");
}

#[test]
fn grievances_respect_readers_and_recusal() {
    let g = Grievance {
        summary: "s".into(),
        confidential: true,
        readers: vec!["owl".into(), "fox".into()],
        involved: vec!["fox".into()],
        ..Default::default()
    };
    assert!(g.readable_by("owl"));
    assert!(!g.readable_by("fox"), "involved people are recused");
    assert!(!g.readable_by("elk"));
    assert!(Body::Grievance(g.clone()).search_text().is_empty(), "confidential text stays out of search");
    let at = Timestamp::parse("2026-11-25T10:00:00Z").unwrap();
    let rec = Record {
        meta: Meta {
            id: RecordId::generate(at, [1; 10]),
            kind: Kind::Grievance,
            created_hub: "h".into(),
            created_by: "owl".into(),
            created_at: at,
        },
        body: Body::Grievance(Grievance { details: "what happened".into(), ..g }),
    };
    assert!(rec.redacted_for("owl").is_none(), "a reader sees it whole");
    let hidden = rec.redacted_for("elk").expect("withheld from others");
    let text = serde_json::to_string(&hidden).unwrap();
    assert!(!text.contains("what happened"), "{text}");
    assert!(!text.contains("fox"), "nor who it concerns: {text}");
    assert!(text.contains(r#""readers":[]"#) && text.contains(r#""involved":[]"#), "nor who reads it: {text}");
    assert_eq!(hidden.meta, rec.meta, "who and when stay visible");
    assert!(rec.redacted_for("fox").is_some(), "and from the people involved");
}

#[test]
fn matching_ranks_fit_quantity_expiry_and_nearness() {
    let today = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
    let mut recs = vec![
        rec("h1", "2026-11-01T00:00", "f", HubInfo { name: "North".into(), ..Default::default() }),
        rec(
            "hall",
            "2026-11-01T00:00",
            "f",
            Place { name: "Hall".into(), hub: Some("h1".into()), ..Default::default() },
        ),
        rec(
            "tent",
            "2026-11-01T00:00",
            "f",
            Place { name: "Tent".into(), hub: Some("h1".into()), ..Default::default() },
        ),
        rec("far", "2026-11-01T00:00", "f", Place { name: "Far".into(), ..Default::default() }),
        item("water", "Water", 0, Some("2026-12-30")),
        item("water2", "Water old", 0, Some("2026-11-28")),
        item("water3", "Water expired", 0, Some("2026-11-20")),
        rec(
            "req",
            "2026-11-25T09:00",
            "f",
            Request {
                item: Some("water".into()),
                quantity: 10,
                place: Some("hall".into()),
                urgency: Urgency::High,
                ..Default::default()
            },
        ),
        rec(
            "svc",
            "2026-11-25T09:00",
            "f",
            Request {
                skill: Some(SkillKind::Translation),
                quantity: 1,
                urgency: Urgency::Critical,
                ..Default::default()
            },
        ),
        rec(
            "tr",
            "2026-11-25T09:00",
            "f",
            Offer { skill: Some(SkillKind::Translation), quantity: 1, ..Default::default() },
        ),
    ];
    let mut add_stock = |id: &str, it: &str, place: &str, q: i64| {
        recs.push(rec(
            id,
            "2026-11-25T08:00",
            "f",
            Movement {
                item: it.into(),
                kind: MovementKind::Receive,
                quantity: q,
                place: place.into(),
                ..Default::default()
            },
        ));
    };
    add_stock("m1", "water", "far", 10);
    add_stock("m2", "water", "tent", 10);
    add_stock("m3", "water2", "hall", 10);
    add_stock("m4", "water3", "hall", 10);
    let l = stock_levels(&recs);
    let s = suggest(&recs, &l, &"req".into(), today, 10);
    let got: Vec<_> = s.iter().map(|s| s.source.clone()).collect();
    assert_eq!(
        got,
        vec![
            Source::Stock { item: "water".into(), place: "tent".into() },
            Source::Stock { item: "water".into(), place: "far".into() },
            Source::Stock { item: "water2".into(), place: "hall".into() },
        ],
        "exact item beats category; same hub beats elsewhere; expired stock is never suggested"
    );
    assert_eq!(s[0].quantity, 10);
    // Deterministic.
    assert_eq!(s, suggest(&recs, &l, &"req".into(), today, 10));
    // Once allocated, the request asks for nothing more.
    recs.push(alloc("a1", "req", None, Some(("water", "tent")), 10));
    let l = stock_levels(&recs);
    assert!(suggest(&recs, &l, &"req".into(), today, 10).is_empty());
    // Service requests match skills only; most urgent first.
    let all = suggest_all(&recs, &l, today, 1);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].source, Source::Offer { offer: "tr".into() });
}
