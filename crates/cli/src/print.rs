//! Human-readable output. `--json` prints the same data as JSON.

use aidmesh_hub::model::views::Source;
use aidmesh_hub::model::{format_amount, Body};
use aidmesh_hub::{Hub, Listed, Overview, RecordView, StockLine};
use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

pub(crate) fn json<T: Serialize + ?Sized>(v: &T) -> Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Hides a confidential grievance's content from anyone who may not read it.
pub(crate) fn source(s: &Source) -> String {
    match s {
        Source::Offer { offer } => format!("offer {offer}"),
        Source::Stock { item, place } => format!("stock of {item} at {place}"),
    }
}

fn label(hub: &Hub, id: &str) -> String {
    hub.get(id).map(|r| r.body.label()).unwrap_or_else(|_| id.to_string())
}

pub(crate) fn overview(hub: &Hub, ov: &Overview) -> Result<()> {
    outln!("{} — {}", ov.hub_name, ov.now);
    section("Shortages (below reorder level)", ov.shortages.len());
    for s in &ov.shortages {
        outln!("  {:<40} {:>6} of {:<6} {}", s.name, s.level, s.reorder_level, s.item);
    }
    section("Expiring within 7 days (oldest first)", ov.expiring.len());
    for e in &ov.expiring {
        outln!("  {}  {:<40} {:>6} in stock  {}", e.expiry, e.name, e.level, e.item);
    }
    section("Open urgent requests", ov.urgent_requests.len());
    for r in &ov.urgent_requests {
        if let Body::Request(q) = &r.body {
            let by = q.needed_by.map(|t| format!("by {t}")).unwrap_or_default();
            outln!(
                "  {:<9} x{:<5} {:<40} {by}  {}",
                format!("{:?}", q.urgency).to_uppercase(),
                q.quantity,
                r.body.label(),
                r.id()
            );
        }
    }
    section("Unfilled shifts in the next 12 hours", ov.unfilled_shifts.len());
    for c in &ov.unfilled_shifts {
        outln!("  {} – {}  {}/{} people  {}", c.start, c.end, c.assigned, c.needed, c.shift);
    }
    section("Incidents in the last 24 hours (most severe first)", ov.recent_incidents.len());
    for r in &ov.recent_incidents {
        if let Body::Incident(i) = &r.body {
            outln!("  severity {}  {:?}  {:<50} {}", i.severity, i.status, r.body.label(), r.id());
        }
    }
    let conflicts = ov.over_allocations.len() + ov.field_conflicts.len() + ov.double_bookings.len();
    section("Conflicts waiting for a person", conflicts);
    for o in &ov.over_allocations {
        let what = match &o.source {
            Source::Offer { offer } => format!("offer \"{}\"", label(hub, offer.as_str())),
            s => source(s),
        };
        outln!(
            "  OVER-ALLOCATED {what}: {} promised, {} available ({} allocations)",
            o.allocated,
            o.capacity,
            o.allocations.len()
        );
    }
    for d in &ov.double_bookings {
        outln!("  DOUBLE-BOOKED {} on shifts {} and {}", label(hub, d.volunteer.as_str()), d.first, d.second);
    }
    for c in &ov.field_conflicts {
        outln!(
            "  EDITED ON TWO HUBS {} {} ({}): {} field(s) — `aidmesh show {}`",
            c.kind,
            c.label,
            c.id,
            c.fields,
            c.id
        );
    }
    section("Expenses waiting for approval", ov.unapproved_expenses.len());
    for r in &ov.unapproved_expenses {
        if let Body::Expense(e) = &r.body {
            outln!("  {:>14}  {:<30} {}", format_amount(e.amount_minor, &e.currency), e.purpose, r.id());
        }
    }
    Ok(())
}

fn section(title: &str, n: usize) {
    outln!();
    if n == 0 {
        outln!("{title}: none");
    } else {
        outln!("{title}: {n}");
    }
}

