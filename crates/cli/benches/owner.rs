//! `cargo bench -p aidmesh-cli --bench owner`: what a coordinator waits for when typing an
//! `aidmesh` command while a hub runs. Each figure is the wall time of one whole `aidmesh`
//! process (start, reach the store, work, print, exit), release build, one after another:
//!
//! - `add through the running hub`: `aidmesh add item …` while `aidmesh serve` owns the store;
//!   the command goes over the control socket and the hub acknowledges once the record is
//!   durable (SQLite synchronous=FULL).
//! - `add on its own`: the same with no hub running: the command opens the store itself, which
//!   includes unlocking it (the passphrase's key derivation).
//! - `a command that opens no store`: `aidmesh fields item`, the cost of starting the program.
//!
//! `AIDMESH_BENCH_N` sets the number of commands per figure (200).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_aidmesh");

fn run(store: &Path, args: &[&str]) -> Duration {
    let t = Instant::now();
    let o = Command::new(BIN).arg("--store").arg(store).args(args).env("AIDMESH_PASSPHRASE", "bench").output().unwrap();
    let d = t.elapsed();
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    d
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    let q = |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what:<36} n={:<4} p50 {:>7.2} ms   p95 {:>7.2} ms   max {:>7.2} ms",
        times.len(),
        ms(q(0.50)),
        ms(q(0.95)),
        ms(*times.last().unwrap())
    );
}

fn main() {
    let n: usize = std::env::var("AIDMESH_BENCH_N").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("hub.aidmesh");
    run(&store, &["init", "--name", "Bench"]);
    let baseline: Vec<Duration> = (0..n).map(|_| run(&store, &["fields", "item"])).collect();
    let alone: Vec<Duration> =
        (0..n.min(50)).map(|i| run(&store, &["add", "item", &format!("name=alone {i}"), "unit=box"])).collect();
    let mut serve = Command::new(BIN)
        .arg("--store")
        .arg(&store)
        .args(["serve", "--listen", "127.0.0.1:0", "--no-discovery"])
        .env("AIDMESH_PASSPHRASE", "bench")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(serve.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("serving"), "{line}");
    let through: Vec<Duration> =
        (0..n).map(|i| run(&store, &["add", "item", &format!("name=through {i}"), "unit=box"])).collect();
    let _ = serve.kill();
    let _ = serve.wait();
    println!(
        "aidmesh commands, one process each, release build, {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    report("add through the running hub", through);
    report("add on its own (unlocks the store)", alone);
    report("a command that opens no store", baseline);
}
