//! Sync beyond one LAN: member hubs reach each other over the internet with iroh — QUIC
//! connections dialled by the hub's Ed25519 key, hole punching, and relays that only forward
//! encrypted packets when no direct path exists.
//!
//! Only the byte pipe differs from the LAN. The hub's own key is its iroh endpoint key, so the
//! QUIC handshake proves which hub is at the other end; a hub that is not a current member is
//! closed before a byte of the sync. Inside one QUIC stream, the LAN's handshake runs as on
//! TLS (bound to this connection's exported keying material: the peer proves a secret of the
//! coalition and its key), then the same sans-IO session ([`Mesh::run_pipe`]).
//!
//! Nothing goes to a server the coalition did not name: no default relay, no address lookup
//! service, no port mapping on the router. Relays are the coalition's own `iroh-relay` servers:
//! its admins name them in the authority log (`Hub::set_relays`), so every member learns them
//! by sync or bundle, and the endpoint follows as they change; a hub may add relays of its own
//! ([`InternetConfig::relays`]). With none, hubs connect on direct addresses only.
//!
//! A hub keeps a bounded number of internet sessions: it dials a few members at ring distances
//! from 1 to half the ring, spaced on a log scale, in the order of hub ids
//! ([`aidmesh_mesh::policy::neighbours`]),
//! so that with 50 hubs each keeps about eight sessions and every hub is a few hops from every
//! other; a member whose address this hub was given is dialled as a way in, while the hub is
//! not connected to all of its neighbours. Where members can be reached comes from their own word, passed on by the
//! coalition (`aidmesh_mesh::whereabouts`). A hub connected on
//! the LAN is not dialled over the internet; a LAN connection replaces an internet one.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aidmesh_hub::{Driver, Hub};
use aidmesh_mesh::handshake::{Side, EXPORTER_LABEL};
use aidmesh_mesh::net::{Mesh, Reach};
use aidmesh_mesh::policy::{Handshakes, Source, Target, WayIn};
use aidmesh_mesh::whereabouts::scope;
use aidmesh_mesh::{HubId, Identity};
use iroh::endpoint::{Connection, IncomingAddr, QuicTransportConfig, RelayMode, VarInt};
use iroh::{Endpoint, EndpointAddr, RelayMap, RelayUrl, SecretKey, TransportAddr};
use rustls::pki_types::CertificateDer;

/// The protocol hubs speak over iroh (QUIC's ALPN).
pub const ALPN: &[u8] = b"aidmesh/sync";
/// How long one dial may take, relay and hole punching included.
const DIAL_WAIT: Duration = Duration::from_secs(15);
/// How long an incoming connection may take to finish its QUIC handshake and open its stream
/// (round trips of 2 s on a bad link fit).
const HANDSHAKE_WAIT: Duration = Duration::from_secs(10);
/// How often the members, and so whom to dial, are read again.
const REVIEW_EVERY: Duration = Duration::from_secs(2);
/// A hub says where it can be reached when that changes, but a new home relay at most this
/// often and new direct addresses at most every [`SAY_DIRECT_EVERY`]: a phone's hotspot may
/// flap, and every word of it crosses every link of the coalition.
const SAY_RELAY_EVERY: Duration = Duration::from_secs(10);
const SAY_DIRECT_EVERY: Duration = Duration::from_secs(30);
/// Incoming connections in their handshake at once, in all and from one source (an address,
/// or a key through a relay); more are refused. Of all, some are kept for sources members came
/// from. A session, once its handshake is done, holds no slot: the policy keeps one connection
/// per member.
const HANDSHAKES_AT_ONCE: usize = 32;
const HANDSHAKES_PER_SOURCE: usize = 4;
const HANDSHAKES_FOR_MEMBERS: usize = 8;
/// What a peer may hold in this hub's QUIC buffers: one stream (the session's), and as many
/// bytes on it as the driver reads ahead of the session anyway.
const STREAM_WINDOW: u32 = 4 * 1024 * 1024;

/// Why the internet side could not start.
#[derive(Debug, thiserror::Error)]
pub enum InternetError {
    #[error("relay {url:?} is not a relay address: {why} (expected https://host[:port])")]
    BadRelay { url: String, why: String },
    #[error("cannot open the internet socket on {addr}: {why}")]
    Bind { addr: SocketAddr, why: String },
}

