//! Signed changes at the hub. Every change this hub commits is signed with its key, and the
//! signature of each actor's latest change (its *tip*) is kept beside the document. Every change
//! that arrives, over the LAN, in a bundle, in a welcome, passes the door of
//! `aidmesh_mesh::changes` before it is applied: a change that no member hub's signature vouches
//! for refuses everything that came with it.

use std::collections::{BTreeMap, HashSet};

use aidmesh_mesh::changes::{self, Carried, ChangeMeta, ChangeSig, Tip};
use aidmesh_replica::{ChangeInfo, Doc};

use crate::{Error, Hub, Result};

/// What vouches for the changes of one incoming document: the changes, and the signatures that
/// came with them.
pub(crate) struct Door {
    pub(crate) changes: Vec<ChangeMeta>,
    pub(crate) sigs: Vec<ChangeSig>,
}

impl Door {
    /// The door for saved bytes (a bundle's document, a welcome's, a merge).
    pub(crate) fn of_bytes(what: &'static str, bytes: &[u8], sigs: Vec<ChangeSig>) -> Result<Door> {
        let changes = changes::changes_in(bytes).map_err(|why| Error::Malformed { format: what, why })?;
        Ok(Door { changes, sigs })
    }

    /// The door for a sync message.
    pub(crate) fn of_message(msg: &automerge::sync::Message, sigs: &[ChangeSig]) -> Result<Door> {
        let mut changes = Vec::new();
        for c in msg.changes.iter() {
            changes.extend(changes::changes_in(c).map_err(|why| Error::Malformed { format: "sync message", why })?);
        }
        Ok(Door { changes, sigs: sigs.to_vec() })
    }
}

/// The hash and sequence number of a change just committed to `doc`, to sign ([`Hub::own_tip`]).
pub(crate) fn committed(doc: &mut Doc, hash: Option<automerge::ChangeHash>) -> Option<([u8; 32], u64)> {
    let hash = hash?;
    Some((hash.0, doc.seq_of(&hash)?))
}

fn meta(c: ChangeInfo) -> ChangeMeta {
    ChangeMeta { hash: c.hash, actor: c.actor, seq: c.seq, deps: c.deps }
}

impl Hub {
    /// The keys of every hub the coalition admitted, revoked ones too: a revoked laptop cannot
    /// connect or sign a bundle any more, but what it made while a member still travels between
    /// members (refusing it would split the coalition between hubs that took it before they
    /// learnt of the revocation and hubs that did not).
    pub(crate) fn hub_keys(&self) -> Result<HashSet<[u8; 32]>> {
        let mut keys: HashSet<[u8; 32]> = [*self.identity.public().as_bytes()].into();
        {
            let log = self.log()?;
            let st = log.state();
            keys.extend(st.hubs.keys().chain(st.revoked_hubs.keys()).map(|k| k.0));
        }
        let members = self.members()?;
        keys.extend(
            members
                .members
                .values()
                .filter_map(|m| <[u8; 32]>::try_from(aidmesh_mesh::membership::unhex(&m.key)?).ok()),
        );
        Ok(keys)
    }

    /// Checks `door` for document `doc_id` as it is held now; a refusal names the change and
    /// the hub it claims, and nothing is remembered of it.
    pub(crate) fn check_door(&mut self, doc_id: &str, door: Door, keys: &HashSet<[u8; 32]>) -> Result<()> {
        let mut waiting = self.waiting_changes.remove(doc_id).unwrap_or_default();
        let result = {
            let doc = self.doc(doc_id)?;
            let held = |h: &[u8; 32]| doc.has_change(&automerge::ChangeHash(*h));
            changes::check(doc_id, door.changes, &door.sigs, held, |k| keys.contains(k), &mut waiting)
        };
        if !waiting.is_empty() {
            self.waiting_changes.insert(doc_id.to_string(), waiting);
        }
        result.map_err(|e| Error::Unsigned(e.to_string()))
    }

