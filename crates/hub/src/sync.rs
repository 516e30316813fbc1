//! The hub as a sync replica: what a mesh session needs from it.
//!
//! Sessions (in `aidmesh-mesh`) run Automerge's sync protocol per document. The hub answers with
//! its documents, generates messages from them, and applies what arrives through the same
//! ingest path as any merge: one store transaction with the re-indexed records and the peer's
//! sync state. The index document is this hub's own registry and is not synced: each hub lists
//! the documents it learns of.

use aidmesh_mesh::session::{DocInfo, Replica, VaultItem};
use aidmesh_model::Timestamp;
use automerge::sync::{Message, State, SyncDoc};

use crate::Hub;

impl Hub {
    /// Every vault entry as it travels to member hubs: content in hex, or an erasure.
    pub fn vault_snapshot(&self) -> crate::Result<Vec<VaultItem>> {
        let mut out = Vec::new();
        for e in self.store.vault_list()? {
            out.push(self.vault_item(&e)?);
        }
        Ok(out)
    }

    pub(crate) fn vault_item(&self, e: &aidmesh_store::VaultEntry) -> crate::Result<VaultItem> {
        let content = match (e.erased_at, self.store.vault_get(&e.id)?) {
            (None, Some(crate::VaultState::Present(pt))) => Some(pt.iter().map(|b| format!("{b:02x}")).collect()),
            _ => None,
        };
        Ok(VaultItem { id: e.id.clone(), updated_at: e.updated_at, origin: e.origin.clone(), content })
    }

    /// Merges vault entries from a member hub. An erasure always wins and is never undone;
    /// otherwise the later write wins (time, then origin). Returns whether anything changed.
    pub fn vault_merge_items(&mut self, items: Vec<VaultItem>) -> crate::Result<bool> {
        let local: std::collections::BTreeMap<String, aidmesh_store::VaultEntry> =
            self.store.vault_list()?.into_iter().map(|e| (e.id.clone(), e)).collect();
        let mut changed = Vec::new();
        for item in items {
            let here = local.get(&item.id);
            if here.is_some_and(|l| l.erased_at.is_some()) {
                continue;
            }
            match &item.content {
                None => {
                    self.store.write(|tx| tx.vault_tombstone(&item.id, item.updated_at, &item.origin))?;
                    changed.push(item);
                }
                Some(hex) => {
                    let newer = here.is_none_or(|l| (item.updated_at, &item.origin) > (l.updated_at, &l.origin));
                    if !newer {
                        continue;
                    }
                    let pt = aidmesh_mesh::membership::unhex(hex).ok_or_else(|| crate::Error::Malformed {
                        format: "vault entry",
                        why: "content is not hex".into(),
                    })?;
                    let key: [u8; 32] = self.random();
                    let nonce: [u8; 12] = self.random();
                    self.store.write(|tx| tx.vault_put(&item.id, &key, &nonce, &pt, item.updated_at, &item.origin))?;
                    changed.push(item);
                }
            }
        }
        if changed.iter().any(|i| i.content.is_none()) {
            self.store.checkpoint()?;
        }
        let any = !changed.is_empty();
        self.vault_changes.extend(changed);
        Ok(any)
    }

    /// Documents changed by writes or merges since the last call: the sync driver offers them
    /// to every connected peer.
    pub fn take_changed_docs(&mut self) -> Vec<DocInfo> {
        let changed = std::mem::take(&mut self.changed_docs);
        let Ok(docs) = self.store.docs() else { return Vec::new() };
        docs.into_iter()
            .filter(|(d, ..)| changed.contains(d))
            .map(|(doc, partition, created_at, _)| DocInfo { doc, partition, created_at })
            .collect()
    }
}