/// How a hub syncs over the internet.
#[derive(Clone, Debug)]
pub struct InternetConfig {
    /// Relays this hub uses besides the ones the coalition names (`https://relay.example.org`).
    pub relays: Vec<String>,
    /// Certificates a relay's own certificate may chain to, besides the usual web roots (for a
    /// relay with a certificate the coalition made itself).
    pub relay_roots: Vec<CertificateDer<'static>>,
    /// Where the QUIC socket binds. `None`: every interface, a free port, and only once there is
    /// a relay or a peer's address to use; given, the hub also listens there for member hubs
    /// that dial it directly (a hub at a fixed address), relay or not.
    pub bind: Option<SocketAddr>,
    /// Direct addresses of member hubs, by public key, where known (no relay needed there).
    pub direct: BTreeMap<[u8; 32], Vec<SocketAddr>>,
}

impl Default for InternetConfig {
    /// The coalition's relays only, on every interface.
    fn default() -> InternetConfig {
        InternetConfig { relays: Vec::new(), relay_roots: Vec::new(), bind: None, direct: BTreeMap::new() }
    }
}

/// The internet side of a running hub: its endpoint, the task answering connections, and the
/// task keeping dials to its neighbours up. Dropping it stops them and every session they run
/// (each task owns the tasks it starts), and with them the endpoint.
pub struct Internet {
    endpoint: Endpoint,
    tasks: Vec<AbortOnDrop>,
}

/// A task that stops when this handle goes.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl InternetConfig {
    /// Whether this config alone is reason to open the internet socket (a relay or a peer's
    /// address of its own, or a fixed address to listen at).
    pub fn wants_socket(&self) -> bool {
        !self.relays.is_empty() || !self.direct.is_empty() || self.bind.is_some()
    }
}

impl Internet {
    /// Opens the endpoint under the hub's key and starts answering and dialling. Must be
    /// called inside a tokio runtime.
    pub async fn start(
        mesh: Arc<Mesh<Hub>>,
        identity: &Identity,
        cfg: InternetConfig,
    ) -> Result<Internet, InternetError> {
        let own = parse_relays(&cfg.relays)?;
        // The relay map starts empty and follows the coalition's relays ([`keep_dialling`]).
        let mode = RelayMode::Custom(RelayMap::empty());
        let tls = iroh::tls::CaTlsConfig::embedded().with_extra_roots(cfg.relay_roots.iter().cloned());
        let bind = cfg.bind.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        let bind_err = |why: String| InternetError::Bind { addr: bind, why };
        let window = VarInt::from_u32(STREAM_WINDOW);
        let transport = QuicTransportConfig::builder()
            .max_concurrent_bidi_streams(VarInt::from_u32(1))
            .max_concurrent_uni_streams(VarInt::from_u32(0))
            .stream_receive_window(window)
            .receive_window(window)
            .build();
        // Relay names are looked up by the system's resolver only: never by a public one.
        let dns = iroh::dns::DnsResolver::builder().with_system_defaults().disable_fallback().build();
        let endpoint = iroh::endpoint::Builder::empty()
            .secret_key(SecretKey::from_bytes(&identity.secret()))
            .alpns(vec![ALPN.to_vec()])
            .relay_mode(mode)
            .ca_tls_config(tls)
            .crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .transport_config(transport)
            .dns_resolver(dns)
            .clear_ip_transports()
            .bind_addr(bind)
            .map_err(|e| bind_err(e.to_string()))?
            .bind()
            .await
            .map_err(|e| bind_err(e.to_string()))?;
        tracing::info!(key = %endpoint.id(), "internet sync on");
        let me = identity.id();
        let accept = AbortOnDrop(tokio::spawn(answer(endpoint.clone(), mesh.clone())));
        let dial = AbortOnDrop(tokio::spawn(keep_dialling(endpoint.clone(), mesh, me, own, cfg.direct)));
        Ok(Internet { endpoint, tasks: vec![accept, dial] })
    }

    /// Where this hub can be reached: its key, relay and direct addresses (as known so far).
    pub fn addr(&self) -> EndpointAddr {
        self.endpoint.addr()
    }

    /// Waits until the endpoint is connected to its home relay (with relays configured).
    pub async fn online(&self) {
        self.endpoint.online().await
    }

    /// Closes every internet connection and the endpoint.
    pub async fn close(mut self) {
        self.tasks.clear();
        self.endpoint.close().await;
    }
}

