//! The door for signed changes, on bare Automerge documents: what passes, what is refused and
//! why, and what a sender leaves out.

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ROOT};
use rand_chacha::rand_core::SeedableRng;

use super::*;

fn hub(seed: u64) -> Identity {
    Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(seed))
}

/// A hub's actor: its key, then one run's bytes.
fn actor_of(id: &Identity, run: u8) -> Vec<u8> {
    let mut a = id.public().as_bytes().to_vec();
    a.extend([run; 8]);
    a
}

fn doc_of(actor: &[u8]) -> AutoCommit {
    AutoCommit::new().with_actor(ActorId::from(actor))
}

fn edit(d: &mut AutoCommit, key: &str, n: i64) -> [u8; 32] {
    d.put(ROOT, key, n).unwrap();
    d.commit().unwrap().0
}

/// The changes of `d` after `heads`, as a sync message or incremental save carries them.
fn after(d: &mut AutoCommit, heads: &[automerge::ChangeHash]) -> Vec<ChangeMeta> {
    changes_in(&d.save_after(heads)).unwrap()
}

fn run(
    changes: Vec<ChangeMeta>,
    sigs: &[ChangeSig],
    members: &[&Identity],
    waiting: &mut Waiting,
) -> Result<(), Refused> {
    let keys: Vec<[u8; 32]> = members.iter().map(|m| *m.public().as_bytes()).collect();
    check("movement-2026-11", changes, sigs, |_| false, |_| None, |k| keys.contains(k), waiting)
}

/// A person's actor at a hub: the hub's key, the person's, then one run's bytes.
fn person_actor(hub: &Identity, person: &Identity, run: u8) -> Vec<u8> {
    actor(hub.public().as_bytes(), Some(person.public().as_bytes()), &[run; 8])
}

#[test]
fn one_signature_on_the_latest_change_vouches_for_the_actors_whole_chain() {
    let owl = hub(1);
    let mut d = doc_of(&actor_of(&owl, 1));
    let mut last = [0; 32];
    for i in 0..50 {
        last = edit(&mut d, &format!("r{i}"), i);
    }
    let tip = ChangeSig::sign(&owl, "movement-2026-11", last);
    let mut waiting = Waiting::default();
    run(after(&mut d, &[]), &[tip], &[&owl], &mut waiting).unwrap();
    assert_eq!(waiting.len(), 50);
    let tips = waiting.settle(|_| true);
    assert_eq!(tips, vec![Tip { actor: actor_of(&owl, 1), seq: 50, sig: tip }]);
    assert!(waiting.is_empty());
}

#[test]
fn a_change_that_no_signature_reaches_is_refused_and_nothing_is_remembered() {
    let (owl, fox) = (hub(1), hub(2));
    let mut a = doc_of(&actor_of(&owl, 1));
    let signed = edit(&mut a, "stock", 100);
    let mut b = a.fork().with_actor(ActorId::from(actor_of(&fox, 1)));
    let heads = b.get_heads();
    edit(&mut b, "stock", 10);
    let mut changes = after(&mut a, &[]);
    changes.extend(after(&mut b, &heads));
    let mut waiting = Waiting::default();
    let sigs = [ChangeSig::sign(&owl, "movement-2026-11", signed)];
    let err = run(changes, &sigs, &[&owl, &fox], &mut waiting).unwrap_err();
    assert!(matches!(&err, Refused::Unsigned { hub, .. } if *hub == fox.id().to_string()), "{err}");
    assert!(waiting.is_empty());
}

#[test]
fn a_change_made_under_another_hubs_actor_is_not_vouched_for_by_that_hubs_signature() {
    // fox forges changes as owl's actor, next to owl's genuine, signed chain.
    let (owl, fox) = (hub(1), hub(2));
    let mut genuine = doc_of(&actor_of(&owl, 1));
    edit(&mut genuine, "stock", 100);
    let tip = edit(&mut genuine, "stock", 120);
    let sigs = [ChangeSig::sign(&owl, "movement-2026-11", tip)];
    let mut forged = doc_of(&actor_of(&owl, 1));
    for n in 0..3 {
        edit(&mut forged, "stock", n);
    }
    let forged = after(&mut forged, &[]);
    // Under a number owl used: unsigned, so refused as such, and owl is not framed as a hub
    // that made two changes under one number.
    let mut changes = after(&mut genuine, &[]);
    changes.push(forged[0].clone());
    let err = run(changes, &sigs, &[&owl, &fox], &mut Waiting::default()).unwrap_err();
    assert!(matches!(err, Refused::Unsigned { .. }), "{err}");
    // Under the next number, built on a chain owl never signed: nothing vouches for it.
    let mut changes = after(&mut genuine, &[]);
    changes.push(forged[2].clone());
    let err = run(changes, &sigs, &[&owl, &fox], &mut Waiting::default()).unwrap_err();
    assert!(matches!(err, Refused::Unsigned { .. }), "{err}");
}

