//! The Automerge layout of the coalition's records.
//!
//! The records never live in one giant document. There are three sorts of document:
//!
//! - the *index* document (id [`INDEX_DOC`]) lists every other document and its partition;
//! - *partition* documents hold records: `coalition` for the few shared records (hubs, places,
//!   roles, policy, role grants), `<kind>` for catalogue shards of about [`SHARD_TARGET`]
//!   records, `<kind>/<YYYY-MM>` for month logs;
//! - a document's root map holds one map per record, keyed by record id. Record ids are unique,
//!   so concurrent creations never collide; concurrent writes to one field are kept by Automerge
//!   and surfaced as [`FieldConflict`]s; long free text is Automerge Text with a register of its
//!   last written value beside it, so that two rewrites made apart are a conflict, not a mix.
//!
//! Reads and writes touch one record at a time. Time, actor and author come from the caller.

use std::collections::BTreeSet;
use std::sync::Arc;

use aidmesh_model::{Family, Kind, Record, RecordId, Timestamp, META_KEYS};
use automerge::{
    transaction::{CommitOptions, Transactable},
    ActorId, AutoCommit, ChangeHash, ObjId, ObjType, PatchAction, Prop, ReadDoc, ScalarValue, Value, ROOT,
};
use serde_json::{Map, Number, Value as Json};

/// Overwrites in one merge that [`Doc::touched_since`] checks one by one; past it, a diff of the
/// document is cheaper.
const CHECKED_OVERWRITES: usize = 256;
/// How deep below the root a record's fields go (a record, a list in it, a map in the list, a
/// text in the map, ...), with room to spare.
const MAX_DEPTH: usize = 8;

/// The id of the index document, the same at every hub.
pub const INDEX_DOC: &str = "index";
/// Catalogue shards and month logs stop taking new records at about this many (hubs that
/// write apart each fill the same shard, so one can hold a few times more). A hub applies a
/// peer's edit to a document in time that grows with the document (Automerge merges the
/// change's operations into the root's: about 0.2 ms per 1,000 records here), so documents
/// are kept small enough for an edit to reach a peer in milliseconds.
pub const SHARD_TARGET: usize = 2_500;

/// The partition a new record of `kind` made at `at` belongs to.
pub fn partition_for(kind: Kind, at: Timestamp) -> String {
    // A month of four-digit years ([`valid_partition`]): an imported record of year 12026, or
    // of 1 BC, is filed under the last or the first month there is.
    // (0000-01-01 and 9999-12-01, UTC.)
    let (first, last) = (Timestamp::from_millis(-62_167_219_200_000), Timestamp::from_millis(253_399_622_400_000));
    match kind.family() {
        Family::Coalition => "coalition".to_string(),
        Family::Catalogue => kind.name().to_string(),
        Family::Log => format!("{}/{}", kind.name(), at.clamp(first, last).month()),
    }
}

/// Whether `p` is a partition [`partition_for`] makes: `coalition`, a catalogue kind's name, or a
/// log kind's name and a month (`incident/2026-11`). What a peer names for a document new to a
/// hub is held to it: the hub files the document there, and lists it to every peer after.
pub fn valid_partition(p: &str) -> bool {
    if p == "coalition" {
        return true;
    }
    let (kind, month) = match p.split_once('/') {
        Some((k, m)) => (k, Some(m)),
        None => (p, None),
    };
    let month_ok = |m: &str| {
        let b = m.as_bytes();
        b.len() == 7
            && b[4] == b'-'
            && b.iter().enumerate().all(|(i, c)| i == 4 || c.is_ascii_digit())
            && matches!(m[5..].parse::<u8>(), Ok(1..=12))
    };
    // (A kind as hubs name it: `Kind::parse` also takes other spellings.)
    match (Kind::parse(kind).ok().filter(|k| k.name() == kind).map(Kind::family), month) {
        (Some(Family::Catalogue), None) => true,
        (Some(Family::Log), Some(m)) => month_ok(m),
        _ => false,
    }
}

/// Whether document `doc` may be filed under `partition`: a partition [`valid_partition`] takes,
/// and an id that names it as every hub names a document it makes (`item-…`,
/// `incident-2026-11-…`, `coalition-…`; the welcome a new hub adopts holds exactly the documents
/// filed under `coalition`, and takes only ids that say so).
pub fn valid_filing(doc: &str, partition: &str) -> bool {
    valid_partition(partition)
        && doc
            .strip_prefix(partition.replace('/', "-").as_str())
            .is_some_and(|rest| rest.len() > 1 && rest.starts_with('-'))
}

/// The most closings of records (a check-out, a follow-up done, written into the record as
/// earlier releases did) one change may make: each is read at the change's dependencies, and a
/// hub makes one a change. More is a rewrite.
pub const MAX_CLOSINGS: usize = 16;

/// The suffix of the register kept beside a text field once it is edited: the whole text as its
/// writer left it, which is what the field then reads. Two hubs that edit the field while apart
/// leave two values there — a conflict that the hub shows a person, with both versions — where
/// the text merged by character would read as a mix of both rewrites that neither meant.
const LAST_WRITTEN: &str = "~";

/// Lists that only ever grow (a grievance's steps, a review's actions): written element by
/// element, so hubs that add or tick items apart keep both; two such lists made apart (the first
/// write of the field on two hubs) read as the union of their elements, never one hub's alone.
pub fn is_growing_list(field: &str) -> bool {
    matches!(field, "steps" | "action_items")
}

/// Fields whose string values are stored as Automerge Text (with the `LAST_WRITTEN` register).
pub fn is_text_field(field: &str) -> bool {
    matches!(
        field,
        "notes"
            | "description"
            | "details"
            | "note"
            | "worked"
            | "did_not_work"
            | "why"
            | "actions"
            | "resolution"
            | "handoff_notes"
            | "outputs"
            | "success_measure"
            | "availability"
            | "access_needs"
    )
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("document {doc}: {source}")]
    Automerge { doc: String, source: Box<automerge::AutomergeError> },
    #[error("record {id} in document {doc} is unreadable: {why}")]
    BadRecord { doc: String, id: String, why: String },
    #[error("record {0} already exists")]
    Exists(RecordId),
    #[error("document {doc} is malformed: {why}")]
    Malformed { doc: String, why: String },
    /// Automerge panicked reading or applying bytes from elsewhere ([`unpanicked`]).
    #[error("document {doc} is malformed: Automerge cannot read it (it panics)")]
    Panics { doc: String },
    #[error("no record {0}")]
    NotFound(RecordId),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Who makes a change, and when: stored in the change itself, shown in record history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Author {
    pub hub: String,
    pub handle: String,
    pub at: Timestamp,
}

#[cfg(test)]
thread_local! {
    /// Tests: [`Doc::rewrite_since`] reads every change's predecessors at its dependencies, as
    /// if none was made on top of the changes before it (both ways must reach one verdict).
    pub(crate) static READ_EVERY_CHANGE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn reads_every_change() -> bool {
    #[cfg(test)]
    return READ_EVERY_CHANGE.with(|r| r.get());
    #[cfg(not(test))]
    false
}

/// An operation by a short name within one check: its counter, and its writer's number.
type OpKey = (u64, u32);

/// A place in a document that predecessors are checked at: an object (none for the root), and
/// the number of a key in it if it is a map (a list's or a text's elements are one place).
type Place = (Option<OpKey>, Option<u32>);

/// Whether `deps` name every one of `heads` (a change that depends on all of them saw all the
/// changes before it), in time linear in both.
fn on_top_of(heads: &BTreeSet<ChangeHash>, deps: &[ChangeHash]) -> bool {
    if deps.len() < heads.len() {
        return false;
    }
    if heads.len() <= 8 {
        return heads.iter().all(|h| deps.contains(h));
    }
    let deps: foldhash::HashSet<&ChangeHash> = deps.iter().collect();
    heads.iter().all(|h| deps.contains(h))
}

/// Short names for the writers and keys one check meets ([`OpKey`], [`Place`]), so that
/// following a document of millions of operations hashes and copies no actor or key per
/// operation. (foldhash is fast, not built to resist writers who choose keys to collide; these
/// maps are never shown nor walked, so such collisions could only slow a check down.)
#[derive(Default)]
struct Names {
    actors: foldhash::HashMap<ActorId, u32>,
    keys: foldhash::HashMap<String, u32>,
}

impl Names {
    fn op(&mut self, id: &automerge::legacy::OpId) -> OpKey {
        if let Some(n) = self.actors.get(&id.1) {
            return (id.0, *n);
        }
        let n = self.actors.len() as u32;
        self.actors.insert(id.1.clone(), n);
        (id.0, n)
    }

    fn place(&mut self, obj: &automerge::legacy::ObjectId, key: Option<&str>) -> Place {
        let obj = match obj {
            automerge::legacy::ObjectId::Root => None,
            automerge::legacy::ObjectId::Id(o) => Some(self.op(o)),
        };
        let key = key.map(|k| match self.keys.get(k) {
            Some(n) => *n,
            None => {
                let n = self.keys.len() as u32;
                self.keys.insert(k.to_string(), n);
                n
            }
        });
        (obj, key)
    }
}

/// The operation that made `obj` (none for the root): [`Doc::obj_of`] the other way.
fn op_of(obj: &ObjId) -> Option<automerge::legacy::OpId> {
    match obj {
        ObjId::Id(counter, actor, _) => Some(automerge::legacy::OpId(*counter, actor.clone())),
        ObjId::Root => None,
    }
}

/// How many objects [`Doc::placed`] looks up one by one (each a scan of the document) before it
/// places every object in view in one walk.
const PLACES_BEFORE_A_WALK: usize = 64;

/// The objects one check has placed ([`Placed`], or at no record's place), and how many it
/// looked up one by one.
#[derive(Default)]
struct Places {
    known: std::collections::HashMap<automerge::legacy::OpId, Option<Placed>>,
    looked_up: usize,
}

/// Where an object lies: within `record` (the key at the root), whose object is `record_obj`,
/// under the record's `field` (none for the record's own object).
#[derive(Clone)]
struct Placed {
    record_obj: ObjId,
    record: String,
    field: Option<String>,
}

/// A change that rewrites a record that is never changed ([`Doc::rewrite_since`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewrite {
    pub record: RecordId,
    /// The actor the change claims: a hub's key, then the bytes of one run of it. Changes are
    /// not signed yet, so this names who the change says made it.
    pub actor: Vec<u8>,
    /// "changed (field)", "removed", "replaced", "made again with other content".
    pub what: String,
}

