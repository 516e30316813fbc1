//! Sync traffic of aidmesh and samod 0.16 side by side, over the same edits, in one run.
//!
//! Every pair does the same: one side makes a document of `history` changes and the pair syncs;
//! one edit while connected; the link is cut, each side makes 1,000 edits, the link comes back.
//! Both use automerge 0.12 and the same document shape.
//!
//! - *aidmesh, sessions in memory*: encoded frames with their 4-byte length prefixes (the
//!   protocol alone, no socket). Each step is a new session (its start and inventory count), as
//!   after a reconnect; replicas that do not sign.
//! - *aidmesh over TLS*: two real networks (`Mesh`) of in-memory replicas on loopback, TLS 1.3
//!   and the hubs' handshake, each change signed by its hub and checked at the door, as hubs run
//!   it; bytes on the socket through a counting TCP proxy.
//! - *samod over TCP* and *samod over TLS*: two real repos (its own length framing) through the
//!   same proxy; over TLS, TLS 1.3 with a self-signed certificate around the same stream.
//!
//! Times over sockets run from the proxy's accepting the connection to the moment both sides
//! hold the same heads (polled every 5 ms), so that neither side's redial wait counts.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aidmesh_mesh::memory::{converge, same, Mem};
use aidmesh_mesh::net::Mesh;
use aidmesh_mesh::session::DocId;
use aidmesh_mesh::Identity;
use automerge::transaction::Transactable;
use automerge::{Automerge, ObjType, ROOT};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy that counts bytes both ways, notes when it accepted a connection, and can cut
/// every connection.
#[derive(Clone)]
struct Proxy {
    bytes: Arc<AtomicU64>,
    up: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
    accepted: Arc<Mutex<Instant>>,
}

