//! Where member hubs can be reached over the internet: each hub's own signed word of its home
//! relay and direct addresses (`aidmesh_mesh::whereabouts`), kept here as the newest entry of
//! each current member, in the store, so that a hub restarted without a relay still knows where
//! to dial. They travel with sync and in bundles.

use std::net::SocketAddr;

use aidmesh_mesh::whereabouts::{Table, Whereabouts, MAX_ENTRIES};
use aidmesh_mesh::HubId;

use crate::Hub;

const META: &str = "whereabouts";

impl Hub {
    /// The whereabouts this hub keeps, of current members only.
    pub(crate) fn whereabouts_table(&self) -> crate::Result<Table> {
        self.table_of(&self.member_keys()?)
    }

    /// The whereabouts kept, of the members with these keys only.
    fn table_of(&self, keys: &std::collections::BTreeMap<HubId, [u8; 32]>) -> crate::Result<Table> {
        let kept: Vec<Whereabouts> = match self.store.meta(META)? {
            Some(json) => serde_json::from_str(&json).unwrap_or_else(|e| {
                // Only this hub writes it: unreadable means damaged; the members say it again.
                tracing::warn!(error = %e, "the kept whereabouts are unreadable: starting afresh");
                Vec::new()
            }),
            None => Vec::new(),
        };
        let mut table = Table::from_entries(kept);
        table.retain_members(|h| keys.get(h).copied());
        Ok(table)
    }

    fn member_keys(&self) -> crate::Result<std::collections::BTreeMap<HubId, [u8; 32]>> {
        Ok(self.members()?.members.into_iter().map(|(id, m)| (id, m.key.0)).collect())
    }

    fn keep_whereabouts(&mut self, table: &Table) -> crate::Result<()> {
        let json = serde_json::to_string(&table.entries().collect::<Vec<_>>())
            .map_err(|e| crate::Error::Malformed { format: "whereabouts", why: e.to_string() })?;
        // Lost to a power cut, they are said again: no need to wait for the disk.
        self.store.write_resendable(|tx| tx.set_meta(META, &json))?;
        Ok(())
    }

    /// Merges whereabouts that came from `source` (a hub, a bundle): each member's newest entry
    /// signed by that member is kept; a non-member's is passed over. An entry its hub did not
    /// sign, or a malformed one, is recorded with `source` among the refusals and refuses the
    /// whole batch: nothing of it is kept, and the session ends (or the bundle is refused).
    /// Returns whether anything changed.
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
        if let Some(first) = merged.refused.first() {
            let now = self.clock.now().millis();
            let whys: Vec<String> = merged.refused.iter().map(|r| r.to_string()).collect();
            self.store.write(|tx| whys.iter().try_for_each(|why| tx.add_authority_refused(now, source, why, &[])))?;
            for why in &whys {
                tracing::warn!(source, why, "whereabouts refused");
            }
            return Err(crate::Error::RefusedWhereabouts(first.to_string()));
        }
        if merged.taken.is_empty() {
            return Ok(false);
        }
        self.keep_whereabouts(&table)?;
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
        let now = self.clock.now().millis();
        let entry = Whereabouts::new(&self.identity, table.next_version(&me, now), relay, direct);
        if table.get(&me).is_some_and(|w| w.relay == entry.relay && w.direct == entry.direct) {
            return Ok(Some(false));
        }
        let merged = table.merge(vec![entry], |h| keys.get(h).copied());
        self.keep_whereabouts(&table)?;
        self.whereabouts_changes.extend(merged.taken);
        Ok(Some(true))
    }

    /// Where `hub` said it can be reached, if it did and is a member.
    pub(crate) fn whereabouts_of(&self, hub: &HubId) -> crate::Result<Option<Whereabouts>> {
        Ok(self.whereabouts_table()?.get(hub).cloned())
    }
}
