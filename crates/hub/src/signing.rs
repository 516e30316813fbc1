//! Signed changes at the hub. Every change this hub commits is signed with its key, and by the
//! unlocked person too where they are a person of the coalition (the change is then made under
//! an actor that names them, see [`Hub::writing_actor`]); the signatures of each actor's latest
//! change (its *tip*) are kept beside the document. Every change
//! that arrives, over the LAN, in a bundle, in a welcome, passes the door of
//! `aidmesh_mesh::changes` before it is applied: a change that no member hub's signature vouches
//! for refuses everything that came with it.

use std::collections::{BTreeMap, HashSet};

use aidmesh_mesh::authority::Key;
use aidmesh_mesh::changes::{self, ChangeMeta, ChangeSig, Tip, Vouch, Voucher};
use aidmesh_replica::{ChangeInfo, Doc};

use crate::{Error, Hub, Result};

/// What vouches for the changes of one incoming document: the changes, and the signatures that
/// came with them.
pub(crate) struct Door {
    pub(crate) changes: Vec<ChangeMeta>,
    pub(crate) sigs: Vec<ChangeSig>,
    /// The document, when it came as one whole save (to a hub that holds nothing of it): loaded
    /// here to read its changes, and taken as it is if the door lets it in.
    pub(crate) whole: Option<automerge::AutoCommit>,
    /// What was worked out of `whole` ahead ([`Door::prepared`]).
    pub(crate) ahead: Option<Result<Ahead>>,
    /// The changes `whole` was rebuilt from, until they are checked ahead.
    rebuilt_from: Vec<automerge::Change>,
}

/// What a hub works out of a whole document before it is needed (see `Replica::prepare`), for
/// the hub to use if it takes the document as it came, holding nothing of it before: exactly
/// what it would work out then.
pub(crate) struct Ahead {
    /// Whether a change rewrites a record an earlier one made ([`Doc::rewrite_since`] from nothing).
    pub(crate) rewrite: Option<aidmesh_replica::Rewrite>,
    /// The records' index rows, unless a rewrite refuses the document (an error reading them
    /// counts where the rows are used, as it would have there).
    pub(crate) rows: Result<Vec<(aidmesh_store::IndexRow, aidmesh_model::Record)>>,
}

impl Door {
    /// The door for saved bytes (a bundle's document, a welcome's, a merge).
    pub(crate) fn of_bytes(what: &'static str, bytes: &[u8], sigs: Vec<ChangeSig>) -> Result<Door> {
        let (changes, doc) =
            changes::changes_in_keeping(bytes).map_err(|e| Error::Malformed { format: what, why: e.to_string() })?;
        let (whole, rebuilt_from) = rebuilt(what, doc)?;
        Ok(Door { changes, sigs, whole, ahead: None, rebuilt_from })
    }

    /// [`Door::of_bytes`] for a document the hub holds already: never taken whole, so not
    /// rebuilt whole either (its changes are applied to what the hub holds).
    pub(crate) fn of_held_bytes(what: &'static str, bytes: &[u8], sigs: Vec<ChangeSig>) -> Result<Door> {
        let (changes, _) =
            changes::changes_in_keeping(bytes).map_err(|e| Error::Malformed { format: what, why: e.to_string() })?;
        Ok(Door { changes, sigs, whole: None, ahead: None, rebuilt_from: Vec::new() })
    }

    /// The door for a sync message, with a whole document in it already checked for rewritten
    /// records: all of what taking a document this hub lacks costs that needs nothing of the
    /// hub, done before the hub is needed (see `Replica::prepare`). A message whose summary
    /// names changes the peer last synced with this hub (Automerge sends a whole save then when
    /// more than a third of the document is new to it) is for a document the hub holds some
    /// of: its whole save is not rebuilt and checked ahead for nothing. (A peer that names them
    /// falsely only has the hub do that work when it takes the message.)
    pub(crate) fn prepared(doc_id: &str, msg: &automerge::sync::Message, sigs: &[ChangeSig]) -> Result<Door> {
        let synced_before = msg.have.iter().any(|h| !h.last_sync.is_empty());
        let mut door = Door::of_message(msg, sigs, synced_before)?;
        door.work_ahead(doc_id);
        Ok(door)
    }