impl Proxy {
    async fn start(to: SocketAddr) -> (Proxy, SocketAddr) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let p = Proxy {
            bytes: Arc::new(AtomicU64::new(0)),
            up: Arc::new(AtomicBool::new(true)),
            generation: Arc::new(AtomicU64::new(0)),
            accepted: Arc::new(Mutex::new(Instant::now())),
        };
        let p2 = p.clone();
        tokio::spawn(async move {
            loop {
                let (client, _) = l.accept().await.unwrap();
                if !p2.up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                *p2.accepted.lock().unwrap() = Instant::now();
                client.set_nodelay(true).unwrap();
                let server = TcpStream::connect(to).await.unwrap();
                server.set_nodelay(true).unwrap();
                let gen = p2.generation.load(Ordering::SeqCst);
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                type Half =
                    (Box<dyn tokio::io::AsyncRead + Unpin + Send>, Box<dyn tokio::io::AsyncWrite + Unpin + Send>);
                let halves: [Half; 2] = [(Box::new(cr), Box::new(sw)), (Box::new(sr), Box::new(cw))];
                for (mut r, mut w) in halves {
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
    fn accepted(&self) -> Instant {
        *self.accepted.lock().unwrap()
    }
}

/// What one pair measured.
struct Figures {
    one: u64,
    reconnect: u64,
    t1: Duration,
    t2: Duration,
}

fn edit(doc: &mut Automerge, n: u64) {
    let actor = doc.get_actor().to_hex_string();
    let mut tx = doc.transaction();
    let obj = tx.put_object(ROOT, format!("r{n}-{actor}"), ObjType::Map).unwrap();
    tx.put(&obj, "name", format!("item {n}")).unwrap();
    tx.put(&obj, "quantity", n as i64).unwrap();
    tx.commit();
}

/// Waits until `same` holds; returns when it first did. Trailing acknowledgements then cross
/// before the caller reads the proxy's counter.
async fn converged(what: &str, mut same: impl FnMut() -> bool) -> Instant {
    let start = Instant::now();
    loop {
        if same() {
            let at = Instant::now();
            tokio::time::sleep(Duration::from_millis(300)).await;
            return at;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "{what} did not converge");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// TLS 1.3 for samod's stream: a self-signed certificate, and a client that takes any (the
/// bytes are what is measured, not who is at the other end).
fn tls() -> (tokio_rustls::TlsAcceptor, tokio_rustls::TlsConnector) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = rcgen::generate_simple_self_signed(vec!["bench".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    (tokio_rustls::TlsAcceptor::from(Arc::new(server)), tokio_rustls::TlsConnector::from(Arc::new(client)))
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.3 only".into()))
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// samod's client side over TLS: a TCP connection, TLS around it, samod's framing inside.
struct TlsDialer {
    addr: SocketAddr,
    connector: tokio_rustls::TlsConnector,
}

impl samod::Dialer for TlsDialer {
    type Error = std::convert::Infallible;
    fn url(&self) -> url::Url {
        url::Url::parse(&format!("tcp://{}", self.addr)).unwrap()
    }
    fn connect(&self) -> futures::future::BoxFuture<'static, Result<samod::Transport, samod::DialError<Self::Error>>> {
        let (addr, connector) = (self.addr, self.connector.clone());
        Box::pin(async move {
            let tcp = TcpStream::connect(addr).await.map_err(samod::DialError::transient)?;
            tcp.set_nodelay(true).map_err(samod::DialError::transient)?;
            let name = ServerName::try_from("bench").unwrap();
            let stream = connector.connect(name, tcp).await.map_err(samod::DialError::transient)?;
            Ok(samod::Transport::from_tokio_io(stream))
        })
    }
}

async fn samod_pair(history: u64, over_tls: bool) -> Figures {
    let server_repo: samod::Repo = samod::Repo::build_tokio().load().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    let acceptor = server_repo.make_acceptor(url::Url::parse("tcp://bench").unwrap()).unwrap();
    let (tls_acceptor, tls_connector) = tls();
    tokio::spawn(async move {
        loop {
            let (io, _) = listener.accept().await.unwrap();
            io.set_nodelay(true).unwrap();
            if over_tls {
                let (acceptor, tls_acceptor) = (acceptor.clone(), tls_acceptor.clone());
                tokio::spawn(async move {
                    if let Ok(stream) = tls_acceptor.accept(io).await {
                        let _ = acceptor.accept_tokio_io(stream);
                    }
                });
            } else {
                let _ = acceptor.accept_tokio_io(io);
            }
        }
    });
    let (proxy, proxy_addr) = Proxy::start(server_addr).await;
    let client_repo: samod::Repo = samod::Repo::build_tokio().load().await;
    let backoff = samod::BackoffConfig {
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        max_retries: None,
    };
    if over_tls {
        client_repo.dial(backoff, Arc::new(TlsDialer { addr: proxy_addr, connector: tls_connector })).unwrap();
    } else {
        client_repo.dial_tcp(url::Url::parse(&format!("tcp://{proxy_addr}")).unwrap(), backoff).unwrap();
    }
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
    let same = || a.with_document(|d| d.get_heads()) == b.with_document(|d| d.get_heads());
    converged("samod", same).await;
    proxy.take();
    // One edit while connected.
    let start = Instant::now();
    a.with_document(|d| edit(d, 10_000_000));
    let t1 = converged("samod", same).await - start;
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
    let t2 = converged("samod", same).await - proxy.accepted();
    let reconnect = proxy.take();
    Figures { one, reconnect, t1, t2 }
}

/// Two member replicas over the real network: `Mem` signs each change as a hub does (its actor
/// is the hub's key and 8 bytes) and checks what it receives.
async fn aidmesh_tls_pair(history: u64) -> Figures {
    let id = |n: u8| Identity::from_secret(&[n; 32]);
    let key = |n: u8| *id(n).public().as_bytes();
    let (mut a, mut b) = (Mem::signed(id(1)), Mem::signed(id(2)));
    a.admit(key(2));
    b.admit(key(1));
    for n in 0..history.max(1) {
        a.edit("d", n);
    }
    let b = Arc::new(Mesh::new(b, &id(2), [2; 32]).unwrap());
    let b_addr = b.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (proxy, proxy_addr) = Proxy::start(b_addr).await;
    let a = Arc::new(Mesh::new(a, &id(1), [1; 32]).unwrap());
    a.dial(proxy_addr);
    let heads = |m: &Mesh<Mem>| m.with_hub(|h| h.docs.get_mut(&DocId::from("d")).map(|d| d.get_heads()));
    let same = || heads(&a).is_some() && heads(&a) == heads(&b);
    converged("aidmesh", same).await;
    proxy.take();
    let start = Instant::now();
    a.with_hub(|h| h.edit("d", 10_000_000));
    let t1 = converged("aidmesh", same).await - start;
    let one = proxy.take();
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for n in 0..1000 {
        a.with_hub(|h| h.edit("d", 20_000_000 + n));
        b.with_hub(|h| h.edit("d", 30_000_000 + n));
    }
    proxy.take();
    proxy.restore();
    let t2 = converged("aidmesh", same).await - proxy.accepted();
    let reconnect = proxy.take();
    Figures { one, reconnect, t1, t2 }
}

fn aidmesh_memory_pair(history: u64) -> Figures {
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
    Figures { one, reconnect, t1, t2 }
}

#[tokio::main]
async fn main() {
    let history: u64 = std::env::var("AIDMESH_BENCH_HISTORY").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let memory = aidmesh_memory_pair(history);
    let aidmesh_tls = aidmesh_tls_pair(history).await;
    let samod_tcp = samod_pair(history, false).await;
    let samod_tls = samod_pair(history, true).await;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("history: {history} changes; edits as in crates/mesh/benches/sync.rs");
    println!("| pair | one edit, connected | reconnect after 1,000 edits on each side |");
    println!("|---|---|---|");
    for (name, f) in [
        ("aidmesh, sessions in memory, a new session each step (frame bytes)", &memory),
        ("aidmesh over TLS, signed (socket bytes)", &aidmesh_tls),
        ("samod 0.16 over TCP (socket bytes)", &samod_tcp),
        ("samod 0.16 over TLS (socket bytes)", &samod_tls),
    ] {
        println!("| {name} | {} bytes, {:.1} ms | {} bytes, {:.0} ms |", f.one, ms(f.t1), f.reconnect, ms(f.t2));
    }
    println!(
        "over TLS, samod / aidmesh: one edit {:.2}, reconnect {:.2}",
        samod_tls.one as f64 / aidmesh_tls.one as f64,
        samod_tls.reconnect as f64 / aidmesh_tls.reconnect as f64
    );
}
