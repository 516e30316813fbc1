//! The coalition secret: what a hub proves it holds before any hub shows its key, and what
//! keys the tags of the coalition's mDNS adverts. Sans-IO.
//!
//! It is a chain. It starts from a fresh secret that the founding entry seals for the founding
//! hub alone ([`Body::Found`]'s `secret`, see [`genesis`]): nothing public, not even the
//! founder's key, gives it. (Coalitions founded before the founding entry carried one start
//! from a hash of the founding hub's key, [`Keyring::base`], until their first revocation.)
//! Each revocation that counts turns it over: the hub where an admin revokes seals a fresh
//! 32-byte secret for every hub that remains ([`Body::RevokeHub`]'s `rekey`), and the next
//! secret is SHA-256 of the previous one, the revocation's id and the fresh one. The revoked
//! hub has no slot in its own revocation, so it cannot follow the chain past it; nor can anyone
//! who never held an earlier secret. A hub admitted later is handed the secret of the time,
//! sealed for it alone in its admission ([`Body::AdmitHub`]'s `secret`), and follows the chain
//! from there. An admin who suspects the secret leaked turns it over the same way without
//! revoking anyone ([`Body::Rotate`], sealed for every member hub; see [`rotate`]).
//!
//! Every member that holds the same log computes the same chain, with no exchange and no race:
//! concurrent revocations both count, in the log's order. A keyring keeps the newest
//! [`KEEP`] secrets of the chain, so that a hub that has not yet heard of a revocation and one
//! that has still find and reach each other, whichever dials (see [`crate::handshake`]).
//!
//! Revocations written before revocations carried a fresh secret do not turn it over.
//!
//! Slots name no one, so no hub can check another's. A turnover therefore commits to its fresh
//! secret (a hash of it and the ephemeral key, [`commitment`]): a hub whose slot is missing, or
//! opens to another secret than the one committed to (an admin who sealed garbage, or different
//! secrets for different hubs, to split them), knows it was left out ([`Keyring::stranded`]) and
//! its people are told, naming the entry. Turnovers written before commitments carry none and
//! still count (the door cannot tell them from new ones): of those, only a missing slot is
//! noticed. A member hub admitted with a secret it cannot open is told the same way.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::authority::{Body, Commit, Ephemeral, Id, Key, Sealed, Slot, State, MAX_SEALED};
use crate::identity::Identity;

/// How many secrets of the chain a keyring keeps.
pub const KEEP: usize = 4;
/// Bytes of an advert's tag.
pub const TAG: usize = 12;
const DOMAIN: &[u8] = b"aidmesh coalition secret v1\n";
const REKEY: &[u8] = b"aidmesh rekey v1\n";
const ADMIT: &[u8] = b"aidmesh admit v1\n";
const GENESIS: &[u8] = b"aidmesh genesis v1\n";
const HELLO: &[u8] = b"aidmesh hello v1\n";
const COMMIT: &[u8] = b"aidmesh turnover commitment v1\n";
const SEALED_HELLO: &[u8] = b"aidmesh sealed hello v1\n";
/// Bytes of a proof sealed under a secret: the proof and its tag.
pub const SEALED_OVERHEAD: usize = 16;

