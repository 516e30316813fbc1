//! The coalition secret's chain, hub by hub: who can follow it, and who is left behind.

use rand_chacha::rand_core::SeedableRng;

use super::*;
use crate::authority::Log;
use crate::membership::Role;

fn ident(seed: u64) -> Identity {
    Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(seed))
}

/// A coalition founded by person `fox` at hub 0, with hubs 1 and 2 admitted at hub 0.
struct World {
    fox: Identity,
    hubs: Vec<Identity>,
    log: Log,
}

impl World {
    fn new() -> World {
        let fox = ident(1);
        let hubs: Vec<Identity> = (0..5).map(|i| ident(100 + i)).collect();
        let mut log = Log::new();
        let genesis = Some(genesis(&Key::of(&hubs[0]), [7; 32], [8; 32]));
        let found = Body::found(&hubs[0], &Key::of(&fox), "Riverside", "fox", "North", genesis);
        log.append(&fox, Key::of(&hubs[0]), 0, found).unwrap();
        let mut w = World { fox, hubs, log };
        w.admit(1);
        w.admit(2);
        w
    }

    fn founder(&self) -> [u8; 32] {
        self.hubs[0].public().to_bytes()
    }

    fn ring(&self, hub: usize) -> Keyring {
        Keyring::of(&self.founder(), self.log.state(), &self.hubs[hub])
    }

    /// Hub 0 admits hub `n`, handing it the secret as hub 0 holds it.
    fn admit(&mut self, n: usize) {
        let (secret, after) = self.ring(0).hand([n as u8; 32], &Key::of(&self.hubs[n]));
        let body = Body::AdmitHub { hub: Key::of(&self.hubs[n]), name: format!("h{n}"), secret: Some(secret), after };
        self.log.append(&self.fox, Key::of(&self.hubs[0]), 1, body).unwrap();
    }

    /// Founder `fox` adds person `who` at hub 0.
    fn add_person(&mut self, who: &Identity, handle: &str, role: Role) {
        let body = Body::AddPerson { person: Key::of(who), handle: handle.into(), role };
        self.log.append(&self.fox, Key::of(&self.hubs[0]), 1, body).unwrap();
    }

    fn revoke(&mut self, n: usize, fresh: u8) {
        let body = revoke(self.log.state(), Key::of(&self.hubs[n]), [fresh; 32], [fresh; 32]).unwrap();
        self.log.append(&self.fox, Key::of(&self.hubs[0]), 2, body).unwrap();
    }
}

#[test]
fn members_share_a_secret_the_founders_key_does_not_give_until_a_revocation_turns_it_over() {
    let mut w = World::new();
    let before = w.ring(0);
    assert_eq!(w.ring(1).current(), before.current());
    assert_eq!(w.ring(2).current(), before.current());
    // An outsider who holds the founding hub's key (it is in every invite) computes nothing
    // a member holds.
    let outsider = Keyring::base(&w.founder());
    assert!(before.newest_first().all(|s| s != outsider.current()));
    assert!(!before.accepts(&[3; 32], &outsider.hello(&[3; 32])));
    assert!(!before.recognises(b"nonce", &outsider.current().tag(b"nonce")));

    // The revoked hub as it was seized: its keyring from the log before its revocation.
    let lost = w.ring(2);
    w.revoke(2, 9);
    let (north, south) = (w.ring(0), w.ring(1));
    assert_eq!(north.current(), south.current(), "every remaining hub computes the same secret, with no exchange");
    assert_ne!(north.current(), before.current(), "the revocation turned it over");
    let after = w.ring(2);
    assert!(
        after.newest_first().chain(lost.newest_first()).all(|s| s != north.current()),
        "the revoked hub cannot follow past its own revocation, with the log before it or after"
    );

    // The revoked hub's hello and adverts pass nowhere up to date; theirs mean nothing to it.
    let exporter = [3; 32];
    assert!(!north.accepts(&exporter, &lost.hello(&exporter)));
    assert!(north.accepts(&exporter, &south.hello(&exporter)));
    assert!(!lost.recognises(b"nonce", &north.current().tag(b"nonce")));
    // A hub that has not heard of the revocation yet is still recognised and reached.
    assert!(north.recognises(b"nonce", &before.current().tag(b"nonce")));
    assert!(before.accepts(&exporter, &north.hello(&exporter)));

    // A copy of the log, as another hub holds it, gives the same chain.
    let copy = Log::load(w.log.entries().map(|(_, e)| e.encode())).unwrap();
    assert_eq!(Keyring::of(&w.founder(), copy.state(), &w.hubs[1]), south);
}

