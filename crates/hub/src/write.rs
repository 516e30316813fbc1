//! Commands that change records: add, update, amend, import, merge, and the vault.
//!
//! Every command validates first, then writes the Automerge change and the query index in one
//! store transaction. If the transaction fails, the documents it touched are dropped from memory
//! so that memory never runs ahead of the disk.

use std::collections::{BTreeMap, BTreeSet};

use aidmesh_model::{
    views::check_amendment, Body, FieldError, Kind, Meta, Movement, MovementKind, Record, RecordId, Timestamp,
};
use aidmesh_replica::{choose_shard, partition_for, Author, Doc, DocEntry};
use aidmesh_store::{IndexRow, Tx};
use serde_json::{Map, Value};

use crate::{Error, Event, Hub, Result, Task, DOC_CACHE};

/// One document as saved, to carry to another hub.
#[derive(Clone, Debug)]
pub struct DocExport {
    pub doc: String,
    pub partition: String,
    pub created_at: Timestamp,
    pub bytes: Vec<u8>,
    /// The signatures that vouch for its changes (one per actor).
    pub sigs: Vec<aidmesh_mesh::changes::ChangeSig>,
}

/// Where [`Hub::vault_erase`] erased an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Erased {
    /// Held here: its content and key are destroyed here, and the erasure passed on.
    Here,
    /// Held only at the hub that took it: an admin's `Erase` entry in the authority log erases
    /// it there when the log reaches it (over the mesh or a bundle), not before.
    Elsewhere,
}

/// A change to make to one document. `true` when the bytes it would apply came as one whole
/// save and the empty document already took them as they came ([`Doc::adopt`]): what is left
/// is whatever else the change does (a sync message's heads and wants).
pub(crate) type DocChange<'a> = Box<dyn FnOnce(&mut Doc, bool) -> Result<()> + 'a>;

/// One document to change in [`Hub::ingest_many`].
pub(crate) struct Incoming<'a> {
    pub(crate) doc: &'a str,
    pub(crate) partition: &'a str,
    pub(crate) created_at: Timestamp,
    pub(crate) sync_state: Option<PeerState<'a>>,
    pub(crate) apply: DocChange<'a>,
    /// The chunk `apply` applies, kept in the store if some of its changes must wait for changes
    /// they depend on (a bundle imported before an earlier one); `None` for sync messages, whose
    /// protocol asks again for what is missing.
    pub(crate) keep: Option<&'a [u8]>,
    /// The changes `apply` brings and the signatures that vouch for them: checked before
    /// anything is applied. Made when the document's turn comes (a bundle's every change,
    /// decoded at once, would be held all the while).
    pub(crate) door: Box<dyn FnOnce() -> Result<crate::signing::Door> + 'a>,
}

/// One document's part of a [`Hub::ingest_many`] write, prepared in memory.
struct Prepared {
    doc: String,
    partition: String,
    created_at: Timestamp,
    new: bool,
    index_chunk: Vec<u8>,
    chunk: Vec<u8>,
    heads: String,
    rows: Vec<(IndexRow, Record)>,
    olds: Vec<Option<String>>,
    state: Option<(String, Vec<u8>)>,
    ids: Vec<String>,
    /// Whether changes still wait for ones they depend on; with the chunk to keep, if any.
    waiting: bool,
    keep: Option<(String, Vec<u8>)>,
    had_waiting: bool,
    /// Signed tips of the changes held now, and signed changes that still wait.
    tips: Vec<aidmesh_mesh::changes::Tip>,
    vouchers: Vec<aidmesh_mesh::changes::Voucher>,
}

/// Stores one document's merge: its chunk and heads, the re-indexed records, the peer's sync
/// state, the signatures that vouch for it, and what still waits.
fn persist(tx: &mut Tx<'_>, p: &Prepared) -> aidmesh_store::Result<()> {
    if p.new {
        tx.add_doc(&p.doc, &p.partition, p.created_at.millis())?;
        tx.append_chunk(aidmesh_replica::INDEX_DOC, &p.index_chunk)?;
    }
    tx.append_chunk(&p.doc, &p.chunk)?;
    tx.set_heads(&p.doc, &p.heads)?;
    reindex(tx, p.rows.iter().zip(&p.olds).map(|((row, rec), old)| (row, rec, old.as_deref())))?;
    if let Some((peer, bytes)) = &p.state {
        tx.set_sync_state(peer, &p.doc, bytes)?;
    }
    for t in &p.tips {
        crate::signing::keep_tip(tx, &p.doc, t)?;
    }
    for v in &p.vouchers {
        crate::signing::keep_voucher(tx, &p.doc, v)?;
    }
    if let Some((sha, bytes)) = &p.keep {
        tx.add_pending(&p.doc, sha, bytes)?;
    } else if p.had_waiting && !p.waiting {
        tx.clear_pending(&p.doc)?;
    }
    Ok(())
}

/// A peer, and how to encode its sync state once a sync message was applied.
pub(crate) type PeerState<'a> = (&'a str, &'a dyn Fn(&mut Doc) -> Vec<u8>);

/// Whether records of `kind` are never changed once made (a kind this version does not know
/// is not).
pub(crate) fn append_only(kind: &str) -> bool {
    Kind::parse(kind).is_ok_and(|k| k.append_only())
}

/// Records per Automerge commit in bulk writes: automerge's sync sends a whole document when a
/// peer lacks more than a third of its changes by count, so large imports are many commits.
const BATCH: usize = 500;
/// A document stored in more chunks than this is folded into one save when the hub is idle
/// ([`Hub::fold_chunks`], which a running node calls).
const PILED_UP: i64 = 64;
/// A write folds a document of more chunks than this itself: a hub that no node runs (the
/// command alone) never idles.
const PILED_HIGH: i64 = 1024;

/// How a refusal names changes that waited in a hub for earlier ones (from a bundle), which the
/// refusal drops.
const WAITED: &str =
    " that waited in this hub for earlier changes (from a bundle); the waiting changes of that document are dropped";

/// Why a volunteer's access needs are refused in the record: they are health data, which the
/// record's history would keep for good on every hub.
const ACCESS_NEEDS_IN_THE_VAULT: &str = "are health data, kept with the person's contact in the vault, where they can be erased: write them in the contact form (aidmesh vault contact ID access_needs=…), never in the record, whose history every hub keeps for good";

impl Hub {
    /// Adds a record of `kind` from its fields, as the acting person, now.
    pub fn add(&mut self, kind: Kind, fields: Map<String, Value>) -> Result<Record> {
        let body = Body::from_fields_strict(kind, fields).map_err(|e| Error::invalid(kind.name(), vec![e]))?;
        self.add_body(body)
    }

    /// Adds a record from a typed body.
    pub fn add_body(&mut self, body: Body) -> Result<Record> {
        let kind = body.kind();
        let now = self.clock.now();
        let id = RecordId::generate(now, self.random());
        let mut rec = Record {
            meta: Meta { id, kind, created_hub: self.hub_id.clone(), created_by: self.handle.clone(), created_at: now },
            body,
        };
        // Authority is signed by the unlocked person: say so before anything else. The approver
        // is whoever is unlocked, never a typed name.
        if matches!(kind, Kind::Approval | Kind::RoleGrant | Kind::Policy | Kind::Expense) {
            self.acting_identity()?;
        }
        if let Body::Approval(a) = &mut rec.body {
            a.approver = self.acting_handle();
        }
        self.care_new(&mut rec)?;
        self.check_new(&rec, &BTreeMap::new())?;
        match kind {
            // Authority is an entry of the authority log, signed by the unlocked person; the
            // record is what people read in lists, and names that entry.
            Kind::Approval | Kind::RoleGrant | Kind::Policy => {
                let (by, entry) = self.sign_for_record(&rec)?;
                match &mut rec.body {
                    Body::Approval(a) => (a.signer, a.sig) = (by, entry),
                    Body::RoleGrant(g) => (g.signer, g.sig) = (by, entry),
                    _ => {}
                }
                self.write_records(std::slice::from_ref(&rec), now)?;
            }
            // An expense is recorded by a person, in the log too: what approvals are judged by.
            Kind::Expense => {
                self.may_record_expenses()?;
                self.write_records(std::slice::from_ref(&rec), now)?;
                self.record_expense(&rec)?;
            }
            _ => self.write_records(std::slice::from_ref(&rec), now)?,
        }
        Ok(rec)
    }

