//! People at this hub: each coordinator's own signing key, kept in the store and unlocked by
//! the person, and who is acting now.
//!
//! A person's key is made the first time they use a hub. With a PIN (or a passphrase of their
//! own) it is sealed under a key stretched from it with Argon2id, so that another coordinator
//! who opens the same hub cannot sign as them. Without one it is protected by the store's
//! encryption alone: whoever opens the hub may act as that person, which is what a laptop with
//! one coordinator wants. Authority comes only from these keys: the hub signs authority entries
//! as the unlocked person, never as a typed name.

use aidmesh_mesh::authority::Key;
use aidmesh_mesh::hex;
use aidmesh_mesh::Identity;
use aidmesh_model::FieldError;
use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

use crate::{Error, Hub, Result};

/// The shortest PIN accepted.
pub const MIN_PIN_CHARS: usize = 4;

/// A person whose key this hub keeps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct LocalPerson {
    pub handle: String,
    /// Public key, hex.
    pub key: String,
    /// The key's fingerprint, as people compare it.
    pub fingerprint: String,
    /// Whether a PIN guards the key.
    pub pin: bool,
}

#[derive(Clone, Serialize, Deserialize)]
struct Kept {
    handle: String,
    key: String,
    /// The secret key in hex, when no PIN guards it (the store's encryption does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed: Option<Sealed>,
}

#[derive(Clone, Serialize, Deserialize)]
struct Sealed {
    salt: String,
    nonce: String,
    ciphertext: String,
}

impl Kept {
    fn view(&self) -> LocalPerson {
        let fingerprint = Key::parse(&self.key).ok().and_then(|k| k.fingerprint()).map(|f| f.to_string());
        LocalPerson {
            handle: self.handle.clone(),
            key: self.key.clone(),
            fingerprint: fingerprint.unwrap_or_default(),
            pin: self.sealed.is_some(),
        }
    }
}

/// The key a PIN stretches to: Argon2id, 19 MiB, two passes (OWASP's minimum; about 50 ms here).
fn stretch(pin: &str, salt: &[u8]) -> Result<[u8; 32]> {
    let params = Params::new(19 * 1024, 2, 1, Some(32)).map_err(|e| Error::Corrupt(e.to_string()))?;
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(pin.as_bytes(), salt, &mut out)
        .map_err(|e| Error::Corrupt(e.to_string()))?;
    Ok(out)
}

fn aad(key: &str) -> Vec<u8> {
    format!("aidmesh person v1\n{key}").into_bytes()
}

pub(crate) fn check_pin(pin: &str) -> Result<()> {
    if pin.chars().count() < MIN_PIN_CHARS {
        return Err(Error::invalid(
            "person",
            vec![FieldError::new("pin", format!("must be at least {MIN_PIN_CHARS} characters"))],
        ));
    }
    Ok(())
}

impl Hub {
    fn kept_people(&self) -> Result<Vec<Kept>> {
        match self.store.meta("people")? {
            Some(j) => serde_json::from_str(&j).map_err(|e| Error::Corrupt(format!("the people kept here: {e}"))),
            None => Ok(Vec::new()),
        }
    }

    /// The people whose keys this hub keeps.
    pub fn local_people(&self) -> Result<Vec<LocalPerson>> {
        Ok(self.kept_people()?.iter().map(Kept::view).collect())
    }

