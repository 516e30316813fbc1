//! Finding member hubs on the local network with mDNS (`_aidmesh._tcp.local.`).
//!
//! Discovery is a hint, never authentication: whoever answers still has to pass the TLS
//! membership check. The advertisement carries no hub or coalition name. Its instance name is
//! random per run, and its only property is a tag: a random nonce and a hash of the nonce with
//! the coalition's founder key. Members, who know the founder key, recognise the tag; outsiders
//! see random values that they cannot tie to a coalition or to an earlier run.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};
use rand_core::RngCore;
use sha2::{Digest, Sha256};

pub const SERVICE: &str = "_aidmesh._tcp.local.";

/// The tag for a nonce: what members compute to recognise each other.
pub fn tag(founder_key: &str, nonce: &str) -> String {
    let h = Sha256::digest(format!("aidmesh mdns v1\n{founder_key}\n{nonce}").as_bytes());
    h[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// Where discovery may look.
#[derive(Clone, Debug, Default)]
pub struct DiscoveryConfig {
    /// Interface names to use; empty means every interface.
    pub interfaces: Vec<String>,
}

/// A running advertisement and browser.
pub struct Discovery {
    daemon: ServiceDaemon,
    fullname: String,
}

impl Discovery {
    /// Advertises this hub at `ips:port` and calls `found` with the address of every hub whose
    /// tag shows it belongs to the same coalition.
    pub fn start(
        config: &DiscoveryConfig,
        founder_key: &str,
        ips: &[IpAddr],
        port: u16,
        rng: &mut impl RngCore,
        found: impl Fn(SocketAddr) + Send + 'static,
    ) -> Result<Discovery, String> {
        let daemon = ServiceDaemon::new().map_err(|e| format!("mDNS: {e}"))?;
        if !config.interfaces.is_empty() {
            daemon.disable_interface(IfKind::All).map_err(|e| format!("mDNS: {e}"))?;
            for name in &config.interfaces {
                daemon
                    .enable_interface(IfKind::Name(name.clone()))
                    .map_err(|e| format!("mDNS interface {name}: {e}"))?;
            }
        }
        let mut raw = [0u8; 12];
        rng.fill_bytes(&mut raw);
        let nonce: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let mut inst = [0u8; 6];
        rng.fill_bytes(&mut inst);
        let instance: String = inst.iter().map(|b| format!("{b:02x}")).collect();
        let my_tag = tag(founder_key, &nonce);
        let props = [("n", nonce.as_str()), ("t", my_tag.as_str())];
        let mut info = ServiceInfo::new(SERVICE, &instance, &format!("{instance}.local."), ips, port, &props[..])
            .map_err(|e| format!("mDNS: {e}"))?;
        if ips.is_empty() {
            // Listening on every address: advertise the addresses of the enabled interfaces.
            info = info.enable_addr_auto();
        }
        let fullname = info.get_fullname().to_string();
        daemon.register(info).map_err(|e| format!("mDNS: {e}"))?;
        let events = daemon.browse(SERVICE).map_err(|e| format!("mDNS: {e}"))?;
        let founder_key = founder_key.to_string();
        let me = fullname.clone();
        std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            while let Ok(ev) = events.recv() {
                let ServiceEvent::ServiceResolved(s) = ev else { continue };
                if s.get_fullname() == me {
                    continue;
                }
                let (Some(n), Some(t)) = (s.get_property_val_str("n"), s.get_property_val_str("t")) else { continue };
                if tag(&founder_key, n) != t {
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
        Ok(Discovery { daemon, fullname })
    }

    /// Withdraws the advertisement and stops.
    pub fn stop(self) {
        if let Ok(rx) = self.daemon.unregister(&self.fullname) {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(1));
        }
        let _ = self.daemon.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_recognised_only_with_the_founder_key() {
        let t = tag("founderkey", "nonce1");
        assert_eq!(t, tag("founderkey", "nonce1"));
        assert_ne!(t, tag("otherkey", "nonce1"));
        assert_ne!(t, tag("founderkey", "nonce2"), "a new nonce each run: nothing to link");
        assert!(!t.contains("founder"));
    }
}
