//! What the internet tests share: the coalition's relay (its certificate and access list) and
//! real hubs with records to watch.
#![allow(dead_code, unreachable_pub)]

pub mod lossy;
pub mod netns;

use aidmesh_hub::Driver;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};

use aidmesh_hub::model::Kind;
use aidmesh_hub::{Config, Hub, InitOptions, ManualClock};
use aidmesh_mesh::net::Mesh;
use iroh::EndpointId;
use iroh_relay::server::{Access, AccessControl, ClientRequest};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;

pub const PASS: &str = "test passphrase";

/// The relay's access list: the member hubs' keys (what the user guide's `access.allowlist`
/// holds in the relay's own configuration).
#[derive(Debug, Clone, Default)]
pub struct Allowlist(pub Arc<RwLock<BTreeSet<EndpointId>>>);

impl AccessControl for Allowlist {
    async fn on_connect(&self, request: &ClientRequest) -> Access {
        if self.0.read().unwrap().contains(&request.endpoint_id()) {
            Access::Allow
        } else {
            Access::Deny { reason: Some("not a member of this coalition".into()) }
        }
    }
}

/// A certificate authority the coalition made, and the relay's certificate for `addr` signed by
/// it, as the relay's TLS configuration.
pub fn relay_certificate(addr: IpAddr) -> (CertificateDer<'static>, rustls::ServerConfig) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec![addr.to_string()]).unwrap().signed_by(&leaf_key, &issuer).unwrap();
    let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    (ca_cert.der().clone(), server)
}

/// Internet sync through the relays of the coalition and `own`, a relay certificate chaining to
/// `root`, on a free port of every interface.
pub fn through_relays(own: Vec<String>, root: &CertificateDer<'static>) -> aidmesh_internet::InternetConfig {
    aidmesh_internet::InternetConfig {
        relays: own,
        relay_roots: vec![root.clone()],
        bind: None,
        direct: Default::default(),
    }
}

/// The hubs' logs go to the test's output (shown when it fails): how sessions began and ended,
/// or what `AIDMESH_LOG` asks for (as the command reads it).
pub fn logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AIDMESH_LOG")
        .unwrap_or_else(|_| "error,aidmesh_mesh=info,aidmesh_internet=info,aidmesh_hub=warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

/// A new hub named `name` in `dir`.
pub fn new_hub(dir: &Path, name: &str, seed: u8) -> Hub {
    logs();
    let clock = ManualClock::at(aidmesh_hub::model::Timestamp::parse("2026-12-04T10:00:00Z").unwrap());
    Hub::init(
        &dir.join(format!("{name}.aidmesh")),
        PASS,
        &InitOptions { hub_name: name.into(), location: String::new(), pin: None },
        Config { handle: "coord".into(), clock: Box::new(clock), seed: [seed; 32] },
    )
    .unwrap()
}

/// Makes `b` a member of `a`'s coalition by hand (admission, code, coalition key).
pub fn join(a: &mut Hub, b: &mut Hub) {
    let name = b.hub_name().unwrap();
    let code = a.admit(&b.public_key(), &name).unwrap();
    b.adopt(&code).unwrap();
    b.set_coalition_key(&a.coalition_key_hex().unwrap().unwrap()).unwrap();
}

/// A hub's key as iroh names it.
pub fn key_of(hub: &Hub) -> EndpointId {
    EndpointId::from_bytes(&hub.identity().public().to_bytes()).unwrap()
}

/// Adds an item through the mesh (so that it goes to peers at once); its id.
pub fn add_item(mesh: &Mesh<Hub>, name: &str) -> String {
    mesh.with_hub(|h| h.add(Kind::Item, json!({"name": name, "unit": "box"}).as_object().unwrap().clone()))
        .unwrap()
        .id()
        .to_string()
}

pub fn holds(mesh: &Mesh<Hub>, id: &str) -> bool {
    mesh.with_hub(|h| h.get(id).is_ok())
}

/// Waits, in a runtime, until `f` holds, checking every 100 ms; false if it did not within
/// `within` (`netns::eventually` is the same for threads outside a runtime).
pub async fn soon(within: std::time::Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + within;
    while std::time::Instant::now() < until {
        if f() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    f()
}
