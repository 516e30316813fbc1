//! The authority log's rules, hub by hub: each test is a story of partitioned hubs that sign
//! entries and merge, and what every hub must conclude.

use aidmesh_mesh::authority::{
    key_proof, Body, Change, Commit, Entry, Ephemeral, Id, Key, Log, Offered, Refusal, Resolved, Sealed, Slot,
    MAX_SEALED, MAX_WAITING, MAX_WAITING_BYTES,
};
use aidmesh_mesh::{Identity, Role};
use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand_chacha::rand_core::SeedableRng;

fn person(seed: u64) -> Identity {
    Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(seed))
}

fn key(p: &Identity) -> Key {
    Key::of(p)
}

/// A hub's key, where entries are made (it does not sign).
fn hub(n: u8) -> Key {
    key(&person(1000 + n as u64))
}

/// Founds a coalition with `founder` as its first admin, at hub 0.
fn found(founder: &Identity) -> Log {
    let mut log = Log::new();
    log.append(founder, hub(0), 0, Body::found(&person(1000), &key(founder), "Riverside", "fox", "North", None))
        .unwrap();
    log
}

fn sign(log: &mut Log, who: &Identity, body: Body) -> Result<Id, Refusal> {
    log.append(who, hub(0), 1, body).map(|(id, _)| id)
}

fn add(log: &mut Log, by: &Identity, who: &Identity, handle: &str, role: Role) {
    sign(log, by, Body::AddPerson { person: key(who), handle: handle.into(), role }).unwrap();
}

/// Adds `who` as an admin: `by[0]` adds them, and the other admins in `by` endorse until a
/// majority of the admins signed.
fn add_admin(log: &mut Log, by: &[&Identity], who: &Identity, handle: &str) {
    let id = sign(log, by[0], Body::AddPerson { person: key(who), handle: handle.into(), role: Role::Admin }).unwrap();
    for a in &by[1..] {
        if is_admin(log, who) {
            break;
        }
        sign(log, a, Body::Endorse { entry: id }).unwrap();
    }
    assert!(is_admin(log, who), "{handle} is not an admin after {} admins signed", by.len());
}

/// Gives `to` every entry of `from` it lacks, in one batch, as a sync or a bundle does.
fn merge(to: &mut Log, from: &Log) {
    for verdict in to.offer_many(&from.missing_for(&to.heads())) {
        verdict.unwrap();
    }
}

fn sync(a: &mut Log, b: &mut Log) {
    merge(a, b);
    merge(b, a);
}

/// A copy of a log, as another hub that synced with it holds it.
fn copy(log: &Log) -> Log {
    Log::load(log.entries().map(|(_, e)| e.encode())).unwrap()
}

fn is_person(log: &Log, p: &Identity) -> bool {
    log.state().person_of(&key(p)).is_some()
}

fn is_admin(log: &Log, p: &Identity) -> bool {
    log.state().is_admin(&key(p))
}

#[test]
fn people_and_hubs_chain_back_to_the_founder_and_plain_members_are_refused_at_the_door() {
    let (fox, owl, jay, outsider) = (person(1), person(2), person(3), person(4));
    let mut log = found(&fox);
    add(&mut log, &fox, &owl, "owl", Role::Admin);
    add(&mut log, &owl, &jay, "jay", Role::Member);
    sign(&mut log, &owl, Body::admit_hub(hub(1), "South".into())).unwrap();
    assert!(is_admin(&log, &fox) && is_admin(&log, &owl) && is_person(&log, &jay) && !is_admin(&log, &jay));
    assert!(log.state().hub_is_member(&hub(0)) && log.state().hub_is_member(&hub(1)));

    // A plain member may not admit anyone, nor make themselves an admin: refused, not stored.
    let n = log.len();
    let e = sign(&mut log, &jay, Body::AddPerson { person: key(&outsider), handle: "mole".into(), role: Role::Admin });
    assert!(matches!(&e, Err(Refusal::NoRight(why)) if why.contains("jay is not an admin")), "{e:?}");
    let e = sign(&mut log, &jay, Body::SetRole { person: key(&jay), role: Role::Admin });
    assert!(matches!(e, Err(Refusal::NoRight(_))));
    // An outsider's key belongs to no one.
    let e = sign(&mut log, &outsider, Body::admit_hub(hub(9), "Mole".into()));
    assert!(matches!(&e, Err(Refusal::NoRight(why)) if why.contains("belongs to no person")), "{e:?}");
    assert_eq!(log.len(), n, "nothing refused is stored");
    assert!(!log.state().hub_is_member(&hub(9)));
}

#[test]
fn the_door_names_what_is_wrong_with_bytes_that_are_not_a_valid_entry() {
    let (fox, owl) = (person(1), person(2));
    let mut log = found(&fox);
    let good = Entry::sign(
        &fox,
        hub(0),
        log.coalition(),
        log.heads(),
        5,
        Body::AddPerson { person: key(&owl), handle: "owl".into(), role: Role::Member },
    );
    // A changed field breaks the signature (a member editing someone's entry).
    let mut edited = good.clone();
    edited.body = Body::AddPerson { person: key(&owl), handle: "owl".into(), role: Role::Admin };
    assert_eq!(log.offer(&edited.encode()), Err(Refusal::BadSignature));
    // The same entry with spaces added is not canonical: one entry has one id.
    let spaced = String::from_utf8(good.encode()).unwrap().replace(",\"", ", \"");
    assert!(matches!(log.offer(spaced.as_bytes()), Err(Refusal::Malformed(w)) if w.contains("canonical")));
    assert!(matches!(log.offer(b"{not json"), Err(Refusal::Malformed(_))));
    let over = aidmesh_mesh::authority::MAX_ENTRY + 1;
    assert!(matches!(log.offer(&vec![b' '; over]), Err(Refusal::TooLarge(n)) if n == over));
    // Only a revocation (which seals a secret for every remaining hub) may be that large.
    let mut big = policy(&log, 100, 1_000, 2);
    if let Body::Policy { limits, .. } = &mut big {
        *limits =
            (0..100).map(|i| aidmesh_mesh::authority::Limit { role: format!("role {i:>70}"), max_minor: 1 }).collect();
    }
    let big = Entry::sign(&fox, hub(0), log.coalition(), log.heads(), 5, big).encode();
    assert!(big.len() > aidmesh_mesh::authority::MAX_PLAIN_ENTRY && big.len() < over);
    assert_eq!(log.offer(&big), Err(Refusal::TooLarge(big.len())));
    // Another coalition's entry, and another founding.
    let other = found(&owl);
    let theirs = other.missing_for(&[]);
    assert_eq!(log.offer(&theirs[0]), Err(Refusal::OtherCoalition));
    let mut foreign = good.clone();
    foreign.coalition = other.coalition();
    let foreign = Entry::sign(&fox, hub(0), other.coalition(), log.heads(), 5, foreign.body);
    assert_eq!(log.offer(&foreign.encode()), Err(Refusal::OtherCoalition));
    assert_eq!(log.len(), 1);
    // A founding entry its hub did not countersign is refused; a coalition from before the log
    // accepts only the founding its own founding hub countersigned.
    let forged =
        Entry::sign(&owl, hub(0), None, vec![], 0, Body::found(&person(1001), &key(&owl), "R", "owl", "North", None));
    assert_eq!(Log::new().offer(&forged.encode()), Err(Refusal::BadSignature));
    let genuine = log.missing_for(&[]).remove(0);
    assert_eq!(Log::for_founding_hub(hub(1)).offer(&genuine), Err(Refusal::OtherCoalition));
    assert!(matches!(Log::for_founding_hub(hub(0)).offer(&genuine), Ok(Offered::Added(_))));
    // The genuine entry goes in, once.
    assert!(matches!(log.offer(&good.encode()), Ok(Offered::Added(_))));
    assert_eq!(log.offer(&good.encode()), Ok(Offered::Known));
    assert_eq!(log.len(), 2);
}

