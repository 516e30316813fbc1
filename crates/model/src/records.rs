//! Every kind of record a coalition keeps, with its fields and its own validation rules.
//!
//! A record is [`Meta`] (who made it, where, when) plus a [`Body`], one variant per [`Kind`].
//! Bodies serialize to flat JSON objects with every field present, which is also how the
//! replica lays them out, one Automerge map per record.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{FieldError, RecordId, Timestamp};

/// Who made a record, on which hub, and when. Never changes after creation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Meta {
    pub id: RecordId,
    pub kind: Kind,
    /// Hub id of the hub that created the record.
    pub created_hub: String,
    /// Pseudonymous handle of the person who created it.
    pub created_by: String,
    pub created_at: Timestamp,
}

/// The keys that [`Meta`] takes in a record's flat JSON form; no body field uses them.
pub const META_KEYS: [&str; 5] = ["id", "kind", "created_hub", "created_by", "created_at"];

/// A whole record: its meta and its body.
///
/// Its JSON form is one flat object: the meta keys, then the body's fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub meta: Meta,
    pub body: Body,
}

impl Record {
    pub fn id(&self) -> &RecordId {
        &self.meta.id
    }
    pub fn kind(&self) -> Kind {
        self.meta.kind
    }

    /// The flat JSON object of the record.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut m = match serde_json::to_value(&self.meta) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        m.extend(self.body.to_fields());
        m
    }

    /// Reads a flat JSON object back; the body is read leniently (unknown fields are ignored,
    /// so that records written by newer hubs still load).
    pub fn from_json(mut m: Map<String, Value>) -> Result<Record, FieldError> {
        let mut meta = Map::new();
        for k in META_KEYS {
            if let Some(v) = m.remove(k) {
                meta.insert(k.to_string(), v);
            }
        }
        let meta: Meta = from_value(Value::Object(meta))?;
        let body = Body::from_fields(meta.kind, m)?;
        Ok(Record { meta, body })
    }
}

impl Serialize for Record {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = Map::<String, Value>::deserialize(d)?;
        Record::from_json(m).map_err(serde::de::Error::custom)
    }
}

/// Typed access to the body of one kind.
pub trait KindBody: Sized {
    const KIND: Kind;
    fn from_body(b: &Body) -> Option<&Self>;
    fn into_body(self) -> Body;
}

/// The records of one kind among `records`, with their meta.
pub fn of_kind<T: KindBody + 'static>(records: &[Record]) -> impl Iterator<Item = (&Meta, &T)> {
    records.iter().filter_map(|r| T::from_body(&r.body).map(|b| (&r.meta, b)))
}

/// Where a kind's records live on the CRDT (see `aidmesh-replica`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Few, small, read by everyone: in the coalition document.
    Coalition,
    /// Many long-lived records: in catalogue shards of about 10k records.
    Catalogue,
    /// Time-ordered entries: in per-month log documents.
    Log,
}

macro_rules! kinds {
    ($( $variant:ident($ty:ident) = $name:literal, $family:ident, append_only: $ao:literal; )*) => {
        /// The kinds of record.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ts_rs::TS)]
        #[serde(rename_all = "snake_case")]
        pub enum Kind { $($variant),* }

        /// The body of a record: the fields of its kind.
        #[derive(Clone, Debug, PartialEq, Serialize)]
        #[serde(untagged)]
        pub enum Body { $($variant($ty)),* }

        impl Kind {
            pub const ALL: &'static [Kind] = &[$(Kind::$variant),*];

            /// The name used on the command line, in exports and in the CRDT.
            pub fn name(self) -> &'static str {
                match self { $(Kind::$variant => $name),* }
            }
            pub fn family(self) -> Family {
                match self { $(Kind::$variant => Family::$family),* }
            }
            /// Append-only kinds are never updated: corrections are [`Amendment`]s.
            pub fn append_only(self) -> bool {
                match self { $(Kind::$variant => $ao),* }
            }
            /// A body with every field at its default: the field list of the kind.
            pub fn template(self) -> Body {
                match self { $(Kind::$variant => Body::$variant($ty::default())),* }
            }
            fn parse_body(self, v: Value) -> Result<Body, FieldError> {
                match self { $(Kind::$variant => from_value::<$ty>(v).map(Body::$variant)),* }
            }
        }

        $(impl KindBody for $ty {
            const KIND: Kind = Kind::$variant;
            fn from_body(b: &Body) -> Option<&Self> {
                if let Body::$variant(x) = b { Some(x) } else { None }
            }
            fn into_body(self) -> Body {
                Body::$variant(self)
            }
        })*

        /// In TypeScript a record (`HubRecord`, as `Record` is TypeScript's own) is one flat
        /// object, a union over the kinds: the meta keys, `kind` narrowed to its literal, then
        /// that kind's fields. `Extract<HubRecord, {kind: "item"}>` is an item.
        impl ts_rs::TS for Record {
            type WithoutGenerics = Record;
            type OptionInnerType = Record;
            fn name(_: &ts_rs::Config) -> String {
                "HubRecord".into()
            }
            fn inline(cfg: &ts_rs::Config) -> String {
                let kinds: Vec<String> = vec![$(format!(
                    "(Omit<Meta, \"kind\"> & {{ kind: \"{}\" }} & {})",
                    $name,
                    <$ty as ts_rs::TS>::name(cfg)
                )),*];
                kinds.join(" | ")
            }
            fn inline_flattened(cfg: &ts_rs::Config) -> String {
                format!("({})", Self::inline(cfg))
            }
            fn decl(cfg: &ts_rs::Config) -> String {
                format!("type HubRecord = {};", Self::inline(cfg))
            }
            fn decl_concrete(cfg: &ts_rs::Config) -> String {
                Self::decl(cfg)
            }
            fn docs() -> Option<String> {
                Some("/** A record: its meta and the fields of its kind, in one flat object. */\n".into())
            }
            fn visit_dependencies(v: &mut impl ts_rs::TypeVisitor)
            where
                Self: 'static,
            {
                v.visit::<Meta>();
                $(v.visit::<$ty>();)*
            }
            fn output_path() -> Option<std::path::PathBuf> {
                Some("HubRecord.ts".into())
            }
        }

        impl Body {
            pub fn kind(&self) -> Kind {
                match self { $(Body::$variant(_) => Kind::$variant),* }
            }
            fn check(&self, errs: &mut Vec<FieldError>) {
                match self { $(Body::$variant(b) => b.check(errs)),* }
            }
            fn refs(&self) -> Vec<Ref<'_>> {
                match self { $(Body::$variant(b) => b.refs()),* }
            }
            fn text(&self) -> Vec<&str> {
                match self { $(Body::$variant(b) => b.text()),* }
            }
        }
    };
}