    /// Changes fields of a record. Append-only kinds refuse: they take amendments.
    /// A confidential grievance is changed only by its readers, and answered to anyone as they
    /// may read it.
    /// A request's status and an allocation's status, quantity and ends follow the request loop
    /// (`allocate`, `advance_allocation`, `set_request_status`): changed by hand they would move
    /// stock or close a request without its steps, so they are refused here.
    pub fn update(&mut self, id: &str, patch: Map<String, Value>) -> Result<Record> {
        self.update_as(id, patch, false)
    }

    /// [`Hub::update`]; `by_flow` is the request loop itself, which may set what it rules.
    pub(crate) fn update_as(&mut self, id: &str, patch: Map<String, Value>, by_flow: bool) -> Result<Record> {
        let current = self.get(id)?;
        let kind = current.kind();
        if kind.append_only() {
            return Err(Error::AppendOnly { kind: kind.name().into(), id: id.into() });
        }
        let ruled: &[&str] = match kind {
            Kind::Allocation => &["status", "quantity", "request", "offer", "item", "place"],
            Kind::Request => &["status", "contact"],
            Kind::Volunteer => &["contact", "access_needs"],
            Kind::Offer => &["contact"],
            _ => &[],
        };
        let contact_ok = match patch.get("contact") {
            Some(v) if !by_flow && ruled.contains(&"contact") => self.contact_by_hand(&current, v)?,
            _ => false,
        };
        // Access needs written before they moved to the contact may be cleared from the record
        // (its history keeps them: only the contact's copy can be erased), or one of two values
        // written apart kept, which writes nothing new.
        let needs_ok = match patch.get("access_needs") {
            Some(v) if !by_flow && ruled.contains(&"access_needs") => {
                v.as_str().is_some_and(|s| s.trim().is_empty()) || self.settles_conflict(&current, "access_needs", v)?
            }
            _ => false,
        };
        let by_hand = |k: &String| {
            ruled.contains(&k.as_str()) && !(k == "contact" && contact_ok) && !(k == "access_needs" && needs_ok)
        };
        if let Some(f) = patch.keys().find(|k| by_hand(k)).filter(|_| !by_flow) {
            let how = |how: &str| format!("is not changed by hand: {how}");
            let why = match (kind, f.as_str()) {
                // Only the contact form points a record at a vault entry: a contact typed here
                // would stay in the record's history, and one pointed at another's entry would
                // read it under this record's name.
                // (Two values written apart may be settled by keeping one; a contact typed by
                // hand, which names no entry, may be cleared.)
                (_, "contact") => how("set it with the contact form (aidmesh vault contact ID name=…), which keeps it in the vault"),
                (_, "access_needs") => ACCESS_NEEDS_IN_THE_VAULT.to_string(),
                (Kind::Request, _) => how("cancel or reopen the request (aidmesh request ID cancel|reopen); the rest follows from its allocations"),
                _ => how("move the allocation on with its steps (aidmesh step ID in_transit|delivered|released), or release it and allocate again"),
            };
            return Err(Error::invalid(kind.name(), vec![FieldError::new(f, why)]));
        }
        if current.redacted_for(&self.handle).is_some() {
            return Err(Error::invalid(
                kind.name(),
                vec![FieldError::new(
                    "",
                    "only its readers may change a confidential grievance, and not the people it concerns",
                )],
            ));
        }
        let mut fields = current.body.to_fields();
        let known = kind.field_names();
        // The fields the person wrote: those in conflict are settled by it, even unchanged.
        let settle: Vec<String> = patch.keys().cloned().collect();
        for (k, v) in patch {
            if !known.contains(&k) {
                return Err(Error::invalid(
                    kind.name(),
                    vec![FieldError::new(
                        &k,
                        format!("{kind} has no field {k:?}; its fields are: {}", known.join(", ")),
                    )],
                ));
            }
            fields.insert(k, v);
        }
        let body = Body::from_fields_strict(kind, fields).map_err(|e| Error::invalid(kind.name(), vec![e]))?;
        let mut rec = Record { meta: current.meta.clone(), body };
        self.care_rules(&current, &mut rec, by_flow)?;
        body_rules(&rec)?;
        self.check_refs(&rec, &BTreeMap::new())?;
        let now = self.clock.now();
        let (_, doc_id, _) = self.store.record(id)?.ok_or_else(|| Error::NotFound(id.into()))?;
        let author = self.author(now);
        let result = (|| -> Result<()> {
            let doc = self.doc(&doc_id)?;
            let settle: Vec<&str> = settle.iter().map(String::as_str).collect();
            if doc.update_settling(&rec, &settle)?.is_empty() {
                return Ok(());
            }
            let hash = doc.commit(&author);
            let commit = crate::signing::committed(doc, hash);
            let bytes = doc.save_incremental();
            let heads = doc.heads_text();
            let row = index_row(&rec, &doc_id, doc)?;
            let old = self.store.record(id)?.map(|(_, _, j)| j);
            let tip = self.own_tip(&doc_id, commit);
            self.store.write(|tx| {
                tx.append_chunk(&doc_id, &bytes)?;
                tx.set_heads(&doc_id, &heads)?;
                tip.iter().try_for_each(|t| crate::signing::keep_tip(tx, &doc_id, t))?;
                reindex(tx, [(&row, &rec, old.as_deref())])
            })?;
            Ok(())
        })();
        self.settle(result, std::slice::from_ref(&doc_id))?;
        self.changed_docs.insert(doc_id);
        self.emit(Event::RecordsChanged { ids: vec![id.to_string()] });
        if kind == Kind::Volunteer {
            self.keep_withdrawn_here(&[id.to_string()])?;
        }
        let rec = self.get(id)?;
        Ok(rec.redacted_for(&self.handle).unwrap_or(rec))
    }

    /// Corrects an append-only record (incident, expense, ...) by adding an amendment.
    pub fn amend(&mut self, id: &str, field: &str, value: Value, reason: &str) -> Result<Record> {
        let mut fields = Map::new();
        fields.insert("target".into(), Value::String(id.to_string()));
        fields.insert("field".into(), Value::String(field.to_string()));
        fields.insert("value".into(), value);
        fields.insert("reason".into(), Value::String(reason.to_string()));
        self.add(Kind::Amendment, fields)
    }