#[test]
fn any_delivery_order_gives_the_same_state_and_out_of_order_entries_wait() {
    let (fox, owl, jay, wren) = (person(1), person(2), person(3), person(4));
    let mut log = found(&fox);
    add(&mut log, &fox, &owl, "owl", Role::Admin);
    add(&mut log, &owl, &jay, "jay", Role::Member);
    sign(&mut log, &fox, Body::Grant { person: key(&jay), role: "treasurer".into() }).unwrap();
    add(&mut log, &owl, &wren, "wren", Role::Member);
    sign(&mut log, &fox, Body::RemovePerson { person: key(&wren) }).unwrap();
    sign(&mut log, &owl, Body::admit_hub(hub(1), "South".into())).unwrap();
    let all: Vec<Vec<u8>> = log.missing_for(&[]);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
    for _ in 0..20 {
        let mut shuffled = all.clone();
        shuffled.shuffle(&mut rng);
        let mut other = Log::new();
        for b in &shuffled {
            other.offer(b).unwrap();
        }
        assert_eq!(other.len(), log.len());
        assert_eq!(other.state(), log.state());
        let mut batch = Log::new();
        assert!(batch.offer_many(&shuffled).iter().all(Result::is_ok));
        assert_eq!(batch.state(), log.state());
    }
    assert!(log.state().holds(&key(&jay), "treasurer"));
    assert!(!is_person(&log, &wren) && log.state().removed.contains_key(&key(&wren)));
}

/// Anyone with a key can sign entries that follow entries no one has: they wait for their
/// `preds`, and a hub keeps them across restarts. What waits is bounded by bytes as well as by
/// count, so the largest entries there are (revocations sealing a secret for 128 hubs) cannot
/// pile up 10,000 deep.
#[test]
fn entries_that_follow_what_no_one_has_wait_within_a_bound_of_bytes() {
    let fox = person(1);
    let mut log = found(&fox);
    let (mallory, coalition) = (person(66), log.coalition());
    let big = |n: u64| {
        let rekey = Sealed {
            eph: Ephemeral([n as u8; 32]),
            slots: vec![Slot([7; 48]); MAX_SEALED],
            commit: Some(Commit([9; 32])),
        };
        let body = Body::RevokeHub { hub: hub(1), rekey: Some(rekey) };
        Entry::sign(&mallory, hub(0), coalition, vec![Id::of(&n.to_be_bytes())], n as i64, body).encode()
    };
    let (mut waited, mut bytes, mut refused) = (0, 0, 0);
    for n in 0.. {
        let b = big(n);
        match log.offer(&b) {
            Ok(Offered::Waiting(_)) => (waited, bytes) = (waited + 1, bytes + b.len()),
            Err(Refusal::TooManyWaiting) => {
                refused = b.len();
                break;
            }
            other => panic!("entry {n}: {other:?}"),
        }
    }
    assert!(bytes <= MAX_WAITING_BYTES && bytes + refused > MAX_WAITING_BYTES, "{waited} entries, {bytes} bytes");
    assert!(waited < MAX_WAITING, "the bound of bytes stopped them, not the count: {waited}");
    assert_eq!(log.waiting().count(), waited);
    // Nothing of it counts, and the coalition's own work goes on.
    assert_eq!(log.len(), 1);
    add(&mut log, &fox, &person(2), "owl", Role::Member);
    assert!(is_person(&log, &person(2)));
}

#[test]
fn a_hub_that_lost_or_altered_its_copy_gets_the_log_back_and_changes_nothing_elsewhere() {
    let (fox, owl) = (person(1), person(2));
    let mut north = found(&fox);
    add(&mut north, &fox, &owl, "owl", Role::Member);
    sign(&mut north, &fox, Body::admit_hub(hub(1), "South".into())).unwrap();
    sign(&mut north, &fox, Body::revoke_hub(hub(1))).unwrap();
    // South's copy lacks the revocation (deleted locally): it cannot lose it for anyone else,
    // and gets it back at the next sync.
    let entries: Vec<Vec<u8>> = north.entries().map(|(_, e)| e.encode()).collect();
    let mut south = Log::load(&entries[..entries.len() - 1]).unwrap();
    assert!(south.state().hub_is_member(&hub(1)));
    sync(&mut south, &mut north);
    assert!(!south.state().hub_is_member(&hub(1)) && !north.state().hub_is_member(&hub(1)));
    assert_eq!(south.state(), north.state());
}

#[test]
fn a_removed_admins_backdated_entries_do_not_count() {
    let (fox, owl, mole) = (person(1), person(2), person(3));
    let mut north = found(&fox);
    add(&mut north, &fox, &owl, "owl", Role::Admin);
    // Owl's laptop is seized while apart; the thief keeps a copy of the log as it was.
    let mut seized = copy(&north);
    sign(&mut north, &fox, Body::RemovePerson { person: key(&owl) }).unwrap();
    assert!(!is_person(&north, &owl));
    // With owl's key, the thief adds a mole and admits a hub, citing only what owl had seen
    // (making the mole an admin would wait for fox); the mole records an expense.
    add(&mut seized, &owl, &mole, "mole", Role::Member);
    sign(&mut seized, &owl, Body::admit_hub(hub(7), "Van".into())).unwrap();
    record(&mut seized, &mole, "exp-mole", 9_000, "Mole");
    sync(&mut north, &mut seized);
    for log in [&north, &seized] {
        assert!(!is_person(log, &owl) && !is_person(log, &mole), "{:?}", log.state().people);
        assert!(!log.state().hub_is_member(&hub(7)) && log.state().expenses.is_empty());
        assert!(is_admin(log, &fox));
        assert_eq!(log.state().not_counted.len(), 3, "{:?}", log.state().not_counted);
    }
    // After the removal, owl's key is refused at the door.
    let e = sign(&mut north, &owl, Body::admit_hub(hub(9), "Bus".into()));
    assert!(matches!(e, Err(Refusal::NoRight(_))), "{e:?}");
}

