//! Who a hub is, told only to a member: the exchange inside TLS that comes before any sync
//! frame. Sans-IO: the driver (`net`) moves the bytes.
//!
//! TLS runs with throwaway certificates (a fresh key each connection, no name): it gives an
//! encrypted channel and a session-unique exporter, nothing about either hub. Then, bound to that
//! exporter so that nothing can be replayed or relayed into another session:
//! 1. the dialler sends a *hello*: one HMAC of the exporter per secret of its keyring
//!    ([`crate::keyring`]), so it proves it holds the coalition secret without saying who it
//!    is, and its own proof (its key and its signature of the exporter) sealed under its
//!    current secret, which only holders of that secret can read;
//! 2. the listener lets it in if one of the HMACs is made with the listener's current secret
//!    (the dialler is as up to date as the listener, or more), or if the sealed proof opens
//!    under a secret the listener keeps and shows a hub that is a member by the listener's log
//!    (the dialler has not heard of a revocation yet: a hub revoked since holds that secret
//!    too, but its proof shows it is revoked). Otherwise it closes: the dialler learnt nothing.
//!    It then sends its *proof*: its key and its signature of the exporter;
//! 3. the dialler checks that key is a member's (else it closes, having shown its key only to
//!    a holder of its current secret), then sends its proof in the clear, which the listener
//!    checks the same way.
//!
//! An outsider that dials learns nothing that tells one hub or coalition from another; an
//! outsider that listens (a fake hub at a known address) learns nothing either; a revoked hub
//! holds only secrets older than the current one and its proof names it, so an up-to-date
//! listener shows it nothing, and an up-to-date dialler seals its proof out of its reach.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::identity::{verify_strict, HubId, Identity};
use crate::keyring::Keyring;

/// The most proofs a hello may carry.
pub const MAX_HELLO: usize = crate::keyring::KEEP;
/// Bytes of a proof: a key and a signature.
pub const PROOF: usize = 32 + 64;
/// Bytes of the dialler's proof as a hello seals it.
pub const SEALED_PROOF: usize = PROOF + crate::keyring::SEALED_OVERHEAD;
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
    #[error("the peer holds no secret of this coalition that lets it in")]
    NoSecret,
    #[error("the hello is malformed: {0}")]
    Malformed(String),
    #[error("the peer's proof of its key does not hold")]
    BadProof,
    #[error("hub {0} is not a member")]
    NotMember(HubId),
}

/// A hello: a count byte, the HMACs and `identity`'s proof sealed under the current secret.
/// It always carries [`MAX_HELLO`] HMACs, the ones this hub cannot make (it keeps fewer
/// secrets) filled with bytes no one else can tell from HMACs, so that the count says nothing
/// of how many turnovers the dialler has seen.
pub fn hello(keyring: &Keyring, identity: &Identity, exporter: &[u8; 32]) -> Vec<u8> {
    let macs = keyring.hello(exporter);
    let mut out = vec![MAX_HELLO as u8];
    macs.iter().take(MAX_HELLO).for_each(|m| out.extend(m));
    // An HMAC under a key only this hub holds, over this session and slot: it costs what a
    // real proof costs, so neither its bytes nor its time tell the two apart.
    let key = Sha256::new().chain_update(b"aidmesh hello filler v1\n").chain_update(identity.secret()).finalize();
    for n in macs.len().min(MAX_HELLO)..MAX_HELLO {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("HMAC takes any key length");
        m.update(exporter);
        m.update(&[n as u8]);
        out.extend(m.finalize().into_bytes());
    }
    out.extend(keyring.sealer(identity).seal(exporter, &proof(identity, Side::Dialler, exporter)));
    out
}

/// How many bytes follow a hello's count byte; a count of 0 or over [`MAX_HELLO`] is refused
/// before anything more is read.
pub fn hello_len(count: u8) -> Result<usize, HandshakeError> {
    match count as usize {
        n @ 1..=MAX_HELLO => Ok(n * 32 + SEALED_PROOF),
        n => Err(HandshakeError::Malformed(format!("{n} proofs (1 to {MAX_HELLO})"))),
    }
}

/// Checks a hello (the bytes after its count) against the listener's keyring: whether to let
/// the dialler in, and show it this hub's proof. `member` is the listener's member check.
pub fn check_hello(
    keyring: &Keyring,
    exporter: &[u8; 32],
    rest: &[u8],
    member: impl Fn(&HubId) -> bool,
) -> Result<(), HandshakeError> {
    let Some(macs_len) = rest.len().checked_sub(SEALED_PROOF).filter(|n| *n > 0 && n % 32 == 0) else {
        return Err(HandshakeError::Malformed(format!("{} bytes after the count", rest.len())));
    };
    let (macs, sealed) = rest.split_at(macs_len);
    let macs: Vec<[u8; 32]> = macs.chunks_exact(32).map(|c| c.try_into().expect("32 bytes")).collect();
    if keyring.accepts(exporter, &macs) {
        return Ok(());
    }
    // A dialler behind this hub: let it in if it shows itself, under a kept secret, as a hub
    // that is still a member.
    let opened = keyring.unseal(exporter, sealed).ok_or(HandshakeError::NoSecret)?;
    let proof: &[u8; PROOF] = opened.as_slice().try_into().map_err(|_| HandshakeError::NoSecret)?;
    check_proof(proof, Side::Dialler, exporter, member).map(|_| ())
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
    fn a_hello_passes_only_with_a_secret_of_the_coalition_in_the_same_session() {
        let ring = Keyring::base(&[1; 32]);
        let other = Keyring::base(&[2; 32]);
        let all = |_: &HubId| true;
        let h = hello(&ring, &hub(1), &[7; 32]);
        assert_eq!(hello_len(h[0]).unwrap(), h.len() - 1);
        // One secret kept, yet as many proofs as the most a hub keeps: the count tells nothing.
        assert_eq!(ring.hello(&[7; 32]).len(), 1);
        assert_eq!(h[0] as usize, MAX_HELLO);
        let fill = |h: &[u8]| h[33..1 + MAX_HELLO * 32].to_vec();
        assert_ne!(fill(&h), fill(&hello(&ring, &hub(2), &[7; 32])), "each hub fills with its own bytes");
        assert_ne!(fill(&h), fill(&hello(&ring, &hub(1), &[8; 32])), "and anew each session");
        assert_eq!(check_hello(&ring, &[7; 32], &h[1..], all), Ok(()));
        assert_eq!(check_hello(&ring, &[8; 32], &h[1..], all), Err(HandshakeError::NoSecret), "another session");
        assert_eq!(check_hello(&other, &[7; 32], &h[1..], all), Err(HandshakeError::NoSecret), "another coalition");
        for cut in [1, 21, 33, 1 + SEALED_PROOF, h.len() - 1] {
            assert!(
                matches!(check_hello(&ring, &[7; 32], &h[1..cut], all), Err(HandshakeError::Malformed(_))),
                "{cut}"
            );
        }
        assert!(hello_len(0).is_err() && hello_len(MAX_HELLO as u8 + 1).is_err());
        // A keyring anyone can compute (from a founding hub's key) seals the proof out of
        // everyone's reach, its own included (keyring tests check a member's reads back).
        let sealed = &h[h.len() - SEALED_PROOF..];
        assert!(ring.unseal(&[7; 32], sealed).is_none() && other.unseal(&[7; 32], sealed).is_none());
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
