//! The hub as a sync replica: what a mesh session needs from it.
//!
//! Sessions (in `aidmesh-mesh`) run Automerge's sync protocol per document. The hub answers with
//! its documents, generates messages from them, and applies what arrives through the same
//! ingest path as any merge: one store transaction with the re-indexed records and the peer's
//! sync state. The index document is this hub's own registry and is not synced: each hub lists
//! the documents it learns of.

use aidmesh_mesh::changes::ChangeSig;
use aidmesh_mesh::session::{DocId, DocInfo, PeerId, Replica, VaultItem};
use aidmesh_mesh::whereabouts::Whereabouts;
use aidmesh_model::Timestamp;
use automerge::sync::{Message, State, SyncDoc};

use crate::Driver;
use crate::Hub;

impl Hub {
    /// The heads of document `doc` as stored, when it is not in memory (in memory, its own
    /// heads say more: changes may wait there for what they depend on).
    fn stored_heads(&self, doc: &str) -> Option<Vec<automerge::ChangeHash>> {
        if self.docs.contains_key(doc) {
            return None;
        }
        let heads = self.store.heads_of(doc).ok()??;
        // Heads that do not all read back (a damaged row) are not answered from.
        let parsed = crate::bundle::parse_heads(heads.split_whitespace());
        (parsed.len() == heads.split_whitespace().count()).then_some(parsed)
    }

    /// Whether this hub holds any change of `doc` (in memory, or as the store's heads say).
    fn holds_some(&mut self, doc: &str) -> bool {
        match self.docs.get_mut(doc) {
            Some((_, d)) => !d.heads().is_empty(),
            None => self.store.heads_of(doc).ok().flatten().is_some_and(|h| !h.trim().is_empty()),
        }
    }

    /// Whether this hub syncs over the internet where the coalition names relays (or the hub
    /// knows peers' addresses there): on unless switched off here (a coalition, or one hub,
    /// may want LAN and USB only). Kept in the store, so it holds across restarts.
    pub fn internet_on(&self) -> crate::Result<bool> {
        Ok(self.store.meta("internet")?.as_deref() != Some("off"))
    }

    /// Switches sync over the internet on or off at this hub.
    pub fn set_internet(&mut self, on: bool) -> crate::Result<()> {
        self.store.write(|tx| tx.set_meta("internet", if on { "on" } else { "off" }))?;
        Ok(())
    }

    /// The most bytes a day this hub's sync may use over the internet before only urgent
    /// documents go (incidents, their follow-ups and amendments, requests; the authority log and
    /// the vault always go), if set. Kept in the store.
    pub fn internet_budget(&self) -> crate::Result<Option<u64>> {
        Ok(self.store.meta("internet_budget")?.and_then(|b| b.parse().ok()))
    }

    /// Sets (or, with `None`, lifts) the day's budget for sync over the internet; at least one
    /// byte.
    pub fn set_internet_budget(&mut self, bytes: Option<u64>) -> crate::Result<()> {
        if bytes == Some(0) {
            let why = "0 bytes a day: give at least 1 byte, or lift the budget".to_string();
            return Err(crate::Error::Malformed { format: "internet budget", why });
        }
        let value = bytes.map(|b| b.to_string()).unwrap_or_default();
        self.store.write(|tx| tx.set_meta("internet_budget", &value))?;
        Ok(())
    }

    /// What sync over the internet used on `day` (UTC, `YYYY-MM-DD`): the bytes of the sync
    /// stream both ways, before the transport's framing and encryption, as the running hub
    /// last kept it (every few seconds, and at each session's end).
    pub fn internet_used(&self, day: &str) -> crate::Result<u64> {
        Ok(match self.internet_kept()? {
            Some((d, n)) if d == day => n,
            _ => 0,
        })
    }

    /// The day the store counted internet use for last, and its bytes.
    fn internet_kept(&self) -> crate::Result<Option<(String, u64)>> {
        let kept = self.store.meta("internet_used")?;
        Ok(kept.and_then(|v| v.split_once(' ').and_then(|(d, n)| Some((d.to_string(), n.parse().ok()?)))))
    }

