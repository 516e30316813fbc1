//! The authority log as this hub holds it: stored beside Automerge in the store, loaded when
//! first needed, grown only through its door, and signed by the unlocked person.
//!
//! Entries reach the log from four places and pass the same door (`Log::offer`): this hub's
//! people ([`Hub::sign_authority`]), peers over the LAN (`Frame::Authority`), bundles, and an
//! invite's welcome. What the door refuses is never stored; it is recorded with its source (the
//! sending hub, the bundle's exporter) for people to see ([`Authority::refused`]).
//!
//! Opening does not replay the log: the store keeps its resolved state ([`Resolved`]), which
//! upkeep writes once the hub rests after entries came, and reads answer from it
//! ([`Hub::resolved`]) until an entry arrives or is made, which loads the log itself.

use std::cell::Ref;

use aidmesh_mesh::authority::{Body, Change, Id, Key, Log, Offered, Refusal, Resolved, State};
use aidmesh_mesh::membership::Role;
use aidmesh_mesh::Identity;
use aidmesh_model::{FieldError, Timestamp};
use rand::RngCore;
use serde::Serialize;

use crate::{Error, Hub, LocalPerson, Result};

/// A person of the coalition, for people to read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct PersonView {
    pub handle: String,
    /// Their first key, hex: who they are.
    pub key: String,
    pub fingerprint: String,
    pub admin: bool,
    /// Named roles (`treasurer`, ...).
    pub roles: Vec<String>,
    /// When they were added (as the adding admin's clock said) and by whom.
    pub since: Timestamp,
    pub added_by: String,
    /// How many keys sign for them (one per hub they work at).
    pub keys: usize,
}

/// What an entry waiting for admins does once enough of them signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum WaitingChange {
    /// Removes an admin from the coalition.
    Removal,
    /// Makes an admin a plain member.
    Demotion,
    /// Makes a person an admin.
    Promotion,
}

/// A removal, demotion or promotion of an admin waiting for more admins to sign.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct WaitingView {
    /// The entry to endorse, hex.
    pub entry: String,
    pub target: String,
    pub change: WaitingChange,
    pub signed: Vec<String>,
}

/// A version of the purchase policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct PolicyView {
    /// The version's entry id, hex.
    pub id: String,
    pub set_by: String,
    pub at: Timestamp,
    pub currency: String,
    /// Per role, how much one holder may authorise, in words ("treasurer: up to 5000.00 EUR").
    pub limits: Vec<String>,
    pub threshold: String,
    pub approvals_above_threshold: u32,
    /// The version in force now (of several standing side by side, the one with the lowest id).
    pub in_force: bool,
    /// Whether a later version replaced it (expenses recorded under it keep it).
    pub superseded: bool,
}

/// An entry the door refused, and who sent it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct RefusedView {
    pub at: Timestamp,
    /// The hub (or bundle, or welcome) it came from.
    pub source: String,
    pub reason: String,
}

/// While no admin is left: the people who voted to make someone an admin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct VoteView {
    pub target: String,
    pub voters: Vec<String>,
}

/// Who may do what in the coalition, as this hub resolves its authority log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct Authority {
    /// The coalition's name; empty before this hub holds its founding entry.
    pub coalition: String,
    pub people: Vec<PersonView>,
    pub waiting: Vec<WaitingView>,
    /// Votes to make an admin, while no admin is left ([`Hub::vote_admin`]).
    pub votes: Vec<VoteView>,
    /// How many people's votes make an admin: a majority of them.
    pub votes_needed: usize,
    /// Every version of the purchase policy, newest first.
    pub policies: Vec<PolicyView>,
    /// Admins who removed each other while apart: all of them lost the right (people to see).
    pub contested: Vec<String>,
    /// Stored entries that do not count, and why.
    pub not_counted: Vec<String>,
    /// The latest entries refused at the door.
    pub refused: Vec<RefusedView>,
    pub entries: usize,
    /// The person this hub acts as now.
    pub acting: Option<LocalPerson>,
    /// The first key of the coalition's person the acting key signs for: theirs, or another
    /// of their keys (made at another hub and added with [`Hub::add_key`]); none if it signs
    /// for no one.
    pub acting_as: Option<String>,
    /// This hub, a member, was left out of a turnover of the coalition secret (its slot
    /// missing, or holding another secret than the entry commits to): which entry, by whom,
    /// and what to do. It reaches no hub that follows the secret past it.
    pub stranded: Option<String>,
}

/// Where a refused entry that had waited came from, as the refusals list shows it: its sender
/// is not kept while it waits.
pub const LAPSED: &str = "an entry that waited here for entries it follows";

/// At most this many entries stored after the kept state bring it forward at opening; with more,
/// the log is replayed (and upkeep keeps its state again).
const KEPT_EXTENDS: usize = 1_000;

