//! A running hub: the mesh listening and dialling, mDNS discovery once the hub belongs to a
//! coalition, sync over the internet where the coalition names relays (and the hub has not
//! switched it off), commands from other processes answered on the control channel, and the store's
//! upkeep when the hub rests — until `stop` resolves. `aidmesh serve` and the desktop app both run a hub through
//! [`Node::run`]. The process that runs a node owns its store: no other process opens it.

pub mod control;
pub mod invite;

use aidmesh_hub::Driver;
use std::collections::BTreeSet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use aidmesh_hub::Hub;
use aidmesh_internet::{Internet, InternetConfig};
use aidmesh_mesh::discovery::{Discovery, DiscoveryConfig};
use aidmesh_mesh::net::Mesh;
use anyhow::Result;
use rand_core::RngCore;

/// Where a hub listens, whom it dials, and whether it looks for peers with mDNS.
#[derive(Clone)]
pub struct NodeConfig {
    pub listen: SocketAddr,
    pub peers: Vec<SocketAddr>,
    /// `None`: no discovery (peers by address only).
    pub discovery: Option<DiscoveryConfig>,
    /// How `aidmesh` commands from other processes run here; `None`: the control channel is off.
    pub commands: Option<Commands>,
    /// How the hub syncs over the internet, once the coalition names a relay (or this config
    /// names relays or peers' addresses of its own) and while the hub's switch is on
    /// (`Hub::internet_on`); `None`: never in this run.
    pub internet: Option<InternetConfig>,
}

/// The store's log folded into its file on a thread of its own while a node runs, every half
/// second (see [`aidmesh_hub::LogFolder`]): no edit waits for a fold.
/// Stops, and is waited for, when dropped.
pub struct LogFolding {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LogFolding {
    /// Starts folding the log of `mesh`'s store. `None`, with a warning, if it cannot (the
    /// second connection does not open): the hub's own commits fold the log then, as before.
    pub fn start(mesh: &Mesh<Hub>) -> Option<LogFolding> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let mut folder = match mesh.with_hub(|h| h.log_folder()) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "cannot fold the store's log apart: the hub's writes fold it");
                return None;
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let run = move || {
            let mut failing = false;
            while !stopped.load(Ordering::Relaxed) {
                // While folds fail, the hub's own commits fold the log (the store knows).
                match folder.fold() {
                    Ok(_) if failing => {
                        tracing::info!("the store's log is folded apart again");
                        failing = false;
                    }
                    Ok(_) => {}
                    Err(e) if !failing => {
                        tracing::warn!(error = %e, "cannot fold the store's log apart: the hub's writes fold it meanwhile");
                        failing = true;
                    }
                    Err(_) => {}
                }
                std::thread::park_timeout(Duration::from_millis(500));
            }
        };
        match std::thread::Builder::new().name("aidmesh-log-folder".into()).spawn(run) {
            Ok(thread) => Some(LogFolding { stop, thread: Some(thread) }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the store's log folder");
                None
            }
        }
    }
}

