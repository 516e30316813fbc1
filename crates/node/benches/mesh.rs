//! A whole coalition between two hubs over the real mesh: mutual TLS 1.3 on loopback, through a
//! TCP proxy that counts every byte on the socket (TLS records, handshakes and pings included).
//!
//!     cargo bench -p aidmesh-node --bench mesh
//!     AIDMESH_BENCH_SCALE=1 cargo bench -p aidmesh-node --bench mesh     # the full coalition
//!     AIDMESH_BENCH_DIR=/dev/shm/x cargo bench -p aidmesh-node --bench mesh # stores in memory
//!     AIDMESH_BENCH_COALITION=target/bench-data/old.aidmesh cargo bench ...  # another coalition
//!
//! The coalition is the hub bench's (`target/bench-data/coalition-<scale>.aidmesh`, scale 0.1 by
//! default; made by the hub bench if missing). Hub A is a copy of it; hub B is new, admitted by
//! A, and runs in a child process so that its peak memory is its own. Phases, one run:
//!
//! 1. Initial sync: B starts empty and dials A. Socket bytes both ways against the documents'
//!    stored size, time from B's dial until B holds every document at A's heads (B's own clock),
//!    and B's peak resident memory.
//! 2. Reconnect with nothing changed: B restarts and dials again. Socket bytes, and the time from
//!    the proxy's accept to the last byte of the exchange (TCP and TLS handshakes included).
//! 3. Edits to a connected peer: A adds items one by one, 20 ms apart, while B is connected.
//!    Latency from A's write returning (timed before A releases its hub, which offers the
//!    change to B) to B's ingest of it committed (B's event), both read from the same system
//!    clock. The first edit, which loads the document the items go to on
//!    both hubs (B has just restarted), is timed apart, two seconds before the others.
//! 4. Changes to records of a full document: as 3, but A changes the name of its oldest items,
//!    one by one, which lie in a document that filled long ago (about 2,500 records).
//!
//! Both hubs do their upkeep every half second, as a running node does (`Hub::upkeep`).

use aidmesh_hub::Driver;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aidmesh_hub::model::Kind;
use aidmesh_hub::{Config, Event, Hub, InitOptions};
use aidmesh_mesh::net::Mesh;
use aidmesh_mesh::session::Replica;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PASS: &str = "bench passphrase";
const EDITS: usize = 200;

