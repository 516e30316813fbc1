//! The network: TLS 1.3 between member hubs, and the tokio driver of sync sessions.
//!
//! TLS runs with a throwaway certificate (a fresh key each connection, no name in it); who each
//! hub is, is told inside it by the exchange of [`crate::handshake`], bound to the TLS session: the
//! dialler proves it holds the coalition secret before the listener shows its key, and each
//! checks the other's key against the current members before any sync frame. A hub that is not
//! a member, or was revoked, gets no document byte, and an outsider learns no key.
//! Frames travel with a 4-byte length prefix; one over [`MAX_FRAME`] ends the connection.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use aidmesh_model::{Clock, SystemClock, Timestamp};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};

use crate::handshake::{self, HandshakeError, Side, PROOF};
use crate::identity::{HubId, Identity};
use crate::keyring::Keyring;
use crate::meter::Meter;
pub use crate::policy::Reach;
use crate::policy::{Connected, Limits, Link, Policy, Review, Target};
use crate::session::{
    self, Backlog, DocInfo, Frame, PeerId, Replica, Session, SessionError, SharedFetches, Tick, Traffic, VaultItem,
    Whereabouts, MAX_FRAME,
};

/// What the driver needs from the hub beyond a session's needs.
pub trait Hub: Replica + Send + 'static {
    /// Documents changed since the last call (local writes and merges).
    fn take_changed(&mut self) -> Vec<DocInfo>;
    /// Vault entries changed since the last call (local, or merged from a peer).
    fn take_vault_changes(&mut self) -> Vec<VaultItem>;
    /// Authority entries stored since the last call (local, or accepted from a peer).
    fn take_authority_changes(&mut self) -> Vec<Vec<u8>>;
    /// Whereabouts taken since the last call (this hub's own, or newer ones from a peer).
    fn take_whereabouts_changes(&mut self) -> Vec<Whereabouts>;
    /// The hubs allowed to connect: the current members.
    fn member_ids(&mut self) -> BTreeSet<HubId>;
    /// The coalition secrets this hub holds: what it proves, and what it asks for.
    fn keyring(&mut self) -> Keyring;
    /// The most bytes a day this hub's sync may use over metered links (the internet) before
    /// only urgent documents go, if it set a budget.
    fn metered_budget(&mut self) -> Result<Option<u64>, String> {
        Ok(None)
    }
    /// What the store kept of the use of metered links: the day (UTC, `YYYY-MM-DD`) and its
    /// bytes.
    fn metered_kept(&mut self) -> Result<Option<(String, u64)>, String> {
        Ok(None)
    }
    /// Keeps the day's use of metered links in the store.
    fn keep_metered(&mut self, _day: &str, _used: u64) -> Result<(), String> {
        Ok(())
    }
    /// Commits what frames stored so far; called once no further frame is arriving, so that a
    /// store may group what peers send (it is sent again if lost) into fewer, larger commits.
    fn settle(&mut self) -> Result<(), String> {
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A connected peer, as `aidmesh peers` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct PeerStatus {
    pub hub: String,
    /// The peer's address on the local network, or `internet`.
    pub addr: String,
    pub reach: Reach,
    pub dialed: bool,
    pub connected_at: Timestamp,
    pub last_synced: Option<Timestamp>,
    pub traffic: Traffic,
    /// What waits to go to or come from the peer.
    pub backlog: Backlog,
}

/// What changed on this hub, for every connection to offer its peer.
#[derive(Clone, Debug)]
enum Change {
    /// Documents changed here (`relayed: false`: changes go out at once) or by a merge from a
    /// peer (`relayed: true`: heads go out first, see `Session::relayed`).
    Docs {
        docs: Vec<DocInfo>,
        relayed: bool,
    },
    Vault(Vec<VaultItem>),
    Authority(Vec<Vec<u8>>),
    Whereabouts(Vec<Whereabouts>),
}

fn take_changes<H: Hub>(h: &mut H, relayed: bool) -> Vec<Change> {
    let mut out = Vec::new();
    let docs = h.take_changed();
    if !docs.is_empty() {
        out.push(Change::Docs { docs, relayed });
    }
    let vault = h.take_vault_changes();
    if !vault.is_empty() {
        out.push(Change::Vault(vault));
    }
    let authority = h.take_authority_changes();
    if !authority.is_empty() {
        out.push(Change::Authority(authority));
    }
    let whereabouts = h.take_whereabouts_changes();
    if !whereabouts.is_empty() {
        out.push(Change::Whereabouts(whereabouts));
    }
    out
}

struct Shared<H: Hub> {
    hub: Mutex<H>,
    identity: Identity,
    members: Arc<RwLock<BTreeSet<HubId>>>,
    keyring: RwLock<Keyring>,
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    changed: broadcast::Sender<Change>,
    peers: Mutex<BTreeMap<HubId, (u64, PeerStatus)>>,
    next_conn: std::sync::atomic::AtomicU64,
    policy: Mutex<Policy>,
    /// Which connection fetches each document's changes (see `session::Fetches`).
    fetches: SharedFetches,
    /// Time for sessions (pings, liveness, last sync) and the policy: the sans-IO session only
    /// ever gets it passed in.
    clock: Arc<dyn Clock>,
    /// Counts changes to `peers` that front ends show: a connection made or lost, a sync done.
    peers_changed: tokio::sync::watch::Sender<u64>,
    /// The day's use of metered links, once read from the store. Taken before the hub's lock
    /// when both are needed, never after it.
    meter: Mutex<Option<Meter>>,
    /// Frames being prepared ahead on blocking threads, by all connections ([`PREPARES_AT_ONCE`]).
    preparing: Arc<tokio::sync::Semaphore>,
}

impl<H: Hub> Shared<H> {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn peers_changed(&self) {
        self.peers_changed.send_modify(|n| *n += 1);
    }
}

/// Exclusive use of a mesh's hub (see [`Mesh::lock_hub`]).
pub struct HubGuard<'a, H: Hub> {
    hub: Option<std::sync::MutexGuard<'a, H>>,
    changed: &'a broadcast::Sender<Change>,
}

impl<H: Hub> std::ops::Deref for HubGuard<'_, H> {
    type Target = H;
    fn deref(&self) -> &H {
        self.hub.as_ref().expect("held until dropped")
    }
}

impl<H: Hub> std::ops::DerefMut for HubGuard<'_, H> {
    fn deref_mut(&mut self) -> &mut H {
        self.hub.as_mut().expect("held until dropped")
    }
}

impl<H: Hub> Drop for HubGuard<'_, H> {
    fn drop(&mut self) {
        let changes = match self.hub.as_mut() {
            Some(h) => take_changes(&mut **h, false),
            None => return,
        };
        // Offered after the hub is released, so that connections can answer at once.
        drop(self.hub.take());
        for c in changes {
            let _ = self.changed.send(c);
        }
    }
}

/// The running mesh of one hub.
pub struct Mesh<H: Hub> {
    shared: Arc<Shared<H>>,
}

impl<H: Hub> Clone for Mesh<H> {
    fn clone(&self) -> Self {
        Mesh { shared: self.shared.clone() }
    }
}

impl<H: Hub> Mesh<H> {
    /// Wraps a hub: its identity for the handshake, the members and secrets it knows, and
    /// TLS configurations with throwaway keys made from `tls_key` (fresh random bytes), one for
    /// each connection. Time is the
    /// system's.
    pub fn new(hub: H, identity: &Identity, tls_key: [u8; 32]) -> Result<Mesh<H>, NetError> {
        Mesh::with_clock(hub, identity, tls_key, Arc::new(SystemClock))
    }