#[test]
fn two_admins_who_remove_each_other_while_apart_both_lose() {
    let (fox, owl, jay) = (person(1), person(2), person(3));
    let mut north = found(&fox);
    add(&mut north, &fox, &owl, "owl", Role::Admin);
    add(&mut north, &fox, &jay, "jay", Role::Member);
    let mut south = copy(&north);
    sign(&mut north, &fox, Body::RemovePerson { person: key(&owl) }).unwrap();
    sign(&mut south, &owl, Body::RemovePerson { person: key(&fox) }).unwrap();
    sign(&mut south, &owl, Body::admit_hub(hub(5), "Owl's van".into())).unwrap();
    sync(&mut north, &mut south);
    assert_eq!(north.state(), south.state());
    assert!(!is_person(&north, &fox) && !is_person(&north, &owl), "{:?}", north.state().people);
    assert!(!north.state().hub_is_member(&hub(5)), "owl's other concurrent entries are dropped");
    assert!(is_person(&north, &jay));
    let c = &north.state().contested;
    assert_eq!(c.len(), 1, "{c:?}");
    assert!(c[0].people.contains(&key(&fox)) && c[0].people.contains(&key(&owl)));
}

#[test]
fn the_other_admins_remove_the_founder_by_majority() {
    let (fox, owl, jay, wren) = (person(1), person(2), person(3), person(4));
    let mut log = found(&fox);
    add(&mut log, &fox, &owl, "owl", Role::Admin);
    add_admin(&mut log, &[&fox, &owl], &jay, "jay");
    add_admin(&mut log, &[&fox, &owl, &jay], &wren, "wren");
    // Four admins: removing one needs two of the other three.
    let removal = sign(&mut log, &owl, Body::RemovePerson { person: key(&fox) }).unwrap();
    assert!(is_admin(&log, &fox), "one signature of three is not a majority");
    assert!(log.state().waiting.contains_key(&removal));
    let e = sign(&mut log, &fox, Body::Endorse { entry: removal });
    assert!(matches!(e, Err(Refusal::NoRight(w)) if w.contains("own removal")));
    sign(&mut log, &jay, Body::Endorse { entry: removal }).unwrap();
    assert!(!is_person(&log, &fox));
    assert!(log.state().waiting.is_empty());
    // The founder's key now counts for nothing.
    assert!(matches!(sign(&mut log, &fox, Body::admit_hub(hub(3), "X".into())), Err(Refusal::NoRight(_))));
    // Two admins: the other one is enough; one admin cannot be removed at all.
    sign(&mut log, &owl, Body::RemovePerson { person: key(&wren) }).unwrap();
    assert!(is_person(&log, &wren), "two of {{jay, owl}} are needed");
    let w = *log.state().waiting.keys().next().unwrap();
    sign(&mut log, &jay, Body::Endorse { entry: w }).unwrap();
    assert!(!is_person(&log, &wren));
    sign(&mut log, &owl, Body::RemovePerson { person: key(&jay) }).unwrap();
    assert!(!is_person(&log, &jay));
    let e = sign(&mut log, &owl, Body::RemovePerson { person: key(&owl) });
    assert!(matches!(&e, Err(Refusal::NoRight(w)) if w.contains("last admin")), "{e:?}");
}

#[test]
fn a_revoked_key_signs_nothing_that_counts_and_its_concurrent_entries_are_dropped() {
    let (fox, owl, owl_laptop) = (person(1), person(2), person(3));
    let mut north = found(&fox);
    add(&mut north, &fox, &owl, "owl", Role::Admin);
    // Owl certifies their key at a second hub.
    sign(&mut north, &owl, Body::AddKey { key: key(&owl_laptop), proof: key_proof(&owl_laptop, &key(&owl)) }).unwrap();
    assert_eq!(north.state().person_of(&key(&owl_laptop)).unwrap().handle, "owl");
    let mut stolen = copy(&north);
    sign(&mut north, &fox, Body::RevokeKey { key: key(&owl_laptop) }).unwrap();
    sign(&mut stolen, &owl_laptop, Body::admit_hub(hub(6), "Thief".into())).unwrap();
    sync(&mut north, &mut stolen);
    assert!(!north.state().hub_is_member(&hub(6)));
    assert!(north.state().person_of(&key(&owl_laptop)).is_none());
    assert!(is_admin(&north, &owl), "the person keeps their other key");
    assert!(matches!(sign(&mut north, &owl_laptop, Body::admit_hub(hub(7), "Y".into())), Err(Refusal::NoRight(_))));
}

/// The majority rule would mean nothing if one admin could make the admins who outvote the
/// others: making an admin needs a majority of the admins as removing one does.
#[test]
fn one_admin_cannot_make_the_admins_who_would_outvote_the_others() {
    let (fox, owl, elk, mole, vole) = (person(1), person(2), person(3), person(7), person(8));
    let mut log = found(&fox);
    add(&mut log, &fox, &owl, "owl", Role::Admin);
    assert!(is_admin(&log, &owl), "the only admin makes the second alone");
    add_admin(&mut log, &[&fox, &owl], &elk, "elk");
    // Fox alone adds two admins of their own: plain members whose promotions wait.
    let m =
        sign(&mut log, &fox, Body::AddPerson { person: key(&mole), handle: "mole".into(), role: Role::Admin }).unwrap();
    sign(&mut log, &fox, Body::AddPerson { person: key(&vole), handle: "vole".into(), role: Role::Admin }).unwrap();
    assert!(is_person(&log, &mole) && !is_admin(&log, &mole) && !is_admin(&log, &vole));
    assert_eq!(log.state().waiting[&m].change, Change::Promotion);
    assert_eq!(log.state().admins().count(), 3);
    // So they cannot help remove owl: the removal waits for elk (the admins other than owl are
    // fox and elk), and a mole's name on it is refused.
    let r = sign(&mut log, &fox, Body::RemovePerson { person: key(&owl) }).unwrap();
    let e = sign(&mut log, &mole, Body::Endorse { entry: r });
    assert!(matches!(&e, Err(Refusal::NoRight(w)) if w.contains("mole is not an admin")), "{e:?}");
    assert!(is_admin(&log, &owl));
    // Fox can neither sign again nor start the same promotion twice.
    let e = sign(&mut log, &fox, Body::Endorse { entry: m });
    assert!(matches!(&e, Err(Refusal::NoRight(w)) if w.contains("already signed")), "{e:?}");
    let e = sign(&mut log, &fox, Body::SetRole { person: key(&mole), role: Role::Admin });
    assert!(matches!(&e, Err(Refusal::NoRight(w)) if w.contains("already waits")), "{e:?}");
    // A second admin of three completes it, on every hub that holds the entries.
    let mut other = copy(&log);
    sign(&mut log, &owl, Body::Endorse { entry: m }).unwrap();
    assert!(is_admin(&log, &mole) && !is_admin(&log, &vole));
    merge(&mut other, &log);
    assert_eq!(other.state(), log.state());
}