/// An admin turns the secret over without revoking anyone: every member hub follows, whoever
/// holds only the old secret (it leaked by itself, not with a hub's key) computes nothing new,
/// a hub that has not heard yet still gets in, and a hub revoked earlier stays out.
#[test]
fn a_rotation_turns_the_secret_over_for_every_member_and_leaves_a_leaked_secret_behind() {
    use crate::handshake::{check_hello, hello};
    let mut w = World::new();
    w.admit(3);
    w.revoke(3, 9);
    let (copied, revoked) = (w.ring(1), w.ring(3));
    let body = rotate(w.log.state(), [11; 32], [12; 32]).unwrap();
    let Body::Rotate { rekey } = &body else { panic!("{body:?}") };
    assert_eq!(rekey.slots.len(), 3, "sealed for the three member hubs, the revoked one not among them");
    w.log.append(&w.fox, Key::of(&w.hubs[0]), 3, body).unwrap();
    let (north, south, east) = (w.ring(0), w.ring(1), w.ring(2));
    assert_eq!(north.current(), south.current());
    assert_eq!(north.current(), east.current(), "every member hub computes the same new secret");
    assert_ne!(north.current(), copied.current(), "it turned over");
    assert!(north.newest_first().any(|s| s == copied.current()), "the previous one is kept, for stale hubs");
    // Whoever holds only the old secret computes nothing new: adverts under the new secret mean
    // nothing to them, and their hello (without a member's key) passes no up-to-date hub. (Up-to-
    // date hubs keep the old secret for stale members, so they still recognise adverts under it:
    // see the threat model.)
    assert!(!copied.recognises(b"nonce", &north.current().tag(b"nonce")));
    assert!(!revoked.recognises(b"nonce", &north.current().tag(b"nonce")));
    let exporter = [3; 32];
    assert!(!north.accepts(&exporter, &copied.hello(&exporter)));
    // Hub 1 before it heard of the rotation still gets in, by its sealed proof of membership.
    let members: Vec<crate::HubId> = w.log.state().hubs.keys().map(|k| crate::HubId::of_bytes(&k.0).unwrap()).collect();
    let member = |id: &crate::HubId| members.contains(id);
    let h = hello(&copied, &w.hubs[1], &exporter);
    assert_eq!(check_hello(&north, &exporter, &h[1..], member), Ok(()));
    // A rotation with no member hub to seal for, or more than one entry seals for, is not made.
    let mut empty = w.log.state().clone();
    empty.hubs.clear();
    assert_eq!(rotate(&empty, [1; 32], [2; 32]), Err(0));
    // Only an admin turns it over: a plain member's rotation is refused at the door.
    let owl = ident(2);
    w.add_person(&owl, "owl", Role::Member);
    let plain = rotate(w.log.state(), [13; 32], [14; 32]).unwrap();
    assert!(matches!(w.log.append(&owl, Key::of(&w.hubs[1]), 5, plain), Err(crate::authority::Refusal::NoRight(_))));
    assert_eq!(w.ring(0).current(), north.current());
}

#[test]
fn a_hub_admitted_after_a_revocation_is_handed_the_secret_and_follows_the_chain() {
    let mut w = World::new();
    w.revoke(2, 9);
    w.admit(3);
    assert_eq!(w.ring(3).current(), w.ring(0).current());
    assert_eq!(w.ring(3).newest_first().count(), 1, "it holds no secret from before its admission");
    w.revoke(1, 10);
    assert_eq!(w.ring(3).current(), w.ring(0).current(), "later revocations are sealed for it too");
    assert_ne!(w.ring(1).current(), w.ring(0).current());
    // A hub that was never admitted opens nothing: it holds a secret of its own, which passes
    // nowhere.
    let stray = w.ring(4);
    assert_eq!(stray.newest_first().count(), 1);
    assert!((0..4).all(|n| w.ring(n).newest_first().all(|s| s != stray.current())));
    assert_ne!(stray.current(), Keyring::base(&w.founder()).current());
    assert_eq!(stray, Keyring::of(&w.founder(), w.log.state(), &w.hubs[4]), "and the same one each time");
}

