//! Sealing 32 secret bytes for a set of hubs, anonymously: what lets a USB bundle's content key
//! and a revocation's fresh coalition secret reach the member hubs, and no one else.
//!
//! One ephemeral X25519 key per sealing. Each *slot* is the 32 bytes sealed for one hub:
//! XChaCha20-Poly1305 (zero nonce: the key is used once) under SHA-256 of a domain, both public
//! keys and the X25519 agreement between the ephemeral key and the hub's key (its Ed25519 key
//! in Montgomery form). Slots name no one and are sorted; a hub finds its own by trying each.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use curve25519_dalek::montgomery::MontgomeryPoint;
use sha2::{Digest, Sha256};

use crate::identity::{x25519_public, Identity};

/// The bytes of one slot: 32 sealed bytes and their tag.
pub const SLOT: usize = 48;

/// The key that seals a slot for the hub with X25519 public key `hub`.
fn slot_key(domain: &[u8], ephemeral_pub: &[u8; 32], hub: &[u8; 32], shared: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(domain);
    h.update(ephemeral_pub);
    h.update(hub);
    h.update(shared);
    h.finalize().into()
}

/// Seals `secret` for each of `recipients` (Ed25519 public keys; anything not a key is
/// skipped, and so is any key after the first `max`), with the caller's fresh `ephemeral`
/// secret. Returns the ephemeral public key and the slots, sorted.
pub fn seal(
    domain: &[u8],
    ephemeral: [u8; 32],
    recipients: &[[u8; 32]],
    max: usize,
    secret: &[u8; 32],
) -> ([u8; 32], Vec<[u8; SLOT]>) {
    let eph_pub = MontgomeryPoint::mul_base_clamped(ephemeral).to_bytes();
    let hubs: std::collections::BTreeSet<[u8; 32]> = recipients.iter().filter_map(x25519_public).collect();
    let mut slots: Vec<[u8; SLOT]> = hubs
        .into_iter()
        .take(max)
        .filter_map(|hub| {
            let shared = MontgomeryPoint(hub).mul_clamped(ephemeral).to_bytes();
            let cipher = XChaCha20Poly1305::new((&slot_key(domain, &eph_pub, &hub, &shared)).into());
            cipher.encrypt(XNonce::from_slice(&[0; 24]), &secret[..]).ok()?.try_into().ok()
        })
        .collect();
    // In an order that says nothing of who is who.
    slots.sort_unstable();
    (eph_pub, slots)
}

/// The 32 bytes sealed for `identity` in one of `slots`, if one is for it.
pub fn open<'a>(
    domain: &[u8],
    identity: &Identity,
    ephemeral_pub: &[u8; 32],
    slots: impl IntoIterator<Item = &'a [u8]>,
) -> Option<[u8; 32]> {
    let ours = x25519_public(identity.public().as_bytes())?;
    let shared = MontgomeryPoint(*ephemeral_pub).mul_clamped(identity.x25519_secret()).to_bytes();
    let cipher = XChaCha20Poly1305::new((&slot_key(domain, ephemeral_pub, &ours, &shared)).into());
    slots
        .into_iter()
        .find_map(|slot| cipher.decrypt(XNonce::from_slice(&[0; 24]), slot).ok())
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn each_recipient_opens_its_slot_and_no_one_else_does() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let hubs: Vec<Identity> = (0..3).map(|_| Identity::generate(&mut rng)).collect();
        let outsider = Identity::generate(&mut rng);
        let keys: Vec<[u8; 32]> = hubs.iter().map(|h| h.public().to_bytes()).collect();
        let (eph, slots) = seal(b"test\n", [9; 32], &keys, 16, &[5; 32]);
        assert_eq!(slots.len(), 3);
        for h in &hubs {
            assert_eq!(open(b"test\n", h, &eph, slots.iter().map(|s| &s[..])), Some([5; 32]));
            assert_eq!(open(b"other\n", h, &eph, slots.iter().map(|s| &s[..])), None, "domains keep uses apart");
        }
        assert_eq!(open(b"test\n", &outsider, &eph, slots.iter().map(|s| &s[..])), None);
        let (_, capped) = seal(b"test\n", [9; 32], &keys, 2, &[5; 32]);
        assert_eq!(capped.len(), 2);
    }
}