/// One secret of the chain.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Secret([u8; 32]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    fn mac(&self, domain: &[u8], msg: &[u8]) -> Hmac<Sha256> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        m.update(domain);
        m.update(msg);
        m
    }

    /// The tag of an advert with this `nonce`.
    pub fn tag(&self, nonce: &[u8]) -> [u8; TAG] {
        let out = self.mac(b"aidmesh mdns v2\n", nonce).finalize().into_bytes();
        out[..TAG].try_into().expect("TAG bytes")
    }

    /// What a dialler sends to prove it holds this secret, bound to one TLS session.
    pub fn hello(&self, exporter: &[u8; 32]) -> [u8; 32] {
        self.mac(HELLO, exporter).finalize().into_bytes().into()
    }

    /// Whether `mac` is [`Secret::hello`] for this session (in constant time).
    fn opens(&self, exporter: &[u8; 32], mac: &[u8; 32]) -> bool {
        self.mac(HELLO, exporter).verify_slice(mac).is_ok()
    }

    /// The key that seals a dialler's proof for holders of this secret, in one TLS session
    /// only (so a zero nonce never repeats under one key).
    fn cipher(&self, exporter: &[u8; 32]) -> XChaCha20Poly1305 {
        let key: [u8; 32] = self.mac(SEALED_HELLO, exporter).finalize().into_bytes().into();
        XChaCha20Poly1305::new(&key.into())
    }

    /// `proof` sealed so that only holders of this secret read it, in this session.
    pub fn seal(&self, exporter: &[u8; 32], proof: &[u8]) -> Vec<u8> {
        self.cipher(exporter).encrypt(&XNonce::default(), proof).expect("sealing a proof cannot fail")
    }

    /// What [`Secret::seal`] sealed under this secret in this session, if it was.
    fn unseal(&self, exporter: &[u8; 32], sealed: &[u8]) -> Option<Vec<u8>> {
        self.cipher(exporter).decrypt(&XNonce::default(), sealed).ok()
    }
}

/// Why a hub could not follow a turnover it was a member for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stranded {
    /// No slot of the turnover opened for it.
    NoSlot,
    /// Its slot opened to another secret than the one the turnover commits to.
    OtherSecret,
    /// It is a member, and its admission handed it no secret it can open.
    NotHanded,
}

impl std::fmt::Display for Stranded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stranded::NoSlot => "it sealed the new secret for this hub in no slot",
            Stranded::OtherSecret => "what it sealed for this hub is not the secret it commits to",
            Stranded::NotHanded => "it handed this hub no secret it can open",
        })
    }
}

/// The newest secrets of the chain a hub can follow, each with the revocation after which it
/// holds (`None`: before any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyring {
    /// Oldest first; never empty.
    secrets: Vec<(Option<Id>, Secret)>,
    /// The current secret can be computed from public facts (the founding hub's key).
    public: bool,
    /// This hub holds no secret of its coalition: the one it has is its own.
    own: bool,
    /// The turnover this hub could not follow while a member, and why (see [`Keyring::of`]).
    stranded: Option<(Id, Stranded)>,
}

/// What a turnover commits to: a hash of its ephemeral key and the fresh secret.
pub fn commitment(eph: &Ephemeral, fresh: &[u8; 32]) -> Commit {
    Commit(Sha256::new().chain_update(COMMIT).chain_update(eph.0).chain_update(fresh).finalize().into())
}

/// A secret only `me` can derive, for a hub that holds none of its coalition's.
fn own_secret(me: &Identity) -> Secret {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(me.sign(b"aidmesh no coalition secret v1\n"));
    Secret(h.finalize().into())
}

fn step(prev: &Secret, entry: &Id, fresh: &[u8; 32]) -> Secret {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(prev.0);
    h.update(entry.0);
    h.update(fresh);
    Secret(h.finalize().into())
}

fn open(domain: &[u8], me: &Identity, sealed: &Sealed) -> Option<[u8; 32]> {
    crate::seal::open(domain, me, &sealed.eph.0, sealed.slots.iter().map(|s| &s.0[..]))
}

impl Keyring {
    /// A chain that starts from a hash of the founding hub's key: that of a coalition founded
    /// before its founding entry sealed a fresh start, and of a hub that does not hold its
    /// coalition's log yet. Anyone who holds that key can compute it.
    pub fn base(founder_hub: &[u8; 32]) -> Keyring {
        let mut h = Sha256::new();
        h.update(DOMAIN);
        h.update(founder_hub);
        Keyring { secrets: vec![(None, Secret(h.finalize().into()))], public: true, own: false, stranded: None }
    }

