//! Strangers crowding a hub's internet port over real QUIC: handshakes that begin and never
//! end, from many addresses, hold every slot an outsider can take, and a member that comes from
//! where a member came before still gets in; one from a new address waits until they are gone.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aidmesh_hub::Hub;
use aidmesh_internet::{Internet, InternetConfig, ALPN};
use aidmesh_mesh::net::Mesh;
use common::{add_item, holds, join, new_hub, soon};
use tokio::net::UdpSocket;

/// Addresses the strangers come from, and handshakes each begins (the hub's most per source).
const STRANGER_SOURCES: u8 = 8;
const PER_SOURCE: usize = 4;

fn direct_to(hub: &aidmesh_mesh::Identity, net: &Internet, bind: IpAddr) -> InternetConfig {
    InternetConfig {
        bind: Some(SocketAddr::new(bind, 0)),
        direct: [(hub.public().to_bytes(), net.addr().ip_addrs().copied().collect())].into_iter().collect(),
        ..InternetConfig::default()
    }
}

fn has_peer(mesh: &Mesh<Hub>, peer: &aidmesh_mesh::Identity) -> bool {
    let id = peer.id().to_string();
    mesh.peers().iter().any(|p| p.hub == id)
}

/// A stranger's way to the hub that lets its handshake begin and never end: the stranger's
/// packets go to the hub from `source` until the hub answers with anything but a retry (which
/// goes back, so the stranger proves its address as asked), and none after that. The hub then
/// holds the handshake until it gives up on it. Returns the address the stranger dials, and
/// whether the hub has answered.
async fn stalling_path(source: IpAddr, hub: SocketAddr) -> (SocketAddr, Arc<AtomicBool>) {
    let front = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let back = UdpSocket::bind((source, 0)).await.unwrap();
    back.connect(hub).await.unwrap();
    let at = front.local_addr().unwrap();
    let answered = Arc::new(AtomicBool::new(false));
    let seen = answered.clone();
    tokio::spawn(async move {
        let (mut up, mut down) = (vec![0u8; 65_536], vec![0u8; 65_536]);
        let mut stranger: Option<SocketAddr> = None;
        loop {
            tokio::select! {
                r = front.recv_from(&mut up) => {
                    let Ok((n, from)) = r else { return };
                    stranger = Some(from);
                    if !seen.load(Ordering::SeqCst) {
                        let _ = back.send(&up[..n]).await;
                    }
                }
                r = back.recv(&mut down) => {
                    let Ok(n) = r else { return };
                    // A long header whose type is Retry: 0b1111xxxx.
                    if n > 0 && down[0] & 0xf0 != 0xf0 {
                        seen.store(true, Ordering::SeqCst);
                    }
                    if let Some(to) = stranger {
                        let _ = front.send_to(&down[..n], to).await;
                    }
                }
            }
        }
    });
    (at, answered)
}