    /// [`Door::of_bytes`] for a document the hub holds nothing of, with what taking it whole
    /// costs worked out ahead as [`Door::prepared`] does (a bundle's documents, on a thread of
    /// their own while the hub writes the one before).
    pub(crate) fn of_bytes_prepared(
        doc_id: &str,
        what: &'static str,
        bytes: &[u8],
        sigs: Vec<ChangeSig>,
    ) -> Result<Door> {
        let mut door = Door::of_bytes(what, bytes, sigs)?;
        door.work_ahead(doc_id);
        Ok(door)
    }

    /// Checks a whole document for rewritten records and reads its index rows ([`Ahead`]).
    fn work_ahead(&mut self, doc_id: &str) {
        let Some(whole) = self.whole.take() else { return };
        let mut doc = Doc::arrived(doc_id, whole);
        let changes = std::mem::take(&mut self.rebuilt_from);
        let ahead = doc.rewrite_of_rebuilt(&changes, crate::write::append_only);
        drop(changes);
        let ahead = ahead.map_err(Error::from).map(|rewrite| {
            let rows = match rewrite {
                Some(_) => Ok(Vec::new()),
                None => {
                    let records = doc.touched_since(&[]);
                    crate::write::rows_of(&doc, doc_id, &records)
                }
            };
            Ahead { rewrite, rows }
        });
        self.whole = Some(doc.into_automerge());
        self.ahead = Some(ahead);
    }

    /// The door for a sync message; `held` when the hub holds some of the document already, so
    /// that a whole save in the message is never taken as it came (Automerge sends one whenever
    /// more than a third of a document is new to its peer) and is not rebuilt whole for nothing:
    /// its changes are applied to what the hub holds.
    pub(crate) fn of_message(msg: &automerge::sync::Message, sigs: &[ChangeSig], held: bool) -> Result<Door> {
        let bad = |e: changes::BadBytes| Error::Malformed { format: "sync message", why: e.to_string() };
        let chunks: Vec<&[u8]> = msg.changes.iter().collect();
        if let [only] = chunks[..] {
            let (changes, doc) = changes::changes_in_keeping(only).map_err(bad)?;
            // Taken whole only if it holds every head the message names (what the sync state then
            // records as shared is exactly what applying it would have recorded).
            let whole = doc.filter(|_| !held).and_then(|mut doc| {
                let all = msg.heads.iter().all(|h| doc.get_change_meta_by_hash(h).is_some());
                all.then_some(doc)
            });
            let (whole, rebuilt_from) = rebuilt("sync message", whole)?;
            return Ok(Door { changes, sigs: sigs.to_vec(), whole, ahead: None, rebuilt_from });
        }
        let mut changes = Vec::new();
        for c in chunks {
            changes.extend(changes::changes_in(c).map_err(bad)?);
        }
        Ok(Door { changes, sigs: sigs.to_vec(), whole: None, ahead: None, rebuilt_from: Vec::new() })
    }
}

/// A whole document that arrived, as its changes alone make it ([`aidmesh_replica::rebuilt`]):
/// never as the operations it was saved with.
fn rebuilt(
    what: &'static str,
    whole: Option<automerge::AutoCommit>,
) -> Result<(Option<automerge::AutoCommit>, Vec<automerge::Change>)> {
    match whole.map(|w| aidmesh_replica::rebuilt(what, w)).transpose() {
        Ok(Some((doc, changes))) => Ok((Some(doc), changes)),
        Ok(None) => Ok((None, Vec::new())),
        Err(e) => Err(Error::Malformed { format: what, why: e.to_string() }),
    }
}

