//! Hubs of one coalition syncing over iroh through a real relay server (the iroh project's
//! `iroh-relay`, run in this process with a certificate the test made and an access list of
//! the member keys, as a coalition runs its own), on loopback. Real hubs, real stores, real
//! QUIC; a hub that is not a member gets nothing, from the relay or from a hub.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use aidmesh_hub::model::Kind;
use aidmesh_hub::Hub;
use aidmesh_internet::{Internet, InternetConfig, ALPN};
use aidmesh_mesh::net::{Mesh, Reach};
use common::{add_item, holds, join, key_of, new_hub, relay_certificate, soon, Allowlist};
use iroh::EndpointId;
use iroh_relay::server::{CertConfig, RelayConfig, Server, ServerConfig, TlsConfig};
use rustls::pki_types::CertificateDer;

async fn relay(allow: Allowlist) -> (Server, String, CertificateDer<'static>) {
    let (root, tls) = relay_certificate(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let mut relay = RelayConfig::new((Ipv4Addr::LOCALHOST, 0));
    relay.tls = Some(TlsConfig::new((Ipv4Addr::LOCALHOST, 0), CertConfig::Manual { server_config: tls }));
    relay.access = Arc::new(allow);
    let mut config = ServerConfig::default();
    config.relay = Some(relay);
    let server = Server::spawn(config).await.unwrap();
    let url = format!("https://{}/", server.https_addr().unwrap());
    (server, url, root)
}

/// The relays of the hub's own besides the coalition's.
fn config(relays: &[&str], root: &CertificateDer<'static>) -> InternetConfig {
    InternetConfig {
        relays: relays.iter().map(|r| r.to_string()).collect(),
        relay_roots: vec![root.clone()],
        bind: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
        direct: Default::default(),
    }
}

#[test]
fn members_sync_through_the_coalitions_relay_and_no_one_else_gets_in() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let allow = Allowlist::default();
        let (_relay, url, root) = relay(allow.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let (mut a, mut b) = (new_hub(dir.path(), "North", 1), new_hub(dir.path(), "South", 2));
        // The founder names the coalition's relay. B, joining from afar, is told it with the
        // code (its own relay setting) and learns the coalition's with the first sync.
        a.set_relays(std::slice::from_ref(&url)).unwrap();
        join(&mut a, &mut b);
        assert!(b.relays().unwrap().is_empty());
        let outsider = new_hub(dir.path(), "Elsewhere", 3);
        // The kitchen's hub has no relay: it is given the hall's direct address instead.
        let mut c = new_hub(dir.path(), "Kitchen", 4);
        join(&mut a, &mut c);
        allow.0.write().unwrap().extend([key_of(&a), key_of(&b)]);

        let (a_id, b_id, c_id) = (a.identity(), b.identity(), c.identity());
        let a_mesh = Arc::new(Mesh::new(a, &a_id, [1; 32]).unwrap());
        let b_mesh = Arc::new(Mesh::new(b, &b_id, [2; 32]).unwrap());
        let a_net = Internet::start(a_mesh.clone(), &a_id, config(&[], &root)).await.unwrap();
        let b_net = Internet::start(b_mesh.clone(), &b_id, config(&[&url], &root)).await.unwrap();
        tokio::time::timeout(Duration::from_secs(20), a_net.online()).await.expect("A reaches its relay");

        // Each hub's record reaches the other, with no address but the relay's.
        let water = add_item(&a_mesh, "Water");
        let tarps = add_item(&b_mesh, "Tarps");
        assert!(soon(Duration::from_secs(30), || holds(&b_mesh, &water)).await, "A's record reaches B");
        assert!(soon(Duration::from_secs(10), || holds(&a_mesh, &tarps)).await, "B's record reaches A");
        assert_eq!(b_mesh.with_hub(|h| h.relays()).unwrap(), vec![url.clone()], "B learnt the coalition's relay");
        let peers = a_mesh.peers();
        assert_eq!(peers.len(), 1, "{peers:?}");
        assert_eq!(peers[0].hub, b_id.id().to_string());
        assert_eq!(peers[0].addr, "internet");
        assert_ne!(peers[0].reach, Reach::Lan);
        // A later edit goes over the running connection.
        let soup = add_item(&a_mesh, "Soup");
        assert!(soon(Duration::from_secs(5), || holds(&b_mesh, &soup)).await, "an edit reaches B at once");

        // B turns internet sync off mid-session: both sides forget the connection (no ghost
        // peer keeps either from dialling again), and B is back once it is on again.
        b_net.close().await;
        assert!(soon(Duration::from_secs(2), || b_mesh.peers().is_empty()).await, "{:?}", b_mesh.peers());
        assert!(soon(Duration::from_secs(10), || a_mesh.peers().is_empty()).await, "A sees B go");
        let b_net = Internet::start(b_mesh.clone(), &b_id, config(&[&url], &root)).await.unwrap();
        assert!(soon(Duration::from_secs(30), || a_mesh.peers().len() == 1).await, "B is back");

        // A hub given a member's direct address reaches it without any relay.
        let c_mesh = Arc::new(Mesh::new(c, &c_id, [3; 32]).unwrap());
        let mut direct_cfg = config(&[], &root);
        let a_addrs: Vec<SocketAddr> = a_net.addr().ip_addrs().copied().collect();
        direct_cfg.direct.insert(a_id.public().to_bytes(), a_addrs);
        let c_net = Internet::start(c_mesh.clone(), &c_id, direct_cfg).await.unwrap();
        assert!(soon(Duration::from_secs(20), || holds(&c_mesh, &water)).await, "C syncs with A directly");
        assert!(c_mesh.with_hub(|h| h.relays()).unwrap().len() == 1, "and learns the coalition's relay from A");
        let c_fingerprint = c_id.id().to_string();
        let direct = || a_mesh.peers().iter().any(|p| p.hub == c_fingerprint && p.reach == Reach::Direct);
        assert!(soon(Duration::from_secs(3), direct).await, "{:?}", a_mesh.peers());

        // A hub of another coalition: the relay refuses it, so it cannot reach A by A's key...
        let stranger = iroh::endpoint::Builder::empty()
            .secret_key(iroh::SecretKey::from_bytes(&outsider.identity().secret()))
            .relay_mode(iroh::RelayMode::Custom(iroh::RelayMap::from_iter([url.parse::<iroh::RelayUrl>().unwrap()])))
            .ca_tls_config(iroh::tls::CaTlsConfig::embedded().with_extra_roots([root.clone()]))
            .crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .clear_ip_transports()
            .bind_addr(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .unwrap()
            .bind()
            .await
            .unwrap();
        let via_relay =
            iroh::EndpointAddr::from_parts(key_of_id(&a_id), [iroh::TransportAddr::Relay(url.parse().unwrap())]);
        let refused = tokio::time::timeout(Duration::from_secs(10), stranger.connect(via_relay, ALPN)).await;
        assert!(!matches!(refused, Ok(Ok(_))), "the relay must not carry a stranger to A");
        // ... and a stranger who knows A's direct address is closed before any byte of the sync.
        let direct = iroh::EndpointAddr::from_parts(
            key_of_id(&a_id),
            a_net.addr().ip_addrs().copied().map(iroh::TransportAddr::Ip),
        );
        let conn = stranger.connect(direct, ALPN).await.expect("QUIC itself completes with anyone");
        let got = async {
            let (mut send, mut recv) = conn.open_bi().await?;
            send.write_all(&[0u8; 8]).await?;
            let mut buf = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut recv, &mut buf).await?;
            anyhow::Ok(buf)
        }
        .await;
        assert!(got.is_err() || got.as_ref().is_ok_and(|b| b.is_empty()), "a stranger got {got:?}");
        let closed = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await.expect("A closes it");
        assert!(closed.to_string().contains("not a member"), "{closed}");
        let stranger_id = outsider.identity().id().to_string();
        assert!(!a_mesh.peers().iter().any(|p| p.hub == stranger_id), "the stranger is not a peer");

        // B is revoked: A ends the session, and what A writes next does not reach B.
        let b_fingerprint = b_id.id().to_string();
        a_mesh.with_hub(|h| h.revoke(&b_fingerprint)).unwrap();
        a_mesh.refresh_members();
        let b_peer = b_fingerprint.clone();
        let has_b = move |m: &Mesh<Hub>| m.peers().iter().any(|p| p.hub == b_peer);
        assert!(soon(Duration::from_secs(5), || !has_b(&a_mesh)).await, "A drops revoked B");
        let after = add_item(&a_mesh, "After");
        assert!(soon(Duration::from_secs(5), || holds(&c_mesh, &after)).await, "C still gets A's edits");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!holds(&b_mesh, &after), "a revoked hub gets nothing new over the internet");
        assert!(!has_b(&a_mesh), "revoked B is not let back in");
        drop((a_net, b_net, c_net));
    });
}

