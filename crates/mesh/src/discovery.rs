//! Finding member hubs on the local network with mDNS (`_aidmesh._tcp.local.`).
//!
//! Discovery is a hint, never authentication: whoever answers still has to pass the handshake
//! ([`crate::handshake`]). The advertisement carries no hub or coalition name. Its instance name
//! is random, and its only property is a tag: a random nonce and an HMAC of the nonce under the
//! coalition secret ([`crate::keyring`]). Members recognise the tag; outsiders see random values
//! that they cannot tie to a coalition or to another advert, and a revoked hub cannot tie
//! adverts made after its revocation. When the secret turns over, the hub advertises anew, under
//! a new instance name.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};
use rand_core::RngCore;

use crate::hex;
use crate::keyring::{Keyring, Secret};

pub const SERVICE: &str = "_aidmesh._tcp.local.";

/// Where discovery may look.
#[derive(Clone, Debug, Default)]
pub struct DiscoveryConfig {
    /// Interface names to use; empty means every interface.
    pub interfaces: Vec<String>,
}

/// A running advertisement and browser.
pub struct Discovery {
    daemon: ServiceDaemon,
    /// This hub's advert: its full name (what the browser skips) and the secret of its tag.
    advert: Arc<Mutex<(String, Secret)>>,
    keyring: Arc<Mutex<Keyring>>,
    ips: Vec<IpAddr>,
    port: u16,
}

/// A new advert of this hub: random instance name and nonce, the tag under `secret`.
fn advert(secret: &Secret, ips: &[IpAddr], port: u16, rng: &mut impl RngCore) -> Result<ServiceInfo, DiscoveryError> {
    let mut raw = [0u8; 12];
    rng.fill_bytes(&mut raw);
    let nonce = hex::encode(raw);
    let mut inst = [0u8; 6];
    rng.fill_bytes(&mut inst);
    let instance = hex::encode(inst);
    let tag = hex::encode(secret.tag(nonce.as_bytes()));
    let props = [("n", nonce.as_str()), ("t", tag.as_str())];
    let info = ServiceInfo::new(SERVICE, &instance, &format!("{instance}.local."), ips, port, &props[..])?;
    // Listening on every address: advertise the addresses of the enabled interfaces.
    Ok(if ips.is_empty() { info.enable_addr_auto() } else { info })
}

/// Why mDNS discovery could not start or re-advertise.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("mDNS: {0}")]
    Mdns(#[from] mdns_sd::Error),
    #[error("mDNS interface {name}: {source}")]
    Interface { name: String, source: mdns_sd::Error },
}

impl Discovery {
    /// Advertises this hub at `ips:port` and calls `found` with the address of every hub whose
    /// tag was made with a secret of `keyring`.
    pub fn start(
        config: &DiscoveryConfig,
        keyring: Keyring,
        ips: &[IpAddr],
        port: u16,
        rng: &mut impl RngCore,
        found: impl Fn(SocketAddr) + Send + 'static,
    ) -> Result<Discovery, DiscoveryError> {
        let daemon = ServiceDaemon::new()?;
        if !config.interfaces.is_empty() {
            daemon.disable_interface(IfKind::All)?;
            for name in &config.interfaces {
                daemon
                    .enable_interface(IfKind::Name(name.clone()))
                    .map_err(|source| DiscoveryError::Interface { name: name.clone(), source })?;
            }
        }
        let info = advert(keyring.current(), ips, port, rng)?;
        let advert = Arc::new(Mutex::new((info.get_fullname().to_string(), *keyring.current())));
        daemon.register(info)?;
        let events = daemon.browse(SERVICE)?;
        let keyring = Arc::new(Mutex::new(keyring));
        let (me, ring) = (advert.clone(), keyring.clone());
        std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            while let Ok(ev) = events.recv() {
                let ServiceEvent::ServiceResolved(s) = ev else { continue };
                if s.get_fullname() == me.lock().unwrap_or_else(|e| e.into_inner()).0 {
                    continue;
                }
                let (Some(n), Some(t)) = (s.get_property_val_str("n"), s.get_property_val_str("t")) else { continue };
                let tag = crate::hex::decode(t).unwrap_or_default();
                if !ring.lock().unwrap_or_else(|e| e.into_inner()).recognises(n.as_bytes(), &tag) {
                    continue;
                }
                for ip in s.get_addresses_v4() {
                    let addr = SocketAddr::new(IpAddr::V4(ip), s.get_port());
                    if seen.insert(addr) {
                        found(addr);
                    }
                }
            }
        });
        Ok(Discovery { daemon, advert, keyring, ips: ips.to_vec(), port })
    }

    /// Takes the hub's keyring as it is now: recognises tags by its secrets, and if its current
    /// secret turned over, withdraws the advert and advertises anew.
    pub fn update(&self, keyring: Keyring, rng: &mut impl RngCore) -> Result<(), DiscoveryError> {
        let current = *keyring.current();
        *self.keyring.lock().unwrap_or_else(|e| e.into_inner()) = keyring;
        let mut advert = self.advert.lock().unwrap_or_else(|e| e.into_inner());
        if advert.1 == current {
            return Ok(());
        }
        let info = self::advert(&current, &self.ips, self.port, rng)?;
        let _ = self.daemon.unregister(&advert.0);
        *advert = (info.get_fullname().to_string(), current);
        Ok(self.daemon.register(info)?)
    }

    /// Withdraws the advertisement and stops.
    pub fn stop(self) {
        let fullname = self.advert.lock().unwrap_or_else(|e| e.into_inner()).0.clone();
        if let Ok(rx) = self.daemon.unregister(&fullname) {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(1));
        }
        let _ = self.daemon.shutdown();
    }
}