    /// Imports whole records (with their ids and meta): all or nothing. Records already present
    /// are skipped. Every bad row is named with every reason.
    pub fn import_records(&mut self, rows: Vec<(usize, Result<Record, String>)>) -> Result<crate::ImportReport> {
        let mut bad = Vec::new();
        let mut good: Vec<(usize, Record)> = Vec::new();
        let mut seen: BTreeSet<RecordId> = BTreeSet::new();
        let mut skipped = 0;
        for (row, r) in rows {
            match r {
                Err(e) => bad.push(crate::RowError { row, id: None, errors: vec![e] }),
                Ok(rec) => {
                    if self.store.kind_of(rec.id().as_str())?.is_some() {
                        skipped += 1;
                        continue;
                    }
                    if !seen.insert(rec.id().clone()) {
                        bad.push(crate::RowError {
                            row,
                            id: Some(rec.id().to_string()),
                            errors: vec!["the same id appears twice in the import".into()],
                        });
                        continue;
                    }
                    good.push((row, rec));
                }
            }
        }
        // Rows refer to each other: an amendment to a row is checked against that row.
        let pending: BTreeMap<RecordId, &Record> = good.iter().map(|(_, r)| (r.id().clone(), r)).collect();
        for (row, rec) in &good {
            if let Err(e) = self.check_new(rec, &pending) {
                let errors = match e {
                    Error::Invalid { errors, .. } => errors.into_iter().map(|e| e.to_string()).collect(),
                    other => vec![other.to_string()],
                };
                bad.push(crate::RowError { row: *row, id: Some(rec.id().to_string()), errors });
            }
        }
        if !bad.is_empty() {
            bad.sort_by_key(|r| r.row);
            return Err(Error::Import { rows: bad });
        }
        let recs: Vec<Record> = good.into_iter().map(|(_, r)| r).collect();
        let mut per_kind = BTreeMap::new();
        for r in &recs {
            *per_kind.entry(r.kind().name().to_string()).or_insert(0usize) += 1;
        }
        let now = self.clock.now();
        self.write_records(&recs, now)?;
        Ok(crate::ImportReport { imported: recs.len(), skipped, per_kind })
    }

    /// Merges saved changes of one document from elsewhere (another hub's store, a welcome),
    /// with the signatures that vouch for them. Returns the ids of records that changed.
    pub(crate) fn merge_doc(
        &mut self,
        doc_id: &str,
        partition: &str,
        created_at: Timestamp,
        bytes: &[u8],
        sigs: &[aidmesh_mesh::changes::ChangeSig],
    ) -> Result<Vec<String>> {
        let result = crate::signing::Door::of_bytes("merged document", bytes, sigs.to_vec()).and_then(|door| {
            self.ingest(doc_id, partition, created_at, None, door, |doc, taken| {
                if !taken {
                    doc.apply(bytes)?;
                }
                Ok(())
            })
        });
        if let Err(e) = &result {
            self.note_refused("a merged document", e);
        }
        result
    }

    /// Changes one document with `f` (a merge, a sync message), then persists the change, the
    /// re-indexed records it touched and, for a sync, the peer's sync state, in one transaction.
    /// A document this hub did not hold is created and listed in the index.
    pub(crate) fn ingest(
        &mut self,
        doc_id: &str,
        partition: &str,
        created_at: Timestamp,
        sync_state: Option<PeerState<'_>>,
        door: crate::signing::Door,
        f: impl FnOnce(&mut Doc, bool) -> Result<()>,
    ) -> Result<Vec<String>> {
        let door = Box::new(move || Ok(door));
        let item = Incoming { doc: doc_id, partition, created_at, sync_state, apply: Box::new(f), keep: None, door };
        self.ingest_many(vec![item], None)
    }

