//! USB bundle benchmark on the hub-core coalition (run `cargo bench -p aidmesh-hub --bench hub`
//! first: it generates the store this one reads):
//!
//!     cargo bench -p aidmesh-hub --bench bundle
//!
//! Prints time and size of a full bundle and of a 1,000-edit incremental one, against the
//! Automerge data they carry, and the time to import each into a hub that never met this one.

use std::path::PathBuf;
use std::time::Instant;

use aidmesh_hub::model::{Kind, Timestamp};
use aidmesh_hub::{Config, Hub, InitOptions, ManualClock};
use serde_json::json;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("bundle bench: run with `cargo bench -p aidmesh-hub --bench bundle`");
        return;
    }
    let store = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-data/coalition-1.aidmesh");
    assert!(store.exists(), "generate the coalition first: cargo bench -p aidmesh-hub --bench hub");
    let clock = ManualClock::at(Timestamp::parse("2026-11-25T12:00:00Z").unwrap());
    let cfg = |seed: u8| Config { handle: "bench".into(), clock: Box::new(clock.clone()), seed: [seed; 32] };
    let mut hub = Hub::open(&store, "bench", cfg(40)).unwrap();
    let data: usize = hub.export_docs().unwrap().iter().map(|d| d.bytes.len()).sum();
    let dir = tempfile::tempdir().unwrap();
    let mut other = Hub::init(
        &dir.path().join("far.aidmesh"),
        "bench",
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
    let t = Instant::now();
    let (_, changed) = other.import_bundle(&full.bytes).unwrap();
    println!("  imported into a new hub in {:.1} s ({changed} records indexed)", t.elapsed().as_secs_f64());
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
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = s.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or("");
    println!("  peak memory: {}", hwm.trim_start_matches("VmHWM:").trim());
}