/// An admin being removed while apart cannot slip an admin in: the promotion is an admin's act
/// concurrent with the removal, and does not count.
#[test]
fn an_admin_removed_while_apart_makes_no_admin() {
    let (fox, owl, mole) = (person(1), person(2), person(7));
    let mut north = found(&fox);
    add(&mut north, &fox, &owl, "owl", Role::Admin);
    let mut south = copy(&north);
    // Two admins: owl alone removes fox; fox, apart, adds mole as an admin (waiting for owl).
    sign(&mut north, &owl, Body::RemovePerson { person: key(&fox) }).unwrap();
    assert!(!is_person(&north, &fox));
    sign(&mut south, &fox, Body::AddPerson { person: key(&mole), handle: "mole".into(), role: Role::Admin }).unwrap();
    sync(&mut north, &mut south);
    assert_eq!(north.state(), south.state());
    assert!(!is_person(&north, &mole), "{:?}", north.state().people);
    assert!(north.state().waiting.is_empty(), "{:?}", north.state().waiting);
}

/// Fox and owl, the two admins, remove each other while apart, leaving jay, elk and wren
/// (persons 3 to 5) and no admin; `before` runs while both admins are still there.
fn no_admin_left(before: impl FnOnce(&mut Log)) -> Log {
    let (fox, owl) = (person(1), person(2));
    let mut north = found(&fox);
    add(&mut north, &fox, &owl, "owl", Role::Admin);
    for (seed, h) in [(3, "jay"), (4, "elk"), (5, "wren")] {
        add(&mut north, &fox, &person(seed), h, Role::Member);
    }
    before(&mut north);
    let mut south = copy(&north);
    sign(&mut north, &fox, Body::RemovePerson { person: key(&owl) }).unwrap();
    sign(&mut south, &owl, Body::RemovePerson { person: key(&fox) }).unwrap();
    sync(&mut north, &mut south);
    assert_eq!(north.state().admins().count(), 0, "{:?}", north.state().people);
    north
}

/// Admins who remove each other while apart leave no admin: no one could then admit a hub or
/// revoke a seized laptop. A majority of the people make an admin again; a minority, a removed
/// person or a vote while an admin is left cannot.
#[test]
fn when_no_admin_is_left_a_majority_of_the_people_make_one() {
    let (fox, jay, elk, wren) = (person(1), person(3), person(4), person(5));
    let mut north = no_admin_left(|log| {
        // While an admin is left, admins make admins.
        let e = sign(log, &jay, Body::Recover { person: key(&jay) });
        assert!(matches!(&e, Err(Refusal::NoRight(w)) if w.contains("has an admin")), "{e:?}");
    });
    let e = sign(&mut north, &jay, Body::admit_hub(hub(4), "Van".into()));
    assert!(matches!(e, Err(Refusal::NoRight(_))), "no one may admit a hub now");
    // Three people are left: one vote is not a majority, and no one votes twice.
    sign(&mut north, &jay, Body::Recover { person: key(&elk) }).unwrap();
    assert!(!is_admin(&north, &elk));
    // One vote a person, for whomever: no second vote, for the same person or another.
    for whom in [&elk, &wren] {
        let e = sign(&mut north, &jay, Body::Recover { person: key(whom) });
        assert!(matches!(&e, Err(Refusal::NoRight(w)) if w.contains("jay already voted, for elk")), "{e:?}");
    }
    // Neither a removed admin nor an outsider votes.
    for who in [&fox, &person(9)] {
        let e = sign(&mut north, who, Body::Recover { person: key(&elk) });
        assert!(matches!(e, Err(Refusal::NoRight(_))), "{e:?}");
    }
    // Apart, wren votes for elk and elk for themself: two of three, whichever arrives first.
    let mut other = copy(&north);
    sign(&mut other, &wren, Body::Recover { person: key(&elk) }).unwrap();
    sign(&mut north, &elk, Body::Recover { person: key(&elk) }).unwrap();
    assert!(is_admin(&north, &elk) && is_admin(&other, &elk));
    sync(&mut north, &mut other);
    assert_eq!(north.state(), other.state());
    assert!(north.state().recovery.is_empty(), "{:?}", north.state().recovery);
    assert_eq!(north.state().admins().count(), 1);
    // The new admin works; a vote now is refused.
    sign(&mut north, &elk, Body::admit_hub(hub(4), "Van".into())).unwrap();
    let e = sign(&mut north, &wren, Body::Recover { person: key(&wren) });
    assert!(matches!(&e, Err(Refusal::NoRight(w)) if w.contains("has an admin")), "{e:?}");
}

/// Two people claim one key while apart (each with its proof): whichever claim a hub stored
/// first, the key's entries meet the same verdict at every hub's door, so no hub is wedged
/// refusing what the others took.
#[test]
fn a_key_two_people_claimed_while_apart_meets_the_same_door_everywhere() {
    let (fox, mole, k) = (person(1), person(7), person(50));
    let mut north = found(&fox);
    add(&mut north, &fox, &mole, "mole", Role::Member);
    let mut south = copy(&north);
    sign(&mut north, &fox, Body::AddKey { key: key(&k), proof: key_proof(&k, &key(&fox)) }).unwrap();
    sign(&mut south, &mole, Body::AddKey { key: key(&k), proof: key_proof(&k, &key(&mole)) }).unwrap();
    // At north the key is fox's, an admin's: it admits a hub.
    sign(&mut north, &k, Body::admit_hub(hub(4), "Van".into())).unwrap();
    // South stored mole's claim first; the entry still passes its door, as at north.
    for verdict in south.offer_many(&north.missing_for(&south.heads())) {
        verdict.unwrap();
    }
    sync(&mut north, &mut south);
    assert_eq!(north.len(), south.len());
    assert_eq!(north.state(), south.state());
}