    /// Makes a key for a person new to this hub, guarded by `pin` if given. They belong to the
    /// coalition once an admin adds them ([`Hub::add_person`]).
    pub fn make_person(&mut self, handle: &str, pin: Option<&str>) -> Result<LocalPerson> {
        let handle = handle.trim();
        let mut errs = Vec::new();
        if handle.is_empty() || handle.chars().count() > aidmesh_mesh::authority::MAX_NAME {
            errs.push(FieldError::new("handle", "is required (at most 80 characters)"));
        }
        let mut kept = self.kept_people()?;
        if kept.iter().any(|k| k.handle == handle) {
            errs.push(FieldError::new("handle", format!("{handle} already has a key at this hub")));
        }
        if !errs.is_empty() {
            return Err(Error::invalid("person", errs));
        }
        if let Some(pin) = pin {
            check_pin(pin)?;
        }
        let identity = Identity::generate(&mut self.rng);
        let key = hex::encode(identity.public().as_bytes());
        let mut person = Kept { handle: handle.to_string(), key: key.clone(), secret: None, sealed: None };
        match pin {
            Some(pin) => {
                let salt: [u8; 16] = self.random();
                let nonce: [u8; 24] = self.random();
                let k = stretch(pin, &salt)?;
                let ct = XChaCha20Poly1305::new(&k.into())
                    .encrypt(XNonce::from_slice(&nonce), Payload { msg: &identity.secret(), aad: &aad(&key) })
                    .map_err(|_| Error::Corrupt("sealing a key failed".into()))?;
                person.sealed =
                    Some(Sealed { salt: hex::encode(salt), nonce: hex::encode(nonce), ciphertext: hex::encode(&ct) });
            }
            None => person.secret = Some(hex::encode(identity.secret())),
        }
        let view = person.view();
        kept.push(person);
        let json = serde_json::to_string(&kept).map_err(|e| Error::Corrupt(e.to_string()))?;
        self.store.write(|tx| tx.set_meta("people", &json))?;
        Ok(view)
    }

    /// Unlocks a person kept here (by handle or key) with their PIN: from then on this hub
    /// signs authority work as them, until [`Hub::lock_person`] or another unlock.
    pub fn unlock(&mut self, who: &str, pin: Option<&str>) -> Result<LocalPerson> {
        let kept = self.kept_people()?;
        let p = kept
            .iter()
            .find(|k| k.handle == who.trim() || k.key == who.trim())
            .ok_or_else(|| Error::NotFound(format!("person {who:?} at this hub (aidmesh person new makes a key)")))?;
        let secret = match (&p.secret, &p.sealed, pin) {
            (Some(s), _, _) => hex::decode(s),
            (None, Some(sealed), Some(pin)) => {
                let salt = hex::decode(&sealed.salt).unwrap_or_default();
                let nonce = hex::decode(&sealed.nonce).filter(|n| n.len() == 24).unwrap_or_else(|| vec![0; 24]);
                let ct = hex::decode(&sealed.ciphertext).unwrap_or_default();
                let k = stretch(pin, &salt)?;
                XChaCha20Poly1305::new(&k.into())
                    .decrypt(XNonce::from_slice(&nonce), Payload { msg: &ct, aad: &aad(&p.key) })
                    .ok()
            }
            (None, Some(_), None) => return Err(Error::WrongPin(p.handle.clone())),
            (None, None, _) => return Err(Error::Corrupt(format!("{}'s key is missing", p.handle))),
        };
        let secret: [u8; 32] =
            secret.and_then(|s| s.try_into().ok()).ok_or_else(|| Error::WrongPin(p.handle.clone()))?;
        let identity = Identity::from_secret(&secret);
        if hex::encode(identity.public().as_bytes()) != p.key {
            return Err(Error::WrongPin(p.handle.clone()));
        }
        self.acting = Some((identity, p.view()));
        Ok(p.view())
    }

    /// Unlocks the person whose handle this hub was opened with, if no PIN guards their key:
    /// what opening does, so that one coordinator on their own laptop needs nothing more.
    pub(crate) fn unlock_default(&mut self) -> Result<()> {
        let handle = self.handle.clone();
        let open = self.kept_people()?.into_iter().find(|k| k.handle == handle && k.sealed.is_none());
        if let Some(p) = open {
            self.unlock(&p.key, None)?;
        }
        Ok(())
    }

    /// Nobody acts: authority work needs an unlock first.
    pub fn lock_person(&mut self) {
        self.acting = None;
    }

    /// The person this hub signs authority work as, if one is unlocked.
    pub fn acting(&self) -> Option<&LocalPerson> {
        self.acting.as_ref().map(|(_, p)| p)
    }

    /// The unlocked person's key, or an error that says what to do.
    pub(crate) fn acting_identity(&self) -> Result<&Identity> {
        self.acting.as_ref().map(|(i, _)| i).ok_or_else(|| {
            Error::NotAllowed("no one is unlocked at this hub: unlock yourself with your PIN first".into())
        })
    }
}