    /// [`Mesh::new`] with time from `clock`.
    pub fn with_clock(
        mut hub: H,
        identity: &Identity,
        tls_key: [u8; 32],
        clock: Arc<dyn Clock>,
    ) -> Result<Mesh<H>, NetError> {
        let members = Arc::new(RwLock::new(hub.member_ids()));
        let keyring = RwLock::new(hub.keyring());
        let (server, client) = throwaway_configs(tls_key)?;
        let (changed, _) = broadcast::channel(256);
        Ok(Mesh {
            shared: Arc::new(Shared {
                hub: Mutex::new(hub),
                identity: Identity::from_secret(&identity.secret()),
                members,
                keyring,
                server,
                client,
                changed,
                peers: Mutex::new(BTreeMap::new()),
                next_conn: std::sync::atomic::AtomicU64::new(1),
                policy: Mutex::new(Policy::new(identity.id(), Limits::default())),
                fetches: SharedFetches::default(),
                clock,
                peers_changed: tokio::sync::watch::Sender::new(0),
                meter: Mutex::new(None),
                preparing: Arc::new(tokio::sync::Semaphore::new(PREPARES_AT_ONCE)),
            }),
        })
    }

    /// Runs `f` with the hub, then offers whatever it changed to every peer.
    pub fn with_hub<T>(&self, f: impl FnOnce(&mut H) -> T) -> T {
        f(&mut self.lock_hub())
    }

    /// The hub, held until the guard drops; then whatever was changed through it is offered to
    /// every peer at once. Sync connections wait meanwhile: hold it for one command, not longer.
    pub fn lock_hub(&self) -> HubGuard<'_, H> {
        HubGuard { hub: Some(lock(&self.shared.hub)), changed: &self.shared.changed }
    }

    /// Re-reads the members from the hub; a connection to a peer that is no longer a member
    /// closes before it applies another frame, or at its next tick (`Policy::review`).
    pub fn refresh_members(&self) {
        refresh(&self.shared);
    }

    /// Whether `id` is a current member hub, as of the last refresh.
    pub fn is_member(&self, id: &HubId) -> bool {
        self.shared.members.read().unwrap_or_else(|e| e.into_inner()).contains(id)
    }

    /// The coalition secrets the mesh proves and asks for, as of the last refresh.
    pub fn keyring(&self) -> Keyring {
        self.shared.keyring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Connected peers.
    pub fn peers(&self) -> Vec<PeerStatus> {
        lock(&self.shared.peers).values().map(|(_, p)| p.clone()).collect()
    }

    /// Changes whenever what [`Mesh::peers`] shows does, but for traffic counts: a peer
    /// connected or went, or a sync with one completed. For front ends to show peers as they
    /// change rather than ask on a timer.
    pub fn watch_peers(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.peers_changed.subscribe()
    }

    /// Listens for peers; returns the bound address.
    pub async fn listen(&self, addr: SocketAddr) -> Result<SocketAddr, NetError> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let acceptor = tokio_rustls::TlsAcceptor::from(shared.server.clone());
            loop {
                let (tcp, from) = match listener.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if !lock(&shared.policy).handshake_start(from.ip()) {
                    drop(tcp);
                    refused(&shared, from, "no handshake slot for this address");
                    continue;
                }
                // Given back when the handshake ends, however it ends (a panic included).
                let slot = HandshakeSlot { shared: shared.clone(), from: from.ip() };
                // Small frames go out at once (an edit is one small frame).
                let _ = tcp.set_nodelay(true);
                let deadline = Duration::from_millis(lock(&shared.policy).limits().handshake_ms as u64);
                let shared = shared.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // Handshakes are bounded per source address and in time: an outsider holding
                    // sockets open uses up its own slots, never the members'.
                    let auth = tokio::time::timeout(deadline, async {
                        let mut stream = acceptor.accept(tcp).await.map_err(|e| ConnectError::Tls(e.to_string()))?;
                        let exporter = exporter(stream.get_ref().1).map_err(ConnectError::Tls)?;
                        let peer = answer(&shared, &mut stream, &exporter).await?;
                        Ok::<_, ConnectError>((stream, peer))
                    })
                    .await;
                    drop(slot);
                    match auth {
                        Ok(Ok((stream, peer))) => {
                            run_connection(shared, tokio_rustls::TlsStream::Server(stream), peer, from.into(), false)
                                .await;
                        }
                        Ok(Err(e)) => refused(&shared, from, &e.to_string()),
                        Err(_) => refused(&shared, from, "handshake timed out"),
                    }
                });
            }
        });
        Ok(local)
    }

    /// Keeps a connection to `addr` up: dials, and dials again after it drops, waiting as the
    /// policy says (longer after each failure, reset by a session that the peer answered and
    /// that ran a while).
    pub fn dial(&self, addr: SocketAddr) {
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let connector = tokio_rustls::TlsConnector::from(shared.client.clone());
            loop {
                if !lock(&shared.policy).should_dial(addr) {
                    // The hub at this address is connected already (it dialled us).
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                let keyring = shared.keyring.read().unwrap_or_else(|e| e.into_inner()).clone();
                let members = |id: &HubId| shared.members.read().unwrap_or_else(|e| e.into_inner()).contains(id);
                let session = match connect(&connector, &shared.identity, &keyring, members, addr).await {
                    Ok((stream, peer)) => {
                        let started = std::time::Instant::now();
                        let stream = tokio_rustls::TlsStream::Client(stream);
                        let answered = run_connection(shared.clone(), stream, peer, addr.into(), true).await;
                        Some((answered, started.elapsed()))
                    }
                    Err(e) => {
                        tracing::debug!(%addr, error = %e, "dial failed");
                        None
                    }
                };
                tokio::time::sleep(redial_wait(&shared, addr.into(), session)).await;
            }
        });
    }

    /// Runs a connection over a pipe of another transport (the internet's QUIC streams), which
    /// encrypts it and names the hub at the other end: `expected`, whose key it dialled or was
    /// dialled by. The handshake of the LAN runs inside it, bound to `exporter` (keying
    /// material that both ends of this pipe share and no other pipe has): the peer proves a
    /// secret of the coalition and its key, which must be `expected`'s and a current member's;
    /// then the session runs until the connection ends. `reach` is shown until the transport
    /// says otherwise ([`Mesh::set_reach`]). `Ok(answered)`: whether the peer's first frame
    /// arrived (for [`Mesh::redial_wait`]).
    pub async fn run_pipe<S: AsyncRead + AsyncWrite + Send + Unpin + 'static>(
        &self,
        mut pipe: S,
        exporter: [u8; 32],
        side: Side,
        expected: &HubId,
        reach: Reach,
    ) -> Result<bool, ConnectError> {
        let shared = self.shared.clone();
        let proved = tokio::time::timeout(PIPE_HANDSHAKE, async {
            match side {
                Side::Listener => answer(&shared, &mut pipe, &exporter).await,
                Side::Dialler => {
                    let keyring = shared.keyring.read().unwrap_or_else(|e| e.into_inner()).clone();
                    let members = |id: &HubId| shared.members.read().unwrap_or_else(|e| e.into_inner()).contains(id);
                    prove(&mut pipe, &exporter, &shared.identity, &keyring, members).await
                }
            }
        })
        .await
        .map_err(|_| ConnectError::Timeout)??;
        if proved != *expected {
            return Err(ConnectError::NotExpected { proved, expected: expected.clone() });
        }
        Ok(run_connection(shared, pipe, proved, Link::Internet(reach), side == Side::Dialler).await)
    }

    /// Whether to dial `target` now: not while its peer is connected, by whatever link.
    pub fn should_dial(&self, target: &Target) -> bool {
        lock(&self.shared.policy).should_dial(target.clone())
    }

    /// How long to wait before dialling `target` again, after a dial that failed (`None`) or a
    /// session that ran (whether the peer answered, and for how long): longer after each
    /// failure, as the policy says.
    pub fn redial_wait(&self, target: Target, session: Option<(bool, Duration)>) -> Duration {
        redial_wait(&self.shared, target, session)
    }

    /// The transport of an internet connection tells which path it runs on now.
    pub fn set_reach(&self, peer: &HubId, reach: Reach) {
        let changed = match lock(&self.shared.peers).get_mut(peer) {
            Some((_, st)) if st.reach != Reach::Lan && st.reach != reach => {
                st.reach = reach;
                true
            }
            _ => false,
        };
        if changed {
            self.shared.peers_changed();
        }
    }
}