/// A voter who votes again while apart, for someone else, cannot undo a recovery that
/// completed: votes only add, whichever of them sorts first.
#[test]
fn a_vote_made_apart_never_undoes_a_recovery() {
    let (jay, elk, wren) = (person(3), person(4), person(5));
    let base = no_admin_left(|_| {});
    // Jay and wren make elk an admin, who admits a hub.
    let mut north = copy(&base);
    sign(&mut north, &jay, Body::Recover { person: key(&elk) }).unwrap();
    sign(&mut north, &wren, Body::Recover { person: key(&elk) }).unwrap();
    sign(&mut north, &elk, Body::admit_hub(hub(4), "Van".into())).unwrap();
    // Apart, jay votes for wren, with ids that sort before and after jay's first vote.
    for at in 0..8 {
        let mut apart = copy(&base);
        apart.append(&jay, hub(0), at, Body::Recover { person: key(&wren) }).unwrap();
        let mut met = copy(&north);
        sync(&mut met, &mut apart);
        assert_eq!(met.state(), apart.state());
        assert!(is_admin(&met, &elk) && !is_admin(&met, &wren), "at {at}: {:?}", met.state().people);
        assert!(met.state().hub_is_member(&hub(4)));
    }
}

#[test]
fn what_a_removed_admin_signed_before_the_removal_stands_and_re_admission_follows_removal() {
    let (fox, owl, jay) = (person(1), person(2), person(3));
    let mut log = found(&fox);
    add(&mut log, &fox, &owl, "owl", Role::Admin);
    add(&mut log, &owl, &jay, "jay", Role::Member);
    sign(&mut log, &fox, Body::RemovePerson { person: key(&owl) }).unwrap();
    assert!(is_person(&log, &jay), "seen by the remover: it stands");
    add(&mut log, &fox, &owl, "owl", Role::Member);
    assert!(is_person(&log, &owl) && !is_admin(&log, &owl));
}

