//! Queries: records, search, history, conflicts, stock, suggestions and the overview.
//!
//! Queries read the query index. The store's typed queries narrow the candidates along its
//! indexes (the hub hands it the model's rules as parameters: which statuses are active, what is
//! urgent); the model's views then apply the rules, so every front end shows the same.

use std::collections::BTreeMap;

use aidmesh_model::matching::{suggest, suggest_all, Suggestion};
use aidmesh_model::views::{
    self, amended, amendments_of, double_bookings, expiring, over_allocations, shortages, unfilled_shifts,
    ApprovalState, Coverage, DoubleBooking, Expiring, Levels, OverAllocation, Shortage,
};
use aidmesh_model::{Body, FlowStatus, Kind, Record, RecordId, Shift, Timestamp, Urgency};
use aidmesh_replica::HistoryEntry;
use aidmesh_store::ShiftWindow;
use serde::Serialize;
use serde_json::Value;

use crate::write::parse_record;
use crate::{Error, Hit, Hub, Result, VaultState};

/// A place, and how much is stored there.
#[derive(Clone, Debug, PartialEq, Serialize, ts_rs::TS)]
pub struct PlaceView {
    pub place: Record,
    /// Items with stock there.
    pub items: i64,
    /// Units of all of them together.
    pub units: i64,
}

/// An item stored at a place, by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct Stored {
    pub item: String,
    pub name: String,
    pub unit: String,
    pub quantity: i64,
}

/// A record with fields written on two hubs apart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct Conflicted {
    pub id: String,
    pub kind: String,
    /// What people call the record ("Thermal blanket").
    pub label: String,
    /// How many of its fields wait for a person.
    pub fields: i64,
}

/// A record as a person reads it: amended, with its conflicts, history and derived facts.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
pub struct RecordView {
    /// The record as it reads now (amendments applied for append-only kinds).
    pub record: Record,
    /// The original, when amendments changed it.
    pub original: Option<Record>,
    pub amendments: Vec<Record>,
    pub conflicts: Vec<ConflictEntry>,
    pub history: Vec<HistoryLine>,
    /// For items: stock per place.
    pub stock: Vec<StockLine>,
    /// For items: every movement of it, newest first.
    pub movements: Vec<Record>,
    /// For expenses: whether the approvals satisfy the policy.
    pub approval: Option<ApprovalState>,
}

impl RecordView {
    /// The view as `handle` may read it (see `Record::redacted_for`): a withheld grievance also
    /// loses its history, conflicts and earlier versions, which would show the content.
    pub fn redacted_for(mut self, handle: &str) -> RecordView {
        if let Some(r) = self.record.redacted_for(handle) {
            self.record = r;
            self.original = None;
            self.amendments.clear();
            self.history.clear();
            self.conflicts.clear();
        }
        self
    }
}

/// A record in a list: as it reads now, and whether amendments changed it (`show` has the
/// original and the amendments).
#[derive(Clone, Debug, PartialEq, Serialize, ts_rs::TS)]
pub struct Listed {
    #[serde(flatten)]
    pub record: Record,
    pub amended: bool,
}

