//! Views derived from records: stock levels, shortages, expiring stock, over-allocations,
//! shift coverage, double-bookings, amended records, expense approval and ledger totals.
//!
//! Every view is a pure function of the records given, so every hub that holds the same
//! records shows the same view.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;

use crate::{
    of_kind, Allocation, AllocationStatus, Amendment, Assignment, Body, Item, Meta, Movement, Offer, Record, RecordId,
    Shift, Timestamp,
};

/// Stock of one item at one place.
pub type Levels = BTreeMap<(RecordId, RecordId), i64>;

/// The level of every (item, place): the sum of all movements, never a stored number.
pub fn stock_levels(records: &[Record]) -> Levels {
    let mut levels = Levels::new();
    for (_, m) in of_kind::<Movement>(records) {
        apply_movement(&mut levels, m);
    }
    levels
}

/// Adds one movement's deltas to `levels`.
pub fn apply_movement(levels: &mut Levels, m: &Movement) {
    for (place, d) in m.deltas() {
        *levels.entry((m.item.clone(), place.clone())).or_insert(0) += d;
    }
}

/// Total level of each item over all places.
pub fn item_totals(levels: &Levels) -> BTreeMap<RecordId, i64> {
    let mut t = BTreeMap::new();
    for ((item, _), q) in levels {
        *t.entry(item.clone()).or_insert(0) += q;
    }
    t
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct Shortage {
    pub item: RecordId,
    pub name: String,
    pub level: i64,
    pub reorder_level: u64,
}

/// Items whose total level is below their reorder level, emptiest first.
pub fn shortages(records: &[Record], levels: &Levels) -> Vec<Shortage> {
    let totals = item_totals(levels);
    let mut out: Vec<Shortage> = of_kind::<Item>(records)
        .filter(|(_, it)| it.reorder_level > 0)
        .filter_map(|(m, it)| {
            let level = totals.get(&m.id).copied().unwrap_or(0);
            (level < it.reorder_level as i64).then(|| Shortage {
                item: m.id.clone(),
                name: it.name.clone(),
                level,
                reorder_level: it.reorder_level,
            })
        })
        .collect();
    // Emptiest relative to need first; ties by id so every hub lists them alike.
    out.sort_by(|a, b| {
        let ra = a.level as i128 * b.reorder_level as i128;
        let rb = b.level as i128 * a.reorder_level as i128;
        ra.cmp(&rb).then_with(|| a.item.cmp(&b.item))
    });
    out
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct Expiring {
    pub item: RecordId,
    pub name: String,
    pub expiry: NaiveDate,
    pub level: i64,
}

/// Stocked items that expire within `days` of `today` (or already have), oldest first.
pub fn expiring(records: &[Record], levels: &Levels, today: NaiveDate, days: i64) -> Vec<Expiring> {
    let totals = item_totals(levels);
    let limit = today + chrono::Duration::days(days);
    let mut out: Vec<Expiring> = of_kind::<Item>(records)
        .filter_map(|(m, it)| {
            let expiry = it.expiry?;
            let level = totals.get(&m.id).copied().unwrap_or(0);
            (expiry <= limit && level > 0).then(|| Expiring {
                item: m.id.clone(),
                name: it.name.clone(),
                expiry,
                level,
            })
        })
        .collect();
    out.sort_by(|a, b| a.expiry.cmp(&b.expiry).then_with(|| a.item.cmp(&b.item)));
    out
}

/// Where an allocation draws from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source {
    Offer { offer: RecordId },
    Stock { item: RecordId, place: RecordId },
}

impl Source {
    pub fn of(a: &Allocation) -> Option<Source> {
        match (&a.offer, &a.item, &a.place) {
            (Some(o), _, _) => Some(Source::Offer { offer: o.clone() }),
            (None, Some(i), Some(p)) => Some(Source::Stock { item: i.clone(), place: p.clone() }),
            _ => None,
        }
    }
}

/// Whether an allocation still consumes its source: offers are consumed by active and delivered
/// allocations; stock only by active ones (a delivery is recorded as an issue movement).
fn consumes(a: &Allocation, src: &Source) -> bool {
    match src {
        Source::Offer { .. } => a.status != AllocationStatus::Released,
        Source::Stock { .. } => a.status == AllocationStatus::Active,
    }
}

/// Quantity already promised from each source.
pub fn allocated(records: &[Record]) -> BTreeMap<Source, u64> {
    let mut out = BTreeMap::new();
    for (_, a) in of_kind::<Allocation>(records) {
        if let Some(src) = Source::of(a) {
            if consumes(a, &src) {
                *out.entry(src).or_insert(0) += a.quantity;
            }
        }
    }
    out
}

/// How much a source holds: an offer's quantity, or a stock level.
pub fn capacity(records: &[Record], levels: &Levels, src: &Source) -> i64 {
    match src {
        Source::Offer { offer } => records
            .iter()
            .find(|r| r.id() == offer)
            .and_then(|r| match &r.body {
                Body::Offer(o) => Some(o.quantity as i64),
                _ => None,
            })
            .unwrap_or(0),
        Source::Stock { item, place } => levels.get(&(item.clone(), place.clone())).copied().unwrap_or(0),
    }
}

/// A source promised beyond what it holds: shown to a person to settle, never resolved silently.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct OverAllocation {
    pub source: Source,
    pub capacity: i64,
    pub allocated: u64,
    pub allocations: Vec<RecordId>,
}

