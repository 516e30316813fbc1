//! Real mDNS discovery between hubs in Linux network namespaces that this test creates: three
//! hosts and an outsider on a bridge that lives in a fourth namespace, so nothing touches the
//! machine's own network. Needs root and iproute2 (`cargo xtask test` runs as root in CI).

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{item_names as items, ok as cli, BIN};

fn ip(args: &[&str]) {
    let o = Command::new("ip").args(args).output().expect("iproute2's `ip` is needed for the network tests");
    assert!(o.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr));
}

/// Network namespaces joined by a bridge, removed on drop.
struct Lab {
    bridge: String,
    hosts: Vec<(String, String)>,
    children: Vec<Child>,
}

impl Lab {
    /// `n` hosts on one network.
    fn new(n: usize) -> Lab {
        let all: Vec<usize> = (0..n).collect();
        Lab::networks(n, &[&all])
    }

    /// `n` hosts and networks: network `k` is bridge `br{k}` joining the hosts `nets[k]` lists
    /// (a host's first network is its eth0, its second eth1). A host's address is its address
    /// on its first network.
    fn networks(n: usize, nets: &[&[usize]]) -> Lab {
        // Labs of one test process run in parallel: each has its own names.
        static LABS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let lab = LABS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let id = (std::process::id() % 1_000) * 10 + lab % 10;
        let subnet = 100 + (id % 150);
        let bridge = format!("amb{id}");
        ip(&["netns", "add", &bridge]);
        let mut hosts: Vec<(String, String)> = Vec::new();
        for i in 0..n {
            let ns = format!("amh{id}x{i}");
            ip(&["netns", "add", &ns]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            hosts.push((ns, String::new()));
        }
        let mut joined = vec![0usize; n];
        for (k, members) in nets.iter().enumerate() {
            let br = format!("br{k}");
            ip(&["-n", &bridge, "link", "add", &br, "type", "bridge"]);
            ip(&["-n", &bridge, "link", "set", &br, "up"]);
            for &i in members.iter() {
                let ns = hosts[i].0.clone();
                let veth = if k == 0 { format!("v{i}") } else { format!("v{i}n{k}") };
                let dev = format!("eth{}", joined[i]);
                joined[i] += 1;
                ip(&["-n", &bridge, "link", "add", &veth, "type", "veth", "peer", "name", &dev, "netns", &ns]);
                ip(&["-n", &bridge, "link", "set", &veth, "master", &br]);
                ip(&["-n", &bridge, "link", "set", &veth, "up"]);
                let addr = format!("10.{}.{subnet}.{}", 213 + k, i + 1);
                ip(&["-n", &ns, "addr", "add", &format!("{addr}/24"), "dev", &dev]);
                ip(&["-n", &ns, "link", "set", &dev, "multicast", "on"]);
                ip(&["-n", &ns, "link", "set", &dev, "up"]);
                if hosts[i].1.is_empty() {
                    hosts[i].1 = addr;
                }
            }
        }
        Lab { bridge, hosts, children: Vec::new() }
    }

    /// Cuts or restores host `i`'s link to network `net`.
    fn link_in(&self, net: usize, i: usize, up: bool) {
        let veth = if net == 0 { format!("v{i}") } else { format!("v{i}n{net}") };
        ip(&["-n", &self.bridge, "link", "set", &veth, if up { "up" } else { "down" }]);
    }

    /// Cuts or restores host `i`'s link to its first network.
    fn link(&self, i: usize, up: bool) {
        self.link_in(0, i, up)
    }

    /// Starts `aidmesh serve` in host `i`'s namespace, discovery limited to its eth0.
    fn serve(&mut self, i: usize, store: &PathBuf) -> usize {
        self.serve_logged(i, store, Stdio::null())
    }

    /// The same, with its log (at info level) going to `log`.
    fn serve_logged(&mut self, i: usize, store: &PathBuf, log: impl Into<Stdio>) -> usize {
        let listen = format!("{}:7433", self.hosts[i].1);
        self.serve_on(i, store, &listen, "eth0", log)
    }

    /// `aidmesh serve` in host `i`'s namespace on `listen`, with mDNS on `interfaces`.
    fn serve_on(&mut self, i: usize, store: &PathBuf, listen: &str, interfaces: &str, log: impl Into<Stdio>) -> usize {
        let ns = &self.hosts[i].0;
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, BIN, "--store"])
            .arg(store)
            .args(["serve", "--listen", listen, "--mdns-interface", interfaces])
            .env("AIDMESH_PASSPHRASE", "pw for tests")
            .env("AIDMESH_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.starts_with("serving"), "{line}");
        self.children.push(child);
        self.children.len() - 1
    }

    fn kill(&mut self, child: usize) {
        let c = &mut self.children[child];
        let _ = c.kill(); // SIGKILL
        let _ = c.wait();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for (ns, _) in &self.hosts {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.bridge]).status();
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(40), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn must_be_root() {
    assert!(
        Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false),
        "this test creates network namespaces and must run as root (CI does; locally: sudo -E cargo xtask test)"
    );
}