// The binaries' allocator, so that what is measured is what they run.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        return child(&args[i + 1..]);
    }
    if !args.iter().any(|a| a == "--bench") {
        println!("mesh bench: run with `cargo bench -p aidmesh-node --bench mesh`");
        return;
    }
    let scale = std::env::var("AIDMESH_BENCH_SCALE").unwrap_or_else(|_| "0.1".into());
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-data");
    // AIDMESH_BENCH_COALITION: another coalition's store (one the hub bench generated before).
    let coalition = std::env::var_os("AIDMESH_BENCH_COALITION")
        .map(PathBuf::from)
        .unwrap_or_else(|| data.join(format!("coalition-{scale}.aidmesh")));
    // Where the two hubs' stores go (AIDMESH_BENCH_DIR: another disk, or memory, to compare).
    let dir = std::env::var_os("AIDMESH_BENCH_DIR").map(PathBuf::from).unwrap_or_else(|| data.clone());
    if !coalition.exists() {
        std::fs::create_dir_all(&data).unwrap();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["bench", "-p", "aidmesh-hub", "--bench", "hub", "--", "--generate"])
            .env("AIDMESH_BENCH_SCALE", &scale)
            .status()
            .unwrap();
        assert!(st.success(), "generating the coalition failed");
    }
    let (a_path, b_path) = (dir.join("mesh-a.aidmesh"), dir.join("mesh-b.aidmesh"));
    for p in [&a_path, &b_path] {
        let _ = std::fs::remove_file(p);
        let _ = std::fs::remove_file(p.with_extension("aidmesh-wal"));
    }
    std::fs::copy(&coalition, &a_path).unwrap();
    let mut a = Hub::open(&a_path, PASS, Config::system("bench")).unwrap();
    let mut b = Hub::init(
        &b_path,
        PASS,
        &InitOptions { hub_name: "Bench B".into(), location: String::new(), pin: None },
        Config::system("bench"),
    )
    .unwrap();
    let code = a.admit(&b.public_key(), "Bench B").unwrap();
    b.adopt(&code).unwrap();
    drop(b);
    // What B must hold: A's documents at A's heads.
    let docs = Replica::docs(&mut a);
    let target = dir.join("mesh-a.heads");
    std::fs::write(&target, docs.iter().map(|d| format!("{} {}\n", d.doc, d.heads)).collect::<String>()).unwrap();
    let chunked = a.saved_bytes().unwrap();
    a.fold_chunks(usize::MAX, true).unwrap();
    let saved = a.saved_bytes().unwrap();
    println!("coalition {scale}: {} documents, {chunked} bytes stored, {saved} once each is one save", docs.len());

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let identity = a.identity();
        let mesh = Arc::new(Mesh::new(a, &identity, [1; 32]).unwrap());
        let _folding = upkeep(&mesh);
        let a_addr = mesh.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let proxy = Proxy::start(a_addr).await;
        let run = |phase: &str| {
            let out = Command::new(std::env::current_exe().unwrap())
                .args(["--child", phase, b_path.to_str().unwrap(), &proxy.addr.to_string(), target.to_str().unwrap()])
                .stderr(Stdio::inherit())
                .output()
                .unwrap();
            assert!(out.status.success(), "child {phase} failed");
            String::from_utf8(out.stdout).unwrap()
        };

        // 1. Initial sync.
        proxy.reset();
        let a_cpu = cpu_secs();
        let loads = || mesh.with_hub(|h| h.documents_loaded());
        let a_loads = loads();
        let out = tokio::task::block_in_place(|| run("initial"));
        let (bytes, _) = proxy.window();
        println!(
            "initial sync: {bytes} socket bytes, {:.3}x the documents saved ({saved}); {} (A's CPU {:.1} s, \
             A read {} documents from its store)",
            bytes as f64 / saved as f64,
            out.trim(),
            cpu_secs() - a_cpu,
            loads() - a_loads
        );

        // 2. Reconnect, nothing changed.
        tokio::time::sleep(Duration::from_millis(500)).await;
        proxy.reset();
        let a_loads = loads();
        let out = tokio::task::block_in_place(|| run("idle"));
        let (bytes, ms) = proxy.window();
        println!(
            "reconnect, nothing changed: {bytes} socket bytes (TLS handshake included; {}), {ms:.1} ms from accept to \
             the last byte; A read {} documents from its store",
            out.trim(),
            loads() - a_loads
        );

        // 3. Edits to a connected peer: new items, to the newest items document.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (first, lat) = timed_edits(&mesh, &run, |h, n| {
            let fields = serde_json::json!({"name": format!("bench edit {n}"), "unit": "box"});
            h.add(Kind::Item, fields.as_object().cloned().unwrap()).unwrap().id().to_string()
        });
        println!(
            "edit to connected peer over TLS ({EDITS} new items, 20 ms apart): {lat}; the first edit after B's restart, before them (it loads the document it goes to on both hubs): {first:.2} ms"
        );

        // 4. Changes to records of a full document: the oldest items (documents take new
        // records oldest first, so theirs filled long ago).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let oldest: Vec<String> =
            mesh.with_hub(|h| h.stored(Kind::Item, EDITS + 1, 0)).unwrap().iter().map(|r| r.id().to_string()).collect();
        let (first, lat) = timed_edits(&mesh, &run, move |h, n| {
            let patch = serde_json::json!({"name": format!("bench change {n}")});
            h.update(&oldest[n], patch.as_object().cloned().unwrap()).unwrap().id().to_string()
        });
        println!(
            "change to a record of a full document, to connected peer over TLS ({EDITS} changes to the oldest items, 20 ms apart): {lat}; the first, before them: {first:.2} ms"
        );
    });
}