/// One Automerge document of the coalition.
pub struct Doc {
    id: String,
    doc: AutoCommit,
    /// Records touched since the last commit, listed in the change message.
    touched: BTreeSet<RecordId>,
    /// The heads as last saved or loaded: [`Doc::save_incremental`] writes what came after.
    /// (Automerge's own cursor starts empty at a load, so its first incremental save after a
    /// load would be the whole document again.)
    saved: Vec<ChangeHash>,
    /// The changes since the last save, as Automerge last rebuilt them at the document's heads
    /// then: a hub's check for rewritten records, its reading of the records they touched and
    /// its save of them all ask for the changes a message brought ([`Doc::changes_since`]).
    since: Option<Since>,
}

/// See [`Doc::changes_since`].
struct Since {
    before: Vec<ChangeHash>,
    heads: Vec<ChangeHash>,
    changes: Arc<Vec<automerge::Change>>,
}

/// Two or more values written concurrently to one field: a person chooses.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldConflict {
    pub field: String,
    pub values: Vec<Json>,
}

/// One change as the change graph knows it ([`Doc::change_list`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeInfo {
    pub hash: [u8; 32],
    pub actor: Vec<u8>,
    pub seq: u64,
    pub deps: Vec<[u8; 32]>,
}

/// One change that touched a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    pub hash: String,
    pub at: Timestamp,
    /// The hub the change's message names (what the writing hub says of itself).
    pub hub: String,
    pub handle: String,
    /// The change's actor: the key of the hub that signed it, then the bytes of one run.
    pub actor: Vec<u8>,
}

impl Doc {
    /// A new, empty document with the given actor (one per hub).
    pub fn new(id: &str, actor: &[u8]) -> Doc {
        Doc::made(id, AutoCommit::new().with_actor(ActorId::from(actor)), Vec::new())
    }

    /// `doc` as document `id`, saved as of `saved`.
    fn made(id: &str, doc: AutoCommit, saved: Vec<ChangeHash>) -> Doc {
        Doc { id: id.to_string(), doc, touched: BTreeSet::new(), saved, since: None }
    }

    /// The actor this document's next changes are made under.
    pub fn actor(&self) -> &[u8] {
        self.doc.get_actor().to_bytes()
    }

    /// Makes the next changes under `actor` (edits not yet committed are committed first, under
    /// the actor before).
    pub fn set_actor(&mut self, actor: &[u8]) {
        if self.actor() != actor {
            // Automerge would commit them without a message, under the actor before: a change
            // no one signs for. Every write commits before it returns, so there are none.
            debug_assert_eq!(self.doc.pending_ops(), 0, "edits not committed when the writer changed");
            self.doc.set_actor(ActorId::from(actor));
        }
    }

    /// Loads a document saved by [`Doc::save`] and [`Doc::save_incremental`] (concatenated).
    pub fn load(id: &str, bytes: &[u8], actor: &[u8]) -> Result<Doc> {
        // (A store's bytes should never make Automerge panic; if they do, the document is
        // damaged, which the hub repairs, not a reason to go down.)
        let doc = unpanicked(id, || AutoCommit::load(bytes))?
            .map_err(|source| Error::Automerge { doc: id.to_string(), source: Box::new(source) })?;
        let mut doc = doc.with_actor(ActorId::from(actor));
        let saved = doc.get_heads();
        Ok(Doc::made(id, doc, saved))
    }

    /// Takes `whole`, a document that arrived as one whole save and was loaded to check it, as
    /// this document, which must hold nothing yet (returns `false`, changing nothing, if it holds
    /// anything): what a new hub is sent is loaded once, not again to apply it. Nothing of it
    /// counts as saved: its first save is this hub's own encoding of all of it, never the
    /// bytes it came as (which may carry columns Automerge reads past).
    pub fn adopt(&mut self, whole: AutoCommit) -> bool {
        if !self.doc.get_heads().is_empty() || !self.doc.get_missing_deps(&[]).is_empty() {
            return false;
        }
        let actor = self.doc.get_actor().clone();
        self.doc = whole.with_actor(actor);
        self.saved = Vec::new();
        true
    }

    /// `whole`, a document that arrived as one whole save, as a document to read and check
    /// ([`Doc::rewrite_since`] from nothing, [`Doc::get`]) before any hub document takes it
    /// ([`Doc::into_automerge`], then [`Doc::adopt`]): a hub may do that ahead, off the hub.
    /// `id` names it in errors.
    pub fn arrived(id: &str, whole: AutoCommit) -> Doc {
        Doc::made(id, whole, Vec::new())
    }

    /// The Automerge document inside.
    pub fn into_automerge(self) -> AutoCommit {
        self.doc
    }

    /// Receives a sync message. Into a document that holds nothing, a whole saved document in it
    /// goes as its changes (see [`rebuilt`]).
    pub fn receive(&mut self, state: &mut automerge::sync::State, mut msg: automerge::sync::Message) -> Result<()> {
        use automerge::sync::SyncDoc;
        if self.doc.document().is_empty() && msg.changes.iter().next().is_some() {
            let mut changes = Vec::new();
            for chunk in msg.changes.iter() {
                changes.extend(changes_of(&self.id, chunk)?.into_iter().map(|c| c.raw_bytes().to_vec()));
            }
            msg.changes = changes.into();
        }
        let doc = &mut self.doc;
        let received = unpanicked(&self.id, || doc.sync().receive_sync_message(state, msg))?;
        received.map_err(|e| self.err(e))
    }

    /// Receives a sync message whose changes, one whole save, this document already took
    /// ([`Doc::adopt`]): the rest of the message (its heads, wants and bloom filter) goes to
    /// `state` exactly as if its changes had been applied now.
    pub fn receive_taken(
        &mut self,
        state: &mut automerge::sync::State,
        mut msg: automerge::sync::Message,
    ) -> Result<()> {
        use automerge::sync::SyncDoc;
        msg.changes = Vec::<Vec<u8>>::new().into();
        // Applying the changes would not have touched the heads last sent; a message without
        // changes whose heads are this document's does.
        let sent = state.last_sent_heads.clone();
        let received = self.doc.sync().receive_sync_message(state, msg);
        received.map_err(|e| self.err(e))?;
        state.last_sent_heads = sent;
        Ok(())
    }

