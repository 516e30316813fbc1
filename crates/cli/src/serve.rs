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
        println!("serving {name} ({id}) on {}", node.addr);
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
        println!("stopped");
        Ok(())
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

fn wall_now() -> aidmesh_hub::model::Timestamp {
    let ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    aidmesh_hub::model::Timestamp::from_millis(ms)
}

/// `aidmesh invite`: one code, one joiner, confirmed by the coordinator.
pub(crate) fn invite(
    mut hub: Hub,
    listen: SocketAddr,
    advertise: Option<std::net::Ipv4Addr>,
    minutes: u32,
    serve_addr: Option<String>,
) -> Result<()> {
    use aidmesh_mesh::invite::{accept_join, Invite, Welcome};
    use rand_core::RngCore;
    use std::io::Write;
    let me = hub.fingerprint();
    if hub.members()?.members.get(&me).map(|m| m.role) != Some(aidmesh_hub::MemberRole::Admin) {
        anyhow::bail!("this hub is not an admin of its coalition: invite from an admin hub");
    }
    let identity = hub.identity();
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let local = listener.local_addr()?;
        let ip = match (advertise, local.ip()) {
            (Some(ip), _) => ip,
            (None, std::net::IpAddr::V4(ip)) if !ip.is_unspecified() => ip,
            _ => anyhow::bail!("give --advertise with the IPv4 address the joining laptop can reach"),
        };
        let mut secret = [0u8; 10];
        rand_core::OsRng.fill_bytes(&mut secret);
        let expires_min = (wall_now().millis() / 60_000) as u32 + minutes;
        let inv =
            Invite { inviter: me.clone(), addr: std::net::SocketAddrV4::new(ip, local.port()), secret, expires_min };
        println!("Invite code, valid {minutes} minutes, for one hub:");
        println!("{}", inv.code());
        println!("{}", inv.qr());
        println!("On the joining laptop: aidmesh join CODE --name NAME");
        println!("Waiting for the joining hub...");
        std::io::stdout().flush()?;
        let pending = accept_join(&identity, &listener, &inv, wall_now).await.map_err(anyhow::Error::msg)?;
        println!("Hub {} (\"{}\") wants to join.", pending.joiner, pending.name);
        println!("Confirmation code: {}", pending.confirmation);
        println!("Does the joining screen show the same code? [y/N]");
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
        let key = aidmesh_mesh::membership::hex(&pending.joiner_key);
        let (joiner_name, joiner_id) = (pending.name.clone(), pending.joiner.clone());
        hub.admit(&key, &pending.name, aidmesh_hub::MemberRole::Member)?;
        let f = hub.founder()?;
        let welcome = Welcome {
            founder_key: f.key,
            founder_name: f.name,
            founded_at: f.at.millis(),
            peer: serve_addr,
            coalition_key: hub.coalition_key_hex()?,
        };
        pending.answer(Some(welcome)).await.map_err(anyhow::Error::msg)?;
        println!("Admitted {joiner_name} ({joiner_id}).");
        Ok(())
    })
}

/// `aidmesh join CODE`: reach the inviting hub, show the confirmation code, take its coalition.
pub(crate) fn join(mut hub: Hub, code: &str, name: &str) -> Result<()> {
    use aidmesh_mesh::invite::{join, Invite};
    let inv = Invite::parse(code).map_err(anyhow::Error::msg)?;
    if inv.expired(wall_now()) {
        anyhow::bail!("this invite has expired: ask for a new one");
    }
    let identity = hub.identity();
    let welcome = runtime()?
        .block_on(join(&identity, &inv, name, |c| {
            println!("Confirmation code: {c}");
            println!("Read it aloud: the inviting coordinator confirms it on their screen.");
            use std::io::Write;
            let _ = std::io::stdout().flush();
        }))
        .map_err(anyhow::Error::msg)?;
    hub.adopt_founder(&aidmesh_hub::Founder {
        key: welcome.founder_key,
        name: welcome.founder_name.clone(),
        at: aidmesh_hub::model::Timestamp::from_millis(welcome.founded_at),
    })?;
    if let Some(k) = &welcome.coalition_key {
        hub.set_coalition_key(k)?;
    }
    println!("Joined {}'s coalition.", welcome.founder_name);
    match welcome.peer {
        Some(p) => println!("Start syncing: aidmesh serve --peer {p}"),
        None => println!("Start syncing: aidmesh serve"),
    }
    Ok(())
}