#[test]
fn a_signature_by_another_key_a_non_member_or_another_document_is_refused() {
    let (owl, fox) = (hub(1), hub(2));
    let mut d = doc_of(&actor_of(&owl, 1));
    let h = edit(&mut d, "stock", 1);
    let changes = after(&mut d, &[]);
    let by_fox = ChangeSig::sign(&fox, "movement-2026-11", h);
    let err = run(changes.clone(), &[by_fox], &[&owl, &fox], &mut Waiting::default()).unwrap_err();
    assert!(matches!(err, Refused::BadSignature { .. }), "{err}");
    let other_doc = ChangeSig::sign(&owl, "movement-2026-10", h);
    let err = run(changes.clone(), &[other_doc], &[&owl], &mut Waiting::default()).unwrap_err();
    assert!(matches!(err, Refused::BadSignature { .. }), "{err}");
    let good = ChangeSig::sign(&owl, "movement-2026-11", h);
    let err = run(changes, &[good], &[&fox], &mut Waiting::default()).unwrap_err();
    assert!(matches!(err, Refused::NotMember { .. }), "{err}");
}

#[test]
fn a_persons_changes_pass_with_the_hubs_signature_and_the_persons_and_keep_both() {
    let (owl, ana) = (hub(1), hub(11));
    let actor = person_actor(&owl, &ana, 1);
    assert_eq!((hub_key(&actor), person_key(&actor)), (Some(*owl.public().as_bytes()), Some(*ana.public().as_bytes())));
    let mut d = doc_of(&actor);
    let mut last = [0; 32];
    for i in 0..5 {
        last = edit(&mut d, &format!("r{i}"), i);
    }
    let tip = ChangeSig::sign_by(&owl, &ana, "movement-2026-11", last);
    let mut waiting = Waiting::default();
    run(after(&mut d, &[]), &[tip], &[&owl], &mut waiting).unwrap();
    assert_eq!(waiting.settle(|_| true), vec![Tip { actor, seq: 5, sig: tip }]);
    // As a frame carries them: two items, read back as one signature between two others.
    let (a, b) = (ChangeSig::sign(&owl, "d", [1; 32]), ChangeSig::sign(&owl, "d", [2; 32]));
    let items: Vec<[u8; SIG_LEN]> = [a, tip, b].iter().flat_map(ChangeSig::items).collect();
    assert_eq!(items.len(), 4);
    assert_eq!(ChangeSig::from_items(items.iter().map(|i| i.as_slice())), vec![a, tip, b]);
    assert_eq!(ChangeSig::from_bytes(&tip.to_bytes()), Some(tip));
}

#[test]
fn a_change_credited_to_a_person_without_their_signature_is_refused() {
    let (owl, fox, ana, bea) = (hub(1), hub(2), hub(11), hub(12));
    // Hub fox credits its change to ana, whose key it does not hold.
    let mut d = doc_of(&person_actor(&fox, &ana, 1));
    let h = edit(&mut d, "stock", 10);
    let changes = after(&mut d, &[]);
    let cases = [
        ("the hub's signature only", ChangeSig::sign(&fox, "movement-2026-11", h)),
        ("another person's signature", ChangeSig::sign_by(&fox, &bea, "movement-2026-11", h)),
        ("ana's signature for another document", {
            let mut s = ChangeSig::sign(&fox, "movement-2026-11", h);
            s.person = ChangeSig::sign_by(&fox, &ana, "movement-2026-10", h).person;
            s
        }),
    ];
    for (what, sig) in cases {
        let mut waiting = Waiting::default();
        let err = run(changes.clone(), &[sig], &[&owl, &fox], &mut waiting).unwrap_err();
        assert!(
            matches!(&err, Refused::PersonUnsigned { hub, person, .. }
                if *hub == fox.id().to_string() && person == &hex::encode(&ana.public().as_bytes()[..8])),
            "{what}: {err}"
        );
        assert!(waiting.is_empty(), "{what}");
    }
    // Signed by both: taken. The person's signature does not stand for the hub's.
    let both = ChangeSig::sign_by(&fox, &ana, "movement-2026-11", h);
    run(changes.clone(), &[both], &[&owl, &fox], &mut Waiting::default()).unwrap();
    let mut no_hub = both;
    no_hub.sig = [0; 64];
    let err = run(changes, &[no_hub], &[&owl, &fox], &mut Waiting::default()).unwrap_err();
    assert!(matches!(err, Refused::BadSignature { .. }), "{err}");
    // A hub's own actor with a person's signature stuck on.
    let mut d = doc_of(&actor_of(&owl, 1));
    let h = edit(&mut d, "stock", 1);
    let stray = ChangeSig::sign_by(&owl, &ana, "movement-2026-11", h);
    let err = run(after(&mut d, &[]), &[stray], &[&owl], &mut Waiting::default()).unwrap_err();
    assert!(matches!(err, Refused::StrayPersonSignature { .. }), "{err}");
}

