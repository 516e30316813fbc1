//! Where member hubs can be reached over the internet, as each hub says of itself: its home
//! relay and its direct addresses, signed with its key.
//!
//! Hubs at different sites find each other through the coalition, never through a public
//! directory: each hub signs where it is reachable when that changes, and the entries travel
//! with sync (`Frame::Whereabouts`, compared by digest at a session's start like the vault) and
//! in bundles. They are state, not history: a hub keeps the newest entry of each member and
//! nothing older, so the store holds no trail of where a hub has been. An entry counts only if
//! the hub it describes signed it; whoever relays it cannot alter it, and a hub that is not a
//! member is not kept. A dialling hub uses a relay from an entry only if the coalition (or the
//! dialling hub itself) names that relay: an entry cannot make a hub talk to a server the
//! coalition did not choose.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::identity::{HubId, Identity};

/// The most direct addresses one entry holds.
pub const MAX_DIRECT: usize = 8;
/// The most entries one frame or bundle holds (one per member).
pub const MAX_ENTRIES: usize = 4096;

/// Where one hub says it can be reached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Whereabouts {
    /// The hub this entry is about, which signed it.
    pub hub: HubId,
    /// The hub's clock (ms) when it said so, and at least one more than its previous entry: the
    /// newest version wins.
    pub version: u64,
    /// The relay it is connected to (`https://host[:port]/`), if any.
    pub relay: Option<String>,
    /// Addresses its internet socket answers at, as it knows them (at most [`MAX_DIRECT`]).
    pub direct: Vec<SocketAddr>,
    /// The hub's Ed25519 signature over [`Whereabouts::signed_bytes`], hex.
    pub sig: String,
}

/// Why an entry is not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("whereabouts of {hub}: {why}")]
    Malformed { hub: String, why: String },
    #[error("whereabouts of {hub}: not signed by that hub")]
    Signature { hub: String },
}

impl Whereabouts {
    /// What the hub signs: the entry's fields, in a fixed text form.
    pub fn signed_bytes(hub: &HubId, version: u64, relay: Option<&str>, direct: &[SocketAddr]) -> Vec<u8> {
        let direct: Vec<String> = direct.iter().map(|a| a.to_string()).collect();
        format!("aidmesh whereabouts v1\n{hub}\n{version}\n{}\n{}", relay.unwrap_or(""), direct.join(" ")).into_bytes()
    }

    /// This hub's entry: where it is reachable now, as version `version`. Addresses that
    /// cannot be dialled (unspecified, multicast, broadcast, port 0) are left out; of the rest,
    /// at most [`MAX_DIRECT`] are kept, public ones first (what a hub at another site can
    /// reach), then private ones, then the others.
    pub fn new(identity: &Identity, version: u64, relay: Option<String>, direct: &[SocketAddr]) -> Whereabouts {
        let direct = Whereabouts::tidy(direct);
        let hub = identity.id();
        let sig = identity.sign(&Whereabouts::signed_bytes(&hub, version, relay.as_deref(), &direct));
        Whereabouts { hub, version, relay, direct, sig: crate::hex::encode(sig) }
    }

    /// The direct addresses an entry made of `direct` holds ([`Whereabouts::new`]): what a hub
    /// compares with its kept entry before it signs anything.
    pub fn tidy(direct: &[SocketAddr]) -> Vec<SocketAddr> {
        let mut direct: Vec<SocketAddr> = direct.iter().map(canonical).filter(dialable).collect();
        direct.sort_by_key(|a| (scope(a), private_rank(a), *a));
        direct.dedup();
        direct.truncate(MAX_DIRECT);
        direct
    }