    /// Every vault entry as it travels to member hubs: content in hex, or an erasure. Entries
    /// kept here only (no consent to share) are not among them.
    pub(crate) fn vault_snapshot(&self) -> crate::Result<Vec<VaultItem>> {
        let mut out = Vec::new();
        for e in self.store.vault_list()?.into_iter().filter(|e| !e.local) {
            out.push(self.vault_item(&e)?);
        }
        Ok(out)
    }

    pub(crate) fn vault_item(&self, e: &aidmesh_store::VaultEntry) -> crate::Result<VaultItem> {
        let content = match (e.erased_at, self.store.vault_get(&e.id)?) {
            (None, Some(crate::VaultState::Present(pt))) => Some(aidmesh_mesh::hex::encode(&pt)),
            _ => None,
        };
        Ok(VaultItem {
            id: e.id.clone(),
            updated_at: e.updated_at,
            origin: e.origin.clone(),
            content,
            version: e.version,
            sig: e.sig.clone(),
        })
    }

    /// This hub's signature of a version of a vault entry it holds the consent for.
    pub(crate) fn sign_vault(&self, id: &str, version: u64, content: Option<&[u8]>) -> String {
        aidmesh_mesh::hex::encode(self.identity.sign(&VaultItem::signed_bytes(id, version, &self.hub_id, content)))
    }

    /// The public key of a hub of the coalition by its id, and whether it is still a member
    /// (a revoked hub's key still vouches for its erasures, never for content).
    fn hub_key(&self, hub: &str) -> crate::Result<Option<([u8; 32], bool)>> {
        let Ok(id) = aidmesh_mesh::HubId::parse(hub) else { return Ok(None) };
        let st = self.resolved()?;
        if let Some(k) = st.hubs.keys().find(|k| k.fingerprint().as_ref() == Some(&id)) {
            return Ok(Some((k.0, true)));
        }
        if let Some(k) = st.revoked_hubs.keys().find(|k| k.fingerprint().as_ref() == Some(&id)) {
            return Ok(Some((k.0, false)));
        }
        drop(st);
        Ok(self.members()?.members.get(&id).map(|m| (m.key.0, true)))
    }