impl Drop for LogFolding {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Runs one `aidmesh` command, sent over the control channel, in the owner's process.
pub type Commands = Arc<dyn Fn(&Owner, control::Request, Box<dyn control::Terminal>) -> i32 + Send + Sync>;

/// What a command run in the owner's process can use: the running mesh (its hub, through
/// [`Mesh::lock_hub`], so that what the command changes reaches peers at once) and the dialer.
#[derive(Clone)]
pub struct Owner {
    pub mesh: Arc<Mesh<Hub>>,
    pub dialer: Dialer,
}

/// A hub's mesh, started: share it with front ends, then [`run`] its loop.
pub struct Node {
    pub mesh: Arc<Mesh<Hub>>,
    pub addr: SocketAddr,
    identity: aidmesh_mesh::Identity,
    dial: tokio::sync::mpsc::UnboundedSender<SocketAddr>,
    dialed: tokio::sync::mpsc::UnboundedReceiver<SocketAddr>,
    config: NodeConfig,
    control: Option<control::ControlServer>,
}

/// A handle to ask a running node to dial a peer by address.
#[derive(Clone)]
pub struct Dialer(tokio::sync::mpsc::UnboundedSender<SocketAddr>);

impl Dialer {
    pub fn dial(&self, addr: SocketAddr) {
        let _ = self.0.send(addr);
    }
}

impl Node {
    /// Starts listening. Must be called inside a tokio runtime.
    pub async fn start(hub: Hub, config: NodeConfig) -> Result<Node> {
        let identity = hub.identity();
        let store = hub.store_path().to_path_buf();
        let mesh = Arc::new(Mesh::new(hub, &identity, fresh_key())?);
        let (dial, dialed) = tokio::sync::mpsc::unbounded_channel();
        for p in &config.peers {
            let _ = dial.send(*p);
        }
        // The control channel first: if it cannot open, nothing holds the hub (and its store)
        // yet, so the store is free again as soon as this returns.
        let control = match &config.commands {
            Some(commands) => {
                let owner = Owner { mesh: mesh.clone(), dialer: Dialer(dial.clone()) };
                let commands = commands.clone();
                let mut token = [0u8; 32];
                rand_core::OsRng.fill_bytes(&mut token);
                let exec: control::Executor = Arc::new(move |req, term| commands(&owner, req, term));
                match control::ControlServer::start(&store, token, exec) {
                    Ok(c) => Some(c),
                    // No Unix sockets here: the store's lock still keeps other processes out.
                    Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
                        tracing::warn!(error = %e, "commands cannot reach this hub while it runs");
                        None
                    }
                    Err(e) => {
                        anyhow::bail!("cannot open the control channel {}: {e}", control::socket_path(&store).display())
                    }
                }
            }
            None => None,
        };
        let addr = mesh.listen(config.listen).await?;
        Ok(Node { mesh, addr, identity, dial, dialed, config, control })
    }

    pub fn dialer(&self) -> Dialer {
        Dialer(self.dial.clone())
    }

    /// Runs the hub until `stop` resolves.
    pub async fn run(self, stop: impl Future<Output = ()>) -> Result<()> {
        let Node { mesh, addr, identity, dial, mut dialed, config, control } = self;
        let mut known: BTreeSet<SocketAddr> = BTreeSet::new();
        let mut mdns: Option<Discovery> = None;
        let mut internet = Switch::default();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let folding = LogFolding::start(&mesh);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    // New members (admitted here or learnt from a peer), discovery, status.
                    mesh.refresh_members();
                    match (&mdns, &config.discovery) {
                        (None, Some(cfg)) => mdns = start_discovery(&mesh, cfg, addr, &dial)?,
                        // A revocation turned the coalition secret over: advertise under the new one.
                        (Some(d), _) => {
                            if let Err(e) = d.update(mesh.keyring(), &mut rand_core::OsRng) {
                                tracing::warn!(error = %e, "cannot advertise under the new coalition secret");
                            }
                        }
                        (None, None) => {}
                    }
                    if let Some(cfg) = &config.internet {
                        internet.follow(&mesh, &identity, cfg).await;
                    }
                    // What writes leave for idle time, one bounded step a tick once the hub rests.
                    if let Err(e) = mesh.with_hub(|h| h.upkeep()) {
                        tracing::warn!(error = %e, "upkeep failed");
                    }
                }
                Some(peer) = dialed.recv() => {
                    if peer != addr && known.insert(peer) {
                        tracing::info!(%peer, "dialling a hub");
                        mesh.dial(peer);
                    }
                }
                _ = &mut stop => break,
            }
        }
        if let Some(d) = mdns {
            d.stop();
        }
        if let Some(i) = internet.running.take() {
            i.close().await;
        }
        drop(folding);
        // No command may start once the loop is over; one running holds the hub until it ends.
        drop(control);
        // What peers sent last is committed now, not whenever the last connection lets go of
        // the hub (a process that exits first would lose it, and its peers would send it again).
        if let Err(e) = mesh.with_hub(|h| h.settle_peers_writes()) {
            tracing::warn!(error = %e, "cannot commit what peers sent last");
        }
        Ok(())
    }
}