    /// Loads what can be loaded of a document whose saved changes clash: two changes with the
    /// same actor and sequence number (written by two processes as one actor), which Automerge
    /// refuses to load at all. The first of each clashing pair is kept, the second dropped with
    /// every change that depends on it. Returns the document and how many changes were dropped;
    /// the caller restores what they held from elsewhere (the hub, from its query index).
    pub fn salvage(id: &str, bytes: &[u8], actor: &[u8]) -> Result<(Doc, usize)> {
        let err =
            |source: automerge::AutomergeError| Error::Automerge { doc: id.to_string(), source: Box::new(source) };
        let changes = changes_of(id, bytes)?;
        let mut seen = std::collections::HashMap::new();
        let mut kept = Vec::new();
        let mut clashes = 0;
        for c in changes {
            let key = (c.actor_id().clone(), c.seq());
            match seen.get(&key) {
                Some(hash) if *hash == c.hash() => {}
                Some(_) => clashes += 1,
                None => {
                    seen.insert(key, c.hash());
                    kept.push(c);
                }
            }
        }
        let n = kept.len();
        let mut doc = AutoCommit::new();
        doc.apply_changes(kept).map_err(err)?;
        // Changes that depend on a dropped one wait for it forever: they are dropped too.
        let dropped = clashes + n - doc.get_changes(&[]).len();
        // Saved whole by whoever repairs it: nothing counts as saved yet.
        let doc = Doc::made(id, doc.with_actor(ActorId::from(actor)), Vec::new());
        Ok((doc, dropped))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn heads(&mut self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// The heads as text: hex hashes separated by spaces, as the store keeps them.
    pub fn heads_text(&mut self) -> String {
        self.doc.get_heads().iter().map(|h| h.to_string()).collect::<Vec<_>>().join(" ")
    }

    /// The underlying Automerge document, for the sync protocol.
    pub fn automerge(&mut self) -> &mut AutoCommit {
        &mut self.doc
    }

    /// Writes a new record. Fails if the id exists.
    pub fn create(&mut self, rec: &Record) -> Result<()> {
        if self.doc.get(ROOT, rec.id().as_str()).map_err(|e| self.err(e))?.is_some() {
            return Err(Error::Exists(rec.id().clone()));
        }
        // The record as one object tree: Automerge adds its operations in two splices, where a
        // put of each field (and of each character of a text) splices once per operation. The
        // operations are those the field-by-field writes of `put_field` would make.
        let encoding = self.doc.text_encoding();
        let fields: std::collections::HashMap<String, automerge::hydrate::Value> =
            rec.to_json().iter().map(|(k, v)| (k.clone(), new_field(encoding, k, v))).collect();
        let record = automerge::hydrate::Value::Map(fields.into());
        self.doc.batch_create_object(ROOT, rec.id().as_str(), &record, false).map_err(|e| self.err(e))?;
        self.touched.insert(rec.id().clone());
        Ok(())
    }

    /// Writes the fields of `rec` that differ from what the document holds; meta never changes.
    /// Returns the names of the fields written.
    pub fn update(&mut self, rec: &Record) -> Result<Vec<String>> {
        self.update_settling(rec, &[])
    }

    /// As [`Doc::update`], and the fields named in `settle` that are in conflict are written
    /// even where their value is the one they read now, which settles them.
    pub fn update_settling(&mut self, rec: &Record, settle: &[&str]) -> Result<Vec<String>> {
        let Some(obj) = self.record_obj(rec.id())? else {
            return Err(Error::NotFound(rec.id().clone()));
        };
        let current = self.read_map(&obj)?;
        // A field named in `settle` that is in conflict is written even with the value it reads
        // now: a person keeping one version is what settles it. Other fields in conflict stay so.
        let conflicted: Vec<String> = if settle.is_empty() {
            Vec::new()
        } else {
            self.conflicts(rec.id())?.into_iter().map(|c| c.field).filter(|f| settle.contains(&f.as_str())).collect()
        };
        let mut written = Vec::new();
        for (k, v) in rec.body.to_fields() {
            if current.get(&k) != Some(&v) || conflicted.contains(&k) {
                self.put_field(&obj, &k, &v)?;
                if let (Json::String(s), true) = (&v, is_text_field(&k)) {
                    let register = format!("{k}{LAST_WRITTEN}");
                    self.doc.put(&obj, register.as_str(), s.as_str()).map_err(|e| self.err(e))?;
                }
                written.push(k);
            }
        }
        if !written.is_empty() {
            self.touched.insert(rec.id().clone());
        }
        Ok(written)
    }

    /// Reads one record, with conflicting field values resolved to Automerge's winner.
    pub fn get(&self, id: &RecordId) -> Result<Option<Record>> {
        let Some(obj) = self.record_obj(id)? else {
            return Ok(None);
        };
        let map = self.read_map(&obj)?;
        Record::from_json(map).map(Some).map_err(|e| Error::BadRecord {
            doc: self.id.clone(),
            id: id.to_string(),
            why: e.to_string(),
        })
    }

    /// The ids of every record in the document.
    pub fn ids(&self) -> Vec<RecordId> {
        self.doc.keys(ROOT).map(|k| RecordId::from(k.as_str())).collect()
    }

    /// Every readable record, and the ids of those that could not be read.
    pub fn records(&self) -> (Vec<Record>, Vec<(RecordId, Error)>) {
        let mut ok = Vec::new();
        let mut bad = Vec::new();
        for id in self.ids() {
            match self.get(&id) {
                Ok(Some(r)) => ok.push(r),
                Ok(None) => {}
                Err(e) => bad.push((id, e)),
            }
        }
        (ok, bad)
    }

    /// A record as [`Doc::get`] reads it, with how many of its fields hold conflicting values
    /// (as [`Doc::conflicts`] finds them): its fields are read once for both, as indexing a
    /// whole document does for every record.
    pub fn get_counted(&self, id: &RecordId) -> Result<Option<(Record, usize)>> {
        let Some(obj) = self.record_obj(id)? else {
            return Ok(None);
        };
        let mut conflicting = Vec::new();
        let map = self.read_map_noting(&obj, &mut conflicting)?;
        let conflicts = self.conflicts_in(&obj, conflicting)?.len();
        let rec = Record::from_json(map).map_err(|e| Error::BadRecord {
            doc: self.id.clone(),
            id: id.to_string(),
            why: e.to_string(),
        })?;
        Ok(Some((rec, conflicts)))
    }

    /// Fields of a record that hold concurrent values.
    pub fn conflicts(&self, id: &RecordId) -> Result<Vec<FieldConflict>> {
        let Some(obj) = self.record_obj(id)? else {
            return Ok(Vec::new());
        };
        // One pass over the record's fields; only a field that holds conflicting values is read
        // again for all of them.
        let conflicting: Vec<String> =
            self.doc.map_range(&obj, ..).filter(|f| f.conflict).map(|f| f.key.into_owned()).collect();
        self.conflicts_in(&obj, conflicting)
    }

    /// The conflicts of a record's fields that hold concurrent values (`conflicting`).
    fn conflicts_in(&self, obj: &ObjId, conflicting: Vec<String>) -> Result<Vec<FieldConflict>> {
        let mut out = Vec::new();
        for key in conflicting {
            let all = self.doc.get_all(obj, key.as_str()).map_err(|e| self.err(e))?;
            // Two growing lists read as their union: nothing for a person to choose.
            if all.len() > 1 && !is_growing_list(&key) {
                let mut values = all.into_iter().map(|(v, o)| self.to_json(v, &o)).collect::<Result<Vec<_>>>()?;
                // A text field edited on two hubs at once: both versions, as their writers left
                // them (the same text written twice is no conflict).
                let field = match key.strip_suffix(LAST_WRITTEN) {
                    Some(f) => {
                        values.dedup();
                        f.to_string()
                    }
                    None => key,
                };
                if values.len() > 1 {
                    out.push(FieldConflict { field, values });
                }
            }
        }
        Ok(out)
    }

    /// The changes that touched a record, oldest first.
    pub fn history(&mut self, id: &RecordId) -> Vec<HistoryEntry> {
        let mut out: Vec<HistoryEntry> = self
            .doc
            .get_changes_meta(&[])
            .into_iter()
            .filter_map(|c| {
                let msg: Json = serde_json::from_str(c.message.as_deref()?).ok()?;
                let touches = msg.get("r")?.as_array()?.iter().any(|r| r.as_str() == Some(id.as_str()));
                touches.then(|| HistoryEntry {
                    hash: c.hash.to_string(),
                    at: Timestamp::from_millis(c.timestamp),
                    hub: msg.get("hub").and_then(Json::as_str).unwrap_or("").to_string(),
                    handle: msg.get("by").and_then(Json::as_str).unwrap_or("").to_string(),
                    actor: c.actor.to_bytes().to_vec(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.hash.cmp(&b.hash)));
        out
    }

    /// Commits what was written since the last commit as one change. Returns its hash, or `None`
    /// if nothing was written.
    pub fn commit(&mut self, author: &Author) -> Option<ChangeHash> {
        let records: Vec<&str> = self.touched.iter().map(RecordId::as_str).collect();
        let msg = serde_json::json!({ "hub": author.hub, "by": author.handle, "r": records }).to_string();
        self.touched.clear();
        self.doc.commit_with(CommitOptions::default().with_message(msg).with_time(author.at.millis()))
    }

    /// The sequence number of change `hash` in its actor's chain, if this document holds it.
    pub fn seq_of(&mut self, hash: &ChangeHash) -> Option<u64> {
        self.doc.get_change_meta_by_hash(hash).map(|c| c.seq)
    }

    /// Every change after `heads` (all of them for none): hash, actor, sequence number and
    /// dependencies, read from the change graph (no operation is decoded).
    pub fn change_list(&mut self, heads: &[ChangeHash]) -> Vec<ChangeInfo> {
        self.doc
            .get_changes_meta(heads)
            .into_iter()
            .map(|c| ChangeInfo {
                hash: c.hash.0,
                actor: c.actor.to_bytes().to_vec(),
                seq: c.seq,
                deps: c.deps.iter().map(|d| d.0).collect(),
            })
            .collect()
    }

    /// Drops what was written since the last commit.
    pub fn rollback(&mut self) {
        self.touched.clear();
        self.doc.rollback();
    }

    /// The whole document, compacted.
    pub fn save(&mut self) -> Vec<u8> {
        let bytes = self.doc.save();
        self.saved = self.doc.get_heads();
        self.since = None;
        bytes
    }

    /// The whole document without the changes that still wait for what they depend on: what is
    /// handed to another hub (which could not apply them, and which this hub cannot vouch for),
    /// as one compressed save. What counts as saved here (what the next
    /// [`Doc::save_incremental`] leaves out) stays as it was.
    pub fn save_held(&mut self) -> Vec<u8> {
        self.doc.save_with_options(automerge::SaveOptions { deflate: true, retain_orphans: false })
    }

    /// Whether nothing of this document was saved or loaded yet.
    pub fn nothing_saved(&self) -> bool {
        self.saved.is_empty()
    }

    /// The changes made after `heads`: an incremental bundle of this document.
    pub fn save_after(&mut self, heads: &[ChangeHash]) -> Vec<u8> {
        self.doc.save_after(heads)
    }

    /// The changes since the last save, to append to what was saved: the changes a message
    /// brought, as rebuilt to check them and read the records they touched
    /// ([`Doc::changes_since`]), when they are exactly those; otherwise rebuilt by Automerge
    /// (a scan of the document).
    pub fn save_incremental(&mut self) -> Vec<u8> {
        let heads = self.doc.document().get_heads();
        let bytes = match self.since.take().filter(|s| s.before == self.saved && s.heads == heads) {
            Some(s) => s.changes.iter().flat_map(|c| c.raw_bytes().iter().copied()).collect(),
            None => self.doc.save_after(&self.saved),
        };
        self.saved = heads;
        bytes
    }

    /// Applies changes from elsewhere (a saved chunk, a bundle) and returns the records they touched.
    /// Unlike Automerge's own incremental load, a chunk that is damaged anywhere is refused whole.
    pub fn apply(&mut self, bytes: &[u8]) -> Result<BTreeSet<RecordId>> {
        unpanicked(&self.id, || {
            automerge::Automerge::load_with_options(
                bytes,
                automerge::LoadOptions::new()
                    .on_partial_load(automerge::OnPartialLoad::Error)
                    .verification_mode(automerge::VerificationMode::DontCheck),
            )
        })?
        .map_err(|e| self.err(e))?;
        let before = self.doc.get_heads();
        self.take_in(bytes)?;
        Ok(self.touched_since(&before))
    }

    /// Applies saved chunks from elsewhere. Automerge loads a whole saved document into a
    /// document that holds nothing as it was saved (see [`rebuilt`]); its changes are applied
    /// instead, as into any other document.
    fn take_in(&mut self, bytes: &[u8]) -> Result<()> {
        if self.doc.document().is_empty() {
            let changes = changes_of(&self.id, bytes)?;
            let doc = &mut self.doc;
            unpanicked(&self.id, || doc.apply_changes(changes))?.map_err(|e| self.err(e))
        } else {
            // (A whole document among them is loaded, then its changes applied.)
            let doc = &mut self.doc;
            unpanicked(&self.id, || doc.load_incremental(bytes))?.map(drop).map_err(|e| self.err(e))
        }
    }

    /// Applies changes whose integrity was already checked (a signed, authenticated bundle), which
    /// may build on history this document lacks: such changes wait in memory, unsaved, until what
    /// they depend on arrives ([`Doc::missing_deps`] tells; the caller keeps the chunk).
    pub fn apply_checked(&mut self, bytes: &[u8]) -> Result<()> {
        self.take_in(bytes)
    }

    /// Changes that applied changes depend on and this document does not hold yet.
    pub fn missing_deps(&mut self) -> Vec<ChangeHash> {
        self.doc.get_missing_deps(&[])
    }

    /// Whether this document holds the change `hash`.
    pub fn has_change(&mut self, hash: &ChangeHash) -> bool {
        // The change's metadata comes from the change graph; the change itself would be rebuilt
        // from the operations (a scan of the whole document).
        self.doc.document().get_change_meta_by_hash(hash).is_some()
    }

    /// The changes after `before`, rebuilt by Automerge from the document (a scan of it), or
    /// as rebuilt the last time they were asked for after the same `before`, at these same
    /// heads. Changes since the last save are kept for the next reader (a hub's check for
    /// rewritten records, its reading of the records they touched and the save that appends
    /// them read the same changes) until the document is saved; others (an export's since a
    /// peer's heads) are not. `Err` where Automerge panics rebuilding them (a forged change
    /// left two operations claiming one place).
    fn changes_since(&mut self, before: &[ChangeHash]) -> std::thread::Result<Arc<Vec<automerge::Change>>> {
        // The heads of the document itself (an isolated one shows others), once anything
        // uncommitted is committed, as Automerge does before it rebuilds changes.
        let heads = self.doc.document().get_heads();
        let kept = self.since.take().filter(|s| s.before == before && s.heads == heads);
        let changes = match kept {
            Some(s) => s.changes,
            None => {
                let doc = &mut self.doc;
                Arc::new(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| doc.get_changes(before)))?)
            }
        };
        if before == self.saved.as_slice() {
            self.since = Some(Since { before: before.to_vec(), heads, changes: changes.clone() });
        }
        Ok(changes)
    }

    /// The changes that a hub holding `have` (heads, possibly of changes unknown here) lacks.
    pub fn changes_after(&mut self, have: &[ChangeHash]) -> Vec<automerge::Change> {
        let have: Vec<ChangeHash> = have.iter().filter(|h| self.has_change(h)).copied().collect();
        self.doc.get_changes(&have)
    }

    /// Merges another copy of this document and returns the records that changed here.
    pub fn merge(&mut self, other: &mut Doc) -> Result<BTreeSet<RecordId>> {
        let before = self.doc.get_heads();
        self.doc.merge(&mut other.doc).map_err(|e| self.err(e))?;
        Ok(self.touched_since(&before))
    }

    /// A copy of this document with a different actor, as another hub would hold it.
    pub fn fork(&mut self, actor: &[u8]) -> Doc {
        let id = self.id.clone();
        Doc::made(&id, self.doc.fork().with_actor(ActorId::from(actor)), Vec::new())
    }

    /// The records that changed between `before` and the current heads.
    pub fn touched_since(&mut self, before: &[ChangeHash]) -> BTreeSet<RecordId> {
        let after = self.doc.get_heads();
        if before == after.as_slice() {
            return BTreeSet::new();
        }
        // From nothing, every record there is now was touched (a diff would build a patch for
        // every field of every record to say so).
        if before.is_empty() {
            return self.doc.keys(ROOT).map(|k| RecordId::from(k.as_str())).collect();
        }
        // From the new changes' operations, in proportion to what changed: a diff of the two
        // versions reads every record of the document (half a second for each incoming edit
        // on a shard of 10,000 records).
        match self.written_since(before) {
            Some(ids) => ids,
            None => self.diffed_since(before, &after),
        }
    }

    /// The records that the changes after `before` write into: at the root, or into any object
    /// below one. `None` where the operations alone cannot say, and a diff must:
    ///
    /// - an operation that overwrites or increments (its predecessors) names a predecessor that
    ///   was not a value at its own key as of `before`. Automerge applies a predecessor wherever
    ///   it meets it in the objects a change writes into, so such a change (no honest hub makes
    ///   one) could hide a value of a record the operations do not name. A deletion is read back
    ///   at the key it deletes, so it names its record whatever it claimed; an overwrite in a
    ///   list is left to the diff;
    /// - a key at the root that is not a name, or an object whose place cannot be read (or lies
    ///   deeper than any record's fields);
    /// - more overwrites than are worth checking one by one ([`CHECKED_OVERWRITES`]).
    fn written_since(&mut self, before: &[ChangeHash]) -> Option<BTreeSet<RecordId>> {
        use automerge::legacy::{Key, ObjectId, OpType};
        // Automerge rebuilds the changes from the document, and panics where a forged change
        // left it unable to (two operations claiming one place): a diff says then.
        let changes = self.changes_since(before).ok()?;
        let ops = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut ops = Vec::new();
            for change in changes.iter() {
                let (start, actor) = (change.start_op().get(), change.actor_id().clone());
                for (i, op) in change.decode().operations.into_iter().enumerate() {
                    ops.push(((start + i as u64, actor.clone()), op));
                }
            }
            ops
        }))
        .ok()?;
        // Checked before any object's place is read: Automerge panics reading the place of an
        // object made at a position of the root map.
        if ops.iter().any(|(_, op)| op.obj == ObjectId::Root && !matches!(op.key, Key::Map(_))) {
            return None;
        }
        let overwrites = ops.iter().filter(|(_, op)| !op.pred.is_empty() && op.action != OpType::Delete).count();
        if overwrites > CHECKED_OVERWRITES {
            return None;
        }
        let mut out = BTreeSet::new();
        // The record of each object these changes make, as they make it.
        let mut made: std::collections::HashMap<(u64, ActorId), String> = Default::default();
        // Each object written into, with its record: read once an object.
        let mut objects: std::collections::HashMap<(u64, ActorId), (ObjId, String)> = Default::default();
        for (id, op) in &ops {
            let (obj, record) = match &op.obj {
                ObjectId::Root => {
                    let Key::Map(key) = &op.key else { return None };
                    (ROOT, key.to_string())
                }
                ObjectId::Id(oid) => {
                    let at = (oid.0, oid.1.clone());
                    if !objects.contains_key(&at) {
                        let obj = self.obj_of(oid)?;
                        let record = match made.get(&at) {
                            Some(r) => r.clone(),
                            None => self.record_of(&obj)?,
                        };
                        objects.insert(at.clone(), (obj, record));
                    }
                    objects[&at].clone()
                }
            };
            if !op.pred.is_empty() && op.action != OpType::Delete {
                let Key::Map(key) = &op.key else { return None };
                let held = self.doc.get_all_at(&obj, key.as_str(), before).ok()?;
                let was_there = |p: &automerge::legacy::OpId| {
                    held.iter().any(|(_, e)| matches!(e, ObjId::Id(c, a, _) if *c == p.0 && *a == p.1))
                };
                if !op.pred.iter().all(was_there) {
                    return None;
                }
            }
            if matches!(op.action, OpType::Make(_)) {
                made.insert(id.clone(), record.clone());
            }
            out.insert(RecordId::from(record.as_str()));
        }
        Some(out)
    }