/// Makes `EDITS + 1` edits on A with `edit` (given the edit's number, it returns the id of the
/// record it wrote), 20 ms apart, while B runs its "edits" phase; returns the first edit's
/// latency (it loads the document it goes to on both hubs, and is timed apart) and the others'
/// p50, p99 and max, from A's write to the record's arrival in B's index.
fn timed_edits(
    mesh: &Arc<Mesh<Hub>>,
    run: &dyn Fn(&str) -> String,
    edit: impl Fn(&mut Hub, usize) -> String + Send + 'static,
) -> (f64, String) {
    let writer = {
        let mesh = mesh.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(3));
            let mut sent = Vec::new();
            for n in 0..=EDITS {
                // Timed as the write returns, inside the hub's lock: releasing it offers the
                // change to B at once, and a writer thread that waits for a core after that
                // would time B's ingest before the write (negative latencies, seen here).
                sent.push(mesh.with_hub(|h| {
                    let id = edit(h, n);
                    (id, micros())
                }));
                // The others start once the first has surely arrived.
                std::thread::sleep(Duration::from_millis(if n == 0 { 2000 } else { 20 }));
            }
            sent
        })
    };
    let out = tokio::task::block_in_place(|| run("edits"));
    let sent = writer.join().unwrap();
    let arrived: std::collections::BTreeMap<&str, u64> =
        out.lines().filter_map(|l| l.split_once(' ')).map(|(id, t)| (id, t.parse().unwrap())).collect();
    let mut lat: Vec<f64> =
        sent.iter().filter_map(|(id, t)| arrived.get(id.as_str()).map(|a| (*a as f64 - *t as f64) / 1e3)).collect();
    assert_eq!(lat.len(), EDITS + 1, "every edit arrived");
    let first = lat.remove(0);
    lat.sort_by(f64::total_cmp);
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
    (first, format!("p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", p(0.5), p(0.99), lat[lat.len() - 1]))
}

/// Hub B, in its own process: opens its store, dials A (through the proxy) and does its phase.
fn child(args: &[String]) {
    let (phase, store, addr) = (&args[0], Path::new(&args[1]), args[2].parse::<SocketAddr>().unwrap());
    let target: std::collections::BTreeSet<String> =
        std::fs::read_to_string(&args[3]).unwrap().lines().map(str::to_string).collect();
    let mut hub = Hub::open(store, PASS, Config::system("bench")).unwrap();
    let arrived = Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let arrived = arrived.clone();
        hub.subscribe(move |e| {
            if let Event::RecordsChanged { ids } = e {
                let t = micros();
                arrived.lock().unwrap().extend(ids.iter().map(|i| (i.clone(), t)));
            }
        });
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let identity = hub.identity();
        let mesh = Arc::new(Mesh::new(hub, &identity, [2; 32]).unwrap());
        let _folding = upkeep(&mesh);
        let start = Instant::now();
        mesh.dial(addr);
        match phase.as_str() {
            "initial" => {
                loop {
                    let held: std::collections::BTreeSet<String> =
                        mesh.with_hub(|h| Replica::docs(h).iter().map(|d| format!("{} {}", d.doc, d.heads)).collect());
                    let missing: Vec<&String> = target.difference(&held).collect();
                    if missing.is_empty() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if start.elapsed().as_millis() % 10_000 < 20 {
                        eprintln!("  still missing {} documents, e.g. {:?}", missing.len(), missing.first());
                    }
                }
                let stored = mesh.with_hub(|h| h.saved_bytes()).unwrap();
                let file = std::fs::metadata(store).map(|m| m.len()).unwrap_or(0);
                println!(
                    "{:.1} s until the new hub held every document at A's heads (B's CPU {:.1} s, B read {} documents \
                     from its store); it stored {stored} bytes of documents in a {} MiB file, wrote {} MiB to disk, \
                     peak {} MiB",
                    start.elapsed().as_secs_f64(),
                    cpu_secs(),
                    mesh.with_hub(|h| h.documents_loaded()),
                    file >> 20,
                    written_bytes() >> 20,
                    peak_mib()
                );
            }
            "idle" => {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                let t = mesh.peers().first().map(|p| p.traffic).unwrap_or_default();
                println!(
                    "{} frames, {} frame bytes, B read {} documents from its store",
                    t.frames_in + t.frames_out,
                    t.bytes_in + t.bytes_out,
                    mesh.with_hub(|h| h.documents_loaded())
                );
            }
            "edits" => {
                while arrived.lock().unwrap().len() <= EDITS {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                for (id, t) in arrived.lock().unwrap().iter() {
                    println!("{id} {t}");
                }
            }
            p => panic!("unknown phase {p}"),
        }
    });
}