kinds! {
    Hub(HubInfo) = "hub", Coalition, append_only: false;
    Place(Place) = "place", Coalition, append_only: false;
    Role(Role) = "role", Coalition, append_only: false;
    Policy(Policy) = "policy", Coalition, append_only: false;
    RoleGrant(RoleGrant) = "role_grant", Coalition, append_only: true;
    MemberEntry(MemberEntry) = "member_entry", Coalition, append_only: true;
    Item(Item) = "item", Catalogue, append_only: false;
    Volunteer(Volunteer) = "volunteer", Catalogue, append_only: false;
    Request(Request) = "request", Catalogue, append_only: false;
    Offer(Offer) = "offer", Catalogue, append_only: false;
    Shift(Shift) = "shift", Catalogue, append_only: false;
    Grievance(Grievance) = "grievance", Catalogue, append_only: false;
    AfterAction(AfterAction) = "after_action", Catalogue, append_only: false;
    Movement(Movement) = "movement", Log, append_only: true;
    Allocation(Allocation) = "allocation", Log, append_only: false;
    Assignment(Assignment) = "assignment", Log, append_only: false;
    CheckIn(CheckIn) = "check_in", Log, append_only: true;
    Handoff(Handoff) = "handoff", Log, append_only: true;
    Incident(Incident) = "incident", Log, append_only: true;
    Amendment(Amendment) = "amendment", Log, append_only: true;
    FollowUp(FollowUp) = "follow_up", Log, append_only: true;
    Expense(Expense) = "expense", Log, append_only: true;
    Approval(Approval) = "approval", Log, append_only: true;
}

impl Kind {
    /// The field that closes a record of this append-only kind: the one later event it records
    /// (a check-out, a follow-up done), set once, by an amendment. Written into the record
    /// itself, as hubs of earlier releases did, it counts as no rewrite only where it was still
    /// open (empty, or false) as the record was made, and only once.
    pub fn closing_field(self) -> Option<&'static str> {
        match self {
            Kind::CheckIn => Some("checked_out"),
            Kind::FollowUp => Some("done"),
            _ => None,
        }
    }

    /// For kinds that became append-only after hubs had been editing them (check-ins and
    /// follow-ups), when that began: records made before it were written by releases that
    /// edited them, and a merge takes changes to them as it would to an editable kind, so that
    /// their documents still sync (the hub itself no longer edits them). `None`: the kind was
    /// always judged by [`Kind::append_only`] alone.
    pub fn append_only_from(self) -> Option<Timestamp> {
        match self {
            // 2026-12-07T00:00:00Z
            Kind::CheckIn | Kind::FollowUp => Some(Timestamp::from_millis(1_796_601_600_000)),
            _ => None,
        }
    }

    /// Whether records of this kind still go over a metered link once a hub has spent its
    /// day's budget there: incidents (with their follow-ups and amendments) and requests.
    pub fn urgent(self) -> bool {
        matches!(self, Kind::Incident | Kind::FollowUp | Kind::Amendment | Kind::Request)
    }

    pub fn parse(s: &str) -> Result<Kind, crate::ParseError> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        Kind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == norm || format!("{}s", k.name()) == norm)
            .ok_or_else(|| crate::ParseError::Kind(s.to_string()))
    }

    /// The names of this kind's fields, in declaration order.
    pub fn field_names(self) -> Vec<String> {
        self.template().to_fields().keys().cloned().collect()
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A reference from one record to another, checked by the hub against the records it knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ref<'a> {
    pub field: &'static str,
    pub id: &'a RecordId,
    pub kind: Kind,
}

impl Body {
    /// Builds a body from a JSON object, naming the field of the first type error.
    pub fn from_fields(kind: Kind, fields: Map<String, Value>) -> Result<Body, FieldError> {
        kind.parse_body(Value::Object(fields))
    }

    /// Like [`Body::from_fields`], but also rejects fields the kind does not have.
    pub fn from_fields_strict(kind: Kind, fields: Map<String, Value>) -> Result<Body, FieldError> {
        let known = kind.field_names();
        if let Some(bad) = fields.keys().find(|k| !known.contains(k)) {
            return Err(FieldError::new(
                bad,
                format!("{kind} has no field {bad:?}; its fields are: {}", known.join(", ")),
            ));
        }
        Body::from_fields(kind, fields)
    }