/// A change just committed, to sign ([`Hub::own_tip`]).
pub(crate) struct Committed {
    hash: [u8; 32],
    seq: u64,
    actor: Vec<u8>,
}

/// The change just committed to `doc` as `hash`, to sign.
pub(crate) fn committed(doc: &mut Doc, hash: Option<automerge::ChangeHash>) -> Option<Committed> {
    let hash = hash?;
    Some(Committed { hash: hash.0, seq: doc.seq_of(&hash)?, actor: doc.actor().to_vec() })
}

/// The most vouchers kept per document.
const MAX_VOUCHERS: usize = 64;

fn meta(c: ChangeInfo) -> ChangeMeta {
    ChangeMeta { hash: c.hash, actor: c.actor, seq: c.seq, deps: c.deps, bytes: Vec::new() }
}

impl Hub {
    /// The keys of every hub the coalition admitted, revoked ones too: a revoked laptop cannot
    /// connect or sign a bundle any more, but what it made while a member still travels between
    /// members (refusing it would split the coalition between hubs that took it before they
    /// learnt of the revocation and hubs that did not).
    pub(crate) fn hub_keys(&self) -> Result<HashSet<[u8; 32]>> {
        let mut keys: HashSet<[u8; 32]> = [*self.identity.public().as_bytes()].into();
        {
            let st = self.resolved()?;
            keys.extend(st.hubs.keys().chain(st.revoked_hubs.keys()).map(|k| k.0));
        }
        let members = self.members()?;
        keys.extend(members.members.values().map(|m| m.key.0));
        Ok(keys)
    }