impl std::ops::Deref for Listed {
    type Target = Record;
    fn deref(&self) -> &Record {
        &self.record
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, ts_rs::TS)]
pub struct ConflictEntry {
    pub field: String,
    pub values: Vec<Value>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct HistoryLine {
    pub at: Timestamp,
    /// The hub (its id) where the change was made.
    pub hub: String,
    /// Who made it, as the hub wrote it.
    pub handle: String,
    /// The person whose key signed the change (checked when it arrived), by handle; by the start
    /// of the key, marked, where it is no current person's key: one since revoked or removed, or
    /// one this hub does not know as a person's (the entry that added them has not arrived yet,
    /// or a hub made it up); none for a change made while no person of the coalition was
    /// unlocked, whose `handle` is only the hub's word.
    pub person: Option<String>,
    /// The change's hash: the same on every hub that holds it.
    pub change: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct StockLine {
    pub item: String,
    pub place: String,
    pub quantity: i64,
}

/// What a coordinator needs to see first.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
pub struct Overview {
    pub hub_name: String,
    pub now: Timestamp,
    pub shortages: Vec<Shortage>,
    pub expiring: Vec<Expiring>,
    pub urgent_requests: Vec<Record>,
    pub unfilled_shifts: Vec<Coverage>,
    pub recent_incidents: Vec<Record>,
    pub over_allocations: Vec<OverAllocation>,
    pub double_bookings: Vec<DoubleBooking>,
    /// Records with fields written on two hubs apart, waiting for a person to keep a version.
    pub field_conflicts: Vec<Conflicted>,
    pub unapproved_expenses: Vec<Record>,
    pub counts: BTreeMap<String, i64>,
}

/// The shifts of a window of time, with those short of people and the double-bookings.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
pub struct Roster {
    pub shifts: Vec<Record>,
    pub unfilled: Vec<Coverage>,
    pub double_bookings: Vec<DoubleBooking>,
}

/// The ledger: totals, and the expenses still waiting for approval with what each lacks.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
pub struct Ledger {
    pub totals: views::Totals,
    pub unapproved: Vec<Waiting>,
}

/// An expense waiting for approval, and what it lacks (who may approve, how many).
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
pub struct Waiting {
    #[serde(flatten)]
    pub expense: Record,
    pub approval: ApprovalState,
}

/// How far ahead the overview looks for unfilled shifts, and back for incidents.
const SHIFT_HORIZON_H: i64 = 12;
const INCIDENT_WINDOW_H: i64 = 24;
const EXPIRY_DAYS: i64 = 7;
/// How many lines each panel of the overview shows at most.
const PANEL: i64 = 20;

impl Hub {
    /// One record, as stored.
    pub fn get(&self, id: &str) -> Result<Record> {
        let (_, _, json) =
            self.store.record(&id.trim().to_ascii_lowercase())?.ok_or_else(|| Error::NotFound(id.into()))?;
        parse_record(&json)
    }

    /// A record as its amendments make it read now.
    pub(crate) fn amended_record(&self, rec: &Record) -> Result<Record> {
        let amendment_recs = self.by_field(Kind::Amendment, "target", rec.id().as_str())?;
        Ok(amended(rec, &amendments_of(&amendment_recs, rec.id())).0)
    }

    /// One record with everything a person needs to read it.
    pub fn show(&mut self, id: &str) -> Result<RecordView> {
        let rec = self.get(id)?;
        let (_, doc_id, _) = self.store.record(rec.id().as_str())?.ok_or_else(|| Error::NotFound(id.into()))?;
        let amendment_recs = self.by_field(Kind::Amendment, "target", rec.id().as_str())?;
        let ams = amendments_of(&amendment_recs, rec.id());
        let (now, _) = amended(&rec, &ams);
        let original = (now != rec).then(|| rec.clone());
        let doc = self.doc(&doc_id)?;
        let conflicts =
            doc.conflicts(rec.id())?.into_iter().map(|c| ConflictEntry { field: c.field, values: c.values }).collect();
        let history = doc.history(rec.id());
        let history = self.history_lines(history);
        let (stock, movements) = if rec.kind() == Kind::Item {
            let mut m = self.by_field(Kind::Movement, "item", rec.id().as_str())?;
            m.sort_by(|a, b| (b.meta.created_at, b.id()).cmp(&(a.meta.created_at, a.id())));
            (self.stock(Some(rec.id().as_str()))?, m)
        } else {
            (Vec::new(), Vec::new())
        };
        let approval = match &now.body {
            Body::Expense(_) => Some(self.approval_of(&now)?),
            _ => None,
        };
        Ok(RecordView {
            record: now,
            original,
            amendments: amendment_recs,
            conflicts,
            history,
            stock,
            movements,
            approval,
        }
        .redacted_for(&self.handle))
    }

    /// Records of a kind, newest first, as every face shows them: append-only records with
    /// their amendments applied (and marked), confidential content withheld from a person who
    /// may not read it.
    pub fn list(&self, kind: Kind, limit: usize, offset: usize) -> Result<Vec<Listed>> {
        let recs = self.stored(kind, limit, offset)?;
        let ams = if kind.append_only() && !recs.is_empty() {
            let ids: Vec<&str> = recs.iter().map(|r| r.id().as_str()).collect();
            parse_all(&self.store.referring_any(Kind::Amendment.name(), "target", &ids)?)?
        } else {
            Vec::new()
        };
        Ok(recs
            .into_iter()
            .map(|r| {
                let (now, _) = amended(&r, &amendments_of(&ams, r.id()));
                let amended = now != r;
                Listed { record: now.redacted_for(&self.handle).unwrap_or(now), amended }
            })
            .collect())
    }

    /// Records of a kind as stored (no amendments applied, nothing withheld), newest first:
    /// for checks and tools, not for people.
    pub fn stored(&self, kind: Kind, limit: usize, offset: usize) -> Result<Vec<Record>> {
        self.store.records_of_kind(kind.name(), limit as i64, offset as i64)?.iter().map(|j| parse_record(j)).collect()
    }

    /// How many records of a kind the hub holds.
    pub fn count(&self, kind: Kind) -> Result<i64> {
        Ok(self.store.count(kind.name())?)
    }

    /// Full-text search over records, optionally of one kind.
    ///
    /// A confidential grievance the acting person may not read is never a hit: that it matched
    /// would tell what it says.
    pub fn search(&self, query: &str, kind: Option<Kind>, limit: usize) -> Result<Vec<Hit>> {
        let mut hits = self.store.search(query, kind.map(Kind::name), limit as i64)?;
        let mut withheld = Vec::new();
        for h in hits.iter().filter(|h| h.kind == Kind::Grievance.name()) {
            if self.get(&h.id)?.redacted_for(&self.handle).is_some() {
                withheld.push(h.id.clone());
            }
        }
        hits.retain(|h| !withheld.contains(&h.id));
        Ok(hits)
    }

    /// Who changed a record, when, on which hub.
    pub fn history(&mut self, id: &str) -> Result<Vec<HistoryLine>> {
        let rec = self.get(id)?;
        if rec.redacted_for(&self.handle).is_some() {
            return Ok(Vec::new());
        }
        let (_, doc_id, _) = self.store.record(rec.id().as_str())?.ok_or_else(|| Error::NotFound(id.into()))?;
        let history = self.doc(&doc_id)?.history(rec.id());
        Ok(self.history_lines(history))
    }

    /// Stock per item and place, from the sums of movements.
    pub fn stock(&self, item: Option<&str>) -> Result<Vec<StockLine>> {
        Ok(self
            .store
            .stock(item)?
            .into_iter()
            .filter(|(_, _, q)| *q != 0)
            .map(|(item, place, quantity)| StockLine { item, place, quantity })
            .collect())
    }

    /// Every place, with how many items and units are stored there.
    pub fn places(&self) -> Result<Vec<PlaceView>> {
        let totals: BTreeMap<String, (i64, i64)> =
            self.store.stock_per_place()?.into_iter().map(|(p, n, u)| (p, (n, u))).collect();
        let mut out: Vec<PlaceView> = self
            .all(Kind::Place)?
            .into_iter()
            .map(|place| {
                let (items, units) = totals.get(place.id().as_str()).copied().unwrap_or((0, 0));
                PlaceView { place, items, units }
            })
            .collect();
        out.sort_by_key(|p| p.place.body.label());
        Ok(out)
    }

    /// What is stored at a place, by item name.
    pub fn stored_at(&self, place: &str) -> Result<Vec<Stored>> {
        let place = self.get(place)?;
        if place.kind() != Kind::Place {
            return Err(Error::NotFound(format!("place {}", place.id())));
        }
        let mut out = Vec::new();
        for (item, quantity) in self.store.stock_at(place.id().as_str())? {
            let (name, unit) = match self.get(&item).map(|r| r.body) {
                Ok(Body::Item(i)) => (i.name, i.unit),
                _ => (item.clone(), String::new()),
            };
            out.push(Stored { item, name, unit, quantity });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.item.cmp(&b.item)));
        Ok(out)
    }

    /// Reads a vault entry (personal data).
    pub fn vault_get(&self, id: &str) -> Result<VaultState> {
        self.store.vault_get(id)?.ok_or_else(|| Error::NotFound(id.into()))
    }

    /// Suggested allocations for one request, or for every open request, as the matching
    /// engine ranks them (`Hub::suggestions` puts them in words).
    pub(crate) fn raw_suggestions(&self, request: Option<&str>, limit: usize) -> Result<Vec<Suggestion>> {
        let mut recs = Vec::new();
        for k in [Kind::Item, Kind::Place, Kind::Offer, Kind::Allocation, Kind::Request] {
            recs.extend(self.all(k)?);
        }
        let levels = self.levels()?;
        let today = self.clock.now().date();
        Ok(match request {
            Some(id) => {
                let r = self.get(id)?;
                if r.kind() != Kind::Request {
                    return Err(Error::NotFound(format!("request {id}")));
                }
                suggest(&recs, &levels, r.id(), today, limit)
            }
            None => suggest_all(&recs, &levels, today, limit),
        })
    }

    /// The overview of the hub now.
    ///
    /// Each panel reads only its candidates from the index (items below their reorder level,
    /// items expiring soon, open urgent requests, shifts in the window, recent incidents,
    /// allocations), then the model's views decide, so the cost does not grow with history.
    pub fn overview(&self) -> Result<Overview> {
        let now = self.clock.now();
        // The worst shortages and the soonest expiries come ordered from the item-level index;
        // the model's views then decide on those candidates.
        let (short_items, short_levels) = self.with_totals(self.store.short_items(PANEL)?)?;
        let shortages = shortages(&short_items, &short_levels);
        let limit = (now.date() + chrono::Duration::days(EXPIRY_DAYS)).to_string();
        let (expiring_items, expiring_levels) = self.with_totals(self.store.expiring_items(&limit, PANEL)?)?;
        let expiring = expiring(&expiring_items, &expiring_levels, now.date(), EXPIRY_DAYS);
        // Active requests, the most urgent first, each urgency by deadline (none last): the store
        // reads them in that order, so only those shown are read.
        let active: Vec<&str> = FlowStatus::active().map(FlowStatus::name).collect();
        let mut urgent_requests = Vec::new();
        for urgency in Urgency::URGENT {
            let room = PANEL - urgent_requests.len() as i64;
            urgent_requests.extend(parse_all(&self.store.requests_by_deadline(&active, urgency.name(), room)?)?);
        }
        let (_, unfilled, doubles) = self.roster_window(now, now.plus_hours(SHIFT_HORIZON_H))?;
        let incidents = parse_all(&self.store.records_between(
            Kind::Incident.name(),
            now.plus_hours(-INCIDENT_WINDOW_H).millis(),
            now.plus_hours(1).millis(),
        )?)?;
        let ams = self.amendments_between(
            Kind::Incident,
            now.plus_hours(-INCIDENT_WINDOW_H).millis(),
            now.plus_hours(1).millis(),
        )?;
        let mut incidents: Vec<Record> = incidents.iter().map(|r| amended(r, &amendments_of(&ams, r.id())).0).collect();
        incidents.sort_by_key(|r| match &r.body {
            Body::Incident(i) => (std::cmp::Reverse(i.severity), std::cmp::Reverse(i.occurred)),
            _ => (std::cmp::Reverse(0), std::cmp::Reverse(Timestamp(0))),
        });
        incidents.truncate(PANEL as usize);
        let over = self.over_allocations()?;
        let field_conflicts = self
            .store
            .conflicted(50)?
            .into_iter()
            .map(|(id, kind, fields)| {
                let label =
                    self.get(&id).map(|r| r.redacted_for(&self.handle).unwrap_or(r).body.label()).unwrap_or_default();
                Conflicted { id, kind, label, fields }
            })
            .collect();
        let unapproved = self.unapproved_expenses(50)?;
        let mut counts = BTreeMap::new();
        for k in Kind::ALL {
            counts.insert(k.name().to_string(), self.store.count(k.name())?);
        }
        Ok(Overview {
            hub_name: self.hub_name()?,
            now,
            shortages,
            expiring,
            urgent_requests,
            unfilled_shifts: unfilled,
            recent_incidents: incidents,
            over_allocations: over,
            double_bookings: doubles,
            field_conflicts,
            unapproved_expenses: unapproved,
            counts,
        })
    }

    /// Expenses whose approvals do not (yet) satisfy the policy in force, newest first.
    pub fn unapproved_expenses(&self, limit: usize) -> Result<Vec<Record>> {
        Ok(self.unapproved_expenses_why(limit)?.into_iter().map(|(r, _)| r).collect())
    }

    /// Expenses still short of approvals, each with what is missing (who may approve, how many).
    pub fn unapproved_expenses_why(&self, limit: usize) -> Result<Vec<(Record, views::ApprovalState)>> {
        let ams = self.amendments_between(Kind::Expense, i64::MIN, i64::MAX)?;
        let mut out = Vec::new();
        for r in self.all(Kind::Expense)? {
            let r = amended(&r, &amendments_of(&ams, r.id())).0;
            let state = self.approval_of(&r)?;
            if matches!(state, ApprovalState::Unapproved { .. }) {
                out.push((r.clone(), state));
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Sources promised beyond what they hold: reads the allocations and only the offers and
    /// stock they draw on.
    pub fn over_allocations(&self) -> Result<Vec<OverAllocation>> {
        let mut recs = self.all(Kind::Allocation)?;
        let mut offers = std::collections::BTreeSet::new();
        let mut items = std::collections::BTreeSet::new();
        for r in &recs {
            if let Body::Allocation(a) = &r.body {
                offers.extend(a.offer.clone());
                items.extend(a.item.clone());
            }
        }
        for o in &offers {
            if let Some((_, _, json)) = self.store.record(o.as_str())? {
                recs.push(parse_record(&json)?);
            }
        }
        Ok(over_allocations(&recs, &self.levels_of(items.iter())?))
    }

    /// Amendments of the records of `kind` created in `[from, to)`, in one query.
    fn amendments_between(&self, kind: Kind, from: i64, to: i64) -> Result<Vec<Record>> {
        parse_all(&self.store.referring_created_between(Kind::Amendment.name(), "target", kind.name(), from, to)?)
    }

    /// Records with their total stock, as the views take them: one level per item (the views
    /// that use these only read totals).
    fn with_totals(&self, rows: Vec<(String, i64)>) -> Result<(Vec<Record>, Levels)> {
        let mut recs = Vec::with_capacity(rows.len());
        let mut levels = Levels::new();
        for (json, total) in rows {
            let r = parse_record(&json)?;
            levels.insert((r.id().clone(), RecordId::from("*")), total);
            recs.push(r);
        }
        Ok((recs, levels))
    }

    /// Stock levels of the given items at every place.
    fn levels_of<'a>(&self, items: impl Iterator<Item = &'a RecordId>) -> Result<Levels> {
        let mut out = Levels::new();
        for i in items {
            for (item, place, q) in self.store.stock(Some(i.as_str()))? {
                out.insert((RecordId::from(item.as_str()), RecordId::from(place.as_str())), q);
            }
        }
        Ok(out)
    }

    /// Shifts starting in `[from, to)`, which are short of people, and double-bookings among
    /// the volunteers assigned to shifts around that window.
    pub fn roster_window(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<(Vec<Record>, Vec<Coverage>, Vec<DoubleBooking>)> {
        // Shifts that overlap the window or end in the day before it (for double-bookings): as a
        // shift lasts at most `Shift::MAX_HOURS`, they start at most that much earlier still, so
        // they are a range of the `shifts_start` index.
        let around = from.plus_days(-1);
        let window = ShiftWindow {
            starts_from: around.plus_hours(-Shift::MAX_HOURS).to_string(),
            starts_before: to.to_string(),
            ends_after: around.to_string(),
        };
        let shifts = parse_all(&self.store.shifts_in(&window)?)?;
        let mut recs = shifts.clone();
        recs.extend(parse_all(&self.store.referring_shifts_in(Kind::Assignment.name(), "shift", &window)?)?);
        let unfilled = unfilled_shifts(&recs, from, to);
        let doubles = double_bookings(&recs);
        Ok((shifts, unfilled, doubles))
    }

    /// Shifts starting within `hours` of `from` (one hour to two weeks), as the roster shows them.
    pub fn roster(&self, from: Timestamp, hours: i64) -> Result<Roster> {
        let to = Timestamp::from_millis(from.millis() + hours.clamp(1, 24 * 14) * 3_600_000);
        let (shifts, unfilled, double_bookings) = self.roster_window(from, to)?;
        Ok(Roster { shifts, unfilled, double_bookings })
    }

    /// The ledger as a treasurer reads it: totals, and up to `limit` waiting expenses.
    pub fn ledger(&self, limit: usize) -> Result<Ledger> {
        let unapproved = self
            .unapproved_expenses_why(limit)?
            .into_iter()
            .map(|(expense, approval)| Waiting { expense, approval })
            .collect();
        Ok(Ledger { totals: self.ledger_totals()?, unapproved })
    }

    /// Ledger totals per fund and category, rejected expenses excluded.
    pub fn ledger_totals(&self) -> Result<views::Totals> {
        let st = self.resolved()?;
        Ok(views::ledger_totals(&self.ledger_context()?, |r| match &r.body {
            Body::Expense(e) => matches!(
                st.approval(r.id().as_str(), e.amount_minor, &e.currency, &e.payee),
                ApprovalState::Rejected { .. }
            ),
            _ => false,
        }))
    }

    fn ledger_context(&self) -> Result<Vec<Record>> {
        let mut recs = self.all(Kind::Expense)?;
        recs.extend(self.all(Kind::Amendment)?.into_iter().filter(|a| {
            matches!(&a.body, Body::Amendment(x)
                if self.store.kind_of(x.target.as_str()).ok().flatten().is_some_and(|k| k == "expense"))
        }));
        Ok(recs)
    }

    /// Whether an expense (as amended) is approved: the authority log's to say.
    pub(crate) fn approval_of(&self, expense: &Record) -> Result<ApprovalState> {
        let Body::Expense(e) = &expense.body else {
            return Err(Error::invalid(
                "approval",
                vec![aidmesh_model::FieldError::new("expense", "is not an expense")],
            ));
        };
        Ok(self.resolved()?.approval(expense.id().as_str(), e.amount_minor, &e.currency, &e.payee))
    }

    pub(crate) fn all(&self, kind: Kind) -> Result<Vec<Record>> {
        parse_all(&self.store.records_of_kind(kind.name(), i64::MAX, 0)?)
    }

    pub(crate) fn by_field(&self, kind: Kind, field: &str, value: &str) -> Result<Vec<Record>> {
        parse_all(&self.store.referring(kind.name(), field, value)?)
    }

    pub(crate) fn levels(&self) -> Result<Levels> {
        Ok(self
            .store
            .stock(None)?
            .into_iter()
            .map(|(i, p, q)| ((RecordId::from(i.as_str()), RecordId::from(p.as_str())), q))
            .collect())
    }
}

fn parse_all(jsons: &[String]) -> Result<Vec<Record>> {
    jsons.iter().map(|j| parse_record(j)).collect()
}

impl Hub {
    /// Changes as people see them: the hub is the one whose key signed it, the person the one
    /// whose key signed it too (both checked when it arrived), never what the change's message
    /// claims; the handle is what that hub wrote.
    fn history_lines(&self, entries: Vec<HistoryEntry>) -> Vec<HistoryLine> {
        let state = self.resolved();
        entries
            .into_iter()
            .map(|h| {
                let hub = aidmesh_mesh::changes::hub_id(&h.actor)
                    .map(|id| id.to_string())
                    .unwrap_or_else(|| format!("unknown ({})", h.hub));
                let person = aidmesh_mesh::changes::person_key(&h.actor).map(|k| {
                    let key = aidmesh_mesh::authority::Key(k);
                    let st = state.as_ref().ok();
                    match st.and_then(|st| st.person_of(&key)) {
                        Some(p) => p.handle.clone(),
                        None if st.is_some_and(|st| st.was_given(&key)) => {
                            format!("{} (a person's key, since revoked or removed)", key.short())
                        }
                        None => format!("{} (not a person of the coalition)", key.short()),
                    }
                });
                HistoryLine { at: h.at, hub, handle: h.handle, person, change: h.hash }
            })
            .collect()
    }
}