    /// The record (the key at the root) that `obj` is part of; `None` if its place cannot be
    /// read or lies deeper than any record's fields.
    fn record_of(&self, obj: &ObjId) -> Option<String> {
        // Reading a place is read-only; Automerge panics on some malformed documents (an object
        // at a position of a map), which must not take the hub down.
        let path = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.doc.parents(obj).ok().map(|p| p.take(MAX_DEPTH + 1).collect::<Vec<_>>())
        }))
        .ok()??;
        match path.last() {
            Some(p) if path.len() <= MAX_DEPTH && p.obj == ROOT => match &p.prop {
                Prop::Map(id) => Some(id.clone()),
                Prop::Seq(_) => None,
            },
            _ => None,
        }
    }

    /// [`Doc::touched_since`] by a diff of the two versions: every record whose state differs.
    fn diffed_since(&mut self, before: &[ChangeHash], after: &[ChangeHash]) -> BTreeSet<RecordId> {
        let patches = self.doc.diff(before, after);
        let mut out = BTreeSet::new();
        for p in patches {
            let key = match (p.path.first(), &p.action) {
                (Some((_, Prop::Map(k))), _) => Some(k.clone()),
                (None, PatchAction::PutMap { key, .. }) | (None, PatchAction::DeleteMap { key }) => Some(key.clone()),
                _ => None,
            };
            if let Some(k) = key {
                out.insert(RecordId::from(k.as_str()));
            }
        }
        out
    }

    /// A refusal of changes to this document as a whole, by `actor` where known: the document
    /// `what`.
    fn refusal(&self, actor: Vec<u8>, what: &str) -> Rewrite {
        Rewrite { record: RecordId::from(self.id.as_str()), actor, what: what.into() }
    }

    /// The refusal of changes that do not rebuild as they were made, by `actor` where known.
    fn forged(&self, actor: Vec<u8>) -> Rewrite {
        self.refusal(actor, "holds a change that does not rebuild as it was made (its predecessors were forged)")
    }

    /// The object an operation `id` made, if this document holds it ([`op_of`] the other way).
    fn obj_of(&self, id: &automerge::legacy::OpId) -> Option<ObjId> {
        self.doc.import_obj(&format!("{}@{}", id.0, id.1)).ok()
    }

    /// Where the object `oid` lies ([`Placed`]); `None` for an object at no record's place.
    /// Objects a batch makes are placed as they are made ([`Doc::placed_new`]); others are read
    /// once (reading an object's place scans the document: once for every write into a
    /// document of long history took a minute).
    fn placed(&self, objects: &mut Places, oid: &automerge::legacy::OpId) -> Option<Placed> {
        if let Some(p) = objects.known.get(oid) {
            return p.clone();
        }
        // Past a few, every object in view is placed in one walk of the document (a heal that
        // writes into a thousand records would scan it a thousand times). An object's place
        // never changes, and one in view has one path from the root: the walk and Automerge's
        // `parents` place it alike.
        objects.looked_up += 1;
        if objects.looked_up == PLACES_BEFORE_A_WALK {
            self.place_all(objects);
            if let Some(p) = objects.known.get(oid) {
                return p.clone();
            }
        }
        let placed = (|| {
            let obj = self.obj_of(oid)?;
            // The path runs from the root down: (root, record id), then (record, field), ...
            // (Automerge panics reading the place of some malformed objects.)
            let path = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.doc.parents(&obj).ok().map(|p| p.path())
            }))
            .ok()??;
            match path.first() {
                Some((o, Prop::Map(id))) if *o == ROOT => Some(Placed {
                    record_obj: path.get(1).map(|p| p.0.clone()).unwrap_or_else(|| obj.clone()),
                    record: id.clone(),
                    field: path.get(1).map(|p| p.1.to_string()),
                }),
                _ => None,
            }
        })();
        objects.known.insert(oid.clone(), placed.clone());
        placed
    }

    /// Places every object in view ([`Doc::placed`]) that `objects` does not hold yet: each
    /// record at the root, and everything within it under its field.
    fn place_all(&self, objects: &mut Places) {
        for item in self.doc.map_range(ROOT, ..) {
            let (record_obj, record) = match item.value {
                automerge::ValueRef::Object(_) => (item.id(), item.key.to_string()),
                _ => continue,
            };
            let mut within: Vec<(ObjId, Option<String>)> = vec![(record_obj.clone(), None)];
            while let Some((obj, field)) = within.pop() {
                let Some(id) = op_of(&obj) else { continue };
                if objects.known.contains_key(&id) {
                    continue;
                }
                let under = |key: Option<String>| field.clone().or(key);
                match self.doc.object_type(&obj) {
                    Ok(automerge::ObjType::Map) | Ok(automerge::ObjType::Table) => {
                        for it in self.doc.map_range(&obj, ..) {
                            if let automerge::ValueRef::Object(_) = it.value {
                                within.push((it.id(), under(Some(it.key.to_string()))));
                            }
                        }
                    }
                    Ok(automerge::ObjType::List) => {
                        for it in self.doc.list_range(&obj, ..) {
                            if let automerge::ValueRef::Object(_) = it.value {
                                within.push((it.id(), under(Some(it.index.to_string()))));
                            }
                        }
                    }
                    _ => {}
                }
                objects
                    .known
                    .insert(id, Some(Placed { record_obj: record_obj.clone(), record: record.clone(), field }));
            }
        }
    }

    /// Where the object that `op` (whose id is `id`) makes lies: a record, at a key of the root;
    /// within the record of the object it is made in, under that object's field.
    fn placed_new(
        &self,
        objects: &mut Places,
        op: &automerge::legacy::Op,
        id: &automerge::legacy::OpId,
    ) -> Option<Placed> {
        use automerge::legacy::{Key, ObjectId};
        match (&op.obj, &op.key) {
            (ObjectId::Root, Key::Map(k)) => {
                Some(Placed { record_obj: self.obj_of(id)?, record: k.to_string(), field: None })
            }
            (ObjectId::Root, Key::Seq(_)) => None,
            (ObjectId::Id(parent), key) => {
                let p = self.placed(objects, parent)?;
                let field = p.field.or_else(|| match key {
                    Key::Map(f) => Some(f.to_string()),
                    Key::Seq(_) => Some(String::new()),
                });
                Some(Placed { field, ..p })
            }
        }
    }

    /// Whether `obj` is a text.
    fn is_text(&self, obj: &automerge::legacy::ObjectId) -> bool {
        let automerge::legacy::ObjectId::Id(o) = obj else { return false };
        self.obj_of(o).is_some_and(|obj| matches!(self.doc.object_type(&obj), Ok(automerge::ObjType::Text)))
    }

    /// The values at `place` of the document as it was at `heads`, by the operations that put
    /// them there: at a key of a map; anywhere in a list or a text (a write elsewhere in one
    /// list or text changes nothing outside it). A list's or text's values are read whole (each
    /// element read apart scans the object).
    fn values_at(
        &self,
        obj: &automerge::legacy::ObjectId,
        key: Option<&str>,
        heads: &[ChangeHash],
        names: &mut Names,
    ) -> Vec<OpKey> {
        use automerge::legacy::ObjectId;
        let obj = match obj {
            ObjectId::Root => ROOT,
            ObjectId::Id(o) => match self.obj_of(o) {
                Some(obj) => obj,
                None => return Vec::new(),
            },
        };
        let mut id_of = |id: &ObjId| op_of(id).map(|id| names.op(&id));
        match key {
            Some(k) => self
                .doc
                .get_all_at(&obj, k, heads)
                .map(|all| all.iter().filter_map(|(_, id)| id_of(id)).collect())
                .unwrap_or_default(),
            None => {
                let mut held = Vec::new();
                // (A text's characters hold no conflicts: no hub puts a value on one. Automerge
                // would read one by width, not by character.)
                let text = matches!(self.doc.object_type(&obj), Ok(automerge::ObjType::Text));
                for item in self.doc.list_range_at(&obj, .., heads) {
                    let all = match item.conflict && !text {
                        true => self.doc.get_all_at(&obj, item.index, heads).unwrap_or_default(),
                        false => vec![(Value::Scalar(std::borrow::Cow::Owned(ScalarValue::Null)), item.id())],
                    };
                    held.extend(all.iter().filter_map(|(_, id)| id_of(id)));
                }
                held
            }
        }
    }

    /// Whether `op` (of `change`) closes `record`: it sets its closing `field` to a value of the
    /// field's own type that closes it (a check-out time, not before the check-in; `done` true),
    /// and it writes over every value the field held as the change's writer saw the record, all
    /// of them still open (empty, or false), and nothing else. So a closed field is never
    /// changed again, reopened or removed; two hubs that close it apart leave both values (a
    /// conflict people see, and which only an amendment answers).
    fn closes(
        &self,
        change: &automerge::Change,
        record: &ObjId,
        op: &automerge::legacy::Op,
        field: &str,
    ) -> Result<bool> {
        let open = |v: &ScalarValue| matches!(v, ScalarValue::Null | ScalarValue::Boolean(false));
        let (automerge::legacy::Key::Map(k), automerge::legacy::OpType::Put(v)) = (&op.key, &op.action) else {
            return Ok(false);
        };
        if k.as_str() != field || op.insert {
            return Ok(false);
        }
        let deps = change.deps();
        let time_at = |key: &str| -> Result<Option<Timestamp>> {
            Ok(match self.doc.get_at(record, key, deps).map_err(|e| self.err(e))? {
                Some((Value::Scalar(s), _)) => match s.as_ref() {
                    ScalarValue::Str(t) => Timestamp::parse(t).ok(),
                    _ => None,
                },
                _ => None,
            })
        };
        let closing = match (field, v) {
            ("checked_out", ScalarValue::Str(t)) => match (Timestamp::parse(t), time_at("checked_in")?) {
                (Ok(out), Some(came)) => out >= came,
                _ => false,
            },
            ("done", ScalarValue::Boolean(true)) => true,
            _ => false,
        };
        if !closing {
            return Ok(false);
        }
        let was = self.doc.get_all_at(record, field, deps).map_err(|e| self.err(e))?;
        let all_open = was.iter().all(|(v, _)| matches!(v, Value::Scalar(s) if open(s)));
        let overwritten: Option<BTreeSet<automerge::legacy::OpId>> = was.iter().map(|(_, id)| op_of(id)).collect();
        let pred: BTreeSet<automerge::legacy::OpId> = op.pred.iter().cloned().collect();
        Ok(all_open && overwritten.is_some_and(|o| o == pred))
    }

    /// The first change after `before` that rewrites a record that is never changed: one that
    /// writes into a record, or into any part of one, that another change created, or that
    /// replaces or removes a record at the root, or creates a second, different record under
    /// the same id. `fixed(kind)` says whether records of a kind (as their creator wrote it) are
    /// never changed. The verdict depends on the changes alone, never on what this hub held
    /// before, so every hub reaches the same one.
    pub fn rewrite_since(&mut self, before: &[ChangeHash], fixed: impl Fn(&str) -> bool) -> Result<Option<Rewrite>> {
        // Automerge rebuilds the changes from the document; it panics where a forged change left
        // it unable to (two operations claiming one place).
        let Ok(changes) = self.changes_since(before) else {
            return Ok(Some(self.forged(Vec::new())));
        };
        if changes.is_empty() {
            return Ok(None);
        }
        // Each change must rebuild as it was made. One that names as predecessor an operation
        // that is nowhere, or elsewhere than its own key, is applied by Automerge all the same
        // and rebuilds differently: what it did is then not what its operations say, and records
        // are read at changes that do not exist.
        if let Some(c) = changes.iter().find(|c| self.doc.document().get_change_meta_by_hash(&c.hash()).is_none()) {
            return Ok(Some(self.forged(c.actor_id().to_bytes().to_vec())));
        }
        self.rewrite_unpanicked(before, &changes, fixed)
    }

    /// [`Doc::rewrite_since`] from nothing, for a document [`rebuilt`] from `changes` (which it
    /// would rebuild again).
    pub fn rewrite_of_rebuilt(
        &mut self,
        changes: &[automerge::Change],
        fixed: impl Fn(&str) -> bool,
    ) -> Result<Option<Rewrite>> {
        if changes.is_empty() && !self.doc.get_heads().is_empty() {
            return Ok(Some(self.forged(Vec::new())));
        }
        self.rewrite_unpanicked(&[], changes, fixed)
    }

    /// [`Doc::rewrite_in`], where Automerge panicking as the changes are read is a refusal of
    /// them (so that a hub drops what waited with them), not a hub gone down.
    fn rewrite_unpanicked(
        &mut self,
        before: &[ChangeHash],
        changes: &[automerge::Change],
        fixed: impl Fn(&str) -> bool,
    ) -> Result<Option<Rewrite>> {
        let id = self.id.clone();
        match unpanicked(&id, || self.rewrite_in(before, changes, fixed)) {
            Ok(verdict) => verdict,
            Err(_) => Ok(Some(self.refusal(Vec::new(), "holds changes Automerge cannot read (it panics)"))),
        }
    }

    /// The first of `changes` that is out of its writer's line: one that does not name its
    /// writer's previous change among its dependencies, or whose operations are not numbered
    /// after every change it depends on. Automerge makes neither (a change's dependencies are its
    /// writer's heads, which hold its previous change, and its operations are numbered after
    /// everything it holds), and its reading of a document at given heads counts on both: a
    /// writer's operations up to the highest numbered one of its changes there count as there.
    /// With both, what a change's writer saw is what the document shows at its dependencies,
    /// the same at every hub, whatever it held before ([`Doc::values_at`]).
    fn out_of_line<'c>(&mut self, changes: &'c [automerge::Change]) -> Option<&'c automerge::Change> {
        let batch: std::collections::HashMap<ChangeHash, &automerge::Change> =
            changes.iter().map(|c| (c.hash(), c)).collect();
        changes.iter().find(|c| {
            let mut follows = c.seq() == 1;
            for d in c.deps() {
                let (actor, seq, max_op) = match batch.get(d) {
                    Some(d) => (d.actor_id().clone(), d.seq(), d.max_op()),
                    None => match self.doc.document().get_change_meta_by_hash(d) {
                        Some(m) => (m.actor.into_owned(), m.seq, m.max_op),
                        None => return true,
                    },
                };
                if c.start_op().get() <= max_op {
                    return true;
                }
                follows |= &actor == c.actor_id() && seq + 1 == c.seq();
            }
            !follows
        })
    }

    /// [`Doc::rewrite_since`] for `changes`, the changes after `before` in causal order, each
    /// held as made.
    fn rewrite_in(
        &mut self,
        before: &[ChangeHash],
        changes: &[automerge::Change],
        fixed: impl Fn(&str) -> bool,
    ) -> Result<Option<Rewrite>> {
        if changes.is_empty() {
            return Ok(None);
        }
        if let Some(c) = self.out_of_line(changes) {
            let what = "holds a change that does not follow its writer's previous change";
            return Ok(Some(self.refusal(c.actor_id().to_bytes().to_vec(), what)));
        }
        // Which of these changes made an operation (counter, actor), if one did: each actor's
        // changes by their first operation, so that a long history is searched, not scanned.
        let mut by_actor: std::collections::HashMap<&ActorId, Vec<(u64, u64, usize)>> = Default::default();
        for (i, c) in changes.iter().enumerate() {
            let start = c.start_op().get();
            by_actor.entry(c.actor_id()).or_default().push((start, start + c.len() as u64, i));
        }
        for ranges in by_actor.values_mut() {
            ranges.sort_unstable();
        }
        let made_by = |counter: u64, actor: &ActorId| {
            let ranges = by_actor.get(actor)?;
            let at = ranges.partition_point(|r| r.0 <= counter).checked_sub(1)?;
            let (start, end, i) = ranges[at];
            (start..end).contains(&counter).then_some(i)
        };
        // A record object's kind as the change that created it wrote it: whether it is never
        // changed, and the field that closes it, if one does.
        let mut kinds: std::collections::HashMap<String, (bool, Option<&'static str>)> =
            std::collections::HashMap::new();
        let mut rule_of = |doc: &AutoCommit, obj: &ObjId| -> Result<(bool, Option<&'static str>)> {
            let key = obj.to_string();
            if let Some(f) = kinds.get(&key) {
                return Ok(*f);
            }
            let heads = match obj {
                ObjId::Id(counter, actor, _) => match made_by(*counter, actor) {
                    Some(i) => vec![changes[i].hash()],
                    None => before.to_vec(),
                },
                ObjId::Root => before.to_vec(),
            };
            let text_at = |key: &str| -> Result<String> {
                Ok(
                    match doc
                        .get_at(obj, key, &heads)
                        .map_err(|e| Error::Automerge { doc: self.id.clone(), source: Box::new(e) })?
                    {
                        Some((Value::Scalar(s), _)) => match s.as_ref() {
                            ScalarValue::Str(k) => k.to_string(),
                            _ => String::new(),
                        },
                        _ => String::new(),
                    },
                )
            };
            let kind = text_at("kind")?;
            let parsed = Kind::parse(&kind).ok();
            // A record of a kind that became append-only later, made before that, is judged as
            // the releases that made it judged it (one with no readable time is not).
            let made_before = match parsed.and_then(Kind::append_only_from) {
                Some(from) => Timestamp::parse(&text_at("created_at")?).is_ok_and(|at| at < from),
                None => false,
            };
            let f = if made_before { (false, None) } else { (fixed(&kind), parsed.and_then(Kind::closing_field)) };
            kinds.insert(key, f);
            Ok(f)
        };
        let mut created_at_root: BTreeSet<String> = BTreeSet::new();
        // Where each object written into lies ([`Placed`]).
        let mut objects = Places::default();
        // The document as the changes so far make it: its heads, and each value in it by the
        // place it is at (those held before the batch read once a place, as it is first
        // written). A change made on top of all of them (the common case: a hub's own edits
        // one after another, a document taken whole) saw exactly that; others are read at
        // their dependencies.
        let mut names = Names::default();
        let mut heads: BTreeSet<ChangeHash> = before.iter().copied().collect();
        let mut now: foldhash::HashMap<OpKey, Place> = Default::default();
        let mut read: foldhash::HashSet<Place> = Default::default();
        for (ci, change) in changes.iter().enumerate() {
            let actor = change.actor_id().to_bytes().to_vec();
            let mut closings = 0;
            let start = change.start_op().get();
            let writer = names.op(&automerge::legacy::OpId(start, change.actor_id().clone())).1;
            // (Every dependency is among the changes so far, or before them: a change that
            // depends on all their heads saw all of them.)
            let on_top = on_top_of(&heads, change.deps()) && !reads_every_change();
            for d in change.deps() {
                heads.remove(d);
            }
            heads.insert(change.hash());
            // Otherwise: the values at each place at the change's dependencies, and what this
            // change made and overwrote, for the predecessors named after it.
            let mut at_deps: foldhash::HashMap<Place, Vec<OpKey>> = Default::default();
            let mut made_here: foldhash::HashMap<OpKey, Place> = Default::default();
            let mut overwritten: foldhash::HashSet<OpKey> = Default::default();
            for (i, op) in change.decode().operations.into_iter().enumerate() {
                use automerge::legacy::{ElementId, Key, ObjectId, OpId, OpType};
                let id = OpId(start + i as u64, change.actor_id().clone());
                let me: OpKey = (id.0, writer);
                // What no hub makes: counters' increments (Automerge takes one naming a value
                // that is no counter as overwriting it), marks in a text, a value put on a
                // text's character (a text is written by inserting and deleting characters;
                // Automerge reads a text's places by width, not by character).
                let no_hub_makes = match &op.action {
                    OpType::Increment(_) | OpType::MarkBegin(_) | OpType::MarkEnd(_) => true,
                    OpType::Put(_) | OpType::Make(_) => {
                        !op.insert && matches!(op.key, Key::Seq(_)) && self.is_text(&op.obj)
                    }
                    OpType::Delete => false,
                };
                if no_hub_makes {
                    let what = "holds an operation no hub makes (an increment, a mark, or a value put on a character of a text)";
                    return Ok(Some(self.refusal(actor, what)));
                }
                let key = match &op.key {
                    Key::Map(k) => Some(k.as_str()),
                    Key::Seq(_) => None,
                };
                let place = names.place(&op.obj, key);
                // The values held there before the batch, as it is first written.
                if !before.is_empty() && read.insert(place) {
                    let made_in_batch = match &op.obj {
                        ObjectId::Root => false,
                        ObjectId::Id(o) => made_by(o.0, &o.1).is_some(),
                    };
                    if !made_in_batch {
                        for v in self.values_at(&op.obj, key, before, &mut names) {
                            now.insert(v, place);
                        }
                    }
                }
                // Automerge applies a predecessor wherever it meets it in the objects a batch
                // writes into, not only at the operation's own place, and whether or not it is
                // still there; an honest hub names only values it saw there. A forged one could
                // hide a value of a fixed record from a write elsewhere, and rebuild as it was
                // made. One rule for every predecessor, wherever it was made and whatever this
                // hub held before: a value at the operation's own place as the change's
                // dependencies have it, or put there earlier in the same change, and not
                // overwritten since in the change. So every hub reaches the same verdict.
                let preds: Vec<OpKey> = op.pred.iter().map(|p| names.op(p)).collect();
                for &p in &preds {
                    let own = !matches!(op.key, Key::Seq(ElementId::Head))
                        && if on_top {
                            now.get(&p) == Some(&place)
                        } else {
                            !overwritten.contains(&p)
                                && match made_here.get(&p) {
                                    Some(at) => *at == place,
                                    None => at_deps
                                        .entry(place)
                                        .or_insert_with(|| self.values_at(&op.obj, key, change.deps(), &mut names))
                                        .contains(&p),
                                }
                        };
                    if op.insert || !own {
                        let what = "holds a change that overwrites a value its writer did not see at that place (its predecessors were forged)";
                        return Ok(Some(self.refusal(actor, what)));
                    }
                }
                // The document now: a put or a new object is a value; a deletion is none.
                for p in preds {
                    now.remove(&p);
                    if !on_top {
                        overwritten.insert(p);
                    }
                }
                if matches!(op.action, OpType::Put(_) | OpType::Make(_)) {
                    now.insert(me, place);
                    if !on_top {
                        made_here.insert(me, place);
                    }
                }
                if matches!(op.action, automerge::legacy::OpType::Make(_)) {
                    let placed = self.placed_new(&mut objects, &op, &id);
                    objects.known.insert(id.clone(), placed);
                }
                match &op.obj {
                    automerge::legacy::ObjectId::Root => {
                        let automerge::legacy::Key::Map(id) = &op.key else { continue };
                        if op.pred.is_empty() {
                            created_at_root.insert(id.to_string());
                            continue;
                        }
                        // It replaces or removes what was there: a record, if one was.
                        for p in op.pred.iter() {
                            let Some(obj) = self.obj_of(p) else { continue };
                            if rule_of(&self.doc, &obj)?.0 {
                                let what = if matches!(op.action, automerge::legacy::OpType::Delete) {
                                    "removed"
                                } else {
                                    "replaced"
                                };
                                return Ok(Some(Rewrite { record: id.as_str().into(), actor, what: what.into() }));
                            }
                        }
                    }
                    automerge::legacy::ObjectId::Id(oid) => {
                        if made_by(oid.0, &oid.1) == Some(ci) {
                            continue;
                        }
                        let Some(Placed { record_obj, record, field }) = self.placed(&mut objects, oid) else {
                            continue;
                        };
                        // What a record is, who made it, where and when, is written once, by
                        // the change that makes it, whatever its kind: so its kind, and when
                        // it was made, read the same at any heads (`rule_of` reads them).
                        if let (automerge::legacy::Key::Map(k), None) = (&op.key, &field) {
                            if META_KEYS.contains(&k.as_str()) {
                                let what = format!("changed ({k})");
                                return Ok(Some(Rewrite { record: record.as_str().into(), actor, what }));
                            }
                        }
                        let (fixed_record, closing) = rule_of(&self.doc, &record_obj)?;
                        if fixed_record {
                            // Its closing field, set once where it was open: no rewrite.
                            // At most `MAX_CLOSINGS` a change (a hub closes one record a
                            // change), each read at the change's dependencies.
                            if let Some(closing) = closing.filter(|_| field.is_none()) {
                                closings += 1;
                                if closings <= MAX_CLOSINGS && self.closes(change, &record_obj, &op, closing)? {
                                    continue;
                                }
                            }
                            let field = match (&op.key, field) {
                                (automerge::legacy::Key::Map(k), None) => k.to_string(),
                                (_, Some(f)) => f,
                                _ => String::new(),
                            };
                            let what = format!("changed ({field})");
                            return Ok(Some(Rewrite { record: record.as_str().into(), actor, what }));
                        }
                    }
                }
            }
        }
        // Two records created under one id, apart: the same content is a repair, anything else
        // a rewrite. They read as a conflict at the root; a whole document (nothing before)
        // created every record there, so its root is read once for the ids in conflict.
        if before.is_empty() {
            let conflicting: BTreeSet<String> =
                self.doc.map_range(ROOT, ..).filter(|f| f.conflict).map(|f| f.key.into_owned()).collect();
            created_at_root.retain(|id| conflicting.contains(id));
        }
        for id in created_at_root {
            let all = self.doc.get_all(ROOT, id.as_str()).map_err(|e| self.err(e))?;
            if all.len() < 2 {
                continue;
            }
            let mut values = Vec::new();
            let mut any_fixed = false;
            for (v, o) in all {
                // (A value that is no object is no record: it has no kind to read.)
                any_fixed |= matches!(v, Value::Object(_)) && rule_of(&self.doc, &o)?.0;
                values.push(self.to_json(v, &o)?);
            }
            values.dedup();
            if any_fixed && values.len() > 1 {
                let actor = self
                    .doc
                    .get_all(ROOT, id.as_str())
                    .ok()
                    .and_then(|a| {
                        a.last().and_then(|(_, o)| match o {
                            ObjId::Id(_, actor, _) => Some(actor.to_bytes().to_vec()),
                            ObjId::Root => None,
                        })
                    })
                    .unwrap_or_default();
                return Ok(Some(Rewrite {
                    record: id.as_str().into(),
                    actor,
                    what: "made again with other content".into(),
                }));
            }
        }
        Ok(None)
    }

    fn record_obj(&self, id: &RecordId) -> Result<Option<ObjId>> {
        match self.doc.get(ROOT, id.as_str()).map_err(|e| self.err(e))? {
            Some((Value::Object(ObjType::Map), obj)) => Ok(Some(obj)),
            Some(_) => Err(Error::BadRecord { doc: self.id.clone(), id: id.to_string(), why: "not a map".into() }),
            None => Ok(None),
        }
    }

    fn read_map(&self, obj: &ObjId) -> Result<Map<String, Json>> {
        self.read_map_noting(obj, &mut Vec::new())
    }

    /// [`Doc::read_map`], noting in `conflicting` the fields that hold concurrent values.
    fn read_map_noting(&self, obj: &ObjId, conflicting: &mut Vec<String>) -> Result<Map<String, Json>> {
        let mut m = Map::new();
        // One pass over the map's fields, each with its winning value and whether others
        // conflict with it.
        for field in self.doc.map_range(obj, ..) {
            let key = field.key.to_string();
            if field.conflict {
                conflicting.push(key.clone());
            }
            if field.conflict && is_growing_list(&key) {
                let all = self.doc.get_all(obj, key.as_str()).map_err(|e| self.err(e))?;
                m.insert(key, self.union_of_lists(all)?);
                continue;
            }
            let id = field.id();
            m.insert(key, self.to_json(field.value.into_value(), &id)?);
        }
        // An edited text field reads as its last writer left it (one writer's version, the same
        // on every hub, while a conflict waits for a person): never as a character-by-character
        // mix of two rewrites.
        let registers: Vec<String> = m.keys().filter(|k| k.ends_with(LAST_WRITTEN)).cloned().collect();
        for r in registers {
            if let Some(v) = m.remove(&r) {
                m.insert(r.trim_end_matches(LAST_WRITTEN).to_string(), v);
            }
        }
        Ok(m)
    }

    /// The elements of every concurrent value of a growing list, each once, in the order of the
    /// values (Automerge's, the same on every hub).
    fn union_of_lists(&self, all: Vec<(Value<'_>, ObjId)>) -> Result<Json> {
        let mut out: Vec<Json> = Vec::new();
        for (v, o) in all {
            if let Json::Array(items) = self.to_json(v, &o)? {
                for i in items {
                    if !out.contains(&i) {
                        out.push(i);
                    }
                }
            }
        }
        Ok(Json::Array(out))
    }

    fn to_json(&self, v: Value<'_>, obj: &ObjId) -> Result<Json> {
        Ok(match v {
            Value::Scalar(s) => scalar_to_json(&s),
            Value::Object(ObjType::Text) => Json::String(self.doc.text(obj).map_err(|e| self.err(e))?),
            Value::Object(ObjType::Map | ObjType::Table) => Json::Object(self.read_map(obj)?),
            Value::Object(ObjType::List) => {
                let mut out = Vec::new();
                for i in 0..self.doc.length(obj) {
                    if let Some((v, o)) = self.doc.get(obj, i).map_err(|e| self.err(e))? {
                        out.push(self.to_json(v, &o)?);
                    }
                }
                Json::Array(out)
            }
        })
    }

    fn put_field(&mut self, obj: &ObjId, key: &str, v: &Json) -> Result<()> {
        if META_KEYS.contains(&key) {
            if let Json::String(s) = v {
                return self.doc.put(obj, key, s.as_str()).map_err(|e| self.err(e));
            }
        }
        if let (Json::String(s), true) = (v, is_text_field(key)) {
            let existing = match self.doc.get(obj, key).map_err(|e| self.err(e))? {
                Some((Value::Object(ObjType::Text), t)) => Some(t),
                _ => None,
            };
            let text = match existing {
                Some(t) => t,
                None => self.doc.put_object(obj, key, ObjType::Text).map_err(|e| self.err(e))?,
            };
            return self.doc.update_text(&text, s.as_str()).map_err(|e| self.err(e));
        }
        // (A list in conflict is written whole: writing it is what settles the conflict.)
        if let (Json::Array(items), true) = (v, is_growing_list(key)) {
            let all = self.doc.get_all(obj, key).map_err(|e| self.err(e))?;
            let list = match &all[..] {
                [(Value::Object(ObjType::List), list)] => Some(list.clone()),
                _ => None,
            };
            if let Some(list) = list {
                if self.update_list(&list, items)? {
                    return Ok(());
                }
            }
        }
        put_json(&mut self.doc, obj, Prop::Map(key.to_string()), v).map_err(|e| self.err(e))
    }

    /// Writes a list that kept its elements and maybe grew (a step added, an action ticked off)
    /// element by element: changed elements in place (a map element field by field), new ones
    /// inserted at the end. Hubs that append or tick apart then keep both, where replacing the
    /// whole list would keep one hub's list. Answers false, writing nothing, for a list that
    /// shrank: that is replaced whole.
    fn update_list(&mut self, list: &ObjId, items: &[Json]) -> Result<bool> {
        let len = self.doc.length(list);
        if items.len() < len {
            return Ok(false);
        }
        for (i, new) in items.iter().enumerate() {
            let Some((current, elem)) = self.doc.get(list, i).map_err(|e| self.err(e))? else {
                put_json(&mut self.doc, list, Prop::Seq(i), new).map_err(|e| self.err(e))?;
                continue;
            };
            let is_map = matches!(current, Value::Object(ObjType::Map));
            if &self.to_json(current, &elem)? == new {
                continue;
            }
            match (is_map, new) {
                (true, Json::Object(fields)) => {
                    let old = self.read_map(&elem)?;
                    for (k, v) in fields {
                        if old.get(k) != Some(v) {
                            put_json(&mut self.doc, &elem, Prop::Map(k.clone()), v).map_err(|e| self.err(e))?;
                        }
                    }
                    for k in old.keys().filter(|k| !fields.contains_key(*k)) {
                        self.doc.delete(&elem, k.as_str()).map_err(|e| self.err(e))?;
                    }
                }
                _ => put_json(&mut self.doc, list, Prop::Seq(i), new).map_err(|e| self.err(e))?,
            }
        }
        Ok(true)
    }

    fn err(&self, source: automerge::AutomergeError) -> Error {
        Error::Automerge { doc: self.id.clone(), source: Box::new(source) }
    }
}

/// Whether `msg` is an acknowledgement of everything a document holds: no changes, and the
/// sender's heads are `heads`, the document's own (none is not an acknowledgement). Heads are
/// compared as Automerge does, in order (Automerge's own are sorted). [`acknowledged`] then
/// takes it without the document.
pub fn acknowledges(msg: &automerge::sync::Message, heads: &[ChangeHash]) -> bool {
    msg.changes.is_empty() && !heads.is_empty() && msg.heads == heads
}

/// Receives into `state` an acknowledgement of everything a document holds
/// ([`acknowledges`]) without the document: `state` moves exactly as
/// Automerge's `receive_sync_message` would move it on the document (tested against it). A
/// serving hub gets one for each document a new hub takes, and need not load it again for it.
pub fn acknowledged(state: &mut automerge::sync::State, msg: automerge::sync::Message) {
    use automerge::sync::{Capability, MessageFlags};
    state.in_flight = false;
    if let Some(flags) = msg.flags {
        let mut caps = vec![Capability::MessageV2];
        if flags.contains(MessageFlags::SUPPORTS_SYNC_RESET) {
            caps.push(Capability::SyncReset);
        }
        state.their_capabilities = Some(caps);
        state.peer_read_only = flags.contains(MessageFlags::READ_ONLY);
    }
    // Everything sent was a change held here, so one of the peer's heads or before them: none
    // is left that the peer has not seen (Automerge keeps those not among their ancestors).
    state.sent_hashes.clear();
    // The heads are this document's: Automerge notes them as the heads last sent, and as
    // shared.
    state.last_sent_heads.clone_from(&msg.heads);
    state.shared_heads.clone_from(&msg.heads);
    state.their_have = Some(msg.have);
    state.their_heads = Some(msg.heads);
    state.their_need = Some(msg.need);
}

/// The first sync message of a document to a peer nothing was heard from about it (`state`
/// fresh, or as persisted: none of the peer's heads, needs or capabilities, no summary of its
/// own, and no message generated yet), on a document whose heads are `heads` (in Automerge's order): what
/// Automerge's `generate_sync_message` sends then, less its summary of this side's changes
/// (`have`), with `state` moved as it moves it (tested against it). `None` for any other state
/// or no heads, `state` untouched. A serving hub offers a new hub each document with its heads
/// first, and need not load the document to do it.
pub fn heads_message(state: &mut automerge::sync::State, heads: &[ChangeHash]) -> Option<automerge::sync::Message> {
    use automerge::sync::{Message, MessageFlags, MessageVersion};
    // (A persisted state reads back with an empty summary of the peer's and no needs: as
    // nothing, since Automerge sends changes only once it knows both.)
    let fresh = !state.have_responded
        && state.their_heads.is_none()
        && state.their_have.as_ref().is_none_or(Vec::is_empty)
        && state.their_need.is_none()
        && state.their_capabilities.is_none();
    let sorted = heads.windows(2).all(|w| w[0] < w[1]);
    if heads.is_empty() || !sorted || !fresh || state.read_only || state.peer_read_only || state.needs_reset {
        return None;
    }
    // Nothing is known of the peer: Automerge needs nothing of it, sends no changes, and (not
    // knowing the peer takes the second version) encodes the message in the first.
    state.have_responded = true;
    state.last_sent_heads = heads.to_vec();
    state.in_flight = true;
    let mut flags = MessageFlags::new();
    flags.set(MessageFlags::SUPPORTS_SYNC_RESET);
    Some(Message {
        heads: heads.to_vec(),
        need: Vec::new(),
        have: Vec::new(),
        changes: Vec::<Vec<u8>>::new().into(),
        flags: Some(flags),
        version: MessageVersion::V1,
    })
}

/// Whether Automerge's `generate_sync_message` has nothing to send, on a document whose heads
/// are `heads` (in Automerge's order), as read from `state` alone (tested against it): the peer
/// said it holds exactly these heads and needs nothing, and this side last said them too. A
/// serving hub then need not load the document to learn it. `false` where it cannot tell.
///
/// Whatever the peer's summary (`have`) says it synced at before: a peer at these very heads
/// holds every change they follow from, so Automerge offers none (what it offers is what came
/// after that point and is not in the summary's filter, which misses none of the peer's
/// changes). So a hub that just took a whole document, the peer's summary naming nothing
/// synced before, and answered it, does not load it again to learn that it has nothing to
/// send back. A peer that lies in its summary at these heads (a sync at a change this hub
/// never saw, a filter that leaves changes out) is sent nothing, where Automerge would send
/// it a reset or those changes: it holds them already, by its own heads.
pub fn nothing_to_send(state: &automerge::sync::State, heads: &[ChangeHash]) -> bool {
    if heads.is_empty() || state.read_only || state.peer_read_only || state.needs_reset || !state.have_responded {
        return false;
    }
    let (Some(their_heads), Some(need)) = (&state.their_heads, &state.their_need) else {
        return false;
    };
    // In order, as Automerge compares them.
    state.last_sent_heads == heads && their_heads == heads && need.is_empty()
}

fn scalar_to_json(s: &ScalarValue) -> Json {
    match s {
        ScalarValue::Str(s) => Json::String(s.to_string()),
        ScalarValue::Int(i) => Json::from(*i),
        ScalarValue::Uint(u) => Json::from(*u),
        ScalarValue::F64(f) => Number::from_f64(*f).map(Json::Number).unwrap_or(Json::Null),
        ScalarValue::Boolean(b) => Json::Bool(*b),
        ScalarValue::Counter(c) => Json::from(i64::from(c)),
        ScalarValue::Timestamp(t) => Json::from(*t),
        ScalarValue::Null | ScalarValue::Bytes(_) | ScalarValue::Unknown { .. } => Json::Null,
    }
}

fn put_json(doc: &mut AutoCommit, obj: &ObjId, prop: Prop, v: &Json) -> Result<(), automerge::AutomergeError> {
    let insert = matches!(prop, Prop::Seq(_)) && doc.length(obj) <= prop_index(&prop);
    if let Some(s) = scalar(v) {
        return match prop {
            Prop::Seq(i) if insert => doc.insert(obj, i, s),
            p => doc.put(obj, p, s),
        };
    }
    let (ty, is_map) = if v.is_object() { (ObjType::Map, true) } else { (ObjType::List, false) };
    let child = match prop {
        Prop::Seq(i) if insert => doc.insert_object(obj, i, ty)?,
        p => doc.put_object(obj, p, ty)?,
    };
    if is_map {
        for (k, v) in v.as_object().into_iter().flatten() {
            put_json(doc, &child, Prop::Map(k.clone()), v)?;
        }
    } else {
        for (i, v) in v.as_array().into_iter().flatten().enumerate() {
            put_json(doc, &child, Prop::Seq(i), v)?;
        }
    }
    Ok(())
}

/// A field of a new record as [`Doc::put_field`] writes it into an empty record: the meta
/// fields and other strings as scalars, text fields as Text, the rest as [`put_json`] does.
fn new_field(encoding: automerge::TextEncoding, key: &str, v: &Json) -> automerge::hydrate::Value {
    match v {
        Json::String(s) if is_text_field(key) && !META_KEYS.contains(&key) => {
            automerge::hydrate::Value::Text(automerge::hydrate::Text::new(encoding, s))
        }
        v => hydrate_json(v),
    }
}

/// `v` as [`put_json`] writes it.
fn hydrate_json(v: &Json) -> automerge::hydrate::Value {
    use automerge::hydrate::Value as H;
    match v {
        Json::Array(items) => H::List(items.iter().map(hydrate_json).collect::<Vec<_>>().into()),
        Json::Object(m) => H::Map(
            m.iter().map(|(k, v)| (k.clone(), hydrate_json(v))).collect::<std::collections::HashMap<_, _>>().into(),
        ),
        v => H::Scalar(scalar(v).unwrap_or(ScalarValue::Null)),
    }
}

/// A JSON value that is not a list or a map, as an Automerge scalar.
fn scalar(v: &Json) -> Option<ScalarValue> {
    Some(match v {
        Json::Null => ScalarValue::Null,
        Json::Bool(b) => ScalarValue::Boolean(*b),
        Json::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => ScalarValue::Int(i),
            (None, Some(u), _) => ScalarValue::Uint(u),
            (_, _, f) => ScalarValue::F64(f.unwrap_or(0.0)),
        },
        Json::String(s) => ScalarValue::Str(s.as_str().into()),
        Json::Array(_) | Json::Object(_) => return None,
    })
}