/// How long to wait before dialling `target` again, after `session` (see [`Mesh::redial_wait`]),
/// by whichever transport.
fn redial_wait<H: Hub>(shared: &Shared<H>, target: Target, session: Option<(bool, Duration)>) -> Duration {
    let mut policy = lock(&shared.policy);
    if let Some((answered, lasted)) = session {
        policy.session_ended(target.clone(), answered, lasted.as_millis() as i64);
    }
    let wait = policy.dial_failed(target, rand_core::RngCore::next_u64(&mut rand_core::OsRng));
    Duration::from_millis(wait as u64)
}

/// Whether a connection stays, as the policy sees it with the current members.
fn review<H: Hub>(shared: &Shared<H>, peer: &HubId, conn: u64) -> Review {
    let members = shared.members.read().unwrap_or_else(|e| e.into_inner());
    lock(&shared.policy).review(peer, conn, &members)
}

/// Logs a refused connection, at the rate the policy allows.
fn refused<H: Hub>(shared: &Shared<H>, from: SocketAddr, why: &str) {
    if let Some(unlogged) = lock(&shared.policy).refusal(shared.now()) {
        tracing::warn!(%from, reason = why, unlogged, "refused a connection");
    }
}

/// Re-reads the members and the coalition secrets from the hub.
fn refresh<H: Hub>(shared: &Shared<H>) {
    let (ids, keyring) = {
        let mut h = lock(&shared.hub);
        (h.member_ids(), h.keyring())
    };
    lock(&shared.policy).members_now(&ids);
    *shared.members.write().unwrap_or_else(|e| e.into_inner()) = ids;
    *shared.keyring.write().unwrap_or_else(|e| e.into_inner()) = keyring;
}

/// The value both ends of one TLS session share and no other session has.
fn exporter<D>(conn: &rustls::ConnectionCommon<D>) -> Result<[u8; 32], String> {
    conn.export_keying_material([0u8; 32], handshake::EXPORTER_LABEL, None).map_err(|e| e.to_string())
}

/// Why a handshake failed, for the log.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    Handshake(#[from] HandshakeError),
    #[error("the handshake proved hub {proved}, not {expected} that the transport reached")]
    NotExpected { proved: HubId, expected: HubId },
}

/// The listener's side of the handshake, in a pipe whose two ends share `exporter` and no
/// other pipe has: the dialler's hello, this hub's proof, the dialler's.
async fn answer<H: Hub, S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared<H>,
    stream: &mut S,
    exporter: &[u8; 32],
) -> Result<HubId, ConnectError> {
    let count = stream.read_u8().await?;
    let mut rest = vec![0u8; handshake::hello_len(count)?];
    stream.read_exact(&mut rest).await?;
    let keyring = shared.keyring.read().unwrap_or_else(|e| e.into_inner()).clone();
    let is_member = |id: &HubId| shared.members.read().unwrap_or_else(|e| e.into_inner()).contains(id);
    handshake::check_hello(&keyring, exporter, &rest, is_member)?;
    stream.write_all(&handshake::proof(&shared.identity, Side::Listener, exporter)).await?;
    stream.flush().await?;
    let mut theirs = [0u8; PROOF];
    stream.read_exact(&mut theirs).await?;
    Ok(handshake::check_proof(&theirs, Side::Dialler, exporter, is_member)?)
}

/// The dialler's side of the handshake in such a pipe: proves it holds a secret of `keyring`,
/// checks the listener is a hub `member` accepts, and only then shows `identity`.
async fn prove<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    exporter: &[u8; 32],
    identity: &Identity,
    keyring: &Keyring,
    member: impl Fn(&HubId) -> bool,
) -> Result<HubId, ConnectError> {
    stream.write_all(&handshake::hello(keyring, identity, exporter)).await?;
    stream.flush().await?;
    let mut theirs = [0u8; PROOF];
    stream.read_exact(&mut theirs).await?;
    let peer = handshake::check_proof(&theirs, Side::Listener, exporter, member)?;
    stream.write_all(&handshake::proof(identity, Side::Dialler, exporter)).await?;
    stream.flush().await?;
    Ok(peer)
}

/// Dials a hub and runs the dialler's side of the handshake: proves it holds a secret of
/// `keyring`, checks the listener is a hub `member` accepts, and only then shows `identity`.
/// What the mesh dials with, and what tests dial with as a member, an outsider or a revoked hub.
pub async fn connect(
    connector: &tokio_rustls::TlsConnector,
    identity: &Identity,
    keyring: &Keyring,
    member: impl Fn(&HubId) -> bool,
    addr: SocketAddr,
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, HubId), ConnectError> {
    let tcp = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .map_err(|_| ConnectError::Timeout)??;
    let _ = tcp.set_nodelay(true);
    // No name is sent (SNI is off); this one only satisfies the API.
    let name = ServerName::IpAddress(addr.ip().into());
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut stream = connector.connect(name, tcp).await.map_err(|e| ConnectError::Tls(e.to_string()))?;
        let exporter = exporter(stream.get_ref().1).map_err(ConnectError::Tls)?;
        let peer = prove(&mut stream, &exporter, identity, keyring, member).await?;
        Ok((stream, peer))
    })
    .await
    .map_err(|_| ConnectError::Timeout)?
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long the handshake inside another transport's pipe may take: one and a half round trips,
/// which over a bad internet link take seconds (the transport bounds its own handshakes).
const PIPE_HANDSHAKE: Duration = Duration::from_secs(10);

