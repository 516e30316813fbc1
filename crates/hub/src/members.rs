//! The coalition's members, as this hub computes them from the signed membership log.

use aidmesh_mesh::authority::{Body as AuthBody, Ephemeral, Key, Sealed, Slot, MAX_SEALED};
use aidmesh_mesh::hex;
use aidmesh_mesh::keyring::{self, Keyring};
use aidmesh_mesh::membership::{Entry, Member, Members, Role};
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

/// What a hub joined by hand adopts its coalition with (`aidmesh adopt-founder CODE`): the
/// founder and, from an admission, the coalition secret sealed for the admitted hub alone (so
/// that it finds and reaches the coalition's hubs before it holds the log; see
/// `aidmesh_mesh::keyring`). Written `KEY:TIME:NAME`, or `KEY:TIME:SECRET:NAME` with the
/// secret (160 hex digits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FounderCode {
    pub founder: Founder,
    pub welcome: Option<Sealed>,
}

fn key_ok(key: &str) -> bool {
    aidmesh_mesh::hex::decode(key)
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .is_some_and(|k| aidmesh_mesh::identity::public_key_ok(&k))
}

const WELCOME_HEX: usize = 2 * (32 + aidmesh_mesh::seal::SLOT);

fn welcome_hex(s: &Sealed) -> Option<String> {
    let [slot] = s.slots.as_slice() else { return None };
    Some(format!("{}{}", hex::encode(s.eph.0), hex::encode(slot.0)))
}

fn parse_welcome(s: &str) -> Option<Sealed> {
    let b = aidmesh_mesh::hex::decode(s).filter(|b| b.len() == WELCOME_HEX / 2)?;
    Some(Sealed { eph: Ephemeral(b[..32].try_into().ok()?), slots: vec![Slot(b[32..].try_into().ok()?)], commit: None })
}

impl FounderCode {
    /// Reads a code; what is wrong with it is named.
    pub fn parse(code: &str) -> Result<FounderCode> {
        let bad = |why: &str| Error::invalid("founder code", vec![FieldError::new("code", why)]);
        let mut parts = code.trim().splitn(3, ':');
        let (key, at, rest) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next());
        let rest = rest.ok_or_else(|| bad("not a founder code (KEY:TIME:NAME, or KEY:TIME:SECRET:NAME)"))?;
        if !key_ok(key) {
            return Err(bad("its key is not an Ed25519 public key in hex"));
        }
        let at = at.parse::<i64>().map_err(|_| bad("its time is not a number"))?;
        // No name is longer than MAX_NAME: a longer first part is the secret.
        let (welcome, name) = match rest.split_once(':') {
            Some((secret, name)) if secret.chars().count() > aidmesh_mesh::authority::MAX_NAME => {
                (Some(parse_welcome(secret).ok_or_else(|| bad("its secret is not 160 hex digits (mistyped?)"))?), name)
            }
            _ => (None, rest),
        };
        Ok(FounderCode {
            founder: Founder { key: key.into(), name: name.into(), at: Timestamp::from_millis(at) },
            welcome,
        })
    }
}

