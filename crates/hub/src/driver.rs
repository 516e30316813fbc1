//! What drives a hub besides the people using it: the node's mesh, the invite and join flows,
//! and tests that stand in for a network. None of it is the application's API (`Hub`'s own
//! methods, which every face calls for what people do). The node imports [`Driver`]; the
//! faces (the CLI and the desktop shell) never do, which the tidy test checks.
//!
//! The mesh's own traits (`aidmesh_mesh::session::Replica`, `aidmesh_mesh::net::Hub`) are the
//! rest of the driver's side; `sync.rs` implements them.

use std::collections::BTreeMap;

use aidmesh_mesh::authority::Id;
use aidmesh_mesh::changes::ChangeSig;
use aidmesh_mesh::keyring::Keyring;
use aidmesh_mesh::session::{DocInfo, VaultItem};
use aidmesh_mesh::whereabouts::Whereabouts;
use aidmesh_model::Timestamp;

use crate::{AuthorityOffer, DocExport, Hub, Result};

/// A hub as a sync driver sees it. Each method says what it does where it is implemented.
pub trait Driver {
    /// Offers authority entries that arrived from `source` to the log's door
    /// (see `Hub::offer_authority` in `authority.rs`).
    fn offer_authority(&mut self, entries: &[Vec<u8>], source: &str) -> Result<AuthorityOffer>;
    /// The heads of the authority log.
    fn authority_heads(&self) -> Result<Vec<Id>>;
    /// The authority entries a peer with `theirs` heads lacks.
    fn authority_missing_for(&self, theirs: &[Id]) -> Result<Vec<Vec<u8>>>;
    /// Every entry of the authority log, each after those it follows.
    fn authority_entries(&self) -> Result<Vec<Vec<u8>>>;
    /// Authority entries stored since the driver last asked.
    fn take_authority_changes(&mut self) -> Vec<Vec<u8>>;
    /// Replaces the authority log with another coalition's (joining it).
    fn adopt_authority(&mut self, coalition: Option<&str>, entries: &[Vec<u8>]) -> Result<AuthorityOffer>;
    /// The coalition's id (its founding entry), hex, once this hub holds it.
    fn coalition_id(&self) -> Result<Option<String>>;
    /// The coalition secret's chain as far as this hub can follow it.
    fn keyring(&self) -> Result<Keyring>;
    /// The coalition key (hex), if this hub holds one: what a joining hub is handed.
    fn coalition_key_hex(&self) -> Result<Option<String>>;
    /// Takes the coalition key handed over when joining.
    fn set_coalition_key(&mut self, hex: &str) -> Result<()>;
    /// Every vault entry as it travels to member hubs.
    fn vault_snapshot(&self) -> Result<Vec<VaultItem>>;
    /// Merges vault entries that came from `source`; whether anything changed.
    fn vault_merge_items(&mut self, items: Vec<VaultItem>, source: &str) -> Result<bool>;
    /// Says where this hub can be reached over the internet (its home relay and direct
    /// addresses), if that changed; whether it said anything new (`None`: not a member yet).
    fn say_whereabouts(&mut self, relay: Option<String>, direct: &[std::net::SocketAddr]) -> Result<Option<bool>>;
    /// Where a member hub said it can be reached, if it did.
    fn whereabouts_of(&self, hub: &aidmesh_mesh::HubId) -> Result<Option<Whereabouts>>;
    /// The bytes the synced documents take as stored: what a new hub must receive, at least.
    fn saved_bytes(&self) -> Result<i64>;
    /// Documents changed by writes or merges since the last call.
    fn take_changed_docs(&mut self) -> Vec<DocInfo>;
    /// Merges saved changes of one document from elsewhere, with the signatures that vouch for
    /// them; the ids of records that changed.
    fn merge_doc(
        &mut self,
        doc_id: &str,
        partition: &str,
        created_at: Timestamp,
        bytes: &[u8],
        sigs: &[ChangeSig],
    ) -> Result<Vec<String>>;
    /// Every document this hub holds, as saved.
    fn export_docs(&mut self) -> Result<Vec<DocExport>>;
    /// Every document this hub holds, with its partition.
    fn doc_partitions(&self) -> Result<BTreeMap<String, String>>;
    /// The coalition's documents, as saved: what a new member is handed when it joins.
    fn coalition_docs(&mut self) -> Result<Vec<DocExport>>;
    /// Folds the chunks of up to `limit` documents piled past the threshold (`all`: every
    /// document, into one save each); how many were folded.
    fn fold_chunks(&mut self, limit: usize, all: bool) -> Result<usize>;
    /// One bounded step of store upkeep when nothing was written since the last call, and at
    /// least every `UPKEEP_AT_LEAST_MS` on a hub that never rests; whether it did something.
    fn upkeep(&mut self) -> Result<bool>;
    /// A folder of the store's log, to run on a thread of its own; while it folds, the hub's
    /// writes leave the log to it (see [`aidmesh_store::Store::log_folder`]).
    fn log_folder(&mut self) -> Result<aidmesh_store::LogFolder>;
}