fn prop_index(p: &Prop) -> usize {
    match p {
        Prop::Seq(i) => *i,
        Prop::Map(_) => 0,
    }
}

/// The changes in `bytes` (saved chunks): a whole document's, rebuilt from its operations.
fn changes_of(id: &str, bytes: &[u8]) -> Result<Vec<automerge::Change>> {
    let err = |source: automerge::AutomergeError| Error::Automerge { doc: id.to_string(), source: Box::new(source) };
    let mut changes = Vec::new();
    for (kind, piece) in split_chunks(bytes).map_err(|why| Error::Malformed { doc: id.to_string(), why })? {
        if kind == 0 {
            let mut whole = unpanicked(id, || AutoCommit::load(piece))?.map_err(err)?;
            // The changes the load checked against their hashes (what signatures cover), and
            // none else, as [`rebuilt`] makes sure of for a document taken whole.
            let named: std::collections::HashSet<ChangeHash> =
                whole.get_changes_meta(&[]).iter().map(|m| m.hash).collect();
            let rebuilt = changes_rebuilt(id, whole)?;
            if rebuilt.len() != named.len() || !rebuilt.iter().all(|c| named.contains(&c.hash())) {
                let why = "its changes rebuild other than the document names them".to_string();
                return Err(Error::Malformed { doc: id.to_string(), why });
            }
            changes.extend(rebuilt);
        } else {
            changes.push(
                unpanicked(id, || automerge::Change::from_bytes(piece.to_vec()))?.map_err(|e| Error::Malformed {
                    doc: id.to_string(),
                    why: format!("a change does not parse: {e}"),
                })?,
            );
        }
    }
    Ok(changes)
}