/// Every source whose allocations exceed what it holds.
pub fn over_allocations(records: &[Record], levels: &Levels) -> Vec<OverAllocation> {
    let mut by_source: BTreeMap<Source, (u64, Vec<RecordId>)> = BTreeMap::new();
    for (m, a) in of_kind::<Allocation>(records) {
        if let Some(src) = Source::of(a) {
            if consumes(a, &src) {
                let e = by_source.entry(src).or_default();
                e.0 += a.quantity;
                e.1.push(m.id.clone());
            }
        }
    }
    by_source
        .into_iter()
        .filter_map(|(source, (allocated, mut allocations))| {
            let capacity = capacity(records, levels, &source);
            allocations.sort();
            (allocated as i64 > capacity).then_some(OverAllocation { source, capacity, allocated, allocations })
        })
        .collect()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct Coverage {
    pub shift: RecordId,
    pub start: Timestamp,
    pub end: Timestamp,
    pub needed: u32,
    pub assigned: u32,
}

/// For each shift, how many people it needs and how many are assigned, by start time.
pub fn shift_coverage(records: &[Record]) -> Vec<Coverage> {
    let mut assigned: BTreeMap<&RecordId, BTreeSet<&RecordId>> = BTreeMap::new();
    for (_, a) in of_kind::<Assignment>(records).filter(|(_, a)| a.active) {
        assigned.entry(&a.shift).or_default().insert(&a.volunteer);
    }
    let mut out: Vec<Coverage> = of_kind::<Shift>(records)
        .map(|(m, s)| Coverage {
            shift: m.id.clone(),
            start: s.start,
            end: s.end,
            needed: s.needed,
            assigned: assigned.get(&m.id).map_or(0, |v| v.len() as u32),
        })
        .collect();
    out.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.shift.cmp(&b.shift)));
    out
}

/// Shifts starting in `[from, to)` with fewer people assigned than needed.
pub fn unfilled_shifts(records: &[Record], from: Timestamp, to: Timestamp) -> Vec<Coverage> {
    shift_coverage(records).into_iter().filter(|c| c.start >= from && c.start < to && c.assigned < c.needed).collect()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct DoubleBooking {
    pub volunteer: RecordId,
    pub first: RecordId,
    pub second: RecordId,
}

/// Volunteers actively assigned to two shifts that overlap in time.
pub fn double_bookings(records: &[Record]) -> Vec<DoubleBooking> {
    let shifts: BTreeMap<&RecordId, &Shift> = of_kind::<Shift>(records).map(|(m, s)| (&m.id, s)).collect();
    let mut per_volunteer: BTreeMap<&RecordId, BTreeSet<&RecordId>> = BTreeMap::new();
    for (_, a) in of_kind::<Assignment>(records).filter(|(_, a)| a.active) {
        per_volunteer.entry(&a.volunteer).or_default().insert(&a.shift);
    }
    let mut out = Vec::new();
    for (v, set) in per_volunteer {
        let list: Vec<_> = set.into_iter().filter_map(|id| shifts.get(id).map(|s| (id, *s))).collect();
        for (i, (ida, a)) in list.iter().enumerate() {
            for (idb, b) in &list[i + 1..] {
                if a.overlaps(b) {
                    out.push(DoubleBooking { volunteer: v.clone(), first: (*ida).clone(), second: (*idb).clone() });
                }
            }
        }
    }
    out
}

/// The amendments of `target`, in the order they apply (creation time, then id).
pub fn amendments_of<'a>(records: &'a [Record], target: &RecordId) -> Vec<(&'a Meta, &'a Amendment)> {
    let mut v: Vec<_> = of_kind::<Amendment>(records).filter(|(_, a)| &a.target == target).collect();
    v.sort_by(|a, b| a.0.created_at.cmp(&b.0.created_at).then_with(|| a.0.id.cmp(&b.0.id)));
    v
}