/// Why a connection ended, for the log.
#[derive(Debug, thiserror::Error)]
enum Ended {
    #[error("connection closed: {0}")]
    Closed(std::io::Error),
    #[error("connection closed mid-frame: {0}")]
    MidFrame(std::io::Error),
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("{0}")]
    Session(#[from] SessionError),
    #[error("{0}")]
    Policy(&'static str),
    #[error("the peer went silent")]
    Silent,
    #[error("cannot send: {0}")]
    Write(std::io::Error),
    #[error("{}", if *.0 { "the day's budget for internet sync is spent: urgent documents only from now" } else { "a new day's budget for internet sync: everything again" })]
    Budget(bool),
}

/// A stream that counts the bytes it carries both ways (what a metered link's budget counts:
/// the sync stream, before the transport's own framing and encryption).
struct Counted<S> {
    inner: S,
    bytes: Arc<std::sync::atomic::AtomicU64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        self.bytes.fetch_add(read, std::sync::atomic::Ordering::Relaxed);
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &polled {
            self.bytes.fetch_add(*n as u64, std::sync::atomic::Ordering::Relaxed);
        }
        polled
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Counts `bytes` more over metered links, and whether the day's budget is spent. The count
/// lives in memory ([`Meter`]) and goes to the store every few seconds and when a session ends
/// (`ended`); the budget is read again every few seconds. A failed read or write keeps what was
/// known: it neither lifts the budget nor flips sessions in and out of it.
fn count_metered<H: Hub>(shared: &Shared<H>, bytes: u64, ended: bool) -> bool {
    let now = shared.now();
    let mut meter = lock(&shared.meter);
    let m = meter.get_or_insert_with(|| match lock(&shared.hub).metered_kept() {
        Ok(Some((day, used))) => Meter::from_kept(day, used),
        Ok(None) => Meter::default(),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the day's internet use: counting from nothing");
            Meter::default()
        }
    });
    m.count(now, bytes);
    if m.budget_due(now) {
        match lock(&shared.hub).metered_budget() {
            Ok(b) => m.set_budget(b, now),
            Err(e) => tracing::error!(error = %e, "cannot read the internet budget: the last one read holds"),
        }
    }
    if let Some((day, used)) = m.to_keep(now, ended) {
        match lock(&shared.hub).keep_metered(&day, used) {
            Ok(()) => m.kept(used, now),
            Err(e) => tracing::warn!(error = %e, "cannot keep the day's internet use: tried again later"),
        }
    }
    m.over()
}

/// One connection: a session fed by a reader task, local changes and a half-second tick.
/// Returns whether the session completed its handshake (the peer's first frame arrived).
async fn run_connection<H: Hub, S: AsyncRead + AsyncWrite + Send + Unpin + 'static>(
    shared: Arc<Shared<H>>,
    stream: S,
    peer: HubId,
    link: Link,
    dialed: bool,
) -> bool {
    let conn = shared.next_conn.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    if !register(&shared, &peer, conn, link, dialed) {
        return false;
    }
    tracing::info!(peer = %peer.short(), ?link, "connected");
    let bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (rd, mut wr) = tokio::io::split(Counted { inner: stream, bytes: bytes.clone() });
    let preparer = Preparer { prepare: session::prepare::<H>, running: shared.preparing.clone() };
    let (reader, mut frames) = read_frames(rd, Some(preparer));
    // However the connection ends, even by the task that runs it being aborted, the policy and
    // the peers view forget it and its reader stops.
    let _registered = Registered { shared: &shared, peer: &peer, conn, reader };
    let now = shared.now();
    let metered = match link {
        Link::Lan(_) => false,
        Link::Internet(_) => count_metered(&shared, 0, false),
    };
    let session =
        Session::sharing(PeerId::from(&peer), now, shared.fetches.clone()).paced(link.pace()).metered(metered);
    let mut c = Connection { shared: &shared, peer: &peer, conn, session, link, bytes, counted: 0 };
    if let Err(e) = c.run(&mut wr, &mut frames).await {
        tracing::info!(peer = %peer.short(), reason = %e, "disconnected");
    }
    // What the session carried since its last tick counts too.
    if let Link::Internet(_) = link {
        let total = c.bytes.load(std::sync::atomic::Ordering::Relaxed);
        count_metered(&shared, total - c.counted, true);
    }
    c.session.heard_from_peer()
}

/// A registered connection, taken out of the policy and the peers view when dropped.
struct Registered<'a, H: Hub> {
    shared: &'a Shared<H>,
    peer: &'a HubId,
    conn: u64,
    reader: tokio::task::JoinHandle<()>,
}

impl<H: Hub> Drop for Registered<'_, H> {
    fn drop(&mut self) {
        self.reader.abort();
        unregister(self.shared, self.peer, self.conn);
    }
}

/// Admits connection `conn` to the policy and the peers view; `false` if the policy keeps
/// another connection to this peer (or the peer is this hub).
fn register<H: Hub>(shared: &Shared<H>, peer: &HubId, conn: u64, link: Link, dialed: bool) -> bool {
    match lock(&shared.policy).connected(peer, conn, dialed, link) {
        Connected::Keep { .. } => {}
        Connected::Duplicate | Connected::Myself => return false,
    }
    let (addr, reach) = match link {
        Link::Lan(addr) => (addr.to_string(), Reach::Lan),
        // The transport tells when the path changes ([`Mesh::set_reach`]).
        Link::Internet(reach) => ("internet".to_string(), reach),
    };
    let status = PeerStatus {
        hub: peer.to_string(),
        addr,
        reach,
        dialed,
        connected_at: shared.now(),
        last_synced: None,
        traffic: Traffic::default(),
        backlog: Backlog::default(),
    };
    lock(&shared.peers).insert(peer.clone(), (conn, status));
    shared.peers_changed();
    true
}

/// Takes connection `conn` out of the policy and, if it is still the one shown, the peers view.
fn unregister<H: Hub>(shared: &Shared<H>, peer: &HubId, conn: u64) {
    lock(&shared.policy).disconnected(peer, conn);
    let gone = {
        let mut peers = lock(&shared.peers);
        peers.get(peer).is_some_and(|(c, _)| *c == conn) && peers.remove(peer).is_some()
    };
    if gone {
        shared.peers_changed();
    }
}

/// A frame read ahead, with what was prepared of it ([`session::prepare`]), holding its share of
/// the connection's read-ahead budget until handled.
type ReadFrame<P> = Result<(Frame, Option<Prepared<P>>, tokio::sync::OwnedSemaphorePermit), Ended>;

/// What was prepared of a frame, holding one of its connection's [`PREPARED_AHEAD`] places
/// until the hub takes it up.
struct Prepared<P> {
    value: P,
    _place: tokio::sync::OwnedSemaphorePermit,
}

/// How a connection's reader prepares frames ([`read_frames`]): the replica's `prepare`, and
/// the hub's count of preparations under way.
struct Preparer<P> {
    prepare: fn(&Frame) -> Option<P>,
    running: Arc<tokio::sync::Semaphore>,
}

/// Bytes of frames (as received, and as inflated, by [`Frame::plain_len`]) a connection reads
/// ahead of the session: a peer that sends while it does not read what this hub writes holds
/// about this much here (the decoded frames weigh a few times their length).
const READ_AHEAD: usize = 4 * MAX_FRAME;
/// How long a write of frames may wait for the peer to read. Two hubs that both send more than
/// the other reads ahead, at once, would otherwise wait on each other for good; the session
/// ends instead, and the next one resumes from the sync state kept.
const WRITE_WAIT: Duration = Duration::from_secs(120);

/// A document loaded ahead weighs a few times the bytes it came as: a frame that `prepare` worked
/// on holds this many times its length of the read-ahead budget more until it is handled (and
/// is not prepared if that much is not free).
const PREPARED_WEIGHT: usize = 4;
/// Prepared frames one connection holds before the hub takes them up, being prepared or ready.
/// More than the preparations that run at once: frames are handed on in order, so while one
/// large document is prepared, the quicker ones read after it are prepared too and wait ready
/// (with two places, the second core idled behind it). The reader waits for a place before it
/// prepares another.
const PREPARED_AHEAD: usize = 4;
/// Preparations that run at once for one hub, whatever the connections: one a core, on the
/// laptops hubs run on. One that outlives its connection still counts until it ends.
const PREPARES_AT_ONCE: usize = 2;