/// Every change of `whole`, rebuilt from its operations.
fn changes_rebuilt(id: &str, mut whole: AutoCommit) -> Result<Vec<automerge::Change>> {
    unpanicked(id, || whole.get_changes(&[]))
}

/// `f`, reading or applying bytes from elsewhere with Automerge, which panics on some it cannot
/// take (a saved document in which an operation is overwritten by one elsewhere can rebuild as
/// two operations in one place; an operation into an object that does not exist): refused as
/// malformed, not taking the hub down (the hub drops what it holds in memory of a document whose
/// message was refused).
fn unpanicked<T>(id: &str, f: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|_| Error::Panics { doc: id.to_string() })
}

/// `whole`, a document that arrived as one whole save, as its changes alone make it. Automerge
/// loads a saved document's operations as they were saved, with which values each one
/// overwrites, and rebuilds its changes (and their hashes, which signatures cover) from the
/// overwrites it can place at their own keys only: a forger can so save, under honest changes
/// and their signatures, a value marked overwritten from elsewhere (a movement gone), that no
/// change removed. Applied again from its changes, the document holds what they say, and
/// nothing else. Returns the document and its changes (for [`Doc::rewrite_of_rebuilt`]).
pub fn rebuilt(id: &str, mut whole: AutoCommit) -> Result<(AutoCommit, Vec<automerge::Change>)> {
    let heads = whole.get_heads();
    let changes = changes_rebuilt(id, whole)?;
    let mut doc = AutoCommit::new();
    unpanicked(id, || doc.apply_changes(changes.iter().cloned()))?
        .map_err(|source| Error::Automerge { doc: id.to_string(), source: Box::new(source) })?;
    // (What signatures were checked against is the loaded document's changes.)
    if doc.get_heads() != heads {
        let why = "applied again from its changes, it is another document".to_string();
        return Err(Error::Malformed { doc: id.to_string(), why });
    }
    Ok((doc, changes))
}