pub(crate) fn list(recs: &[Listed], total: i64, offset: usize) -> Result<()> {
    for r in recs {
        let mark = if r.amended { "  (amended: aidmesh show for the original)" } else { "" };
        outln!("{}  {}  {}{mark}", r.id(), r.meta.created_at, r.body.label());
    }
    let shown = recs.len();
    if (offset + shown) < total as usize {
        outln!("({} of {total} shown; use --offset {} for more)", shown, offset + shown);
    } else if shown == 0 {
        outln!("(none)");
    }
    Ok(())
}

pub(crate) fn show(v: &RecordView) -> Result<()> {
    let r = &v.record;
    outln!("{} {}", r.kind(), r.id());
    outln!("  created {} by {} on hub {}", r.meta.created_at, r.meta.created_by, r.meta.created_hub);
    let orig = v.original.as_ref().map(|o| o.body.to_fields());
    for (k, val) in r.body.to_fields() {
        let was = orig.as_ref().and_then(|o| o.get(&k)).filter(|o| **o != val);
        let mark = if v.conflicts.iter().any(|c| c.field == k) { "  ⚠ CONFLICT" } else { "" };
        match was {
            Some(w) => outln!("  {k:<20} {}  (amended; originally {}){mark}", show_value(&val), show_value(w)),
            None => outln!("  {k:<20} {}{mark}", show_value(&val)),
        }
    }
    for c in &v.conflicts {
        let vals: Vec<String> = c.values.iter().map(show_value).collect();
        outln!("  conflict on {}: {} — write the field again to settle it", c.field, vals.join(" | "));
    }
    if !v.stock.is_empty() {
        outln!("  stock:");
        for s in &v.stock {
            outln!("    {:>6} at {}", s.quantity, s.place);
        }
    }
    if let Some(a) = &v.approval {
        outln!("  approval: {}", serde_json::to_string(a)?);
    }
    if !v.amendments.is_empty() {
        outln!("  amendments:");
        for a in &v.amendments {
            if let Body::Amendment(x) = &a.body {
                outln!(
                    "    {} by {}: {} = {} ({})",
                    a.meta.created_at,
                    a.meta.created_by,
                    x.field,
                    show_value(&x.value),
                    x.reason
                );
            }
        }
    }
    outln!("  history:");
    for h in &v.history {
        outln!("    {} by {} on hub {}", h.at, signed_by(h), h.hub.get(..12).unwrap_or(&h.hub));
    }
    Ok(())
}

/// Who made a change: the person whose key signed it, or, where none did, the handle its hub
/// wrote, marked as only that hub's word.
pub(crate) fn signed_by(h: &aidmesh_hub::HistoryLine) -> String {
    match &h.person {
        Some(p) => p.clone(),
        None => format!("{} (no person signed)", h.handle),
    }
}

fn show_value(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

pub(crate) fn stock(hub: &Hub, lines: &[StockLine]) -> Result<()> {
    if lines.is_empty() {
        outln!("No stock recorded.");
    }
    for s in lines {
        outln!("{:>8}  {:<40} at {}", s.quantity, label(hub, &s.item), label(hub, &s.place));
    }
    Ok(())
}

/// A hub listener that shows long tasks advancing on standard error, a line per tenth.
pub(crate) fn progress() -> impl FnMut(&aidmesh_hub::Event) + Send + 'static {
    let mut last = None;
    move |e| {
        if let aidmesh_hub::Event::Progress { task, done, total } = e {
            let tenth = if *total == 0 { 10 } else { done * 10 / total };
            if last == Some((*task, tenth)) {
                return;
            }
            last = Some((*task, tenth));
            let what = match task {
                aidmesh_hub::Task::BundleExport => "Collecting documents",
                aidmesh_hub::Task::BundleImport => "Checking and merging documents",
            };
            errln!("{what}: {done}/{total} ({}%)", tenth * 10);
        }
    }
}
