//! What the shell holds: where the store lives, and the running hub once unlocked.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use aidmesh_hub::Hub;
use aidmesh_mesh::discovery::DiscoveryConfig;
use aidmesh_mesh::net::Mesh;
use aidmesh_node::{Dialer, Node, NodeConfig};
use serde::Serialize;

use crate::edge::HubEvent;

/// Where the app keeps its store and how its hub meets others, from the environment:
/// `AIDMESH_DATA_DIR` (default: the user's data folder), `AIDMESH_LISTEN` (default
/// `0.0.0.0:7420`), `AIDMESH_MDNS_INTERFACES` (comma-separated; default every interface),
/// `AIDMESH_NO_DISCOVERY=1` (peers by address only), `AIDMESH_STORE` (the store file itself).
#[derive(Clone, Debug)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub discovery: Option<DiscoveryConfig>,
    /// Where saved PDFs go: `AIDMESH_PDF_DIR`, else `~/Documents/aidmesh`.
    pub pdf_dir: PathBuf,
}

impl Settings {
    pub fn from_env() -> Settings {
        let data_dir = std::env::var_os("AIDMESH_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| {
            let base = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from).unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".local/share")
            });
            base.join("aidmesh")
        });
        let listen = std::env::var("AIDMESH_LISTEN")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 7420)));
        let discovery = if std::env::var_os("AIDMESH_NO_DISCOVERY").is_some() {
            None
        } else {
            let interfaces = std::env::var("AIDMESH_MDNS_INTERFACES")
                .map(|s| s.split(',').map(|i| i.trim().to_string()).filter(|i| !i.is_empty()).collect())
                .unwrap_or_default();
            Some(DiscoveryConfig { interfaces })
        };
        let pdf_dir =
            std::env::var_os("AIDMESH_PDF_DIR").map(PathBuf::from).unwrap_or_else(|| match std::env::var_os("HOME") {
                Some(home) => PathBuf::from(home).join("Documents/aidmesh"),
                None => data_dir.join("pdf"),
            });
        Settings { data_dir, listen, discovery, pdf_dir }
    }

    /// `AIDMESH_STORE` if set (as for the `aidmesh` command), else `hub.aidmesh` in the data folder.
    pub fn store_path(&self) -> PathBuf {
        std::env::var_os("AIDMESH_STORE").map(PathBuf::from).unwrap_or_else(|| self.data_dir.join("hub.aidmesh"))
    }
}

/// A hub that is open and meshing.
pub(crate) struct Running {
    pub(crate) mesh: Arc<Mesh<Hub>>,
    pub(crate) dialer: Dialer,
    pub(crate) addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

pub struct AppState {
    pub(crate) settings: Settings,
    pub(crate) running: Mutex<Option<Running>>,
    /// A joiner waiting for this coordinator to compare the confirmation code.
    /// With the address the invite advertised, where the joiner can reach this hub.
    pub(crate) pending_invite: Mutex<Option<(aidmesh_mesh::invite::Pending, std::net::Ipv4Addr)>>,
}

/// An error as the UI receives it: a stable code to branch on, and a message for people.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

impl From<aidmesh_hub::Error> for ApiError {
    fn from(e: aidmesh_hub::Error) -> Self {
        ApiError { code: e.code().into(), message: e.to_string() }
    }
}

impl ApiError {
    pub(crate) fn new(code: &str, message: impl Into<String>) -> ApiError {
        ApiError { code: code.into(), message: message.into() }
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl AppState {
    pub fn new(settings: Settings) -> AppState {
        AppState { settings, running: Mutex::new(None), pending_invite: Mutex::new(None) }
    }

    /// Runs `f` on the open hub.
    pub(crate) fn with_hub<T>(&self, f: impl FnOnce(&mut Hub) -> aidmesh_hub::Result<T>) -> ApiResult<T> {
        let guard = self.running.lock().map_err(|_| ApiError::new("internal", "the hub lock is poisoned"))?;
        let r = guard.as_ref().ok_or_else(|| ApiError::new("locked", "the hub is locked: unlock it first"))?;
        Ok(r.mesh.with_hub(f)?)
    }

    pub(crate) fn with_running<T>(&self, f: impl FnOnce(&Running) -> T) -> ApiResult<T> {
        let guard = self.running.lock().map_err(|_| ApiError::new("internal", "the hub lock is poisoned"))?;
        let r = guard.as_ref().ok_or_else(|| ApiError::new("locked", "the hub is locked: unlock it first"))?;
        Ok(f(r))
    }

    /// Starts the mesh around an open hub; its events reach the UI through `emit`.
    pub(crate) async fn start(&self, mut hub: Hub, emit: impl Fn(HubEvent) + Send + Sync + 'static) -> ApiResult<()> {
        let emit = std::sync::Arc::new(emit);
        {
            let emit = emit.clone();
            hub.subscribe(move |e| emit(HubEvent::from(e)));
        }
        // The app owns the store while it runs: `aidmesh` commands run here, as the CLI runs them.
        let config = NodeConfig {
            listen: self.settings.listen,
            peers: Vec::new(),
            discovery: self.settings.discovery.clone(),
            commands: Some(aidmesh_cli::commands()),
            // Over the internet once the coalition names a relay, unless switched off here.
            internet: Some(aidmesh_internet::InternetConfig::default()),
        };
        let node = Node::start(hub, config)
            .await
            .map_err(|e| ApiError::new("network", format!("cannot listen on {}: {e}", self.settings.listen)))?;
        // Peers as they change, for the screens that show them (none asks on a timer). At most
        // one event a second: changes meanwhile are told by the next one.
        let mut peers = node.mesh.watch_peers();
        tauri::async_runtime::spawn(async move {
            while peers.changed().await.is_ok() {
                peers.borrow_and_update();
                emit(HubEvent::PeersChanged);
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let running = Running { mesh: node.mesh.clone(), dialer: node.dialer(), addr: node.addr, stop: Some(tx) };
        tauri::async_runtime::spawn(async move {
            if let Err(e) = node
                .run(async move {
                    let _ = rx.await;
                })
                .await
            {
                tracing::error!(error = %e, "the hub stopped");
            }
        });
        *self.running.lock().map_err(|_| ApiError::new("internal", "the hub lock is poisoned"))? = Some(running);
        Ok(())
    }

    /// Stops the running hub, if any: its mesh closes and the store is released.
    pub fn stop(&self) {
        // Also after a command panicked holding the lock: what the hub holds still goes down,
        // and a hub can be started again.
        let mut g = self.running.lock().unwrap_or_else(|e| e.into_inner());
        self.running.clear_poison();
        if let Some(mut r) = g.take() {
            // The app may exit before the mesh has wound down: what peers sent last is
            // committed here, before anything else. (What arrives after it, before the process
            // ends, is sent again by its peers.)
            match r.mesh.with_hub(|h| h.settle_peers_writes()) {
                Ok(()) => tracing::info!("stopping the hub: what peers sent last is committed"),
                Err(e) => tracing::warn!(error = %e, "cannot commit what peers sent last"),
            }
            if let Some(tx) = r.stop.take() {
                let _ = tx.send(());
            }
        }
    }
}