/// What offering entries to the log did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthorityOffer {
    pub added: usize,
    pub waiting: usize,
    /// Why each refused entry was refused.
    pub refused: Vec<String>,
    /// Those of them only a misbehaving hub sends: every refusal but an entry of another
    /// coalition (which a hub of the previous release sent after adopting this one's founder).
    pub forged: Vec<String>,
    /// How many were forged: `forged` and `refused` name the first [`REFUSALS_NAMED`] only.
    pub forged_count: usize,
}

/// The most refusals of one offer that are named (listed, logged, kept) one by one; the rest
/// are counted in one line, so that junk costs the door its verdict and no more.
pub const REFUSALS_NAMED: usize = 20;

/// The line that stands for the refusals of one batch beyond the first [`REFUSALS_NAMED`].
fn unlisted(more: usize) -> String {
    format!("{more} more entries refused in the same batch, not listed one by one")
}

/// The authority log's resolved state: the loaded log's, or the one the store kept.
pub(crate) enum StateRef<'a> {
    Log(Ref<'a, Log>),
    Kept(Ref<'a, Resolved<'static>>),
}

impl std::ops::Deref for StateRef<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        match self {
            StateRef::Log(l) => l.state(),
            StateRef::Kept(k) => &k.state,
        }
    }
}

impl StateRef<'_> {
    pub(crate) fn heads(&self) -> Vec<Id> {
        match self {
            StateRef::Log(l) => l.heads(),
            StateRef::Kept(k) => k.heads.clone(),
        }
    }

    pub(crate) fn entries(&self) -> usize {
        match self {
            StateRef::Log(l) => l.len(),
            StateRef::Kept(k) => k.entries as usize,
        }
    }

    /// The coalition the log belongs to (known before its founding entry arrives, to a hub
    /// that joined by invite).
    pub(crate) fn coalition_id(&self) -> Option<Id> {
        match self {
            StateRef::Log(l) => l.coalition(),
            StateRef::Kept(k) => k.coalition,
        }
    }
}

