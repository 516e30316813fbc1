//! Hubs with no relay at all find each other through the coalition: each says where it can
//! be reached, signed, and the word travels with sync. Two hubs that were each given only a
//! third hub's address end up syncing with each other directly, and a hub started again with
//! no address at all reaches the others from what it kept. Real hubs, real stores, real QUIC
//! on loopback.

mod common;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use aidmesh_hub::{Driver, Hub};
use aidmesh_internet::{Internet, InternetConfig};
use aidmesh_mesh::net::{Mesh, Reach};
use aidmesh_mesh::policy::{neighbours, DIALS};
use aidmesh_mesh::HubId;
use common::{add_item, holds, join, new_hub, soon};

/// No relay; on loopback; the given members' direct addresses.
fn config(direct: &[(&aidmesh_mesh::Identity, Vec<SocketAddr>)]) -> InternetConfig {
    InternetConfig {
        bind: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
        direct: direct.iter().map(|(id, addrs)| (id.public().to_bytes(), addrs.clone())).collect(),
        ..InternetConfig::default()
    }
}

fn direct_peer(mesh: &Mesh<Hub>, peer: &aidmesh_mesh::Identity) -> bool {
    let id = peer.id().to_string();
    mesh.peers().iter().any(|p| p.hub == id && p.reach == Reach::Direct)
}

#[test]
fn hubs_with_no_relay_find_each_other_through_the_coalition() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (mut a, mut b, mut c) =
            (new_hub(dir.path(), "Hall", 1), new_hub(dir.path(), "Gate", 2), new_hub(dir.path(), "Kitchen", 3));
        join(&mut a, &mut b);
        join(&mut a, &mut c);
        let (a_id, b_id, c_id) = (a.identity(), b.identity(), c.identity());
        let a_mesh = Arc::new(Mesh::new(a, &a_id, [1; 32]).unwrap());
        let b_mesh = Arc::new(Mesh::new(b, &b_id, [2; 32]).unwrap());
        let c_mesh = Arc::new(Mesh::new(c, &c_id, [3; 32]).unwrap());
        // The hall's hub has a fixed address; the gate and the kitchen are each given only it.
        let a_net = Internet::start(a_mesh.clone(), &a_id, config(&[])).await.unwrap();
        let at_a: Vec<SocketAddr> = a_net.addr().ip_addrs().copied().collect();
        let b_net = Internet::start(b_mesh.clone(), &b_id, config(&[(&a_id, at_a.clone())])).await.unwrap();
        let c_net = Internet::start(c_mesh.clone(), &c_id, config(&[(&a_id, at_a)])).await.unwrap();

        // The gate and the kitchen learn each other's addresses through the hall, and one of
        // them dials the other (they are neighbours on the coalition's ring).
        let met = soon(Duration::from_secs(60), || direct_peer(&b_mesh, &c_id) && direct_peer(&c_mesh, &b_id));
        assert!(met.await, "B and C connect directly: B sees {:?}", b_mesh.peers());
        let at_c: Vec<SocketAddr> = c_net.addr().ip_addrs().copied().collect();
        let known = b_mesh.with_hub(|h| h.whereabouts_of(&c_id.id())).unwrap().expect("B holds C's word");
        assert_eq!((known.relay, known.direct), (None, at_c), "as C said it");
        let soup = add_item(&c_mesh, "Soup");
        assert!(soon(Duration::from_secs(10), || holds(&b_mesh, &soup)).await, "C's edit reaches B");

        // The gate's hub starts its internet side again with no address given at all: what it
        // kept of the others' whereabouts is enough to reach both.
        b_net.close().await;
        let gone = soon(Duration::from_secs(60), || a_mesh.peers().len() == 1 && c_mesh.peers().len() == 1);
        assert!(gone.await, "A and C see B go: {:?} {:?}", a_mesh.peers(), c_mesh.peers());
        let b_net = Internet::start(b_mesh.clone(), &b_id, config(&[])).await.unwrap();
        let back = soon(Duration::from_secs(60), || direct_peer(&b_mesh, &a_id) && direct_peer(&b_mesh, &c_id));
        assert!(back.await, "B reaches A and C again from what it kept: {:?}", b_mesh.peers());
        let tea = add_item(&b_mesh, "Tea");
        assert!(soon(Duration::from_secs(10), || holds(&a_mesh, &tea) && holds(&c_mesh, &tea)).await);
        drop((a_net, b_net, c_net));
    });
}

