//! Sync traffic of aidmesh and samod 0.16 side by side, over the same edits.
//!
//! samod runs two real repos over loopback TCP through a counting proxy (its own framing, no
//! TLS). aidmesh runs the same edits through its sans-IO sessions, counting the encoded frames
//! and their 4-byte length prefixes (no TLS either). Both use automerge 0.12.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aidmesh_mesh::memory::{converge, same, Mem};
use automerge::transaction::Transactable;
use automerge::{Automerge, ObjType, ROOT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy that counts bytes both ways and can cut every connection.
#[derive(Clone)]
struct Proxy {
    bytes: Arc<AtomicU64>,
    up: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
}

impl Proxy {
    async fn start(to: std::net::SocketAddr) -> (Proxy, std::net::SocketAddr) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let p = Proxy { bytes: Arc::new(AtomicU64::new(0)), up: Arc::new(AtomicBool::new(true)), generation: Arc::new(AtomicU64::new(0)) };
        let p2 = p.clone();
        tokio::spawn(async move {
            loop {
                let (client, _) = l.accept().await.unwrap();
                if !p2.up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let server = TcpStream::connect(to).await.unwrap();
                let gen = p2.generation.load(Ordering::SeqCst);
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                for (mut r, mut w) in [(Box::new(cr) as Box<dyn tokio::io::AsyncRead + Unpin + Send>, Box::new(sw) as Box<dyn tokio::io::AsyncWrite + Unpin + Send>), (Box::new(sr), Box::new(cw))] {
                    let p3 = p2.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 65536];
                        loop {
                            let n = match tokio::time::timeout(Duration::from_millis(50), r.read(&mut buf)).await {
                                Ok(Ok(0)) | Ok(Err(_)) => break,
                                Ok(Ok(n)) => n,
                                Err(_) => {
                                    if p3.generation.load(Ordering::SeqCst) != gen {
                                        break;
                                    }
                                    continue;
                                }
                            };
                            if p3.generation.load(Ordering::SeqCst) != gen {
                                break;
                            }
                            p3.bytes.fetch_add(n as u64, Ordering::SeqCst);
                            if w.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = w.shutdown().await;
                    });
                }
            }
        });
        (p, addr)
    }
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
    fn take(&self) -> u64 {
        self.bytes.swap(0, Ordering::SeqCst)
    }
}

fn edit(doc: &mut Automerge, n: u64) {
    let actor = doc.get_actor().to_hex_string();
    let mut tx = doc.transaction();
    let obj = tx.put_object(ROOT, format!("r{n}-{actor}"), ObjType::Map).unwrap();
    tx.put(&obj, "name", format!("item {n}")).unwrap();
    tx.put(&obj, "quantity", n as i64).unwrap();
    tx.commit();
}

async fn wait_same(a: &samod::DocHandle, b: &samod::DocHandle) -> Duration {
    let start = Instant::now();
    loop {
        let ha = a.with_document(|d| d.get_heads());
        let hb = b.with_document(|d| d.get_heads());
        if ha == hb {
            let took = start.elapsed();
            // Let trailing acknowledgements cross before reading the counter.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return took;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "samod did not converge");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn samod_pair(history: u64) -> (u64, u64, Duration, Duration) {
    let server_repo: samod::Repo = samod::Repo::build_tokio().load().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    let acceptor = server_repo.make_acceptor(url::Url::parse("tcp://bench").unwrap()).unwrap();
    tokio::spawn(async move {
        loop {
            let (io, _) = listener.accept().await.unwrap();
            let _ = acceptor.accept_tokio_io(io);
        }
    });
    let (proxy, proxy_addr) = Proxy::start(server_addr).await;
    let client_repo: samod::Repo = samod::Repo::build_tokio().load().await;
    let backoff = samod::BackoffConfig { initial_delay: Duration::from_millis(20), max_delay: Duration::from_millis(100), max_retries: None };
    client_repo.dial_tcp(url::Url::parse(&format!("tcp://{proxy_addr}")).unwrap(), backoff).unwrap();
    let mut initial = Automerge::new();
    for n in 0..history.max(1) {
        edit(&mut initial, n);
    }
    let a = client_repo.create(initial).await.unwrap();
    let b = loop {
        if let Ok(Some(h)) = server_repo.find(a.document_id().clone()).await {
            break h;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    wait_same(&a, &b).await;
    proxy.take();
    // One edit while connected.
    a.with_document(|d| edit(d, 10_000_000));
    let t1 = wait_same(&a, &b).await;
    let one = proxy.take();
    // Partition, 1,000 edits each, reconnect.
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for n in 0..1000 {
        a.with_document(|d| edit(d, 20_000_000 + n));
        b.with_document(|d| edit(d, 30_000_000 + n));
    }
    proxy.take();
    proxy.restore();
    let t2 = wait_same(&a, &b).await;
    let reconnect = proxy.take();
    (one, reconnect, t1, t2)
}

fn aidmesh_pair(history: u64) -> (u64, u64, Duration, Duration) {
    let mut nodes = vec![Mem::new(1), Mem::new(2)];
    for n in 0..history.max(1) {
        nodes[0].edit("d", n);
    }
    converge(&mut nodes, true);
    nodes[0].edit("d", 10_000_000);
    let s = Instant::now();
    let one = converge(&mut nodes, true);
    let t1 = s.elapsed();
    for n in 0..1000 {
        nodes[0].edit("d", 20_000_000 + n);
        nodes[1].edit("d", 30_000_000 + n);
    }
    let s = Instant::now();
    let reconnect = converge(&mut nodes, true);
    let t2 = s.elapsed();
    assert!(same(&mut nodes));
    (one, reconnect, t1, t2)
}

#[tokio::main]
async fn main() {
    let history: u64 = std::env::var("AIDMESH_BENCH_HISTORY").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let (a_one, a_rec, a_t1, a_t2) = aidmesh_pair(history);
    let (s_one, s_rec, s_t1, s_t2) = samod_pair(history).await;
    println!("history: {history} changes; edits as in crates/mesh/benches/sync.rs");
    println!("one edit, connected:      aidmesh {a_one} bytes ({:.2} ms protocol), samod {s_one} bytes ({:.0} ms to converge over loopback); samod/aidmesh {:.2}", a_t1.as_secs_f64() * 1e3, s_t1.as_secs_f64() * 1e3, s_one as f64 / a_one as f64);
    println!("reconnect, 2 x 1,000 edits: aidmesh {a_rec} bytes ({:.0} ms protocol), samod {s_rec} bytes ({:.0} ms to converge over loopback); samod/aidmesh {:.2}", a_t2.as_secs_f64() * 1e3, s_t2.as_secs_f64() * 1e3, s_rec as f64 / a_rec as f64);
}