    /// The body as a flat JSON object with every field present.
    pub fn to_fields(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }

    /// Checks the rules of the kind that need no other record: ranges, required fields, formats.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errs = Vec::new();
        self.check(&mut errs);
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }

    /// The other records this one points to; the hub checks each exists and has the right kind.
    pub fn references(&self) -> Vec<Ref<'_>> {
        self.refs()
    }

    /// The text that full-text search indexes for this record.
    pub fn search_text(&self) -> String {
        self.text().into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ")
    }

    /// A one-line label for lists.
    pub fn label(&self) -> String {
        let t = self.text();
        let s = t.into_iter().find(|s| !s.is_empty()).unwrap_or("");
        let mut out: String = s.chars().take(60).collect();
        if s.chars().count() > 60 {
            out.push('…');
        }
        out
    }
}

fn from_value<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        FieldError::new(if path == "." { "" } else { &path }, e.inner().to_string())
    })
}

/// Validation of one body, and what it points to, and what search sees.
trait Rules {
    fn check(&self, _errs: &mut Vec<FieldError>) {}
    fn refs(&self) -> Vec<Ref<'_>> {
        Vec::new()
    }
    fn text(&self) -> Vec<&str>;
}

fn require(errs: &mut Vec<FieldError>, field: &str, value: &str) {
    if value.trim().is_empty() {
        errs.push(FieldError::new(field, "is required"));
    }
}

/// A quantity asked, offered or promised: more than nothing, and no more than one movement may
/// move ([`MAX_QUANTITY`]: a promise is delivered as one).
fn quantity(errs: &mut Vec<FieldError>, field: &str, value: u64) {
    if value == 0 {
        errs.push(FieldError::new(field, "must be greater than zero"));
    } else if let Some(why) = past_the_most(value, value) {
        errs.push(FieldError::new(field, why));
    }
}

/// Why a quantity of size `size` (shown as `value`) is refused, if it is past [`MAX_QUANTITY`].
fn past_the_most(size: u64, value: impl std::fmt::Display) -> Option<String> {
    (size > MAX_QUANTITY.unsigned_abs()).then(|| format!("must be at most {MAX_QUANTITY}, got {value}"))
}

fn window(errs: &mut Vec<FieldError>, field: &str, from: Option<Timestamp>, to: Option<Timestamp>) {
    if let (Some(a), Some(b)) = (from, to) {
        if b < a {
            errs.push(FieldError::new(field, format!("{b} is before the start {a}")));
        }
    }
}

fn opt_ref<'a>(out: &mut Vec<Ref<'a>>, field: &'static str, id: &'a Option<RecordId>, kind: Kind) {
    if let Some(id) = id {
        out.push(Ref { field, id, kind });
    }
}

// ---------------------------------------------------------------------------------------------
// Places and hubs

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct HubInfo {
    pub name: String,
    /// Coarse location only ("north side, St Mary's hall"), never an exact address of a person.
    pub location: String,
    /// How to reach the hub: radio channel, runner, signal group name.
    pub channel: String,
}