/// A member's word of where it is cannot send another hub to a server the coalition did not
/// name: a home relay of its own is not dialled; one of the coalition's relays goes first.
#[test]
fn a_members_own_relay_is_never_dialled_and_a_named_one_goes_first() {
    use aidmesh_internet::dial_addrs;
    use iroh::{RelayUrl, TransportAddr};
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut c) = (new_hub(dir.path(), "Hall", 1), new_hub(dir.path(), "Kitchen", 3));
    join(&mut a, &mut c);
    c.offer_authority(&a.authority_entries().unwrap(), "test").unwrap();
    let named: Vec<RelayUrl> =
        ["https://one.example.org/", "https://two.example.org/"].iter().map(|u| u.parse().unwrap()).collect();
    let at: SocketAddr = "192.0.2.7:4433".parse().unwrap();
    let given: SocketAddr = "192.0.2.8:4433".parse().unwrap();
    let c_id = c.identity().id();
    let a_id = a.identity();
    let a_mesh = Mesh::new(a, &a_id, [1; 32]).unwrap();
    let mut hear = |relay: &str| {
        assert_eq!(c.say_whereabouts(Some(relay.into()), &[at]).unwrap(), Some(true));
        let bundle = c.export_bundle(true, &[]).unwrap().bytes;
        a_mesh.with_hub(|h| h.import_bundle(bundle)).unwrap();
        dial_addrs(&a_mesh, &c_id, &named, &[given], &[])
    };
    let relay = |u: &RelayUrl| TransportAddr::Relay(u.clone());
    let ip = TransportAddr::Ip;
    assert_eq!(hear("https://evil.example/"), [relay(&named[0]), relay(&named[1]), ip(at), ip(given)]);
    assert_eq!(hear("https://two.example.org/"), [relay(&named[1]), relay(&named[0]), ip(at), ip(given)]);
    // Said addresses on the dialler's own machine or link are not dialled from elsewhere.
    let inward: [SocketAddr; 3] = ["127.0.0.1:53".parse().unwrap(), "169.254.169.254:80".parse().unwrap(), at];
    assert_eq!(c.say_whereabouts(None, &inward).unwrap(), Some(true));
    let bundle = c.export_bundle(true, &[]).unwrap().bytes;
    a_mesh.with_hub(|h| h.import_bundle(bundle)).unwrap();
    assert_eq!(dial_addrs(&a_mesh, &c_id, &[], &[], &["192.0.2.1:4433".parse().unwrap()]), [ip(at)]);
    let at_own_address = dial_addrs(&a_mesh, &c_id, &[], &[], &[SocketAddr::new(at.ip(), 9)]);
    assert!(at_own_address.is_empty(), "an address of the dialler's own is not dialled: {at_own_address:?}");
    let on_loopback = dial_addrs(&a_mesh, &c_id, &[], &[], &["127.0.0.1:4433".parse().unwrap()]);
    assert_eq!(on_loopback, [ip(at), ip(inward[0])], "a hub on loopback itself (tests) dials it");
}

/// Twelve real hubs, one at a fixed address that all the others are given, and no relay: each
/// dials its neighbours on the coalition's ring at the addresses they said, so the coalition
/// forms the overlay (a few sessions a hub, not a full mesh), and every hub's record reaches
/// every other. The given address is a way in: once a hub has reached all its neighbours for
/// `policy::WAY_IN_HOLD_MS`, it lets that session go (unless the hub there is a neighbour too),
/// so the hub whose address every hub was given keeps a few sessions too, not one with each.
#[test]
fn a_dozen_hubs_form_the_overlay_from_one_address() {
    const HUBS: usize = 12;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut hubs: Vec<Hub> = (0..HUBS).map(|i| new_hub(dir.path(), &format!("Site {i}"), i as u8 + 1)).collect();
        let (first, rest) = hubs.split_first_mut().unwrap();
        for h in rest.iter_mut() {
            join(first, h);
        }
        let ids: Vec<aidmesh_mesh::Identity> = hubs.iter().map(|h| h.identity()).collect();
        let meshes: Vec<Arc<Mesh<Hub>>> =
            hubs.into_iter().zip(&ids).map(|(h, id)| Arc::new(Mesh::new(h, id, [7; 32]).unwrap())).collect();
        let hall = Internet::start(meshes[0].clone(), &ids[0], config(&[])).await.unwrap();
        let at_hall: Vec<SocketAddr> = hall.addr().ip_addrs().copied().collect();
        let mut nets = vec![hall];
        for (mesh, id) in meshes.iter().zip(&ids).skip(1) {
            nets.push(Internet::start(mesh.clone(), id, config(&[(&ids[0], at_hall.clone())])).await.unwrap());
        }
        let records: Vec<String> = meshes.iter().enumerate().map(|(i, m)| add_item(m, &format!("From {i}"))).collect();
        let everywhere = || meshes.iter().all(|m| records.iter().all(|r| holds(m, r)));
        assert!(soon(Duration::from_secs(120), everywhere).await, "every record reaches every hub");
        // Each hub reaches its neighbours on the ring directly, at the addresses they said
        // (only the hall's was given), and keeps to them and those that dial it.
        let members: BTreeSet<HubId> = ids.iter().map(|i| i.id()).collect();
        let linked = |i: usize| {
            let peers: BTreeSet<String> =
                meshes[i].peers().iter().filter(|p| p.reach == Reach::Direct).map(|p| p.hub.clone()).collect();
            neighbours(&ids[i].id(), &members, DIALS).iter().all(|n| peers.contains(&n.to_string()))
        };
        let most = 2 * DIALS;
        let bounded = || meshes.iter().all(|m| m.peers().len() <= most);
        let formed = soon(Duration::from_secs(60), || (0..HUBS).all(linked) && bounded()).await;
        let sessions: Vec<usize> = meshes.iter().map(|m| m.peers().len()).collect();
        assert!(formed, "every hub reaches its neighbours, with at most {most} sessions: {sessions:?}");
        let late = add_item(&meshes[HUBS - 1], "Late");
        assert!(soon(Duration::from_secs(20), || meshes.iter().all(|m| holds(m, &late))).await, "over the overlay");
        drop(nets);
    });
}
