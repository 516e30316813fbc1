//! Who a hub is, told only to a member: the exchange inside TLS that comes before any sync
//! frame. Sans-IO: the driver (`net`) moves the bytes.
//!
//! TLS runs with throwaway certificates (a fresh key each run, no name): it gives an encrypted
//! channel and a session-unique exporter, nothing about either hub. Then, bound to that
//! exporter so that nothing can be replayed or relayed into another session:
//! 1. the dialler sends a *hello*: one HMAC of the exporter per secret of its keyring
//!    ([`crate::keyring`]), so it proves it holds the coalition secret without saying who it is;
//! 2. the listener checks it against its current secret. If none matches, it closes: the
//!    dialler learnt nothing. Otherwise it sends its *proof*: its permanent key and its
//!    signature of the exporter;
//! 3. the dialler checks that key is a member's (else it closes, having shown no key), then
//!    sends its own proof, which the listener checks the same way.
//!
//! An outsider that dials learns nothing that tells one hub or coalition from another; an
//! outsider that listens (a fake hub at a known address) learns nothing either; a revoked hub
//! holds only secrets older than the current one, so an up-to-date listener shows it nothing.

use crate::identity::{verify_strict, HubId, Identity};
use crate::keyring::Keyring;

/// The most proofs a hello may carry.
pub const MAX_HELLO: usize = crate::keyring::KEEP;
/// Bytes of a proof: a key and a signature.
pub const PROOF: usize = 32 + 64;
/// The TLS exporter's label.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-aidmesh-handshake-v1";

/// Which end of the connection a proof is from: a proof from one end never passes as the
/// other's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Listener,
    Dialler,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("the peer does not hold this coalition's current secret")]
    NoSecret,
    #[error("the hello is malformed: {0}")]
    Malformed(String),
    #[error("the peer's proof of its key does not hold")]
    BadProof,
    #[error("hub {0} is not a member")]
    NotMember(HubId),
}

/// A hello: a count byte and the proofs.
pub fn hello(keyring: &Keyring, exporter: &[u8; 32]) -> Vec<u8> {
    let macs = keyring.hello(exporter);
    let mut out = vec![macs.len().min(MAX_HELLO) as u8];
    macs.iter().take(MAX_HELLO).for_each(|m| out.extend(m));
    out
}

/// How many proof bytes follow a hello's count byte; a count of 0 or over [`MAX_HELLO`] is
/// refused before anything more is read.
pub fn hello_len(count: u8) -> Result<usize, HandshakeError> {
    match count as usize {
        n @ 1..=MAX_HELLO => Ok(n * 32),
        n => Err(HandshakeError::Malformed(format!("{n} proofs (1 to {MAX_HELLO})"))),
    }
}

/// Checks a hello's proofs (the bytes after its count) against the listener's current secret.
pub fn check_hello(keyring: &Keyring, exporter: &[u8; 32], proofs: &[u8]) -> Result<(), HandshakeError> {
    let macs: Vec<[u8; 32]> = proofs.chunks_exact(32).map(|c| c.try_into().expect("32 bytes")).collect();
    if macs.is_empty() || macs.len() * 32 != proofs.len() {
        return Err(HandshakeError::Malformed(format!("{} bytes of proofs", proofs.len())));
    }
    if keyring.accepts(exporter, &macs) {
        Ok(())
    } else {
        Err(HandshakeError::NoSecret)
    }
}

fn proof_bytes(side: Side, exporter: &[u8; 32]) -> Vec<u8> {
    let mut out = match side {
        Side::Listener => b"aidmesh handshake v1\nlistener\n".to_vec(),
        Side::Dialler => b"aidmesh handshake v1\ndialler\n".to_vec(),
    };
    out.extend(exporter);
    out
}

/// This hub's proof, as `side`: its key and its signature of the session.
pub fn proof(identity: &Identity, side: Side, exporter: &[u8; 32]) -> [u8; PROOF] {
    let mut out = [0u8; PROOF];
    out[..32].copy_from_slice(identity.public().as_bytes());
    out[32..].copy_from_slice(&identity.sign(&proof_bytes(side, exporter)));
    out
}

/// The hub a proof from `side` shows, if its signature holds and `member` accepts it.
pub fn check_proof(
    proof: &[u8; PROOF],
    side: Side,
    exporter: &[u8; 32],
    member: impl Fn(&HubId) -> bool,
) -> Result<HubId, HandshakeError> {
    let key: [u8; 32] = proof[..32].try_into().expect("32 bytes");
    let sig: [u8; 64] = proof[32..].try_into().expect("64 bytes");
    let id = HubId::of_bytes(&key).ok_or(HandshakeError::BadProof)?;
    if !verify_strict(&key, &proof_bytes(side, exporter), &sig) {
        return Err(HandshakeError::BadProof);
    }
    if !member(&id) {
        return Err(HandshakeError::NotMember(id));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    fn hub(seed: u64) -> Identity {
        Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(seed))
    }

    #[test]
    fn a_hello_passes_only_with_the_current_secret_of_the_same_session() {
        let ring = Keyring::base(&[1; 32]);
        let other = Keyring::base(&[2; 32]);
        let h = hello(&ring, &[7; 32]);
        assert_eq!(hello_len(h[0]).unwrap(), h.len() - 1);
        assert_eq!(check_hello(&ring, &[7; 32], &h[1..]), Ok(()));
        assert_eq!(check_hello(&ring, &[8; 32], &h[1..]), Err(HandshakeError::NoSecret), "another session");
        assert_eq!(check_hello(&other, &[7; 32], &h[1..]), Err(HandshakeError::NoSecret), "another coalition");
        assert!(matches!(check_hello(&ring, &[7; 32], &h[1..20]), Err(HandshakeError::Malformed(_))));
        assert!(hello_len(0).is_err() && hello_len(MAX_HELLO as u8 + 1).is_err());
    }

    #[test]
    fn a_proof_holds_for_its_side_session_and_members_only() {
        let (a, b) = (hub(1), hub(2));
        let p = proof(&a, Side::Listener, &[7; 32]);
        let all = |_: &HubId| true;
        assert_eq!(check_proof(&p, Side::Listener, &[7; 32], all), Ok(a.id()));
        assert_eq!(check_proof(&p, Side::Dialler, &[7; 32], all), Err(HandshakeError::BadProof), "other side");
        assert_eq!(check_proof(&p, Side::Listener, &[8; 32], all), Err(HandshakeError::BadProof), "other session");
        assert_eq!(
            check_proof(&p, Side::Listener, &[7; 32], |id| *id == b.id()),
            Err(HandshakeError::NotMember(a.id()))
        );
        let mut claimed = p;
        claimed[..32].copy_from_slice(b.public().as_bytes());
        assert_eq!(
            check_proof(&claimed, Side::Listener, &[7; 32], all),
            Err(HandshakeError::BadProof),
            "b's key, a's signature"
        );
    }
}
