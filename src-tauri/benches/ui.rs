//! The desktop app's speed with the hub-core coalition (842k records, 100k items; generate it
//! first with `cargo bench -p aidmesh-hub --bench hub`):
//!
//!     cargo bench -p aidmesh-app --bench ui
//!
//! Prints, from the real app under Xvfb driven over WebDriver: launch to the unlock screen,
//! unlock to a usable overview, inventory search from keystroke to updated list (measured in the
//! page), and a peer's change from the moment it is written on the peer to the moment it shows
//! on screen (a small two-hub coalition: syncing the large one to a new peer takes minutes).

#[path = "../tests/driver/mod.rs"]
mod driver;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use driver::{App, Cli, Display, PASS};
use serde_json::json;

fn pct(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("ui bench: run with `cargo bench -p aidmesh-app --bench ui`");
        return;
    }
    // The peer in the last measure is the `aidmesh` command of this same build.
    let st = std::process::Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "aidmesh-cli"])
        .status()
        .expect("cargo runs");
    assert!(st.success(), "cannot build the aidmesh command");
    let store = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data/coalition-1.aidmesh");
    assert!(store.exists(), "generate the coalition first: cargo bench -p aidmesh-hub --bench hub");
    let display = Display::start();
    let data = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let app = App::launch(
        &display,
        &[
            ("AIDMESH_DATA_DIR", data.path().to_str().unwrap()),
            ("AIDMESH_STORE", store.to_str().unwrap()),
            ("AIDMESH_LISTEN", "127.0.0.1:0"),
            ("AIDMESH_NO_DISCOVERY", "1"),
        ],
    );
    app.find("#s-pass");
    let to_unlock = t.elapsed();
    app.fill("#s-handle", "bench");
    app.fill("#s-pass", "bench");
    let t = Instant::now();
    app.click("form button[type=submit]");
    app.wait_text("section[aria-labelledby=ov-short] ul", 30, |s| !s.is_empty());
    let to_overview = t.elapsed();
    println!("launch to unlock screen: {:.2} s", to_unlock.as_secs_f64());
    println!("unlock to usable overview (842k records): {:.2} s", to_overview.as_secs_f64());

    // Search: in the page, from setting the field (a keystroke) to the list showing the answer.
    app.click("nav button[data-screen=inventory]");
    app.find("#inv-search");
    std::thread::sleep(Duration::from_millis(500));
    let mut times = Vec::new();
    for q in
        ["water", "blank", "rice", "soap", "tent", "torch", "milk", "mask", "glove", "bread", "wat", "bla", "ri", "so"]
    {
        let v = app.js_async(
            "const [q, done] = [arguments[0], arguments[arguments.length - 1]];
             const input = document.querySelector('#inv-search');
             const rows = () => [...document.querySelectorAll('table tbody tr td:first-child')].map(t => t.innerText.toLowerCase());
             input.value = ''; input.dispatchEvent(new Event('input', {bubbles: true}));
             setTimeout(() => {
               const t0 = performance.now();
               input.value = q; input.dispatchEvent(new Event('input', {bubbles: true}));
               const poll = () => {
                 const r = rows();
                 if (r.length && r.every(x => x.includes(q) || x.includes('nothing'))) done(performance.now() - t0);
                 else if (performance.now() - t0 > 5000) done(-1);
                 else requestAnimationFrame(poll);
               };
               requestAnimationFrame(poll);
             }, 300);",
        );
        let _ = json!(q);
        let ms = v.as_f64().unwrap_or(-1.0);
        assert!(ms >= 0.0, "search for {q:?} never showed its answer");
        times.push(ms);
    }
    println!(
        "inventory search, keystroke to list ({} queries): p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        times.len(),
        pct(times.clone(), 0.5),
        pct(times.clone(), 0.95),
        pct(times, 1.0)
    );
    drop(app);

    // A peer's change on screen: two small hubs, South writes, North's screen shows it.
    let dir = tempfile::tempdir().unwrap();
    let north = Cli { store: dir.path().join("north.aidmesh"), handle: "kestrel".into() };
    let south = Cli { store: dir.path().join("south.aidmesh"), handle: "rook".into() };
    north.run(&["init", "--name", "North"]);
    south.run(&["init", "--name", "South"]);
    south.run(&["adopt-founder", north.run(&["identity"])["founder_code"].as_str().unwrap()]);
    north.run(&["admit", south.run(&["identity"])["public_key"].as_str().unwrap(), "--name", "South"]);
    let (_south, addr) = south.serve();
    let app = App::launch(
        &display,
        &[
            ("AIDMESH_DATA_DIR", dir.path().to_str().unwrap()),
            ("AIDMESH_STORE", north.store.to_str().unwrap()),
            ("AIDMESH_LISTEN", "127.0.0.1:0"),
            ("AIDMESH_NO_DISCOVERY", "1"),
        ],
    );
    app.fill("#s-handle", "kestrel");
    app.fill("#s-pass", PASS);
    app.click("form button[type=submit]");
    app.click("nav button[data-screen=mesh]");
    app.fill("#me-addr", &addr);
    app.click("#me-connect");
    app.wait_text("main", 20, |t| t.contains("last sync"));
    app.click("nav button[data-screen=inventory]");
    let mut lat = Vec::new();
    for n in 0..10 {
        let name = format!("Peer item {n}");
        let t = Instant::now();
        south.run(&["add", "item", &format!("name={name}"), "unit=box"]);
        app.wait_text("table", 20, |s| s.contains(&name));
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "peer's change on screen, from `aidmesh add` on the peer (includes its 0.5 s pick-up tick): p50 {:.0} ms, max {:.0} ms",
        pct(lat.clone(), 0.5),
        pct(lat, 1.0)
    );
}