impl Replica for Hub {
    fn docs(&mut self) -> Vec<DocInfo> {
        match self.store.docs() {
            Ok(docs) => docs
                .into_iter()
                .filter(|(d, ..)| d != aidmesh_replica::INDEX_DOC)
                .map(|(doc, partition, created_at, _)| DocInfo { doc, partition, created_at })
                .collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot list documents for sync");
                Vec::new()
            }
        }
    }

    fn load_state(&mut self, peer: &str, doc: &str) -> Option<Vec<u8>> {
        self.store.sync_state(peer, doc).ok().flatten()
    }

    fn generate(&mut self, doc: &str, state: &mut State) -> Option<Message> {
        if doc == aidmesh_replica::INDEX_DOC {
            return None;
        }
        match self.doc(doc) {
            Ok(d) => d.automerge().sync().generate_sync_message(state),
            // A document the peer announced that we do not hold yet: ask for everything.
            Err(crate::Error::NotFound(_)) => automerge::AutoCommit::new().sync().generate_sync_message(state),
            Err(e) => {
                tracing::error!(doc, error = %e, "cannot load a document for sync");
                None
            }
        }
    }

    fn receive(&mut self, peer: &str, doc: &DocInfo, state: &mut State, msg: Message) -> Result<bool, String> {
        if doc.doc == aidmesh_replica::INDEX_DOC {
            return Err("the index document is not synced".into());
        }
        let cell = std::cell::RefCell::new(std::mem::take(state));
        let encode = |_: &mut aidmesh_replica::Doc| cell.borrow().encode();
        let result =
            self.ingest(&doc.doc, &doc.partition, Timestamp::from_millis(doc.created_at), Some((peer, &encode)), |d| {
                d.automerge()
                    .sync()
                    .receive_sync_message(&mut cell.borrow_mut(), msg)
                    .map_err(|e| crate::Error::Malformed { format: "sync message", why: e.to_string() })
            });
        *state = cell.into_inner();
        result.map(|ids| !ids.is_empty()).map_err(|e| e.to_string())
    }

    fn vault_items(&mut self) -> Vec<VaultItem> {
        match self.vault_snapshot() {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the vault for sync");
                Vec::new()
            }
        }
    }

    fn vault_merge(&mut self, items: Vec<VaultItem>) -> Result<bool, String> {
        self.vault_merge_items(items).map_err(|e| e.to_string())
    }

    fn authority_heads(&mut self) -> Vec<[u8; 32]> {
        match Hub::authority_heads(self) {
            Ok(h) => h.into_iter().map(|h| h.0).collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the authority log for sync");
                Vec::new()
            }
        }
    }

    fn authority_missing(&mut self, theirs: &[[u8; 32]]) -> Vec<Vec<u8>> {
        let theirs: Vec<aidmesh_mesh::authority::Id> = theirs.iter().map(|h| aidmesh_mesh::authority::Id(*h)).collect();
        Hub::authority_missing_for(self, &theirs).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the authority log for sync");
            Vec::new()
        })
    }

    fn authority_offer(&mut self, peer: &str, entries: Vec<Vec<u8>>) -> Result<bool, String> {
        let source = aidmesh_mesh::HubId::parse(peer).map(|h| format!("hub {h}")).unwrap_or_else(|_| peer.to_string());
        self.offer_authority(&entries, &source).map(|o| o.added > 0).map_err(|e| e.to_string())
    }
}

impl aidmesh_mesh::net::Hub for Hub {
    fn take_changed(&mut self) -> Vec<DocInfo> {
        self.take_changed_docs()
    }

    fn take_vault_changes(&mut self) -> Vec<VaultItem> {
        std::mem::take(&mut self.vault_changes)
    }

    fn take_authority_changes(&mut self) -> Vec<Vec<u8>> {
        Hub::take_authority_changes(self)
    }

    fn member_ids(&mut self) -> std::collections::BTreeSet<aidmesh_mesh::HubId> {
        match self.members() {
            Ok(m) => m.members.into_keys().collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot evaluate members: refusing every peer");
                Default::default()
            }
        }
    }
}
