//! USB bundle benchmark on the hub-core coalition (run `cargo bench -p aidmesh-hub --bench hub`
//! first: it generates the store this one reads):
//!
//!     cargo bench -p aidmesh-hub --bench bundle
//!
//! Prints time and size of a full bundle and of a 1,000-edit incremental one, against the
//! Automerge data they carry, and the time to import each into a hub that never met this one.

use aidmesh_hub::Driver;
use std::path::PathBuf;
use std::time::Instant;

use aidmesh_hub::model::{Kind, Timestamp};
use aidmesh_hub::{Config, Hub, InitOptions, ManualClock};
use serde_json::json;

/// The hub bench's passphrase, which made the coalition's store.
const PASS: &str = "bench passphrase";

// The binaries' allocator, so that what is measured is what they run.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--import") {
        return import_child(&args[i + 1], &args[i + 2]);
    }
    if !std::env::args().any(|a| a == "--bench") {
        println!("bundle bench: run with `cargo bench -p aidmesh-hub --bench bundle`");
        return;
    }
    let store = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-data/coalition-1.aidmesh");
    assert!(store.exists(), "generate the coalition first: cargo bench -p aidmesh-hub --bench hub");
    // On a copy: the far hub admitted and the 1,000 items added below would otherwise stay in
    // the coalition that later runs and the other benches read.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("coalition.aidmesh");
    std::fs::copy(&store, &copy).unwrap();
    let clock = ManualClock::at(aidmesh_hub::model::Clock::now(&aidmesh_hub::model::SystemClock));
    let cfg = |seed: u8| Config { handle: "bench".into(), clock: Box::new(clock.clone()), seed: [seed; 32] };
    let mut hub = Hub::open(&copy, PASS, cfg(40)).unwrap();
    let data: usize = hub.export_docs().unwrap().iter().map(|d| d.bytes.len()).sum();
    let mut other = Hub::init(
        &dir.path().join("far.aidmesh"),
        PASS,
        &InitOptions { hub_name: "Far".into(), location: String::new(), pin: None },
        cfg(41),
    )
    .unwrap();
    other.adopt_founder(&hub.founder().unwrap()).unwrap();
    other.set_coalition_key(&hub.coalition_key_hex().unwrap().unwrap()).unwrap();
    // The far hub is a member: the bundles are made for it.
    if !hub.members().unwrap().members.contains_key(&other.fingerprint()) {
        hub.admit(&other.public_key(), "Far").unwrap();
    }
    let t = Instant::now();
    let full = hub.export_bundle(true, &[]).unwrap();
    let export_full = t.elapsed();
    hub.bundle_written(&full).unwrap();
    println!(
        "full bundle: {} records in {} documents, {:.1} MiB for {:.1} MiB of Automerge data ({:.2}x), exported in {:.1} s",
        full.summary.records.values().sum::<u64>(),
        full.summary.documents,
        full.bytes.len() as f64 / 1048576.0,
        data as f64 / 1048576.0,
        full.bytes.len() as f64 / data as f64,
        export_full.as_secs_f64()
    );
    // The far hub imports the full bundle in a process of its own, so that its peak memory is
    // its own (reading the file included), as on the laptop that plugs the stick in.
    let far = dir.path().join("far.aidmesh");
    let file = dir.path().join("full.bundle");
    std::fs::write(&file, &full.bytes).unwrap();
    drop(other);
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--import", far.to_str().unwrap(), file.to_str().unwrap()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "the import failed");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    let mut other = Hub::open(&far, PASS, cfg(41)).unwrap();
    for n in 0..1000 {
        clock.advance_ms(10);
        hub.add(Kind::Item, json!({"name": format!("bundle edit {n}"), "unit": "box"}).as_object().unwrap().clone())
            .unwrap();
    }
    let t = Instant::now();
    let inc = hub.export_bundle(false, &[]).unwrap();
    let export_inc = t.elapsed();
    hub.bundle_written(&inc).unwrap();
    let t = Instant::now();
    let (_, changed) = other.import_bundle(&inc.bytes).unwrap();
    println!(
        "incremental bundle after 1,000 edits: {:.1} KiB for {:.1} KiB of Automerge changes ({:.2}x) in {} documents, exported in {:.2} s, imported in {:.2} s ({changed} records)",
        inc.bytes.len() as f64 / 1024.0,
        inc.summary.data_bytes as f64 / 1024.0,
        inc.bytes.len() as f64 / inc.summary.data_bytes as f64,
        inc.summary.documents,
        export_inc.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
}

/// The far hub, in its own process: imports the bundle file and says how long it took and its
/// peak resident memory.
fn import_child(store: &str, file: &str) {
    let clock = ManualClock::at(Timestamp::parse("2026-11-25T12:00:00Z").unwrap());
    let mut far = Hub::open(
        std::path::Path::new(store),
        PASS,
        Config { handle: "bench".into(), clock: Box::new(clock), seed: [41; 32] },
    )
    .unwrap();
    let t = Instant::now();
    let bytes = aidmesh_hub::read_bundle_file(std::path::Path::new(file), |h| far.bundle_key(h)).unwrap();
    let (_, changed) = far.import_bundle(bytes).unwrap();
    println!(
        "  imported into a new hub in {:.1} s ({changed} records indexed); the importing process's peak resident memory {} MiB",
        t.elapsed().as_secs_f64(),
        resident_mib("VmHWM:")
    );
    // Against what the same data costs locally: the hub indexes every record of its documents
    // again (`aidmesh reindex`).
    let t = Instant::now();
    let n = far.rebuild_index().unwrap();
    println!("  the same hub re-indexes its {n} records from its own documents in {:.1} s", t.elapsed().as_secs_f64());
}

/// A line of this process's /proc status (`VmRSS:`, `VmHWM:`), in MiB.
fn resident_mib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: u64 = s
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    kb / 1024
}
