//! Import and export: full JSON, and HXL-tagged CSV for inventory, requests and incidents.
//!
//! Imports are all or nothing: every row is checked first, every bad row is named with every
//! reason, and only a clean file is written. Personal data (vault contacts) is never exported.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use aidmesh_model::{Body, FieldError, Kind, Meta, Movement, MovementKind, Record, RecordId};
use serde_json::{json, Map, Value};

use crate::{Error, Hub, Result};

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    pub imported: usize,
    /// Records whose id the hub already held.
    pub skipped: usize,
    pub per_kind: BTreeMap<String, usize>,
}

/// The record kinds that travel as HXL-tagged CSV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HxlKind {
    Inventory,
    Requests,
    Incidents,
}

impl HxlKind {
    pub fn parse(s: &str) -> Result<HxlKind, String> {
        match s {
            "inventory" | "items" | "item" => Ok(HxlKind::Inventory),
            "requests" | "request" => Ok(HxlKind::Requests),
            "incidents" | "incident" => Ok(HxlKind::Incidents),
            _ => Err(format!("no HXL format for {s:?}: use inventory, requests or incidents")),
        }
    }

    /// (header, hashtag, record field) per column. `stock` is the item's total level.
    fn columns(self) -> &'static [(&'static str, &'static str, &'static str)] {
        match self {
            HxlKind::Inventory => &[
                ("Id", "#meta+id", "id"),
                ("Item", "#item+name", "name"),
                ("Category", "#item+type", "category"),
                ("Unit", "#item+unit", "unit"),
                ("Place", "#loc+code", "place"),
                ("Expiry", "#date+end", "expiry"),
                ("Condition", "#status+condition", "condition"),
                ("Reorder level", "#indicator+num+reorder", "reorder_level"),
                ("Stock", "#indicator+num+stock", "stock"),
                ("Notes", "#description+notes", "notes"),
            ],
            HxlKind::Requests => &[
                ("Id", "#meta+id", "id"),
                ("Item", "#item+code", "item"),
                ("Category", "#item+type", "category"),
                ("Skill", "#service", "skill"),
                ("Description", "#description", "description"),
                ("Quantity", "#inneed", "quantity"),
                ("Place", "#loc+code", "place"),
                ("Urgency", "#severity", "urgency"),
                ("Needed from", "#date+start", "needed_from"),
                ("Needed by", "#date+end", "needed_by"),
                ("Status", "#status", "status"),
                ("Notes", "#description+notes", "notes"),
            ],
            HxlKind::Incidents => &[
                ("Id", "#event+id", "id"),
                ("Occurred", "#date+occurred", "occurred"),
                ("Place", "#loc+code", "place"),
                ("Category", "#event+type", "category"),
                ("Severity", "#severity", "severity"),
                ("Description", "#description", "description"),
                ("Reporter", "#meta+reporter", "reporter"),
                ("Status", "#status", "status"),
            ],
        }
    }

    fn kind(self) -> Kind {
        match self {
            HxlKind::Inventory => Kind::Item,
            HxlKind::Requests => Kind::Request,
            HxlKind::Incidents => Kind::Incident,
        }
    }
}

/// A hashtag spec as its tag and its attributes (lower case, sorted, without duplicates).
fn tag_parts(s: &str) -> Option<(String, Vec<String>)> {
    let s = s.trim().to_ascii_lowercase();
    let rest = s.strip_prefix('#')?;
    let mut parts = rest.split('+').map(str::trim);
    let tag = parts.next().filter(|t| !t.is_empty())?.to_string();
    let mut attrs: Vec<String> = parts.filter(|a| !a.is_empty()).map(String::from).collect();
    attrs.sort();
    attrs.dedup();
    Some((tag, attrs))
}

