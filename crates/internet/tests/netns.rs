//! Two hubs at different sites, each behind its own NAT (nftables masquerade, as a phone's
//! hotspot or a home router does), and the coalition's relay on the "internet" between them: all
//! in Linux network namespaces this test creates, so nothing touches the machine's own network.
//! First the routers drop every packet between the two sites, so the hubs can meet only through
//! the relay; then the path opens, and the connection moves to a direct path (hole punching).
//! Real hubs, real QUIC, the real `iroh-relay` server. Needs root, iproute2 and nftables (`cargo
//! xtask test` installs them and runs as root in CI).

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use aidmesh_hub::Hub;
use aidmesh_internet::{Internet, InternetConfig};
use aidmesh_mesh::net::{Mesh, Reach};
use common::{add_item, holds, join, key_of, new_hub, relay_certificate, Allowlist};
use iroh_relay::server::{CertConfig, QuicConfig, RelayConfig, Server, ServerConfig, TlsConfig};

fn run(program: &str, args: &[&str], stdin: Option<&str>) {
    let mut c = Command::new(program);
    c.args(args).stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap_or_else(|e| panic!("{program} is needed for the network tests: {e}"));
    if let Some(text) = stdin {
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

fn ip(args: &[&str]) {
    run("ip", args, None);
}

/// The internet (a bridge in its own namespace), the relay on it, and two sites: a router that
/// masquerades its site behind its address on the internet, and a hub behind it. Removed on drop.
struct Lab {
    names: Vec<String>,
    net: u8,
}

impl Lab {
    fn new() -> Lab {
        let id = std::process::id() % 10_000;
        let net = 16 + (id % 200) as u8;
        let name = |what: &str| format!("ain{id}{what}");
        let lab = Lab { names: ["inet", "relay", "ra", "ha", "rb", "hb"].iter().map(|w| name(w)).collect(), net };
        for n in &lab.names {
            ip(&["netns", "add", n]);
            ip(&["-n", n, "link", "set", "lo", "up"]);
        }
        let inet = lab.ns("inet");
        ip(&["-n", inet, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", inet, "link", "set", "br0", "up"]);
        // The relay and each router on the internet.
        for (who, host) in [("relay", 1), ("ra", 2), ("rb", 3)] {
            let ns = lab.ns(who);
            let port = format!("p{who}");
            ip(&["-n", inet, "link", "add", &port, "type", "veth", "peer", "name", "wan", "netns", ns]);
            ip(&["-n", inet, "link", "set", &port, "master", "br0"]);
            ip(&["-n", inet, "link", "set", &port, "up"]);
            ip(&["-n", ns, "addr", "add", &format!("{}/24", lab.public(host)), "dev", "wan"]);
            ip(&["-n", ns, "link", "set", "wan", "up"]);
        }
        // Each site: the hub behind its router, which masquerades it.
        for (router, hub, site) in [("ra", "ha", 1), ("rb", "hb", 2)] {
            let (r, h) = (lab.ns(router), lab.ns(hub));
            ip(&["-n", r, "link", "add", "lan", "type", "veth", "peer", "name", "eth0", "netns", h]);
            ip(&["-n", r, "addr", "add", &format!("10.{site}.{net}.1/24"), "dev", "lan"]);
            ip(&["-n", r, "link", "set", "lan", "up"]);
            ip(&["-n", h, "addr", "add", &format!("10.{site}.{net}.2/24"), "dev", "eth0"]);
            ip(&["-n", h, "link", "set", "eth0", "up"]);
            ip(&["-n", h, "route", "add", "default", "via", &format!("10.{site}.{net}.1")]);
            run("ip", &["netns", "exec", r, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], None);
            // Masquerade out; and in, a UDP packet to a mapped port reaches the hub whoever sent
            // it (endpoint-independent filtering, as many home routers and carrier NATs do). With
            // Linux's default (address-dependent) filtering, the two hubs' first probes cross:
            // each router takes the other's probe for a new flow, the hub's own probe then gets
            // another port, and the punch never meets.
            let rules = format!(
                "table ip nat {{\n chain post {{\n  type nat hook postrouting priority 100;\n  oifname \"wan\" masquerade\n }}\n\
                 chain pre {{\n  type nat hook prerouting priority -100;\n  iifname \"wan\" udp dport 1024-65535 dnat to 10.{site}.{net}.2\n }}\n}}\n\
                 table ip cut {{\n chain forward {{\n  type filter hook forward priority 0;\n }}\n}}\n"
            );
            run("ip", &["netns", "exec", r, "nft", "-f", "-"], Some(&rules));
        }
        lab
    }

    fn ns(&self, what: &str) -> &str {
        let i = ["inet", "relay", "ra", "ha", "rb", "hb"].iter().position(|w| *w == what).unwrap();
        &self.names[i]
    }

    fn public(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(172, 31, self.net, host)
    }

    /// Whether each router drops what its site sends to the other site's router.
    fn cut_between_sites(&self, cut: bool) {
        for (router, other) in [("ra", 3), ("rb", 2)] {
            let rule = format!("ip daddr {} drop", self.public(other));
            let script = if cut {
                format!("add rule ip cut forward {rule}\n")
            } else {
                "flush chain ip cut forward\n".to_string()
            };
            run("ip", &["netns", "exec", self.ns(router), "nft", "-f", "-"], Some(&script));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// Runs `f` on a thread inside network namespace `ns`, in a tokio runtime made there (its
/// worker threads and every socket they open stay in that namespace), until `stop` fires.
fn in_namespace<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> std::thread::JoinHandle<()> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        rustix::thread::move_into_link_name_space(file.as_fd(), Some(rustix::thread::LinkNameSpaceType::Network))
            .unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async move {
            let _kept = f().await;
            let _ = stop.await;
        });
    })
}

/// Starts `hub` with internet sync inside namespace `ns`; its mesh comes back.
fn serve_in(
    ns: &str,
    hub: Hub,
    cfg: InternetConfig,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> (Arc<Mesh<Hub>>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let thread = in_namespace(
        ns,
        move || {
            Box::pin(async move {
                let identity = hub.identity();
                let mesh = Arc::new(Mesh::new(hub, &identity, [7; 32]).unwrap());
                let net = Internet::start(mesh.clone(), &identity, cfg).await.unwrap();
                tx.send(mesh).unwrap();
                net
            })
        },
        stop,
    );
    (rx.recv_timeout(Duration::from_secs(30)).expect("the hub starts"), thread)
}

fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    f()
}

fn reach(mesh: &Mesh<Hub>) -> Option<Reach> {
    mesh.peers().first().map(|p| p.reach)
}

#[test]
fn hubs_behind_nat_meet_through_the_relay_then_directly() {
    let lab = Lab::new();
    lab.cut_between_sites(true);
    let dir = tempfile::tempdir().unwrap();

    // The coalition's relay, on the internet, with the member hubs' keys as its access list.
    let relay_ip = IpAddr::V4(lab.public(1));
    let (root, tls) = relay_certificate(relay_ip);
    let allow = Allowlist::default();
    let (url_tx, url_rx) = mpsc::channel();
    let (stop_relay, relay_stop) = tokio::sync::oneshot::channel();
    let access = allow.clone();
    let relay = in_namespace(
        lab.ns("relay"),
        move || {
            Box::pin(async move {
                let mut relay = RelayConfig::new(SocketAddr::new(relay_ip, 0));
                relay.tls =
                    Some(TlsConfig::new(SocketAddr::new(relay_ip, 0), CertConfig::Manual { server_config: tls }));
                relay.access = Arc::new(access);
                let mut config = ServerConfig::default();
                config.relay = Some(relay);
                // QUIC address discovery on its usual port: how a hub behind NAT learns the
                // address its router gives it, which hole punching needs.
                config.quic = Some(QuicConfig::new(SocketAddr::new(relay_ip, 7842)));
                let server = Server::spawn(config).await.unwrap();
                url_tx.send(format!("https://{}/", server.https_addr().unwrap())).unwrap();
                server
            })
        },
        relay_stop,
    );
    let url = url_rx.recv_timeout(Duration::from_secs(30)).expect("the relay starts");

    let (mut a, mut b) = (new_hub(dir.path(), "North", 1), new_hub(dir.path(), "South", 2));
    a.set_relays(std::slice::from_ref(&url)).unwrap();
    join(&mut a, &mut b);
    allow.0.write().unwrap().extend([key_of(&a), key_of(&b)]);
    let cfg = |own: Vec<String>| InternetConfig {
        relays: own,
        relay_roots: vec![root.clone()],
        bind: None,
        direct: Default::default(),
    };
    let (stop_a, a_stop) = tokio::sync::oneshot::channel();
    let (stop_b, b_stop) = tokio::sync::oneshot::channel();
    let (a_mesh, a_thread) = serve_in(lab.ns("ha"), a, cfg(Vec::new()), a_stop);
    let (b_mesh, b_thread) = serve_in(lab.ns("hb"), b, cfg(vec![url.clone()]), b_stop);

    // No packet passes between the sites: they sync through the relay.
    let water = add_item(&a_mesh, "Water");
    let tarps = add_item(&b_mesh, "Tarps");
    assert!(eventually(Duration::from_secs(60), || holds(&b_mesh, &water)), "A's record reaches B through the relay");
    assert!(eventually(Duration::from_secs(20), || holds(&a_mesh, &tarps)), "B's record reaches A");
    // And so it stays while the sites are cut off from each other (iroh tries the direct
    // addresses meanwhile: every 5 s here).
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!((reach(&a_mesh), reach(&b_mesh)), (Some(Reach::Relayed), Some(Reach::Relayed)), "{:?}", a_mesh.peers());

    // The sites can reach each other: the connection moves to the direct path, and goes on
    // (iroh tries a relayed connection's direct paths again and again; at the latest after a
    // minute).
    lab.cut_between_sites(false);
    assert!(
        eventually(Duration::from_secs(90), || reach(&a_mesh) == Some(Reach::Direct)
            && reach(&b_mesh) == Some(Reach::Direct)),
        "the connection goes direct once it can: {:?} / {:?}",
        a_mesh.peers(),
        b_mesh.peers()
    );
    let soup = add_item(&b_mesh, "Soup");
    assert!(eventually(Duration::from_secs(10), || holds(&a_mesh, &soup)), "an edit goes over the direct path");

    for stop in [stop_a, stop_b, stop_relay] {
        let _ = stop.send(());
    }
    for t in [a_thread, b_thread, relay] {
        t.join().unwrap();
    }
}
