//! Where member hubs can be reached over the internet: each hub's own signed word of its home
//! relay and direct addresses (`aidmesh_mesh::whereabouts`), kept here as the newest entry of
//! each current member, in the store, so that a hub restarted without a relay still knows where
//! to dial. They travel with sync and in bundles.

use std::net::SocketAddr;

use aidmesh_mesh::whereabouts::{Table, Whereabouts, MAX_ENTRIES};
use aidmesh_mesh::HubId;

use crate::Hub;

const META: &str = "whereabouts";

/// Where a member hub said it can be reached over the internet, as the command shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WhereaboutsView {
    pub hub: String,
    pub name: String,
    /// Its relay, if it is connected to one.
    pub relay: Option<String>,
    pub direct: Vec<String>,
    /// When it said so, by its own clock.
    pub said_at: aidmesh_model::Timestamp,
}

impl Hub {
    /// The whereabouts this hub keeps, of current members only.
    pub(crate) fn whereabouts_table(&self) -> crate::Result<Table> {
        self.table_of(&self.member_keys()?)
    }

    /// The whereabouts kept, of the members with these keys only.
    fn table_of(&self, keys: &std::collections::BTreeMap<HubId, [u8; 32]>) -> crate::Result<Table> {
        let mut table = Table::from_entries(self.kept_whereabouts()?);
        table.retain_members(|h| keys.get(h).copied());
        Ok(table)
    }

    /// Every entry as the store keeps it, members' or not.
    fn kept_whereabouts(&self) -> crate::Result<Vec<Whereabouts>> {
        Ok(match self.store.meta(META)? {
            Some(json) => serde_json::from_str(&json).unwrap_or_else(|e| {
                // Only this hub writes it: unreadable means damaged; the members say it again.
                tracing::warn!(error = %e, "the kept whereabouts are unreadable: starting afresh");
                Vec::new()
            }),
            None => Vec::new(),
        })
    }

    /// [`Hub::prune_whereabouts`] after the authority log changed, which stands whatever
    /// happens here (every view of the whereabouts leaves non-members out anyway).
    pub(crate) fn prune_whereabouts_or_warn(&mut self) {
        if let Err(e) = self.prune_whereabouts() {
            tracing::warn!(error = %e, "cannot forget the whereabouts of hubs no longer members");
        }
    }

    /// Forgets the whereabouts of hubs that are no longer members (after the authority log
    /// changed): a revoked hub's addresses leave the store, not only the views of it.
    fn prune_whereabouts(&mut self) -> crate::Result<()> {
        let kept = self.kept_whereabouts()?.len();
        let table = self.whereabouts_table()?;
        if table.entries().count() < kept {
            self.keep_whereabouts(&table, false)?;
        }
        Ok(())
    }

    fn member_keys(&self) -> crate::Result<std::collections::BTreeMap<HubId, [u8; 32]>> {
        Ok(self.members()?.members.into_iter().map(|(id, m)| (id, m.key.0)).collect())
    }

    /// Keeps the table; `durable` for this hub's own word (whose version must never go back),
    /// else a power cut may lose it (the members say theirs again).
    fn keep_whereabouts(&mut self, table: &Table, durable: bool) -> crate::Result<()> {
        let json = serde_json::to_string(&table.entries().collect::<Vec<_>>())
            .map_err(|e| crate::Error::Malformed { format: "whereabouts", why: e.to_string() })?;
        if durable {
            self.store.write(|tx| tx.set_meta(META, &json))?;
        } else {
            self.write_resendable(|tx| tx.set_meta(META, &json))?;
        }
        Ok(())
    }

