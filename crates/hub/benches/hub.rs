//! Hub-core benchmark: a generated coalition of 100k items, 20k volunteers, 200k incidents and
//! 500k movements (plus requests, offers, shifts and expenses).
//!
//! Prints: time to open the hub and compute its overview, search latency per record kind
//! (p50/p95/max), single-record write acknowledgement (p50/p95), and resident memory.
//!
//!     cargo bench -p aidmesh-hub --bench hub            # full scale
//!     AIDMESH_BENCH_SCALE=0.1 cargo bench -p aidmesh-hub --bench hub
//!
//! The coalition is generated once into target/bench-data/ (several minutes) in a child
//! process, so that the measuring process's peak memory is its own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aidmesh_hub::model::{Kind, Record, Timestamp};
use aidmesh_hub::{Config, Hub, InitOptions, ManualClock, Scale};
use serde_json::json;

const PASS: &str = "bench passphrase";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let factor: f64 = std::env::var("AIDMESH_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let scale = scaled(factor);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-data");
    let store = dir.join(format!("coalition-{factor}.aidmesh"));
    if args.iter().any(|a| a == "--generate") {
        std::fs::create_dir_all(&dir).unwrap();
        generate(&store, scale);
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --benches` runs benches as tests; measuring needs `cargo bench`.
        println!("hub bench: run with `cargo bench -p aidmesh-hub --bench hub`");
        return;
    }
    if !store.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let t = Instant::now();
        let st = Command::new(std::env::current_exe().unwrap())
            .arg("--generate")
            .env("AIDMESH_BENCH_SCALE", factor.to_string())
            .status()
            .unwrap();
        assert!(st.success(), "generation failed");
        println!("generated the coalition in {:.1} s", t.elapsed().as_secs_f64());
    }
    measure(&store, scale);
}

fn scaled(f: f64) -> Scale {
    let s = Scale::bench();
    let m = |n: usize| ((n as f64) * f).round() as usize;
    Scale {
        items: m(s.items),
        volunteers: m(s.volunteers),
        incidents: m(s.incidents),
        movements: m(s.movements),
        requests: m(s.requests),
        offers: m(s.offers),
        shifts: m(s.shifts),
        expenses: m(s.expenses),
    }
}

fn now() -> Timestamp {
    Timestamp::parse("2026-11-25T12:00:00Z").unwrap()
}

fn config(clock: &ManualClock) -> Config {
    Config { handle: "bench".into(), clock: Box::new(clock.clone()), seed: [3; 32] }
}

/// Kinds in an order where every reference points to an earlier record.
fn rank(r: &Record) -> usize {
    match r.kind() {
        Kind::AfterAction => Kind::ALL.len(),
        k => Kind::ALL.iter().position(|x| *x == k).unwrap_or(0),
    }
}

fn generate(store: &Path, scale: Scale) {
    let clock = ManualClock::at(now());
    let tmp = store.with_extension("partial");
    let _ = std::fs::remove_file(&tmp);
    let mut hub = Hub::init(
        &tmp,
        PASS,
        &InitOptions { hub_name: "Bench hub".into(), location: String::new(), pin: None },
        config(&clock),
    )
    .unwrap();
    let mut recs = aidmesh_hub::generate(scale, 42, now());
    recs.sort_by_key(rank);
    let total = recs.len();
    let mut done = 0;
    for chunk in recs.chunks(20_000) {
        let rows = chunk.iter().cloned().enumerate().map(|(i, r)| (i + 1, Ok(r))).collect();
        hub.import_records(rows).unwrap();
        done += chunk.len();
        eprintln!("  imported {done}/{total}");
    }
    drop(hub);
    std::fs::rename(&tmp, store).unwrap();
}

fn percentiles(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p = |q: f64| ms(v[((v.len() as f64 - 1.0) * q).round() as usize]);
    (p(0.5), p(0.95), ms(*v.last().unwrap()))
}

fn rss_mib() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| {
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
}

fn measure(store: &Path, scale: Scale) {
    let clock = ManualClock::at(now());
    println!("coalition: {scale:?}");
    let size = std::fs::metadata(store).map(|m| m.len()).unwrap_or(0);
    println!("store file: {:.0} MiB", size as f64 / 1048576.0);
    // Open to a usable state: open the store and compute the overview.
    let mut opens = Vec::new();
    let mut only_open = Vec::new();
    let mut only_overview = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        let hub = Hub::open(store, PASS, config(&clock)).unwrap();
        only_open.push(t.elapsed());
        let t2 = Instant::now();
        let ov = hub.overview().unwrap();
        only_overview.push(t2.elapsed());
        opens.push(t.elapsed());
        assert!(!ov.shortages.is_empty());
    }
    let (p50, _, max) = percentiles(opens);
    let (o50, ..) = percentiles(only_open);
    let (v50, ..) = percentiles(only_overview);
    println!("open + overview: median {p50:.0} ms (open {o50:.0} ms, overview {v50:.0} ms), max {max:.0} ms (target < 1000 ms)");
    // Writes below must not collide with ids written by an earlier run on the same store.
    // (One owner at a time: the count is read, and that hub closed, before the bench's own opens.)
    let items = Hub::open(store, PASS, config(&clock)).unwrap().count(Kind::Item).unwrap();
    let mut hub = Hub::open(
        store,
        PASS,
        Config { handle: "bench".into(), clock: Box::new(clock.clone()), seed: [items as u8; 32] },
    )
    .unwrap();
    clock.advance_ms(items * 1000);
    // Search each kind with words people type.
    let queries: &[(Kind, &[&str])] = &[
        (Kind::Item, &["water", "gauze", "blank", "rice lot 12", "power", "formula", "tape", "zzz"]),
        (Kind::Volunteer, &["quiet", "fox", "otter-1234", "mornings", "steady wren", "nobody"]),
        (Kind::Incident, &["fainted", "kettling", "rain", "generator cable", "asthma", "ramp"]),
        (Kind::Request, &["interpreter", "food", "shelter needed", "medical"]),
        (Kind::Expense, &["fuel", "pharmacy", "water"]),
    ];
    for (kind, words) in queries {
        let mut times = Vec::new();
        for _ in 0..40 {
            for w in *words {
                let t = Instant::now();
                let hits = hub.search(w, Some(*kind), 50).unwrap();
                times.push(t.elapsed());
                std::hint::black_box(hits);
            }
        }
        let (p50, p95, max) = percentiles(times);
        println!("search {kind:<10}: p50 {p50:.2} ms, p95 {p95:.2} ms, max {max:.2} ms (target p95 < 20 ms)");
    }
    // Single-record writes: the first loads the item shard; then steady state.
    let place = hub.stored(Kind::Place, 1, 0).unwrap()[0].id().to_string();
    let mut writes = Vec::new();
    let mut first = None;
    for n in 0..300 {
        clock.advance_ms(10);
        let t = Instant::now();
        match n % 3 {
            0 => {
                hub.add(
                    Kind::Item,
                    json!({"name": format!("bench item {n}"), "unit": "box"}).as_object().unwrap().clone(),
                )
                .unwrap();
            }
            1 => {
                hub.add(
                    Kind::Incident,
                    json!({"occurred": now(), "severity": 2, "description": format!("bench incident {n}")})
                        .as_object()
                        .unwrap()
                        .clone(),
                )
                .unwrap();
            }
            _ => {
                let item = hub.stored(Kind::Item, 1, 0).unwrap()[0].id().to_string();
                hub.add(
                    Kind::Movement,
                    json!({"item": item, "type": "receive", "quantity": 5, "place": place})
                        .as_object()
                        .unwrap()
                        .clone(),
                )
                .unwrap();
            }
        }
        let d = t.elapsed();
        if n < 3 {
            first = Some(first.map_or(d, |f: Duration| f.max(d)));
        } else {
            writes.push(d);
        }
    }
    let (p50, p95, max) = percentiles(writes);
    println!(
        "write ack (item, incident, movement): first per document {:.0} ms (loads its shard); then p50 {p50:.2} ms, p95 {p95:.2} ms, max {max:.1} ms (target < 5 ms)",
        first.unwrap_or_default().as_secs_f64() * 1000.0
    );
    let (rss, hwm) = rss_mib();
    println!("memory: resident {rss:.0} MiB now, peak {hwm:.0} MiB (target < 400 MiB)");
}