/// An append-only record as its amendments make it read now; the stored original is untouched.
/// Amendments that name an unknown field or give a value of the wrong type are skipped, each
/// reported by its id.
pub fn amended(record: &Record, amendments: &[(&Meta, &Amendment)]) -> (Record, Vec<RecordId>) {
    let mut fields = record.body.to_fields();
    let mut rejected = Vec::new();
    for (m, a) in amendments {
        if !fields.contains_key(&a.field) {
            rejected.push(m.id.clone());
            continue;
        }
        let mut trial = fields.clone();
        trial.insert(a.field.clone(), a.value.clone());
        match Body::from_fields(record.kind(), trial.clone()) {
            Ok(b) if b.validate().is_ok() => fields = trial,
            _ => rejected.push(m.id.clone()),
        }
    }
    let body = Body::from_fields(record.kind(), fields).unwrap_or_else(|_| record.body.clone());
    (Record { meta: record.meta.clone(), body }, rejected)
}

/// Checks that an amendment's value fits the field of the record it amends.
pub fn check_amendment(target: &Record, field: &str, value: &Value) -> Result<(), crate::FieldError> {
    let mut fields = target.body.to_fields();
    if !fields.contains_key(field) {
        return Err(crate::FieldError::new(
            "field",
            format!(
                "{} has no field {field:?}; its fields are: {}",
                target.kind(),
                target.kind().field_names().join(", ")
            ),
        ));
    }
    fields.insert(field.to_string(), value.clone());
    let body = Body::from_fields(target.kind(), fields).map_err(|e| crate::FieldError::new("value", e.to_string()))?;
    body.validate().map_err(|errs| crate::FieldError::new("value", errs[0].to_string()))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ApprovalState {
    Approved { approvers: Vec<String> },
    Rejected { by: String },
    Unapproved { have: u32, need: u32, why: String },
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct Totals {
    /// (fund, currency) → minor units.
    #[serde(serialize_with = "total_lines")]
    #[ts(as = "Vec<TotalLine>")]
    pub per_fund: BTreeMap<(String, String), i64>,
    /// (category, currency) → minor units.
    #[serde(serialize_with = "total_lines")]
    #[ts(as = "Vec<TotalLine>")]
    pub per_category: BTreeMap<(String, String), i64>,
}

/// One line of [`Totals`] as front ends read it (JSON has no tuple keys).
#[derive(Serialize, ts_rs::TS)]
pub struct TotalLine {
    pub name: String,
    pub currency: String,
    pub minor: i64,
    /// The amount in the currency's units, e.g. "42.50 EUR".
    pub amount: String,
}

fn total_lines<S: serde::Serializer>(m: &BTreeMap<(String, String), i64>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(m.iter().map(|((name, currency), minor)| TotalLine {
        name: name.clone(),
        currency: currency.clone(),
        minor: *minor,
        amount: crate::format_amount(*minor, currency),
    }))
}

/// Ledger totals of expenses as amended, those `rejected` says were rejected excluded (whether
/// an expense was approved is the authority log's to say, not a record's).
pub fn ledger_totals(records: &[Record], rejected: impl Fn(&Record) -> bool) -> Totals {
    let mut t = Totals::default();
    for r in records.iter().filter(|r| matches!(r.body, Body::Expense(_))) {
        let (r, _) = amended(r, &amendments_of(records, r.id()));
        let Body::Expense(e) = &r.body else { continue };
        if rejected(&r) {
            continue;
        }
        *t.per_fund.entry((e.fund.clone(), e.currency.clone())).or_insert(0) += e.amount_minor;
        *t.per_category.entry((e.category.clone(), e.currency.clone())).or_insert(0) += e.amount_minor;
    }
    t
}

/// Offers still open with quantity left after allocations.
pub fn open_offers(records: &[Record]) -> impl Iterator<Item = (&Meta, &Offer)> {
    of_kind::<Offer>(records).filter(|(_, o)| o.status.is_active())
}