impl Hub {
    /// The authority log, loaded from the store the first time it is needed.
    pub(crate) fn log(&self) -> Result<Ref<'_, Log>> {
        if self.authority.borrow().is_none() {
            let log = self.load_log()?;
            *self.authority.borrow_mut() = Some(log);
            // The kept state is no longer read; free it unless a caller still reads it.
            if let Ok(mut kept) = self.authority_kept.try_borrow_mut() {
                *kept = None;
            }
        }
        Ok(Ref::map(self.authority.borrow(), |l| l.as_ref().expect("loaded above")))
    }

    /// Who may do what, resolved: from the loaded log, else from the state the store kept if no
    /// entry came since it was kept, else from the log, loaded for it.
    pub(crate) fn resolved(&self) -> Result<StateRef<'_>> {
        if self.authority.borrow().is_none() && self.authority_kept.borrow().is_none() {
            if let Some((kept, after)) = self.store.authority_resolved(KEPT_EXTENDS)? {
                match Resolved::decode(&kept) {
                    Some(mut r) => {
                        self.authority_kept_entries.set(Some(r.entries));
                        // Entries stored since it was kept (this hub stopped before upkeep kept
                        // it again) bring it forward where they can; else the log is replayed.
                        let forward = after.iter().all(|(id, bytes)| {
                            <[u8; 32]>::try_from(id.as_slice()).is_ok_and(|id| r.extend(Id(id), bytes))
                        });
                        if forward {
                            *self.authority_kept.borrow_mut() = Some(r);
                        } else {
                            tracing::info!(
                                after = after.len(),
                                "entries came since the authority state was kept: replaying the log"
                            );
                        }
                    }
                    // Another build's form, say: the log is replayed, and upkeep keeps it anew.
                    None => tracing::info!("the kept authority state is not this build's: replaying the log"),
                }
            }
        }
        if self.authority.borrow().is_none() {
            if let Ok(kept) = Ref::filter_map(self.authority_kept.borrow(), Option::as_ref) {
                return Ok(StateRef::Kept(kept));
            }
        }
        Ok(StateRef::Log(self.log()?))
    }

    /// One step of upkeep: keeps the log's resolved state in the store, if entries came since it
    /// was kept (so that the next opening reads it instead of replaying every entry). Whether it
    /// wrote.
    pub(crate) fn keep_resolved(&mut self) -> Result<bool> {
        // The loaded log's state, or the kept one brought forward at opening.
        let kept = self.authority_kept_entries.get();
        let (entries, bytes) = match (self.authority.get_mut().as_ref(), self.authority_kept.get_mut().as_ref()) {
            (Some(log), _) if !log.is_empty() && kept != Some(log.len() as u64) => {
                (log.len() as u64, log.resolved().encode())
            }
            (None, Some(r)) if kept != Some(r.entries) => (r.entries, r.encode()),
            _ => return Ok(false),
        };
        if !self.store.write(|tx| tx.keep_authority_resolved(entries, &bytes))? {
            // The store holds other entries than the log in memory: it was written behind this
            // hub's back. Nothing is kept; opening again replays what is stored.
            tracing::warn!(entries, "the authority log in memory is not the stored one: its state is not kept");
        }
        self.authority_kept_entries.set(Some(entries));
        Ok(true)
    }

    /// One step of upkeep: loads the authority log if opening answered from the kept state, so
    /// that an entry arriving or made later passes the door at once instead of waiting for the
    /// load (about a second at 100,000 entries). Whether it loaded.
    /// A log that cannot be loaded is reported once and not tried again by upkeep in this run
    /// (whatever needs it still fails, with the reason).
    pub(crate) fn load_authority_at_rest(&mut self) -> Result<bool> {
        if self.authority.get_mut().is_some() || self.authority_unloadable {
            return Ok(false);
        }
        let loaded = self.log().map(|_| ());
        if let Err(e) = loaded {
            tracing::error!(error = %e, "cannot load the authority log; upkeep will not try again in this run");
            self.authority_unloadable = true;
            return Ok(false);
        }
        Ok(true)
    }

    /// Whether the authority log is in memory: loaded when an entry arrives or is made, by
    /// upkeep once the hub rests, or at opening when the kept state cannot stand for the stored
    /// entries.
    pub fn authority_log_loaded(&self) -> bool {
        self.authority.borrow().is_some()
    }

    /// Forgets the log in memory and its kept state (the store's log was replaced), and the
    /// entries queued for peers.
    pub(crate) fn forget_authority(&mut self) {
        *self.authority.get_mut() = None;
        *self.authority_kept.get_mut() = None;
        self.authority_kept_entries.set(None);
        self.authority_changes.clear();
    }

    fn load_log(&self) -> Result<Log> {
        let entries = self.store.authority()?;
        let mut log = if !entries.is_empty() {
            let with_ids = entries.into_iter().map(|(id, b)| {
                let id: [u8; 32] = id.try_into().unwrap_or([0; 32]);
                (Id(id), b)
            });
            Log::load_with_ids(with_ids).map_err(|e| Error::Corrupt(format!("the authority log: {e}")))?
        } else if let Some(id) = self.store.meta("coalition_id")?.filter(|s| !s.is_empty()) {
            Log::for_coalition(Id::parse(&id).map_err(Error::Corrupt)?)
        } else {
            let founder = Key::parse(&self.founder()?.key).map_err(Error::Corrupt)?;
            Log::for_founding_hub(founder)
        };
        for w in self.store.authority_waiting()? {
            log.offer_stored_waiting(&w);
        }
        Ok(log)
    }

    /// Takes the log out to change it; put it back with `self.authority` once stored.
    fn take_log(&mut self) -> Result<Log> {
        // The log is about to change: the kept state no longer answers for it.
        *self.authority_kept.get_mut() = None;
        match self.authority.get_mut().take() {
            Some(l) => Ok(l),
            None => self.load_log(),
        }
    }

    /// Offers entries that arrived from `source` (a hub, a bundle, a welcome) to the door, and
    /// stores what it lets in and what waits, in one transaction. Refusals are recorded with
    /// `source`; they are not an error.
    pub(crate) fn offer_authority(&mut self, entries: &[Vec<u8>], source: &str) -> Result<AuthorityOffer> {
        let mut log = self.take_log()?;
        let mut added = Vec::new();
        let mut erasures = false;
        let mut waiting = Vec::new();
        let mut refused = Vec::new();
        let mut forged = Vec::new();
        let (mut refused_count, mut forged_count) = (0, 0);
        for (b, verdict) in entries.iter().zip(log.offer_many(entries)) {
            match verdict {
                Ok(Offered::Added(ids)) => {
                    for (id, e) in ids.iter().filter_map(|id| log.get(id).map(|e| (*id, e))) {
                        erasures |= matches!(e.body, Body::Erase { .. });
                        added.push((id, e.encode()));
                    }
                }
                Ok(Offered::Waiting(_)) => waiting.push((Id::of(b), b.clone())),
                Ok(Offered::Known) => {}
                Err(r) => {
                    let is_forged = !matches!(r, aidmesh_mesh::authority::Refusal::OtherCoalition);
                    forged_count += usize::from(is_forged);
                    refused_count += 1;
                    if is_forged && forged.len() < REFUSALS_NAMED {
                        forged.push(r.to_string());
                    }
                    if refused.len() < REFUSALS_NAMED {
                        refused.push((r.to_string(), b.clone()));
                    }
                }
            }
        }
        if refused_count > refused.len() {
            let more = refused_count - refused.len();
            refused.push((unlisted(more), Vec::new()));
        }
        // Entries that waited (from this offer, an earlier one, or the last run) and were refused
        // once what they follow arrived: forgotten, and reported, though not as this sender's.
        let lapsed = log.take_lapsed();
        if added.is_empty() && waiting.is_empty() && refused.is_empty() && lapsed.is_empty() {
            *self.authority.get_mut() = Some(log);
            return Ok(AuthorityOffer::default());
        }
        let now = self.clock.now().millis();
        let written = self.store.write(|tx| {
            // Waiting first: an entry that waited and came in within this offer is then
            // taken out of the waiting room by its addition.
            for (id, b) in &waiting {
                tx.add_authority_waiting(&id.0, b)?;
            }
            for (id, b) in &added {
                tx.add_authority(&id.0, b)?;
            }
            for (why, b) in &refused {
                tx.add_authority_refused(now, source, why, b)?;
            }
            // Every one is forgotten; as with a sender's, the first are named, the rest counted.
            for (n, (id, b, why)) in lapsed.iter().enumerate() {
                tx.remove_authority_waiting(&id.0)?;
                if n < REFUSALS_NAMED {
                    tx.add_authority_refused(now, LAPSED, &why.to_string(), b)?;
                }
            }
            if lapsed.len() > REFUSALS_NAMED {
                let more = lapsed.len() - REFUSALS_NAMED;
                tx.add_authority_refused(now, LAPSED, &unlisted(more), &[])?;
            }
            Ok(())
        });
        // On failure the log is dropped and reloads from the store: memory never runs ahead.
        written?;
        *self.authority.get_mut() = Some(log);
        for (why, _) in &refused {
            tracing::warn!(source, why, "authority entry refused at the door");
        }
        for (id, _, why) in lapsed.iter().take(REFUSALS_NAMED) {
            tracing::warn!(%id, %why, "an authority entry that waited was refused once what it follows arrived");
        }
        let report = AuthorityOffer {
            added: added.len(),
            waiting: waiting.len(),
            refused: refused.into_iter().map(|r| r.0).collect(),
            forged,
            forged_count,
        };
        self.authority_changes.extend(added.into_iter().map(|(_, b)| b));
        if erasures {
            self.apply_erasures()?;
        }
        if report.added > 0 {
            self.prune_whereabouts_or_warn();
            self.emit(crate::Event::AuthorityChanged);
        }
        Ok(report)
    }

    /// Signs an authority entry as the unlocked person, at this hub, after every head; it
    /// passes the same door as any other and is stored before this returns.
    pub(crate) fn sign_authority(&mut self, body: Body) -> Result<Id> {
        let signer = Identity::from_secret(&self.acting_identity()?.secret());
        if !matches!(body, Body::Found { .. }) && self.resolved()?.person_of(&Key::of(&signer)).is_none() {
            let handle = self.acting().map(|p| p.handle.clone()).unwrap_or_default();
            return Err(Error::NotAllowed(format!(
                "{handle} is not a person of the coalition (or was removed): an admin adds them with \
                 `aidmesh person add {} --name {handle}`",
                Key::of(&signer).hex()
            )));
        }
        let at = self.clock.now().millis();
        let hub = Key::of(&self.identity);
        let mut log = self.take_log()?;
        let (id, bytes) = match log.append(&signer, hub, at, body) {
            Ok(x) => x,
            Err(e) => {
                *self.authority.get_mut() = Some(log);
                return Err(match e {
                    Refusal::NoRight(why) => Error::NotAllowed(why),
                    other => Error::Corrupt(other.to_string()),
                });
            }
        };
        self.store.write(|tx| tx.add_authority(&id.0, &bytes))?;
        *self.authority.get_mut() = Some(log);
        self.authority_changes.push(bytes);
        self.prune_whereabouts_or_warn();
        self.emit(crate::Event::AuthorityChanged);
        Ok(id)
    }

    /// Founds this hub's coalition with the unlocked person as its first admin; the hub
    /// countersigns. What `init` does (with a fresh start of the coalition secret, `genesis`),
    /// and opening a founding hub from before the log (without: the hubs it re-admits follow
    /// the secret its coalition had, from the founding hub's key).
    pub(crate) fn found_coalition(&mut self, genesis: bool) -> Result<()> {
        let name = self.store.meta("hub_name")?.unwrap_or_default();
        let person = self.acting.as_ref().map(|(i, p)| (Key::of(i), p.handle.clone()));
        let (key, handle) =
            person.ok_or_else(|| Error::NotAllowed("no one is unlocked to found the coalition".into()))?;
        let secret = genesis.then(|| {
            let (mut ephemeral, mut fresh) = ([0u8; 32], [0u8; 32]);
            self.rng.fill_bytes(&mut ephemeral);
            self.rng.fill_bytes(&mut fresh);
            aidmesh_mesh::keyring::genesis(&Key::of(&self.identity), ephemeral, fresh)
        });
        let body = Body::found(&self.identity, &key, &name, &handle, &name, secret);
        self.sign_authority(body)?;
        Ok(())
    }

    /// A founding hub from before the authority log: its coordinator (the handle it is opened
    /// with) gets a key with no PIN, founds the log, and re-admits every hub the old records
    /// admitted. Other hubs of the coalition take the founding from this hub when they sync.
    pub(crate) fn migrate_to_authority_log(&mut self) -> Result<bool> {
        if self.store.has_authority()? || self.founder()?.key != self.public_key() {
            return Ok(false);
        }
        let legacy = self.legacy_members()?;
        if self.acting.is_none() {
            let handle = self.handle.clone();
            if !self.local_people()?.iter().any(|p| p.handle == handle) {
                self.make_person(&handle, None)?;
            }
            self.unlock_default()?;
        }
        self.found_coalition(false)?;
        let own = self.public_key();
        for m in legacy.members.values().filter(|m| m.key.hex() != own) {
            self.sign_authority(Body::admit_hub(m.key, m.name.clone()))?;
        }
        Ok(true)
    }

    /// Entries stored since the sync driver last asked.
    pub(crate) fn take_authority_changes(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.authority_changes)
    }

    /// Who may do what, resolved, for people to read.
    pub fn authority(&self) -> Result<Authority> {
        let stranded = self.stranded()?;
        let st = self.resolved()?;
        let name_of = |k: &Key| st.person_of(k).map(|p| p.handle.clone()).unwrap_or_else(|| k.short());
        let people = st
            .people
            .values()
            .map(|p| PersonView {
                handle: p.handle.clone(),
                key: p.key.hex(),
                fingerprint: p.key.fingerprint().map(|f| f.to_string()).unwrap_or_default(),
                admin: p.role == Role::Admin,
                roles: p.roles.keys().cloned().collect(),
                since: Timestamp::from_millis(p.since.at),
                added_by: name_of(&p.since.by),
                keys: p.keys.len(),
            })
            .collect();
        let waiting = st
            .waiting
            .values()
            .map(|w| WaitingView {
                entry: w.entry.hex(),
                target: name_of(&w.target),
                change: match w.change {
                    Change::Removal => WaitingChange::Removal,
                    Change::Demotion => WaitingChange::Demotion,
                    Change::Promotion => WaitingChange::Promotion,
                },
                signed: w.signed.iter().map(name_of).collect(),
            })
            .collect();
        let in_force = st.policy().map(|p| p.id);
        let mut policies: Vec<PolicyView> = st
            .policies
            .values()
            .map(|p| PolicyView {
                id: p.id.hex(),
                set_by: name_of(&p.set.by),
                at: Timestamp::from_millis(p.set.at),
                currency: p.currency.clone(),
                limits: p
                    .limits
                    .iter()
                    .map(|l| format!("{}: up to {}", l.role, aidmesh_model::format_amount(l.max_minor, &p.currency)))
                    .collect(),
                threshold: aidmesh_model::format_amount(p.threshold_minor, &p.currency),
                approvals_above_threshold: p.approvals_above_threshold,
                in_force: in_force == Some(p.id),
                superseded: !st.policy_heads.contains(&p.id),
            })
            .collect();
        policies.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.id.cmp(&b.id)));
        let contested = st
            .contested
            .iter()
            .map(|c| {
                let who: Vec<String> = c.people.iter().map(name_of).collect();
                format!("{} removed each other while apart: all of them lost the right", who.join(", "))
            })
            .collect();
        let not_counted = st.not_counted.iter().map(|(id, why)| format!("{id}: {why}")).collect();
        let refused = self
            .store
            .authority_refused(50)?
            .into_iter()
            .map(|(at, source, reason)| RefusedView { at: Timestamp::from_millis(at), source, reason })
            .collect();
        Ok(Authority {
            coalition: st.coalition_name.clone(),
            people,
            waiting,
            policies,
            contested,
            not_counted,
            refused,
            votes: st
                .recovery
                .iter()
                .map(|(target, voters)| VoteView {
                    target: name_of(target),
                    voters: voters.iter().filter(|v| st.people.contains_key(v)).map(name_of).collect(),
                })
                .collect(),
            votes_needed: st.people.len() / 2 + 1,
            entries: st.entries(),
            acting: self.acting().cloned(),
            acting_as: self
                .acting()
                .and_then(|p| Key::parse(&p.key).ok())
                .and_then(|k| st.person_of(&k))
                .map(|p| p.key.hex()),
            stranded,
        })
    }

    /// Why this hub cannot follow the coalition secret, in words, if it was left out of a
    /// turnover ([`aidmesh_mesh::keyring::Keyring::stranded`]).
    fn stranded(&self) -> Result<Option<String>> {
        let Some((entry, why)) = self.keyring()?.stranded() else { return Ok(None) };
        // Rare: the log is loaded to name who signed the turnover.
        let signer = self.log()?.get(&entry).map(|e| e.author);
        let st = self.resolved()?;
        let by = signer.map(|k| st.person_of(&k).map(|p| p.handle.clone()).unwrap_or_else(|| k.short()));
        Ok(Some(format!(
            "the turnover of the coalition secret in entry {entry}{}: {why}. This hub cannot reach the \
             hubs that follow the secret past it over the network. An admin revokes this hub and admits \
             it again to hand it the secret; meanwhile, carry changes by USB bundle",
            by.map(|b| format!(" by {b}")).unwrap_or_default()
        )))
    }

    /// A current person, by handle, fingerprint or key.
    fn person_key(&self, who: &str) -> Result<Key> {
        let st = self.resolved()?;
        let who = who.trim();
        let by_handle: Vec<&Key> = st.people.values().filter(|p| p.handle == who).map(|p| &p.key).collect();
        if by_handle.len() > 1 {
            return Err(Error::invalid(
                "person",
                vec![FieldError::new("who", format!("several people are called {who}: give a fingerprint"))],
            ));
        }
        if let Some(k) = by_handle.first() {
            return Ok(**k);
        }
        let fp = aidmesh_mesh::HubId::parse(who).ok();
        st.people
            .values()
            .find(|p| p.key.hex() == who || (fp.is_some() && p.key.fingerprint() == fp))
            .map(|p| p.key)
            .ok_or_else(|| Error::NotFound(format!("person {who:?} in the coalition")))
    }

    /// Adds a person by the key they made at their hub (an admin's work). Adding an admin needs
    /// a majority of the admins: until they have signed ([`Hub::endorse`]) the person is a plain
    /// member, and this returns `false`.
    pub fn add_person(&mut self, key: &str, handle: &str, admin: bool) -> Result<bool> {
        let person =
            Key::parse(key.trim()).ok().filter(|k| aidmesh_mesh::identity::public_key_ok(&k.0)).ok_or_else(|| {
                Error::invalid("person", vec![FieldError::new("key", "not an Ed25519 public key in hex")])
            })?;
        if handle.trim().is_empty() {
            return Err(Error::invalid("person", vec![FieldError::new("handle", "is required")]));
        }
        let role = if admin { Role::Admin } else { Role::Member };
        self.sign_authority(Body::AddPerson { person, handle: handle.trim().to_string(), role })?;
        Ok(self.resolved()?.people.get(&person).map(|p| p.role) == Some(role))
    }

    /// Removes a person. Removing an admin needs a majority of the other admins: until they
    /// have signed ([`Hub::endorse`]) it waits, and this returns `false`.
    pub fn remove_person(&mut self, who: &str) -> Result<bool> {
        let person = self.person_key(who)?;
        self.sign_authority(Body::RemovePerson { person })?;
        Ok(self.resolved()?.person_of(&person).is_none())
    }

    /// Makes a person an admin, or a plain member: by a majority of the admins, as for removal;
    /// `false` while it waits for them.
    pub fn set_admin(&mut self, who: &str, admin: bool) -> Result<bool> {
        let person = self.person_key(who)?;
        let role = if admin { Role::Admin } else { Role::Member };
        self.sign_authority(Body::SetRole { person, role })?;
        Ok(self.resolved()?.people.get(&person).map(|p| p.role) == Some(role))
    }

    /// Adds the unlocked admin's signature to a waiting removal, demotion or promotion: the one
    /// whose entry id is `what` (as the waiting list shows it), or the one change waiting for
    /// the person `what` names. Whether it took effect.
    pub fn endorse(&mut self, what: &str) -> Result<bool> {
        let parsed = Id::parse(what.trim());
        let entry = match parsed {
            Ok(id) if self.resolved()?.waiting.contains_key(&id) => id,
            // An entry id that no longer waits (it took effect, or lapsed) never falls back to a
            // person, whose handle could be that very text; a person's key does.
            Ok(id) if !self.resolved()?.people.contains_key(&Key(id.0)) => {
                return Err(Error::NotFound(format!("a change waiting for signatures with entry id {id}")))
            }
            _ => {
                let target = self.person_key(what)?;
                let st = self.resolved()?;
                let changes: Vec<Id> = st.waiting.values().filter(|w| w.target == target).map(|w| w.entry).collect();
                match changes[..] {
                    [] => return Err(Error::NotFound(format!("a change of {what} waiting for signatures"))),
                    [one] => one,
                    _ => {
                        return Err(Error::invalid(
                            "endorse",
                            vec![FieldError::new(
                                "what",
                                format!(
                                    "several changes of {what} wait: sign one by its entry id, as the list shows it"
                                ),
                            )],
                        ))
                    }
                }
            }
        };
        self.sign_authority(Body::Endorse { entry })?;
        Ok(!self.resolved()?.waiting.contains_key(&entry))
    }

    /// With no admin left (admins who removed each other, keys lost), the unlocked person's vote
    /// to make `who` an admin; a majority of the people make it so. Whether `who` is an admin
    /// now. Refused while any admin is left: admins make admins.
    pub fn vote_admin(&mut self, who: &str) -> Result<bool> {
        let person = self.person_key(who)?;
        self.sign_authority(Body::Recover { person })?;
        Ok(self.resolved()?.is_admin(&person))
    }

    /// Makes `key` (made at another hub with `make_person`) one of the unlocked person's keys:
    /// someone who works at two hubs is one person, with a key at each.
    /// `proof` is what [`Hub::key_proof`] made where the new key lives.
    pub fn add_key(&mut self, key: &str, proof: &str) -> Result<()> {
        let key =
            Key::parse(key.trim()).ok().filter(|k| aidmesh_mesh::identity::public_key_ok(&k.0)).ok_or_else(|| {
                Error::invalid("person", vec![FieldError::new("key", "not an Ed25519 public key in hex")])
            })?;
        let proof = aidmesh_mesh::authority::Sig::parse(proof.trim())
            .map_err(|e| Error::invalid("person", vec![FieldError::new("proof", e)]))?;
        self.sign_authority(Body::AddKey { key, proof }).map(|_| ())
    }

    /// The unlocked key's signature for `person` (their first key, hex, as `person list`
    /// shows it): given to that person at a hub where they are unlocked, it lets them add this
    /// key as theirs ([`Hub::add_key`]). Proves that whoever adds a key holds it.
    pub fn key_proof(&self, person: &str) -> Result<String> {
        let person =
            Key::parse(person.trim()).map_err(|e| Error::invalid("person", vec![FieldError::new("person", e)]))?;
        Ok(aidmesh_mesh::authority::key_proof(self.acting_identity()?, &person).hex())
    }

    /// Withdraws one of a person's keys (a lost laptop's): by that person, or by an admin.
    pub fn revoke_key(&mut self, key: &str) -> Result<()> {
        let key = Key::parse(key.trim()).map_err(|e| Error::invalid("person", vec![FieldError::new("key", e)]))?;
        self.sign_authority(Body::RevokeKey { key }).map(|_| ())
    }

    /// Names the coalition's relays (admins): the `https://` addresses of the coalition's own
    /// relay servers, through which its hubs reach each other over the internet; none, direct
    /// addresses only. Replaces the versions standing now.
    pub fn set_relays(&mut self, urls: &[String]) -> Result<()> {
        let invalid = |e: String| Error::invalid("relays", vec![FieldError::new("relays", e)]);
        let urls: Vec<String> = urls
            .iter()
            .map(|u| u.trim())
            .filter(|u| !u.is_empty())
            .map(aidmesh_mesh::authority::relay_url)
            .collect::<std::result::Result<_, _>>()
            .map_err(invalid)?;
        aidmesh_mesh::authority::relays_ok(&urls).map_err(invalid)?;
        let supersedes = self.resolved()?.relay_heads.iter().copied().collect();
        self.sign_authority(Body::Relays { supersedes, urls }).map(|_| ())
    }

    /// The coalition's relays, as its admins named them (see [`Hub::set_relays`]).
    pub fn relays(&self) -> Result<Vec<String>> {
        Ok(self.resolved()?.relays())
    }

    /// Gives a person a named role (`treasurer`, ...), or takes it back.
    pub fn grant(&mut self, who: &str, role: &str, give: bool) -> Result<()> {
        let person = self.person_key(who)?;
        let role = role.trim().to_string();
        if role.is_empty() {
            return Err(Error::invalid("grant", vec![FieldError::new("role", "is required")]));
        }
        let body = if give { Body::Grant { person, role } } else { Body::Ungrant { person, role } };
        self.sign_authority(body).map(|_| ())
    }

    pub(crate) fn acting_handle(&self) -> String {
        self.acting().map(|p| p.handle.clone()).unwrap_or_default()
    }

    /// Whether the unlocked person is a person of the coalition, who may record expenses.
    pub(crate) fn may_record_expenses(&self) -> Result<()> {
        let identity = self.acting_identity()?;
        if self.resolved()?.person_of(&Key::of(identity)).is_none() {
            return Err(Error::NotAllowed(format!(
                "{} is not a person of the coalition: an expense is recorded by one, so that others can approve it",
                self.acting_handle()
            )));
        }
        Ok(())
    }

    /// Records an expense in the log as the unlocked person, under the policy version in force:
    /// what its approvals are judged against.
    pub(crate) fn record_expense(&mut self, rec: &aidmesh_model::Record) -> Result<Id> {
        let aidmesh_model::Body::Expense(e) = &rec.body else {
            return Err(Error::invalid("expense", vec![FieldError::new("kind", "is not an expense")]));
        };
        let policy = self.resolved()?.policy().map(|p| p.id);
        self.sign_authority(Body::Expense {
            expense: rec.id().to_string(),
            amount_minor: e.amount_minor,
            currency: e.currency.clone(),
            payee: e.payee.clone(),
            policy,
        })
    }

    /// Signs the authority entry a record of an authority kind stands for (an approval, a role
    /// grant, a policy version). Returns the signer's key and the entry's id, both hex.
    pub(crate) fn sign_for_record(&mut self, rec: &aidmesh_model::Record) -> Result<(String, String)> {
        use aidmesh_model::Body as B;
        let signer = Key::of(self.acting_identity()?).hex();
        let body = match &rec.body {
            B::Approval(a) => {
                let expense = self.get(a.expense.as_str())?;
                let expense = self.amended_record(&expense)?;
                let B::Expense(e) = &expense.body else {
                    return Err(Error::invalid("approval", vec![FieldError::new("expense", "is not an expense")]));
                };
                let st = self.resolved()?;
                let recorded = st.expense_entries.get(a.expense.as_str()).copied().ok_or_else(|| {
                    Error::NotAllowed(format!(
                        "expense {} was not recorded by a person of the coalition, so no one can approve it",
                        a.expense
                    ))
                })?;
                if let aidmesh_model::views::ApprovalState::Unapproved { why, .. } =
                    st.approval(a.expense.as_str(), e.amount_minor, &e.currency, &e.payee)
                {
                    if why.starts_with("changed since") {
                        return Err(Error::NotAllowed(format!("expense {}: {why}", a.expense)));
                    }
                }
                let me = st.person_of(&Key::parse(&signer).map_err(Error::Corrupt)?);
                let held: Vec<String> = me.map(|p| p.roles.keys().cloned().collect()).unwrap_or_default();
                let policy = st.expenses.get(&recorded).and_then(|r| r.policy).and_then(|p| st.policies.get(&p));
                // The approver's role whose limit covers the amount, if any; otherwise the door
                // says what is missing.
                let role = policy
                    .and_then(|p| {
                        p.limits
                            .iter()
                            .filter(|l| held.contains(&l.role) && l.max_minor >= e.amount_minor)
                            .map(|l| l.role.clone())
                            .next()
                    })
                    .or_else(|| held.first().cloned())
                    .ok_or_else(|| {
                        Error::NotAllowed(format!("{} holds no role that may approve expenses", self.acting_handle()))
                    })?;
                Body::Approve { recorded, approve: a.decision == aidmesh_model::Decision::Approve, role }
            }
            B::RoleGrant(g) => {
                let person = self.person_key(&g.handle)?;
                if g.revoked {
                    Body::Ungrant { person, role: g.role.trim().to_string() }
                } else {
                    Body::Grant { person, role: g.role.trim().to_string() }
                }
            }
            B::Policy(p) => Body::Policy {
                supersedes: self.resolved()?.policy_heads.iter().copied().collect(),
                currency: p.currency.clone(),
                limits: p
                    .limits
                    .iter()
                    .map(|l| aidmesh_mesh::authority::Limit { role: l.role.trim().to_string(), max_minor: l.max_minor })
                    .collect(),
                threshold_minor: p.threshold_minor,
                approvals_above_threshold: p.approvals_above_threshold,
            },
            _ => return Err(Error::invalid(rec.kind().name(), vec![FieldError::new("kind", "carries no authority")])),
        };
        let id = self.sign_authority(body)?;
        Ok((signer, id.hex()))
    }

    /// Whether a key (hex) signs for a current person of the coalition.
    pub fn is_person(&self, key: &str) -> Result<bool> {
        Ok(Key::parse(key.trim()).is_ok_and(|k| self.resolved().is_ok_and(|st| st.person_of(&k).is_some())))
    }

    /// Whether the unlocked person is an admin of the coalition.
    pub fn acting_is_admin(&self) -> Result<bool> {
        let Some((identity, _)) = &self.acting else { return Ok(false) };
        Ok(self.resolved()?.is_admin(&Key::of(identity)))
    }

    /// Replaces the authority log with another coalition's (joining it): its id and its
    /// entries, each through the door.
    pub(crate) fn adopt_authority(&mut self, coalition: Option<&str>, entries: &[Vec<u8>]) -> Result<AuthorityOffer> {
        let id = match coalition {
            Some(c) => {
                Some(Id::parse(c).map_err(|e| Error::invalid("welcome", vec![FieldError::new("coalition_id", e)]))?)
            }
            None => None,
        };
        self.store.write(|tx| {
            tx.clear_authority()?;
            tx.set_meta("coalition_id", &id.map(|i| i.hex()).unwrap_or_default())
        })?;
        self.forget_authority();
        self.offer_authority(entries, "the invite's welcome")
    }

    /// How many entries wait here for entries they follow (kept across restarts).
    pub fn authority_waiting_count(&self) -> Result<usize> {
        Ok(self.store.authority_waiting()?.len())
    }

    /// How many refusals at the door are kept (the latest 1,000).
    pub fn authority_refusals_count(&self) -> Result<usize> {
        Ok(self.store.authority_refused(i64::MAX)?.len())
    }
}