    /// The keyring of hub `me` in the coalition founded by `founder_hub`, whose log resolves to
    /// `state`: the chain followed as far as `me` can open it.
    pub fn of(founder_hub: &[u8; 32], state: &State, me: &Identity) -> Keyring {
        let base = Keyring::base(founder_hub).secrets[0].1;
        let handed = state.hubs.get(&Key::of(me)).and_then(|h| h.handed.as_ref());
        let take_handed = |at: Option<Id>| {
            handed.filter(|(after, _)| *after == at).and_then(|(_, sealed)| open(ADMIT, me, sealed)).map(Secret)
        };
        let start = match &state.genesis {
            Some((found, sealed)) => open(GENESIS, me, sealed).map(|fresh| step(&base, found, &fresh)),
            None => Some(base),
        };
        let mut ring = Keyring { secrets: Vec::new(), public: false, own: false, stranded: None };
        let mut current = take_handed(None).or(start);
        ring.push(None, current);
        let mut stranded = None;
        for r in &state.rekeys {
            current = match (&r.sealed, current) {
                // From before revocations turned the secret over.
                (None, prev) => prev,
                (Some(sealed), Some(prev)) => {
                    let fresh = open(REKEY, me, sealed);
                    let kept = fresh.filter(|f| sealed.commit.is_none_or(|c| commitment(&sealed.eph, f) == c));
                    if kept.is_none() {
                        // Following until here, and left out: expected of the hub it revokes.
                        let why = if fresh.is_some() { Stranded::OtherSecret } else { Stranded::NoSlot };
                        stranded = (r.hub != Some(Key::of(me))).then_some((r.entry, why));
                    }
                    kept.map(|fresh| step(&prev, &r.entry, &fresh))
                }
                (Some(_), None) => None,
            };
            // The secret handed at admission, where this hub could not follow the chain itself;
            // what it held before is of no use to it then.
            if current.is_none() {
                if let Some(s) = take_handed(Some(r.entry)) {
                    current = Some(s);
                    ring.secrets.clear();
                    stranded = None;
                }
            }
            ring.push(Some(r.entry), current);
        }
        let member = state.hubs.get(&Key::of(me));
        if ring.secrets.is_empty() {
            // A hub that holds no secret of its coalition (one admitted without being handed
            // it): one only it can know, so that it passes nowhere and nothing passes it.
            ring.secrets.push((None, own_secret(me)));
            ring.own = true;
            // A member whose admission sealed it something it cannot open.
            if let Some(h) = member.filter(|h| h.handed.is_some()) {
                stranded = stranded.or(Some((h.admitted.entry, Stranded::NotHanded)));
            }
        }
        // Only a member is left out: a hub revoked since (or never admitted) expects it.
        ring.stranded = stranded.filter(|_| member.is_some());
        ring.public = *ring.current() == base;
        ring
    }

    /// The keyring of a hub joined by hand that does not hold its coalition's log yet: the
    /// secret its admission sealed for it (what [`Keyring::hand`] made), if it opens.
    pub fn welcome(me: &Identity, sealed: &Sealed) -> Option<Keyring> {
        open(ADMIT, me, sealed).map(|s| Keyring {
            secrets: vec![(None, Secret(s))],
            public: false,
            own: false,
            stranded: None,
        })
    }

    fn push(&mut self, at: Option<Id>, s: Option<Secret>) {
        let Some(s) = s else { return };
        if self.secrets.last().map(|(_, last)| *last) == Some(s) {
            return;
        }
        self.secrets.push((at, s));
        if self.secrets.len() > KEEP {
            self.secrets.remove(0);
        }
    }

    /// The newest secret this hub can follow: what its adverts and its listener use.
    pub fn current(&self) -> &Secret {
        &self.secrets.last().expect("a keyring is never empty").1
    }

    /// The turnover this hub was a member for and could not follow, and why: it can reach no
    /// hub that follows the chain past it (until it is handed the secret again, by a new
    /// admission). `None` if it follows the whole chain, or was never meant to.
    pub fn stranded(&self) -> Option<(Id, Stranded)> {
        self.stranded
    }

    /// Whether this hub holds no secret of its coalition (only one of its own, which passes
    /// nowhere): it cannot hand one on.
    pub fn is_own(&self) -> bool {
        self.own
    }

    /// The secret a dialler seals its proof under: its current one, unless anyone who knows
    /// the founding hub's key can compute that (a coalition from before the founding entry
    /// sealed a start), when it seals under one only it knows, so that no one reads it.
    pub fn sealer(&self, me: &Identity) -> Secret {
        if self.public {
            own_secret(me)
        } else {
            *self.current()
        }
    }