/// A frame as the reader hands it on, in the order it was read: ready, or being prepared.
enum Reading<P> {
    Ready(ReadFrame<P>),
    Preparing(tokio::task::JoinHandle<ReadFrame<P>>),
}

/// A task that reads length-prefixed frames until the stream ends or a frame is bad, which it
/// sends last. It reads ahead while the frames not yet handled fit [`READ_AHEAD`]. A frame
/// worth it ([`session::worth_preparing`]) is given to the preparer on a blocking thread first,
/// so that the work that needs no hub (loading a whole document that arrives) is done while the
/// hub applies the frames before it: at most [`PREPARED_AHEAD`] prepared frames wait or are
/// prepared per connection, side by side, and [`PREPARES_AT_ONCE`] preparations run per hub.
/// A second task hands the frames on in the order they were read, each once it is prepared.
fn read_frames<R, P>(mut rd: R, preparer: Option<Preparer<P>>) -> (tokio::task::JoinHandle<()>, Frames<P>)
where
    R: AsyncReadExt + Unpin + Send + 'static,
    P: Send + 'static,
{
    let (tx, rx) = mpsc::channel::<ReadFrame<P>>(64);
    let (order, mut in_order) = mpsc::channel::<Reading<P>>(64);
    let arriving = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = arriving.clone();
    let waiting = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let read = waiting.clone();
    let budget = Arc::new(tokio::sync::Semaphore::new(READ_AHEAD));
    let places = Arc::new(tokio::sync::Semaphore::new(PREPARED_AHEAD));
    let task = tokio::spawn(async move {
        loop {
            let reading = async {
                let len = rd.read_u32().await.map_err(Ended::Closed)? as usize;
                started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if len > MAX_FRAME {
                    return Err(Ended::TooLarge(len));
                }
                // Room for the frame as received, then for it as decoded.
                let take = |n: usize| budget.clone().acquire_many_owned(n.clamp(1, READ_AHEAD) as u32);
                let mut permit = take(len).await.map_err(|_| Ended::Policy("the connection is closing"))?;
                let mut buf = vec![0u8; len];
                rd.read_exact(&mut buf).await.map_err(Ended::MidFrame)?;
                let frame = Frame::decode(&buf)?;
                // Read whole: the peer is heard, however long it waits here to be taken.
                read.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(buf);
                drop(permit);
                permit = take(frame.plain_len()).await.map_err(|_| Ended::Policy("the connection is closing"))?;
                let Some(p) = preparer.as_ref().filter(|_| session::worth_preparing(&frame)) else {
                    return Ok(Reading::Ready(Ok((frame, None, permit))));
                };
                let closing = |_| Ended::Policy("the connection is closing");
                let place = places.clone().acquire_owned().await.map_err(closing)?;
                // The weight of what is prepared, if the budget has it now (never more than the
                // whole budget for one frame, which always gets through); else the frame goes as
                // it came, and the hub does the work.
                let held = frame.plain_len().clamp(1, READ_AHEAD);
                let more = (PREPARED_WEIGHT * frame.plain_len()).min(READ_AHEAD - held);
                if more > 0 {
                    match budget.clone().try_acquire_many_owned(more as u32) {
                        Ok(m) => permit.merge(m),
                        Err(_) => return Ok(Reading::Ready(Ok((frame, None, permit)))),
                    }
                }
                let running = p.running.clone().acquire_owned().await.map_err(closing)?;
                let prepare = p.prepare;
                Ok(Reading::Preparing(tokio::task::spawn_blocking(move || {
                    // Held by the job itself: one that outlives its connection still counts.
                    let _running = running;
                    let value = prepare(&frame);
                    Ok((frame, value.map(|value| Prepared { value, _place: place }), permit))
                })))
            }
            .await;
            let reading = reading.unwrap_or_else(|e| Reading::Ready(Err(e)));
            let last = matches!(reading, Reading::Ready(Err(_)));
            if order.send(reading).await.is_err() || last {
                return;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(reading) = in_order.recv().await {
            let frame = match reading {
                Reading::Ready(frame) => frame,
                Reading::Preparing(job) => job.await.unwrap_or_else(|e| {
                    tracing::error!(error = %e, "preparing a frame failed");
                    Err(Ended::Policy("preparing a frame failed"))
                }),
            };
            let last = frame.is_err();
            if tx.send(frame).await.is_err() || last {
                return;
            }
        }
    });
    (task, Frames { rx, arriving, waiting })
}

/// A local network socket's handshake slot ([`Policy::handshake_start`]), given back when
/// dropped.
struct HandshakeSlot<H: Hub> {
    shared: Arc<Shared<H>>,
    from: std::net::IpAddr,
}

impl<H: Hub> Drop for HandshakeSlot<H> {
    fn drop(&mut self) {
        lock(&self.shared.policy).handshake_ended(self.from);
    }
}

/// The frames a connection's reader passes on, and how many it has begun to read that the
/// connection has not taken yet (being read, prepared, or waiting): while more arrive, what the
/// hub stores of them is committed together (see [`Hub::settle`]).
struct Frames<P> {
    rx: mpsc::Receiver<ReadFrame<P>>,
    arriving: Arc<std::sync::atomic::AtomicUsize>,
    /// Of those, how many were read whole and wait (to be prepared, or for the connection).
    waiting: Arc<std::sync::atomic::AtomicUsize>,
}

impl<P> Frames<P> {
    /// The next frame (cancel-safe, as the channel's own).
    async fn recv(&mut self) -> Option<ReadFrame<P>> {
        let f = self.rx.recv().await;
        if let Some(Ok(_)) = f {
            self.arriving.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            self.waiting.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
        f
    }

    /// Whether another frame has begun to arrive.
    fn more(&self) -> bool {
        self.arriving.load(std::sync::atomic::Ordering::SeqCst) > 0
    }

    /// Whether a frame the peer sent was read whole and waits here: the peer is not silent,
    /// this hub is slow (preparing a large document, or waiting for the hub's preparations
    /// that other connections hold). A frame still being read does not count: a peer that
    /// trickles one is silent.
    fn waiting(&self) -> bool {
        self.waiting.load(std::sync::atomic::Ordering::SeqCst) > 0
    }
}

/// A running connection's session, with what it answers to: frames from the peer, changes
/// made or received here, and the tick.
struct Connection<'a, H: Hub> {
    shared: &'a Shared<H>,
    peer: &'a HubId,
    conn: u64,
    session: Session,
    link: Link,
    /// The bytes the connection carried, both ways, and how many of them the day's use counts.
    bytes: Arc<std::sync::atomic::AtomicU64>,
    counted: u64,
}

impl<H: Hub> Connection<'_, H> {
    /// Runs until the peer, the policy or a write ends it; `Ok` when the hub shuts down.
    async fn run<W: AsyncWriteExt + Unpin>(
        &mut self,
        wr: &mut W,
        frames: &mut Frames<H::Prepared>,
    ) -> Result<(), Ended> {
        let mut changes = self.shared.changed.subscribe();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let first = self.session.start(&mut *lock(&self.shared.hub), self.shared.now());
        write_frames(wr, &first).await.map_err(Ended::Write)?;
        loop {
            let (out, changed) = tokio::select! {
                f = frames.recv() => match f {
                    // The frame's read-ahead budget is given back once it is handled.
                    Some(frame) => {
                        // The frame's budget and place are given back once it is handled.
                        let (frame, prepared, _budget) = frame?;
                        let more = frames.more();
                        self.on_frame(frame, prepared, more)?
                    }
                    None => return Err(Ended::Closed(std::io::ErrorKind::UnexpectedEof.into())),
                },
                c = changes.recv() => match c {
                    Ok(c) => (self.on_change(Some(c)), Vec::new()),
                    // Missed some notices: offer everything again.
                    Err(broadcast::error::RecvError::Lagged(_)) => (self.on_change(None), Vec::new()),
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                _ = tick.tick() => {
                    if frames.waiting() {
                        self.session.heard(self.shared.now());
                    }
                    (self.on_tick()?, Vec::new())
                }
            };
            let written = write_frames(wr, &out).await.map_err(Ended::Write);
            self.announce(changed);
            written?;
        }
    }

    /// A frame from the peer, applied: the answer, and what it changed here. A frame the
    /// session refuses ends the connection, and what it changed is not announced.
    fn on_frame(
        &mut self,
        frame: Frame,
        prepared: Option<Prepared<H::Prepared>>,
        more: bool,
    ) -> Result<(Vec<Frame>, Vec<Change>), Ended> {
        // Nothing from a peer revoked since the last tick is applied.
        if let Review::Close(why) = review(self.shared, self.peer, self.conn) {
            return Err(Ended::Policy(why));
        }
        let mut h = lock(&self.shared.hub);
        let handled = self.session.handle_prepared(&mut *h, frame, prepared.map(|p| p.value), self.shared.now());
        // Taken either way, so that what a refused frame changed is not announced later as
        // this hub's own writes.
        let changed = take_changes(&mut *h, true);
        let handled = handled?;
        // With no further frame arriving, what this one stored is committed before anyone asks.
        if !more {
            if let Err(e) = h.settle() {
                tracing::error!(peer = %self.peer, error = %e, "cannot commit what peers sent");
                return Err(Ended::Policy("cannot store what the peer sent"));
            }
        }
        Ok((handled.0, changed))
    }

    /// Offers what a frame changed here to every connection (this one's answer went first).
    fn announce(&self, changed: Vec<Change>) {
        // Authority that arrived may admit or revoke hubs, and turn the coalition secret over:
        // every connection sees it now.
        if changed.iter().any(|c| matches!(c, Change::Authority(_))) {
            refresh(self.shared);
        }
        for c in changed {
            let _ = self.shared.changed.send(c);
        }
    }

    /// A change made or received here (`None`: some were missed), offered to the peer.
    fn on_change(&mut self, change: Option<Change>) -> Vec<Frame> {
        let mut h = lock(&self.shared.hub);
        let now = self.shared.now();
        let s = &mut self.session;
        match change {
            Some(Change::Docs { docs, relayed: false }) => {
                docs.iter().flat_map(|d| s.changed(&mut *h, d, now)).collect()
            }
            Some(Change::Docs { docs, relayed: true }) => {
                docs.iter().flat_map(|d| s.relayed(&mut *h, d, now)).collect()
            }
            Some(Change::Vault(items)) => s.vault_changed(items, now),
            Some(Change::Authority(entries)) => s.authority_changed(entries, now),
            Some(Change::Whereabouts(items)) => s.whereabouts_changed(items, now),
            None => s.resync(&mut *h, now),
        }
    }

    /// The half-second tick: the policy's review, keep-alive, fetches that waited for another
    /// connection (their asks go out with the ping, in one write), and the peers view.
    fn on_tick(&mut self) -> Result<Vec<Frame>, Ended> {
        let now = self.shared.now();
        if let Review::Close(why) = review(self.shared, self.peer, self.conn) {
            return Err(Ended::Policy(why));
        }
        if let Link::Internet(_) = self.link {
            // What went over the metered link since the last tick counts toward today's use;
            // a session goes on only as long as it sends what the budget allows.
            let total = self.bytes.load(std::sync::atomic::Ordering::Relaxed);
            let fresh = total - std::mem::replace(&mut self.counted, total);
            let over = count_metered(self.shared, fresh, false);
            if over != self.session.is_metered() {
                return Err(Ended::Budget(over));
            }
        }
        let mut out = match self.session.tick(now) {
            Tick::Dead => return Err(Ended::Silent),
            Tick::Send(f) => vec![f],
            Tick::Idle => Vec::new(),
        };
        // Documents that waited for another connection's fetch ask now if they may, and the
        // answer to the peer's inventory offers its next documents.
        if self.session.is_waiting() {
            out.extend(self.session.retry(&mut *lock(&self.shared.hub), now));
        }
        let synced = match lock(&self.shared.peers).get_mut(self.peer) {
            Some((c, st)) if *c == self.conn => {
                st.traffic = self.session.traffic();
                st.backlog = self.session.backlog();
                std::mem::replace(&mut st.last_synced, self.session.last_synced()) != st.last_synced
            }
            _ => false,
        };
        if synced {
            self.shared.peers_changed();
        }
        Ok(out)
    }
}

/// Writes a batch of frames as one buffer: one TLS record where it fits, rather than a length
/// and a frame in separate records (the second of which waited for a delayed ACK).
async fn write_frames<W: AsyncWriteExt + Unpin>(wr: &mut W, frames: &[Frame]) -> std::io::Result<()> {
    if frames.is_empty() {
        return Ok(());
    }
    let mut buf = Vec::new();
    for f in frames {
        let b = f.encode();
        buf.extend_from_slice(&(b.len() as u32).to_be_bytes());
        buf.extend_from_slice(&b);
    }
    let write = async {
        wr.write_all(&buf).await?;
        wr.flush().await
    };
    match tokio::time::timeout(WRITE_WAIT, write).await {
        Ok(written) => written,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the peer read nothing for two minutes")),
    }
}

/// The hub id of a certificate: its key must be Ed25519.
pub fn peer_id(cert: &CertificateDer<'_>) -> Result<HubId, rustls::Error> {
    let (_, x) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
    let spki = x.public_key();
    if spki.algorithm.algorithm != x509_parser::oid_registry::OID_SIG_ED25519 {
        return Err(rustls::Error::General("the peer's key is not Ed25519".into()));
    }
    let key: [u8; 32] = spki
        .subject_public_key
        .data
        .as_ref()
        .try_into()
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&key)
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
    Ok(HubId::of(&vk))
}

/// Which peer keys a TLS endpoint accepts: the rule sees the peer's hub id.
pub type KeyRule = Arc<dyn Fn(&HubId) -> bool + Send + Sync>;

/// A TLS verifier for both sides that accepts an Ed25519 certificate when its key passes `rule`
/// (current members, one pinned hub, or any key for a join), and checks handshake signatures.
struct KeyCheck {
    rule: KeyRule,
    algs: WebPkiSupportedAlgorithms,
}

impl std::fmt::Debug for KeyCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyCheck")
    }
}