impl std::fmt::Display for FounderCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Founder { key, name, at } = &self.founder;
        match self.welcome.as_ref().and_then(welcome_hex) {
            Some(secret) => write!(f, "{key}:{}:{secret}:{name}", at.millis()),
            None => write!(f, "{key}:{}:{name}", at.millis()),
        }
    }
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

    /// This hub's public key, hex.
    pub fn public_key(&self) -> String {
        hex::encode(self.identity.public().as_bytes())
    }

    /// The coalition's founder, as this hub knows it.
    pub fn founder(&self) -> Result<Founder> {
        let get = |k: &str| self.store.meta(k).map(Option::unwrap_or_default);
        let at = get("founded_at")?.parse::<i64>().unwrap_or(0);
        Ok(Founder { key: get("founder_key")?, name: get("founder_name")?, at: Timestamp::from_millis(at) })
    }

    /// The code a hub joined by hand adopts this coalition with, without a secret (what
    /// [`Hub::admit`] returns carries one).
    pub fn founder_code(&self) -> Result<FounderCode> {
        Ok(FounderCode { founder: self.founder()?, welcome: None })
    }

    /// Adopts a coalition by its code (`aidmesh adopt-founder`): its founder, as
    /// [`Hub::adopt_founder`] does, and the coalition secret if the code carries one.
    pub fn adopt(&mut self, code: &FounderCode) -> Result<()> {
        if code.welcome.as_ref().is_some_and(|w| Keyring::welcome(&self.identity, w).is_none()) {
            let why = format!(
                "its secret does not open for this hub (a code made for another hub, or mistyped): an admin \
                 admits this one with aidmesh admit {}",
                self.public_key()
            );
            return Err(Error::invalid("founder code", vec![FieldError::new("code", why)]));
        }
        self.adopt_with(&code.founder, code.welcome.as_ref().and_then(welcome_hex).unwrap_or_default())
    }

    /// Takes another coalition's founder as this hub's trust anchor: what joining does once the
    /// invite is confirmed. The hub's own records stay; membership is evaluated from `founder`.
    pub fn adopt_founder(&mut self, founder: &Founder) -> Result<()> {
        self.adopt_with(founder, String::new())
    }

    fn adopt_with(&mut self, founder: &Founder, welcome: String) -> Result<()> {
        if !key_ok(&founder.key) {
            return Err(Error::invalid("founder", vec![FieldError::new("key", "not an Ed25519 public key in hex")]));
        }
        self.store.write(|tx| {
            // This hub's own coalition key is not the new coalition's: it comes with the invite.
            tx.set_meta("coalition_key", "")?;
            // Nor is its authority log: the new coalition's comes from its founding hub.
            tx.clear_authority()?;
            tx.set_meta("coalition_id", "")?;
            tx.set_meta("founder_key", &founder.key)?;
            tx.set_meta("welcome", &welcome)?;
            tx.set_meta("founder_name", &founder.name)?;
            tx.set_meta("founded_at", &founder.at.millis().to_string())
        })?;
        // Entries of the coalition left behind, queued for peers, are not sent to the new one.
        self.forget_authority();
        Ok(())
    }

    /// The current member hubs: the hubs the authority log admits and has not revoked. A
    /// coalition from before the authority log reads its old membership records until its
    /// founding hub's founding entry arrives.
    pub fn members(&self) -> Result<Members> {
        let st = self.resolved()?;
        if st.coalition_id().is_none() {
            drop(st);
            return self.legacy_members();
        }
        let mut m = Members::default();
        for h in st.hubs.values() {
            if let Some(id) = h.key.fingerprint() {
                let since = Timestamp::from_millis(h.admitted.at);
                m.members
                    .insert(id.clone(), Member { id, key: h.key, name: h.name.clone(), role: Role::Member, since });
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
    /// Returns the code that hub adopts the coalition with, if it joins by hand: it carries the
    /// coalition secret sealed for that hub alone.
    pub fn admit(&mut self, public_key: &str, name: &str) -> Result<FounderCode> {
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
        let ring = self.keyring()?;
        if ring.is_own() {
            return Err(Error::NotAllowed(
                "this hub holds no secret of the coalition to hand on (it was never handed one): admit from a hub \
                 that syncs with the coalition"
                    .into(),
            ));
        }
        let (secret, after) = ring.hand(ephemeral, &hub);
        let welcome = Some(secret.clone());
        self.sign_authority(AuthBody::AdmitHub { hub, name: name.trim().to_string(), secret: Some(secret), after })?;
        Ok(FounderCode { founder: self.founder()?, welcome })
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
        let body = keyring::revoke(&*self.resolved()?, key, ephemeral, fresh).unwrap_or_else(|n| {
            tracing::warn!(
                remaining = n,
                "more hubs remain than one revocation seals a new coalition secret for ({MAX_SEALED}): \
                 revoked without turning the secret over"
            );
            AuthBody::revoke_hub(key)
        });
        self.sign_authority(body).map(|_| ())
    }

    /// Turns the coalition secret over without revoking anyone: a fresh secret sealed for every
    /// member hub. For a coalition still on the secret computable from its founding hub's key
    /// (founded before the founding entry sealed a start), or a secret that leaked by itself
    /// (never for a laptop copied or seized: it holds its hub's key and opens its own slot; revoke
    /// that hub). Whoever holds only the old secret passes no hub that has this entry. Returns
    /// how many hubs it was sealed for.
    pub fn rotate_secret(&mut self) -> Result<usize> {
        if self.keyring()?.is_own() {
            return Err(Error::NotAllowed(
                "this hub holds no secret of the coalition (it was never handed one), so it could not follow its \
                 own rotation: rotate from a hub that syncs with the coalition"
                    .into(),
            ));
        }
        let (mut ephemeral, mut fresh) = ([0u8; 32], [0u8; 32]);
        self.rng.fill_bytes(&mut ephemeral);
        self.rng.fill_bytes(&mut fresh);
        let body = keyring::rotate(&*self.resolved()?, ephemeral, fresh).map_err(|n| match n {
            0 => Error::NotAllowed("the coalition has no member hub to turn its secret over for".into()),
            n => Error::NotAllowed(format!(
                "the coalition has {n} member hubs; one entry seals a new secret for at most {MAX_SEALED}"
            )),
        })?;
        let hubs = match &body {
            AuthBody::Rotate { rekey } => rekey.slots.len(),
            _ => 0,
        };
        self.sign_authority(body)?;
        Ok(hubs)
    }

    /// The coalition secret's chain as far as this hub can follow it: what it proves to peers
    /// before either shows its key, and what keys its adverts (see `aidmesh_mesh::keyring`).
    /// A hub joined by hand that does not hold the log yet uses the secret its code carried.
    pub(crate) fn keyring(&self) -> Result<Keyring> {
        let founder = aidmesh_mesh::hex::decode(&self.founder()?.key)
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .unwrap_or_else(|| self.identity.public().to_bytes());
        // Until the log hands it one (a log from before its admission, say, hands it none).
        let st = self.resolved()?;
        let ring = Keyring::of(&founder, &st, &self.identity);
        if st.coalition_id().is_none() || ring.is_own() {
            let welcome = self.store.meta("welcome")?.and_then(|w| parse_welcome(&w));
            if let Some(ring) = welcome.and_then(|w| Keyring::welcome(&self.identity, &w)) {
                return Ok(ring);
            }
        }
        Ok(ring)
    }
}
