//! Network namespaces for the internet tests: a small internet of a relay's host, another
//! host, and two sites each behind its own NAT (nftables masquerade), made by the test and
//! removed after it, so that nothing touches the machine's own network. Needs root, iproute2
//! and nftables (`cargo xtask test` installs them and runs as root in CI).

use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use aidmesh_hub::Hub;
use aidmesh_internet::{Internet, InternetConfig};
use aidmesh_mesh::net::Mesh;

pub fn run(program: &str, args: &[&str], stdin: Option<&str>) {
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

pub fn ip(args: &[&str]) {
    run("ip", args, None);
}

/// The namespaces of a lab: the internet, the relay's host, a host in the middle (for what a
/// test puts on the path), and two sites of a router and a hub.
const SITES: [&str; 7] = ["inet", "relay", "ra", "ha", "rb", "hb", "mid"];

/// The internet (a bridge in its own namespace), the relay's host (`.1`) and another host
/// (`mid`, `.4`) on it, and two sites: a router that masquerades its site behind its address on
/// the internet (`.2`, `.3`), and a hub behind it. Removed on drop.
pub struct Lab {
    names: Vec<String>,
    net: u8,
}

impl Lab {
    pub fn new() -> Lab {
        let id = std::process::id() % 10_000;
        let net = 16 + (id % 200) as u8;
        let name = |what: &str| format!("ain{id}{what}");
        let lab = Lab { names: SITES.iter().map(|w| name(w)).collect(), net };
        for n in &lab.names {
            ip(&["netns", "add", n]);
            ip(&["-n", n, "link", "set", "lo", "up"]);
        }
        let inet = lab.ns("inet");
        ip(&["-n", inet, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", inet, "link", "set", "br0", "up"]);
        // The relay and each router on the internet.
        for (who, host) in [("relay", 1), ("ra", 2), ("rb", 3), ("mid", 4)] {
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

    pub fn ns(&self, what: &str) -> &str {
        let i = SITES.iter().position(|w| *w == what).unwrap();
        &self.names[i]
    }

    pub fn public(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(172, 31, self.net, host)
    }

    /// Whether each router drops what its site sends to the other site's router.
    pub fn cut_between_sites(&self, cut: bool) {
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
pub fn in_namespace<T: Send + 'static>(
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
pub fn serve_in(
    ns: &str,
    hub: Hub,
    cfg: InternetConfig,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> (Arc<Mesh<Hub>>, std::thread::JoinHandle<()>) {
    let identity = hub.identity();
    let mesh = Arc::new(Mesh::new(hub, &identity, [7; 32]).unwrap());
    (mesh.clone(), start_in(ns, mesh, cfg, stop))
}

/// Starts internet sync for a hub's `mesh` inside namespace `ns`, until `stop` fires.
pub fn start_in(
    ns: &str,
    mesh: Arc<Mesh<Hub>>,
    cfg: InternetConfig,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> std::thread::JoinHandle<()> {
    let (tx, rx) = mpsc::channel();
    let thread = in_namespace(
        ns,
        move || {
            Box::pin(async move {
                let identity = mesh.with_hub(|h| h.identity());
                let net = Internet::start(mesh, &identity, cfg).await.unwrap();
                tx.send(()).unwrap();
                net
            })
        },
        stop,
    );
    rx.recv_timeout(Duration::from_secs(30)).expect("internet sync starts");
    thread
}

pub fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    f()
}

/// The coalition's relay (the iroh project's `iroh-relay` server) inside namespace `ns` at
/// `ip`, with TLS `tls` and access list `access`, and with QUIC address discovery on its usual
/// port if `quic`, until `stop` fires. Its HTTPS address comes back.
pub fn relay_in(
    ns: &str,
    ip: std::net::IpAddr,
    tls: rustls::ServerConfig,
    access: crate::common::Allowlist,
    quic: bool,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    use iroh_relay::server::{CertConfig, QuicConfig, RelayConfig, Server, ServerConfig, TlsConfig};
    use std::net::SocketAddr;
    let (tx, rx) = mpsc::channel();
    let thread = in_namespace(
        ns,
        move || {
            Box::pin(async move {
                let mut relay = RelayConfig::new(SocketAddr::new(ip, 0));
                relay.tls = Some(TlsConfig::new(SocketAddr::new(ip, 0), CertConfig::Manual { server_config: tls }));
                relay.access = Arc::new(access);
                let mut config = ServerConfig::default();
                config.relay = Some(relay);
                if quic {
                    // How a hub behind NAT learns the address its router gives it, which hole
                    // punching needs.
                    config.quic = Some(QuicConfig::new(SocketAddr::new(ip, 7842)));
                }
                let server = Server::spawn(config).await.unwrap();
                tx.send(server.https_addr().unwrap()).unwrap();
                server
            })
        },
        stop,
    );
    (rx.recv_timeout(Duration::from_secs(30)).expect("the relay starts"), thread)
}

/// The coalition's relay on the lab's relay host, with a certificate that names the middle host
/// (`mid`): hubs reach it only through what the test puts there. An empty access list to fill;
/// the relay stops when this is dropped.
pub struct MidRelay {
    pub root: rustls::pki_types::CertificateDer<'static>,
    pub allow: crate::common::Allowlist,
    /// Where the relay listens, for the middle host to forward to.
    pub addr: std::net::SocketAddr,
    /// The middle host's address.
    pub mid: std::net::IpAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MidRelay {
    pub fn start(lab: &Lab) -> MidRelay {
        let (relay_ip, mid) = (std::net::IpAddr::V4(lab.public(1)), std::net::IpAddr::V4(lab.public(4)));
        let (root, tls) = crate::common::relay_certificate(mid);
        let allow = crate::common::Allowlist::default();
        let (stop, relay_stop) = tokio::sync::oneshot::channel();
        let (addr, thread) = relay_in(lab.ns("relay"), relay_ip, tls, allow.clone(), false, relay_stop);
        MidRelay { root, allow, addr, mid, stop: Some(stop), thread: Some(thread) }
    }
}

impl Drop for MidRelay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
