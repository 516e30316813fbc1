//! The authority log at 100,000 entries, measured in one run (in memory, release build):
//!
//!     cargo bench -p aidmesh-mesh --bench authority
//!
//! Workload: a coalition of 40 hubs and 200 people (10 admins, 20 treasurers), a purchase
//! policy, then expenses recorded by people and approved by treasurers until the log holds
//! `AIDMESH_BENCH_ENTRIES` entries (100,000 by default), each entry after the previous one.
//!
//! 1. Building the log: each entry signed and passed through the door.
//! 2. Loading it back from its bytes (what a hub does the first time it needs authority).
//! 3. The door for one new entry after every head (the common case): median and worst of 1,000.
//! 4. The door for an entry that cites an older head (made while apart): one replay.
//! 5. A removal (it replays the whole log), and a peer's request for what it lacks.

use std::time::Instant;

use aidmesh_mesh::authority::{Body, Key, Limit, Log, Offered};
use aidmesh_mesh::{Identity, Role};
use rand_chacha::rand_core::SeedableRng;

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// The binaries' allocator, so that what is measured is what they run.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("authority bench: run with `cargo bench -p aidmesh-mesh --bench authority`");
        return;
    }
    let target: usize = std::env::var("AIDMESH_BENCH_ENTRIES").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(42);
    let people: Vec<Identity> = (0..200).map(|_| Identity::generate(&mut rng)).collect();
    let hubs: Vec<Identity> = (0..40).map(|_| Identity::generate(&mut rng)).collect();
    let hub = |i: usize| Key::of(&hubs[i % hubs.len()]);
    let founder = &people[0];
    let mut log = Log::new();
    let build = Instant::now();
    log.append(founder, hub(0), 0, Body::found(&hubs[0], &Key::of(founder), "Bench", "p0", "h0", None)).unwrap();
    for (i, p) in people.iter().enumerate().skip(1) {
        let role = if i < 10 { Role::Admin } else { Role::Member };
        let (id, _) = log
            .append(founder, hub(0), 0, Body::AddPerson { person: Key::of(p), handle: format!("p{i}"), role })
            .unwrap();
        // Making an admin needs a majority of the admins: the others endorse it.
        for a in &people[1..i.min(10)] {
            if log.state().waiting.contains_key(&id) {
                log.append(a, hub(0), 0, Body::Endorse { entry: id }).unwrap();
            }
        }
    }
    for (i, h) in hubs.iter().enumerate().skip(1) {
        log.append(founder, hub(0), 0, Body::admit_hub(Key::of(h), format!("h{i}"))).unwrap();
    }
    for p in &people[10..30] {
        log.append(founder, hub(0), 0, Body::Grant { person: Key::of(p), role: "treasurer".into() }).unwrap();
    }
    let policy = Body::Policy {
        supersedes: vec![],
        currency: "EUR".into(),
        limits: vec![Limit { role: "treasurer".into(), max_minor: 1_000_000 }],
        threshold_minor: 500_000,
        approvals_above_threshold: 2,
    };
    log.append(founder, hub(0), 0, policy).unwrap();
    let policy = log.state().policy().map(|p| p.id);
    let mut n = 0usize;
    while log.len() < target {
        let recorder = &people[30 + n % 170];
        let (id, _) = log
            .append(
                recorder,
                hub(n),
                n as i64,
                Body::Expense {
                    expense: format!("exp-{n}"),
                    amount_minor: 1_000 + n as i64 % 90_000,
                    currency: "EUR".into(),
                    payee: "Shop".into(),
                    policy,
                },
            )
            .unwrap();
        let approver = &people[10 + n % 20];
        log.append(approver, hub(n), n as i64, Body::Approve { recorded: id, approve: true, role: "treasurer".into() })
            .unwrap();
        n += 1;
    }
    let built = build.elapsed();
    let bytes: Vec<Vec<u8>> = log.entries().map(|(_, e)| e.encode()).collect();
    let size: usize = bytes.iter().map(Vec::len).sum();
    println!(
        "1. built {} entries ({} expenses approved) in {:.1} s: {:.1} µs an entry through the door; {:.1} MB of entries",
        log.len(),
        n,
        built.as_secs_f64(),
        built.as_secs_f64() * 1e6 / log.len() as f64,
        size as f64 / 1e6
    );

    let ids: Vec<aidmesh_mesh::authority::Id> = log.entries().map(|(id, _)| id).collect();
    let load = Instant::now();
    let loaded = Log::load_with_ids(ids.into_iter().zip(&bytes)).unwrap();
    let load = load.elapsed();
    assert_eq!(loaded.state(), log.state());
    let hashing = Instant::now();
    let _ = Log::load(&bytes).unwrap();
    println!(
        "2. load from stored bytes and ids, and resolve (what a hub does): {:.0} ms; hashing every entry too: {:.0} ms",
        ms(load),
        ms(hashing.elapsed())
    );
    // What a hub keeps instead, and reads at open when no entry came since.
    let t = Instant::now();
    let kept = loaded.resolved().encode();
    let encode = t.elapsed();
    let t = Instant::now();
    let back = aidmesh_mesh::authority::Resolved::decode(&kept).unwrap();
    let decode = t.elapsed();
    assert_eq!(back, loaded.resolved());
    println!(
        "2b. the resolved state kept instead: {:.1} MB; encode {:.0} ms, decode {:.0} ms",
        kept.len() as f64 / 1e6,
        ms(encode),
        ms(decode)
    );

    let mut times = Vec::new();
    let mut log = loaded;
    for i in 0..1_000 {
        let e = aidmesh_mesh::authority::Entry::sign(
            &people[1],
            hub(i),
            log.coalition(),
            log.heads(),
            0,
            Body::admit_hub(Key::of(&Identity::generate(&mut rng)), format!("x{i}")),
        )
        .encode();
        let t = Instant::now();
        assert!(matches!(log.offer(&e), Ok(Offered::Added(_))));
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "3. door for a new entry after every head: median {:.3} ms, worst {:.3} ms (signature check included)",
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );

    let old_heads = log.heads();
    log.append(&people[2], hub(1), 0, Body::admit_hub(Key::of(&Identity::generate(&mut rng)), "y".into())).unwrap();
    let apart = aidmesh_mesh::authority::Entry::sign(
        &people[3],
        hub(2),
        log.coalition(),
        old_heads,
        0,
        Body::admit_hub(Key::of(&Identity::generate(&mut rng)), "z".into()),
    )
    .encode();
    let t = Instant::now();
    assert!(matches!(log.offer(&apart), Ok(Offered::Added(_))));
    println!(
        "4. door for an entry made while apart (one replay of its past, one of the log): {:.0} ms",
        ms(t.elapsed())
    );

    // A branch of 1,000 entries made apart (each after the previous one, the first after an
    // older head) arrives in one batch, as a bundle brings it.
    let fork = log.heads();
    log.append(&people[2], hub(1), 0, Body::admit_hub(Key::of(&Identity::generate(&mut rng)), "w".into())).unwrap();
    let mut prev = fork;
    let mut branch = Vec::new();
    for i in 0..1_000 {
        let e = aidmesh_mesh::authority::Entry::sign(
            &people[4],
            hub(3),
            log.coalition(),
            prev.clone(),
            0,
            Body::admit_hub(Key::of(&Identity::generate(&mut rng)), format!("b{i}")),
        );
        prev = vec![e.id()];
        branch.push(e.encode());
    }
    let t = Instant::now();
    let verdicts = log.offer_many(&branch);
    assert!(verdicts.iter().all(|v| matches!(v, Ok(Offered::Added(_)))));
    println!(
        "   a branch of 1,000 entries made apart, in one batch: {:.0} ms ({:.2} ms an entry)",
        ms(t.elapsed()),
        ms(t.elapsed()) / 1_000.0
    );
    let t = Instant::now();
    log.append(&people[1], hub(0), 0, Body::RemovePerson { person: Key::of(&people[150]) }).unwrap();
    println!("5. a removal (replays the log): {:.0} ms", ms(t.elapsed()));
    let heads = log.heads();
    let t = Instant::now();
    let missing = log.missing_for(&heads);
    println!(
        "   a peer that holds everything asks what it lacks: {} entries, {:.1} ms",
        missing.len(),
        ms(t.elapsed())
    );
}