#[test]
fn an_actor_without_a_hub_key_is_refused() {
    let mut d = doc_of(&[7u8; 16]);
    edit(&mut d, "stock", 1);
    let err = run(after(&mut d, &[]), &[], &[], &mut Waiting::default()).unwrap_err();
    assert!(matches!(err, Refused::NoKey { .. }), "{err}");
}

#[test]
fn changes_already_held_need_no_signature() {
    let owl = hub(1);
    let mut d = doc_of(&actor_of(&owl, 1));
    edit(&mut d, "stock", 1);
    let changes = after(&mut d, &[]);
    check("movement-2026-11", changes, &[], |_| true, |_| None, |_| false, &mut Waiting::default()).unwrap();
}

#[test]
fn later_changes_that_came_first_vouch_for_the_earlier_ones_when_they_come() {
    // A Bloom filter's false positive: the peer sends owl's changes 3..=5 first (they wait for
    // change 2), then change 2 with the same tip's signature.
    let owl = hub(1);
    let mut d = doc_of(&actor_of(&owl, 1));
    edit(&mut d, "a", 1);
    let one = d.get_heads();
    edit(&mut d, "b", 2);
    let two = d.get_heads();
    edit(&mut d, "c", 3);
    edit(&mut d, "d", 4);
    let tip = edit(&mut d, "e", 5);
    let sig = ChangeSig::sign(&owl, "movement-2026-11", tip);
    let held: HashSet<[u8; 32]> = [one[0].0].into();
    let mut waiting = Waiting::default();
    let later = after(&mut d, &two);
    check("movement-2026-11", later, &[sig], |h| held.contains(h), |_| None, |_| true, &mut waiting).unwrap();
    assert_eq!(waiting.settle(|h| held.contains(h)), vec![], "nothing is held yet");
    let second: Vec<ChangeMeta> = after(&mut d, &one).into_iter().filter(|c| c.seq == 2).collect();
    check("movement-2026-11", second, &[sig], |h| held.contains(h), |_| None, |_| true, &mut waiting).unwrap();
    let tips = waiting.settle(|_| true);
    assert_eq!(tips.len(), 1);
    assert_eq!(tips[0].seq, 5);
}

#[test]
fn a_whole_document_and_chunks_one_after_another_are_read_and_anything_else_is_named() {
    let owl = hub(1);
    let mut d = doc_of(&actor_of(&owl, 1));
    edit(&mut d, "a", 1);
    edit(&mut d, "b", 2);
    let whole = changes_in(&d.save()).unwrap();
    assert_eq!(whole.len(), 2);
    let hashes = |c: Vec<ChangeMeta>| c.into_iter().map(|c| (c.hash, c.seq, c.deps)).collect::<Vec<_>>();
    assert_eq!(hashes(after(&mut d, &[])), hashes(whole));
    assert_eq!(changes_in(&[]).unwrap(), vec![]);
    let saved = d.save();
    assert_eq!(changes_in(&saved[..saved.len() - 3]), Err(BadBytes::Cut));
    assert_eq!(changes_in(b"not automerge at all"), Err(BadBytes::NoHeader));
    let mut odd = saved.clone();
    odd[8] = 3;
    assert_eq!(changes_in(&odd), Err(BadBytes::Kind(3)));
    let mut damaged = d.save_after(&[]);
    let n = damaged.len();
    damaged[n - 1] ^= 0xff;
    assert!(matches!(changes_in(&damaged), Err(BadBytes::Change(_))), "{:?}", changes_in(&damaged));
}

