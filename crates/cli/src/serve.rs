//! `aidmesh serve`: the headless hub, syncing with member hubs until stopped.

use std::net::SocketAddr;

use aidmesh_hub::Hub;
use aidmesh_internet::InternetConfig;
use aidmesh_mesh::discovery::DiscoveryConfig;
use aidmesh_node::{Node, NodeConfig};
use anyhow::{anyhow, bail, Context, Result};

pub(crate) fn run(
    hub: Hub,
    listen: SocketAddr,
    peers: Vec<SocketAddr>,
    discovery: Option<DiscoveryConfig>,
    internet: Option<InternetConfig>,
) -> Result<()> {
    runtime()?.block_on(async move {
        let name = hub.hub_name()?;
        let id = hub.fingerprint();
        let config = NodeConfig { listen, peers, discovery, commands: Some(crate::commands()), internet };
        let node = Node::start(hub, config).await?;
        outln!("serving {name} ({id}) on {}", node.addr);
        std::io::Write::flush(&mut std::io::stdout())?;
        node.run(aidmesh_node::stop_requested()?).await?;
        outln!("stopped");
        Ok(())
    })
}

/// What `serve`'s internet options say, checked: every relay an https address, every root
/// certificate readable PEM, every peer KEY@IP:PORT. `None` with `--no-internet`.
pub(crate) fn internet_config(args: crate::args::InternetArgs) -> Result<Option<InternetConfig>> {
    use rustls_pki_types::pem::PemObject;
    if args.no_internet {
        return Ok(None);
    }
    aidmesh_internet::parse_relays(&args.relays)?;
    let mut relay_roots = Vec::new();
    for path in &args.relay_roots {
        let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("--relay-root {}: not a readable PEM certificate file", path.display()))?;
        if certs.is_empty() {
            bail!("--relay-root {}: holds no certificate", path.display());
        }
        relay_roots.extend(certs);
    }
    let mut direct: std::collections::BTreeMap<[u8; 32], Vec<SocketAddr>> = Default::default();
    for p in &args.peers {
        let bad = || {
            anyhow!(
                "--internet-peer {p:?}: expected KEY@IP:PORT (the hub's public key, as `aidmesh identity` prints it)"
            )
        };
        let (key, addr) = p.split_once('@').ok_or_else(bad)?;
        let key: [u8; 32] = aidmesh_mesh::hex::decode_array::<32>(key.trim()).ok_or_else(bad)?;
        if !aidmesh_mesh::identity::public_key_ok(&key) {
            return Err(bad());
        }
        let addr: SocketAddr = addr.trim().parse().map_err(|_| bad())?;
        direct.entry(key).or_default().push(addr);
    }
    Ok(Some(InternetConfig { relays: args.relays, relay_roots, bind: args.bind, direct }))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

/// `aidmesh invite`: one code, one joiner, confirmed by the coordinator. The hub is held only
/// to check this hub may invite and to admit the joiner, so a running hub syncs meanwhile.
pub(crate) fn invite(
    hubs: &mut crate::Hubs<'_>,
    listen: SocketAddr,
    advertise: Option<std::net::Ipv4Addr>,
    minutes: u32,
    serve_addr: Option<String>,
) -> Result<()> {
    runtime()?.block_on(async move {
        let identity = aidmesh_node::invite::inviter(&*hubs.hub()?)?;
        let open = aidmesh_node::invite::open_invite(identity, listen, advertise, minutes).await?;
        outln!("Invite code, valid {minutes} minutes, for one hub:");
        outln!("{}", open.invite.code());
        outln!("{}", open.invite.qr());
        outln!("On the joining laptop: aidmesh join CODE --name NAME");
        outln!("Waiting for the joining hub...");
        let pending = open.wait().await?;
        outln!("Hub {} (\"{}\") wants to join.", pending.joiner, pending.name);
        outln!("Confirmation code: {}", pending.confirmation);
        outln!("Does the joining screen show the same code? [y/N]");
        let _ = std::io::Write::flush(&mut std::io::stdout());
        let answer = crate::term::read_line()?;
        if !answer.trim().eq_ignore_ascii_case("y") && !answer.trim().eq_ignore_ascii_case("yes") {
            pending.answer(None).await.map_err(anyhow::Error::msg)?;
            anyhow::bail!("not admitted: the codes were not confirmed");
        }
        let welcome = aidmesh_node::invite::admit(&mut *hubs.hub()?, &pending, serve_addr)?;
        let (name, id) = (pending.name.clone(), pending.joiner.clone());
        pending.answer(Some(welcome)).await.map_err(anyhow::Error::msg)?;
        outln!("Admitted {name} ({id}).");
        Ok(())
    })
}

/// `aidmesh join CODE`: reach the inviting hub, show the confirmation code, take its coalition.
pub(crate) fn join(hubs: &mut crate::Hubs<'_>, code: &str, name: &str) -> Result<()> {
    let inv = aidmesh_node::invite::parse_invite(code)?;
    let (identity, claim) = {
        let hub = hubs.hub()?;
        (hub.identity(), aidmesh_node::invite::claim(&hub))
    };
    let welcome = runtime()?
        .block_on(aidmesh_node::invite::join(&identity, &inv, name, claim, |c| {
            outln!("Confirmation code: {c}");
            outln!("Read it aloud: the inviting coordinator confirms it on their screen.");
            let _ = std::io::Write::flush(&mut std::io::stdout());
        }))
        .map_err(anyhow::Error::msg)?;
    aidmesh_node::invite::adopt(&mut *hubs.hub()?, &welcome)?;
    outln!("Joined {}'s coalition.", welcome.founder_name);
    match (welcome.peer, hubs.owner()) {
        // This hub already runs: it dials the inviter at once.
        (Some(p), Some(owner)) => match p.parse() {
            Ok(addr) => {
                owner.dialer.dial(addr);
                outln!("Syncing with {p}.");
            }
            Err(_) => outln!("The inviting hub gave an address that is not one: {p:?}"),
        },
        (None, Some(_)) => outln!("Syncing with the members this hub finds."),
        (Some(p), None) => outln!("Start syncing: aidmesh serve --peer {p}"),
        (None, None) => outln!("Start syncing: aidmesh serve"),
    }
    Ok(())
}
