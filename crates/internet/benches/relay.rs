//! Two hubs behind their own NATs syncing through the coalition's relay, in network namespaces
//! (root): the sites cannot reach each other, so every byte goes through the relay. The relay
//! (the real `iroh-relay`) is reached through a TCP proxy that only counts (no loss, no delay),
//! so the bytes below are bytes on the relay's sockets: QUIC inside the relay protocol inside
//! TLS, both hubs' legs, relay pings and the hubs' probes of the relay included.
//!
//!     cargo bench -p aidmesh-internet --bench relay
//!
//! Phases, one run:
//! 1. Edits to a connected peer: the hall adds 50 items, 300 ms apart; latency from the hall's
//!    write returning to the gate's ingest of it committed (the gate's event), one clock.
//! 2. Heal: the gate goes offline; each hub adds 1,000 items; the gate comes back. Time from its
//!    restart until both hold all 2,000; the relay's socket bytes of one leg (both legs halved)
//!    against the sync stream the hall's connections carried meanwhile, both ways (deflated
//!    frames and their length prefixes: what the day's budget counts, `Hub::internet_used`),
//!    and against the 2,000 Automerge changes themselves, each encoded on its own (read from
//!    the hall's documents after the heal: what a heal must carry before compression).
//! 3. Where the rest goes: the same reconnect with nothing new and the same wait (the relay's,
//!    QUIC's and the hubs' handshakes, the summaries), then 30 s at rest, connected. The heal's
//!    bytes less the reconnect's are what carrying the changes cost.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aidmesh_hub::model::Kind;
use aidmesh_hub::{Driver, Event, Hub};
use aidmesh_mesh::net::Mesh;
use common::lossy::{Conditions, Link};
use common::netns::{eventually, in_namespace, serve_in, start_in, Lab, MidRelay};
use common::{add_item, join, key_of, new_hub, through_relays};
use serde_json::json;

const EDITS: usize = 50;
const APART: usize = 1_000;

fn count(mesh: &Mesh<Hub>) -> usize {
    mesh.with_hub(|h| h.list(Kind::Item, 100_000, 0).unwrap().len())
}

/// Every synced document of the hub, loaded as Automerge holds it.
fn docs(mesh: &Mesh<Hub>) -> Vec<(String, automerge::Automerge)> {
    let exported = mesh.with_hub(|h| h.export_docs()).unwrap();
    exported.into_iter().map(|d| (d.doc, automerge::Automerge::load(&d.bytes).unwrap())).collect()
}

/// The heads of every synced document.
fn heads(mesh: &Mesh<Hub>) -> BTreeMap<String, Vec<automerge::ChangeHash>> {
    docs(mesh).into_iter().map(|(id, d)| (id, d.get_heads())).collect()
}

/// How many changes the hub's documents hold beyond `before`, and their bytes, each as
/// Automerge encodes one change on its own (what a heal must carry, before compression).
fn change_bytes(mesh: &Mesh<Hub>, before: &BTreeMap<String, Vec<automerge::ChangeHash>>) -> (usize, usize) {
    let none = Vec::new();
    let mut out = (0, 0);
    for (id, d) in docs(mesh) {
        for c in d.get_changes(before.get(&id).unwrap_or(&none)) {
            out = (out.0 + 1, out.1 + c.raw_bytes().len());
        }
    }
    out
}

