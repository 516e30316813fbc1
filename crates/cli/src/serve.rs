//! `aidmesh serve`: the headless hub, syncing with member hubs until stopped.

use std::net::SocketAddr;
use std::time::Duration;

use aidmesh_hub::Hub;
use aidmesh_mesh::net::Mesh;
use anyhow::Result;

pub(crate) fn run(hub: Hub, listen: SocketAddr, peers: Vec<SocketAddr>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        let identity = hub.identity();
        let name = hub.hub_name()?;
        let mesh = Mesh::new(hub, &identity)?;
        let addr = mesh.listen(listen).await?;
        println!("serving {name} ({}) on {addr}", identity.id());
        use std::io::Write;
        std::io::stdout().flush()?;
        for p in peers {
            mesh.dial(p);
        }
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
                    let status = serde_json::to_string(&mesh.peers())?;
                    mesh.with_hub(|h| h.record_peer_status(&status))?;
                }
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
            }
        }
        mesh.with_hub(|h| h.record_peer_status("[]"))?;
        println!("stopped");
        Ok(())
    })
}