    /// The actor this hub writes under now: its own for this run, or, while a person of the
    /// coalition is unlocked here, one that names them too, so that their changes carry their
    /// signature ([`Hub::own_tip`]). Someone unlocked who is not (or no longer) a person of the
    /// coalition writes as the hub: other hubs would refuse a key the coalition never gave.
    pub(crate) fn writing_actor(&self) -> Vec<u8> {
        let run: [u8; 8] = self.actor[self.actor.len() - 8..].try_into().expect("8 bytes of a run");
        let person = self.acting.as_ref().map(|(i, _)| Key::of(i)).filter(|k| {
            self.resolved().map(|st| st.person_of(k).is_some()).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot tell who is a person of the coalition: writing as the hub");
                false
            })
        });
        changes::actor(self.identity.public().as_bytes(), person.as_ref().map(|k| &k.0), &run)
    }

    /// Checks `door` for document `doc_id` as it is held now; a refusal names the change and
    /// the hub it claims, and nothing is remembered of it.
    pub(crate) fn check_door(&mut self, doc_id: &str, door: Door, keys: &HashSet<[u8; 32]>) -> Result<()> {
        if door.changes.is_empty() {
            return Ok(());
        }
        let tips = self.kept_tips(doc_id)?;
        let mut waiting = self.waiting_changes.remove(doc_id).unwrap_or_default();
        // One bound for every document: what waits is only a shortcut, and comes again.
        if self.waiting_changes.values().map(|w| w.len()).sum::<usize>() + waiting.len() > changes::MAX_WAITING {
            self.waiting_changes.clear();
        }
        let result = {
            let doc = self.doc(doc_id)?;
            // A tip counts only if its change is held (a repair may have dropped it).
            let kept: BTreeMap<Vec<u8>, u64> = tips
                .into_iter()
                .filter(|(_, t)| doc.has_change(&automerge::ChangeHash(t.sig.hash)))
                .map(|(a, t)| (a, t.seq))
                .collect();
            let held = |h: &[u8; 32]| doc.has_change(&automerge::ChangeHash(*h));
            let kept_seq = |a: &[u8]| kept.get(a).copied();
            changes::check(doc_id, door.changes, &door.sigs, held, kept_seq, |k| keys.contains(k), &mut waiting)
        };
        if !waiting.is_empty() {
            self.waiting_changes.insert(doc_id.to_string(), waiting);
        }
        result.map_err(|e| Error::Unsigned(e.to_string()))
    }

    /// After changes were applied to `doc_id`: the tips of those that are held now (vouchers
    /// whose change applied at last among them, from whatever path it came), and the vouchers of
    /// the signed ones that still wait, to keep.
    pub(crate) fn settle_tips(&mut self, doc_id: &str) -> Result<(Vec<Tip>, Vec<Voucher>)> {
        let mut waiting = self.waiting_changes.remove(doc_id).unwrap_or_default();
        let kept = self.kept_vouchers(doc_id)?;
        let (tips, mut vouchers) = {
            let doc = self.doc(doc_id)?;
            let mut tips = waiting.settle(|h| doc.has_change(&automerge::ChangeHash(*h)));
            tips.extend(kept.values().filter(|v| doc.has_change(&automerge::ChangeHash(v.sig.hash))).map(|v| Tip {
                actor: v.actor.clone(),
                seq: v.seq,
                sig: v.sig,
            }));
            (tips, waiting.vouchers())
        };
        // A member can make any number of actors: a bounded number of vouchers per document.
        vouchers.truncate(MAX_VOUCHERS.saturating_sub(kept.len()));
        if !waiting.is_empty() {
            self.waiting_changes.insert(doc_id.to_string(), waiting);
        }
        Ok((tips, vouchers))
    }

    /// Runs `f` as the hub alone: what the hub writes on its own (not at a person's request)
    /// is not signed in the name of whoever happens to be unlocked.
    pub(crate) fn as_hub<T>(&mut self, f: impl FnOnce(&mut Hub) -> T) -> T {
        let acting = self.acting.take();
        let out = f(self);
        self.acting = acting;
        out
    }

    /// The tip of a change this hub just committed to `doc_id` ([`committed`]), signed by the
    /// hub, and by the person its actor names (who is unlocked: the actor is theirs only then).
    pub(crate) fn own_tip(&self, doc_id: &str, commit: Option<Committed>) -> Option<Tip> {
        let Committed { hash, seq, actor } = commit?;
        let sig = match changes::person_key(&actor) {
            None => ChangeSig::sign(&self.identity, doc_id, hash),
            Some(p) => match self.acting.as_ref().filter(|(i, _)| i.public().as_bytes() == &p) {
                Some((person, _)) => ChangeSig::sign_by(&self.identity, person, doc_id, hash),
                None => {
                    tracing::error!(doc = doc_id, "a change made as a person who is no longer unlocked: unsigned");
                    return None;
                }
            },
        };
        Some(Tip { actor, seq, sig })
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
    /// hash): the kept tips, vouchers, and for this hub's own changes from before changes were
    /// signed, new signatures (kept too).
    fn vouch_for(&mut self, doc_id: &str, latest: Vec<(Vec<u8>, u64, [u8; 32])>) -> Result<Vec<Vouch>> {
        let kept = self.kept_tips(doc_id)?;
        let mut out = Vec::new();
        let mut new = Vec::new();
        let vouchers = self.kept_vouchers(doc_id)?;
        for (actor, seq, hash) in latest {
            let v =
                changes::vouch_for(doc_id, &actor, seq, hash, kept.get(&actor), vouchers.get(&actor), &self.identity);
            if let Some(Vouch::Tip(_, Some(t))) = &v {
                new.push(t.clone());
            }
            out.extend(v);
        }
        if !new.is_empty() {
            self.store.write(|tx| new.iter().try_for_each(|t| keep_tip(tx, doc_id, t)))?;
        }
        Ok(out)
    }

    /// The vouchers kept for a document, by actor.
    fn kept_vouchers(&self, doc_id: &str) -> Result<BTreeMap<Vec<u8>, Voucher>> {
        let mut out = BTreeMap::new();
        for v in self.store.change_vouchers(doc_id)? {
            if let Some(sig) = ChangeSig::from_bytes(&v.tip.sig) {
                out.insert(v.tip.actor.clone(), Voucher { actor: v.tip.actor, seq: v.tip.seq, sig, change: v.change });
            }
        }
        Ok(out)
    }

    /// The signatures that vouch for every change of a document, and the changes of vouchers
    /// among them, which go after it: for a document handed on whole or in part.
    pub(crate) fn doc_sigs(&mut self, doc_id: &str) -> Result<(Vec<ChangeSig>, Vec<u8>)> {
        let list: Vec<ChangeMeta> = self.doc(doc_id)?.change_list(&[]).into_iter().map(meta).collect();
        let mut sigs = Vec::new();
        let mut extra = Vec::new();
        for v in self.vouch_for(doc_id, changes::actor_tips(&list))? {
            sigs.push(v.sig());
            if let Vouch::Voucher(_, change) = v {
                extra.extend(change);
            }
        }
        Ok((sigs, extra))
    }

    /// The signatures that vouch for the changes of a sync message this hub generated (with the
    /// vouchers that go along, see `aidmesh_mesh::changes::vouch_message`).
    pub(crate) fn vouch_message(&mut self, doc_id: &str, msg: &mut automerge::sync::Message) -> Result<Vec<ChangeSig>> {
        let mut v = HubVouching { hub: self, doc: doc_id, failed: None };
        let result = changes::vouch_message(msg, &mut v);
        if let Some(e) = v.failed {
            return Err(e);
        }
        let (sigs, unvouched) = result.map_err(|e| Error::Malformed { format: "sync message", why: e.to_string() })?;
        if unvouched > 0 {
            tracing::warn!(
                doc = doc_id,
                unvouched,
                "changes of another hub from before changes were signed: peers refuse them"
            );
        }
        Ok(sigs)
    }
}