#[test]
fn a_whole_document_alone_is_kept_loaded_and_anything_more_is_only_read() {
    let owl = hub(1);
    let mut d = doc_of(&actor_of(&owl, 1));
    edit(&mut d, "a", 1);
    edit(&mut d, "b", 2);
    let saved = d.save();
    let (metas, kept) = changes_in_keeping(&saved).unwrap();
    assert_eq!(metas, changes_in(&saved).unwrap());
    assert_eq!(kept.expect("one whole save is kept").get_heads(), d.get_heads());
    // A save followed by more, or changes alone: read, nothing kept.
    edit(&mut d, "c", 3);
    let mut more = saved.clone();
    more.extend(d.save_after(&[]));
    let (metas, kept) = changes_in_keeping(&more).unwrap();
    assert!(kept.is_none());
    assert_eq!(metas, changes_in(&more).unwrap());
    assert!(changes_in_keeping(&d.save_after(&[])).unwrap().1.is_none());
    // Bad bytes are named as by `changes_in`, and nothing is loaded in part.
    assert_eq!(changes_in_keeping(&saved[..saved.len() - 3]).err(), Some(BadBytes::Cut));
    let mut damaged = saved.clone();
    let n = damaged.len();
    damaged[n - 1] ^= 0xff;
    assert!(matches!(changes_in_keeping(&damaged), Err(BadBytes::Document(_))));
}

#[test]
fn the_tips_a_sender_vouches_for_are_each_actors_latest_change() {
    let (owl, fox) = (hub(1), hub(2));
    let mut a = doc_of(&actor_of(&owl, 1));
    edit(&mut a, "a", 1);
    let owl_tip = edit(&mut a, "a", 2);
    let mut b = a.fork().with_actor(ActorId::from(actor_of(&fox, 1)));
    let fox_tip = edit(&mut b, "b", 1);
    let tips = actor_tips(&after(&mut b, &[]));
    let mut want = vec![(actor_of(&owl, 1), 2, owl_tip), (actor_of(&fox, 1), 1, fox_tip)];
    want.sort();
    assert_eq!(tips, want);
    let sig = ChangeSig::sign(&owl, "d", owl_tip);
    assert_eq!(ChangeSig::from_bytes(&sig.to_bytes()), Some(sig));
    assert_eq!(ChangeSig::from_bytes(&[0; 95]), None);
}

#[test]
fn two_different_changes_under_one_number_name_the_hub_that_made_them() {
    let owl = hub(1);
    let mut a = doc_of(&actor_of(&owl, 1));
    edit(&mut a, "stock", 1);
    let base = a.get_heads();
    let mut b = a.fork().with_actor(ActorId::from(actor_of(&owl, 1)));
    let one = edit(&mut a, "stock", 100);
    let other = edit(&mut b, "stock", 10);
    let mut changes = after(&mut a, &base);
    changes.extend(after(&mut b, &base));
    let sigs = [ChangeSig::sign(&owl, "movement-2026-11", one), ChangeSig::sign(&owl, "movement-2026-11", other)];
    let held: HashSet<[u8; 32]> = [base[0].0].into();
    let err =
        check("movement-2026-11", changes, &sigs, |h| held.contains(h), |_| None, |_| true, &mut Waiting::default())
            .unwrap_err();
    assert_eq!(err, Refused::TwoChanges { hub: owl.id().to_string(), seq: 2 });
    // The same, when this hub holds (and kept the signature of) the other one.
    let err = check(
        "movement-2026-11",
        after(&mut b, &base),
        &sigs[1..],
        |h| held.contains(h),
        |_| Some(2),
        |_| true,
        &mut Waiting::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Refused::TwoChanges { seq: 2, .. }), "{err}");
}

#[test]
fn a_long_chain_with_many_signatures_costs_one_check_per_actor() {
    // 5,000 changes, each signed (as a flooding member would send them): the door checks the
    // latest one and walks the chain once.
    let owl = hub(1);
    let mut d = doc_of(&actor_of(&owl, 1));
    let mut sigs = Vec::new();
    for i in 0..5_000 {
        let h = edit(&mut d, "n", i);
        sigs.push(ChangeSig { hash: h, sig: [0; 64], person: None });
    }
    let last = sigs.pop().unwrap().hash;
    sigs.push(ChangeSig::sign(&owl, "movement-2026-11", last));
    let start = std::time::Instant::now();
    run(after(&mut d, &[]), &sigs, &[&owl], &mut Waiting::default()).unwrap();
    assert!(start.elapsed() < std::time::Duration::from_secs(5), "{:?}", start.elapsed());
}