    /// Merges vault entries that came from `source` (a hub, a bundle). An entry belongs to its
    /// origin hub: a version counts only if that hub signed it and it is newer than the one here;
    /// an erasure only if its origin signed it or an admin's `Erase` entry stands for it. Once
    /// erased, an entry never comes back. Anything else is refused, recorded with `source`, and
    /// changes nothing. Returns whether anything changed.
    pub(crate) fn vault_merge_items(&mut self, items: Vec<VaultItem>, source: &str) -> crate::Result<bool> {
        let local: std::collections::BTreeMap<String, aidmesh_store::VaultEntry> =
            self.store.vault_list()?.into_iter().map(|e| (e.id.clone(), e)).collect();
        let erased_by_admin: std::collections::BTreeSet<String> = self.resolved()?.erased.keys().cloned().collect();
        let mut changed = Vec::new();
        let mut refused = Vec::new();
        let mut replaced = false;
        for item in items {
            let here = local.get(&item.id);
            if here.is_some_and(|l| l.erased_at.is_some()) {
                continue;
            }
            if let Some(l) = here.filter(|l| l.origin != item.origin) {
                refused.push(format!(
                    "vault entry {} claims to belong to {}, but belongs to {}",
                    item.id, item.origin, l.origin
                ));
                continue;
            }
            let content = match &item.content {
                Some(h) => match aidmesh_mesh::hex::decode(h) {
                    Some(pt) => Some(pt),
                    None => {
                        refused.push(format!("vault entry {}: its content is not hex", item.id));
                        continue;
                    }
                },
                None => None,
            };
            // A version no newer than the one here, or of an entry an admin erased, changes
            // nothing: passed over before its signature is checked (a peer may offer many).
            if content.is_some()
                && (erased_by_admin.contains(&item.id) || here.is_some_and(|l| l.version >= item.version))
            {
                continue;
            }
            let origin = self.hub_key(&item.origin)?;
            let signed = origin.is_some_and(|(k, _)| {
                let sig = aidmesh_mesh::hex::decode(&item.sig).and_then(|s| <[u8; 64]>::try_from(s).ok());
                let msg = VaultItem::signed_bytes(&item.id, item.version, &item.origin, content.as_deref());
                sig.is_some_and(|sig| aidmesh_mesh::identity::verify_strict(&k, &msg, &sig))
            });
            match content {
                None => {
                    if !signed && !erased_by_admin.contains(&item.id) {
                        refused.push(format!(
                            "vault entry {}: an erasure signed neither by the hub holding the consent nor by an admin",
                            item.id
                        ));
                        continue;
                    }
                    let (version, sig) = (item.version, item.sig.clone());
                    self.store
                        .write(|tx| tx.vault_tombstone(&item.id, item.updated_at, &item.origin, version, &sig))?;
                    changed.push(item);
                }
                Some(pt) => {
                    if !signed {
                        refused.push(format!("vault entry {}: not signed by the hub holding the consent", item.id));
                        continue;
                    }
                    if origin.is_some_and(|(_, member)| !member) {
                        refused.push(format!("vault entry {}: its hub was revoked; it may only erase it", item.id));
                        continue;
                    }
                    // A version replacing one held here lingers in the log until folded.
                    replaced |= here.is_some();
                    let key: [u8; 32] = self.random();
                    let nonce: [u8; 12] = self.random();
                    let (version, sig) = (item.version, item.sig.clone());
                    self.store.write(|tx| {
                        tx.vault_put(&item.id, &key, &nonce, &pt, item.updated_at, &item.origin, version, &sig, false)
                    })?;
                    changed.push(item);
                }
            }
        }
        // One line for all that one offer brought refused: a frame of many thousand forged
        // entries costs one write and one log line, not one each.
        if let Some(first) = refused.first() {
            let why = match refused.len() {
                1 => first.clone(),
                n => format!("{n} vault entries refused; the first: {first}"),
            };
            let now = self.clock.now().millis();
            self.store.write(|tx| tx.add_authority_refused(now, source, &why, &[]))?;
            tracing::warn!(source, why, "vault entries refused");
        }
        // Passed on first: the fold below may fail after the erasures are stored.
        let fold = replaced || changed.iter().any(|i| i.content.is_none());
        let any = !changed.is_empty();
        if any {
            self.emit(crate::Event::VaultChanged { ids: changed.iter().map(|i| i.id.clone()).collect() });
        }
        self.vault_changes.extend(changed);
        if fold {
            self.store.checkpoint()?;
        }
        Ok(any)
    }

    /// Erases what an admin's `Erase` entries name and this hub still holds: how an authorised
    /// erasure reaches every hub, with the entry, whichever face made it.
    pub(crate) fn apply_erasures(&mut self) -> crate::Result<()> {
        let erased: Vec<String> = self.resolved()?.erased.keys().cloned().collect();
        let now = self.clock.now().millis();
        let mut done = Vec::new();
        for e in self.store.vault_list()?.into_iter().filter(|e| e.erased_at.is_none() && erased.contains(&e.id)) {
            self.store.write(|tx| tx.vault_erase(&e.id, now, e.version, ""))?;
            done.push(e.id);
        }
        if !done.is_empty() {
            for id in &done {
                self.note_vault_change(id)?;
            }
            self.store.checkpoint()?;
        }
        Ok(())
    }

    /// Signs this hub's own vault entries kept before entries were signed: once per store (every
    /// entry written since is signed as it is written).
    pub(crate) fn sign_own_vault(&mut self) -> crate::Result<()> {
        if self.store.meta("vault_signed")?.is_some() {
            return Ok(());
        }
        for e in self.store.vault_list()?.into_iter().filter(|e| e.origin == self.hub_id && e.sig.is_empty()) {
            let content = match self.store.vault_get(&e.id)? {
                Some(crate::VaultState::Present(pt)) => Some(pt),
                _ => None,
            };
            let version = e.version.max(1);
            let sig = self.sign_vault(&e.id, version, content.as_deref());
            self.store.write(|tx| tx.vault_sign(&e.id, version, &sig))?;
        }
        Ok(self.store.write(|tx| tx.set_meta("vault_signed", "1"))?)
    }