/// The hub's side of [`changes::vouch_message`] for one document; the first error is kept.
struct HubVouching<'a> {
    hub: &'a mut Hub,
    doc: &'a str,
    failed: Option<Error>,
}

impl HubVouching<'_> {
    fn keep<T: Default>(&mut self, r: Result<T>) -> T {
        r.unwrap_or_else(|e| {
            self.failed.get_or_insert(e);
            T::default()
        })
    }
}

impl changes::Vouching for HubVouching<'_> {
    fn doc_tips(&mut self) -> Vec<(Vec<u8>, u64, [u8; 32])> {
        let list = self.hub.doc(self.doc).map(|d| d.change_list(&[]).into_iter().map(meta).collect::<Vec<_>>());
        changes::actor_tips(&self.keep(list))
    }
    fn doc_changes(&mut self) -> Vec<u8> {
        let bytes = self.hub.doc(self.doc).map(|d| d.save_after(&[]));
        self.keep(bytes)
    }
    fn vouch(&mut self, latest: Vec<(Vec<u8>, u64, [u8; 32])>) -> Vec<Vouch> {
        let r = self.hub.vouch_for(self.doc, latest);
        self.keep(r)
    }
}

/// Keeps a tip in the store (unless a later one of that actor is kept).
pub(crate) fn keep_tip(tx: &mut aidmesh_store::Tx<'_>, doc_id: &str, t: &Tip) -> aidmesh_store::Result<()> {
    tx.set_change_tip(doc_id, &t.actor, t.seq, &t.sig.to_bytes())
}

/// Keeps a voucher in the store (unless a later one of that actor is kept).
pub(crate) fn keep_voucher(tx: &mut aidmesh_store::Tx<'_>, doc_id: &str, v: &Voucher) -> aidmesh_store::Result<()> {
    let tip = aidmesh_store::ChangeTip { actor: v.actor.clone(), seq: v.seq, sig: v.sig.to_bytes().to_vec() };
    tx.set_change_voucher(doc_id, &aidmesh_store::ChangeVoucher { tip, change: v.change.clone() })
}