#[test]
fn hubs_find_each_other_by_mdns_and_converge_across_a_cut() {
    must_be_root();
    let dir = tempfile::tempdir().unwrap();
    let stores: Vec<PathBuf> = (0..4).map(|i| dir.path().join(format!("hub{i}.aidmesh"))).collect();
    for (i, s) in stores.iter().enumerate() {
        cli(s, &["init", "--name", &format!("hub {i}")]);
    }
    // Hubs 1 and 2 are admitted and adopt the code their admission made; hub 3 adopts the
    // founder's code (it knows the founder's key) but is not admitted.
    for s in &stores[1..3] {
        let key = cli(s, &["identity"])["public_key"].as_str().unwrap().to_string();
        let code = cli(&stores[0], &["admit", &key, "--name", "member"])["founder_code"].as_str().unwrap().to_string();
        cli(s, &["adopt-founder", &code]);
    }
    let code = cli(&stores[0], &["identity"])["founder_code"].as_str().unwrap().to_string();
    cli(&stores[3], &["adopt-founder", &code]);
    cli(&stores[0], &["add", "item", "name=Water", "unit=bottle"]);
    let mut lab = Lab::new(4);
    let mut procs = Vec::new();
    for (i, s) in stores.iter().enumerate() {
        procs.push(lab.serve(i, s));
    }
    for s in &stores[1..3] {
        wait_until("discovery and sync", || items(s) == ["Water"]);
    }
    // Cut hub 2 off; edit on both sides; restore the link; all converge.
    lab.link(2, false);
    cli(&stores[0], &["add", "item", "name=Rice", "unit=kg"]);
    cli(&stores[2], &["add", "item", "name=Tea", "unit=box"]);
    wait_until("hub 1 to get Rice", || items(&stores[1]).contains(&"Rice".to_string()));
    assert!(!items(&stores[2]).contains(&"Rice".to_string()), "the cut hub is really cut off");
    lab.link(2, true);
    for s in &stores[..3] {
        wait_until("convergence after the link is back", || items(s) == ["Rice", "Tea", "Water"]);
    }
    // SIGKILL hub 1, write while it is down, restart it: nothing lost.
    lab.kill(procs[1]);
    cli(&stores[0], &["add", "item", "name=Blankets", "unit=blanket"]);
    cli(&stores[1], &["add", "item", "name=Soap", "unit=bar"]);
    lab.serve(1, &stores[1]);
    for s in &stores[..3] {
        wait_until("convergence after the restart", || items(s) == ["Blankets", "Rice", "Soap", "Tea", "Water"]);
    }
    // The outsider on the same bridge got nothing.
    assert!(items(&stores[3]).is_empty());
}

/// An outsider on the LAN floods a hub's port: 200 sockets held open without a word, reopened
/// as soon as they close, and a storm of connections opened and dropped as fast as it can.
const FLOOD: &str = r#"
import select, socket, sys, threading, time
host, port = sys.argv[1], int(sys.argv[2])
held = []
def hold():
    while True:
        if held:
            readable, _, _ = select.select(held, [], [], 0.01)
            for s in readable:
                held.remove(s)
                s.close()
        while len(held) < 200:
            try:
                held.append(socket.create_connection((host, port), timeout=1))
            except OSError:
                time.sleep(0.001)
                break
def storm():
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
        except OSError:
            time.sleep(0.001)
threading.Thread(target=hold, daemon=True).start()
for _ in range(3):
    threading.Thread(target=storm, daemon=True).start()
print("flooding", flush=True)
while True:
    time.sleep(1)
"#;