/// A coalition whose founding entry sealed no start: person fox founded it at hub North, which
/// admitted South.
fn legacy() -> (Identity, Identity, Identity, Log) {
    let (fox, north, south) = (ident(1), ident(100), ident(101));
    let mut log = Log::new();
    let found = Body::found(&north, &Key::of(&fox), "Riverside", "fox", "North", None);
    log.append(&fox, Key::of(&north), 0, found).unwrap();
    log.append(&fox, Key::of(&north), 1, Body::admit_hub(Key::of(&south), "South".into())).unwrap();
    (fox, north, south, log)
}

#[test]
fn a_coalition_founded_before_the_founding_entry_sealed_a_start_starts_from_the_founders_key() {
    let (_, north, south, log) = legacy();
    let base = Keyring::base(north.public().as_bytes());
    assert_eq!(Keyring::of(north.public().as_bytes(), log.state(), &north).current(), base.current());
    let ring = Keyring::of(north.public().as_bytes(), log.state(), &south);
    assert_eq!(ring.current(), base.current());
    // Anyone can compute that secret, so a dialler seals its proof under none it can compute.
    let h = crate::handshake::hello(&ring, &south, &[3; 32]);
    assert!(base.unseal(&[3; 32], &h[h.len() - crate::handshake::SEALED_PROOF..]).is_none());
}

/// What a rotation is for, first: a coalition still on the start anyone with its founding hub's
/// key computes leaves it, with no one revoked.
#[test]
fn a_rotation_takes_a_coalition_off_the_start_the_founding_hubs_key_gives() {
    let (fox, north, south, mut log) = legacy();
    let base = Keyring::base(north.public().as_bytes());
    log.append(&fox, Key::of(&north), 2, rotate(log.state(), [5; 32], [6; 32]).unwrap()).unwrap();
    let (n, s) = (
        Keyring::of(north.public().as_bytes(), log.state(), &north),
        Keyring::of(north.public().as_bytes(), log.state(), &south),
    );
    assert_eq!(n.current(), s.current());
    assert_ne!(n.current(), base.current(), "no longer what the founding hub's key gives");
    assert!(!n.accepts(&[3; 32], &base.hello(&[3; 32])));
}

#[test]
fn a_hub_that_has_not_heard_of_a_revocation_still_gets_in_and_the_revoked_hub_does_not() {
    use crate::handshake::{check_hello, hello, HandshakeError, SEALED_PROOF};
    let mut w = World::new();
    let (stale, lost) = (w.ring(1), w.ring(2));
    w.revoke(2, 9);
    let north = w.ring(0);
    let members: Vec<crate::HubId> = w.log.state().hubs.keys().map(|k| crate::HubId::of_bytes(&k.0).unwrap()).collect();
    let member = |id: &crate::HubId| members.contains(id);
    let exporter = [3; 32];

    // Hub 1, which has not heard, dials hub 0, which has: its HMACs are all under an older
    // secret, but it shows itself, sealed under the secret it holds, as a member.
    let h = hello(&stale, &w.hubs[1], &exporter);
    assert!(!north.accepts(&exporter, &stale.hello(&exporter)));
    assert_eq!(check_hello(&north, &exporter, &h[1..], member), Ok(()));
    // The revoked hub, which holds that same secret and the whole log, shows itself as revoked.
    let h = hello(&lost, &w.hubs[2], &exporter);
    assert_eq!(check_hello(&north, &exporter, &h[1..], member), Err(HandshakeError::NotMember(w.hubs[2].id())));
    // Nor can it pass as hub 1: it cannot sign as hub 1, and a proof of its own in hub 1's name
    // does not hold.
    let mut forged = h.clone();
    let at = forged.len() - SEALED_PROOF;
    let mut proof = crate::handshake::proof(&w.hubs[2], crate::handshake::Side::Dialler, &exporter);
    proof[..32].copy_from_slice(w.hubs[1].public().as_bytes());
    forged.truncate(at);
    forged.extend(lost.current().seal(&exporter, &proof));
    assert_eq!(check_hello(&north, &exporter, &forged[1..], member), Err(HandshakeError::BadProof));

    // Hub 0 dialling hub 1 gets in the ordinary way (one of its HMACs is under hub 1's
    // current secret), and the revoked hub, listening in hub 1's place, reads neither its
    // HMACs' secret nor its sealed proof.
    let h = hello(&north, &w.hubs[0], &exporter);
    assert_eq!(check_hello(&stale, &exporter, &h[1..], member), Ok(()));
    assert!(lost.unseal(&exporter, &h[h.len() - SEALED_PROOF..]).is_none());
    assert!(stale.unseal(&exporter, &h[h.len() - SEALED_PROOF..]).is_none(), "sealed under the newest only");
    let own = crate::handshake::proof(&w.hubs[0], crate::handshake::Side::Dialler, &exporter);
    assert_eq!(north.unseal(&exporter, &h[h.len() - SEALED_PROOF..]), Some(own.to_vec()), "holders of it read it");
}