    /// After changes were applied to `doc_id`: the tips of those that are held now, to keep.
    pub(crate) fn settle_tips(&mut self, doc_id: &str) -> Result<Vec<Tip>> {
        let Some(mut waiting) = self.waiting_changes.remove(doc_id) else { return Ok(Vec::new()) };
        let tips = {
            let doc = self.doc(doc_id)?;
            waiting.settle(|h| doc.has_change(&automerge::ChangeHash(*h)))
        };
        if !waiting.is_empty() {
            self.waiting_changes.insert(doc_id.to_string(), waiting);
        }
        Ok(tips)
    }

    /// The tip of a change this hub just committed to `doc_id` (its hash and sequence number,
    /// from [`committed`]), signed.
    pub(crate) fn own_tip(&self, doc_id: &str, commit: Option<([u8; 32], u64)>) -> Option<Tip> {
        let (hash, seq) = commit?;
        Some(Tip { actor: self.actor.clone(), seq, sig: ChangeSig::sign(&self.identity, doc_id, hash) })
    }

    /// The tips kept for a document, by actor.
    fn kept_tips(&self, doc_id: &str) -> Result<BTreeMap<Vec<u8>, Tip>> {
        let mut out = BTreeMap::new();
        for t in self.store.change_tips(doc_id)? {
            match ChangeSig::from_bytes(&t.sig) {
                Some(sig) => {
                    out.insert(t.actor.clone(), Tip { actor: t.actor, seq: t.seq, sig });
                }
                None => tracing::error!(doc = doc_id, "a kept change signature is damaged"),
            }
        }
        Ok(out)
    }

    /// The signatures that vouch for changes whose actors' latest are `latest` (actor, seq,
    /// hash): the kept tips, and for this hub's own changes from before changes were signed,
    /// new signatures (kept too).
    fn vouch_for(&mut self, doc_id: &str, latest: Vec<(Vec<u8>, u64, [u8; 32])>) -> Result<Vec<ChangeSig>> {
        let kept = self.kept_tips(doc_id)?;
        let mut out = Vec::new();
        let mut new = Vec::new();
        for (actor, seq, hash) in latest {
            match changes::vouch_for(doc_id, &actor, seq, hash, kept.get(&actor), &self.identity) {
                Some((sig, tip)) => {
                    out.push(sig);
                    new.extend(tip);
                }
                None => {
                    tracing::warn!(doc = doc_id, hub = %changes::hub_name(&actor), "changes that no signature vouches for: peers will refuse them")
                }
            }
        }
        if !new.is_empty() {
            self.store.write(|tx| new.iter().try_for_each(|t| keep_tip(tx, doc_id, t)))?;
        }
        Ok(out)
    }

    /// The signatures that vouch for every change of a document: for a whole document sent or
    /// exported.
    pub(crate) fn doc_sigs(&mut self, doc_id: &str) -> Result<Vec<ChangeSig>> {
        let list: Vec<ChangeMeta> = self.doc(doc_id)?.change_list(&[]).into_iter().map(meta).collect();
        self.vouch_for(doc_id, changes::actor_tips(&list))
    }

    /// The signatures that vouch for the changes of a sync message this hub generated.
    pub(crate) fn vouch_message(&mut self, doc_id: &str, msg: &automerge::sync::Message) -> Result<Vec<ChangeSig>> {
        match changes::carried(msg) {
            Ok(Carried::Changes(latest)) => self.vouch_for(doc_id, latest),
            Ok(Carried::Document) => self.doc_sigs(doc_id),
            Err(why) => Err(Error::Malformed { format: "sync message", why }),
        }
    }
}

/// Keeps a tip in the store (unless a later one of that actor is kept).
pub(crate) fn keep_tip(tx: &mut aidmesh_store::Tx<'_>, doc_id: &str, t: &Tip) -> aidmesh_store::Result<()> {
    tx.set_change_tip(doc_id, &t.actor, t.seq, &t.sig.to_bytes())
}