/// Splits saved Automerge bytes into their chunks: (chunk type, the whole chunk). Each chunk is
/// the magic bytes, a 4-byte checksum, a type byte (0 document, 1 change, 2 compressed change),
/// a LEB128 length and that many bytes.
fn split_chunks(mut bytes: &[u8]) -> std::result::Result<Vec<(u8, &[u8])>, String> {
    const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 9 || bytes[..4] != MAGIC {
            return Err(format!("no chunk starts at byte {} from the end", bytes.len()));
        }
        let kind = bytes[8];
        let (mut len, mut shift, mut at) = (0u64, 0u32, 9usize);
        loop {
            let b = *bytes.get(at).ok_or("a chunk length is cut short")?;
            len |= u64::from(b & 0x7f).checked_shl(shift).ok_or("a chunk length is too long")?;
            at += 1;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let end = usize::try_from(len).ok().and_then(|l| at.checked_add(l)).filter(|e| *e <= bytes.len());
        let end = end.ok_or("a chunk runs past the end of the bytes")?;
        out.push((kind, &bytes[..end]));
        bytes = &bytes[end..];
    }
    Ok(out)
}

/// An entry of the index document: one partition document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocEntry {
    pub doc: String,
    pub partition: String,
    pub created_at: Timestamp,
}