    /// Merges whereabouts that came from `source` (a hub, a bundle): each member's newest entry
    /// signed by that member is kept; a non-member's, and a signed one this release cannot read
    /// (from a later one, say), are passed over. An entry its hub did not sign is recorded with
    /// `source` among the refusals and refuses the whole batch: nothing of it is kept, and the
    /// session ends (or the bundle is refused). Returns whether anything changed.
    pub(crate) fn merge_whereabouts(&mut self, items: Vec<Whereabouts>, source: &str) -> crate::Result<bool> {
        if items.is_empty() {
            return Ok(false);
        }
        if items.len() > MAX_ENTRIES {
            let why = format!("{} whereabouts, at most {MAX_ENTRIES}", items.len());
            return Err(crate::Error::Malformed { format: "whereabouts", why });
        }
        let keys = self.member_keys()?;
        let mut table = self.table_of(&keys)?;
        let merged = table.merge(items, |h| keys.get(h).copied());
        for why in &merged.passed_over {
            tracing::debug!(source, %why, "whereabouts passed over");
        }
        if let Some(refused) = merged.refused {
            let (now, why) = (self.clock.now().millis(), refused.to_string());
            self.store.write(|tx| tx.add_authority_refused(now, source, &why, &[]))?;
            tracing::warn!(source, why, "whereabouts refused");
            return Err(crate::Error::RefusedWhereabouts(why));
        }
        if merged.taken.is_empty() {
            return Ok(false);
        }
        self.keep_whereabouts(&table, false)?;
        self.whereabouts_changes.extend(merged.taken);
        Ok(true)
    }

    /// Says where this hub can be reached over the internet now: its home relay and direct
    /// addresses, signed, kept and offered to every peer, if that differs from what it said
    /// last. Returns whether it said anything new, or `None` if this hub is not a member (yet:
    /// a joining hub learns the log with its first sync), and so said nothing.
    pub(crate) fn say_whereabouts(
        &mut self,
        relay: Option<String>,
        direct: &[SocketAddr],
    ) -> crate::Result<Option<bool>> {
        let keys = self.member_keys()?;
        let me = self.identity.id();
        if !keys.contains_key(&me) {
            return Ok(None);
        }
        let mut table = self.table_of(&keys)?;
        let tidy = Whereabouts::tidy(direct);
        if table.get(&me).is_some_and(|w| w.relay == relay && w.direct == tidy) {
            return Ok(Some(false));
        }
        let now = self.clock.now().millis();
        let entry = Whereabouts::new(&self.identity, table.next_version(&me, now), relay, direct);
        let merged = table.merge(vec![entry], |h| keys.get(h).copied());
        if let Some(why) = merged.refused.or_else(|| merged.passed_over.into_iter().next()) {
            return Err(crate::Error::Malformed { format: "whereabouts", why: why.to_string() });
        }
        if merged.taken.is_empty() {
            return Ok(Some(false));
        }
        self.keep_whereabouts(&table, true)?;
        self.whereabouts_changes.extend(merged.taken);
        Ok(Some(true))
    }

    /// Where each member hub (this one too) last said it can be reached over the internet, as
    /// this hub knows it.
    pub fn member_whereabouts(&self) -> crate::Result<Vec<WhereaboutsView>> {
        let members = self.members()?.members;
        let table = self.whereabouts_table()?;
        let mut out: Vec<WhereaboutsView> = table
            .entries()
            .map(|w| WhereaboutsView {
                hub: w.hub.to_string(),
                name: members.get(&w.hub).map(|m| m.name.clone()).unwrap_or_default(),
                relay: w.relay.clone(),
                direct: w.direct.iter().map(|a| a.to_string()).collect(),
                said_at: aidmesh_model::Timestamp::from_millis(w.version.min(i64::MAX as u64) as i64),
            })
            .collect();
        out.sort_by(|a, b| (&a.name, &a.hub).cmp(&(&b.name, &b.hub)));
        Ok(out)
    }

    /// Where `hub` said it can be reached, if it did and is a member.
    pub(crate) fn whereabouts_of(&self, hub: &HubId) -> crate::Result<Option<Whereabouts>> {
        Ok(self.whereabouts_table()?.get(hub).cloned())
    }
}
