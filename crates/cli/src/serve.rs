//! `aidmesh serve`: the headless hub, syncing with member hubs until stopped.

use std::net::SocketAddr;
use std::time::Duration;

use aidmesh_hub::Hub;
use aidmesh_mesh::discovery::{Discovery, DiscoveryConfig};
use aidmesh_mesh::net::Mesh;
use anyhow::Result;

pub(crate) fn run(
    hub: Hub,
    listen: SocketAddr,
    peers: Vec<SocketAddr>,
    discovery: Option<DiscoveryConfig>,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        let identity = hub.identity();
        let name = hub.hub_name()?;
        let mesh = Mesh::new(hub, &identity)?;
        let addr = mesh.listen(listen).await?;
        println!("serving {name} ({}) on {addr}", identity.id());
        use std::io::Write;
        std::io::stdout().flush()?;
        let mut dialed: std::collections::BTreeSet<SocketAddr> = peers.iter().copied().collect();
        for p in peers {
            mesh.dial(p);
        }
        let (found_tx, mut found_rx) = tokio::sync::mpsc::unbounded_channel::<SocketAddr>();
        let mut mdns: Option<Discovery> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    // Writes made by the `aidmesh` command in another process, new members, status.
                    mesh.with_hub(|h| {
                        if let Err(e) = h.pick_up_external_changes() {
                            tracing::error!(error = %e, "cannot read the store");
                        }
                    });
                    mesh.refresh_members();
                    // Discovery stays off until the hub belongs to a coalition.
                    if let (None, Some(cfg)) = (&mdns, &discovery) {
                        let (n, founder, me) =
                            mesh.with_hub(|h| (h.members().map(|m| m.members.len()).unwrap_or(0), h.founder(), h.public_key()));
                        let founder = founder?;
                        // A hub belongs to a coalition once it joined one or admitted another hub.
                        if n >= 2 || founder.key != me {
                            let ips: Vec<std::net::IpAddr> = if addr.ip().is_unspecified() { vec![] } else { vec![addr.ip()] };
                            let tx = found_tx.clone();
                            let mut rng = rand_core::OsRng;
                            match Discovery::start(cfg, &founder.key, &ips, addr.port(), &mut rng, move |a| { let _ = tx.send(a); }) {
                                Ok(d) => {
                                    tracing::info!(interfaces = ?cfg.interfaces, "mDNS discovery on");
                                    mdns = Some(d);
                                }
                                Err(e) => tracing::warn!(error = %e, "mDNS discovery failed; add peers by address"),
                            }
                        }
                    }
                    let status = serde_json::to_string(&mesh.peers())?;
                    mesh.with_hub(|h| h.record_peer_status(&status))?;
                }
                Some(found) = found_rx.recv() => {
                    if found != addr && dialed.insert(found) {
                        tracing::info!(%found, "discovered a hub");
                        mesh.dial(found);
                    }
                }
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
            }
        }
        if let Some(d) = mdns {
            d.stop();
        }
        mesh.with_hub(|h| h.record_peer_status("[]"))?;
        println!("stopped");
        Ok(())
    })
}