    /// Whether the entry is well formed and signed by the hub whose public key is `key`.
    pub fn check(&self, key: &[u8; 32]) -> Result<(), Refused> {
        let bad = |why: String| Refused::Malformed { hub: self.hub.to_string(), why };
        self.check_signature(key)?;
        if self.version > i64::MAX as u64 {
            return Err(bad(format!("version {} is past any clock", self.version)));
        }
        if self.direct.len() > MAX_DIRECT {
            return Err(bad(format!("{} direct addresses, at most {MAX_DIRECT}", self.direct.len())));
        }
        if let Some(a) = self.direct.iter().find(|a| !dialable(&canonical(a))) {
            return Err(bad(format!("{a} is not an address to dial")));
        }
        if let Some(r) = &self.relay {
            match crate::authority::relay_url(r) {
                Ok(canonical) if &canonical == r => {}
                Ok(_) => return Err(bad(format!("relay {r:?} is not written the way hubs write it"))),
                Err(why) => return Err(bad(why)),
            }
        }
        Ok(())
    }

    /// Whether the hub whose public key is `key` signed this entry, as it is.
    fn check_signature(&self, key: &[u8; 32]) -> Result<(), Refused> {
        if HubId::of_bytes(key).as_ref() != Some(&self.hub) {
            return Err(Refused::Signature { hub: self.hub.to_string() });
        }
        // Lower-case hex only: the signature's text orders entries of one version and enters the
        // digest, so a relaying hub must not be able to write it another way.
        let sig = crate::hex::decode(&self.sig)
            .and_then(|s| <[u8; 64]>::try_from(s).ok())
            .filter(|s| crate::hex::encode(s) == self.sig);
        let msg = Whereabouts::signed_bytes(&self.hub, self.version, self.relay.as_deref(), &self.direct);
        match sig {
            Some(sig) if crate::identity::verify_strict(key, &msg, &sig) => Ok(()),
            _ => Err(Refused::Signature { hub: self.hub.to_string() }),
        }
    }

    /// Whether this entry wins over `other` (of the same hub): a higher version, or at the
    /// same version (a hub whose clock stood still and lost its last word to a power cut) the
    /// greater signature, so that every hub settles on the same one.
    pub fn newer_than(&self, other: &Whereabouts) -> bool {
        (self.version, &self.sig) > (other.version, &other.sig)
    }

    /// Where this entry says to dial the hub: its direct addresses, and its relay if it is
    /// one of `relays` (the ones the coalition and this hub name), first.
    pub fn relay_among<'a>(&self, relays: impl IntoIterator<Item = &'a str>) -> Option<&str> {
        let r = self.relay.as_deref()?;
        relays.into_iter().any(|known| known == r).then_some(r)
    }
}

/// Whether a hub could send a packet to `a` (in its canonical form: an IPv4 address written
/// as IPv6 is judged as IPv4).
fn dialable(a: &SocketAddr) -> bool {
    let broadcast = matches!(a.ip(), std::net::IpAddr::V4(v4) if v4.is_broadcast());
    a.port() != 0 && !a.ip().is_unspecified() && !a.ip().is_multicast() && !broadcast
}