/// The upkeep a running node does: a bounded step every half second once the hub rests, and
/// the store's log folded on a thread of its own, while the value returned is held.
fn upkeep(mesh: &Arc<Mesh<Hub>>) -> Option<aidmesh_node::LogFolding> {
    let folding = aidmesh_node::LogFolding::start(mesh);
    let mesh = mesh.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            mesh.with_hub(|h| h.upkeep()).unwrap();
        }
    });
    folding
}

/// A loopback TCP proxy in front of hub A that counts the bytes it forwards, both ways, and
/// notes when the first connection of a window was accepted and when its last byte passed.
struct Proxy {
    addr: SocketAddr,
    bytes: Arc<AtomicU64>,
    accepted: Arc<AtomicU64>,
    last: Arc<AtomicU64>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let p = Proxy {
            addr: listener.local_addr().unwrap(),
            bytes: Arc::default(),
            accepted: Arc::default(),
            last: Arc::default(),
        };
        let (bytes, accepted, last) = (p.bytes.clone(), p.accepted.clone(), p.last.clone());
        tokio::spawn(async move {
            loop {
                let Ok((down, _)) = listener.accept().await else { continue };
                let _ = accepted.compare_exchange(0, micros(), Ordering::SeqCst, Ordering::SeqCst);
                let Ok(up) = TcpStream::connect(upstream).await else { continue };
                let _ = (down.set_nodelay(true), up.set_nodelay(true));
                let (dr, dw) = down.into_split();
                let (ur, uw) = up.into_split();
                for (r, w) in
                    [(Box::new(dr) as Box<dyn Read>, Box::new(uw) as Box<dyn Write>), (Box::new(ur), Box::new(dw))]
                {
                    let (bytes, last) = (bytes.clone(), last.clone());
                    tokio::spawn(pipe(r, w, bytes, last));
                }
            }
        });
        p
    }

    fn reset(&self) {
        self.bytes.store(0, Ordering::SeqCst);
        self.accepted.store(0, Ordering::SeqCst);
        self.last.store(0, Ordering::SeqCst);
    }

    /// Bytes since the reset, and milliseconds from the first accept to the last byte.
    fn window(&self) -> (u64, f64) {
        let (a, l) = (self.accepted.load(Ordering::SeqCst), self.last.load(Ordering::SeqCst));
        (self.bytes.load(Ordering::SeqCst), l.saturating_sub(a) as f64 / 1e3)
    }
}

trait Read: tokio::io::AsyncRead + Unpin + Send {}
impl<T: tokio::io::AsyncRead + Unpin + Send> Read for T {}
trait Write: tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncWrite + Unpin + Send> Write for T {}

async fn pipe(mut r: Box<dyn Read>, mut w: Box<dyn Write>, bytes: Arc<AtomicU64>, last: Arc<AtomicU64>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        bytes.fetch_add(n as u64, Ordering::SeqCst);
        last.store(micros(), Ordering::SeqCst);
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

fn micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

/// This process's peak resident memory (VmHWM), in MiB.
/// CPU time this process has used so far, user and system, in seconds (/proc/self/stat).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<f64> = rest.split_whitespace().skip(11).take(2).filter_map(|v| v.parse().ok()).collect();
    f.iter().sum::<f64>() / 100.0
}

/// What this process has written to disk so far (`write_bytes` of /proc/self/io).
fn written_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines().find_map(|l| l.strip_prefix("write_bytes: ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

fn peak_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    kb / 1024
}