/// The relays named here, or an error naming the first that is not a relay's address (in the
/// form the coalition's relays take: `aidmesh_mesh::authority::relay_url`).
pub fn parse_relays(urls: &[String]) -> Result<Vec<RelayUrl>, InternetError> {
    urls.iter()
        .map(|u| {
            let bad = |why: String| InternetError::BadRelay { url: u.clone(), why };
            let checked = aidmesh_mesh::authority::relay_url(u.trim()).map_err(bad)?;
            checked.parse().map_err(|e: iroh::RelayUrlParseError| bad(e.to_string()))
        })
        .collect()
}

/// Answers internet connections: a member's goes through the handshake to a session; any
/// other is closed at once. Slots are bounded in all and per source (an address, an IPv6 /64,
/// or a key through a relay), and held only until the handshake is done; some are kept for
/// sources that members completed a handshake from, so that an outsider with many addresses
/// still leaves members that come from where they came before room. Through a relay, a key that
/// is not a member's is refused before it takes a slot (the relay checked the key), and at most
/// half the slots go to connections through relays, so that a relay that forges connections
/// under members' keys leaves direct members room; directly, once half the slots are taken, a
/// connection must first prove its address (a QUIC retry), so that spoofed addresses cannot
/// hold them. Not always: a dial's first packets go on every path at once, and a retry answered
/// on another path fails that dial.
async fn answer(endpoint: Endpoint, mesh: Arc<Mesh<Hub>>) {
    let slots: Slots = Arc::new(std::sync::Mutex::new(Counts {
        all: Handshakes::new(HANDSHAKES_PER_SOURCE, HANDSHAKES_AT_ONCE, HANDSHAKES_FOR_MEMBERS),
        relayed: 0,
    }));
    let mut sessions = tokio::task::JoinSet::new();
    while let Some(incoming) = endpoint.accept().await {
        while sessions.try_join_next().is_some() {}
        // A revoked hub's sources lose the room kept for members.
        lock(&slots).all.keep_members(|m| mesh.is_member(m));
        let busy = lock(&slots).all.in_progress() >= HANDSHAKES_AT_ONCE / 2;
        let source = match incoming.remote_addr() {
            IncomingAddr::Ip(addr) if busy && !incoming.remote_addr_validated() => {
                let _ = incoming.retry();
                tracing::trace!(%addr, "asked an internet connection to prove its address");
                continue;
            }
            IncomingAddr::Ip(addr) => Origin::Addr(Source::of(addr.ip())),
            IncomingAddr::Relay { endpoint_id, .. } => {
                if !HubId::of_bytes(endpoint_id.as_bytes()).is_some_and(|id| mesh.is_member(&id)) {
                    incoming.refuse();
                    continue;
                }
                Origin::Key(*endpoint_id.as_bytes())
            }
            // No transport of another kind is configured.
            _ => {
                incoming.refuse();
                continue;
            }
        };
        let Some(slot) = Slot::take(&slots, source) else {
            tracing::debug!("refused an internet connection: too many handshakes at once, or from one source");
            incoming.refuse();
            continue;
        };
        let mesh = mesh.clone();
        sessions.spawn(async move {
            let started = async {
                let conn = match tokio::time::timeout(HANDSHAKE_WAIT, incoming).await {
                    Ok(Ok(c)) => c,
                    Ok(Err(e)) => return Err(format!("internet connection failed: {e}")),
                    Err(_) => return Err("internet connection timed out".to_string()),
                };
                let Some(peer) = member_at(&mesh, &conn) else {
                    tracing::info!(key = %conn.remote_id().fmt_short(), "refused an internet connection: not a member");
                    conn.close(1u32.into(), b"not a member");
                    return Err(String::new());
                };
                // Where a member came from keeps room for it when outsiders crowd the port.
                slot.member_came(conn.remote_id().as_bytes(), &peer);
                match tokio::time::timeout(HANDSHAKE_WAIT, conn.accept_bi()).await {
                    Ok(Ok((send, recv))) => Ok((conn, peer, tokio::io::join(recv, send))),
                    _ => {
                        conn.close(2u32.into(), b"no stream");
                        Err("an internet connection opened no stream".to_string())
                    }
                }
            }
            .await;
            // The handshake is over: its slot is free for the next.
            drop(slot);
            match started {
                Ok((conn, peer, pipe)) => {
                    if let Err(e) = run(&mesh, &conn, pipe, Side::Listener, &peer).await {
                        tracing::info!(peer = %peer.short(), error = %e, "internet session refused");
                    }
                }
                Err(e) if e.is_empty() => {}
                Err(e) => tracing::debug!("{e}"),
            }
        });
    }
}