/// One random step of the property test.
#[derive(Clone, Debug)]
enum Step {
    /// Person `who` at hub `at` signs an action on person `whom`.
    Act {
        at: usize,
        who: usize,
        whom: usize,
        action: u8,
    },
    Sync {
        a: usize,
        b: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..5usize, 0..6usize, 0..6usize, 0..8u8).prop_map(|(at, who, whom, action)| Step::Act { at, who, whom, action }),
        1 => (0..5usize, 0..5usize).prop_map(|(a, b)| Step::Sync { a, b }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random authority work by random people on 2 to 5 partitioned hubs, merged in random
    /// orders: every hub ends with the same people, roles, hubs and policy, and nothing a
    /// non-admin signs ever changes who belongs or the policy.
    #[test]
    fn partitioned_hubs_converge_and_non_admins_change_nothing(hubs in 2..=5usize, steps in prop::collection::vec(step(), 1..40)) {
        let people: Vec<Identity> = (0..6).map(|i| person(100 + i)).collect();
        let mut base = found(&people[0]);
        add(&mut base, &people[0], &people[1], "p1", Role::Admin);
        add_admin(&mut base, &[&people[0], &people[1]], &people[2], "p2");
        add(&mut base, &people[0], &people[3], "p3", Role::Member);
        let mut logs: Vec<Log> = (0..hubs).map(|_| copy(&base)).collect();
        for s in steps {
            match s {
                Step::Sync { a, b } => {
                    let (a, b) = (a % hubs, b % hubs);
                    if a != b {
                        let (x, y) = if a < b { let (l, r) = logs.split_at_mut(b); (&mut l[a], &mut r[0]) } else { let (l, r) = logs.split_at_mut(a); (&mut r[0], &mut l[b]) };
                        sync(x, y);
                    }
                }
                Step::Act { at, who, whom, action } => {
                    let log = &mut logs[at % hubs];
                    let before = (log.state().people.clone(), log.state().hubs.clone(), log.state().policies.clone());
                    let was_admin = is_admin(log, &people[who]);
                    // With no admin left, the people's votes make one: the one thing non-admins do.
                    let no_admin = log.state().admins().count() == 0;
                    let target = key(&people[whom]);
                    let body = match action {
                        0 => Body::AddPerson { person: target, handle: format!("p{whom}"), role: Role::Member },
                        1 => Body::RemovePerson { person: target },
                        2 => Body::SetRole { person: target, role: Role::Admin },
                        3 => Body::SetRole { person: target, role: Role::Member },
                        4 => Body::admit_hub(hub(whom as u8), format!("h{whom}")),
                        6 => policy(log, 1_000 * (whom as i64 + 1), 0, 1),
                        7 => Body::Recover { person: target },
                        _ => match log.state().waiting.keys().next() {
                            Some(w) => Body::Endorse { entry: *w },
                            None => Body::revoke_hub(hub(whom as u8)),
                        },
                    };
                    let r = log.append(&people[who], hub(at as u8), 0, body);
                    if !(was_admin || (action == 7 && no_admin)) {
                        prop_assert!(r.is_err(), "a non-admin's entry was accepted");
                        prop_assert_eq!(&before, &(log.state().people.clone(), log.state().hubs.clone(), log.state().policies.clone()));
                    }
                }
            }
        }
        // Everyone meets everyone, in a random-enough order.
        for _ in 0..2 {
            for a in 0..hubs {
                for b in 0..hubs {
                    if a != b {
                        let from = copy(&logs[b]);
                        merge(&mut logs[a], &from);
                    }
                }
            }
        }
        for l in &logs[1..] {
            prop_assert_eq!(l.len(), logs[0].len());
            prop_assert_eq!(l.state(), logs[0].state());
        }
        // An admin is left, unless admins removed each other (which a person is shown).
        prop_assert!(logs[0].state().admins().count() >= 1 || !logs[0].state().contested.is_empty());
        // What a hub keeps to open without replaying reads back as the state it resolved.
        prop_assert_eq!(Resolved::decode(&logs[0].resolved().encode()), Some(logs[0].resolved()));
        // A state kept at any point and brought forward by the entries stored after it, where
        // that is possible, is the state a replay of every entry resolves.
        let stored: Vec<(Id, Vec<u8>)> = logs[0].entries().map(|(id, e)| (id, e.encode())).collect();
        let mut brought = 0;
        for cut in 1..stored.len() {
            let prefix = Log::load(stored[..cut].iter().map(|(_, b)| b)).unwrap();
            let mut kept = Resolved::decode(&prefix.resolved().encode()).unwrap();
            let mut upto = cut;
            while upto < stored.len() && kept.extend(stored[upto].0, &stored[upto].1) {
                upto += 1;
            }
            let replayed = Log::load(stored[..upto].iter().map(|(_, b)| b)).unwrap();
            prop_assert_eq!(&kept, &replayed.resolved(), "kept at {} and brought forward to {}", cut, upto);
            brought += upto - cut;
        }
        // The common set-up alone (admins made after every head) is brought forward.
        prop_assert!(brought > 0);
    }
}

fn policy(log: &Log, limit: i64, threshold: i64, above: u32) -> Body {
    Body::Policy {
        supersedes: log.state().policy_heads.iter().copied().collect(),
        currency: "EUR".into(),
        limits: vec![aidmesh_mesh::authority::Limit { role: "treasurer".into(), max_minor: limit }],
        threshold_minor: threshold,
        approvals_above_threshold: above,
    }
}

fn record(log: &mut Log, who: &Identity, expense: &str, amount: i64, payee: &str) -> Id {
    let policy = log.state().policy().map(|p| p.id);
    let body = Body::Expense {
        expense: expense.into(),
        amount_minor: amount,
        currency: "EUR".into(),
        payee: payee.into(),
        policy,
    };
    sign(log, who, body).unwrap()
}

fn state_of(log: &Log, expense: &str, amount: i64, payee: &str) -> aidmesh_model::views::ApprovalState {
    log.state().approval(expense, amount, "EUR", payee)
}

#[test]
fn approvals_count_only_from_role_holders_who_neither_recorded_nor_receive_the_money() {
    use aidmesh_model::views::ApprovalState::*;
    let (fox, owl, elk, jay) = (person(1), person(2), person(3), person(4));
    let mut log = found(&fox);
    add(&mut log, &fox, &owl, "owl", Role::Member);
    add(&mut log, &fox, &elk, "elk", Role::Member);
    add(&mut log, &fox, &jay, "jay", Role::Member);
    // A plain member cannot set the policy; an admin can.
    assert!(matches!(
        {
            let p = policy(&log, 50_000, 20_000, 2);
            sign(&mut log, &owl, p)
        },
        Err(Refusal::NoRight(_))
    ));
    {
        let p = policy(&log, 50_000, 20_000, 2);
        sign(&mut log, &fox, p)
    }
    .unwrap();
    sign(&mut log, &fox, Body::Grant { person: key(&owl), role: "treasurer".into() }).unwrap();
    sign(&mut log, &fox, Body::Grant { person: key(&elk), role: "treasurer".into() }).unwrap();
    let small = record(&mut log, &owl, "exp-1", 4_000, "Bakery");
    // The recorder may not approve their own expense, nor may someone without the role, nor the
    // payee: refused at the door, with the reason.
    let e = sign(&mut log, &owl, Body::Approve { recorded: small, approve: true, role: "treasurer".into() });
    assert!(matches!(&e, Err(Refusal::NoRight(w)) if w.contains("owl recorded this expense")), "{e:?}");
    let e = sign(&mut log, &jay, Body::Approve { recorded: small, approve: true, role: "treasurer".into() });
    assert!(matches!(&e, Err(Refusal::NoRight(w)) if w.contains("does not hold")), "{e:?}");
    let to_elk = record(&mut log, &owl, "exp-2", 3_000, "elk");
    let e = sign(&mut log, &elk, Body::Approve { recorded: to_elk, approve: true, role: "treasurer".into() });
    assert!(matches!(&e, Err(Refusal::NoRight(w)) if w.contains("payee")), "{e:?}");
    assert!(matches!(state_of(&log, "exp-1", 4_000, "Bakery"), Unapproved { have: 0, need: 1, .. }));
    sign(&mut log, &elk, Body::Approve { recorded: small, approve: true, role: "treasurer".into() }).unwrap();
    assert_eq!(state_of(&log, "exp-1", 4_000, "Bakery"), Approved { approvers: vec!["elk".into()] });
    // Amended after it was recorded: the approval was for another amount.
    assert!(matches!(state_of(&log, "exp-1", 9_000, "Bakery"), Unapproved { .. }));
    // Above the threshold, two people must approve.
    let big = record(&mut log, &jay, "exp-3", 30_000, "Van hire");
    sign(&mut log, &owl, Body::Approve { recorded: big, approve: true, role: "treasurer".into() }).unwrap();
    assert!(matches!(state_of(&log, "exp-3", 30_000, "Van hire"), Unapproved { have: 1, need: 2, .. }));
    sign(&mut log, &elk, Body::Approve { recorded: big, approve: true, role: "treasurer".into() }).unwrap();
    assert!(matches!(state_of(&log, "exp-3", 30_000, "Van hire"), Approved { .. }));
    // A new policy version judges new expenses only: the old ones keep the version they were
    // recorded under, whatever anyone claims about dates.
    {
        let p = policy(&log, 1_000, 500, 3);
        sign(&mut log, &fox, p)
    }
    .unwrap();
    assert!(matches!(state_of(&log, "exp-3", 30_000, "Van hire"), Approved { .. }));
    assert!(matches!(state_of(&log, "exp-1", 4_000, "Bakery"), Approved { .. }));
    let late = record(&mut log, &jay, "exp-4", 4_000, "Bakery");
    let e = sign(&mut log, &elk, Body::Approve { recorded: late, approve: true, role: "treasurer".into() });
    assert!(matches!(&e, Err(Refusal::NoRight(w)) if w.contains("may not authorise")), "{e:?}");
    // An expense nobody recorded as a person cannot be approved.
    assert!(matches!(state_of(&log, "typed-in", 100, "x"), Unapproved { .. }));
}

#[test]
fn an_approval_made_while_the_role_was_being_taken_away_does_not_count() {
    let (fox, owl, jay) = (person(1), person(2), person(3));
    let mut north = found(&fox);
    add(&mut north, &fox, &owl, "owl", Role::Member);
    add(&mut north, &fox, &jay, "jay", Role::Member);
    {
        let p = policy(&north, 50_000, 40_000, 1);
        sign(&mut north, &fox, p)
    }
    .unwrap();
    sign(&mut north, &fox, Body::Grant { person: key(&owl), role: "treasurer".into() }).unwrap();
    let r = record(&mut north, &jay, "exp-1", 4_000, "Bakery");
    let mut south = copy(&north);
    sign(&mut north, &fox, Body::Ungrant { person: key(&owl), role: "treasurer".into() }).unwrap();
    sign(&mut south, &owl, Body::Approve { recorded: r, approve: true, role: "treasurer".into() }).unwrap();
    assert!(matches!(state_of(&south, "exp-1", 4_000, "Bakery"), aidmesh_model::views::ApprovalState::Approved { .. }));
    sync(&mut north, &mut south);
    for log in [&north, &south] {
        assert!(matches!(
            state_of(log, "exp-1", 4_000, "Bakery"),
            aidmesh_model::views::ApprovalState::Unapproved { .. }
        ));
        assert_eq!(log.state().not_counted.len(), 1);
    }
}

#[test]
fn a_key_is_never_given_twice_and_a_stolen_key_cannot_remove_its_owner_alone() {
    let (fox, owl, mole, owl_laptop) = (person(1), person(2), person(3), person(4));
    let mut log = found(&fox);
    add(&mut log, &fox, &owl, "owl", Role::Admin);
    add(&mut log, &fox, &mole, "mole", Role::Member);
    sign(&mut log, &owl, Body::AddKey { key: key(&owl_laptop), proof: key_proof(&owl_laptop, &key(&owl)) }).unwrap();
    // Mole cannot claim a key they do not hold (the key itself must sign for them)...
    let e = sign(&mut log, &mole, Body::AddKey { key: key(&owl), proof: key_proof(&mole, &key(&mole)) });
    assert!(matches!(&e, Err(Refusal::NoRight(w)) if w.contains("did not sign")), "{e:?}");
    // ...nor one that was given before, even with its holder's help, in use or withdrawn.
    let e = sign(&mut log, &mole, Body::AddKey { key: key(&owl), proof: key_proof(&owl, &key(&mole)) });
    assert!(matches!(&e, Err(Refusal::NoRight(w)) if w.contains("never given twice")), "{e:?}");
    sign(&mut log, &owl, Body::RevokeKey { key: key(&owl_laptop) }).unwrap();
    let again = Body::AddKey { key: key(&owl_laptop), proof: key_proof(&owl_laptop, &key(&mole)) };
    assert!(matches!(sign(&mut log, &mole, again), Err(Refusal::NoRight(w)) if w.contains("never given twice")));
    // Whoever stole owl's laptop key before it was withdrawn removes owl with it, apart: with two
    // admins that needs the other one, so nothing happens.
    let mut north = found(&fox);
    add(&mut north, &fox, &owl, "owl", Role::Admin);
    sign(&mut north, &owl, Body::AddKey { key: key(&owl_laptop), proof: key_proof(&owl_laptop, &key(&owl)) }).unwrap();
    let mut seized = copy(&north);
    sign(&mut seized, &owl_laptop, Body::RemovePerson { person: key(&owl) }).unwrap();
    assert!(is_admin(&seized, &owl), "a removal by the admin's own key waits for the other admins");
    sign(&mut north, &owl, Body::RevokeKey { key: key(&owl_laptop) }).unwrap();
    sync(&mut north, &mut seized);
    assert!(is_admin(&north, &owl) && is_admin(&seized, &owl));
}

#[test]
fn no_approval_is_made_under_a_policy_the_approver_knows_was_replaced() {
    let (fox, owl, jay) = (person(1), person(2), person(3));
    let mut log = found(&fox);
    add(&mut log, &fox, &owl, "owl", Role::Member);
    add(&mut log, &fox, &jay, "jay", Role::Member);
    {
        let p = policy(&log, 50_000, 40_000, 1);
        sign(&mut log, &fox, p)
    }
    .unwrap();
    sign(&mut log, &fox, Body::Grant { person: key(&owl), role: "treasurer".into() }).unwrap();
    let old = log.heads();
    {
        let p = policy(&log, 50_000, 1_000, 2);
        sign(&mut log, &fox, p)
    }
    .unwrap();
    // Jay records under the old policy by citing what came before the new one.
    let old_policy = log.state().policies.values().find(|p| p.threshold_minor == 40_000).unwrap().id;
    let backdated = Entry::sign(
        &jay,
        hub(0),
        log.coalition(),
        old,
        1,
        Body::Expense {
            expense: "exp-9".into(),
            amount_minor: 30_000,
            currency: "EUR".into(),
            payee: "Van".into(),
            policy: Some(old_policy),
        },
    );
    assert!(matches!(log.offer(&backdated.encode()), Ok(Offered::Added(_))));
    let e = sign(&mut log, &owl, Body::Approve { recorded: backdated.id(), approve: true, role: "treasurer".into() });
    assert!(matches!(&e, Err(Refusal::NoRight(w)) if w.contains("replaced")), "{e:?}");
}

/// A log whose resolved state has something in every part: people with keys and roles, hubs
/// admitted and revoked, a promotion waiting, a mutual removal, a policy, an expense approved, an
/// erasure, entries that do not count, a vote for an admin.
fn a_log_with_everything() -> Log {
    let (fox, owl, jay, wren) = (person(1), person(2), person(3), person(4));
    let sealed = Sealed { eph: Ephemeral([1; 32]), slots: vec![Slot([2; 48])], commit: None };
    let mut log = Log::new();
    let body = Body::found(&person(1000), &key(&fox), "Riverside", "fox", "North", Some(sealed.clone()));
    log.append(&fox, hub(0), 0, body).unwrap();
    add(&mut log, &fox, &owl, "owl", Role::Admin);
    add(&mut log, &fox, &jay, "jay", Role::Member);
    let second = person(6);
    sign(&mut log, &jay, Body::AddKey { key: key(&second), proof: key_proof(&second, &key(&jay)) }).unwrap();
    sign(&mut log, &fox, Body::Grant { person: key(&jay), role: "treasurer".into() }).unwrap();
    let admit = Body::AdmitHub { hub: hub(1), name: "Gate".into(), secret: Some(sealed.clone()), after: None };
    sign(&mut log, &fox, admit).unwrap();
    sign(&mut log, &fox, Body::admit_hub(hub(2), "Kitchen".into())).unwrap();
    let turnover = Sealed { commit: Some(Commit([3; 32])), ..sealed };
    sign(&mut log, &fox, Body::RevokeHub { hub: hub(2), rekey: Some(turnover) }).unwrap();
    let p = policy(&log, 10_000, 5_000, 2);
    sign(&mut log, &fox, p).unwrap();
    let recorded = record(&mut log, &owl, "exp-1", 700, "Shop");
    sign(&mut log, &jay, Body::Approve { recorded, approve: true, role: "treasurer".into() }).unwrap();
    sign(&mut log, &fox, Body::Erase { vault: "v-1".into() }).unwrap();
    set_relays(&mut log, &fox, &["https://relay.riverside.example/"]).unwrap();
    // Two admins: making a third waits for the other.
    sign(&mut log, &fox, Body::AddPerson { person: key(&wren), handle: "wren".into(), role: Role::Admin }).unwrap();
    // The two remove each other while apart.
    let mut apart = copy(&log);
    sign(&mut log, &fox, Body::RemovePerson { person: key(&owl) }).unwrap();
    sign(&mut apart, &owl, Body::RemovePerson { person: key(&fox) }).unwrap();
    sign(&mut apart, &owl, Body::admit_hub(hub(3), "Van".into())).unwrap();
    sync(&mut log, &mut apart);
    // No admin is left: jay votes to make wren one (one vote of two).
    sign(&mut log, &jay, Body::Recover { person: key(&wren) }).unwrap();
    log
}

#[test]
fn a_resolved_log_reads_back_whole_and_nothing_else_passes_for_one() {
    let log = a_log_with_everything();
    let st = log.state();
    assert!(st.genesis.is_some() && !st.rekeys.is_empty() && !st.waiting.is_empty() && !st.contested.is_empty());
    assert!(!st.not_counted.is_empty() && !st.erased.is_empty() && !st.approvals.is_empty());
    assert!(!st.removed.is_empty() && !st.revoked_hubs.is_empty() && st.hubs.values().any(|h| h.handed.is_some()));
    assert_eq!(st.relays(), ["https://relay.riverside.example/"]);
    assert!(!st.recovery.is_empty());
    let bytes = log.resolved().encode();
    let back = Resolved::decode(&bytes).expect("it reads back");
    assert_eq!(back, log.resolved());
    // The state's private parts came back too: the state answers as the log's does.
    assert_eq!(back.state.person_of(&key(&person(6))).map(|p| &p.handle), Some(&"jay".to_string()));
    assert_eq!(back.heads, log.heads());
    assert_eq!(back.entries, log.len() as u64);
    // Another form, a cut, or junk is no resolved state (the hub replays its log instead).
    assert_eq!(Resolved::decode(&bytes[..bytes.len() - 1]), None);
    assert_eq!(Resolved::decode(&bytes[1..]), None);
    let mut other = bytes.clone();
    // The form's version digit, right after its name.
    let v = b"aidmesh resolved authority v".len();
    assert!(other[v].is_ascii_digit());
    other[v] = b'9';
    assert_eq!(Resolved::decode(&other), None);
    assert_eq!(Resolved::decode(b""), None);
    // A third of the entries' size or less: it is what opening reads.
    let entries: usize = log.entries().map(|(_, e)| e.encode().len()).sum();
    assert!(bytes.len() * 3 < entries, "{} bytes resolved for {entries} bytes of entries", bytes.len());
}

/// The resolved form is pinned: a change to `State` (or a type in it) changes these bytes, and a
/// hub of the new build would misread what the old one kept. Bump `RESOLVED_FORM` in
/// `authority.rs`, then the digest here.
#[test]
fn the_resolved_form_changes_only_with_its_version() {
    use sha2::{Digest, Sha256};
    let bytes = a_log_with_everything().resolved().encode();
    // The layout after the form's line (which also names the release).
    let layout = &bytes[bytes.iter().position(|b| *b == b'\n').unwrap() + 1..];
    let digest = aidmesh_mesh::hex::encode(Sha256::digest(layout));
    assert_eq!(
        digest, "b5091c78e1a8cbaeb3f48c7b0a0c6bb975958b2bf6f5757a0b3a6eb21473fd93",
        "the resolved form changed: bump RESOLVED_FORM, then this digest"
    );
}

fn relays(log: &Log, urls: &[&str]) -> Body {
    Body::Relays {
        supersedes: log.state().relay_heads.iter().copied().collect(),
        urls: urls.iter().map(|u| u.to_string()).collect(),
    }
}

/// `who` names the relays `urls`, superseding the versions standing in `log`.
fn set_relays(log: &mut Log, who: &Identity, urls: &[&str]) -> Result<Id, Refusal> {
    let body = relays(log, urls);
    sign(log, who, body)
}

#[test]
fn only_admins_name_the_relays_and_versions_set_apart_all_apply() {
    let (fox, owl, elk) = (person(1), person(2), person(3));
    let mut north = found(&fox);
    add(&mut north, &fox, &owl, "owl", Role::Member);
    add_admin(&mut north, &[&fox], &elk, "elk");
    // A plain member cannot name a relay, which would send every hub's traffic through it.
    assert!(matches!(set_relays(&mut north, &owl, &["https://relay.attacker.example/"]), Err(Refusal::NoRight(_))));
    assert!(north.state().relays().is_empty());
    // Addresses that are not https, too many, or twice are refused whoever signs.
    for bad in [
        vec!["http://relay.example.org/"],
        vec!["https://"],
        vec!["https://relay example.org/"],
        vec!["https://relay.riverside.example@evil.example/"],
        vec!["https://evil.example\\@relay.riverside.example/"],
        vec!["https://r.example:99999/"],
        vec!["https://r.example:0/"],
        vec!["https://r.example./"],
        vec!["https://r.example/relay?x=1"],
        vec!["https://r.example"],
        vec!["https://a.example/", "https://a.example/"],
        vec!["https://r.example/"; 9],
    ] {
        assert!(matches!(set_relays(&mut north, &fox, &bad), Err(Refusal::Malformed(_))), "{bad:?}");
    }
    set_relays(&mut north, &fox, &["https://relay.riverside.example/"]).unwrap();
    assert_eq!(north.state().relays(), ["https://relay.riverside.example/"]);
    // Two admins apart name different relays: both apply once they merge, until one supersedes.
    let mut south = copy(&north);
    set_relays(&mut north, &fox, &["https://relay2.riverside.example/"]).unwrap();
    set_relays(&mut south, &elk, &["https://backup.riverside.example/"]).unwrap();
    sync(&mut north, &mut south);
    let both = ["https://backup.riverside.example/", "https://relay2.riverside.example/"];
    assert_eq!(north.state().relays(), both);
    assert_eq!(south.state().relays(), both);
    set_relays(&mut north, &fox, &[]).unwrap();
    sync(&mut north, &mut south);
    assert!(south.state().relays().is_empty(), "no relay: direct addresses only");
    // What the log says is what a hub keeps and brings back at its next opening.
    assert_eq!(copy(&south).state().relays(), south.state().relays());
}