impl KeyCheck {
    fn check(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        if (self.rule)(&peer_id(cert)?) {
            Ok(())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
        }
    }
}

impl ClientCertVerifier for KeyCheck {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        end: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end).map(|_| ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not offered".into()))
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(m, c, d, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

impl ServerCertVerifier for KeyCheck {
    fn verify_server_cert(
        &self,
        end: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end).map(|_| ServerCertVerified::assertion())
    }
    // The handshake signatures are checked alike on both sides.
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ClientCertVerifier::verify_tls12_signature(self, m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ClientCertVerifier::verify_tls13_signature(self, m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ClientCertVerifier::supported_verify_schemes(self)
    }
}

/// A self-signed certificate for an Ed25519 key, and the key in PKCS#8. It names nothing: no
/// subject, no alternative name.
fn self_signed(secret: &[u8; 32]) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), NetError> {
    let err = |e: &dyn std::fmt::Display| NetError::Tls(e.to_string());
    let signing = ed25519_dalek::SigningKey::from_bytes(secret);
    let pkcs8 = signing.to_pkcs8_der().map_err(|e| err(&e))?;
    let der = PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec());
    let kp = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_ED25519).map_err(|e| err(&e))?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| err(&e))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let cert = params.self_signed(&kp).map_err(|e| err(&e))?;
    Ok((vec![cert.der().clone()], PrivateKeyDer::Pkcs8(der)))
}

