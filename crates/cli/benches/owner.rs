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
//! - `add over the socket, no process start`: the same `add` sent by this benchmark's own
//!   process over the control socket (`aidmesh_node::control::forward`): what the running hub
//!   adds to a command, from connecting to the exit code.
//!
//! - `record on the peer` / `vault entry on the peer`: from starting `aidmesh add` (or `aidmesh
//!   vault put`) on one serving hub until `aidmesh show` (`vault show`) finds it on a second
//!   serving hub connected to it over TLS on loopback (polled every 5 ms, each poll a process).
//!
//! `AIDMESH_BENCH_N` sets the number of commands per figure (200; 20 for the peer figures).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_aidmesh");

fn run(store: &Path, args: &[&str]) -> Duration {
    let t = Instant::now();
    let o = Command::new(BIN)
        .arg("--store")
        .arg(store)
        .args(args)
        .env("AIDMESH_PASSPHRASE", "bench passphrase")
        .output()
        .unwrap();
    let d = t.elapsed();
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    d
}

fn json(store: &Path, args: &[&str]) -> serde_json::Value {
    let o = Command::new(BIN)
        .arg("--store")
        .arg(store)
        .arg("--json")
        .args(args)
        .env("AIDMESH_PASSPHRASE", "bench passphrase")
        .output()
        .unwrap();
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
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

// The binaries' allocator, so that what is measured is what they run.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        .env("AIDMESH_PASSPHRASE", "bench passphrase")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(serve.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("serving"), "{line}");
    let through: Vec<Duration> =
        (0..n).map(|i| run(&store, &["add", "item", &format!("name=through {i}"), "unit=box"])).collect();
    let socket: Vec<Duration> = (0..n)
        .map(|i| {
            // The command as `aidmesh` parses it (clap's struct, as serde writes it).
            let command = serde_json::json!({
                "store": store, "passphrase_file": null, "handle": "bench", "json": false,
                "command": {"Add": {"kind": "item", "fields": [format!("name=socket {i}"), "unit=box"]}}
            });
            let req = aidmesh_node::control::Request { command, stdin_is_terminal: false };
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let mut stdin = std::io::empty();
            let mut secret = |_: &str| Ok(String::new());
            let t = Instant::now();
            let r = aidmesh_node::control::forward(
                &store,
                &req,
                aidmesh_node::control::Local {
                    stdout: &mut out,
                    stderr: &mut err,
                    stdin: &mut stdin,
                    read_secret: &mut secret,
                },
            );
            let d = t.elapsed();
            assert_eq!(r.unwrap(), aidmesh_node::control::Forwarded::Exit(0), "{}", String::from_utf8_lossy(&err));
            d
        })
        .collect();
    // A second hub, admitted, serving and connected to the first.
    let peer = dir.path().join("peer.aidmesh");
    run(&peer, &["init", "--name", "Peer"]);
    let key = json(&peer, &["identity"])["public_key"].as_str().unwrap().to_string();
    let code = json(&store, &["admit", &key, "--name", "Peer"])["founder_code"].as_str().unwrap().to_string();
    run(&peer, &["adopt-founder", &code]);
    // The peer's coordinator is an admin: they read vault entries no record names (logged).
    let person = json(&peer, &["person", "list"])["acting"]["key"].as_str().unwrap().to_string();
    run(&store, &["person", "add", &person, "--name", "peer", "--admin"]);
    let addr = line.trim().rsplit(' ').next().unwrap().to_string();
    let mut peer_serve = Command::new(BIN)
        .arg("--store")
        .arg(&peer)
        .args(["serve", "--listen", "127.0.0.1:0", "--no-discovery", "--peer", &addr])
        .env("AIDMESH_PASSPHRASE", "bench passphrase")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut l2 = String::new();
    BufReader::new(peer_serve.stdout.take().unwrap()).read_line(&mut l2).unwrap();
    let first = json(&store, &["add", "place", "name=Hall"])["id"].as_str().unwrap().to_string();
    while !Command::new(BIN)
        .arg("--store")
        .arg(&peer)
        .args(["show", &first])
        .env("AIDMESH_PASSPHRASE", "bench passphrase")
        .output()
        .unwrap()
        .status
        .success()
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let until_there = |args: Vec<String>| {
        let t = Instant::now();
        loop {
            let o = Command::new(BIN)
                .arg("--store")
                .arg(&peer)
                .args(&args)
                .env("AIDMESH_PASSPHRASE", "bench passphrase")
                .output()
                .unwrap();
            if o.status.success() {
                return t.elapsed();
            }
            assert!(t.elapsed() < Duration::from_secs(30), "never arrived: {args:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let m = n.min(20);
    let records: Vec<Duration> = (0..m)
        .map(|i| {
            let t = Instant::now();
            let id = json(&store, &["add", "item", &format!("name=peer {i}"), "unit=box"])["id"]
                .as_str()
                .unwrap()
                .to_string();
            t.elapsed() + until_there(vec!["show".into(), id])
        })
        .collect();
    let vault: Vec<Duration> = (0..m)
        .map(|i| {
            let t = Instant::now();
            let id =
                json(&store, &["vault", "put", &format!("name=Person {i}")])["vault_id"].as_str().unwrap().to_string();
            t.elapsed() + until_there(vec!["vault".into(), "show".into(), id, "--reason".into(), "bench".into()])
        })
        .collect();
    for p in [&mut serve, &mut peer_serve] {
        let _ = p.kill();
        let _ = p.wait();
    }
    println!(
        "aidmesh commands, one process each, release build, {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    report("add through the running hub", through);
    report("add over the socket, no process start", socket);
    report("add on its own (unlocks the store)", alone);
    report("a command that opens no store", baseline);
    report("record on the peer", records);
    report("vault entry on the peer", vault);
}