    /// Every kept secret, newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = &Secret> {
        self.secrets.iter().rev().map(|(_, s)| s)
    }

    /// Whether an advert's tag was made with a secret of this keyring.
    pub fn recognises(&self, nonce: &[u8], tag: &[u8]) -> bool {
        self.newest_first().any(|s| s.tag(nonce)[..] == *tag)
    }

    /// A dialler's proofs, one per kept secret, newest first.
    pub fn hello(&self, exporter: &[u8; 32]) -> Vec<[u8; 32]> {
        self.newest_first().map(|s| s.hello(exporter)).collect()
    }

    /// Whether one of a dialler's proofs is made with this hub's current secret.
    pub fn accepts(&self, exporter: &[u8; 32], macs: &[[u8; 32]]) -> bool {
        // Every proof is checked, so the time says nothing of which one matched.
        macs.iter().fold(false, |ok, m| self.current().opens(exporter, m) | ok)
    }

    /// What a dialler sealed under a secret of this keyring (any kept one: the dialler may not
    /// have heard of the newest revocations), if it sealed under one.
    pub fn unseal(&self, exporter: &[u8; 32], sealed: &[u8]) -> Option<Vec<u8>> {
        self.newest_first().find_map(|s| s.unseal(exporter, sealed))
    }

    /// The current secret sealed for a hub being admitted, and the revocation it holds after:
    /// what [`Body::AdmitHub`] carries.
    pub fn hand(&self, ephemeral: [u8; 32], to: &Key) -> (Sealed, Option<Id>) {
        let (at, s) = self.secrets.last().expect("a keyring is never empty");
        (sealed(ADMIT, ephemeral, &[to.0], &s.0), *at)
    }
}

/// The coalition secret's start, for a founding entry: `fresh` sealed for the founding `hub`.
pub fn genesis(hub: &Key, ephemeral: [u8; 32], fresh: [u8; 32]) -> Sealed {
    sealed(GENESIS, ephemeral, &[hub.0], &fresh)
}

fn sealed(domain: &[u8], ephemeral: [u8; 32], to: &[[u8; 32]], secret: &[u8; 32]) -> Sealed {
    let (eph, slots) = crate::seal::seal(domain, ephemeral, to, MAX_SEALED, secret);
    Sealed { eph: Ephemeral(eph), slots: slots.into_iter().map(Slot).collect(), commit: None }
}

/// A turnover's fresh secret sealed for hubs `to`, with its commitment.
fn turnover(ephemeral: [u8; 32], to: &[[u8; 32]], fresh: &[u8; 32]) -> Sealed {
    let mut s = sealed(REKEY, ephemeral, to, fresh);
    s.commit = Some(commitment(&s.eph, fresh));
    s
}

/// A revocation of `hub` that turns the coalition secret over: a `fresh` secret sealed for
/// every hub of `state` but the revoked one. With more hubs than one entry can seal for, the
/// count: the caller then revokes without turning the secret over ([`Body::revoke_hub`]), since
/// a revocation must never fail.
pub fn revoke(state: &State, hub: Key, ephemeral: [u8; 32], fresh: [u8; 32]) -> Result<Body, usize> {
    let remaining: Vec<[u8; 32]> = state.hubs.keys().filter(|k| **k != hub).map(|k| k.0).collect();
    if remaining.len() > MAX_SEALED {
        return Err(remaining.len());
    }
    if remaining.is_empty() {
        return Ok(Body::revoke_hub(hub));
    }
    Ok(Body::RevokeHub { hub, rekey: Some(turnover(ephemeral, &remaining, &fresh)) })
}

/// The entry that turns the coalition secret over without revoking anyone: `fresh` sealed for
/// every member hub. `Err` with how many hubs there are if one entry cannot seal for them all.
pub fn rotate(state: &State, ephemeral: [u8; 32], fresh: [u8; 32]) -> Result<Body, usize> {
    let hubs: Vec<[u8; 32]> = state.hubs.keys().map(|k| k.0).collect();
    if hubs.is_empty() || hubs.len() > MAX_SEALED {
        return Err(hubs.len());
    }
    Ok(Body::Rotate { rekey: turnover(ephemeral, &hubs, &fresh) })
}

#[cfg(test)]
mod tests;