    /// Documents changed by writes or merges since the last call: the sync driver offers them
    /// to every connected peer.
    pub(crate) fn take_changed_docs(&mut self) -> Vec<DocInfo> {
        let changed = std::mem::take(&mut self.changed_docs);
        if changed.is_empty() {
            return Vec::new();
        }
        self.sync_docs(Some(&changed))
    }

    /// The documents that sync (all, or `only` these), with the digest of their heads as the
    /// store keeps them. A document whose heads were never recorded (a store older than that) is
    /// loaded once to record them.
    fn sync_docs(&mut self, only: Option<&std::collections::BTreeSet<String>>) -> Vec<DocInfo> {
        let listed = self.shared_docs().and_then(|d| Ok((d, self.store.doc_heads()?)));
        let (docs, mut heads) = match listed {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "cannot list documents for sync");
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(docs.len());
        for (doc, partition, created_at, _) in docs {
            if only.is_some_and(|o| !o.contains(&doc)) {
                continue;
            }
            if !heads.contains_key(&doc) {
                match self.record_heads(&doc) {
                    Ok(h) => {
                        heads.insert(doc.clone(), h);
                    }
                    Err(e) => tracing::warn!(doc, error = %e, "cannot read a document's heads"),
                }
            }
            let digest = heads.get(&doc).map(|h| aidmesh_mesh::session::heads_digest(h.split(' '))).unwrap_or_default();
            // (A time before 1970, which no peer takes, as 1970.)
            out.push(DocInfo { doc: doc.into(), partition, created_at: created_at.max(0), heads: digest });
        }
        out
    }

    fn record_heads(&mut self, doc: &str) -> crate::Result<String> {
        let heads = self.doc(doc)?.heads_text();
        self.store.write(|tx| tx.set_heads(doc, &heads))?;
        Ok(heads)
    }
}

impl Replica for Hub {
    type Error = crate::Error;

    fn docs(&mut self) -> Vec<DocInfo> {
        self.sync_docs(None)
    }

