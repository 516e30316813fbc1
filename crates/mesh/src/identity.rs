//! Hub identity: an Ed25519 key pair, and the hub id people compare aloud.
//!
//! A hub id is the first 20 bytes of SHA-256 of the public key, in lowercase base32
//! (RFC 4648 alphabet), followed by two checksum characters, shown in groups of four:
//! `k3vq-7hxa-...`. A mistyped id fails its checksum instead of naming another hub.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
const ID_BYTES: usize = 20;

/// Why text is not a hub id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{input:?} is not a hub id: expected 34 letters and digits, got {got}")]
    Length { input: String, got: usize },
    #[error("{input:?}: {letter:?} is not a base32 letter")]
    Letter { input: String, letter: char },
    #[error("{0:?}: the checksum does not match: a character is mistyped")]
    Checksum(String),
}

/// A hub's public identity: its fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct HubId([u8; ID_BYTES]);

impl HubId {
    /// The hub id of a public key.
    pub fn of(key: &VerifyingKey) -> HubId {
        let h = Sha256::digest(key.as_bytes());
        let mut b = [0u8; ID_BYTES];
        b.copy_from_slice(&h[..ID_BYTES]);
        HubId(b)
    }

    /// The hub id of a public key given as 32 raw bytes, if they are a valid Ed25519 key.
    pub fn of_bytes(key: &[u8; 32]) -> Option<HubId> {
        VerifyingKey::from_bytes(key).ok().map(|k| HubId::of(&k))
    }

    /// The 20 fingerprint bytes.
    pub fn bytes(&self) -> [u8; ID_BYTES] {
        self.0
    }

    pub fn from_bytes(b: [u8; ID_BYTES]) -> HubId {
        HubId(b)
    }

    /// Parses an id as printed or typed: groups, dashes, spaces and case do not matter.
    pub fn parse(s: &str) -> Result<HubId, IdError> {
        let clean: String = s.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect();
        if clean.len() != 34 {
            return Err(IdError::Length { input: s.to_string(), got: clean.len() });
        }
        let mut bits: u64 = 0;
        let mut nbits = 0;
        let mut out = Vec::with_capacity(ID_BYTES);
        for c in clean[..32].bytes() {
            let v = ALPHABET
                .iter()
                .position(|a| *a == c)
                .ok_or_else(|| IdError::Letter { input: s.to_string(), letter: c as char })?;
            bits = (bits << 5) | v as u64;
            nbits += 5;
            if nbits >= 8 {
                nbits -= 8;
                out.push((bits >> nbits) as u8);
            }
        }
        let mut b = [0u8; ID_BYTES];
        b.copy_from_slice(&out);
        let id = HubId(b);
        if id.checksum() != clean[32..] {
            return Err(IdError::Checksum(s.to_string()));
        }
        Ok(id)
    }

    /// The 32 base32 characters of the fingerprint.
    fn body(&self) -> String {
        let mut s = String::with_capacity(32);
        let mut bits: u64 = 0;
        let mut nbits = 0;
        for b in self.0 {
            bits = (bits << 8) | b as u64;
            nbits += 8;
            while nbits >= 5 {
                nbits -= 5;
                s.push(ALPHABET[((bits >> nbits) & 31) as usize] as char);
            }
        }
        s
    }

    fn checksum(&self) -> String {
        let h = Sha256::digest(self.0);
        [ALPHABET[(h[0] & 31) as usize] as char, ALPHABET[(h[1] & 31) as usize] as char].iter().collect()
    }

    /// The id as people read it: groups of four.
    pub fn grouped(&self) -> String {
        let s = format!("{}{}", self.body(), self.checksum());
        s.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-")
    }

    /// The first group, enough to tell hubs apart in a list.
    pub fn short(&self) -> String {
        self.body()[..8].to_string()
    }
}

impl std::fmt::Display for HubId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.grouped())
    }
}

impl From<HubId> for String {
    fn from(h: HubId) -> String {
        h.grouped()
    }
}

impl TryFrom<String> for HubId {
    type Error = IdError;
    fn try_from(s: String) -> Result<HubId, IdError> {
        HubId::parse(&s)
    }
}

/// A hub's key pair.
pub struct Identity {
    key: SigningKey,
}

impl Identity {
    /// A new identity from the caller's random source.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Identity {
        Identity { key: SigningKey::generate(rng) }
    }

    /// Restores an identity from its 32 secret bytes.
    pub fn from_secret(bytes: &[u8; 32]) -> Identity {
        Identity { key: SigningKey::from_bytes(bytes) }
    }

    /// The secret bytes, to keep in the encrypted store.
    pub fn secret(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub fn public(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    pub fn id(&self) -> HubId {
        HubId::of(&self.public())
    }

    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }

    /// This key's scalar, for X25519: what opens what was sealed for this hub's public key in
    /// Montgomery form ([`x25519_public`]).
    pub fn x25519_secret(&self) -> [u8; 32] {
        self.key.to_scalar_bytes()
    }
}

/// The X25519 public key (Montgomery form) of an Ed25519 public key; `None` for bytes that are
/// not a key, or a weak one.
pub fn x25519_public(ed: &[u8; 32]) -> Option<[u8; 32]> {
    VerifyingKey::from_bytes(ed).ok().filter(|k| !k.is_weak()).map(|k| k.to_montgomery().to_bytes())
}

/// Whether 32 bytes are a valid Ed25519 public key.
pub fn public_key_ok(k: &[u8; 32]) -> bool {
    VerifyingKey::from_bytes(k).is_ok()
}

/// Checks a signature the strict way (RFC 8032 with no malleable or small-order keys): what
/// the authority log uses, so that one entry has one valid signature.
pub fn verify_strict(public: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    match VerifyingKey::from_bytes(public) {
        Ok(k) => !k.is_weak() && k.verify_strict(msg, &Signature::from_bytes(sig)).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn ids_print_in_groups_and_catch_typos() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let me = Identity::generate(&mut rng);
        let id = me.id();
        let shown = id.to_string();
        assert_eq!(shown.len(), 34 + 8, "{shown}");
        assert_eq!(HubId::parse(&shown).unwrap(), id);
        assert_eq!(HubId::parse(&shown.to_uppercase().replace('-', " ")).unwrap(), id);
        // Change one character: the checksum catches it.
        let mut typo: Vec<char> = shown.chars().collect();
        typo[3] = if typo[3] == 'a' { 'b' } else { 'a' };
        let typo: String = typo.into_iter().collect();
        assert!(matches!(HubId::parse(&typo), Err(IdError::Checksum(_))));
        assert!(matches!(HubId::parse("abc"), Err(IdError::Length { got: 3, .. })));
        assert!(HubId::parse("short").is_err());
        let again = Identity::from_secret(&me.secret());
        assert_eq!(again.id(), id);
        let sig = me.sign(b"hello");
        assert!(verify_strict(me.public().as_bytes(), b"hello", &sig));
        assert!(!verify_strict(me.public().as_bytes(), b"hellO", &sig));
    }
}
