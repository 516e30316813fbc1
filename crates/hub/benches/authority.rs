//! A hub whose authority log holds 100,000 entries, on the hub bench's coalition (842k records;
//! `cargo bench -p aidmesh-hub --bench hub` generates it into target/bench-data first):
//!
//!     cargo bench -p aidmesh-hub --bench authority
//!
//! The coalition is copied to target/bench-data/authority.aidmesh; its founder adds 200 people
//! (20 treasurers) and a purchase policy; then people record expenses and treasurers approve
//! them, each entry after the previous one, offered to the hub's door in batches of 1,000 (as a
//! bundle or a first sync brings them) until the log holds 100,000 entries.
//!
//! Prints: the time to bring the entries in, and for the resting hub's upkeep to keep the log's
//! resolved state; then, after closing, the time to open and compute the overview (which reads
//! the expenses' approval state) from the kept state, and side by side, from a store where an
//! entry came after the state was kept (the log is replayed); the members (what the TLS check
//! reads), a new entry through the door, and the CPU a running hub spends on its idle tick
//! (refresh the members, upkeep, every 500 ms) for 10 s once upkeep has rested after those
//! entries, measured from this process's CPU time.

use aidmesh_hub::Driver;
use std::path::PathBuf;
use std::time::Instant;

use aidmesh_hub::model::Timestamp;
use aidmesh_hub::{Config, Hub, ManualClock};
use aidmesh_mesh::authority::{Body, Entry, Id, Key};
use aidmesh_mesh::Identity;
use rand_chacha::rand_core::SeedableRng;
use serde_json::json;

const PASS: &str = "bench passphrase";

fn config(clock: &ManualClock) -> Config {
    Config { handle: "bench".into(), clock: Box::new(clock.clone()), seed: [5; 32] }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// CPU time (user + system) this process has used, from /proc/self/stat (in clock ticks of
/// 10 ms, Linux's USER_HZ).
fn cpu() -> std::time::Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name and state.
    std::time::Duration::from_millis((f[11] + f[12]) * 10)
}