#[test]
fn an_outsider_flooding_a_hub_cannot_keep_a_member_out_nor_fill_its_log() {
    must_be_root();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.aidmesh"), dir.path().join("b.aidmesh"));
    cli(&a, &["init", "--name", "North"]);
    cli(&b, &["init", "--name", "South"]);
    let key = cli(&b, &["identity"])["public_key"].as_str().unwrap().to_string();
    let code = cli(&a, &["admit", &key, "--name", "South"])["founder_code"].as_str().unwrap().to_string();
    cli(&b, &["adopt-founder", &code]);
    let mut lab = Lab::new(3);
    let log_path = dir.path().join("north.log");
    let log = std::fs::File::create(&log_path).unwrap();
    lab.serve_logged(0, &a, log);
    let target = lab.hosts[0].1.clone();
    let mut flood = Command::new("ip")
        .args(["netns", "exec", &lab.hosts[2].0, "python3", "-c", FLOOD, &target, "7433"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 runs the outsider's flood");
    let mut line = String::new();
    BufReader::new(flood.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "flooding");
    lab.children.push(flood);
    std::thread::sleep(Duration::from_secs(3));
    let log_before = std::fs::metadata(&log_path).unwrap().len();
    // The member comes while the flood goes on, connects, and a new record crosses.
    lab.serve(1, &b);
    wait_until("South to connect to North through the flood", || {
        cli(&b, &["peers"])["connected"].as_array().is_some_and(|p| !p.is_empty())
    });
    let start = Instant::now();
    cli(&b, &["add", "item", "name=Insulin", "unit=pen"]);
    wait_until("South's record on North", || items(&a) == ["Insulin"]);
    let synced = start.elapsed();
    eprintln!("record synced through the flood in {synced:?}");
    assert!(synced < Duration::from_secs(5), "took {synced:?}");
    // Half a minute of flood: the log grows by a few lines a minute, not a line a connection
    // (under a megabyte in ten minutes).
    std::thread::sleep(Duration::from_secs(30));
    let grown = std::fs::metadata(&log_path).unwrap().len() - log_before;
    eprintln!("North's log grew {grown} bytes in 30 s of flood");
    assert!(grown < 40_000, "the log grew {grown} bytes in 30 s");
    cli(&a, &["add", "item", "name=Water", "unit=bottle"]);
    wait_until("North's record on South", || items(&b) == ["Insulin", "Water"]);
}

/// North – Central – South on two networks: North and South never share one. Central, an admin
/// that North made, invites South from its running hub; South knows every member from its
/// welcome, finds Central by mDNS, and changes cross the line both ways, also after Central was
/// cut off from both networks while both ends wrote.
#[test]
fn a_line_of_hubs_joined_through_an_admin_who_is_not_the_founder() {
    must_be_root();
    let dir = tempfile::tempdir().unwrap();
    let stores: Vec<PathBuf> =
        ["north", "central", "south"].iter().map(|n| dir.path().join(format!("{n}.aidmesh"))).collect();
    let (a, b, c) = (&stores[0], &stores[1], &stores[2]);
    cli(a, &["init", "--name", "North"]);
    cli(b, &["init", "--name", "Central"]);
    cli(c, &["init", "--name", "South"]);
    let key = cli(b, &["identity"])["public_key"].as_str().unwrap().to_string();
    // Authority belongs to people: North's coordinator admits Central's hub and makes Central's
    // coordinator an admin, by the key they made at Central.
    let central = cli(b, &["person", "list"])["acting"]["key"].as_str().unwrap().to_string();
    let code = cli(a, &["admit", &key, "--name", "Central"])["founder_code"].as_str().unwrap().to_string();
    cli(b, &["adopt-founder", &code]);
    cli(a, &["person", "add", &central, "--name", "central", "--admin"]);
    let mut lab = Lab::networks(3, &[&[0, 1], &[1, 2]]);
    lab.serve_on(0, a, "0.0.0.0:7433", "eth0", Stdio::null());
    lab.serve_on(1, b, "0.0.0.0:7433", "eth0,eth1", Stdio::null());
    wait_until("Central to learn from North that its coordinator is an admin", || {
        cli(b, &["person", "list"])["people"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["key"] == central.as_str() && p["admin"] == true)
    });
    // Central's address on South's network (its eth1).
    let central_south = lab.hosts[1].1.replace("10.213.", "10.214.");
    let (mut inviter, mut lines, invite) = common::invite(
        b,
        &["--listen", &format!("{central_south}:0"), "--advertise", &central_south, "--minutes", "5"],
    );
    let (joiner, mut jlines) = common::join(c, &invite, "South", Some(&lab.hosts[2].0));
    assert_eq!(
        common::line_with(&mut jlines, "Confirmation code:"),
        common::line_with(&mut lines, "Confirmation code:")
    );
    use std::io::Write as _;
    inviter.stdin.take().unwrap().write_all(b"y\n").unwrap();
    let o = inviter.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = joiner.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    lab.serve_on(2, c, "0.0.0.0:7433", "eth0", Stdio::null());
    let start = Instant::now();
    cli(a, &["add", "item", "name=From North", "unit=box"]);
    wait_until("North's item on South, through Central", || items(c) == ["From North"]);
    eprintln!("North to South through Central: {:?} after South started", start.elapsed());
    cli(c, &["add", "item", "name=From South", "unit=box"]);
    wait_until("South's item on North", || items(a) == ["From North", "From South"]);
    // Central is cut off from both networks; both ends write; Central comes back.
    lab.link_in(0, 1, false);
    lab.link_in(1, 1, false);
    cli(a, &["add", "item", "name=North alone", "unit=box"]);
    cli(c, &["add", "item", "name=South alone", "unit=box"]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(!items(c).contains(&"North alone".to_string()), "South cannot hear North without Central");
    lab.link_in(0, 1, true);
    lab.link_in(1, 1, true);
    let healed = Instant::now();
    let all = ["From North", "From South", "North alone", "South alone"];
    for s in &stores {
        wait_until("the three to converge", || items(s) == all);
    }
    eprintln!("all three converged {:?} after Central's links came back", healed.elapsed());
}
