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
use aidmesh_hub::Driver;
use aidmesh_hub::{Config, Hub, InitOptions, ManualClock, Scale};
use serde_json::json;

const PASS: &str = "bench passphrase";

// The binaries' allocator, so that what is measured is what they run.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// Hubs that write the coalition: the founder (whose store becomes the coalition's file) and two
/// it admits. Each writes the records of the generator's hub it stands for.
const WRITERS: [&str; 3] = ["Bench hub", "Gate hub", "Kitchen hub"];
/// Rounds of writing apart then syncing over the generated month (a record that refers to one
/// another hub wrote in the same round waits for the next).
const ROUNDS: usize = 24;
/// A commit holds 1 to this many records, as a coordinator's form or a short import would.
const MAX_BATCH: usize = 16;

/// Generates the coalition the way hubs build one: three hubs each write their own sites'
/// records in small commits over a month, and sync with each other after every round, so that
/// every document holds many changes from several actors whose histories depend on each other.
fn generate(store: &Path, scale: Scale) {
    use rand::{Rng, SeedableRng};
    let start = now().plus_days(-30);
    // A clock per hub, so that the hubs of a round write side by side; each commit is made at
    // the time one clock for all would show, the month passing as the records are written.
    let clocks: Vec<ManualClock> = WRITERS.iter().map(|_| ManualClock::at(start)).collect();
    let tmp = store.with_extension("partial");
    let dir = tempfile::tempdir().unwrap();
    let _ = std::fs::remove_file(&tmp);
    let init = |path: &Path, name: &str, seed: u8, clock: &ManualClock| {
        let opts = InitOptions { hub_name: name.into(), location: String::new(), pin: None };
        let cfg = Config { handle: "bench".into(), clock: Box::new(clock.clone()), seed: [seed; 32] };
        Hub::init(path, PASS, &opts, cfg).unwrap()
    };
    let mut hubs: Vec<Hub> = WRITERS
        .iter()
        .zip(&clocks)
        .enumerate()
        .map(|(i, (name, clock))| match i {
            0 => init(&tmp, name, 3, clock),
            _ => init(&dir.path().join(format!("writer-{i}.aidmesh")), name, 3 + i as u8, clock),
        })
        .collect();
    for i in 1..hubs.len() {
        let (founder, rest) = hubs.split_at_mut(1);
        let (hub, other) = (&mut founder[0], &mut rest[i - 1]);
        let code = hub.admit(&other.public_key(), WRITERS[i]).unwrap();
        other.adopt(&code).unwrap();
        other.set_coalition_key(&hub.coalition_key_hex().unwrap().unwrap()).unwrap();
    }
    let mut recs = aidmesh_hub::generate(scale, 42, now());
    recs.sort_by_key(|r| (rank(r), r.meta.created_at));
    let plan = plan(&recs);
    let rounds = plan.iter().map(|(round, _)| round + 1).max().unwrap_or(0);
    let total = recs.len();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    let (mut done, mut commits) = (0, 0);
    let mut time = start.millis();
    let t = Instant::now();
    for round in 0..rounds {
        // Each writer's commits of the round, with the time each is made at.
        let mut work: Vec<Vec<(i64, Vec<Record>)>> = Vec::new();
        for w in 0..hubs.len() {
            let mine: Vec<&Record> =
                recs.iter().zip(&plan).filter(|(_, p)| **p == (round, w)).map(|(r, _)| r).collect();
            let (mut batches, mut rest) = (Vec::new(), &mine[..]);
            while !rest.is_empty() {
                let n = rng.gen_range(1..=MAX_BATCH).min(rest.len());
                batches.push((time, rest[..n].iter().map(|r| (*r).clone()).collect()));
                rest = &rest[n..];
                done += n;
                commits += 1;
                time = time.max(start.millis() + (now().millis() - start.millis()) * done as i64 / total.max(1) as i64);
            }
            work.push(batches);
        }
        let t_write = Instant::now();
        std::thread::scope(|s| {
            for ((hub, clock), batches) in hubs.iter_mut().zip(&clocks).zip(work) {
                s.spawn(move || {
                    for (at, recs) in batches {
                        clock.set(Timestamp::from_millis(at));
                        hub.import_records(recs.into_iter().enumerate().map(|(i, r)| (i + 1, Ok(r))).collect())
                            .unwrap();
                    }
                });
            }
        });
        for clock in &clocks {
            clock.set(Timestamp::from_millis(time));
        }
        let (t_sync, writing) = (Instant::now(), t_write.elapsed());
        // Every hub syncs with the founder's, twice round, so each holds what all wrote.
        for pass in 0..2 {
            for i in 1..hubs.len() {
                if pass == 1 && i == hubs.len() - 1 {
                    continue;
                }
                let (founder, rest) = hubs.split_at_mut(1);
                sync(&mut founder[0], &mut rest[i - 1], &clocks[0]);
            }
        }
        // Between rounds the hubs rest, and a resting hub folds every document piled up in
        // chunks (as a running node's upkeep does): loading one later reads one save, not
        // hundreds of chunks each applied as changes.
        let (t_fold, syncing) = (Instant::now(), t_sync.elapsed());
        // Each hub on a thread of its own, as three laptops would.
        std::thread::scope(|s| {
            for hub in &mut hubs {
                s.spawn(move || hub.fold_chunks(usize::MAX, false).unwrap());
            }
        });
        eprintln!(
            "  round {}/{rounds}: {done}/{total} records in {commits} commits, {:.0} s (writing {:.1} s, syncing {:.1} s, folding {:.1} s)",
            round + 1,
            t.elapsed().as_secs_f64(),
            writing.as_secs_f64(),
            syncing.as_secs_f64(),
            t_fold.elapsed().as_secs_f64()
        );
    }
    for clock in &clocks {
        clock.set(now());
    }
    history(&mut hubs[0]);
    drop(hubs);
    std::fs::rename(&tmp, store).unwrap();
    let _ = std::fs::remove_file(sibling(&tmp, ".lock"));
}

