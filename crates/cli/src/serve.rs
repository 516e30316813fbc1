//! `aidmesh serve`: the headless hub, syncing with member hubs until stopped.

use std::net::SocketAddr;

use aidmesh_hub::Hub;
use aidmesh_mesh::discovery::DiscoveryConfig;
use aidmesh_node::{Node, NodeConfig};
use anyhow::Result;

pub(crate) fn run(
    hub: Hub,
    listen: SocketAddr,
    peers: Vec<SocketAddr>,
    discovery: Option<DiscoveryConfig>,
) -> Result<()> {
    runtime()?.block_on(async move {
        let name = hub.hub_name()?;
        let id = hub.fingerprint();
        let node = Node::start(hub, NodeConfig { listen, peers, discovery }).await?;
        outln!("serving {name} ({id}) on {}", node.addr);
        use std::io::Write;
        std::io::stdout().flush()?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        node.run(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        })
        .await?;
        outln!("stopped");
        Ok(())
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

/// `aidmesh invite`: one code, one joiner, confirmed by the coordinator.
pub(crate) fn invite(
    mut hub: Hub,
    listen: SocketAddr,
    advertise: Option<std::net::Ipv4Addr>,
    minutes: u32,
    serve_addr: Option<String>,
) -> Result<()> {
    use std::io::Write;
    runtime()?.block_on(async move {
        let identity = aidmesh_node::invite::inviter(&hub)?;
        let open = aidmesh_node::invite::open_invite(identity, listen, advertise, minutes).await?;
        outln!("Invite code, valid {minutes} minutes, for one hub:");
        outln!("{}", open.invite.code());
        outln!("{}", open.invite.qr());
        outln!("On the joining laptop: aidmesh join CODE --name NAME");
        outln!("Waiting for the joining hub...");
        std::io::stdout().flush()?;
        let pending = open.wait().await?;
        outln!("Hub {} (\"{}\") wants to join.", pending.joiner, pending.name);
        outln!("Confirmation code: {}", pending.confirmation);
        outln!("Does the joining screen show the same code? [y/N]");
        std::io::stdout().flush()?;
        let answer = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map(|_| line)
        })
        .await??;
        if !answer.trim().eq_ignore_ascii_case("y") && !answer.trim().eq_ignore_ascii_case("yes") {
            pending.answer(None).await.map_err(anyhow::Error::msg)?;
            anyhow::bail!("not admitted: the codes were not confirmed");
        }
        let welcome = aidmesh_node::invite::admit(&mut hub, &pending, serve_addr)?;
        let (name, id) = (pending.name.clone(), pending.joiner.clone());
        pending.answer(Some(welcome)).await.map_err(anyhow::Error::msg)?;
        outln!("Admitted {name} ({id}).");
        Ok(())
    })
}

/// `aidmesh join CODE`: reach the inviting hub, show the confirmation code, take its coalition.
pub(crate) fn join(mut hub: Hub, code: &str, name: &str) -> Result<()> {
    let inv = aidmesh_node::invite::parse_invite(code)?;
    let identity = hub.identity();
    let welcome = runtime()?
        .block_on(aidmesh_node::invite::join(&identity, &inv, name, |c| {
            outln!("Confirmation code: {c}");
            outln!("Read it aloud: the inviting coordinator confirms it on their screen.");
            use std::io::Write;
            let _ = std::io::stdout().flush();
        }))
        .map_err(anyhow::Error::msg)?;
    aidmesh_node::invite::adopt(&mut hub, &welcome)?;
    outln!("Joined {}'s coalition.", welcome.founder_name);
    match welcome.peer {
        Some(p) => outln!("Start syncing: aidmesh serve --peer {p}"),
        None => outln!("Start syncing: aidmesh serve"),
    }
    Ok(())
}