    /// Like [`Hub::ingest`] for several documents at once: all are persisted in one store
    /// transaction, or none is (a bundle import).
    pub(crate) fn ingest_many(&mut self, items: Vec<Incoming<'_>>, task: Option<Task>) -> Result<Vec<String>> {
        // A group lost since (a local write's commit of it failed) is forgotten first.
        self.forget_lost_group();
        let total = items.len() as u64;
        let touched_docs: Vec<String> = items.iter().map(|i| i.doc.to_string()).collect();
        // The member keys the door checks signatures against, read only when changes arrive (a
        // sync acknowledgement brings none).
        let mut keys: Option<std::collections::HashSet<[u8; 32]>> = None;
        // What a peer sent, with its sync state, it sends again if a power cut loses it: that
        // commit does not wait for the disk (the edit reaches the peer's screen sooner).
        let resendable = items.iter().all(|i| i.sync_state.is_some());
        // Several documents (a bundle) are written one by one inside one store transaction, so
        // that memory holds one document's index rows at a time: all are stored, or none.
        let batch = items.len() > 1;
        let mut poisoned: Option<String> = None;
        let each = |hub: &mut Hub| -> Result<Vec<(String, Vec<String>)>> {
            let mut written = Vec::new();
            for (done, item) in (1u64..).zip(items) {
                let new = !hub.store.has_doc(item.doc)?;
                let mut index_chunk = Vec::new();
                let now = hub.clock.now();
                let filed_at = Timestamp::from_millis(item.created_at.millis().clamp(0, now.millis().max(0)));
                // No change is applied that no member hub's signature vouches for.
                let mut door = (item.door)()?;
                // A document is filed here only with a change to it: one that came with none
                // (an empty save, which hubs of earlier releases exported for a document they
                // were only offered) files nothing, and no signature would say who filed it.
                if new && door.changes.is_empty() {
                    if let Some(task) = task {
                        hub.emit(Event::Progress { task, done, total });
                    }
                    continue;
                }
                if new {
                    // Where a document new here is filed, and when it was made, are the
                    // sender's word (no signature covers them). A partition no hub makes, or
                    // an id that does not name it, is refused; a time not yet come (a laptop's
                    // clock ahead, or a member's ploy to have its document chosen for every
                    // write) counts as now, one before 1970 as 1970 (the time only orders the
                    // shards a hub writes into).
                    if !aidmesh_replica::valid_filing(item.doc, item.partition) {
                        let why = format!(
                            "document {} is filed under {:?}, which no hub files it under",
                            item.doc, item.partition
                        );
                        return Err(Error::Tampered(why));
                    }
                    let author = hub.author(now);
                    let entry =
                        DocEntry { doc: item.doc.into(), partition: item.partition.into(), created_at: filed_at };
                    hub.index.add(&entry, &author)?;
                    index_chunk = hub.index.doc().save_incremental();
                    let actor = hub.actor.clone();
                    hub.cache(Doc::new(item.doc, &actor));
                }
                if keys.is_none() && !door.changes.is_empty() {
                    keys = Some(hub.hub_keys()?);
                }
                let whole = door.whole.take();
                let ahead = door.ahead.take();
                hub.check_door(item.doc, door, keys.as_ref().unwrap_or(&Default::default()))?;
                let earlier = hub.store.pending(item.doc)?;
                let had_waiting = !earlier.is_empty();
                let doc = hub.doc(item.doc)?;
                let before = doc.heads();
                // Changes held here that wait for what they depend on (kept with the document).
                let queued = !doc.missing_deps().is_empty();
                // A whole document for one that holds nothing is taken as the door loaded it,
                // not loaded a second time (it is stored as this hub saves it, below: the
                // bytes it came as may carry columns Automerge does not read).
                let taken = whole.is_some_and(|w| doc.adopt(w));
                // Changes that passed the door are signed by a member: ones Automerge cannot
                // apply were made by hand to harm. They may be ones that waited here for what
                // came now, kept with the document: those go, or every later message bringing
                // what they wait for would be refused.
                let panicked = |e: &Error| matches!(e, Error::Replica(aidmesh_replica::Error::Panics { .. }));
                let unreadable = |waited: &str| {
                    Error::Tampered(format!(
                        "document {} holds changes signed by a member that Automerge cannot read (it panics){waited}",
                        item.doc
                    ))
                };
                if let Err(e) = (item.apply)(doc, taken) {
                    if !panicked(&e) {
                        return Err(e);
                    }
                    if had_waiting || queued {
                        poisoned = Some(item.doc.to_string());
                        return Err(unreadable(
                            "; the changes of that document that waited in this hub (from a bundle) are dropped",
                        ));
                    }
                    return Err(unreadable(""));
                }
                // Records that are never changed stay as they were: a change that writes into
                // one another change made, or replaces or removes one, is refused with everything
                // that came with it, before anything is stored. The verdict rests on the changes
                // alone, so every hub reaches it, whatever it held before.
                // What was worked out ahead, as the document was loaded, holds for the
                // document taken as it came: it held nothing before.
                let ahead = ahead.filter(|_| taken).transpose()?;
                let rewrite = match &ahead {
                    Some(a) => a.rewrite.clone(),
                    None => doc.rewrite_since(&before, append_only)?,
                };
                // Changes that waited for this one's dependencies may apply now; checked apart,
                // so that a rewrite among them is not blamed on this sender.
                let mid = doc.heads();
                for chunk in &earlier {
                    match doc.apply_checked(chunk).map_err(Error::from) {
                        Err(e) if panicked(&e) => {
                            poisoned = Some(item.doc.to_string());
                            return Err(unreadable(WAITED));
                        }
                        r => r?,
                    }
                }
                let waited = if had_waiting { doc.rewrite_since(&mid, append_only)? } else { None };
                if let Some(r) = rewrite {
                    // The rewriting change may be one that waited here (from an earlier stick)
                    // and applied with what came now: what waits for this document goes too.
                    if had_waiting || queued {
                        poisoned = Some(item.doc.to_string());
                    }
                    return Err(hub.tampered(&r, ""));
                }
                if let Some(r) = waited {
                    // They came in a bundle earlier: drop them (once what this call wrote is
                    // undone), so that honest changes go on.
                    poisoned = Some(item.doc.to_string());
                    return Err(hub.tampered(&r, WAITED));
                }
                let (tips, vouchers) = hub.settle_tips(item.doc)?;
                let doc = hub.doc(item.doc)?;
                let waiting = !doc.missing_deps().is_empty();
                let touched = doc.touched_since(&before);
                // A document of which nothing is stored yet is stored as one compressed save,
                // not as its changes one by one; one that holds nothing yet (a peer offered
                // its heads) is registered without a chunk, and is not read back to learn so.
                let chunk = if !doc.nothing_saved() {
                    doc.save_incremental()
                } else if doc.heads().is_empty() && doc.missing_deps().is_empty() {
                    Vec::new()
                } else {
                    doc.save()
                };
                let heads = doc.heads_text();
                let state = item.sync_state.map(|(peer, enc)| (peer.to_string(), enc(doc)));
                // Rows read ahead are all there is to index unless changes that waited here
                // applied since.
                let rows = match ahead.filter(|_| !had_waiting) {
                    Some(a) => a.rows?,
                    None => rows_of(doc, item.doc, &touched)?,
                };
                let olds: Vec<Option<String>> = rows
                    .iter()
                    .map(|(r, _)| hub.store.record(&r.id).map(|o| o.map(|x| x.2)))
                    .collect::<Result<_, _>>()?;
                let keep = item.keep.filter(|_| waiting).map(|k| (aidmesh_mesh::bundle::digest(k), k.to_vec()));
                if let Some(task) = task {
                    hub.emit(Event::Progress { task, done, total });
                }
                // A sync message that brought nothing and left the peer's state as stored (an
                // acknowledgement) writes nothing; the stored state is read only then.
                let nothing = !new
                    && chunk.is_empty()
                    && rows.is_empty()
                    && keep.is_none()
                    && !had_waiting
                    && tips.is_empty()
                    && vouchers.is_empty();
                if nothing
                    && match &state {
                        Some((peer, bytes)) => hub.store.sync_state(peer, item.doc)?.as_ref() == Some(bytes),
                        None => true,
                    }
                {
                    continue;
                }
                let p = Prepared {
                    doc: item.doc.to_string(),
                    partition: item.partition.to_string(),
                    created_at: filed_at,
                    new,
                    index_chunk,
                    chunk,
                    heads,
                    rows,
                    olds,
                    state,
                    ids: touched.into_iter().map(|i| i.to_string()).collect(),
                    waiting,
                    keep,
                    had_waiting,
                    tips,
                    vouchers,
                };
                if resendable && !batch {
                    hub.store.write_resendable(|tx| persist(tx, &p))?;
                } else {
                    hub.store.write(|tx| persist(tx, &p))?;
                }
                if batch {
                    // Each document of a batch comes once: it need not stay in memory.
                    hub.docs.remove(&p.doc);
                }
                written.push((p.doc, p.ids));
            }
            Ok(written)
        };
        // Nothing of a batch stays open past a refusal or a panic: every later write would be
        // part of it. A panic (Automerge's, on a document a member made by hand) refuses what
        // came like any refusal, so that nothing applied but unchecked stays in memory.
        let taken = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if batch {
                self.in_one_transaction(each)
            } else {
                each(self)
            }
        }));
        let result = taken.unwrap_or_else(|_| {
            Err(Error::Malformed { format: "document", why: "taking it in made the hub panic".into() })
        });
        if let Some(doc) = poisoned {
            if let Err(e) = self.drop_waiting(&doc) {
                tracing::error!(doc, error = %e, "cannot drop the waiting changes of a refused rewrite");
            }
        }
        if result.is_err() {
            // What passed the door with a refused message waits no more.
            for d in &touched_docs {
                self.waiting_changes.remove(d);
            }
        }
        let mut settle_docs = touched_docs;
        settle_docs.push(aidmesh_replica::INDEX_DOC.to_string());
        let per_doc = self.settle(result, &settle_docs)?;
        let mut ids = Vec::new();
        for (doc, changed) in per_doc {
            if !changed.is_empty() {
                self.changed_docs.insert(doc);
                ids.extend(changed);
            }
        }
        if !ids.is_empty() {
            self.emit(Event::RecordsChanged { ids: ids.clone() });
            // A volunteer who withdrew consent at another hub: their contact stays here only.
            if let Err(e) = self.keep_withdrawn_here(&ids) {
                tracing::error!(error = %e, "cannot keep a withdrawn contact here only");
            }
        }
        Ok(ids)
    }

    /// The refusal of a rewrite: the record, what was done, and the member hub and the person
    /// that signed the change (the keys its actor carries, whose signatures the door checked),
    /// then `more`.
    fn tampered(&self, r: &aidmesh_replica::Rewrite, more: &str) -> Error {
        let hub = aidmesh_mesh::changes::hub_id(&r.actor);
        let name = hub.as_ref().and_then(|h| self.members().ok()?.members.get(h).map(|m| m.name.clone()));
        let mut by = match (hub, name) {
            (Some(h), Some(n)) if !n.is_empty() => format!("hub {n} ({h})"),
            (Some(h), _) => format!("hub {h}"),
            (None, _) if r.actor.is_empty() => "a member (its changes could not be rebuilt to say which)".to_string(),
            (None, _) => format!("actor {}", aidmesh_mesh::hex::encode(&r.actor)),
        };
        if let Some(k) = aidmesh_mesh::changes::person_key(&r.actor).map(aidmesh_mesh::authority::Key) {
            let handle = self.resolved().ok().and_then(|st| st.person_of(&k).map(|p| p.handle.clone()));
            by += &match handle {
                Some(h) => format!(" and person {h} ({})", k.short()),
                None => format!(" and person {}", k.short()),
            };
        }
        Error::Tampered(format!("record {} {}, in a change signed by {by}{more}", r.record, r.what))
    }

    /// Records a refused rewrite, or changes no member signed, among the entries refused at the
    /// door, with where they came from, for people to see (People: "Needs a coordinator's
    /// attention").
    pub(crate) fn note_refused(&mut self, source: &str, e: &Error) {
        if let Error::Tampered(what) | Error::Unsigned(what) = e {
            let at = self.clock.now().millis();
            if let Err(err) = self.store.write(|tx| tx.add_authority_refused(at, source, what, &[])) {
                tracing::error!(error = %err, "cannot record a refused change");
            }
        }
    }

    /// The documents this hub hands to others (its peers, bundles, welcomes), as the store
    /// lists them: `(doc, partition, created_at, records)`. Not the index document, nor one a
    /// store of an earlier release filed where no hub files it (a member's, before hubs
    /// checked): every peer refuses a listing, a bundle or a welcome holding one. Its records
    /// stay readable here.
    pub(crate) fn shared_docs(&self) -> Result<Vec<(String, String, i64, i64)>> {
        let mut docs = self.store.docs()?;
        docs.retain(|(doc, partition, ..)| {
            let filed = aidmesh_replica::valid_filing(doc, partition);
            if !filed && doc != aidmesh_replica::INDEX_DOC {
                tracing::warn!(doc, partition, "a document filed where no hub files it is not handed on");
            }
            filed
        });
        Ok(docs)
    }

    /// Every document this hub holds, as saved.
    pub(crate) fn export_docs(&mut self) -> Result<Vec<DocExport>> {
        let mut out = Vec::new();
        for (doc, partition, created_at, _) in self.shared_docs()? {
            out.push(self.doc_export(doc, partition, created_at)?);
        }
        Ok(out)
    }

    fn doc_export(&mut self, doc: String, partition: String, created_at: i64) -> Result<DocExport> {
        let mut bytes = self.held_bytes(&doc)?;
        let (sigs, vouchers) = self.doc_sigs(&doc)?;
        bytes.extend(vouchers);
        Ok(DocExport { doc, partition, created_at: Timestamp::from_millis(created_at), bytes, sigs })
    }

    /// A document as saved, less the changes that wait for what they depend on (another hub
    /// could neither apply them nor have them vouched for).
    ///
    /// A document stored in one chunk goes as stored. One stored in several (a save, then the
    /// changes of each write or merge since) goes as one save: the chunks of a few thousand
    /// small commits take three to four times the bytes of a save and load three to four times
    /// slower, since Automerge reads a save's columns whole but applies changes one by one.
    /// (What `drop_waiting` stores in place of a document is then one save too.)
    pub(crate) fn held_bytes(&mut self, doc_id: &str) -> Result<Vec<u8>> {
        let chunks = self.store.chunk_count(doc_id)?;
        let d = self.doc(doc_id)?;
        // (A document registered with no chunk, of which a peer only offered its heads, goes
        // as the save of an empty document: no reader takes empty bytes for a document.)
        if chunks != 1 || !d.missing_deps().is_empty() {
            return Ok(d.save_held());
        }
        Ok(self.store.doc_bytes(doc_id)?.unwrap_or_default())
    }

    /// The coalition's documents (hubs, places, roles, policy, the signed membership log), as
    /// saved: what a new member is handed when it joins.
    pub(crate) fn coalition_docs(&mut self) -> Result<Vec<DocExport>> {
        let mut out = Vec::new();
        for (doc, partition, created_at, _) in self.shared_docs()? {
            if partition == "coalition" {
                out.push(self.doc_export(doc, partition, created_at)?);
            }
        }
        Ok(out)
    }

    /// Rebuilds the query index from the documents: the index is a cache of the CRDT. One
    /// transaction, all of it or nothing, written a document at a time, so that memory holds one
    /// document's rows, not the coalition's. A document that does not load is repaired first,
    /// from the index as it was ([`Hub::repair`]), and the rebuild runs again.
    pub fn rebuild_index(&mut self) -> Result<usize> {
        match self.rebuild_index_once() {
            (Err(_), true) => {
                let repaired = self.repair()?;
                tracing::warn!(?repaired, "repaired documents before rebuilding the index");
                self.rebuild_index_once().0
            }
            (rebuilt, _) => rebuilt,
        }
    }

    /// One try of [`Hub::rebuild_index`], which repairs nothing, and whether a document did not
    /// load (which undid it).
    fn rebuild_index_once(&mut self) -> (Result<usize>, bool) {
        let docs: Vec<String> = match self.store.docs() {
            Ok(docs) => docs.into_iter().map(|d| d.0).filter(|d| d != aidmesh_replica::INDEX_DOC).collect(),
            Err(e) => return (Err(e.into()), false),
        };
        let mut damaged = false;
        let rebuilt = self.in_one_transaction(|hub| {
            hub.store.write(|tx| tx.clear_index())?;
            let mut n = 0;
            for d in &docs {
                // Never repaired here: a repair reads the index, which this transaction emptied.
                let doc = hub.doc_repaired(d, false).inspect_err(|_| damaged = true)?;
                let rows = rows_of(doc, d, &doc.ids().into_iter().collect())?;
                n += rows.len();
                hub.store.write(|tx| reindex(tx, rows.iter().map(|(row, rec)| (row, rec, None))))?;
            }
            Ok(n)
        });
        (rebuilt, damaged)
    }

    /// Runs `f` with every store write it makes in one transaction: all of them are kept, or,
    /// after a refusal or a panic, none.
    fn in_one_transaction<T>(&mut self, f: impl FnOnce(&mut Hub) -> Result<T>) -> Result<T> {
        // Beginning commits what peers sent first, which may fail (a full disk) and lose it.
        let begun = self.store.begin();
        self.forget_lost_group();
        begun?;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self))) {
            Ok(Ok(v)) => Ok(self.store.commit().map(|()| v)?),
            Ok(Err(e)) => {
                if let Err(undo) = self.store.rollback() {
                    tracing::error!(error = %undo, "cannot undo a refused transaction");
                }
                Err(e)
            }
            Err(panic) => {
                let _ = self.store.rollback();
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// Stores personal data (real name, phone, address, health notes) in the vault and returns
    /// the vault id that records may refer to. It travels to member hubs; a contact that must
    /// stay here is stored with [`Hub::set_contact`].
    pub fn vault_put(&mut self, data: &Map<String, Value>) -> Result<String> {
        self.put_vault_entry(None, data, false)
    }

    /// Stores a vault entry this hub holds the consent for: a new one, or version `v` of `id`.
    /// A `here_only` entry never leaves this hub.
    pub(crate) fn put_vault_entry(
        &mut self,
        replace: Option<(&str, u64)>,
        data: &Map<String, Value>,
        here_only: bool,
    ) -> Result<String> {
        if data.values().all(|v| v.as_str().is_some_and(|s| s.trim().is_empty()) || v.is_null()) {
            return Err(Error::invalid("vault entry", vec![FieldError::new("", "nothing to store")]));
        }
        let now = self.clock.now();
        let (id, version) = match replace {
            Some((id, v)) => (id.to_string(), v),
            None => (format!("v{}", RecordId::generate(now, self.random())), 1),
        };
        let key: [u8; 32] = self.random();
        let nonce: [u8; 12] = self.random();
        let pt = serde_json::to_vec(data).map_err(|e| Error::Corrupt(e.to_string()))?;
        let origin = self.hub_id.clone();
        // This hub holds the person's consent: it signs each version of their entry.
        let sig = self.sign_vault(&id, version, Some(&pt));
        self.store.write(|tx| tx.vault_put(&id, &key, &nonce, &pt, now.millis(), &origin, version, &sig, here_only))?;
        self.note_vault_change(&id)?;
        if replace.is_some() {
            // The version replaced (a number or a health detail removed) lingers in the log's
            // frames until folded: folded now, as after an erasure.
            self.store.checkpoint()?;
        }
        Ok(id)
    }

    /// Erases a vault entry: its key and content are destroyed here; a tombstone stays. The hub that
    /// holds the person's consent erases with its own signature; elsewhere, an admin's `Erase`
    /// entry in the authority log erases it on every hub.
    pub fn vault_erase(&mut self, id: &str) -> Result<Erased> {
        let now = self.clock.now().millis();
        let Some(entry) = self.store.vault_list()?.into_iter().find(|e| e.id == id) else {
            // Not held here, but a record names it (kept at the hub that took it): an admin's
            // `Erase` entry reaches it there. Only a vault id goes into the log, which keeps
            // every entry for good (a record may name a phone number typed by an older hub).
            if aidmesh_model::is_vault_id(id)
                && self.acting.is_some()
                && self.acting_is_admin()?
                && self.owner_of(id)?.is_some()
            {
                self.sign_authority(aidmesh_mesh::authority::Body::Erase { vault: id.to_string() })?;
                return Ok(Erased::Elsewhere);
            }
            return Err(Error::NotFound(id.into()));
        };
        let (version, sig) = if entry.origin == self.hub_id {
            (entry.version + 1, self.sign_vault(id, entry.version + 1, None))
        } else {
            if !self.acting_is_admin()? {
                return Err(Error::NotAllowed(format!(
                    "this entry's consent is held at hub {}: it erases it, or an admin does",
                    entry.origin
                )));
            }
            self.sign_authority(aidmesh_mesh::authority::Body::Erase { vault: id.to_string() })?;
            (entry.version, String::new())
        };
        if !self.store.write(|tx| tx.vault_erase(id, now, version, &sig))? {
            return Err(Error::NotFound(id.into()));
        }
        // Passed on first; then the log is folded into the file so that no freed page with
        // the old content lingers in it.
        self.note_vault_change(id)?;
        self.store.checkpoint()?;
        Ok(Erased::Here)
    }

    // --- helpers ---------------------------------------------------------------------------

    /// Queues a vault entry for member hubs, unless it stays here.
    pub(crate) fn note_vault_change(&mut self, id: &str) -> Result<()> {
        self.emit(Event::VaultChanged { ids: vec![id.to_string()] });
        if let Some(e) = self.store.vault_list()?.into_iter().find(|e| e.id == id && !e.local) {
            let item = self.vault_item(&e)?;
            self.vault_changes.push(item);
        }
        Ok(())
    }

    pub(crate) fn author(&self, at: Timestamp) -> Author {
        Author { hub: self.hub_id.clone(), handle: self.handle.clone(), at }
    }

    /// All checks a new record must pass: its own rules, its references, and rules that need
    /// other records. `pending` holds records written in the same batch.
    fn check_new(&self, rec: &Record, pending: &BTreeMap<RecordId, &Record>) -> Result<()> {
        // Report the record's own faults and its dangling references together.
        let mut errs = rec.body.validate().err().unwrap_or_default();
        // A new record names no contact: the contact form sets it once the record exists. Not a
        // contact typed in (it would stay in the record's history for good), nor an entry
        // stored apart or another record's (which it would read under its own name).
        if let Some(c) = crate::contacts::contact_of(&rec.body).and_then(|(v, _)| v) {
            let why = match aidmesh_model::is_vault_id(c) {
                true => "a new record names no contact: set it with the contact form once the record exists".to_string(),
                false => format!("{c:?} is no vault id: a contact is kept in the vault, set with the contact form once the record exists, never typed into the record"),
            };
            errs.push(FieldError::new("contact", why));
        }
        if let Body::Volunteer(v) = &rec.body {
            if !v.access_needs.trim().is_empty() {
                errs.push(FieldError::new("access_needs", ACCESS_NEEDS_IN_THE_VAULT));
            }
        }
        match self.check_refs(rec, pending) {
            Err(Error::Invalid { errors, .. }) => errs.extend(errors),
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        if !errs.is_empty() {
            return Err(Error::invalid(rec.kind().name(), errs));
        }
        match &rec.body {
            Body::Amendment(a) => {
                let target = match self.store.record(a.target.as_str())? {
                    Some((_, _, json)) => parse_record(&json)?,
                    None if pending.contains_key(&a.target) => pending[&a.target].clone(),
                    None => {
                        return Err(Error::invalid(
                            "amendment",
                            vec![FieldError::new("target", format!("no record with id {}", a.target))],
                        ))
                    }
                };
                // Signed entries (approvals, role grants, membership) are superseded by new
                // entries, never amended: an amendment would not carry their signature.
                let signed = matches!(target.kind(), Kind::Approval | Kind::RoleGrant | Kind::MemberEntry);
                if !target.kind().append_only() || target.kind() == Kind::Amendment || signed {
                    return Err(Error::invalid(
                        "amendment",
                        vec![FieldError::new(
                            "target",
                            format!(
                                "{} records are not amended: edit them directly, or add a new entry for signed kinds",
                                target.kind()
                            ),
                        )],
                    ));
                }
                check_amendment(&target, &a.field, &a.value).map_err(|e| Error::invalid("amendment", vec![e]))?;
            }
            Body::Movement(m) if pending.is_empty() => self.check_stock_available(m)?,
            _ => {}
        }
        Ok(())
    }

    fn check_refs(&self, rec: &Record, pending: &BTreeMap<RecordId, &Record>) -> Result<()> {
        let mut errs = Vec::new();
        for r in rec.body.references() {
            let found = match pending.get(r.id) {
                Some(p) => Some(p.kind()),
                None => self.store.kind_of(r.id.as_str())?.and_then(|k| Kind::parse(&k).ok()),
            };
            match found {
                None => errs.push(FieldError::new(r.field, format!("no {} with id {}", r.kind, r.id))),
                Some(k) if k != r.kind => {
                    errs.push(FieldError::new(r.field, format!("{} is a {k}, not a {}", r.id, r.kind)))
                }
                Some(_) => {}
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid(rec.kind().name(), errs))
        }
    }

    /// A hub refuses to issue, move or discard more than it records at a place: a wrong count is
    /// fixed by an adjustment first. (Merges may still take a level below zero; that shows.)
    fn check_stock_available(&self, m: &Movement) -> Result<()> {
        if !matches!(m.kind, MovementKind::Issue | MovementKind::Transfer | MovementKind::Discard) {
            return Ok(());
        }
        let have: i64 = self
            .store
            .stock(Some(m.item.as_str()))?
            .into_iter()
            .filter(|(_, p, _)| p == m.place.as_str())
            .map(|(_, _, q)| q)
            .sum();
        if m.quantity > have {
            return Err(Error::invalid(
                "movement",
                vec![FieldError::new(
                    "quantity",
                    format!("only {have} in stock at that place, cannot take {}; if the count is wrong, record an adjustment first", m.quantity),
                )],
            ));
        }
        Ok(())
    }

    /// Writes new records to their partition documents in bounded commits and one store
    /// transaction.
    fn write_records(&mut self, recs: &[Record], now: Timestamp) -> Result<()> {
        let author = self.author(now);
        let mut touched_docs: Vec<String> = Vec::new();
        let result = (|| -> Result<()> {
            // Group by partition, then fill shards.
            let mut by_partition: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
            for r in recs {
                by_partition.entry(partition_for(r.kind(), r.meta.created_at)).or_default().push(r);
            }
            let mut chunks: Vec<(String, Vec<u8>, String)> = Vec::new();
            let mut tips = Vec::new();
            let mut new_docs: Vec<DocEntry> = Vec::new();
            let mut rows = Vec::new();
            for (partition, list) in by_partition {
                let family = list[0].kind().family();
                let mut counts: Vec<(DocEntry, usize)> = self
                    .store
                    .partition_docs(&partition)?
                    .into_iter()
                    // Never a document an older store filed where no hub files it: it is not
                    // offered to peers, so what went into it would stay here.
                    .filter(|(doc, _, _)| aidmesh_replica::valid_filing(doc, &partition))
                    .map(|(doc, at, n)| {
                        (
                            DocEntry { doc, partition: partition.clone(), created_at: Timestamp::from_millis(at) },
                            n as usize,
                        )
                    })
                    .collect();
                let mut rest = &list[..];
                while !rest.is_empty() {
                    let target = choose_shard(counts.iter().map(|(e, n)| (e, *n)), family).cloned();
                    let entry = match target {
                        Some(e) => e,
                        None => {
                            let doc =
                                format!("{}-{}", partition.replace('/', "-"), RecordId::generate(now, self.random()));
                            let e = DocEntry { doc: doc.clone(), partition: partition.clone(), created_at: now };
                            self.index.add(&e, &author)?;
                            let actor = self.actor.clone();
                            self.cache(Doc::new(&doc, &actor));
                            new_docs.push(e.clone());
                            counts.push((e.clone(), 0));
                            e
                        }
                    };
                    let slot = counts.iter_mut().find(|(e, _)| e.doc == entry.doc).map(|(_, n)| n);
                    let room = match family {
                        aidmesh_model::Family::Coalition => rest.len(),
                        _ => aidmesh_replica::SHARD_TARGET.saturating_sub(slot.as_deref().copied().unwrap_or(0)).max(1),
                    };
                    let (now_batch, later) = rest.split_at(room.min(rest.len()));
                    rest = later;
                    if let Some(n) = slot {
                        *n += now_batch.len();
                    }
                    touched_docs.push(entry.doc.clone());
                    let doc = self.doc(&entry.doc)?;
                    let mut last = None;
                    for batch in now_batch.chunks(BATCH) {
                        for r in batch {
                            doc.create(r)?;
                        }
                        last = doc.commit(&author).or(last);
                    }
                    let commit = crate::signing::committed(doc, last);
                    chunks.push((entry.doc.clone(), doc.save_incremental(), doc.heads_text()));
                    for r in now_batch {
                        rows.push(((*r).clone(), index_row(r, &entry.doc, doc)?));
                    }
                    tips.extend(self.own_tip(&entry.doc, commit).map(|t| (entry.doc.clone(), t)));
                }
            }
            let index_chunk = if new_docs.is_empty() { Vec::new() } else { self.index.doc().save_incremental() };
            self.store.write(|tx| {
                for e in &new_docs {
                    tx.add_doc(&e.doc, &e.partition, e.created_at.millis())?;
                }
                tx.append_chunk(aidmesh_replica::INDEX_DOC, &index_chunk)?;
                for (doc, bytes, heads) in &chunks {
                    tx.append_chunk(doc, bytes)?;
                    tx.set_heads(doc, heads)?;
                }
                for (doc, tip) in &tips {
                    crate::signing::keep_tip(tx, doc, tip)?;
                }
                reindex(tx, rows.iter().map(|(rec, row)| (row, rec, None)))
            })?;
            Ok(())
        })();
        touched_docs.push(aidmesh_replica::INDEX_DOC.to_string());
        self.settle(result, &touched_docs)?;
        self.changed_docs.extend(touched_docs.iter().filter(|d| *d != aidmesh_replica::INDEX_DOC).cloned());
        self.compact(&touched_docs)?;
        self.emit(Event::RecordsChanged { ids: recs.iter().map(|r| r.id().to_string()).collect() });
        Ok(())
    }

    /// After a failed write, forgets the in-memory state of the documents it touched, so that
    /// they are reloaded from what the disk holds.
    fn settle<T>(&mut self, result: Result<T>, docs: &[String]) -> Result<T> {
        if result.is_err() {
            // A write that failed may have found the group of peers' writes lost (a full disk,
            // its commit of them failed): nothing of it may stay in memory.
            self.forget_lost_group();
            for d in docs {
                if d == aidmesh_replica::INDEX_DOC {
                    if let Ok(Some(bytes)) = self.store.doc_bytes(d) {
                        if let Ok(doc) = Doc::load(d, &bytes, &self.actor) {
                            self.index = aidmesh_replica::Index::from_doc(doc);
                        }
                    }
                } else {
                    self.docs.remove(d);
                }
            }
        }
        result
    }

    /// If the store lost a group of what peers sent (a full disk, a failed commit: see
    /// `Store::take_lost`): every document held in memory, and the index document, are read
    /// again from the store, so that nothing here claims changes the store no longer holds, and
    /// the next write to a document follows what is stored. Peers send the lost changes again
    /// when they next connect.
    fn forget_lost_group(&mut self) {
        if !self.store.take_lost() {
            return;
        }
        tracing::warn!("the store lost what peers sent last: reading every document from it again");
        self.docs.clear();
        self.waiting_changes.clear();
        if let Ok(Some(bytes)) = self.store.doc_bytes(aidmesh_replica::INDEX_DOC) {
            if let Ok(doc) = Doc::load(aidmesh_replica::INDEX_DOC, &bytes, &self.actor) {
                self.index = aidmesh_replica::Index::from_doc(doc);
            }
        }
    }

    /// [`Store::write_resendable`](aidmesh_store::Store::write_resendable), then forgets what
    /// this hub holds in memory of a group the store lost on the way.
    pub(crate) fn write_resendable<T>(
        &mut self,
        f: impl FnOnce(&mut aidmesh_store::Tx<'_>) -> aidmesh_store::Result<T>,
    ) -> Result<T> {
        let written = self.store.write_resendable(f);
        self.forget_lost_group();
        Ok(written?)
    }

    /// Commits what peers sent that still waits in an open group ([`Store::settle`](
    /// aidmesh_store::Store::settle)), then forgets, as [`Hub::write_resendable`] does, a group the
    /// store lost. A face calls it before its process exits without dropping the hub.
    pub fn settle_peers_writes(&mut self) -> Result<()> {
        let settled = self.store.settle();
        self.forget_lost_group();
        Ok(settled?)
    }

    /// Drops every change of a document that waits here for what it depends on (kept with the
    /// document, in the pending chunks, or as a voucher), once one of them rewrote a record:
    /// honest ones come again from a hub that vouches for them.
    fn drop_waiting(&mut self, doc: &str) -> Result<()> {
        self.docs.remove(doc);
        let held = self.held_bytes(doc)?;
        self.docs.remove(doc);
        self.waiting_changes.remove(doc);
        Ok(self.store.write(|tx| {
            tx.clear_pending(doc)?;
            tx.clear_vouchers(doc)?;
            tx.replace_doc(doc, &held)
        })?)
    }

    /// Folds a document's chunks into one save once they pile up very high.
    fn compact(&mut self, docs: &[String]) -> Result<()> {
        for d in docs {
            if self.store.chunk_count(d)? > PILED_HIGH {
                self.fold(d)?;
            }
        }
        Ok(())
    }

    fn fold(&mut self, d: &str) -> Result<()> {
        let bytes = if d == aidmesh_replica::INDEX_DOC { self.index.doc().save() } else { self.doc(d)?.save() };
        Ok(self.store.write(|tx| tx.replace_doc(d, &bytes))?)
    }

    /// Folds the chunks of up to `limit` documents stored in more than 64 chunks (every write
    /// and every merge appends one) into one save each, the most piled up first; returns how
    /// many it folded. A running hub calls this when idle, so that no write or merge waits for
    /// it. `all` folds every document (one chunk may be changes, not a save), as a benchmark's
    /// reference.
    ///
    /// A document that cannot be folded (it does not load) is passed over with a warning, so
    /// that it never keeps the others waiting, and not tried again while this hub runs.
    pub(crate) fn fold_chunks(&mut self, limit: usize, all: bool) -> Result<usize> {
        // Documents that cannot be folded stay piled up at the top of the list: ask past them.
        let docs = self.store.piled_up(
            if all { 1 } else { PILED_UP + 1 },
            limit.saturating_add(8).saturating_add(self.unfoldable.len()),
        )?;
        let mut folded = 0;
        for d in docs.iter().filter(|d| !self.unfoldable.contains(*d)).cloned().collect::<Vec<_>>() {
            if folded == limit {
                break;
            }
            match self.fold(&d) {
                Ok(()) => folded += 1,
                Err(e) => {
                    tracing::warn!(doc = %d, error = %e, "cannot fold a document's chunks; not trying again in this run");
                    self.unfoldable.insert(d);
                }
            }
        }
        Ok(folded)
    }

    /// One bounded step of the work that writes leave for idle time, if nothing was written
    /// since the last call (a running hub calls this every half second): merging the search
    /// index's segments, folding the store's log into its file, folding one document's chunks,
    /// keeping the authority log's resolved state, or loading that log, the first that has work.
    /// Returns whether it did something. A busy hub gets `false`,
    /// so that no edit waits behind upkeep, but never for longer than [`UPKEEP_AT_LEAST_MS`]:
    /// a hub that never rests still gets a step that often.
    pub(crate) fn upkeep(&mut self) -> Result<bool> {
        // What peers sent is committed within a tick, whatever else goes on.
        self.settle_peers_writes()?;
        let writes = self.store.writes();
        // Nothing was left when it last looked, and nothing was written since: no query at all.
        if self.rested_at == Some(writes) {
            return Ok(false);
        }
        let now = self.clock.now().millis();
        if writes != self.upkept_at && now - self.upkept_when < UPKEEP_AT_LEAST_MS {
            self.upkept_at = writes;
            return Ok(false);
        }
        self.upkept_when = now;
        let did = match self.store.upkeep(UPKEEP_PAGES)? {
            aidmesh_store::Upkeep::IndexMerged => true,
            aidmesh_store::Upkeep::LogFolded => true,
            aidmesh_store::Upkeep::Nothing => {
                self.fold_chunks(1, false)? > 0 || self.keep_resolved()? || self.load_authority_at_rest()?
            }
        };
        self.upkept_at = self.store.writes();
        self.rested_at = (!did).then_some(self.upkept_at);
        Ok(did)
    }

    /// The document `id`, loaded from the store if it is not in memory.
    pub(crate) fn doc(&mut self, id: &str) -> Result<&mut Doc> {
        self.doc_repaired(id, true)
    }

    /// [`Hub::doc`]; `repair`: a document that does not load is repaired (from the records the
    /// index holds of it), else its load error is returned.
    fn doc_repaired(&mut self, id: &str, repair: bool) -> Result<&mut Doc> {
        // Whoever is unlocked now makes the next changes (see `writing_actor`).
        let actor = if self.acting.is_some() { self.writing_actor() } else { self.actor.clone() };
        self.use_counter += 1;
        let tick = self.use_counter;
        if !self.docs.contains_key(id) {
            let bytes = self.store.doc_bytes(id)?;
            self.loads += u64::from(bytes.is_some());
            let doc = match bytes {
                Some(bytes) => match Doc::load(id, &bytes, &self.actor) {
                    Ok(doc) => doc,
                    Err(e) if !repair => return Err(e.into()),
                    // Damaged by two writers under one actor: repair it, then load it.
                    Err(e) => match self.repair_doc(id)? {
                        Some(_) => Doc::load(id, &self.store.doc_bytes(id)?.unwrap_or_default(), &self.actor)?,
                        None => return Err(e.into()),
                    },
                },
                // Registered, but nothing arrived for it yet (a sync that only exchanged heads).
                None if self.store.has_doc(id)? => Doc::new(id, &self.actor),
                None => return Err(Error::NotFound(format!("document {id}"))),
            };
            self.cache(doc);
        }
        let entry = self.docs.get_mut(id).ok_or_else(|| Error::NotFound(format!("document {id}")))?;
        entry.0 = tick;
        entry.1.set_actor(&actor);
        Ok(&mut entry.1)
    }

    fn cache(&mut self, doc: Doc) {
        if self.docs.len() >= DOC_CACHE {
            if let Some(oldest) = self.docs.iter().min_by_key(|(_, (t, _))| *t).map(|(k, _)| k.clone()) {
                self.docs.remove(&oldest);
            }
        }
        self.use_counter += 1;
        self.docs.insert(doc.id().to_string(), (self.use_counter, doc));
    }
}

/// Pages of the search index one step of [`Hub::upkeep`] merges at most (4 KiB each).
const UPKEEP_PAGES: u32 = 256;
/// A hub that never rests still does a step of upkeep this often.
pub const UPKEEP_AT_LEAST_MS: i64 = 10_000;

fn body_rules(rec: &Record) -> Result<()> {
    rec.body.validate().map_err(|errs| Error::invalid(rec.kind().name(), errs))
}

pub(crate) fn parse_record(json: &str) -> Result<Record> {
    let v: Map<String, Value> = serde_json::from_str(json).map_err(|e| Error::Corrupt(format!("index entry: {e}")))?;
    Record::from_json(v).map_err(|e| Error::Corrupt(format!("index entry: {e}")))
}

/// The index rows of records `ids` of `doc`, with the records. A record another hub wrote that
/// this version cannot read stays in the document (it may be newer) but out of the index.
pub(crate) fn rows_of(doc: &Doc, doc_id: &str, ids: &BTreeSet<RecordId>) -> Result<Vec<(IndexRow, Record)>> {
    let mut rows = Vec::new();
    for id in ids {
        match doc.get_counted(id) {
            Ok(Some((rec, conflicts))) => rows.push((counted_row(&rec, doc_id, conflicts)?, rec)),
            Ok(None) => {}
            Err(e) => tracing::warn!(%id, error = %e, "unreadable record not indexed"),
        }
    }
    Ok(rows)
}

fn index_row(rec: &Record, doc_id: &str, doc: &Doc) -> Result<IndexRow> {
    counted_row(rec, doc_id, doc.conflicts(rec.id())?.len())
}

/// The index row of a record with `conflicts` fields in conflict.
fn counted_row(rec: &Record, doc_id: &str, conflicts: usize) -> Result<IndexRow> {
    let conflicts = conflicts as i64;
    let json = serde_json::to_string(&rec.to_json()).map_err(|e| Error::Corrupt(e.to_string()))?;
    Ok(IndexRow {
        id: rec.id().to_string(),
        kind: rec.kind().name().to_string(),
        doc: doc_id.to_string(),
        created_at: rec.meta.created_at.millis(),
        label: rec.body.label(),
        search_text: format!("{} {}", rec.body.search_text(), rec.id()),
        json,
        conflicts,
        refs: record_refs(rec),
    })
}

/// What a record points to, for reverse look-ups (an amendment's target has no fixed kind).
fn record_refs(rec: &Record) -> Vec<(String, String)> {
    let mut refs: Vec<(String, String)> =
        rec.body.references().into_iter().map(|r| (r.field.to_string(), r.id.to_string())).collect();
    if let Body::Amendment(a) = &rec.body {
        refs.push(("target".into(), a.target.to_string()));
    }
    refs
}

/// Indexes records, each with the JSON it was indexed with before (if any), and keeps stock sums
/// equal to the sum of movements: a movement seen again with other values (a hostile or buggy
/// writer) takes back its old deltas. The deltas are summed first and written once an item and
/// place (a document's movements are thousands on a few items).
fn reindex<'r>(
    tx: &mut Tx<'_>,
    records: impl IntoIterator<Item = (&'r IndexRow, &'r Record, Option<&'r str>)>,
) -> aidmesh_store::Result<()> {
    // (A movement's deltas are bounded, so no sum of them comes near `i64`'s limits.)
    let mut deltas: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut add = |m: &Movement, taken_back: bool| {
        for (place, d) in m.deltas() {
            *deltas.entry((m.item.to_string(), place.to_string())).or_default() += if taken_back { -d } else { d };
        }
    };
    let mut rows = Vec::new();
    for (row, rec, old_json) in records {
        if let Some(Body::Movement(old)) = old_json.and_then(|j| parse_record(j).ok()).map(|r| r.body) {
            add(&old, true);
        }
        if let Body::Movement(m) = &rec.body {
            add(m, false);
        }
        rows.push(row);
    }
    tx.index_all(rows)?;
    tx.add_stocks(&deltas)
}