#[test]
fn concurrent_revocations_both_count_and_neither_revoked_hub_follows() {
    let mut w = World::new();
    w.admit(3);
    let owl = ident(2);
    w.add_person(&owl, "owl", Role::Admin);
    let mut apart = Log::load(w.log.entries().map(|(_, e)| e.encode())).unwrap();
    // Fox revokes hub 1 at hub 0 while owl, apart, revokes hub 2 at hub 3.
    w.revoke(1, 9);
    let body = revoke(apart.state(), Key::of(&w.hubs[2]), [10; 32], [10; 32]).unwrap();
    apart.append(&owl, Key::of(&w.hubs[3]), 2, body).unwrap();
    for v in w.log.offer_many(&apart.missing_for(&w.log.heads())) {
        v.unwrap();
    }
    let (north, east) = (w.ring(0), w.ring(3));
    assert_eq!(north.current(), east.current());
    assert_ne!(w.ring(1).current(), north.current(), "hub 1 opens owl's slot but not its own revocation's");
    assert_ne!(w.ring(2).current(), north.current());
}

#[test]
fn a_revocation_from_before_rekeying_keeps_the_secret_and_a_keyring_keeps_the_newest_few() {
    let mut w = World::new();
    let before = w.ring(0);
    w.log.append(&w.fox, Key::of(&w.hubs[0]), 2, Body::revoke_hub(Key::of(&w.hubs[2]))).unwrap();
    assert_eq!(w.ring(0), before);
    for n in 0..KEEP + 2 {
        w.admit(3);
        w.revoke(3, 20 + n as u8);
    }
    let ring = w.ring(0);
    assert_eq!(ring.newest_first().count(), KEEP);
    assert_eq!(w.ring(1).current(), ring.current());
}

#[test]
fn a_revocation_seals_for_at_most_max_sealed_hubs() {
    let mut w = World::new();
    // Three hubs and MAX_SEALED - 2 more: a revocation leaves MAX_SEALED.
    let many: Vec<Key> = (0..MAX_SEALED as u64 - 1).map(|i| Key::of(&ident(1000 + i))).collect();
    for k in &many[1..] {
        w.log.append(&w.fox, Key::of(&w.hubs[0]), 1, Body::admit_hub(*k, "x".into())).unwrap();
    }
    let body = revoke(w.log.state(), Key::of(&w.hubs[2]), [1; 32], [1; 32]).unwrap();
    let (admitted, revocation) = (Log::load(w.log.entries().map(|(_, e)| e.encode())).unwrap(), body);
    w.log.append(&w.fox, Key::of(&w.hubs[0]), 1, Body::admit_hub(many[0], "y".into())).unwrap();
    let n = revoke(w.log.state(), Key::of(&w.hubs[2]), [1; 32], [1; 32]).unwrap_err();
    assert_eq!(n, MAX_SEALED + 1);
    let plain = Body::revoke_hub(Key::of(&w.hubs[2]));
    let before = w.ring(0);
    w.log.append(&w.fox, Key::of(&w.hubs[0]), 2, plain).unwrap();
    assert!(!w.log.state().hubs.contains_key(&Key::of(&w.hubs[2])), "the revocation still counts");
    assert_eq!(w.ring(0), before, "without turning the secret over");
    let mut log = admitted;
    assert!(log.append(&w.fox, Key::of(&w.hubs[0]), 2, revocation).is_ok(), "the largest revocation fits in one entry");
}