impl Rules for HubInfo {
    fn check(&self, errs: &mut Vec<FieldError>) {
        require(errs, "name", &self.name);
    }
    fn text(&self) -> Vec<&str> {
        vec![&self.name, &self.location, &self.channel]
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum PlaceKind {
    #[default]
    Site,
    Staging,
    Route,
    Vehicle,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Place {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: PlaceKind,
    /// The hub this place belongs to, if any.
    pub hub: Option<RecordId>,
    pub location: String,
    pub notes: String,
}

impl Rules for Place {
    fn check(&self, errs: &mut Vec<FieldError>) {
        require(errs, "name", &self.name);
    }
    fn refs(&self) -> Vec<Ref<'_>> {
        let mut r = Vec::new();
        opt_ref(&mut r, "hub", &self.hub, Kind::Hub);
        r
    }
    fn text(&self) -> Vec<&str> {
        vec![&self.name, &self.location, &self.notes]
    }
}

// ---------------------------------------------------------------------------------------------
// Inventory

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Food,
    Water,
    Medical,
    Hygiene,
    Shelter,
    Power,
    Tools,
    Transport,
    Communications,
    #[default]
    Other,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    New,
    #[default]
    Good,
    Used,
    Damaged,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Item {
    pub name: String,
    pub category: Category,
    /// Unit of count: "bottle 1.5 l", "box of 50", "kit".
    pub unit: String,
    /// Home place of the item; stock may sit at several places (see movements).
    pub place: Option<RecordId>,
    pub expiry: Option<NaiveDate>,
    pub condition: Condition,
    /// Below this total level the item shows as a shortage. Zero means no reorder level.
    pub reorder_level: u64,
    pub notes: String,
}

impl Rules for Item {
    fn check(&self, errs: &mut Vec<FieldError>) {
        require(errs, "name", &self.name);
        require(errs, "unit", &self.unit);
    }
    fn refs(&self) -> Vec<Ref<'_>> {
        let mut r = Vec::new();
        opt_ref(&mut r, "place", &self.place, Kind::Place);
        r
    }
    fn text(&self) -> Vec<&str> {
        vec![&self.name, &self.unit, &self.notes]
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum MovementKind {
    /// Stock arrives at `place`.
    #[default]
    Receive,
    /// Stock leaves `place` to people.
    Issue,
    /// Stock moves from `place` to `to_place` (possibly at another hub).
    Transfer,
    /// A count found a difference: `quantity` is the signed correction at `place`.
    Adjust,
    /// Stock at `place` was thrown away (expired, damaged).
    Discard,
}

/// One entry of the stock log. Stock levels are the sum of these, never a stored number.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Movement {
    pub item: RecordId,
    #[serde(rename = "type")]
    pub kind: MovementKind,
    /// Units moved; positive, except for `adjust` where it is the signed correction.
    pub quantity: i64,
    pub place: RecordId,
    pub to_place: Option<RecordId>,
    /// For `adjust`: the number actually counted, for the record.
    pub counted: Option<u64>,
    pub reason: String,
}

impl Movement {
    /// How this movement changes levels: `(place, delta)` pairs. The one rule of stock. A
    /// quantity past [`MAX_QUANTITY`] (which no form takes; a member may write one by hand)
    /// counts as that much: sums of movements stay far from `i64`'s limits, so every hub sums
    /// them alike, in any order, and the stock stays readable.
    pub fn deltas(&self) -> Vec<(&RecordId, i64)> {
        let q = self.quantity.clamp(-MAX_QUANTITY, MAX_QUANTITY);
        match self.kind {
            MovementKind::Receive => vec![(&self.place, q)],
            MovementKind::Issue | MovementKind::Discard => vec![(&self.place, -q)],
            MovementKind::Adjust => vec![(&self.place, q)],
            MovementKind::Transfer => match &self.to_place {
                Some(to) => vec![(&self.place, -q), (to, q)],
                None => vec![],
            },
        }
    }
}

/// The most units one stock movement may move (or one count adjust by): far past any real stock,
/// and far enough below `i64`'s limit that sums of movements never come near it.
pub const MAX_QUANTITY: i64 = 1_000_000_000;

impl Rules for Movement {
    fn check(&self, errs: &mut Vec<FieldError>) {
        require(errs, "item", self.item.as_str());
        require(errs, "place", self.place.as_str());
        let q = self.quantity;
        let wrong = match self.kind {
            MovementKind::Adjust if q == 0 => Some("an adjustment must change the level".to_string()),
            MovementKind::Adjust => None,
            _ if q <= 0 => Some(format!("must be greater than zero, got {q}")),
            _ => None,
        };
        if let Some(why) = wrong.or_else(|| past_the_most(q.unsigned_abs(), q)) {
            errs.push(FieldError::new("quantity", why));
        }
        match (self.kind, &self.to_place) {
            (MovementKind::Transfer, None) => errs.push(FieldError::new("to_place", "a transfer needs a destination")),
            (MovementKind::Transfer, Some(to)) if *to == self.place => {
                errs.push(FieldError::new("to_place", "a transfer must go to another place"))
            }
            (MovementKind::Transfer, Some(_)) | (_, None) => {}
            (_, Some(_)) => errs.push(FieldError::new("to_place", "only transfers have a destination")),
        }
    }
    fn refs(&self) -> Vec<Ref<'_>> {
        let mut r = vec![
            Ref { field: "item", id: &self.item, kind: Kind::Item },
            Ref { field: "place", id: &self.place, kind: Kind::Place },
        ];
        opt_ref(&mut r, "to_place", &self.to_place, Kind::Place);
        r
    }
    fn text(&self) -> Vec<&str> {
        vec![&self.reason]
    }
}

// ---------------------------------------------------------------------------------------------
// Requests, offers, allocations

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    Low,
    #[default]
    Normal,
    High,
    Critical,
}

impl Urgency {
    /// What the overview calls urgent, most urgent first.
    pub const URGENT: [Urgency; 2] = [Urgency::Critical, Urgency::High];

    /// The name records carry (as serialized).
    pub fn name(self) -> &'static str {
        match self {
            Urgency::Low => "low",
            Urgency::Normal => "normal",
            Urgency::High => "high",
            Urgency::Critical => "critical",
        }
    }
}

/// Status of a request or an offer: open → matched → in transit → fulfilled, or cancelled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum FlowStatus {
    #[default]
    Open,
    Matched,
    InTransit,
    Fulfilled,
    Cancelled,
}

impl FlowStatus {
    pub const ALL: [FlowStatus; 5] =
        [FlowStatus::Open, FlowStatus::Matched, FlowStatus::InTransit, FlowStatus::Fulfilled, FlowStatus::Cancelled];

    pub fn is_active(self) -> bool {
        !matches!(self, FlowStatus::Fulfilled | FlowStatus::Cancelled)
    }

    /// The statuses of requests and offers still waiting for something.
    pub fn active() -> impl Iterator<Item = FlowStatus> {
        FlowStatus::ALL.into_iter().filter(|s| s.is_active())
    }