    fn vault_versions(&mut self) -> Vec<(String, u64, bool)> {
        match self.store.vault_list() {
            Ok(v) => v.into_iter().filter(|e| !e.local).map(|e| (e.id, e.version, e.erased_at.is_some())).collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the vault for sync");
                Vec::new()
            }
        }
    }

    fn load_state(&mut self, peer: &PeerId, doc: &DocId) -> Option<Vec<u8>> {
        self.store.sync_state(peer.as_str(), doc).ok().flatten()
    }

    fn generate(&mut self, doc: &DocId, state: &mut State) -> Option<Message> {
        if doc == aidmesh_replica::INDEX_DOC {
            return None;
        }
        // A document not in memory that the peer said it holds all of, with nothing asked, is
        // not loaded to learn that there is nothing to send.
        if self.stored_heads(doc.as_str()).is_some_and(|heads| aidmesh_replica::nothing_to_send(state, &heads)) {
            return None;
        }
        match self.doc(doc) {
            Ok(d) => d.automerge().sync().generate_sync_message(state),
            // A document the peer announced that we do not hold yet: ask for everything.
            Err(crate::Error::NotFound(_)) => automerge::AutoCommit::new().sync().generate_sync_message(state),
            Err(e) => {
                tracing::error!(%doc, error = %e, "cannot load a document for sync");
                None
            }
        }
    }

    fn offer_heads(&mut self, doc: &DocId, state: &mut State) -> Option<Message> {
        // A document not in memory is offered with the heads the store keeps for it.
        if doc == aidmesh_replica::INDEX_DOC {
            return None;
        }
        aidmesh_replica::heads_message(state, &self.stored_heads(doc.as_str())?)
    }

    fn lacks(&mut self, doc: &DocId, heads: &[automerge::ChangeHash]) -> bool {
        // A document not in memory is not loaded to learn that it holds the peer's heads when
        // they are among its own as stored (a peer that holds what this hub holds).
        if heads.is_empty() || self.stored_heads(doc).is_some_and(|held| heads.iter().all(|h| held.contains(h))) {
            return false;
        }
        match self.doc(doc) {
            Ok(d) => heads.iter().any(|h| !d.has_change(h)),
            Err(_) => !heads.is_empty(),
        }
    }

    fn vouch(&mut self, doc: &DocId, msg: &mut Message) -> Vec<ChangeSig> {
        self.vouch_message(doc, msg).unwrap_or_else(|e| {
            tracing::error!(%doc, error = %e, "cannot vouch for the changes of a sync message");
            Vec::new()
        })
    }

    /// The door of a sync message: its changes read, and a whole document loaded, checked for
    /// rewritten records and read into index rows (the most work in taking a document this hub
    /// lacks), before the hub is needed.
    type Prepared = PreparedDoor;
    fn prepare(doc: &DocId, msg: &Message, sigs: &[ChangeSig]) -> Option<Self::Prepared> {
        Some(PreparedDoor { of: message_mark(msg), door: crate::signing::Door::prepared(doc.as_str(), msg, sigs) })
    }
    fn receive(
        &mut self,
        peer: &PeerId,
        doc: &DocInfo,
        state: &mut State,
        msg: Message,
        sigs: &[ChangeSig],
        prepared: Option<Self::Prepared>,
    ) -> crate::Result<bool> {
        if doc.doc == aidmesh_replica::INDEX_DOC {
            return Err(crate::Error::NotAllowed("the index document is not synced".into()));
        }
        // An acknowledgement of everything this hub holds of a document not in memory (a new
        // hub says it took the document it was sent) moves the sync state as receiving it on
        // the document would, without loading the document again.
        // (A message with changes is never one: the store is not asked then.)
        if msg.changes.is_empty()
            && self.stored_heads(&doc.doc).is_some_and(|heads| aidmesh_replica::acknowledges(&msg, &heads))
        {
            aidmesh_replica::acknowledged(state, msg);
            let bytes = state.encode();
            let stored = self.store.sync_state(peer.as_str(), doc.doc.as_str());
            if stored.as_ref().ok().and_then(|s| s.as_ref()) != Some(&bytes) {
                self.write_resendable(|tx| tx.set_sync_state(peer.as_str(), doc.doc.as_str(), &bytes))?;
            }
            return Ok(false);
        }
        let held = self.docs.contains_key(doc.doc.as_str()) || self.store.has_doc(&doc.doc)?;
        let door = match prepared {
            Some(p) if p.of == message_mark(&msg) => p.door,
            other => {
                if other.is_some() {
                    // Never the door of another message: it would check one set of changes and
                    // let another in.
                    tracing::error!(doc = %doc.doc, "a door prepared for another message: made again");
                }
                crate::signing::Door::of_message(&msg, sigs, held && self.holds_some(doc.doc.as_str()))
            }
        };
        // A peer offering a document's heads, or asking after one, that this hub holds nothing
        // of, or sending it no change (an empty save): the sync state moves as on an empty
        // document, and nothing is filed (no signature would say who filed it).
        if !held && door.as_ref().is_ok_and(|d| d.changes.is_empty()) {
            let mut empty = aidmesh_replica::Doc::new(doc.doc.as_str(), &self.actor);
            let mut msg = msg;
            msg.changes = Vec::<Vec<u8>>::new().into();
            empty
                .receive(state, msg)
                .map_err(|e| crate::Error::Malformed { format: "sync message", why: e.to_string() })?;
            return Ok(false);
        }
        let cell = std::cell::RefCell::new(std::mem::take(state));
        let encode = |_: &mut aidmesh_replica::Doc| cell.borrow().encode();
        let at = Timestamp::from_millis(doc.created_at);
        let result = door.and_then(|door| {
            self.ingest(&doc.doc, &doc.partition, at, Some((peer.as_str(), &encode)), door, |d, taken| {
                let mut state = cell.borrow_mut();
                if taken {
                    return Ok(d.receive_taken(&mut state, msg)?);
                }
                d.receive(&mut state, msg).map_err(|e| match e {
                    aidmesh_replica::Error::Panics { .. } => e.into(),
                    e => crate::Error::Malformed { format: "sync message", why: e.to_string() },
                })
            })
        });
        *state = cell.into_inner();
        if let Err(e) = &result {
            self.note_refused(&peer_source(peer), e);
        }
        result.map(|ids| !ids.is_empty())
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

    fn vault_merge(&mut self, peer: &PeerId, items: Vec<VaultItem>) -> crate::Result<bool> {
        self.vault_merge_items(items, &peer_source(peer))
    }

    fn authority_heads(&mut self) -> Vec<[u8; 32]> {
        match Driver::authority_heads(self) {
            Ok(h) => h.into_iter().map(|h| h.0).collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the authority log for sync");
                Vec::new()
            }
        }
    }

    fn authority_missing(&mut self, theirs: &[[u8; 32]]) -> crate::Result<Vec<Vec<u8>>> {
        let theirs: Vec<aidmesh_mesh::authority::Id> = theirs.iter().map(|h| aidmesh_mesh::authority::Id(*h)).collect();
        Driver::authority_missing_for(self, &theirs)
    }

    fn whereabouts(&mut self) -> Vec<Whereabouts> {
        self.whereabouts_table().map(|t| t.entries().cloned().collect()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the whereabouts of member hubs");
            Vec::new()
        })
    }

    fn whereabouts_merge(&mut self, peer: &PeerId, items: Vec<Whereabouts>) -> crate::Result<bool> {
        self.merge_whereabouts(items, &peer_source(peer))
    }

    /// Forged entries end the session, once all of the batch was judged (each is recorded with
    /// this peer): an honest hub never sends one, as every hub judges an entry by its own causal
    /// past alone. (Entries of another coalition do not: a hub of the previous release sent its
    /// first coalition's founding entry after it adopted this coalition's founder.)
    fn authority_offer(&mut self, peer: &PeerId, entries: Vec<Vec<u8>>) -> crate::Result<bool> {
        let offer = self.offer_authority(&entries, &peer_source(peer))?;
        match offer.forged.first() {
            Some(why) => Err(crate::Error::RefusedAuthority { count: offer.forged_count, first: why.clone() }),
            None => Ok(offer.added > 0),
        }
    }
}