#[test]
fn strangers_crowding_the_internet_port_leave_room_for_members() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (mut hall, mut gate, mut kitchen) =
            (new_hub(dir.path(), "Hall", 1), new_hub(dir.path(), "Gate", 2), new_hub(dir.path(), "Kitchen", 3));
        join(&mut hall, &mut gate);
        join(&mut hall, &mut kitchen);
        let (hall_id, gate_id, kitchen_id) = (hall.identity(), gate.identity(), kitchen.identity());
        let hall_mesh = Arc::new(Mesh::new(hall, &hall_id, [1; 32]).unwrap());
        let gate_mesh = Arc::new(Mesh::new(gate, &gate_id, [2; 32]).unwrap());
        let kitchen_mesh = Arc::new(Mesh::new(kitchen, &kitchen_id, [3; 32]).unwrap());
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let elsewhere = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

        // The hall listens; the gate has reached it before, from the loopback address.
        let listen = InternetConfig { bind: Some(SocketAddr::new(loopback, 0)), ..InternetConfig::default() };
        let hall_net = Internet::start(hall_mesh.clone(), &hall_id, listen).await.unwrap();
        let hall_at: SocketAddr = hall_net.addr().ip_addrs().copied().next().expect("the hall's address");
        let gate_net =
            Internet::start(gate_mesh.clone(), &gate_id, direct_to(&hall_id, &hall_net, loopback)).await.unwrap();
        let water = add_item(&hall_mesh, "Water");
        assert!(soon(Duration::from_secs(20), || holds(&gate_mesh, &water)).await, "the gate syncs with the hall");
        gate_net.close().await;
        assert!(soon(Duration::from_secs(10), || !has_peer(&hall_mesh, &gate_id)).await, "the gate has gone");

        // Strangers from eight addresses each begin four handshakes with the hall, and never
        // finish them. Each holds its slot 10 s from when the hall took it, after `crowded`.
        let hall_key = iroh::EndpointId::from_bytes(&hall_id.public().to_bytes()).unwrap();
        let (mut strangers, mut answers) = (Vec::new(), Vec::new());
        for s in 0..STRANGER_SOURCES {
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 10 + s));
            for _ in 0..PER_SOURCE {
                let (via, answered) = stalling_path(source, hall_at).await;
                let endpoint = iroh::endpoint::Builder::empty()
                    .secret_key(iroh::SecretKey::from_bytes(&rand::random()))
                    .crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
                    .clear_ip_transports()
                    .bind_addr(SocketAddr::new(loopback, 0))
                    .unwrap()
                    .bind()
                    .await
                    .unwrap();
                strangers.push((endpoint, iroh::EndpointAddr::from_parts(hall_key, [iroh::TransportAddr::Ip(via)])));
                answers.push(answered);
            }
        }
        let crowded = std::time::Instant::now();
        let dials: Vec<_> = strangers
            .iter()
            .map(|(endpoint, to)| {
                let (endpoint, to) = (endpoint.clone(), to.clone());
                tokio::spawn(async move {
                    let _ = endpoint.connect(to, ALPN).await;
                })
            })
            .collect();
        let all_answered = || answers.iter().all(|a| a.load(Ordering::SeqCst));
        assert!(soon(Duration::from_secs(5), all_answered).await, "the hall answered every stranger");

        // The gate comes back from where it came before, and the kitchen from an address no
        // member came from, at the same moment.
        let gate_net =
            Internet::start(gate_mesh.clone(), &gate_id, direct_to(&hall_id, &hall_net, loopback)).await.unwrap();
        let kitchen_net = Internet::start(kitchen_mesh.clone(), &kitchen_id, direct_to(&hall_id, &hall_net, elsewhere))
            .await
            .unwrap();
        assert!(
            soon(Duration::from_secs(6), || has_peer(&hall_mesh, &gate_id)).await,
            "the gate gets in while strangers crowd the port: the hall's peers are {:?}",
            hall_mesh.peers()
        );
        let tea = add_item(&hall_mesh, "Tea");
        assert!(soon(Duration::from_secs(5), || holds(&gate_mesh, &tea)).await, "and the gate syncs");
        // Until the crowd goes, the kitchen, dialling all along, stays out.
        let in_crowd = Duration::from_secs(9);
        assert!(crowded.elapsed() < in_crowd, "the gate took {:?} from the crowd's start", crowded.elapsed());
        tokio::time::sleep(in_crowd.saturating_sub(crowded.elapsed())).await;
        assert!(!has_peer(&hall_mesh, &kitchen_id), "the kitchen waits while strangers hold the room for outsiders");
        assert!(!holds(&kitchen_mesh, &water));

        // Once the hall gives up on the stalled handshakes, the kitchen gets in too (dialling
        // anew, without the wait its refused dials earned).
        tokio::time::sleep(Duration::from_secs(11).saturating_sub(crowded.elapsed())).await;
        kitchen_net.close().await;
        let kitchen_net = Internet::start(kitchen_mesh.clone(), &kitchen_id, direct_to(&hall_id, &hall_net, elsewhere))
            .await
            .unwrap();
        assert!(
            soon(Duration::from_secs(20), || holds(&kitchen_mesh, &tea)).await,
            "the kitchen syncs once they are gone"
        );
        drop((dials, strangers, gate_net, kitchen_net, hall_net));
    });
}