/// `a` with an IPv4-mapped IPv6 address written as IPv4.
fn canonical(a: &SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// Where an address can be reached from: 0 anywhere, 1 the same private network, 2 the same
/// link, 3 the same machine.
pub fn scope(a: &SocketAddr) -> u8 {
    match a.ip().to_canonical() {
        std::net::IpAddr::V4(v4) if v4.is_loopback() => 3,
        std::net::IpAddr::V4(v4) if v4.is_link_local() => 2,
        std::net::IpAddr::V4(v4) if v4.is_private() || shared(v4) => 1,
        std::net::IpAddr::V6(v6) if v6.is_loopback() => 3,
        std::net::IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => 2,
        std::net::IpAddr::V6(v6) if v6.segments()[0] & 0xfe00 == 0xfc00 => 1,
        _ => 0,
    }
}

/// 100.64.0.0/10, carrier-grade NAT's shared space (and some overlay networks').
fn shared(v4: std::net::Ipv4Addr) -> bool {
    v4.octets()[0] == 100 && v4.octets()[1] & 0xc0 == 64
}

/// Among private addresses, the ones most likely a site's own network first: 192.168/16, then
/// 10/8, then 172.16/12 (where container and VM bridges usually sit), then shared space.
fn private_rank(a: &SocketAddr) -> u8 {
    match a.ip().to_canonical() {
        std::net::IpAddr::V4(v4) if v4.octets()[..2] == [192, 168] => 0,
        std::net::IpAddr::V4(v4) if v4.octets()[0] == 10 => 1,
        std::net::IpAddr::V4(v4) if v4.octets()[0] == 172 => 2,
        _ => 3,
    }
}

/// The entries a hub keeps: the newest of each member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table(BTreeMap<HubId, Whereabouts>);

/// What [`Table::merge`] did with a batch.
#[derive(Debug, Default)]
pub struct Merged {
    /// Entries that replaced older ones here (to offer the other peers).
    pub taken: Vec<Whereabouts>,
    /// The first entry its hub did not sign: the batch is refused whole, nothing taken.
    pub refused: Option<Refused>,
    /// Entries signed by their hub that this release cannot take (a form it does not know, as
    /// a later release may write), passed over.
    pub passed_over: Vec<Refused>,
}

impl Table {
    pub fn from_entries(entries: impl IntoIterator<Item = Whereabouts>) -> Table {
        Table(entries.into_iter().map(|w| (w.hub.clone(), w)).collect())
    }

    pub fn entries(&self) -> impl Iterator<Item = &Whereabouts> {
        self.0.values()
    }

    pub fn get(&self, hub: &HubId) -> Option<&Whereabouts> {
        self.0.get(hub)
    }

    /// Keeps only the entries of `members` (a revoked hub's whereabouts go with it).
    pub fn retain_members(&mut self, key_of: impl Fn(&HubId) -> Option<[u8; 32]>) {
        self.0.retain(|hub, _| key_of(hub).is_some());
    }

    /// Takes each entry that is newer than the one here ([`Whereabouts::newer_than`]) and
    /// signed by its hub, a current member (`key_of` gives a member's public key); of several
    /// for one hub in the batch, only the newest is judged. Entries of hubs that are not
    /// members are passed over without a word: the sender may not have seen a revocation yet.
    /// One entry its hub did not sign refuses the whole batch: nothing is taken.
    pub fn merge(&mut self, entries: Vec<Whereabouts>, key_of: impl Fn(&HubId) -> Option<[u8; 32]>) -> Merged {
        let mut newest: BTreeMap<HubId, Whereabouts> = BTreeMap::new();
        for w in entries {
            if newest.get(&w.hub).is_none_or(|n| w.newer_than(n)) {
                newest.insert(w.hub.clone(), w);
            }
        }
        let mut out = Merged::default();
        let mut taken = Vec::new();
        for w in newest.into_values() {
            let Some(key) = key_of(&w.hub) else { continue };
            if self.0.get(&w.hub).is_some_and(|here| !w.newer_than(here)) {
                continue;
            }
            match w.check(&key) {
                Ok(()) => taken.push(w),
                Err(why @ Refused::Signature { .. }) => {
                    out.refused = Some(why);
                    return out;
                }
                Err(why) => out.passed_over.push(why),
            }
        }
        for w in &taken {
            self.0.insert(w.hub.clone(), w.clone());
        }
        out.taken = taken;
        out
    }

    /// The version a hub gives its next entry: its clock, and more than any it gave before.
    pub fn next_version(&self, hub: &HubId, now_ms: i64) -> u64 {
        let last = self.0.get(hub).map_or(0, |w| w.version);
        (now_ms.max(0) as u64).max(last.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn hub(seed: u64) -> Identity {
        Identity::generate(&mut rand::rngs::StdRng::seed_from_u64(seed))
    }

    fn key(i: &Identity) -> [u8; 32] {
        i.public().to_bytes()
    }

    const RELAY: &str = "https://relay.example.org/";

    #[test]
    fn newest_signed_entry_of_a_member_wins() {
        let (a, b, stranger) = (hub(1), hub(2), hub(3));
        let members = |h: &HubId| [&a, &b].into_iter().find(|i| &i.id() == h).map(key);
        let addr: SocketAddr = "192.0.2.7:4433".parse().unwrap();
        let mut t = Table::default();
        let first = Whereabouts::new(&a, 10, Some(RELAY.into()), &[addr]);
        let merged = t.merge(vec![first.clone(), Whereabouts::new(&stranger, 10, None, &[addr])], members);
        assert_eq!((merged.taken, merged.refused), (vec![first.clone()], None), "a stranger's entry is not kept");
        assert_eq!(t.entries().count(), 1);
        // Older or equal versions change nothing; a newer one replaces.
        let older = Whereabouts::new(&a, 9, None, &[]);
        assert!(t.merge(vec![older, first.clone()], members).taken.is_empty());
        let newer = Whereabouts::new(&a, 11, None, &[addr]);
        assert_eq!(t.merge(vec![newer.clone()], members).taken, vec![newer.clone()]);
        assert_eq!(t.get(&a.id()), Some(&newer));
        assert_eq!(t.next_version(&a.id(), 5), 12, "never below the last version");
        assert_eq!(t.next_version(&a.id(), 1_000), 1_000);
        // Of several in one batch, the newest counts; at one version, the greater signature.
        let (x, y) = (Whereabouts::new(&a, 20, None, &[]), Whereabouts::new(&a, 20, None, &[addr]));
        let (low, high) = if x.sig < y.sig { (x, y) } else { (y, x) };
        let merged =
            t.merge(vec![low.clone(), Whereabouts::new(&a, 19, None, &[]), high.clone(), low.clone()], members);
        assert_eq!(merged.taken, vec![high.clone()]);
        assert!(t.merge(vec![low], members).taken.is_empty(), "the lesser signature at one version");
        assert_eq!(t.get(&a.id()), Some(&high));
        let flood: Vec<Whereabouts> = (30..130).map(|v| Whereabouts::new(&a, v, None, &[])).collect();
        assert_eq!(t.merge(flood, members).taken.len(), 1, "one a hub, however many are sent");
        t.retain_members(|h| (h == &b.id()).then(|| key(&b)));
        assert_eq!(t.entries().count(), 0, "a revoked hub's whereabouts go");
    }

    #[test]
    fn whoever_relays_an_entry_cannot_alter_it() {
        let (a, b) = (hub(1), hub(2));
        let members = |h: &HubId| [&a, &b].into_iter().find(|i| &i.id() == h).map(key);
        let good = Whereabouts::new(&a, 10, Some(RELAY.into()), &["192.0.2.7:4433".parse().unwrap()]);
        let attacker: SocketAddr = "198.51.100.9:53".parse().unwrap();
        let cases: Vec<(&str, Whereabouts)> = vec![
            ("direct address swapped", Whereabouts { direct: vec![attacker], ..good.clone() }),
            ("relay swapped", Whereabouts { relay: Some("https://evil.example/".into()), ..good.clone() }),
            ("version raised", Whereabouts { version: 99, ..good.clone() }),
            ("signed by another member", Whereabouts { hub: a.id(), ..Whereabouts::new(&b, 50, None, &[attacker]) }),
            ("no signature", Whereabouts { sig: String::new(), ..good.clone() }),
            ("signature not hex", Whereabouts { sig: "zz".repeat(64), ..good.clone() }),
            ("signature in upper case", Whereabouts { sig: good.sig.to_uppercase(), ..good.clone() }),
        ];
        for (what, forged) in cases {
            let mut t = Table::default();
            let merged = t.merge(vec![forged], members);
            assert!(merged.taken.is_empty(), "{what}: taken");
            assert_eq!(merged.refused, Some(Refused::Signature { hub: a.id().to_string() }), "{what}");
            assert_eq!(t, Table::default(), "{what}: the table changed");
        }
    }

    #[test]
    fn malformed_entries_are_refused_naming_what_is_wrong() {
        let a = hub(1);
        let members = |h: &HubId| (h == &a.id()).then(|| key(&a));
        let many: Vec<SocketAddr> = (1..=9).map(|p| SocketAddr::from(([192, 0, 2, 1], p))).collect();
        let signed = |relay: Option<&str>, direct: Vec<SocketAddr>| {
            let sig = a.sign(&Whereabouts::signed_bytes(&a.id(), 5, relay, &direct));
            Whereabouts {
                hub: a.id(),
                version: 5,
                relay: relay.map(str::to_string),
                direct,
                sig: crate::hex::encode(sig),
            }
        };
        let cases = [
            (signed(None, many), "9 direct addresses, at most 8"),
            (signed(None, vec!["0.0.0.0:4433".parse().unwrap()]), "0.0.0.0:4433 is not an address to dial"),
            (signed(None, vec!["192.0.2.1:0".parse().unwrap()]), "192.0.2.1:0 is not an address to dial"),
            (signed(None, vec!["224.0.0.251:5353".parse().unwrap()]), "224.0.0.251:5353 is not an address"),
            (signed(None, vec!["[::ffff:224.0.0.251]:5353".parse().unwrap()]), "is not an address to dial"),
            (signed(None, vec!["255.255.255.255:4433".parse().unwrap()]), "is not an address to dial"),
            (signed(Some("http://relay.example.org/"), vec![]), "it must start with https://"),
            (signed(Some("https://relay.example.org/x"), vec![]), "no path"),
            (signed(Some("https://relay.example.org"), vec![]), "not written the way hubs write it"),
        ];
        // Signed by their hub, they are passed over (a later release may write what this one
        // cannot read), not held against whoever carried them.
        for (w, says) in cases {
            let mut t = Table::default();
            let merged = t.merge(vec![w], members);
            assert!(merged.taken.is_empty() && merged.refused.is_none(), "{says}");
            let why = merged.passed_over.first().map(|r| r.to_string()).unwrap_or_default();
            assert!(why.contains(says), "{why:?} should say {says:?}");
            assert_eq!(t, Table::default());
        }
        let past = Whereabouts::new(&a, u64::MAX, None, &[]);
        let why = Table::default().merge(vec![past], members).passed_over.pop().map(|r| r.to_string());
        assert!(why.is_some_and(|w| w.contains("past any clock")));
        // Made through `new`, the same addresses are cleaned rather than refused, and public
        // ones are kept first.
        let w = Whereabouts::new(&a, 5, None, &["0.0.0.0:1".parse().unwrap(), "192.0.2.1:2".parse().unwrap()]);
        assert_eq!(w.direct, vec!["192.0.2.1:2".parse::<SocketAddr>().unwrap()]);
        assert!(w.check(&key(&a)).is_ok());
        let mut many: Vec<SocketAddr> = (1..=8).map(|p| SocketAddr::from(([10, 0, 0, 1], p))).collect();
        many.extend(["127.0.0.1:9".parse::<SocketAddr>().unwrap(), "[2001:db8::1]:9".parse().unwrap()]);
        let w = Whereabouts::new(&a, 5, None, &many);
        assert_eq!(w.direct.len(), MAX_DIRECT);
        assert_eq!(w.direct[0], "[2001:db8::1]:9".parse::<SocketAddr>().unwrap(), "public first");
        assert!(!w.direct.contains(&"127.0.0.1:9".parse().unwrap()), "the machine's own last, and cut");
        // A site's own network before bridges; shared space is private, not public.
        let mut bridges: Vec<SocketAddr> = (1..=8).map(|p| SocketAddr::from(([172, 17, 0, 1], p))).collect();
        bridges.extend(["192.168.1.5:9".parse::<SocketAddr>().unwrap(), "100.100.1.1:9".parse().unwrap()]);
        let w = Whereabouts::new(&a, 5, None, &bridges);
        assert_eq!(w.direct[0], "192.168.1.5:9".parse::<SocketAddr>().unwrap());
        assert_eq!(scope(&"100.100.1.1:9".parse().unwrap()), 1);
    }

    #[test]
    fn a_relay_is_dialled_only_if_this_hub_knows_it() {
        let a = hub(1);
        let w = Whereabouts::new(&a, 5, Some(RELAY.into()), &[]);
        assert_eq!(w.relay_among([RELAY, "https://other.example/"]), Some(RELAY));
        assert_eq!(w.relay_among(["https://other.example/"]), None);
        assert_eq!(Whereabouts::new(&a, 5, None, &[]).relay_among([RELAY]), None);
    }
}