impl aidmesh_mesh::net::Hub for Hub {
    fn take_changed(&mut self) -> Vec<DocInfo> {
        self.take_changed_docs()
    }

    fn take_vault_changes(&mut self) -> Vec<VaultItem> {
        std::mem::take(&mut self.vault_changes)
    }

    fn take_whereabouts_changes(&mut self) -> Vec<Whereabouts> {
        std::mem::take(&mut self.whereabouts_changes)
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

    fn keyring(&mut self) -> aidmesh_mesh::keyring::Keyring {
        Hub::keyring(self).unwrap_or_else(|e| {
            // A secret no other hub holds: no peer passes, as with no members.
            tracing::error!(error = %e, "cannot read the coalition secret: refusing every peer");
            let mut random = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut random);
            aidmesh_mesh::keyring::Keyring::base(&random)
        })
    }

    fn settle(&mut self) -> Result<(), String> {
        self.settle_peers_writes().map_err(|e| e.to_string())
    }

    fn metered_budget(&mut self) -> Result<Option<u64>, String> {
        self.internet_budget().map_err(|e| e.to_string())
    }

    fn metered_kept(&mut self) -> Result<Option<(String, u64)>, String> {
        self.internet_kept().map_err(|e| e.to_string())
    }

    fn keep_metered(&mut self, day: &str, used: u64) -> Result<(), String> {
        // A count lost to a power cut costs a few seconds' bytes: no need to wait for the disk.
        let kept = self.write_resendable(|tx| tx.set_meta("internet_used", &format!("{day} {used}")));
        kept.map_err(|e| e.to_string())
    }
}

/// A sync message's door worked out ahead ([`Replica::prepare`]), with a mark of the message it
/// was made from.
pub struct PreparedDoor {
    of: (Vec<automerge::ChangeHash>, Vec<usize>),
    door: crate::Result<crate::signing::Door>,
}

/// What tells one sync message from another for [`PreparedDoor`]: its heads and the length of
/// each chunk of changes it carries.
fn message_mark(msg: &Message) -> (Vec<automerge::ChangeHash>, Vec<usize>) {
    (msg.heads.clone(), msg.changes.iter().map(<[u8]>::len).collect())
}

/// A peer as the list of refusals names it.
fn peer_source(peer: &PeerId) -> String {
    peer.hub().map(|h| format!("hub {h}")).unwrap_or_else(|| peer.to_string())
}