/// The index document: which documents exist and which partition each belongs to.
pub struct Index(Doc);

impl Index {
    pub fn new(actor: &[u8]) -> Index {
        Index(Doc::new(INDEX_DOC, actor))
    }
    pub fn from_doc(doc: Doc) -> Index {
        Index(doc)
    }
    pub fn doc(&mut self) -> &mut Doc {
        &mut self.0
    }

    /// Every listed document, in partition then creation order.
    pub fn entries(&self) -> Vec<DocEntry> {
        let d = &self.0.doc;
        let mut out: Vec<DocEntry> = d
            .keys(ROOT)
            .filter_map(|doc| {
                let (_, obj) = d.get(ROOT, doc.as_str()).ok()??;
                let partition = match d.get(&obj, "partition").ok()?? {
                    (Value::Scalar(s), _) => s.as_str()?.to_string(),
                    _ => return None,
                };
                let created_at = match d.get(&obj, "created_at").ok().flatten() {
                    Some((Value::Scalar(s), _)) => s.as_i64().unwrap_or(0),
                    _ => 0,
                };
                Some(DocEntry { doc, partition, created_at: Timestamp::from_millis(created_at) })
            })
            .collect();
        out.sort_by(|a, b| (&a.partition, a.created_at, &a.doc).cmp(&(&b.partition, b.created_at, &b.doc)));
        out
    }

    /// Lists a new document.
    pub fn add(&mut self, entry: &DocEntry, author: &Author) -> Result<()> {
        let d = &mut self.0;
        let obj = d.doc.put_object(ROOT, entry.doc.as_str(), ObjType::Map).map_err(|e| d.err(e))?;
        d.doc.put(&obj, "partition", entry.partition.as_str()).map_err(|e| d.err(e))?;
        d.doc.put(&obj, "created_at", entry.created_at.millis()).map_err(|e| d.err(e))?;
        d.commit(author);
        Ok(())
    }
}

/// Chooses the document a new record of a partition goes to: the oldest one with room, so that
/// hubs fill shards in the same order. Catalogue shards and month logs both roll over at
/// [`SHARD_TARGET`] records; the coalition document never does. `None` means a new shard must be made.
pub fn choose_shard<'a>(
    candidates: impl IntoIterator<Item = (&'a DocEntry, usize)>,
    family: Family,
) -> Option<&'a DocEntry> {
    candidates
        .into_iter()
        .filter(|(_, n)| family == Family::Coalition || *n < SHARD_TARGET)
        .min_by(|a, b| (a.0.created_at, &a.0.doc).cmp(&(b.0.created_at, &b.0.doc)))
        .map(|(e, _)| e)
}

pub mod fuzzing;
pub use fuzzing::feed_changes;

#[cfg(test)]
mod tests;