/// Where an internet connection comes from, as its handshake slots count it: a direct address
/// (an IPv4 address, or an IPv6 /64, which one host commonly holds whole), or a key through a
/// relay.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Origin {
    Addr(Source),
    Key([u8; 32]),
}

/// The internet side's handshake slots: all of them, and how many of them connections through
/// a relay hold (at most half).
struct Counts {
    all: Handshakes<Origin>,
    relayed: usize,
}

type Slots = Arc<std::sync::Mutex<Counts>>;

fn lock(slots: &Slots) -> std::sync::MutexGuard<'_, Counts> {
    slots.lock().unwrap_or_else(|e| e.into_inner())
}

/// One handshake's slot, given back when dropped.
struct Slot {
    slots: Slots,
    source: Origin,
}

impl Slot {
    fn take(slots: &Slots, source: Origin) -> Option<Slot> {
        let mut c = lock(slots);
        let relayed = matches!(source, Origin::Key(_));
        if (relayed && c.relayed >= HANDSHAKES_AT_ONCE / 2) || !c.all.start(&source) {
            return None;
        }
        c.relayed += usize::from(relayed);
        Some(Slot { slots: slots.clone(), source })
    }

    /// The connection proved a member's key, `proven`: where it came from may use the room
    /// kept for members from now on (through a relay, only if the relay named that key).
    fn member_came(&self, proven: &[u8; 32], member: &HubId) {
        if matches!(&self.source, Origin::Key(k) if k != proven) {
            return;
        }
        lock(&self.slots).all.member_from(self.source.clone(), member.clone());
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = lock(&self.slots);
        c.all.ended(&self.source);
        c.relayed -= usize::from(matches!(self.source, Origin::Key(_)));
    }
}

/// The member hub at the other end of `conn`, if it is one.
fn member_at(mesh: &Mesh<Hub>, conn: &Connection) -> Option<HubId> {
    let id = HubId::of_bytes(conn.remote_id().as_bytes())?;
    mesh.is_member(&id).then_some(id)
}

/// Runs the session of one internet connection, showing which path it runs on meanwhile.
async fn run<S>(mesh: &Mesh<Hub>, conn: &Connection, pipe: S, side: Side, peer: &HubId) -> Result<bool, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let mut exporter = [0u8; 32];
    conn.export_keying_material(&mut exporter, EXPORTER_LABEL, b"aidmesh internet").map_err(|e| format!("{e:?}"))?;
    let _watch = AbortOnDrop(tokio::spawn(show_reach(conn.clone(), mesh.clone(), peer.clone())));
    let ran = mesh.run_pipe(pipe, exporter, side, peer, reach_of(conn)).await;
    conn.close(0u32.into(), b"bye");
    ran.map_err(|e| e.to_string())
}

/// Whether the connection's selected path is direct or relayed now.
fn reach_of(conn: &Connection) -> Reach {
    if conn.paths().iter().any(|p| p.is_selected() && p.is_ip()) {
        Reach::Direct
    } else {
        Reach::Relayed
    }
}

/// Tells the mesh, every second, whether the connection's selected path is direct or relayed.
async fn show_reach(conn: Connection, mesh: Mesh<Hub>, peer: HubId) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        mesh.set_reach(&peer, reach_of(&conn));
    }
}