/// A hub that has spent its day's budget for internet sync gets and gives urgent records only
/// (here a request) until the budget is lifted or a new day begins; then the rest follows.
#[test]
fn a_hub_over_its_days_budget_syncs_urgent_records_only() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (mut a, mut b) = (new_hub(dir.path(), "Hall", 1), new_hub(dir.path(), "Gate", 2));
        join(&mut a, &mut b);
        let (a_id, b_id) = (a.identity(), b.identity());
        let a_mesh = Arc::new(Mesh::new(a, &a_id, [1; 32]).unwrap());
        let b_mesh = Arc::new(Mesh::new(b, &b_id, [2; 32]).unwrap());
        let direct = |with: Option<(&aidmesh_mesh::Identity, &Internet)>| InternetConfig {
            relays: Vec::new(),
            relay_roots: Vec::new(),
            bind: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
            direct: with
                .map(|(id, net)| (id.public().to_bytes(), net.addr().ip_addrs().copied().collect()))
                .into_iter()
                .collect(),
        };
        let a_net = Internet::start(a_mesh.clone(), &a_id, direct(None)).await.unwrap();
        let b_net = Internet::start(b_mesh.clone(), &b_id, direct(Some((&a_id, &a_net)))).await.unwrap();
        let water = add_item(&a_mesh, "Water");
        assert!(soon(Duration::from_secs(20), || holds(&b_mesh, &water)).await, "the first exchange");
        // The day by the mesh's clock, which counts the use (the hubs' own clocks are set by hand).
        let today = aidmesh_hub::model::Timestamp::from_millis(now_ms()).date().to_string();
        let used = || b_mesh.with_hub(|h| h.internet_used(&today).unwrap());
        assert!(soon(Duration::from_secs(20), || used() > 1_000).await, "the gate keeps what it used");
        // The gate is on a metered link, and has spent today's kilobyte.
        let set_at = now_ms();
        b_mesh.with_hub(|h| h.set_internet_budget(Some(1_000))).unwrap();

        // Over the budget: a request goes both ways, an item does not.
        let request = |mesh: &Mesh<Hub>, what: &str| {
            let fields = serde_json::json!({"description": what, "category": "water", "quantity": 10});
            mesh.with_hub(|h| h.add(Kind::Request, fields.as_object().unwrap().clone())).unwrap().id().to_string()
        };
        // The session that spent the budget ends (the budget is read every 2 s) and a metered
        // one starts: a connection newer than the budget.
        let renewed = || b_mesh.peers().iter().any(|p| p.connected_at.millis() > set_at);
        assert!(soon(Duration::from_secs(30), renewed).await, "the gate reconnects metered");
        let soap = add_item(&a_mesh, "Soap");
        let urgent = request(&a_mesh, "Insulin at the gate");
        let urgent_back = request(&b_mesh, "Blankets at the hall");
        let tarps = add_item(&b_mesh, "Tarps");
        assert!(soon(Duration::from_secs(20), || holds(&b_mesh, &urgent)).await, "a request reaches the gate");
        assert!(soon(Duration::from_secs(20), || holds(&a_mesh, &urgent_back)).await, "and the hall");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!holds(&b_mesh, &soap), "an item waits for the gate's budget");
        assert!(!holds(&a_mesh, &tarps), "and the gate sends none");

        // The coordinator lifts the budget: the rest follows.
        b_mesh.with_hub(|h| h.set_internet_budget(None)).unwrap();
        assert!(soon(Duration::from_secs(20), || holds(&b_mesh, &soap)).await, "the item follows");
        assert!(soon(Duration::from_secs(20), || holds(&a_mesh, &tarps)).await, "both ways");
        drop((a_net, b_net));
    });
}

/// Now, in milliseconds, as the mesh's clock reads it.
fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

fn key_of_id(id: &aidmesh_mesh::Identity) -> EndpointId {
    EndpointId::from_bytes(&id.public().to_bytes()).unwrap()
}