#[test]
fn a_whole_document_goes_without_the_changes_that_wait_in_it() {
    use automerge::sync::{Message, MessageVersion};
    let owl = hub(1);
    let mut a = doc_of(&actor_of(&owl, 1));
    edit(&mut a, "a", 1);
    let mut b = a.fork();
    edit(&mut b, "b", 2);
    let mut whole = a.save();
    whole.extend(b.save_after(&a.get_heads()));
    let mut msg = Message {
        heads: vec![],
        need: vec![],
        have: vec![],
        changes: whole.into(),
        flags: None,
        version: MessageVersion::V2,
    };
    drop_orphans(&mut msg).unwrap();
    assert_eq!(msg.changes.iter().next().unwrap(), &a.save()[..]);
}

#[test]
fn a_sender_vouches_with_its_tip_its_own_key_or_a_voucher_that_goes_along() {
    let (owl, fox) = (hub(1), hub(2));
    let actor = actor_of(&owl, 1);
    let tip = Tip { actor: actor.clone(), seq: 4, sig: ChangeSig { hash: [4; 32], sig: [4; 64], person: None } };
    let voucher = Voucher {
        actor: actor.clone(),
        seq: 7,
        sig: ChangeSig { hash: [7; 32], sig: [7; 64], person: None },
        change: vec![7],
    };
    let d = "movement-2026-11";
    assert_eq!(vouch_for(d, &actor, 3, [3; 32], Some(&tip), Some(&voucher), &fox), Some(Vouch::Tip(tip.sig, None)));
    assert_eq!(
        vouch_for(d, &actor, 5, [5; 32], Some(&tip), Some(&voucher), &fox),
        Some(Vouch::Voucher(voucher.sig, vec![7]))
    );
    assert_eq!(vouch_for(d, &actor, 8, [8; 32], Some(&tip), Some(&voucher), &fox), Some(Vouch::Stale(tip.sig)));
    assert_eq!(vouch_for(d, &actor, 8, [8; 32], None, None, &fox), None);
    let Some(Vouch::Tip(sig, Some(new))) = vouch_for(d, &actor, 8, [8; 32], Some(&tip), None, &owl) else { panic!() };
    assert!(sig.holds(d, owl.public().as_bytes()));
    assert_eq!(new.seq, 8);
}

#[test]
fn a_voucher_carries_its_actors_waiting_changes_so_the_chain_has_no_gap() {
    // owl's changes 3 and 4 build on fox's change, which this hub lacks; only 4 is signed.
    let (owl, fox) = (hub(1), hub(2));
    let mut d = doc_of(&actor_of(&owl, 1));
    edit(&mut d, "a", 1);
    edit(&mut d, "a", 2);
    let mut other = d.fork().with_actor(ActorId::from(actor_of(&fox, 1)));
    edit(&mut other, "x", 1);
    d.merge(&mut other).unwrap();
    edit(&mut d, "a", 3);
    let tip = edit(&mut d, "a", 4);
    let owls: Vec<ChangeMeta> = after(&mut d, &[]).into_iter().filter(|c| c.actor == actor_of(&owl, 1)).collect();
    let sig = ChangeSig::sign(&owl, "movement-2026-11", tip);
    let mut waiting = Waiting::default();
    check("movement-2026-11", owls.clone(), &[sig], |_| false, |_| None, |_| true, &mut waiting).unwrap();
    let held: HashSet<[u8; 32]> = owls[..2].iter().map(|c| c.hash).collect();
    assert_eq!(waiting.settle(|h| held.contains(h)), vec![]);
    let vouchers = waiting.vouchers();
    assert_eq!(vouchers.len(), 1);
    assert_eq!(vouchers[0].change, [owls[2].bytes.clone(), owls[3].bytes.clone()].concat(), "3 then 4");
    // A peer that gets the two held changes with the voucher takes them.
    let mut sent: Vec<u8> = owls[..2].iter().flat_map(|c| c.bytes.clone()).collect();
    sent.extend(&vouchers[0].change);
    let changes = changes_in(&sent).unwrap();
    check("movement-2026-11", changes, &[vouchers[0].sig], |_| false, |_| None, |_| true, &mut Waiting::default())
        .unwrap();
}