// The binaries' allocator, so that what is measured is what they run.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("relay bench: run with `cargo bench -p aidmesh-internet --bench relay` (as root)");
        return;
    }
    if !rustix::process::geteuid().is_root() {
        println!("relay bench: needs root (network namespaces); skipped");
        return;
    }
    let lab = Lab::new();
    lab.cut_between_sites(true);
    let dir = tempfile::tempdir().unwrap();
    let relay = MidRelay::start(&lab);
    let (root, allow, relay_addr, mid_ip) = (relay.root.clone(), relay.allow.clone(), relay.addr, relay.mid);
    // A link that only counts.
    let link = Link::new(Conditions { loss: 0.0, one_way: Duration::ZERO }, 1);
    let (front_tx, front_rx) = std::sync::mpsc::channel();
    let (stop_proxy, proxy_stop) = tokio::sync::oneshot::channel();
    let counting = link.clone();
    let proxy = in_namespace(
        lab.ns("mid"),
        move || {
            Box::pin(async move {
                let (front, task) = counting.tcp(SocketAddr::new(mid_ip, 0), relay_addr).await;
                front_tx.send(front).unwrap();
                [task]
            })
        },
        proxy_stop,
    );
    let url = format!("https://{}/", front_rx.recv_timeout(Duration::from_secs(30)).unwrap());

    let (mut a, mut b) = (new_hub(dir.path(), "Hall", 1), new_hub(dir.path(), "Gate", 2));
    a.set_relays(std::slice::from_ref(&url)).unwrap();
    join(&mut a, &mut b);
    allow.0.write().unwrap().extend([key_of(&a), key_of(&b)]);
    let arrived: Arc<Mutex<Vec<(String, Instant)>>> = Default::default();
    {
        let arrived = arrived.clone();
        b.subscribe(move |e| {
            if let Event::RecordsChanged { ids } = e {
                let t = Instant::now();
                arrived.lock().unwrap().extend(ids.iter().map(|i| (i.clone(), t)));
            }
        });
    }
    let (stop_a, a_stop) = tokio::sync::oneshot::channel();
    let (stop_b, b_stop) = tokio::sync::oneshot::channel();
    let (a_mesh, a_thread) = serve_in(lab.ns("ha"), a, through_relays(Vec::new(), &root), a_stop);
    let (b_mesh, b_thread) = serve_in(lab.ns("hb"), b, through_relays(vec![url.clone()], &root), b_stop);
    let first = add_item(&a_mesh, "first");
    assert!(eventually(Duration::from_secs(60), || b_mesh.with_hub(|h| h.get(&first).is_ok())), "connected");
    std::thread::sleep(Duration::from_secs(2));
    let reach = a_mesh.peers().first().map(|p| p.reach);

    // 1. Edits to a connected peer.
    let mut latencies = Vec::new();
    for i in 0..EDITS {
        let id = add_item(&a_mesh, &format!("edit {i}"));
        let written = Instant::now();
        let seen = || arrived.lock().unwrap().iter().find(|(x, _)| *x == id).map(|(_, t)| *t);
        assert!(eventually(Duration::from_secs(10), || seen().is_some()), "edit {i} arrives");
        latencies.push(seen().unwrap().saturating_duration_since(written));
        std::thread::sleep(Duration::from_millis(300));
    }
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    println!(
        "relayed edit to a connected peer ({reach:?}), {EDITS} edits: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(pick(0.5)),
        ms(pick(0.99)),
        ms(*latencies.last().unwrap())
    );

    // 2. Heal after 1,000 + 1,000 edits apart.
    let _ = stop_b.send(());
    b_thread.join().unwrap();
    assert!(eventually(Duration::from_secs(60), || a_mesh.peers().is_empty()), "the gate is gone");
    let before = count(&a_mesh);
    let heads_before = heads(&a_mesh);
    for (mesh, side) in [(&a_mesh, "hall"), (&b_mesh, "gate")] {
        mesh.with_hub(|h| {
            for i in 0..APART {
                let fields = json!({"name": format!("{side} apart {i}"), "unit": "box"});
                h.add(Kind::Item, fields.as_object().unwrap().clone()).unwrap();
            }
        });
    }
    // The day by the mesh's clock, which counts the use (the hubs' own clocks are set by hand).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let today = aidmesh_hub::model::Timestamp::from_millis(now.as_millis() as i64).date().to_string();
    let stream = || a_mesh.with_hub(|h| h.internet_used(&today).unwrap());
    let (bytes_before, stream_before) = (link.stats().tcp_bytes, stream());
    let started = Instant::now();
    let (stop_b, b_stop) = tokio::sync::oneshot::channel();
    let b_thread = start_in(lab.ns("hb"), b_mesh.clone(), through_relays(vec![url.clone()], &root), b_stop);
    let all = before + 2 * APART;
    assert!(
        eventually(Duration::from_secs(300), || count(&a_mesh) == all && count(&b_mesh) == all),
        "healed: hall {}, gate {} of {all}",
        count(&a_mesh),
        count(&b_mesh)
    );
    let took = started.elapsed();
    let (changed, changes) = change_bytes(&a_mesh, &heads_before);
    // The running hub keeps its count in the store every few seconds (`meter::KEEP_EVERY_MS`):
    // wait for that, and count the relay's bytes over the same span (a ping or two more).
    let keep = aidmesh_mesh::meter::KEEP_EVERY_MS as u64 + 1_000;
    std::thread::sleep(Duration::from_millis(keep));
    let carried = stream() - stream_before;
    let leg = (link.stats().tcp_bytes - bytes_before) / 2;
    println!(
        "heal after {APART} + {APART} edits apart, through the relay: {:.2} s; {leg} bytes on one leg of the relay's sockets, {carried} bytes of sync stream at the hall ({:.3}x), {changes} bytes of the {changed} Automerge changes themselves, one by one ({:.3}x)",
        took.as_secs_f64(),
        leg as f64 / carried as f64,
        leg as f64 / changes as f64
    );

    // 3. Where the rest goes: the same reconnect with nothing new (the relay's and QUIC's
    // handshakes, the hubs' own, the summaries, and the same wait), and the link at rest.
    let _ = stop_b.send(());
    b_thread.join().unwrap();
    assert!(eventually(Duration::from_secs(60), || a_mesh.peers().is_empty()), "the gate is gone again");
    let (bytes_before, stream_before) = (link.stats().tcp_bytes, stream());
    let (stop_b, b_stop) = tokio::sync::oneshot::channel();
    let b_thread = start_in(lab.ns("hb"), b_mesh.clone(), through_relays(vec![url.clone()], &root), b_stop);
    let synced = || a_mesh.peers().iter().any(|p| p.last_synced.is_some());
    assert!(eventually(Duration::from_secs(60), synced), "the gate is back");
    std::thread::sleep(Duration::from_millis(keep));
    let (fixed, fixed_stream) = ((link.stats().tcp_bytes - bytes_before) / 2, stream() - stream_before);
    let rest = Duration::from_secs(30);
    let bytes_before = link.stats().tcp_bytes;
    std::thread::sleep(rest);
    let idle = (link.stats().tcp_bytes - bytes_before) / 2;
    let moved = leg.saturating_sub(fixed);
    let moved_stream = carried.saturating_sub(fixed_stream);
    println!(
        "the same reconnect with nothing new: {fixed} bytes on one leg, {fixed_stream} bytes of sync stream; at rest, connected: {:.0} bytes a second on one leg",
        idle as f64 / rest.as_secs_f64()
    );
    println!(
        "so the heal's changes took {moved} bytes on one leg for {moved_stream} bytes of sync stream ({:.3}x) and {changes} bytes of changes ({:.3}x); the reconnect itself {fixed} bytes",
        moved as f64 / moved_stream as f64,
        moved as f64 / changes as f64
    );

    for stop in [stop_a, stop_b, stop_proxy] {
        let _ = stop.send(());
    }
    for t in [a_thread, b_thread, proxy] {
        t.join().unwrap();
    }
}