/// A server certificate made afresh for each TLS handshake, so that no two connections to a
/// hub see the same key: key `n` is a hash of the seed and `n`, which says nothing without the
/// seed (fresh random bytes each run).
struct FreshCertificates {
    seed: [u8; 32],
    next: std::sync::atomic::AtomicU64,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl std::fmt::Debug for FreshCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FreshCertificates")
    }
}

impl FreshCertificates {
    fn make(&self) -> Result<Arc<rustls::sign::CertifiedKey>, NetError> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key: [u8; 32] = Sha256::new()
            .chain_update(b"aidmesh throwaway tls key v1\n")
            .chain_update(self.seed)
            .chain_update(n.to_be_bytes())
            .finalize()
            .into();
        let (chain, key) = self_signed(&key)?;
        let certified = rustls::sign::CertifiedKey::from_der(chain, key, &self.provider)
            .map_err(|e| NetError::Tls(e.to_string()))?;
        Ok(Arc::new(certified))
    }
}

impl rustls::server::ResolvesServerCert for FreshCertificates {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.make().inspect_err(|e| tracing::warn!(error = %e, "cannot make a TLS certificate")).ok()
    }
}

/// TLS 1.3 server and client configurations for the mesh, with throwaway keys made from
/// `tls_key` (fresh random bytes), a new one for each connection: the server asks for no
/// certificate and the client accepts any Ed25519 one and sends no name. Who each end is, is
/// the handshake's business.
pub fn throwaway_configs(
    tls_key: [u8; 32],
) -> Result<(Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>), NetError> {
    let err = |e: &dyn std::fmt::Display| NetError::Tls(e.to_string());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certificates =
        FreshCertificates { seed: tls_key, next: std::sync::atomic::AtomicU64::new(0), provider: provider.clone() };
    // Fails here, at set-up, rather than at a peer's handshake.
    certificates.make()?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| err(&e))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(certificates));
    // No session is resumed, either way: a ticket shown again at another address would tie the
    // two connections to one hub, whatever its certificates.
    server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    server.send_tls13_tickets = 0;
    let any: KeyRule = Arc::new(|_| true);
    let check = Arc::new(KeyCheck { rule: any, algs: provider.signature_verification_algorithms });
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| err(&e))?
        .dangerous()
        .with_custom_certificate_verifier(check)
        .with_no_client_auth();
    client.enable_sni = false;
    client.resumption = rustls::client::Resumption::disabled();
    Ok((Arc::new(server), Arc::new(client)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A peer that sends frames the session does not take yet (it is busy, or blocked writing
    /// to a peer that does not read) gets no more read than the read-ahead budget: here four
    /// frames that each inflate to nearly the frame limit from about 160 KB.
    #[tokio::test]
    async fn frames_are_read_ahead_only_within_the_budget() {
        let (mut peer, ours) = tokio::io::duplex(4 << 20);
        let (reader, mut frames) = read_frames::<_, ()>(ours, None);
        let big = Frame::Sync { doc: "d".into(), msg: vec![0; MAX_FRAME - 100], sigs: vec![] }.encode();
        assert!(big.len() < 256 * 1024, "{} bytes on the wire", big.len());
        for _ in 0..6 {
            peer.write_all(&(big.len() as u32).to_be_bytes()).await.unwrap();
            peer.write_all(&big).await.unwrap();
        }
        peer.flush().await.unwrap();
        let fits = READ_AHEAD / (MAX_FRAME - 100 + 6);
        assert_eq!(fits, 4);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(frames.rx.len(), fits, "the budget is full");
        // One handled: its room goes to the next.
        drop(frames.recv().await.unwrap().unwrap());
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(frames.rx.len(), fits);
        reader.abort();
    }

    /// A connection knows whether another frame has begun to arrive (read, or only its length
    /// so far): its hub commits what a burst of frames stored together, and at once after the
    /// burst's last frame.
    #[tokio::test]
    async fn a_connection_knows_whether_more_frames_are_arriving() {
        let (mut peer, ours) = tokio::io::duplex(1 << 16);
        let (_reader, mut frames) = read_frames::<_, ()>(ours, None);
        let frame = |doc: &str| {
            let f = Frame::Sync { doc: doc.into(), msg: vec![0; 10], sigs: vec![] }.encode();
            let mut wire = (f.len() as u32).to_be_bytes().to_vec();
            wire.extend(f);
            wire
        };
        let settled = |frames: &Frames<()>, n: usize| {
            frames.arriving.load(std::sync::atomic::Ordering::SeqCst) == n && frames.rx.len() == n
        };
        assert!(!frames.more());
        peer.write_all(&[frame("a"), frame("b")].concat()).await.unwrap();
        while !settled(&frames, 2) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(frames.waiting(), "read whole, they wait");
        let _ = frames.recv().await.unwrap().unwrap();
        assert!(frames.more(), "b has arrived");
        assert!(frames.waiting(), "and waits");
        let _ = frames.recv().await.unwrap().unwrap();
        assert!(!frames.more(), "nothing more");
        assert!(!frames.waiting());
        // The length of the next frame alone counts: the rest is on its way. It does not wait
        // here yet (a peer that trickles a frame is not heard).
        let c = frame("c");
        peer.write_all(&c[..4]).await.unwrap();
        while frames.arriving.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(frames.more());
        assert!(!frames.waiting());
        peer.write_all(&c[4..]).await.unwrap();
        let (f, _, _) = frames.recv().await.unwrap().unwrap();
        assert!(matches!(f, Frame::Sync { doc, .. } if doc.as_str() == "c"));
        assert!(!frames.more());
    }

    /// A sync message large enough is prepared before it is handed on, in order, holding
    /// `1 + PREPARED_WEIGHT` times its length of the budget and one of the connection's places
    /// until handled: no more than `PREPARED_AHEAD` wait. One the size of the frame limit takes
    /// the whole budget and still passes; small ones are not prepared.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_sync_messages_are_prepared_ahead_within_the_budget() {
        let (mut peer, ours) = tokio::io::duplex(4 << 20);
        let prepare: fn(&Frame) -> Option<String> = |f| match f {
            Frame::Sync { doc, .. } => Some(format!("prepared {doc}")),
            _ => None,
        };
        let running = Arc::new(tokio::sync::Semaphore::new(PREPARES_AT_ONCE));
        let (reader, mut frames) = read_frames(ours, Some(Preparer { prepare, running: running.clone() }));
        let send = |doc: String, len: usize| Frame::Sync { doc: doc.into(), msg: vec![0; len], sigs: vec![] }.encode();
        let wire = |frames: &mut dyn Iterator<Item = (String, usize)>| {
            let mut wire = Vec::new();
            for (doc, len) in frames {
                let f = send(doc, len);
                wire.extend((f.len() as u32).to_be_bytes());
                wire.extend(f);
            }
            wire
        };
        peer.write_all(&wire(&mut [("small".to_string(), 100)].into_iter())).await.unwrap();
        let (small, prepared, _) = frames.recv().await.unwrap().unwrap();
        assert!(matches!(small, Frame::Sync { .. }) && prepared.is_none(), "a small message is not prepared");
        // The small one is handled: the whole budget is free for the next.
        let rest =
            [("limit".to_string(), MAX_FRAME - 100)].into_iter().chain((0..20).map(|i| (format!("d{i}"), 1 << 20)));
        peer.write_all(&wire(&mut rest.into_iter())).await.unwrap();
        peer.flush().await.unwrap();
        let (_, prepared, budget) = frames.recv().await.unwrap().unwrap();
        assert_eq!(prepared.map(|p| p.value).as_deref(), Some("prepared limit"));
        assert_eq!(budget.num_permits(), READ_AHEAD, "the whole budget, and no more");
        drop(budget);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(frames.rx.len(), PREPARED_AHEAD, "prepared frames wait in their places only");
        assert_eq!(running.available_permits(), PREPARES_AT_ONCE, "nothing is being prepared");
        for i in 0..20 {
            let (_, prepared, budget) = frames.recv().await.unwrap().unwrap();
            assert_eq!(prepared.map(|p| p.value), Some(format!("prepared d{i}")), "in order");
            assert!(budget.num_permits() > PREPARED_WEIGHT * (1 << 20), "with its weight");
        }
        reader.abort();
    }

    /// Two large frames are prepared side by side while the hub waits for them (a new hub
    /// taking whole documents), and handed on in the order they came, a slow one before the
    /// quick ones after it that were ready first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_are_prepared_side_by_side_and_handed_on_in_order() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        static NOW: AtomicUsize = AtomicUsize::new(0);
        static MOST: AtomicUsize = AtomicUsize::new(0);
        let prepare: fn(&Frame) -> Option<String> = |f| {
            let Frame::Sync { doc, .. } = f else { return None };
            MOST.fetch_max(NOW.fetch_add(1, SeqCst) + 1, SeqCst);
            std::thread::sleep(Duration::from_millis(if doc.starts_with("slow") { 400 } else { 10 }));
            NOW.fetch_sub(1, SeqCst);
            Some(doc.to_string())
        };
        let (mut peer, ours) = tokio::io::duplex(4 << 20);
        let running = Arc::new(tokio::sync::Semaphore::new(PREPARES_AT_ONCE));
        let (reader, mut frames) = read_frames(ours, Some(Preparer { prepare, running }));
        let docs = ["slow-0", "quick-1", "slow-2", "quick-3", "quick-4", "slow-5"];
        for doc in docs {
            let f = Frame::Sync { doc: doc.into(), msg: vec![7; session::PREPARE_FROM], sigs: vec![] }.encode();
            peer.write_all(&(f.len() as u32).to_be_bytes()).await.unwrap();
            peer.write_all(&f).await.unwrap();
        }
        peer.flush().await.unwrap();
        for doc in docs {
            let (_, prepared, _) = frames.recv().await.unwrap().unwrap();
            assert_eq!(prepared.map(|p| p.value).as_deref(), Some(doc), "in the order they came");
        }
        assert_eq!(
            MOST.load(SeqCst),
            PREPARED_AHEAD.min(PREPARES_AT_ONCE),
            "as many at once as places and the hub allow"
        );
        reader.abort();
    }

    /// A frame being prepared ahead waits here, read whole: the connection counts its peer as
    /// heard however long the preparation takes (past the time after which a silent peer is
    /// given up, on a slow laptop with a large document).
    #[tokio::test]
    async fn a_frame_being_prepared_counts_its_peer_as_heard() {
        let prepare: fn(&Frame) -> Option<()> = |_| {
            std::thread::sleep(Duration::from_millis(300));
            Some(())
        };
        let (mut peer, ours) = tokio::io::duplex(4 << 20);
        let running = Arc::new(tokio::sync::Semaphore::new(PREPARES_AT_ONCE));
        let (reader, mut frames) = read_frames(ours, Some(Preparer { prepare, running }));
        let f = Frame::Sync { doc: "d".into(), msg: vec![7; session::PREPARE_FROM], sigs: vec![] }.encode();
        peer.write_all(&[(f.len() as u32).to_be_bytes().to_vec(), f].concat()).await.unwrap();
        while !frames.waiting() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(frames.rx.is_empty(), "heard while it is prepared");
        let (_, prepared, _) = frames.recv().await.unwrap().unwrap();
        assert!(prepared.is_some());
        assert!(!frames.waiting());
        // And the session counts it: a peer heard at 5 s is not silent at 10 s.
        let mut s = Session::new(PeerId::named("p"), Timestamp::from_millis(0));
        s.heard(Timestamp::from_millis(5_000));
        assert_ne!(s.tick(Timestamp::from_millis(10_000)), session::Tick::Dead);
        assert_eq!(s.tick(Timestamp::from_millis(5_000 + session::DEAD_AFTER_MS + 1)), session::Tick::Dead);
        reader.abort();
    }

    /// Replicas held in memory run over the real network as hubs do (what the comparison with
    /// samod measures over TLS): two members converge, an edit made while connected arrives, and
    /// a replica neither of them admitted gets no document.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_memory_replicas_sync_over_tls_and_a_stranger_gets_nothing() {
        use crate::memory::Mem;
        let id = |n: u8| Identity::from_secret(&[n; 32]);
        let key = |n: u8| *id(n).public().as_bytes();
        let (mut a, mut b, mut c) = (Mem::signed(id(1)), Mem::signed(id(2)), Mem::signed(id(3)));
        a.admit(key(2));
        b.admit(key(1));
        c.admit(key(1));
        c.admit(key(2));
        for n in 0..20 {
            a.edit("d", n);
        }
        let b = Arc::new(Mesh::new(b, &id(2), [2; 32]).unwrap());
        let addr = b.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let a = Arc::new(Mesh::new(a, &id(1), [1; 32]).unwrap());
        a.dial(addr);
        let heads =
            |m: &Mesh<Mem>| m.with_hub(|h| h.docs.get_mut(&crate::session::DocId::from("d")).map(|d| d.get_heads()));
        let same = || async {
            for _ in 0..2000 {
                if heads(&a).is_some() && heads(&a) == heads(&b) {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            false
        };
        assert!(same().await, "the members converged");
        assert_eq!(heads(&b).unwrap().len(), 1);
        a.with_hub(|h| h.edit("d", 100));
        assert!(same().await, "the edit made while connected arrived");
        let c = Arc::new(Mesh::new(c, &id(3), [3; 32]).unwrap());
        c.dial(addr);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(c.with_hub(|h| h.docs.is_empty()), "a replica no member admitted got a document");
        // The same replica, once admitted, gets it: it was kept out for not being a member.
        b.with_hub(|h| h.admit(key(3)));
        b.refresh_members();
        let mut got = false;
        for _ in 0..2000 {
            got = c.with_hub(|h| h.docs.get_mut(&crate::session::DocId::from("d")).map(|d| d.get_heads())) == heads(&b);
            if got {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(got, "admitted, the replica got the document");
    }
}