/// An admin who turns the secret over with garbage in a hub's slot, or with different secrets
/// for different hubs, splits the hubs for good; each hub left out knows it and can say which
/// entry did it, and so does a hub admitted with a secret it cannot open.
#[test]
fn a_hub_left_out_of_a_turnover_or_an_admission_knows_it() {
    let mut w = World::new();
    w.admit(3);
    let recipients =
        |w: &World, hubs: &[usize]| -> Vec<[u8; 32]> { hubs.iter().map(|n| w.hubs[*n].public().to_bytes()).collect() };
    // Hubs 0 and 1 get the committed secret, hub 2 another (its own slot opens), hub 3 none.
    let honest = turnover([21; 32], &recipients(&w, &[0, 1]), &[22; 32]);
    let other = sealed(REKEY, [21; 32], &recipients(&w, &[2]), &[23; 32]);
    assert_eq!(honest.eph, other.eph, "the same ephemeral key, so both sets of slots open under it");
    let split = Sealed { eph: honest.eph, slots: [honest.slots.clone(), other.slots].concat(), commit: honest.commit };
    let id = w.log.append(&w.fox, Key::of(&w.hubs[0]), 3, Body::Rotate { rekey: split }).unwrap().0;
    let (north, south, east, west) = (w.ring(0), w.ring(1), w.ring(2), w.ring(3));
    assert_eq!(north.current(), south.current());
    assert_eq!((north.stranded(), south.stranded()), (None, None));
    assert_eq!(east.stranded(), Some((id, Stranded::OtherSecret)));
    assert_eq!(west.stranded(), Some((id, Stranded::NoSlot)));
    assert!(east.newest_first().all(|s| s != north.current()), "east did not take the other secret");
    // The next turnover does not bring them back: each step needs the one before.
    w.revoke(2, 30);
    assert_eq!(w.ring(3).stranded(), Some((id, Stranded::NoSlot)));
    assert_eq!(w.ring(2).stranded(), None, "a revoked hub is not a member left out");
    // An admission hands the secret again: the hub follows from there and is no longer left out.
    w.log.append(&w.fox, Key::of(&w.hubs[0]), 4, Body::RevokeHub { hub: Key::of(&w.hubs[3]), rekey: None }).unwrap();
    w.admit(3);
    assert_eq!(w.ring(3).stranded(), None);
    assert_eq!(w.ring(3).current(), w.ring(0).current());
    // A turnover that commits to nothing (as releases before commitments wrote them) still
    // counts: a hub it left out is told as long as no slot opens for it.
    let mut bare = turnover([31; 32], &recipients(&w, &[0, 1]), &[32; 32]);
    bare.commit = None;
    let id = w.log.append(&w.fox, Key::of(&w.hubs[0]), 5, Body::Rotate { rekey: bare }).unwrap().0;
    assert_eq!(w.ring(0).current(), w.ring(1).current());
    assert_eq!(w.ring(3).stranded(), Some((id, Stranded::NoSlot)));
    // A hub admitted with a secret it cannot open is told too.
    let (handed, after) = w.ring(0).hand([41; 32], &Key::of(&w.hubs[4]));
    let garbage = Sealed { slots: vec![Slot([9; 48])], ..handed };
    let admit = Body::AdmitHub { hub: Key::of(&w.hubs[4]), name: "h4".into(), secret: Some(garbage), after };
    let admitted = w.log.append(&w.fox, Key::of(&w.hubs[0]), 6, admit).unwrap().0;
    assert!(w.ring(4).is_own());
    assert_eq!(w.ring(4).stranded(), Some((admitted, Stranded::NotHanded)));
}
