//! What the command's integration tests share: running `aidmesh`, and hubs serving on loopback.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_aidmesh");

/// `aidmesh --store STORE ARGS`, with the tests' passphrase.
pub fn cmd(store: &Path, args: &[&str]) -> Output {
    Command::new(BIN).arg("--store").arg(store).args(args).env("AIDMESH_PASSPHRASE", "pw for tests").output().unwrap()
}

/// The same with `--json`; it must succeed. Commands that print no JSON give `Null`.
pub fn ok(store: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = cmd(store, &all);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
}

/// A running `aidmesh serve` and the address it listens on; killed when dropped.
pub struct Serve(pub Child, pub String);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `aidmesh serve` on `listen` (loopback), no discovery, dialling `peers`.
pub fn serve(store: &Path, listen: &str, peers: &[&str]) -> Serve {
    let args: Vec<String> = peers.iter().flat_map(|p| ["--peer".to_string(), p.to_string()]).collect();
    serve_with(store, listen, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// `aidmesh serve` on `listen` (loopback), no discovery, with further `args`.
pub fn serve_with(store: &Path, listen: &str, args: &[&str]) -> Serve {
    let mut c = Command::new(BIN);
    c.arg("--store").arg(store).args(["serve", "--listen", listen, "--no-discovery"]).args(args);
    let mut child =
        c.env("AIDMESH_PASSPHRASE", "pw for tests").stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(line.starts_with("serving") && addr.starts_with("127.0.0.1:"), "{line}");
    Serve(child, addr)
}

/// Stops a hub as a coordinator would (SIGTERM) and waits for it to end.
pub fn stop(mut s: Serve) {
    Command::new("kill").arg(s.0.id().to_string()).status().unwrap();
    s.0.wait().unwrap();
}

/// Waits for `f`, failing after `limit`; returns how long it took.
pub fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// The names of the items a store holds, sorted.
pub fn item_names(store: &Path) -> Vec<String> {
    let mut v: Vec<String> = ok(store, &["list", "item", "--limit", "100000"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap_or_default().to_string())
        .collect();
    v.sort();
    v
}

/// A free TCP port on loopback, so that a hub restarts where its peers look for it.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Output lines of a running command.
pub type Lines = std::io::Lines<BufReader<std::process::ChildStdout>>;

/// `aidmesh invite ARGS` on `store`, answering its prompt through the returned process's stdin;
/// returns the process, its further output lines and the invite code.
pub fn invite(store: &Path, args: &[&str]) -> (Child, Lines, String) {
    let mut child = Command::new(BIN)
        .arg("--store")
        .arg(store)
        .arg("invite")
        .args(args)
        .env("AIDMESH_PASSPHRASE", "pw for tests")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().starts_with("Invite code"));
    let code = lines.next().unwrap().unwrap();
    (child, lines, code)
}

/// `aidmesh join CODE --name NAME` on `store`, inside network namespace `netns` if given.
pub fn join(store: &Path, code: &str, name: &str, netns: Option<&str>) -> (Child, Lines) {
    let mut c = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, BIN]);
            c
        }
        None => Command::new(BIN),
    };
    let mut child = c
        .arg("--store")
        .arg(store)
        .args(["join", code, "--name", name])
        .env("AIDMESH_PASSPHRASE", "pw for tests")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// The rest of the first line starting with `prefix`.
pub fn line_with(lines: &mut impl Iterator<Item = std::io::Result<String>>, prefix: &str) -> String {
    for l in lines.by_ref() {
        let l = l.unwrap();
        if let Some(rest) = l.strip_prefix(prefix) {
            return rest.trim().to_string();
        }
    }
    panic!("no line starting with {prefix:?}");
}