/// Prints how long the coalition's histories are: changes per document, and their actors.
fn history(hub: &mut Hub) {
    let docs = hub.export_docs().unwrap();
    let (mut changes, mut most, mut actors, mut saved) = (0, 0, 0, 0);
    for d in &docs {
        let doc = automerge::Automerge::load(&d.bytes).unwrap();
        // The change graph's metadata: no change rebuilt from the document.
        let meta = doc.get_changes_meta(&[]);
        let n = meta.len();
        let mut who: Vec<_> = meta.iter().map(|c| c.actor.clone()).collect();
        who.sort();
        who.dedup();
        (changes, most, actors, saved) = (changes + n, most.max(n), actors.max(who.len()), saved + d.bytes.len());
    }
    eprintln!(
        "  {} documents, {changes} changes (at most {most} in one document), up to {actors} actors in one, {saved} bytes saved",
        docs.len()
    );
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// For each record (in order), the round it is written in and the writer that writes it: the
/// writer standing for the record's hub (the founder's for records of none), in the round its
/// place in the order gives, or later where it refers to a record another writer makes in the
/// same round or after (which reaches it only with that round's sync).
fn plan(recs: &[Record]) -> Vec<(usize, usize)> {
    use std::collections::HashMap;
    let mut sites: HashMap<&str, usize> = HashMap::new();
    for r in recs.iter().filter(|r| r.kind() == Kind::Hub) {
        let n = sites.len();
        sites.insert(r.id().as_str(), n % WRITERS.len());
    }
    let mut at: HashMap<&str, (usize, usize)> = HashMap::new();
    let mut plan = Vec::with_capacity(recs.len());
    for (i, r) in recs.iter().enumerate() {
        let writer = sites.get(r.meta.created_hub.as_str()).copied().unwrap_or(0);
        let mut round = i * ROUNDS / recs.len().max(1);
        let mut targets: Vec<&str> = r.body.references().iter().map(|t| t.id.as_str()).collect();
        if let aidmesh_hub::model::Body::Amendment(a) = &r.body {
            targets.push(a.target.as_str());
        }
        for target in targets {
            if let Some(&(tr, tw)) = at.get(target) {
                round = round.max(if tw == writer { tr } else { tr + 1 });
            }
        }
        at.insert(r.id().as_str(), (round, writer));
        plan.push((round, writer));
    }
    plan
}

/// Syncs two hubs until neither has anything more to send, as a session between them on the
/// mesh would, and checks that they then hold the same documents.
fn sync(a: &mut Hub, b: &mut Hub, clock: &ManualClock) {
    use aidmesh_mesh::session::{Frame, PeerId, Replica, Session};
    use std::collections::VecDeque;
    let now = aidmesh_hub::model::Clock::now(clock);
    let (pa, pb) = (PeerId::named(&b.fingerprint().to_string()), PeerId::named(&a.fingerprint().to_string()));
    let mut sa = Session::new(pa, now);
    let mut sb = Session::new(pb, now);
    let mut to_b: VecDeque<Frame> = sa.start(a, now).into();
    let mut to_a: VecDeque<Frame> = sb.start(b, now).into();
    // Each side takes what was sent to it on a thread of its own, as two hubs on a network do.
    let handle_all = |s: &mut Session, h: &mut Hub, frames: VecDeque<Frame>| -> Vec<Frame> {
        frames.into_iter().flat_map(|f| s.handle(h, f, now).unwrap().0).collect()
    };
    loop {
        if to_a.is_empty() && to_b.is_empty() {
            if !sa.is_waiting() && !sb.is_waiting() {
                break;
            }
            to_b.extend(sa.retry(a, now));
            to_a.extend(sb.retry(b, now));
            assert!(!to_a.is_empty() || !to_b.is_empty(), "a sync waits for a fetch nothing answers");
            continue;
        }
        let (for_a, for_b) = (std::mem::take(&mut to_a), std::mem::take(&mut to_b));
        let (from_a, from_b) = std::thread::scope(|s| {
            let from_b = s.spawn(|| handle_all(&mut sb, b, for_b));
            (handle_all(&mut sa, a, for_a), from_b.join().unwrap())
        });
        to_b.extend(from_a);
        to_a.extend(from_b);
    }
    let heads = |h: &mut Hub| -> Vec<(String, String)> {
        let mut v: Vec<_> = Replica::docs(h).into_iter().map(|d| (d.doc.as_str().to_string(), d.heads)).collect();
        v.sort();
        v
    };
    assert_eq!(heads(a), heads(b), "two hubs synced until quiet hold different documents");
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

fn measure(coalition: &Path, scale: Scale) {
    let clock = ManualClock::at(now());
    println!("coalition: {scale:?}");
    // On a copy: the writes measured below would otherwise stay in the coalition that this
    // bench's later runs and the other benches read.
    let dir = tempfile::tempdir().unwrap();
    let store = &dir.path().join("coalition.aidmesh");
    std::fs::copy(coalition, store).unwrap();
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
