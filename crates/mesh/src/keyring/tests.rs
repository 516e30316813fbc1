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
        log.append(&fox, Key::of(&hubs[0]), 0, Body::found(&hubs[0], &Key::of(&fox), "Riverside", "fox", "North"))
            .unwrap();
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

    fn revoke(&mut self, n: usize, fresh: u8) {
        let body = revoke(self.log.state(), Key::of(&self.hubs[n]), [fresh; 32], [fresh; 32]).unwrap();
        self.log.append(&self.fox, Key::of(&self.hubs[0]), 2, body).unwrap();
    }
}

#[test]
fn members_share_the_founders_secret_until_a_revocation_turns_it_over() {
    let mut w = World::new();
    let before = w.ring(0);
    assert_eq!(
        before,
        Keyring::base(&w.founder()),
        "before any revocation: the founder's, which hand-joined hubs know"
    );
    assert_eq!(w.ring(1).current(), before.current());
    assert_eq!(w.ring(2).current(), before.current());

    w.revoke(2, 9);
    let (north, south, lost) = (w.ring(0), w.ring(1), w.ring(2));
    assert_eq!(north.current(), south.current(), "every remaining hub computes the same secret, with no exchange");
    assert_ne!(north.current(), before.current(), "the revocation turned it over");
    assert_eq!(lost.current(), before.current(), "the revoked hub cannot follow past its own revocation");

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
    // A hub that was never admitted opens nothing: it stays on the founder's secret.
    assert_eq!(w.ring(4), Keyring::base(&w.founder()));
}

#[test]
fn concurrent_revocations_both_count_and_neither_revoked_hub_follows() {
    let mut w = World::new();
    w.admit(3);
    let owl = ident(2);
    w.log
        .append(
            &w.fox,
            Key::of(&w.hubs[0]),
            1,
            Body::AddPerson { person: Key::of(&owl), handle: "owl".into(), role: Role::Admin },
        )
        .unwrap();
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