impl Driver for Hub {
    fn offer_authority(&mut self, entries: &[Vec<u8>], source: &str) -> Result<AuthorityOffer> {
        Hub::offer_authority(self, entries, source)
    }
    fn authority_heads(&self) -> Result<Vec<Id>> {
        Ok(self.resolved()?.heads())
    }
    fn authority_missing_for(&self, theirs: &[Id]) -> Result<Vec<Vec<u8>>> {
        // A peer that holds every head holds everything: no need to load the log to say so.
        if self.resolved()?.heads().iter().all(|h| theirs.contains(h)) {
            return Ok(Vec::new());
        }
        Ok(self.log()?.missing_for(theirs))
    }
    fn authority_entries(&self) -> Result<Vec<Vec<u8>>> {
        Ok(self.log()?.missing_for(&[]))
    }
    fn take_authority_changes(&mut self) -> Vec<Vec<u8>> {
        Hub::take_authority_changes(self)
    }
    fn adopt_authority(&mut self, coalition: Option<&str>, entries: &[Vec<u8>]) -> Result<AuthorityOffer> {
        Hub::adopt_authority(self, coalition, entries)
    }
    fn coalition_id(&self) -> Result<Option<String>> {
        Ok(self.resolved()?.coalition_id().map(|c| c.hex()))
    }
    fn keyring(&self) -> Result<Keyring> {
        Hub::keyring(self)
    }
    fn coalition_key_hex(&self) -> Result<Option<String>> {
        Hub::coalition_key_hex(self)
    }
    fn set_coalition_key(&mut self, hex: &str) -> Result<()> {
        Hub::set_coalition_key(self, hex)
    }
    fn vault_snapshot(&self) -> Result<Vec<VaultItem>> {
        Hub::vault_snapshot(self)
    }
    fn vault_merge_items(&mut self, items: Vec<VaultItem>, source: &str) -> Result<bool> {
        Hub::vault_merge_items(self, items, source)
    }
    fn say_whereabouts(&mut self, relay: Option<String>, direct: &[std::net::SocketAddr]) -> Result<Option<bool>> {
        Hub::say_whereabouts(self, relay, direct)
    }
    fn whereabouts_of(&self, hub: &aidmesh_mesh::HubId) -> Result<Option<Whereabouts>> {
        Hub::whereabouts_of(self, hub)
    }
    fn saved_bytes(&self) -> Result<i64> {
        Ok(self.store.saved_bytes(aidmesh_replica::INDEX_DOC)?)
    }
    fn take_changed_docs(&mut self) -> Vec<DocInfo> {
        Hub::take_changed_docs(self)
    }
    fn merge_doc(
        &mut self,
        doc_id: &str,
        partition: &str,
        created_at: Timestamp,
        bytes: &[u8],
        sigs: &[ChangeSig],
    ) -> Result<Vec<String>> {
        Hub::merge_doc(self, doc_id, partition, created_at, bytes, sigs)
    }
    fn export_docs(&mut self) -> Result<Vec<DocExport>> {
        Hub::export_docs(self)
    }
    fn doc_partitions(&self) -> Result<BTreeMap<String, String>> {
        Ok(self.store.docs()?.into_iter().map(|(d, p, ..)| (d, p)).collect())
    }
    fn coalition_docs(&mut self) -> Result<Vec<DocExport>> {
        Hub::coalition_docs(self)
    }
    fn fold_chunks(&mut self, limit: usize, all: bool) -> Result<usize> {
        Hub::fold_chunks(self, limit, all)
    }
    fn upkeep(&mut self) -> Result<bool> {
        Hub::upkeep(self)
    }
    fn log_folder(&mut self) -> Result<aidmesh_store::LogFolder> {
        Ok(self.store.log_folder()?)
    }
}