/// Keeps a dial running to each member [`WayIn`] names (the neighbours, and a given way in
/// until the hub has been settled a while); a hub
/// that stops being one (revoked, or no longer a neighbour) is dialled no more. The endpoint's
/// relays follow the coalition's (and this hub's own, `own`).
async fn keep_dialling(
    endpoint: Endpoint,
    mesh: Arc<Mesh<Hub>>,
    me: HubId,
    own: Vec<RelayUrl>,
    direct: BTreeMap<[u8; 32], Vec<SocketAddr>>,
) {
    // Dropped with this task: every dial (and the session it runs) stops.
    let mut running: BTreeMap<HubId, AbortOnDrop> = BTreeMap::new();
    let (relays_now, relays) = tokio::sync::watch::channel(Vec::<RelayUrl>::new());
    let mut said = Said::default();
    let (mut way_in, started) = (WayIn::default(), Instant::now());
    loop {
        let (members, named) = mesh.with_hub(|h| (h.members(), h.relays()));
        let keys: BTreeMap<HubId, [u8; 32]> = match members {
            Ok(m) => m.members.into_iter().map(|(id, m)| (id, m.key.0)).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the members: no internet dials");
                BTreeMap::new()
            }
        };
        let mut wanted: BTreeSet<RelayUrl> = own.iter().cloned().collect();
        match named {
            Ok(urls) => {
                for u in urls {
                    match parse_relays(std::slice::from_ref(&u)) {
                        Ok(r) => wanted.extend(r),
                        Err(e) => tracing::warn!(error = %e, "a relay the coalition named is skipped"),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the coalition's relays"),
        }
        follow_relays(&endpoint, &relays_now, wanted).await;
        say_where(&endpoint, &mesh, &mut said);
        let ids: BTreeSet<HubId> = keys.keys().cloned().collect();
        // The neighbours, and the members whose direct address this hub was given as a way in
        // until it has been connected to all of its neighbours for a while (`policy::WayIn`).
        let given: BTreeSet<HubId> =
            keys.iter().filter(|(_, k)| direct.contains_key(*k)).map(|(id, _)| id.clone()).collect();
        let connected: BTreeSet<HubId> = mesh.peers().iter().filter_map(|p| HubId::parse(&p.hub).ok()).collect();
        let want = way_in.dials(&me, &ids, &given, &connected, started.elapsed().as_millis() as i64);
        // A dial that is no longer wanted stops, with its session (the connection is taken
        // out of the policy and the peers view as it ends).
        running.retain(|id, task| want.contains(id) && !task.0.is_finished());
        for id in want {
            if running.contains_key(&id) {
                continue;
            }
            let Ok(key) = iroh::PublicKey::from_bytes(&keys[&id]) else { continue };
            let given = direct.get(&keys[&id]).cloned().unwrap_or_default();
            let task = tokio::spawn(dial(endpoint.clone(), mesh.clone(), id.clone(), key, given, relays.clone()));
            running.insert(id, AbortOnDrop(task));
        }
        tokio::time::sleep(REVIEW_EVERY).await;
    }
}

/// What this hub said of where it can be reached in this run: how often, and last when and
/// what.
#[derive(Default)]
struct Said {
    times: u32,
    last: Option<(Instant, Option<String>, Vec<SocketAddr>)>,
}

/// Says where this hub can be reached (its home relay and the direct addresses the endpoint
/// knows), signed, to the whole coalition, when that differs from the hub's own entry as kept
/// (so that an older word of its own, taken back from a peer, is said anew): a new home relay
/// at most every [`SAY_RELAY_EVERY`], new direct addresses at most every [`SAY_DIRECT_EVERY`]
/// (but the first change after the first word is said at once: that word may have gone out
/// before the endpoint knew all its addresses). Nothing is said while the endpoint knows
/// neither a relay nor an address.
fn say_where(endpoint: &Endpoint, mesh: &Mesh<Hub>, said: &mut Said) {
    let addr = endpoint.addr();
    let relay = addr.relay_urls().next().map(|u| u.to_string());
    let direct: Vec<SocketAddr> = addr.ip_addrs().copied().collect();
    if relay.is_none() && direct.is_empty() {
        return;
    }
    if let Some((at, r, _)) = &said.last {
        let hold = if *r == relay { SAY_DIRECT_EVERY } else { SAY_RELAY_EVERY };
        if said.times > 1 && at.elapsed() < hold {
            return;
        }
    }
    match mesh.with_hub(|h| h.say_whereabouts(relay.clone(), &direct)) {
        Ok(Some(true)) => {
            tracing::info!(?relay, ?direct, "said where this hub can be reached");
            said.times += 1;
            said.last = Some((Instant::now(), relay, direct));
        }
        // The same as the hub's own entry, or not a member yet (the log comes with the first
        // sync): looked at again at the next review.
        Ok(Some(false) | None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot say where this hub can be reached"),
    }
}

/// Where to dial `peer`: its home relay first, if this hub knows that relay (an entry cannot
/// send it to a server the coalition did not name), then the other relays of the moment, the
/// direct addresses it said, and those this hub was given. Of the addresses it said, one on
/// its own machine (loopback) is dialled only by a hub that is at such an address itself
/// (`own`: this hub's direct addresses), one on its own link (link-local) never, nor one at an
/// address of this hub's own (a member could name them to have the hubs that dial it probe
/// their own machine; a container bridge's address is the same on many machines).
pub fn dial_addrs(
    mesh: &Mesh<Hub>,
    peer: &HubId,
    relays: &[RelayUrl],
    given: &[SocketAddr],
    own: &[SocketAddr],
) -> Vec<TransportAddr> {
    let said = mesh.with_hub(|h| h.whereabouts_of(peer)).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read where a peer said it can be reached");
        None
    });
    let home = said.as_ref().and_then(|w| w.relay_among(relays.iter().map(|r| r.as_str())));
    let home = relays.iter().find(|r| Some(r.as_str()) == home);
    let mut out: Vec<TransportAddr> = home.into_iter().cloned().map(TransportAddr::Relay).collect();
    out.extend(relays.iter().filter(|r| Some(*r) != home).cloned().map(TransportAddr::Relay));
    let on_this_machine = own.iter().any(|a| scope(a) == 3);
    let reachable = |a: &&SocketAddr| match scope(a) {
        3 => on_this_machine,
        2 => false,
        _ => !own.iter().any(|o| o.ip().to_canonical() == a.ip().to_canonical()),
    };
    let direct = said.iter().flat_map(|w| w.direct.iter()).filter(reachable).chain(given).copied();
    for a in direct.map(TransportAddr::Ip) {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// Makes the endpoint's relays `wanted`, and tells the dials.
async fn follow_relays(
    endpoint: &Endpoint,
    now: &tokio::sync::watch::Sender<Vec<RelayUrl>>,
    wanted: BTreeSet<RelayUrl>,
) {
    let had: BTreeSet<RelayUrl> = now.borrow().iter().cloned().collect();
    if had == wanted {
        return;
    }
    for gone in had.difference(&wanted) {
        endpoint.remove_relay(gone).await;
    }
    for new in wanted.difference(&had) {
        endpoint.insert_relay(new.clone(), Arc::new(new.clone().into())).await;
    }
    tracing::info!(relays = ?wanted.iter().map(|u| u.to_string()).collect::<Vec<_>>(), "internet relays");
    now.send_replace(wanted.into_iter().collect());
}

/// Keeps a connection to one member up over the internet, while it is not connected otherwise:
/// through the relays of the moment, and at its direct addresses as it said them or as this
/// hub was given them ([`dial_addrs`], read again for every dial).
async fn dial(
    endpoint: Endpoint,
    mesh: Arc<Mesh<Hub>>,
    peer: HubId,
    key: iroh::PublicKey,
    given: Vec<SocketAddr>,
    relays: tokio::sync::watch::Receiver<Vec<RelayUrl>>,
) {
    let target = Target::Hub(peer.clone());
    loop {
        if !mesh.should_dial(&target) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let now: Vec<RelayUrl> = relays.borrow().clone();
        let own: Vec<SocketAddr> = endpoint.addr().ip_addrs().copied().collect();
        let addrs = dial_addrs(&mesh, &peer, &now, &given, &own);
        if addrs.is_empty() {
            // Nowhere to dial yet (no relay, and the peer's whereabouts not known): no failure
            // counts, so that the first dial once they arrive is not held back.
            tokio::time::sleep(REVIEW_EVERY).await;
            continue;
        }
        let started = Instant::now();
        let session = match dial_once(&endpoint, &mesh, &peer, EndpointAddr::from_parts(key, addrs)).await {
            Ok(answered) => Some((answered, started.elapsed())),
            Err(e) => {
                tracing::debug!(peer = %peer.short(), error = %e, "internet dial failed");
                None
            }
        };
        tokio::time::sleep(mesh.redial_wait(target.clone(), session)).await;
    }
}

async fn dial_once(endpoint: &Endpoint, mesh: &Mesh<Hub>, peer: &HubId, addr: EndpointAddr) -> Result<bool, String> {
    let conn = tokio::time::timeout(DIAL_WAIT, endpoint.connect(addr, ALPN))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let (send, recv) = tokio::time::timeout(DIAL_WAIT, conn.open_bi())
        .await
        .map_err(|_| "the peer opened no stream".to_string())?
        .map_err(|e| e.to_string())?;
    run(mesh, &conn, tokio::io::join(recv, send), Side::Dialler, peer).await
}