    /// The name records carry (as serialized).
    pub fn name(self) -> &'static str {
        match self {
            FlowStatus::Open => "open",
            FlowStatus::Matched => "matched",
            FlowStatus::InTransit => "in_transit",
            FlowStatus::Fulfilled => "fulfilled",
            FlowStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum SkillKind {
    FirstAid,
    Medic,
    Translation,
    Childcare,
    Marshal,
    DeEscalation,
    LegalObserver,
    Driver,
    Logistics,
    Cook,
    Radio,
    #[default]
    Other,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Request {
    /// A specific catalogue item, or
    pub item: Option<RecordId>,
    /// any item of a category, or
    pub category: Option<Category>,
    /// a person with a skill (a service request).
    pub skill: Option<SkillKind>,
    pub description: String,
    pub quantity: u64,
    pub place: Option<RecordId>,
    pub urgency: Urgency,
    pub needed_from: Option<Timestamp>,
    pub needed_by: Option<Timestamp>,
    pub status: FlowStatus,
    /// Vault id of the contact: personal data never enters the CRDT.
    pub contact: Option<String>,
    pub notes: String,
}

fn check_what(errs: &mut Vec<FieldError>, item: &Option<RecordId>, cat: &Option<Category>, skill: &Option<SkillKind>) {
    if item.is_none() && cat.is_none() && skill.is_none() {
        errs.push(FieldError::new("item", "say what: an item, a category or a skill"));
    }
    if item.is_some() && skill.is_some() {
        errs.push(FieldError::new("skill", "a request is for an item or for a skill, not both"));
    }
}

impl Rules for Request {
    fn check(&self, errs: &mut Vec<FieldError>) {
        check_what(errs, &self.item, &self.category, &self.skill);
        quantity(errs, "quantity", self.quantity);
        window(errs, "needed_by", self.needed_from, self.needed_by);
    }
    fn refs(&self) -> Vec<Ref<'_>> {
        let mut r = Vec::new();
        opt_ref(&mut r, "item", &self.item, Kind::Item);
        opt_ref(&mut r, "place", &self.place, Kind::Place);
        r
    }
    fn text(&self) -> Vec<&str> {
        vec![&self.description, &self.notes]
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Offer {
    pub item: Option<RecordId>,
    pub category: Option<Category>,
    pub skill: Option<SkillKind>,
    pub description: String,
    pub quantity: u64,
    pub place: Option<RecordId>,
    pub available_until: Option<Timestamp>,
    pub expiry: Option<NaiveDate>,
    pub status: FlowStatus,
    pub contact: Option<String>,
    pub notes: String,
}

impl Rules for Offer {
    fn check(&self, errs: &mut Vec<FieldError>) {
        check_what(errs, &self.item, &self.category, &self.skill);
        quantity(errs, "quantity", self.quantity);
    }
    fn refs(&self) -> Vec<Ref<'_>> {
        let mut r = Vec::new();
        opt_ref(&mut r, "item", &self.item, Kind::Item);
        opt_ref(&mut r, "place", &self.place, Kind::Place);
        r
    }
    fn text(&self) -> Vec<&str> {
        vec![&self.description, &self.notes]
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum AllocationStatus {
    #[default]
    Active,
    Delivered,
    Released,
}

/// A reservation of quantity for a request, from an offer or from stock of an item at a place.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Allocation {
    pub request: RecordId,
    pub offer: Option<RecordId>,
    pub item: Option<RecordId>,
    pub place: Option<RecordId>,
    pub quantity: u64,
    pub status: AllocationStatus,
}

impl Allocation {
    /// Whether the allocation still holds quantity (active or delivered but not released).
    pub fn holds(&self) -> bool {
        self.status != AllocationStatus::Released
    }
}

impl Rules for Allocation {
    fn check(&self, errs: &mut Vec<FieldError>) {
        require(errs, "request", self.request.as_str());
        quantity(errs, "quantity", self.quantity);
        match (&self.offer, &self.item, &self.place) {
            (Some(_), None, None) | (None, Some(_), Some(_)) => {}
            (Some(_), _, _) => errs.push(FieldError::new("offer", "allocate from an offer or from stock, not both")),
            _ => errs.push(FieldError::new("offer", "allocate from an offer, or from stock (item and place)")),
        }
    }
    fn refs(&self) -> Vec<Ref<'_>> {
        let mut r = vec![Ref { field: "request", id: &self.request, kind: Kind::Request }];
        opt_ref(&mut r, "offer", &self.offer, Kind::Offer);
        opt_ref(&mut r, "item", &self.item, Kind::Item);
        opt_ref(&mut r, "place", &self.place, Kind::Place);
        r
    }
    fn text(&self) -> Vec<&str> {
        vec![]
    }
}

// ---------------------------------------------------------------------------------------------
// Roster

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum SkillLevel {
    #[default]
    Basic,
    Trained,
    Expert,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Skill {
    pub skill: SkillKind,
    #[serde(default)]
    pub level: SkillLevel,
    /// Handle of the person who verified the skill (saw the certificate, trained them).
    #[serde(default)]
    pub verified_by: Option<String>,
    /// For translation: the languages (BCP 47 tags).
    #[serde(default)]
    pub languages: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Consent {
    /// May coordinators contact them through the vault contact.
    #[serde(default)]
    pub contact: bool,
    /// May they appear in photos.
    #[serde(default)]
    pub photo: bool,
    /// May their vault contact be shared with other hubs.
    #[serde(default)]
    pub share: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Volunteer {
    /// Pseudonymous handle: the only name in the CRDT.
    pub handle: String,
    pub skills: Vec<Skill>,
    pub languages: Vec<String>,
    pub availability: String,
    pub access_needs: String,
    pub consent: Consent,
    /// Vault id of the real name and contact.
    pub contact: Option<String>,
    pub notes: String,
}

impl Volunteer {
    pub fn has_skill(&self, s: SkillKind) -> bool {
        self.skills.iter().any(|k| k.skill == s)
    }
}

fn check_languages(errs: &mut Vec<FieldError>, field: &str, langs: &[String]) {
    for l in langs {
        let ok = !l.is_empty()
            && l.len() <= 35
            && l.split('-').all(|p| !p.is_empty() && p.len() <= 8 && p.chars().all(|c| c.is_ascii_alphanumeric()));
        if !ok {
            errs.push(FieldError::new(field, format!("{l:?} is not a language tag such as en, es, ar or pt-BR")));
        }
    }
}

impl Rules for Volunteer {
    fn check(&self, errs: &mut Vec<FieldError>) {
        require(errs, "handle", &self.handle);
        check_languages(errs, "languages", &self.languages);
        for s in &self.skills {
            check_languages(errs, "skills", &s.languages);
            if s.skill == SkillKind::Translation && s.languages.len() < 2 {
                errs.push(FieldError::new("skills", "translation needs the languages it covers (two or more)"));
            }
        }
    }
    fn text(&self) -> Vec<&str> {
        vec![&self.handle, &self.availability, &self.notes]
    }
}

/// A role on shift, with what it must produce and how to hand it over.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Role {
    pub name: String,
    pub outputs: String,
    pub success_measure: String,
    pub handoff_notes: String,
    /// The skill the role needs, if any.
    pub skill: Option<SkillKind>,
}

impl Rules for Role {
    fn check(&self, errs: &mut Vec<FieldError>) {
        require(errs, "name", &self.name);
    }
    fn text(&self) -> Vec<&str> {
        vec![&self.name, &self.outputs, &self.success_measure]
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Shift {
    pub role: RecordId,
    pub place: RecordId,
    pub start: Timestamp,
    pub end: Timestamp,
    pub needed: u32,
    pub notes: String,
}

impl Shift {
    /// The longest a shift may last: longer duty is several shifts (and the hub's queries for
    /// the shifts around a moment rely on this bound).
    pub const MAX_HOURS: i64 = 24;

    pub fn overlaps(&self, other: &Shift) -> bool {
        self.start < other.end && other.start < self.end
    }
}

impl Rules for Shift {
    fn check(&self, errs: &mut Vec<FieldError>) {
        require(errs, "role", self.role.as_str());
        require(errs, "place", self.place.as_str());
        if self.end <= self.start {
            errs.push(FieldError::new("end", format!("{} is not after the start {}", self.end, self.start)));
        } else if self.end > self.start.plus_hours(Self::MAX_HOURS) {
            errs.push(FieldError::new(
                "end",
                format!("a shift lasts at most {} hours: split the duty into several shifts", Self::MAX_HOURS),
            ));
        }
        if self.needed == 0 {
            errs.push(FieldError::new("needed", "a shift needs at least one person"));
        }
    }
    fn refs(&self) -> Vec<Ref<'_>> {
        vec![
            Ref { field: "role", id: &self.role, kind: Kind::Role },
            Ref { field: "place", id: &self.place, kind: Kind::Place },
        ]
    }
    fn text(&self) -> Vec<&str> {
        vec![&self.notes]
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Assignment {
    pub shift: RecordId,
    pub volunteer: RecordId,
    /// False once the assignment is withdrawn.
    pub active: bool,
}

impl Rules for Assignment {
    fn refs(&self) -> Vec<Ref<'_>> {
        vec![
            Ref { field: "shift", id: &self.shift, kind: Kind::Shift },
            Ref { field: "volunteer", id: &self.volunteer, kind: Kind::Volunteer },
        ]
    }
    fn text(&self) -> Vec<&str> {
        vec![]
    }
}

/// A row of the ICS-211 check-in list.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct CheckIn {
    pub volunteer: RecordId,
    pub shift: Option<RecordId>,
    pub place: Option<RecordId>,
    pub checked_in: Timestamp,
    pub checked_out: Option<Timestamp>,
    pub notes: String,
}

impl Rules for CheckIn {
    fn check(&self, errs: &mut Vec<FieldError>) {
        window(errs, "checked_out", Some(self.checked_in), self.checked_out);
    }
    fn refs(&self) -> Vec<Ref<'_>> {
        let mut r = vec![Ref { field: "volunteer", id: &self.volunteer, kind: Kind::Volunteer }];
        opt_ref(&mut r, "shift", &self.shift, Kind::Shift);
        opt_ref(&mut r, "place", &self.place, Kind::Place);
        r
    }
    fn text(&self) -> Vec<&str> {
        vec![&self.notes]
    }
}

/// What one shift hands over to the next.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Handoff {
    pub shift: RecordId,
    pub next_shift: Option<RecordId>,
    pub note: String,
    /// Handle of the person of the next shift who read it: set by an amendment, as a handoff
    /// is append-only.
    pub acknowledged_by: Option<String>,
}

impl Rules for Handoff {
    fn check(&self, errs: &mut Vec<FieldError>) {
        require(errs, "note", &self.note);
    }
    fn refs(&self) -> Vec<Ref<'_>> {
        let mut r = vec![Ref { field: "shift", id: &self.shift, kind: Kind::Shift }];
        opt_ref(&mut r, "next_shift", &self.next_shift, Kind::Shift);
        r
    }
    fn text(&self) -> Vec<&str> {
        vec![&self.note]
    }
}

// ---------------------------------------------------------------------------------------------
// Incidents

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum IncidentCategory {
    Medical,
    Safety,
    PoliceSecurity,
    Weather,
    SupplyInterruption,
    Accessibility,
    Conduct,
    NearMiss,
    #[default]
    Other,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    #[default]
    Open,
    Monitoring,
    Resolved,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Incident {
    pub occurred: Timestamp,
    pub place: Option<RecordId>,
    pub category: IncidentCategory,
    /// 1 (minor) to 5 (life-threatening).
    pub severity: u8,
    pub description: String,
    pub reporter: String,
    pub status: IncidentStatus,
}

impl Rules for Incident {
    fn check(&self, errs: &mut Vec<FieldError>) {
        if !(1..=5).contains(&self.severity) {
            errs.push(FieldError::new("severity", format!("must be 1 to 5, got {}", self.severity)));
        }
        require(errs, "description", &self.description);
    }
    fn refs(&self) -> Vec<Ref<'_>> {
        let mut r = Vec::new();
        opt_ref(&mut r, "place", &self.place, Kind::Place);
        r
    }
    fn text(&self) -> Vec<&str> {
        vec![&self.description, &self.reporter]
    }
}

/// A correction to an append-only record (incident, expense): the original stays as it was.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Amendment {
    pub target: RecordId,
    pub field: String,
    pub value: Value,
    pub reason: String,
}

impl Rules for Amendment {
    fn check(&self, errs: &mut Vec<FieldError>) {
        require(errs, "target", self.target.as_str());
        require(errs, "field", &self.field);
        require(errs, "reason", &self.reason);
    }
    fn text(&self) -> Vec<&str> {
        vec![&self.reason]
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct FollowUp {
    pub incident: RecordId,
    pub action: String,
    pub owner: String,
    pub due: Option<Timestamp>,
    pub done: bool,
}

impl Rules for FollowUp {
    fn check(&self, errs: &mut Vec<FieldError>) {
        require(errs, "action", &self.action);
    }
    fn refs(&self) -> Vec<Ref<'_>> {
        vec![Ref { field: "incident", id: &self.incident, kind: Kind::Incident }]
    }
    fn text(&self) -> Vec<&str> {
        vec![&self.action, &self.owner]
    }
}

// ---------------------------------------------------------------------------------------------
// Ledger and governance

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Expense {
    /// Amount in minor units of the currency (cents, pence).
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    pub payee: String,
    pub purpose: String,
    pub fund: String,
    pub category: String,
    pub receipt: String,
    pub date: NaiveDate,
}

impl Rules for Expense {
    fn check(&self, errs: &mut Vec<FieldError>) {
        if self.amount_minor <= 0 {
            errs.push(FieldError::new("amount_minor", format!("must be greater than zero, got {}", self.amount_minor)));
        }
        if !crate::currency::is_iso4217(&self.currency) {
            errs.push(FieldError::new("currency", format!("{:?} is not an ISO 4217 currency code", self.currency)));
        }
        require(errs, "payee", &self.payee);
        require(errs, "purpose", &self.purpose);
        require(errs, "fund", &self.fund);
    }
    fn text(&self) -> Vec<&str> {
        vec![&self.purpose, &self.payee, &self.fund, &self.category, &self.receipt]
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    #[default]
    Approve,
    Reject,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Approval {
    pub expense: RecordId,
    /// Handle of the approver; their authority comes from role grants.
    pub approver: String,
    pub decision: Decision,
    pub note: String,
    /// Public key (hex) of the member hub that recorded and signed the approval.
    pub signer: String,
    /// Ed25519 signature (hex) over the record; checked on read by the hub.
    pub sig: String,
}

impl Rules for Approval {
    fn check(&self, errs: &mut Vec<FieldError>) {
        require(errs, "approver", &self.approver);
    }
    fn refs(&self) -> Vec<Ref<'_>> {
        vec![Ref { field: "expense", id: &self.expense, kind: Kind::Expense }]
    }
    fn text(&self) -> Vec<&str> {
        vec![&self.note, &self.approver]
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct RoleLimit {
    pub role: String,
    /// The largest amount, in minor units, that one holder of the role may authorise.
    pub max_minor: i64,
}

/// Purchase rules: who may authorise how much, and how many approvals large purchases need.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Policy {
    pub currency: String,
    pub limits: Vec<RoleLimit>,
    /// Above this amount, `approvals_above_threshold` distinct approvers are needed.
    pub threshold_minor: i64,
    pub approvals_above_threshold: u32,
    /// When the policy comes into force; the latest in force at an expense's date applies.
    pub effective: Timestamp,
}

impl Rules for Policy {
    fn check(&self, errs: &mut Vec<FieldError>) {
        if !crate::currency::is_iso4217(&self.currency) {
            errs.push(FieldError::new("currency", format!("{:?} is not an ISO 4217 currency code", self.currency)));
        }
        if self.limits.is_empty() {
            errs.push(FieldError::new("limits", "name at least one role that may authorise purchases"));
        }
        for l in &self.limits {
            if l.max_minor <= 0 || l.role.trim().is_empty() {
                errs.push(FieldError::new(
                    "limits",
                    format!("limit for {:?} needs a role and a positive amount", l.role),
                ));
            }
        }
        if self.threshold_minor < 0 {
            errs.push(FieldError::new("threshold_minor", "must not be negative"));
        }
        if self.approvals_above_threshold == 0 {
            errs.push(FieldError::new("approvals_above_threshold", "must be at least 1"));
        }
    }
    fn text(&self) -> Vec<&str> {
        vec![&self.currency]
    }
}

/// Gives (or, revoked, takes back) a role from a person. Grants are entries of a log: the
/// latest entry for a person and role decides, and an entry is never edited (its signature
/// covers it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct RoleGrant {
    pub handle: String,
    pub role: String,
    pub revoked: bool,
    /// Public key (hex) of the admin hub that signed the grant.
    pub signer: String,
    /// Ed25519 signature (hex) over the record; checked on read by the hub.
    pub sig: String,
}

impl Rules for RoleGrant {
    fn check(&self, errs: &mut Vec<FieldError>) {
        require(errs, "handle", &self.handle);
        require(errs, "role", &self.role);
    }
    fn text(&self) -> Vec<&str> {
        vec![&self.handle, &self.role]
    }
}

// ---------------------------------------------------------------------------------------------
// Accountability

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum GrievanceStatus {
    #[default]
    Received,
    Investigating,
    Resolved,
    Dismissed,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Grievance {
    pub summary: String,
    pub details: String,
    pub confidential: bool,
    /// Handles who may read a confidential grievance.
    pub readers: Vec<String>,
    /// Handles of people involved: recused, they never read it even if listed as readers.
    pub involved: Vec<String>,
    pub status: GrievanceStatus,
    pub resolution: String,
    /// Handle of the person who facilitates the process.
    pub facilitator: String,
    /// What was done, dated, oldest first. Only ever grows: the hub adds a step for each move.
    pub steps: Vec<GrievanceStep>,
}

/// One dated step in handling a grievance: what was done, by whom, and the status it left.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct GrievanceStep {
    pub at: Timestamp,
    /// Handle of the person who recorded it.
    pub by: String,
    pub note: String,
    pub status: GrievanceStatus,
}

impl Record {
    /// The record as `handle` may read it: a confidential grievance's content is withheld from
    /// anyone who is not among its readers, and from the people involved. `None` when nothing
    /// is withheld.
    pub fn redacted_for(&self, handle: &str) -> Option<Record> {
        let Body::Grievance(g) = &self.body else { return None };
        if g.readable_by(handle) {
            return None;
        }
        let mut r = self.clone();
        if let Body::Grievance(g) = &mut r.body {
            g.summary = "[confidential]".into();
            g.details = "[confidential]".into();
            g.resolution = "[confidential]".into();
            // Who may read it and who it concerns are part of what is confidential.
            g.readers.clear();
            g.involved.clear();
            g.steps.clear();
            g.facilitator.clear();
        }
        Some(r)
    }
}

impl Grievance {
    /// Whether `handle` may read the grievance's content.
    pub fn readable_by(&self, handle: &str) -> bool {
        if self.involved.iter().any(|h| h == handle) {
            return false;
        }
        !self.confidential || self.readers.iter().any(|h| h == handle)
    }
}

impl Rules for Grievance {
    fn check(&self, errs: &mut Vec<FieldError>) {
        require(errs, "summary", &self.summary);
        if self.confidential && self.readers.is_empty() {
            errs.push(FieldError::new("readers", "a confidential grievance needs at least one reader"));
        }
        if !self.facilitator.is_empty() && self.involved.contains(&self.facilitator) {
            errs.push(FieldError::new(
                "facilitator",
                format!("{} is involved and so recused: they cannot facilitate it", self.facilitator),
            ));
        }
        if let Some(h) = self.readers.iter().find(|h| self.involved.contains(h)) {
            errs.push(FieldError::new("readers", format!("{h} is involved and so recused: they cannot be a reader")));
        }
    }
    fn text(&self) -> Vec<&str> {
        // Confidential content stays out of the search index.
        if self.confidential {
            vec![]
        } else {
            let mut t = vec![self.summary.as_str(), &self.details, &self.resolution, &self.facilitator];
            t.extend(self.steps.iter().map(|s| s.note.as_str()));
            t
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct AfterAction {
    pub incident: Option<RecordId>,
    pub title: String,
    pub worked: String,
    pub did_not_work: String,
    pub why: String,
    pub actions: String,
    /// What is to be done, each tracked to done.
    pub action_items: Vec<ActionItem>,
}

/// An action an after-action review decided, tracked to done.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct ActionItem {
    pub action: String,
    /// Handle of who takes it on.
    pub owner: String,
    pub due: Option<NaiveDate>,
    pub done: bool,
    /// When it was marked done (set by the hub).
    pub done_at: Option<Timestamp>,
}

impl Rules for AfterAction {
    fn check(&self, errs: &mut Vec<FieldError>) {
        require(errs, "title", &self.title);
        if let Some(i) = self.action_items.iter().position(|a| a.action.trim().is_empty()) {
            errs.push(FieldError::new("action_items", format!("action {} says nothing to do", i + 1)));
        }
    }
    fn refs(&self) -> Vec<Ref<'_>> {
        let mut r = Vec::new();
        opt_ref(&mut r, "incident", &self.incident, Kind::Incident);
        r
    }
    fn text(&self) -> Vec<&str> {
        let mut t = vec![self.title.as_str(), &self.worked, &self.did_not_work, &self.why, &self.actions];
        t.extend(self.action_items.iter().map(|a| a.action.as_str()));
        t
    }
}

// ---------------------------------------------------------------------------------------------
// Coalition membership

/// One signed entry of the coalition's membership log. Its meaning and its signature are
/// checked on read (`aidmesh-mesh`); as written, it proves nothing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct MemberEntry {
    /// The action: `{"action": "admit" | "revoke" | "set_role", ...}`.
    pub action: Value,
    /// Public key of the signing hub, hex.
    pub signer: String,
    pub at: Timestamp,
    /// Ed25519 signature, hex.
    pub sig: String,
}

impl Rules for MemberEntry {
    fn check(&self, errs: &mut Vec<FieldError>) {
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex(&self.signer, 64) {
            errs.push(FieldError::new("signer", "must be a 32-byte public key in hex"));
        }
        if !hex(&self.sig, 128) {
            errs.push(FieldError::new("sig", "must be a 64-byte signature in hex"));
        }
        if !self.action.is_object() {
            errs.push(FieldError::new("action", "must be an object"));
        }
    }
    fn text(&self) -> Vec<&str> {
        vec![]
    }
}