// The binaries' allocator, so that what is measured is what they run.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("authority bench: run with `cargo bench -p aidmesh-hub --bench authority`");
        return;
    }
    let target: usize = std::env::var("AIDMESH_BENCH_ENTRIES").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-data");
    let source = dir.join("coalition-1.aidmesh");
    assert!(source.exists(), "run `cargo bench -p aidmesh-hub --bench hub` first: it generates the coalition");
    let store = dir.join("authority.aidmesh");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", store.display()));
    }
    std::fs::copy(&source, &store).unwrap();
    let wal = format!("{}-wal", source.display());
    if std::path::Path::new(&wal).exists() {
        std::fs::copy(&wal, format!("{}-wal", store.display())).unwrap();
    }
    let clock = ManualClock::at(Timestamp::parse("2026-11-25T12:00:00Z").unwrap());
    let mut hub = Hub::open(&store, PASS, config(&clock)).unwrap();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    let people: Vec<Identity> = (0..200).map(|_| Identity::generate(&mut rng)).collect();
    for (i, p) in people.iter().enumerate() {
        hub.add_person(&Key::of(p).hex(), &format!("p{i}"), false).unwrap();
    }
    for i in 0..20 {
        hub.grant(&format!("p{i}"), "treasurer", true).unwrap();
    }
    hub.add(
        aidmesh_hub::model::Kind::Policy,
        json!({"currency": "EUR", "limits": [{"role": "treasurer", "max_minor": 1_000_000}],
               "threshold_minor": 500_000, "approvals_above_threshold": 2, "effective": "2026-01-01T00:00:00Z"})
        .as_object()
        .unwrap()
        .clone(),
    )
    .unwrap();
    let state = hub.authority().unwrap();
    let coalition = Some(Id::parse(&hub.coalition_id().unwrap().unwrap()).unwrap());
    let policy = {
        // The policy in force is the log's latest head here: its id names expenses' policy.
        let entries = hub.authority_entries().unwrap();
        let last: Entry = serde_json::from_slice(entries.last().unwrap()).unwrap();
        Some(last.id())
    };
    let mut heads = hub.authority_heads().unwrap();
    let hub_key = Key::parse(&hub.public_key()).unwrap();
    let mut batch = Vec::new();
    let mut n = 0usize;
    let mut total = state.entries;
    let bring = Instant::now();
    while total < target {
        let e = Entry::sign(
            &people[20 + n % 180],
            hub_key,
            coalition,
            heads.clone(),
            n as i64,
            Body::Expense {
                expense: format!("bench-exp-{n}"),
                amount_minor: 1_000 + n as i64 % 90_000,
                currency: "EUR".into(),
                payee: "Shop".into(),
                policy,
            },
        );
        let recorded = e.id();
        let a = Entry::sign(
            &people[n % 20],
            hub_key,
            coalition,
            vec![recorded],
            n as i64,
            Body::Approve { recorded, approve: true, role: "treasurer".into() },
        );
        heads = vec![a.id()];
        batch.push(e.encode());
        batch.push(a.encode());
        total += 2;
        n += 1;
        if batch.len() >= 1_000 || total >= target {
            let r = hub.offer_authority(&batch, "bench").unwrap();
            assert!(r.refused.is_empty(), "{:?}", r.refused);
            batch.clear();
        }
    }
    println!(
        "brought in {} entries in {:.1} s ({:.0} µs an entry through the door, stored in batches of 1,000)",
        total,
        bring.elapsed().as_secs_f64(),
        bring.elapsed().as_secs_f64() * 1e6 / (total - state.entries) as f64
    );
    // The resting hub's upkeep, step by step, until it has nothing left (the kept state among it).
    let t = Instant::now();
    // The first look finds it was written since it last looked: busy.
    hub.upkeep().unwrap();
    let mut steps = 0;
    while hub.upkeep().unwrap() {
        steps += 1;
    }
    println!("upkeep until rest, keeping the resolved state among its steps: {:.0} ms, {steps} steps", ms(t.elapsed()));
    drop(hub);

    // Open to a usable overview: from the kept state, then from a store where one entry came
    // after it was kept (the log is loaded and replayed), each twice, side by side.
    let open = |label: &str| {
        let t = Instant::now();
        let hub = Hub::open(&store, PASS, config(&clock)).unwrap();
        let opened = t.elapsed();
        let o = hub.overview().unwrap();
        let usable = t.elapsed();
        let t = Instant::now();
        let members = hub.members().unwrap();
        let m = t.elapsed();
        println!(
            "{label}: open {:.0} ms; open to a usable overview {:.0} ms ({} expenses waiting shown, the log {}); \
             members then {:.2} ms ({} hubs)",
            ms(opened),
            ms(usable),
            o.unapproved_expenses.len(),
            if hub.authority_log_loaded() { "loaded and replayed" } else { "not loaded" },
            ms(m),
            members.members.len()
        );
        hub
    };
    for _ in 0..2 {
        drop(open("kept state"));
    }
    // A late expense of 5 EUR, after every head.
    let late = |hub: &Hub, name: String| {
        let body =
            Body::Expense { expense: name, amount_minor: 500, currency: "EUR".into(), payee: "Shop".into(), policy };
        Entry::sign(&people[40], hub_key, coalition, hub.authority_heads().unwrap(), 0, body)
    };
    let mut hub = open("kept state");
    let e = late(&hub, "after-kept".into());
    assert_eq!(hub.offer_authority(&[e.encode()], "bench").unwrap().added, 1);
    drop(hub);
    for _ in 0..2 {
        drop(open("an entry since the kept state (brought forward)"));
    }
    let mut hub = open("an entry since the kept state (brought forward)");
    // A running hub's upkeep, once it rests, keeps the state brought forward and loads the log,
    // so that the entries below pass the door at once.
    let t = Instant::now();
    let before = cpu();
    hub.upkeep().unwrap();
    while hub.upkeep().unwrap() {}
    assert!(hub.authority_log_loaded());
    println!(
        "upkeep after opening, until rest (the kept state written again, the log loaded): {:.0} ms, {} ms of CPU",
        ms(t.elapsed()),
        (cpu() - before).as_millis()
    );
    let mut times = Vec::new();
    for i in 0..200 {
        let e = late(&hub, format!("late-{i}"));
        let t = Instant::now();
        let r = hub.offer_authority(&[e.encode()], "bench").unwrap();
        times.push(t.elapsed());
        assert_eq!(r.added, 1);
    }
    times.sort();
    println!(
        "a new entry through the door and stored (its own store transaction): median {:.2} ms, worst {:.2} ms of 200",
        ms(times[100]),
        ms(times[199])
    );
    // The 200 entries leave upkeep to do once the hub rests (keeping the resolved state again
    // among it): measured apart, then the idle tick of a running hub, 20 times at its cadence.
    let t = Instant::now();
    let before = cpu();
    hub.upkeep().unwrap();
    let mut steps = 0;
    while hub.upkeep().unwrap() {
        steps += 1;
    }
    println!(
        "upkeep after them, until rest: {:.0} ms, {} ms of CPU, {steps} steps",
        ms(t.elapsed()),
        (cpu() - before).as_millis()
    );
    let before = cpu();
    let wall = Instant::now();
    for _ in 0..20 {
        let _ = hub.members().unwrap();
        hub.upkeep().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let used = cpu() - before;
    println!(
        "idle tick (members + upkeep every 500 ms) for {:.1} s: {} ms of CPU, {:.2} % of one core",
        wall.elapsed().as_secs_f64(),
        used.as_millis(),
        100.0 * used.as_secs_f64() / wall.elapsed().as_secs_f64()
    );
    // A right taken away after the state was kept is never brought forward: the log is replayed.
    hub.grant("p0", "treasurer", false).unwrap();
    drop(hub);
    for _ in 0..2 {
        drop(open("a right taken away since the kept state (replayed)"));
    }
}
