//! Real mDNS discovery between hubs in Linux network namespaces that this test creates: three
//! hosts and an outsider on a bridge that lives in a fourth namespace, so nothing touches the
//! machine's own network. Needs root and iproute2 (`cargo xtask test` runs as root in CI).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_aidmesh");

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
    fn new(n: usize) -> Lab {
        // Labs of one test process run in parallel: each has its own names.
        static LABS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let lab = LABS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let id = (std::process::id() % 1_000) * 10 + lab % 10;
        let subnet = 100 + (id % 150);
        let bridge = format!("amb{id}");
        ip(&["netns", "add", &bridge]);
        ip(&["-n", &bridge, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &bridge, "link", "set", "br0", "up"]);
        let mut hosts = Vec::new();
        for i in 0..n {
            let ns = format!("amh{id}x{i}");
            ip(&["netns", "add", &ns]);
            let veth = format!("v{i}");
            ip(&["-n", &bridge, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns]);
            ip(&["-n", &bridge, "link", "set", &veth, "master", "br0"]);
            ip(&["-n", &bridge, "link", "set", &veth, "up"]);
            let addr = format!("10.213.{subnet}.{}", i + 1);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&["-n", &ns, "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "multicast", "on"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            hosts.push((ns, addr));
        }
        Lab { bridge, hosts, children: Vec::new() }
    }

    /// Cuts or restores host `i`'s link to the bridge.
    fn link(&self, i: usize, up: bool) {
        ip(&["-n", &self.bridge, "link", "set", &format!("v{i}"), if up { "up" } else { "down" }]);
    }

    /// Starts `aidmesh serve` in host `i`'s namespace, discovery limited to its eth0.
    fn serve(&mut self, i: usize, store: &PathBuf) -> usize {
        self.serve_logged(i, store, Stdio::null())
    }

    /// The same, with its log (at info level) going to `log`.
    fn serve_logged(&mut self, i: usize, store: &PathBuf, log: impl Into<Stdio>) -> usize {
        let (ns, addr) = &self.hosts[i];
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, BIN, "--store"])
            .arg(store)
            .args(["serve", "--listen", &format!("{addr}:7433"), "--mdns-interface", "eth0"])
            .env("AIDMESH_PASSPHRASE", "pw")
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

fn cli(store: &PathBuf, args: &[&str]) -> serde_json::Value {
    let o = Command::new(BIN)
        .arg("--store")
        .arg(store)
        .arg("--json")
        .args(args)
        .env("AIDMESH_PASSPHRASE", "pw")
        .output()
        .unwrap();
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
}

fn items(store: &PathBuf) -> Vec<String> {
    let mut v: Vec<String> = cli(store, &["list", "item", "--limit", "1000"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
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
    let code = cli(&stores[0], &["identity"])["founder_code"].as_str().unwrap().to_string();
    for s in &stores[1..] {
        cli(s, &["adopt-founder", &code]);
    }
    // Hubs 1 and 2 are admitted; hub 3 knows the founder (so it recognises the tag) but is not.
    for s in &stores[1..3] {
        let key = cli(s, &["identity"])["public_key"].as_str().unwrap().to_string();
        cli(&stores[0], &["admit", &key, "--name", "member"]);
    }
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
    let code = cli(&a, &["identity"])["founder_code"].as_str().unwrap().to_string();
    cli(&b, &["adopt-founder", &code]);
    let key = cli(&b, &["identity"])["public_key"].as_str().unwrap().to_string();
    cli(&a, &["admit", &key, "--name", "South"]);
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
