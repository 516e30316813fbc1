//! The coalition's members, as this hub computes them from the signed membership log.

use aidmesh_mesh::authority::{Body as AuthBody, Key, MAX_SEALED};
use aidmesh_mesh::keyring::{self, Keyring};
use aidmesh_mesh::membership::{hex, Entry, Member, Members, Role};
use aidmesh_mesh::HubId;
use aidmesh_model::{Body, FieldError, Kind, Timestamp};
use rand::RngCore;

use crate::{Error, Hub, Result};

/// Who founded the coalition: the trust anchor of the membership log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Founder {
    pub key: String,
    pub name: String,
    pub at: Timestamp,
}

impl Hub {
    /// This hub's fingerprint, as people compare it.
    pub fn fingerprint(&self) -> HubId {
        self.identity.id()
    }

    /// A copy of this hub's key pair, for the TLS transport.
    pub fn identity(&self) -> aidmesh_mesh::Identity {
        aidmesh_mesh::Identity::from_secret(&self.identity.secret())
    }

    /// Records what the sync driver reports about peers, for `aidmesh peers` in another process.
    pub fn record_peer_status(&mut self, json: &str) -> Result<()> {
        Ok(self.store.write(|tx| tx.set_meta("peer_status", json))?)
    }

    /// The last peer status a running `aidmesh serve` recorded.
    pub fn peer_status(&self) -> Result<Option<String>> {
        Ok(self.store.meta("peer_status")?)
    }

    /// This hub's public key, hex.
    pub fn public_key(&self) -> String {
        hex(self.identity.public().as_bytes())
    }

    /// The coalition's founder, as this hub knows it.
    pub fn founder(&self) -> Result<Founder> {
        let get = |k: &str| self.store.meta(k).map(Option::unwrap_or_default);
        let at = get("founded_at")?.parse::<i64>().unwrap_or(0);
        Ok(Founder { key: get("founder_key")?, name: get("founder_name")?, at: Timestamp::from_millis(at) })
    }

    /// Takes another coalition's founder as this hub's trust anchor: what joining does once the
    /// invite is confirmed. The hub's own records stay; membership is evaluated from `founder`.
    pub fn adopt_founder(&mut self, founder: &Founder) -> Result<()> {
        let key_ok = aidmesh_mesh::membership::unhex(&founder.key)
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .is_some_and(|k| aidmesh_mesh::identity::public_key_ok(&k));
        if !key_ok {
            return Err(Error::invalid("founder", vec![FieldError::new("key", "not an Ed25519 public key in hex")]));
        }
        self.store.write(|tx| {
            // This hub's own coalition key is not the new coalition's: it comes with the invite.
            tx.set_meta("coalition_key", "")?;
            // Nor is its authority log: the new coalition's comes from its founding hub.
            tx.clear_authority()?;
            tx.set_meta("coalition_id", "")?;
            tx.set_meta("founder_key", &founder.key)?;
            tx.set_meta("founder_name", &founder.name)?;
            tx.set_meta("founded_at", &founder.at.millis().to_string())
        })?;
        *self.authority.get_mut() = None;
        // Entries of the coalition left behind, queued for peers, are not sent to the new one.
        self.authority_changes.clear();
        Ok(())
    }

    /// The current member hubs: the hubs the authority log admits and has not revoked. A
    /// coalition from before the authority log reads its old membership records until its
    /// founding hub's founding entry arrives.
    pub fn members(&self) -> Result<Members> {
        let log = self.log()?;
        if log.coalition().is_none() {
            drop(log);
            return self.legacy_members();
        }
        let st = log.state();
        let mut m = Members::default();
        for h in st.hubs.values() {
            if let Some(id) = h.key.fingerprint() {
                let since = Timestamp::from_millis(h.admitted.at);
                m.members.insert(
                    id.clone(),
                    Member { id, key: h.key.hex(), name: h.name.clone(), role: Role::Member, since },
                );
            }
        }
        m.revoked.extend(st.revoked_hubs.keys().filter_map(|k| k.fingerprint()));
        Ok(m)
    }

    /// Membership as hubs signed it before the authority log, evaluated from the founder.
    pub(crate) fn legacy_members(&self) -> Result<Members> {
        let f = self.founder()?;
        let recs = self.all(Kind::MemberEntry)?;
        let entries: Vec<Entry> = recs
            .iter()
            .filter_map(|r| match &r.body {
                Body::MemberEntry(e) => Some(Entry {
                    action: serde_json::from_value(e.action.clone()).ok()?,
                    signer: e.signer.clone(),
                    at: e.at,
                    sig: e.sig.clone(),
                }),
                _ => None,
            })
            .collect();
        Ok(Members::evaluate(&f.key, &f.name, f.at, &entries))
    }

    /// Admits a hub by its public key, signed by the unlocked person, who must be an admin.
    pub fn admit(&mut self, public_key: &str, name: &str) -> Result<()> {
        let hub = Key::parse(public_key.trim())
            .ok()
            .filter(|k| aidmesh_mesh::identity::public_key_ok(&k.0))
            .ok_or_else(|| Error::invalid("hub", vec![FieldError::new("key", "not an Ed25519 public key in hex")]))?;
        if name.trim().is_empty() {
            return Err(Error::invalid("hub", vec![FieldError::new("name", "is required")]));
        }
        // The hub is handed the coalition secret as this hub holds it, sealed for it alone.
        let mut ephemeral = [0u8; 32];
        self.rng.fill_bytes(&mut ephemeral);
        let (secret, after) = self.keyring()?.hand(ephemeral, &hub);
        self.sign_authority(AuthBody::AdmitHub { hub, name: name.trim().to_string(), secret: Some(secret), after })
            .map(|_| ())
    }

    /// Revokes a member hub (a lost or seized laptop): it may no longer connect.
    pub fn revoke(&mut self, hub: &str) -> Result<()> {
        let id = HubId::parse(hub).map_err(|e| Error::invalid("hub", vec![FieldError::new("hub", e)]))?;
        let key = self
            .log()?
            .state()
            .hubs
            .keys()
            .find(|k| k.fingerprint().as_ref() == Some(&id))
            .copied()
            .ok_or_else(|| Error::NotFound(format!("member hub {id}")))?;
        // A fresh coalition secret for the hubs that remain: the revoked one cannot follow it.
        let (mut ephemeral, mut fresh) = ([0u8; 32], [0u8; 32]);
        self.rng.fill_bytes(&mut ephemeral);
        self.rng.fill_bytes(&mut fresh);
        let body = keyring::revoke(self.log()?.state(), key, ephemeral, fresh).unwrap_or_else(|n| {
            tracing::warn!(
                remaining = n,
                "more hubs remain than one revocation seals a new coalition secret for ({MAX_SEALED}): \
                 revoked without turning the secret over"
            );
            AuthBody::revoke_hub(key)
        });
        self.sign_authority(body).map(|_| ())
    }

    /// The coalition secret's chain as far as this hub can follow it: what it proves to peers
    /// before either shows its key, and what keys its adverts (see `aidmesh_mesh::keyring`).
    pub fn keyring(&self) -> Result<Keyring> {
        let founder = aidmesh_mesh::membership::unhex(&self.founder()?.key)
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .unwrap_or_else(|| self.identity.public().to_bytes());
        Ok(Keyring::of(&founder, self.log()?.state(), &self.identity))
    }
}
