//! Two hubs at different sites on a bad link: every path between them crosses a lossy proxy of
//! the test's own (`common::lossy`, since this machine's kernel has no netem) in a host in the
//! middle of the lab's internet. The hub at the hall is reached directly through the proxy's
//! UDP side: round trips of 2 s, 30 % of datagrams lost each way. The relay is reached through
//! its TCP side: 1 s each way on each hub's leg (4 s between the hubs through the relay), no
//! loss. Both go down for 1.5 s every 6 s or so, and every fourth time the TCP connections to
//! the relay are cut. While both hubs write, sync still converges, every record made on either
//! side reaches the other, a good part of it over the lossy UDP path, and both stores are
//! sound afterwards.
//! Real hubs, real QUIC, the real `iroh-relay` server, in network namespaces (root).

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aidmesh_hub::model::Kind;
use aidmesh_hub::Hub;
use aidmesh_internet::InternetConfig;
use aidmesh_mesh::net::Mesh;
use common::lossy::{Conditions, Link};
use common::netns::{eventually, in_namespace, serve_in, Lab, MidRelay};
use common::{add_item, join, key_of, new_hub};
use serde_json::json;

/// The port the hall's hub listens at, behind its router (which lets any UDP port through to it).
const HALL_PORT: u16 = 7500;

fn items(mesh: &Mesh<Hub>) -> BTreeSet<String> {
    mesh.with_hub(|h| h.list(Kind::Item, 1_000, 0).unwrap().into_iter().map(|r| r.id().to_string()).collect())
}

#[test]
fn hubs_on_a_lossy_link_that_keeps_dropping_converge_and_stay_sound() {
    let lab = Lab::new();
    lab.cut_between_sites(true);
    let dir = tempfile::tempdir().unwrap();
    // The relay's certificate names the proxy's address: hubs reach the relay only through it.
    let relay = MidRelay::start(&lab);
    let (root, allow, relay_addr, mid_ip) = (relay.root.clone(), relay.allow.clone(), relay.addr, relay.mid);

    // The bad link, in the middle: to the relay over TCP, to the hall's hub over UDP.
    let link = Link::new(Conditions { loss: 0.3, one_way: Duration::from_secs(1) }, 7);
    let hall_public = SocketAddr::new(IpAddr::V4(lab.public(2)), HALL_PORT);
    let (proxy_tx, proxy_rx) = mpsc::channel();
    let (stop_proxy, proxy_stop) = tokio::sync::oneshot::channel();
    let on_path = link.clone();
    let proxy = in_namespace(
        lab.ns("mid"),
        move || {
            Box::pin(async move {
                let (tcp, t1) = on_path.tcp(SocketAddr::new(mid_ip, 0), relay_addr).await;
                let (udp, t2) = on_path.udp(SocketAddr::new(mid_ip, 0), hall_public).await;
                let t3 = on_path.flap(Duration::from_secs(6), Duration::from_millis(1_500), 4);
                proxy_tx.send((tcp, udp)).unwrap();
                (t1, t2, t3)
            })
        },
        proxy_stop,
    );
    let (tcp_front, udp_front) = proxy_rx.recv_timeout(Duration::from_secs(30)).expect("the proxy starts");
    let url = format!("https://{tcp_front}/");

    // The hall has a history; the gate a little; both keep writing on the bad link.
    let (mut a, mut b) = (new_hub(dir.path(), "Hall", 1), new_hub(dir.path(), "Gate", 2));
    a.set_relays(std::slice::from_ref(&url)).unwrap();
    join(&mut a, &mut b);
    allow.0.write().unwrap().extend([key_of(&a), key_of(&b)]);
    for (hub, n) in [(&mut a, 60), (&mut b, 15)] {
        for i in 0..n {
            let fields = json!({"name": format!("before {i}"), "unit": "box"});
            hub.add(Kind::Item, fields.as_object().unwrap().clone()).unwrap();
        }
    }
    let a_key = a.identity().public().to_bytes();
    let cfg = |own: Vec<String>, bind: Option<SocketAddr>, direct: Vec<([u8; 32], SocketAddr)>| InternetConfig {
        relays: own,
        relay_roots: vec![root.clone()],
        bind,
        direct: direct.into_iter().map(|(k, a)| (k, vec![a])).collect(),
    };
    let (stop_a, a_stop) = tokio::sync::oneshot::channel();
    let (stop_b, b_stop) = tokio::sync::oneshot::channel();
    let hall_bind = Some(SocketAddr::from(([0, 0, 0, 0], HALL_PORT)));
    let (a_mesh, a_thread) = serve_in(lab.ns("ha"), a, cfg(Vec::new(), hall_bind, Vec::new()), a_stop);
    let (b_mesh, b_thread) = serve_in(lab.ns("hb"), b, cfg(vec![url.clone()], None, vec![(a_key, udp_front)]), b_stop);

    let started = Instant::now();
    for i in 0..10 {
        add_item(&a_mesh, &format!("hall {i}"));
        add_item(&b_mesh, &format!("gate {i}"));
        std::thread::sleep(Duration::from_secs(3));
    }
    // How far each hub got, every 10 s (in the output of a failing run): a slow link shows
    // both counts creeping up, a stuck session one count standing still.
    let mut said = Instant::now();
    let converged = eventually(Duration::from_secs(300), || {
        let (x, y) = (items(&a_mesh), items(&b_mesh));
        if said.elapsed() >= Duration::from_secs(10) {
            said = Instant::now();
            eprintln!("{:?} after the first write: hall {} items, gate {}", started.elapsed(), x.len(), y.len());
        }
        x.len() == 60 + 15 + 20 && x == y
    });
    let stats = link.stats();
    // What each hub saw of the other, to tell a slow link from a stuck session.
    let seen = |mesh: &Mesh<Hub>| format!("{} items, peers {:?}", items(mesh).len(), mesh.peers());
    assert!(
        converged,
        "not converged after {:?} (of 95 items): hall {}; gate {}; the link: {stats:?}",
        started.elapsed(),
        seen(&a_mesh),
        seen(&b_mesh)
    );
    eprintln!("converged {:?} after the first write; the link: {stats:?}", started.elapsed());
    assert!(stats.datagrams_lost > 0 && stats.outages > 0, "the link was bad: {stats:?}");
    // Not only the relay: the direct path, lossy as it is, carried sync too.
    assert!(stats.udp_bytes > 20_000, "the lossy UDP path carried {} bytes", stats.udp_bytes);

    // Nothing was corrupted: every document of both stores loads whole.
    for mesh in [&a_mesh, &b_mesh] {
        let repairs = mesh.with_hub(|h| h.repair()).unwrap();
        assert!(repairs.is_empty(), "{repairs:?}");
    }

    for stop in [stop_a, stop_b, stop_proxy] {
        let _ = stop.send(());
    }
    for t in [a_thread, b_thread, proxy] {
        t.join().unwrap();
    }
}
