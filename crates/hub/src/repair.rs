//! Repairing documents that do not load: stores damaged when two processes wrote to one store
//! as one Automerge actor (before a store had one owner), which Automerge refuses to load
//! ("duplicate seq N found for actor …").
//!
//! The index document lists the documents this hub holds and is not synced: it is rebuilt from
//! the store's registry. A record document keeps every change that loads (`Doc::salvage`); the
//! records that lost a change are written again from the query index, which every acknowledged
//! write updated in the same transaction as its change, so nothing acknowledged is lost.

use aidmesh_replica::{Doc, DocEntry, Index, INDEX_DOC};

use crate::write::parse_record;
use crate::{Hub, Result};

/// What a repair did to one document.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DocRepair {
    pub doc: String,
    /// Changes that clashed with another under the same actor and sequence number, or depended
    /// on one that did.
    pub dropped_changes: usize,
    /// Records written again from the query index (for the index document: documents listed).
    pub restored: usize,
}

impl Hub {
    /// Loads every document and repairs those that do not load. Returns what it did; an empty
    /// list means every document was sound.
    pub fn repair(&mut self) -> Result<Vec<DocRepair>> {
        let mut out = Vec::new();
        out.extend(self.repair_index()?);
        for (doc, ..) in self.store.docs()? {
            if doc == INDEX_DOC {
                continue;
            }
            // A document beyond repair stays as it is; the others are still repaired, and the
            // store still opens.
            match self.repair_doc(&doc) {
                Ok(r) => out.extend(r),
                Err(e) => tracing::error!(doc, error = %e, "a document does not load and cannot be repaired"),
            }
        }
        Ok(out)
    }

    pub(crate) fn repair_index(&mut self) -> Result<Option<DocRepair>> {
        let Some(bytes) = self.store.doc_bytes(INDEX_DOC)? else { return Ok(None) };
        if Doc::load(INDEX_DOC, &bytes, &self.actor).is_ok() {
            return Ok(None);
        }
        let dropped = Doc::salvage(INDEX_DOC, &bytes, &self.actor).map(|(_, n)| n).unwrap_or(0);
        let mut index = Index::new(&self.actor);
        let author = self.author(self.clock.now());
        let mut listed = 0;
        for (doc, partition, created_at, _) in self.store.docs()? {
            if doc != INDEX_DOC {
                let entry = DocEntry { doc, partition, created_at: aidmesh_model::Timestamp::from_millis(created_at) };
                index.add(&entry, &author)?;
                listed += 1;
            }
        }
        let saved = index.doc().save();
        self.store.write(|tx| tx.replace_doc(INDEX_DOC, &saved))?;
        self.index = index;
        tracing::warn!(dropped, listed, "the index document did not load: rebuilt from the store's registry");
        Ok(Some(DocRepair { doc: INDEX_DOC.to_string(), dropped_changes: dropped, restored: listed }))
    }

    /// Repairs one record document if it does not load.
    pub(crate) fn repair_doc(&mut self, id: &str) -> Result<Option<DocRepair>> {
        let Some(bytes) = self.store.doc_bytes(id)? else { return Ok(None) };
        if Doc::load(id, &bytes, &self.actor).is_ok() {
            return Ok(None);
        }
        let (mut doc, dropped) = Doc::salvage(id, &bytes, &self.actor)?;
        let mut restored = 0;
        for json in self.store.doc_record_json(id)? {
            let rec = parse_record(&json)?;
            match doc.get(rec.id())? {
                None => doc.create(&rec)?,
                Some(held) if held != rec => {
                    doc.update(&rec)?;
                }
                Some(_) => continue,
            }
            restored += 1;
        }
        let author = self.author(self.clock.now());
        let hash = doc.commit(&author);
        let tip = self.own_tip(id, crate::signing::committed(&mut doc, hash));
        let (saved, heads) = (doc.save(), doc.heads_text());
        self.store.write(|tx| {
            tx.replace_doc(id, &saved)?;
            tx.set_heads(id, &heads)?;
            tip.iter().try_for_each(|t| crate::signing::keep_tip(tx, id, t))
        })?;
        self.docs.remove(id);
        // Peers get the restored records as changes of this run's actor.
        self.changed_docs.insert(id.to_string());
        tracing::warn!(doc = id, dropped, restored, "a document did not load: repaired");
        Ok(Some(DocRepair { doc: id.to_string(), dropped_changes: dropped, restored }))
    }
}