/// The record field each column of a hashtag row fills, as the HXL standard matches tag
/// patterns: a column matches a pattern when it has the pattern's tag and at least its
/// attributes (`#item+name+v_unhcr` is an `#item+name`), the most specific pattern a column
/// matches decides (`#description+notes` is notes, not the description), and the first column
/// a field matches fills it.
fn match_columns(
    wanted: &[(&'static str, &'static str, &'static str)],
    row: &csv::StringRecord,
) -> Vec<Option<&'static str>> {
    let mut patterns: Vec<(String, Vec<String>, &'static str)> =
        wanted.iter().filter_map(|(_, tag, field)| tag_parts(tag).map(|(t, a)| (t, a, *field))).collect();
    patterns.sort_by_key(|p| std::cmp::Reverse(p.1.len()));
    let mut taken = std::collections::BTreeSet::new();
    row.iter()
        .map(|c| {
            let (tag, attrs) = tag_parts(c)?;
            let field = patterns.iter().find(|(t, a, _)| *t == tag && a.iter().all(|x| attrs.contains(x)))?.2;
            taken.insert(field).then_some(field)
        })
        .collect()
}

impl Hub {
    /// Every record as JSON. Vault content is not included, nor the vault ids records name as
    /// their contact: they mean nothing where the file is imported (a new record names no
    /// contact; the contact form sets it there). Nor a volunteer's access needs written before
    /// they moved to the contact: health data, which a new record refuses.
    ///
    /// A grievance the acting person may not read (confidential, or about them) is left out:
    /// their export holds what their screen shows, and nothing half-withheld that another hub
    /// could not take back.
    pub fn export_json(&self, out: &mut dyn Write) -> Result<usize> {
        let mut records = Vec::new();
        for k in Kind::ALL {
            for r in self.all(*k)? {
                if r.redacted_for(self.handle()).is_none() {
                    let mut json = r.to_json();
                    json.remove("contact");
                    json.remove("access_needs");
                    records.push(Value::Object(json));
                }
            }
        }
        let n = records.len();
        let doc = json!({
            "format": "aidmesh-records",
            "version": 1,
            "hub": self.hub_id(),
            "exported_at": self.now(),
            "records": records,
        });
        serde_json::to_writer_pretty(&mut *out, &doc).map_err(|e| Error::Io(e.into()))?;
        out.write_all(b"\n")?;
        Ok(n)
    }

    /// Imports a JSON export: all records or none.
    pub fn import_json(&mut self, input: &mut dyn Read) -> Result<ImportReport> {
        let v: Value =
            serde_json::from_reader(input).map_err(|e| Error::Malformed { format: "JSON", why: e.to_string() })?;
        let records = match (&v.get("format"), v.get("records")) {
            (Some(Value::String(f)), Some(Value::Array(a))) if f == "aidmesh-records" => a.clone(),
            _ => {
                return Err(Error::Malformed {
                    format: "JSON",
                    why: "not an aidmesh export: expected {\"format\": \"aidmesh-records\", \"records\": [...]}".into(),
                })
            }
        };
        let rows = records.into_iter().enumerate().map(|(i, r)| (i + 1, strict_record(r))).collect();
        self.import_records(rows)
    }

    /// Writes records of one kind as HXL-tagged CSV (a header row, then a hashtag row).
    pub fn export_hxl(&self, kind: HxlKind, out: &mut dyn Write) -> Result<usize> {
        let cols = kind.columns();
        let mut w = csv::Writer::from_writer(out);
        let csv_err = |e: csv::Error| Error::Io(std::io::Error::other(e.to_string()));
        w.write_record(cols.iter().map(|c| c.0)).map_err(csv_err)?;
        w.write_record(cols.iter().map(|c| c.1)).map_err(csv_err)?;
        let totals = aidmesh_model::views::item_totals(&self.levels()?);
        let mut n = 0;
        let amendments = if kind == HxlKind::Incidents { self.all(Kind::Amendment)? } else { Vec::new() };
        let mut recs = self.all(kind.kind())?;
        recs.reverse();
        for r in recs {
            let r = if kind == HxlKind::Incidents {
                aidmesh_model::views::amended(&r, &aidmesh_model::views::amendments_of(&amendments, r.id())).0
            } else {
                r
            };
            let f = r.to_json();
            let row: Vec<String> = cols
                .iter()
                .map(|(_, _, field)| match *field {
                    "stock" => totals.get(r.id()).copied().unwrap_or(0).to_string(),
                    field => cell(f.get(field)),
                })
                .collect();
            w.write_record(&row).map_err(csv_err)?;
            n += 1;
        }
        w.flush()?;
        Ok(n)
    }

    /// Imports HXL-tagged CSV of one kind: all rows or none. Columns are found by hashtag, in
    /// any order; columns with other hashtags are ignored. An inventory row with a stock figure
    /// and a place also records that stock as received there.
    pub fn import_hxl(&mut self, kind: HxlKind, input: &mut dyn Read) -> Result<ImportReport> {
        let mut rdr = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(input);
        let mut rows: Vec<(usize, csv::StringRecord)> = Vec::new();
        for r in rdr.records() {
            let r = r.map_err(|e| Error::Malformed { format: "CSV", why: e.to_string() })?;
            let line = r.position().map(|p| p.line() as usize).unwrap_or(0);
            rows.push((line, r));
        }
        let tag_row =
            rows.iter().position(|(_, r)| r.iter().any(|c| c.trim().starts_with('#'))).ok_or(Error::Malformed {
                format: "HXL",
                why: "no hashtag row (a row such as #item+name,#loc+code,...)".into(),
            })?;
        let by_col = match_columns(kind.columns(), &rows[tag_row].1);
        let (required, field) = match kind {
            HxlKind::Inventory => ("#item+name", "name"),
            HxlKind::Requests => ("#inneed", "quantity"),
            HxlKind::Incidents => ("#description", "description"),
        };
        if !by_col.iter().flatten().any(|f| *f == field) {
            return Err(Error::Malformed { format: "HXL", why: format!("the hashtag row has no {required} column") });
        }
        let now = self.now();
        let mut out = Vec::new();
        for (line, r) in rows.into_iter().skip(tag_row + 1) {
            if r.iter().all(|c| c.trim().is_empty()) {
                continue;
            }
            let mut fields = Map::new();
            let mut id = None;
            let mut stock = None;
            let mut errs = Vec::new();
            for (i, c) in r.iter().enumerate() {
                let Some(Some(field)) = by_col.get(i) else {
                    continue;
                };
                let c = c.trim();
                if c.is_empty() {
                    continue;
                }
                match *field {
                    "id" => match RecordId::parse(c) {
                        Ok(i) => id = Some(i),
                        Err(e) => errs.push(format!("id: {e}")),
                    },
                    "stock" => match c.parse::<i64>() {
                        Ok(q) if q >= 0 => stock = Some(q),
                        _ => errs.push(format!("stock: {c:?} is not a whole number of zero or more")),
                    },
                    f => {
                        fields.insert(f.to_string(), typed_cell(kind.kind(), f, c));
                    }
                }
            }
            let id = id.unwrap_or_else(|| RecordId::generate(now, self.random()));
            let meta = Meta {
                id: id.clone(),
                kind: kind.kind(),
                created_hub: self.hub_id().to_string(),
                created_by: self.handle().to_string(),
                created_at: now,
            };
            if !errs.is_empty() {
                out.push((line, Err(errs.join("; "))));
                continue;
            }
            let place = fields.get("place").and_then(Value::as_str).map(RecordId::from);
            match Body::from_fields_strict(kind.kind(), fields) {
                Err(e) => out.push((line, Err(e.to_string()))),
                Ok(body) => {
                    let item_meta = meta.clone();
                    out.push((line, Ok(Record { meta, body })));
                    if let (Some(q), Some(place)) = (stock.filter(|q| *q > 0), place) {
                        let m = Movement {
                            item: id.clone(),
                            kind: MovementKind::Receive,
                            quantity: q,
                            place,
                            reason: "imported stock".into(),
                            ..Default::default()
                        };
                        let mid = RecordId::generate(now, self.random());
                        let meta = Meta { id: mid, kind: Kind::Movement, ..item_meta };
                        out.push((line, Ok(Record { meta, body: Body::Movement(m) })));
                    }
                }
            }
        }
        self.import_records(out)
    }
}

/// A record from an import: the body must not carry unknown fields.
fn strict_record(v: Value) -> Result<Record, String> {
    let Value::Object(mut m) = v else {
        return Err("not a JSON object".into());
    };
    let mut take = |k: &str| match m.remove(k) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("{k}: must be text")),
        None => Err(format!("{k}: is required")),
    };
    let (id, kind, hub, by, at) =
        (take("id"), take("kind"), take("created_hub"), take("created_by"), take("created_at"));
    let errs: Vec<String> = [&id, &kind, &hub, &by, &at].iter().filter_map(|r| r.as_ref().err().cloned()).collect();
    if !errs.is_empty() {
        return Err(errs.join("; "));
    }
    let (id, kind, hub, by, at) = (id?, kind?, hub?, by?, at?);
    let meta = Meta {
        id: RecordId::parse(&id).map_err(|e| format!("id: {e}"))?,
        kind: Kind::parse(&kind).map_err(|e| format!("kind: {e}"))?,
        created_hub: hub,
        created_by: by,
        created_at: aidmesh_model::Timestamp::parse(&at).map_err(|e| format!("created_at: {e}"))?,
    };
    let body = Body::from_fields_strict(meta.kind, m).map_err(|e: FieldError| e.to_string())?;
    Ok(Record { meta, body })
}

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// Fields whose values are names from a fixed list: matched whatever their case or spacing
/// ("In transit", "in-transit" and "in_transit" are one status).
const ENUM_FIELDS: [&str; 7] = ["category", "condition", "skill", "urgency", "status", "type", "decision"];

/// A CSV cell as JSON of the type the field wants: numbers for numeric fields, text otherwise.
fn typed_cell(kind: Kind, field: &str, c: &str) -> Value {
    if ENUM_FIELDS.contains(&field) {
        return Value::String(c.trim().to_lowercase().replace([' ', '-'], "_"));
    }
    let numeric = match kind.template().to_fields().get(field) {
        Some(Value::Number(_)) => true,
        _ => matches!(field, "quantity" | "severity" | "reorder_level"),
    };
    if numeric {
        if let Ok(n) = c.parse::<i64>() {
            return Value::from(n);
        }
    }
    Value::String(c.to_string())
}