/// Resolves when the process is asked to stop: Ctrl-C, or SIGTERM where there are signals (a
/// shutdown, a service manager, `kill`). Each face runs its hub until this, so that a stop asked
/// of the process ends [`Node::run`] as a quit does.
#[cfg(unix)]
pub fn stop_requested() -> std::io::Result<impl Future<Output = ()>> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    })
}

#[cfg(not(unix))]
pub fn stop_requested() -> std::io::Result<impl Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Internet sync, started and stopped as the hub's switch and the coalition's relays say.
#[derive(Default)]
struct Switch {
    running: Option<Internet>,
    /// The endpoint closing after a switch off: a start waits for it (it may hold the port).
    closing: Option<tokio::task::JoinHandle<()>>,
    /// After a start that failed (the socket could not open), when to try again.
    retry_at: Option<std::time::Instant>,
}

impl Switch {
    async fn follow(&mut self, mesh: &Arc<Mesh<Hub>>, identity: &aidmesh_mesh::Identity, cfg: &InternetConfig) {
        let wanted = match mesh.with_hub(|h| Ok::<_, aidmesh_hub::Error>((h.internet_on()?, h.relays()?))) {
            Ok((on, relays)) => on && (!relays.is_empty() || cfg.wants_socket()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the internet settings");
                return;
            }
        };
        if self.closing.as_ref().is_some_and(|c| !c.is_finished()) {
            return;
        }
        match (wanted, self.running.take()) {
            (true, Some(running)) => self.running = Some(running),
            (true, None) if self.retry_at.is_some_and(|t| std::time::Instant::now() < t) => {}
            (true, None) => match Internet::start(mesh.clone(), identity, cfg.clone()).await {
                Ok(i) => {
                    self.running = Some(i);
                    self.retry_at = None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "internet sync cannot start; trying again in a minute");
                    self.retry_at = Some(std::time::Instant::now() + Duration::from_secs(60));
                }
            },
            (false, Some(running)) => {
                // Closed aside: the tick goes on meanwhile.
                self.closing = Some(tokio::spawn(running.close()));
                tracing::info!("internet sync off");
            }
            (false, None) => {}
        }
    }
}

/// 32 fresh random bytes: this run's throwaway TLS key.
fn fresh_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut k);
    k
}

/// Discovery stays off until the hub belongs to a coalition (it joined one or admitted a hub).
fn start_discovery(
    mesh: &Mesh<Hub>,
    cfg: &DiscoveryConfig,
    addr: SocketAddr,
    dial: &tokio::sync::mpsc::UnboundedSender<SocketAddr>,
) -> Result<Option<Discovery>> {
    let (n, founder, me) =
        mesh.with_hub(|h| (h.members().map(|m| m.members.len()).unwrap_or(0), h.founder(), h.public_key()));
    if n < 2 && founder?.key == me {
        return Ok(None);
    }
    let ips: Vec<IpAddr> = if addr.ip().is_unspecified() { vec![] } else { vec![addr.ip()] };
    let tx = dial.clone();
    let mut rng = rand_core::OsRng;
    match Discovery::start(cfg, mesh.keyring(), &ips, addr.port(), &mut rng, move |a| {
        let _ = tx.send(a);
    }) {
        Ok(d) => {
            tracing::info!(interfaces = ?cfg.interfaces, "mDNS discovery on");
            Ok(Some(d))
        }
        Err(e) => {
            tracing::warn!(error = %e, "mDNS discovery failed; add peers by address");
            Ok(None)
        }
    }
}
