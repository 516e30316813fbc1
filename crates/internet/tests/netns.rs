//! Two hubs at different sites, each behind its own NAT (nftables masquerade, as a phone's
//! hotspot or a home router does), and the coalition's relay on the "internet" between them: all
//! in Linux network namespaces this test creates, so nothing touches the machine's own network.
//! First the routers drop every packet between the two sites, so the hubs can meet only through
//! the relay; then the path opens, and the connection moves to a direct path (hole punching).
//! Real hubs, real QUIC, the real `iroh-relay` server. Needs root, iproute2 and nftables (`cargo
//! xtask test` installs them and runs as root in CI).

mod common;

use std::net::IpAddr;

use std::time::Duration;

use aidmesh_hub::Hub;
use aidmesh_mesh::net::{Mesh, Reach};
use common::netns::{eventually, relay_in, serve_in, Lab};
use common::{add_item, holds, join, key_of, new_hub, relay_certificate, through_relays, Allowlist};

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
    let (stop_relay, relay_stop) = tokio::sync::oneshot::channel();
    // With QUIC address discovery: hole punching needs it.
    let (https, relay) = relay_in(lab.ns("relay"), relay_ip, tls, allow.clone(), true, relay_stop);
    let url = format!("https://{https}/");

    let (mut a, mut b) = (new_hub(dir.path(), "North", 1), new_hub(dir.path(), "South", 2));
    a.set_relays(std::slice::from_ref(&url)).unwrap();
    join(&mut a, &mut b);
    allow.0.write().unwrap().extend([key_of(&a), key_of(&b)]);
    let (stop_a, a_stop) = tokio::sync::oneshot::channel();
    let (stop_b, b_stop) = tokio::sync::oneshot::channel();
    let (a_mesh, a_thread) = serve_in(lab.ns("ha"), a, through_relays(Vec::new(), &root), a_stop);
    let (b_mesh, b_thread) = serve_in(lab.ns("hb"), b, through_relays(vec![url.clone()], &root), b_stop);

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
