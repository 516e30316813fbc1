//! The connection policy, sans-IO: which sockets may start a handshake, which of two connections
//! to the same peer survives, when a connection must close (its peer was revoked, or a better
//! connection replaced it), how long to wait before dialling again, and when a refusal is worth
//! a log line. Time and randomness are parameters.
//!
//! The tokio driver (`net.rs`) asks it at every turn and does what it answers; the deterministic
//! simulation (`tests/policy_sim.rs`) drives the same code with virtual time and an in-memory
//! network, so what the driver does with connections is what the simulation checked.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use aidmesh_model::Timestamp;

use crate::identity::HubId;

/// A connection, as the driver numbers them.
pub type ConnId = u64;

/// Where a connection to a peer runs: TLS over the local network at an address, or a pipe
/// over the internet (another transport, which dials hubs by key). A LAN connection is
/// preferred: it replaces an internet one to the same peer, and an internet one is not kept
/// beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Lan(SocketAddr),
    /// Over the internet, on a path that is direct or relayed as it began.
    Internet(Reach),
}

/// How a connected peer is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reach {
    /// TLS on the local network.
    Lan,
    /// Over the internet, on a direct path.
    Direct,
    /// Over the internet, through one of the coalition's relays.
    Relayed,
}

impl Link {
    /// The pace of a session on this link: the LAN's, or the internet's slower one.
    pub fn pace(&self) -> crate::session::Pace {
        match self {
            Link::Lan(_) => crate::session::Pace::LAN,
            Link::Internet(_) => crate::session::Pace::INTERNET,
        }
    }
}

impl From<SocketAddr> for Link {
    fn from(a: SocketAddr) -> Link {
        Link::Lan(a)
    }
}

/// What a hub dials: an address on the local network, or a member hub over the internet.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Addr(SocketAddr),
    Hub(HubId),
}

impl From<SocketAddr> for Target {
    fn from(a: SocketAddr) -> Target {
        Target::Addr(a)
    }
}

/// The policy's numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Handshakes in progress from one source address. An outsider holding sockets open uses
    /// up its own address's slots, never the members'.
    pub per_source: usize,
    /// Handshakes in progress in all.
    pub total: usize,
    /// Of those, how many only sources where a member connected from before may use, so that
    /// an outsider with many addresses still leaves room for the members.
    pub reserved_for_members: usize,
    /// How long a handshake may take before its socket is dropped (a member's takes
    /// milliseconds).
    pub handshake_ms: i64,
    /// The first wait before dialling a peer again, doubled after each failure up to the cap.
    pub backoff_min_ms: i64,
    pub backoff_max_ms: i64,
    /// How long a session must have lasted, with the peer answering, for the next dial to start
    /// from the shortest wait again (a peer that answers, then ends every session at once,
    /// keeps being redialled ever more rarely).
    pub settled_ms: i64,
    /// Refused connections logged per minute; the others are counted in the next line.
    pub refusals_logged_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            per_source: 4,
            total: 64,
            reserved_for_members: 16,
            handshake_ms: 3_000,
            backoff_min_ms: 200,
            backoff_max_ms: 60_000,
            settled_ms: 5_000,
            refusals_logged_per_minute: 10,
        }
    }
}

/// What to do with a new connection whose handshake completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Connected {
    /// Keep it; close `replaced`, the connection it replaces, if any.
    Keep { replaced: Option<ConnId> },
    /// Close it: a connection to this peer that both sides prefer is already up.
    Duplicate,
    /// Close it: it is this hub itself (it dialled its own address).
    Myself,
}

/// Whether a running connection stays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Review {
    Keep,
    Close(&'static str),
}

/// Dialling one address (or one hub over the internet).
#[derive(Clone, Debug, Default)]
struct Dial {
    /// Failures since the last session that completed its handshake.
    failures: u32,
    /// The peer this address led to last time.
    peer: Option<HubId>,
}

/// One hub's connection policy.
#[derive(Debug)]
pub struct Policy {
    me: HubId,
    limits: Limits,
    handshakes: Handshakes<Source>,
    /// The connection kept for each peer, whether this hub dialled it, and whether it runs
    /// over the local network.
    links: BTreeMap<HubId, (ConnId, bool, bool)>,
    dials: BTreeMap<Target, Dial>,
    refusals: RateLog,
}

impl Policy {
    pub fn new(me: HubId, limits: Limits) -> Policy {
        let per_minute = limits.refusals_logged_per_minute;
        Policy {
            me,
            handshakes: Handshakes::new(limits.per_source, limits.total, limits.reserved_for_members),
            limits,
            links: BTreeMap::new(),
            dials: BTreeMap::new(),
            refusals: RateLog::new(per_minute, 60_000),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A socket was accepted from `from`: may its handshake start? If so, the driver must call
    /// [`Policy::handshake_ended`] once it ends, however it ends.
    pub fn handshake_start(&mut self, from: IpAddr) -> bool {
        self.handshakes.start(&Source::of(from))
    }

    pub fn handshake_ended(&mut self, from: IpAddr) {
        self.handshakes.ended(&Source::of(from));
    }

    /// The coalition's members changed: addresses that only hubs no longer members came from
    /// lose the room kept for members.
    pub fn members_now(&mut self, members: &BTreeSet<HubId>) {
        self.handshakes.keep_members(|m| members.contains(m));
    }

    /// A connection's handshake completed: its peer is `peer` (a member: the handshake checked
    /// that), over `link`, and this hub dialled it or not. When both hubs dial each other, both
    /// keep the connection that the smaller id dialled, so they agree on one without a word;
    /// when the same side dials again, the newer connection replaces the older on both sides.
    /// A connection over the local network is kept rather than one over the internet, whoever
    /// dialled (both sides see both, so they agree on this too).
    pub fn connected(&mut self, peer: &HubId, conn: ConnId, dialed: bool, link: impl Into<Link>) -> Connected {
        if *peer == self.me {
            return Connected::Myself;
        }
        let link = link.into();
        let lan = matches!(link, Link::Lan(_));
        if let Link::Lan(addr) = link {
            self.handshakes.member_from(Source::of(addr.ip()), peer.clone());
        }
        if dialed {
            let target = match link {
                Link::Lan(addr) => Target::Addr(addr),
                Link::Internet(_) => Target::Hub(peer.clone()),
            };
            self.dials.entry(target).or_default().peer = Some(peer.clone());
        }
        let preferred = |dialed: bool| dialed == (self.me < *peer);
        let replaced = match self.links.get(peer) {
            Some(&(_, _, existing_lan)) if existing_lan && !lan => return Connected::Duplicate,
            Some(&(old, _, existing_lan)) if lan && !existing_lan => Some(old),
            // The same side dialled again: its earlier connection is gone or going (the peer
            // restarted, or the link broke before either side noticed).
            Some(&(old, existing_dialed, _)) if existing_dialed == dialed => Some(old),
            Some(&(_, existing_dialed, _)) if preferred(existing_dialed) => return Connected::Duplicate,
            Some(&(old, _, _)) => Some(old),
            None => None,
        };
        self.links.insert(peer.clone(), (conn, dialed, lan));
        Connected::Keep { replaced }
    }

    /// A connection ended.
    pub fn disconnected(&mut self, peer: &HubId, conn: ConnId) {
        if self.links.get(peer).is_some_and(|(c, _, _)| *c == conn) {
            self.links.remove(peer);
        }
    }

    /// Asked of every running connection on each tick: does it stay?
    pub fn review(&mut self, peer: &HubId, conn: ConnId, members: &BTreeSet<HubId>) -> Review {
        if !members.contains(peer) {
            self.disconnected(peer, conn);
            return Review::Close("the peer is no longer a member");
        }
        if self.links.get(peer).is_some_and(|(c, _, _)| *c != conn) {
            return Review::Close("replaced by another connection to the same peer");
        }
        Review::Keep
    }

    /// The connection kept for `peer`, if any.
    pub fn link(&self, peer: &HubId) -> Option<ConnId> {
        self.links.get(peer).map(|(c, _, _)| *c)
    }

    /// A session this hub dialled at `target` ended: `answered`, the peer's first frame had
    /// arrived; `lasted_ms`, how long it ran. A session that was answered and lasted
    /// [`Limits::settled_ms`] makes the next dial start from the shortest wait; any other counts
    /// as a failure (see [`Policy::dial_failed`]).
    pub fn session_ended(&mut self, target: impl Into<Target>, answered: bool, lasted_ms: i64) {
        if answered && lasted_ms >= self.limits.settled_ms {
            self.dials.entry(target.into()).or_default().failures = 0;
        }
    }

    /// Dialling `target` failed, or the connection ended: how long to wait before the next dial.
    /// The wait doubles with each failure since the last session that completed its handshake,
    /// up to the cap, and `random` (any number from the caller's random source) spreads it by
    /// up to a half, so that hubs refused together do not return together. A connection that
    /// was refused after TLS (the peer does not count this hub as a member) is a failure too.
    pub fn dial_failed(&mut self, target: impl Into<Target>, random: u64) -> i64 {
        let d = self.dials.entry(target.into()).or_default();
        let exp = d.failures.min(20);
        d.failures = d.failures.saturating_add(1);
        let base = self.limits.backoff_min_ms.saturating_mul(1i64 << exp).min(self.limits.backoff_max_ms);
        let jitter = (random % (base as u64 / 2 + 1)) as i64;
        (base / 2 + jitter).max(self.limits.backoff_min_ms / 2).min(self.limits.backoff_max_ms)
    }

    /// Whether to dial `target` now (else the caller asks again after a while): a hub over the
    /// internet while it is not connected by any link; an address on the LAN while the peer it
    /// led to last time is not connected on the LAN (a LAN connection replaces one over the
    /// internet).
    pub fn should_dial(&self, target: impl Into<Target>) -> bool {
        match target.into() {
            Target::Hub(peer) => !self.links.contains_key(&peer),
            addr => match self.dials.get(&addr).and_then(|d| d.peer.as_ref()) {
                Some(peer) => !self.links.get(peer).is_some_and(|(_, _, lan)| *lan),
                None => true,
            },
        }
    }

    /// A connection was refused (not a member, no handshake slot, handshake too slow): whether
    /// to log it now. `Some(n)`: log, mentioning the `n` refusals left unlogged before it.
    pub fn refusal(&mut self, now: Timestamp) -> Option<u64> {
        self.refusals.allow(now)
    }
}

/// Handshakes in progress, counted per source and in all, with room kept for the sources that
/// members completed a handshake from: an outsider holding handshakes open uses up its own
/// source's slots, and one with many sources the unreserved ones, never the room kept. The same
/// rule for the local network's sockets ([`Policy`]) and for the internet's connections (keyed
/// there by address, or by key through a relay). A source keeps that room until the member that
/// came from it last is no longer a member ([`Handshakes::keep_members`]), or until sources
/// members came from more recently push it out: [`MEMBER_SOURCES_EACH`] of the same member's, or
/// [`MEMBER_SOURCES`] in all (members on phone hotspots come from a new address each day).
#[derive(Debug)]
pub struct Handshakes<K> {
    per_source: usize,
    total: usize,
    reserved_for_members: usize,
    counts: BTreeMap<K, usize>,
    /// Each source a member came from: which member came last, and when, as a count of arrivals.
    members_seen: BTreeMap<K, (HubId, u64)>,
    arrivals: u64,
    in_progress: usize,
}

/// The most sources [`Handshakes`] keeps room for members for, in all and for each member; the
/// one longest without a member coming from it goes first.
pub const MEMBER_SOURCES: usize = 256;
pub const MEMBER_SOURCES_EACH: usize = 8;

impl<K: Ord + Clone> Handshakes<K> {
    pub fn new(per_source: usize, total: usize, reserved_for_members: usize) -> Handshakes<K> {
        Handshakes {
            per_source,
            total,
            reserved_for_members,
            counts: BTreeMap::new(),
            members_seen: BTreeMap::new(),
            arrivals: 0,
            in_progress: 0,
        }
    }

    /// May a handshake from `from` start? If so, [`Handshakes::ended`] must follow, however the
    /// handshake ends.
    pub fn start(&mut self, from: &K) -> bool {
        let here = self.counts.get(from).copied().unwrap_or(0);
        let room = if self.members_seen.contains_key(from) {
            self.total
        } else {
            self.total.saturating_sub(self.reserved_for_members)
        };
        if here >= self.per_source || self.in_progress >= room {
            return false;
        }
        self.counts.insert(from.clone(), here + 1);
        self.in_progress += 1;
        true
    }

    /// A handshake from `from` ended; one that never started changes nothing.
    pub fn ended(&mut self, from: &K) {
        if let Some(n) = self.counts.get_mut(from) {
            *n -= 1;
            self.in_progress -= 1;
            if *n == 0 {
                self.counts.remove(from);
            }
        }
    }

    /// Member `member` completed a handshake from `from`: later handshakes from there may use
    /// the room kept for members.
    pub fn member_from(&mut self, from: K, member: HubId) {
        self.arrivals += 1;
        self.members_seen.insert(from, (member.clone(), self.arrivals));
        // One member's sources first, so that a member coming from many addresses pushes out
        // only its own; then all of them.
        let own = self.members_seen.values().filter(|(m, _)| *m == member).count();
        if own > MEMBER_SOURCES_EACH {
            self.forget_oldest(|m| *m == member);
        }
        if self.members_seen.len() > MEMBER_SOURCES {
            self.forget_oldest(|_| true);
        }
    }

    /// Forgets the source longest without a member coming from it, of those whose member
    /// `of` picks.
    fn forget_oldest(&mut self, of: impl Fn(&HubId) -> bool) {
        let oldest = self.members_seen.iter().filter(|(_, (m, _))| of(m)).min_by_key(|(_, (_, at))| *at);
        if let Some(k) = oldest.map(|(k, _)| k.clone()) {
            self.members_seen.remove(&k);
        }
    }

    /// Forgets the sources whose member (the last to come from there) is no longer one: a
    /// revoked hub's addresses lose the room kept for members.
    pub fn keep_members(&mut self, is_member: impl Fn(&HubId) -> bool) {
        self.members_seen.retain(|_, (member, _)| is_member(member));
    }

    /// Handshakes in progress, in all.
    pub fn in_progress(&self) -> usize {
        self.in_progress
    }
}

/// Where a handshake comes from, for its slots: an IPv4 address, or an IPv6 /64 (one host
/// commonly holds a whole /64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    V4([u8; 4]),
    V6([u8; 8]),
}

impl Source {
    pub fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4.octets()),
                None => {
                    let o = v6.octets();
                    Source::V6([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
                }
            },
        }
    }
}

/// At most `per_window` events logged per window; the rest are counted.
#[derive(Debug)]
struct RateLog {
    per_window: u32,
    window_ms: i64,
    window_start: i64,
    logged: u32,
    suppressed: u64,
}

impl RateLog {
    fn new(per_window: u32, window_ms: i64) -> RateLog {
        RateLog { per_window, window_ms, window_start: i64::MIN, logged: 0, suppressed: 0 }
    }

    fn allow(&mut self, now: Timestamp) -> Option<u64> {
        let t = now.millis();
        if self.window_start == i64::MIN || t - self.window_start >= self.window_ms || t < self.window_start {
            self.window_start = t;
            self.logged = 0;
        }
        if self.logged < self.per_window {
            self.logged += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

/// The most hubs a hub dials over the internet ([`neighbours`]); about as many dial it, so it
/// keeps about twice as many sessions.
pub const DIALS: usize = 4;

/// The members a hub dials: up to `dials` of them, at ring distances from 1 to half the ring
/// spaced evenly on a log scale (1, 4, 18, 80 for 160 others and 4 dials), after `me` in the
/// order of hub ids. Each hub is also dialled by about as many, so sessions stay near
/// `2 × dials` however large the coalition, and every hub is a few hops from every other.
pub fn neighbours(me: &HubId, members: &BTreeSet<HubId>, dials: usize) -> Vec<HubId> {
    let ring: Vec<&HubId> = members.iter().filter(|m| *m != me).collect();
    if ring.is_empty() || dials == 0 {
        return Vec::new();
    }
    // Where `me` would stand in the ring of the others.
    let at = ring.partition_point(|m| *m < me);
    let half = (ring.len() / 2).max(1) as f64;
    let mut steps: Vec<usize> = Vec::new();
    for k in 0..dials {
        let t = if dials == 1 { 0.0 } else { k as f64 / (dials - 1) as f64 };
        let step = (half.powf(t).round() as usize).max(steps.last().map_or(1, |s| s + 1));
        if step > ring.len() {
            break;
        }
        steps.push(step);
    }
    steps.into_iter().map(|step| ring[(at + step - 1) % ring.len()].clone()).collect()
}

/// How long a hub must have been connected to all of its neighbours before it lets its way in
/// go: a neighbour that restarts, or a link down for a moment, costs one session to the way in,
/// not one every few seconds.
pub const WAY_IN_HOLD_MS: i64 = 30_000;

/// Which members a hub dials over the internet: its [`neighbours`], and the members whose
/// address it was given (a way in) until it has been connected to all of its neighbours (by any
/// link) for [`WAY_IN_HOLD_MS`]. From then on the ring's links keep it joined to the rest:
/// following each such hub's link to the next one on the ring leads, hub by hub, to one that
/// still holds its way in, or all the way round. So a hub whose address every hub was given is
/// not left with a session to each. (This assumes the ways in reach each other, or are one hub,
/// and that the hubs that have the way in among their neighbours can reach it, as they dial it
/// whatever happens.)
#[derive(Debug, Default)]
pub struct WayIn {
    settled_since: Option<i64>,
}

impl WayIn {
    /// The members to dial now, given the peers this hub has a session with (`connected`).
    pub fn dials(
        &mut self,
        me: &HubId,
        members: &BTreeSet<HubId>,
        given: &BTreeSet<HubId>,
        connected: &BTreeSet<HubId>,
        now_ms: i64,
    ) -> BTreeSet<HubId> {
        let ring = neighbours(me, members, DIALS);
        let settled = !ring.is_empty() && ring.iter().all(|n| connected.contains(n));
        self.settled_since = if settled { self.settled_since.or(Some(now_ms)) } else { None };
        let held = self.settled_since.is_some_and(|since| now_ms - since >= WAY_IN_HOLD_MS);
        let mut out: BTreeSet<HubId> = ring.into_iter().collect();
        if !held {
            out.extend(given.iter().filter(|g| *g != me && members.contains(*g)).cloned());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use rand_chacha::rand_core::SeedableRng;
    use std::collections::VecDeque;

    fn ids() -> (HubId, HubId) {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let a = Identity::generate(&mut rng).id();
        let b = Identity::generate(&mut rng).id();
        if a < b {
            (a, b)
        } else {
            (b, a)
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// The internet's handshakes follow the same rule, keyed by address or by a key through a
    /// relay: a source a member completed a handshake from may use the room kept for members;
    /// outsiders with many sources get the rest.
    #[test]
    fn room_is_kept_for_members_whatever_the_source() {
        let (a, b) = ids();
        let mut h: Handshakes<u32> = Handshakes::new(4, 10, 4);
        h.member_from(1, a.clone());
        assert_eq!((100..130).filter(|s| h.start(s)).count(), 6, "outsiders get the unreserved slots");
        assert!(h.start(&1), "a source a member came from");
        assert!(!h.start(&2), "a source no member came from");
        h.member_from(2, b);
        assert!(h.start(&2), "once a member came from it");
        assert_eq!(h.in_progress(), 8);
        assert!(h.start(&1) && h.start(&1));
        assert!(!h.start(&2), "the total holds for members too");
        h.ended(&100);
        assert!(!h.start(&100), "a freed slot beyond the outsiders' room is the members'");
        assert!(h.start(&2));
        // A member's source has its own cap too, and an end that never started changes nothing.
        let mut m: Handshakes<u32> = Handshakes::new(2, 10, 4);
        m.member_from(7, a);
        assert!(m.start(&7) && m.start(&7) && !m.start(&7));
        m.ended(&8);
        assert_eq!(m.in_progress(), 2);
    }

    /// A source keeps the room kept for members while the member that came from it last is
    /// one; a revoked hub's addresses lose it (on the local network as the members change), and
    /// of many sources the longest without a member coming from them go first.
    #[test]
    fn a_source_keeps_room_for_members_while_its_member_is_one_and_is_among_the_latest() {
        let (a, b) = ids();
        // Outsiders hold every slot they may (6 of 10); the member sources' starts show the room.
        let crowded = |seen: &dyn Fn(&mut Handshakes<u32>)| {
            let mut h: Handshakes<u32> = Handshakes::new(4, 10, 4);
            seen(&mut h);
            assert_eq!((1000..1030).filter(|s| h.start(s)).count(), 6);
            h
        };
        let mut h = crowded(&|h| {
            h.member_from(1, a.clone());
            h.member_from(2, b.clone());
        });
        h.keep_members(|m| *m != a);
        assert!(!h.start(&1), "a revoked hub's source lost the room");
        assert!(h.start(&2), "another member's kept it");
        // The member that came last from a source is the one that counts.
        let mut h = crowded(&|h| {
            h.member_from(3, a.clone());
            h.member_from(3, b.clone());
        });
        h.keep_members(|m| *m != a);
        assert!(h.start(&3));

        // A member coming from many sources pushes out only its own oldest.
        let mut h = crowded(&|h| {
            h.member_from(0, b.clone());
            for s in 1..=MEMBER_SOURCES as u32 {
                h.member_from(s, a.clone());
            }
        });
        assert!(h.start(&0), "another member's source stays");
        let last = MEMBER_SOURCES as u32;
        assert!(!h.start(&(last - MEMBER_SOURCES_EACH as u32)), "the member's ninth latest went");
        assert!(h.start(&last) && h.start(&(last - MEMBER_SOURCES_EACH as u32 + 1)), "its eight latest stay");
        // Of many members' sources, the longest without a member go first.
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        let many: Vec<HubId> = (0..=MEMBER_SOURCES).map(|_| Identity::generate(&mut rng).id()).collect();
        let mut h = crowded(&|h| {
            for (s, m) in many.iter().enumerate().take(MEMBER_SOURCES) {
                h.member_from(s as u32, m.clone());
            }
            h.member_from(0, many[0].clone());
            h.member_from(MEMBER_SOURCES as u32, many[MEMBER_SOURCES].clone());
        });
        assert!(!h.start(&1), "the source longest without a member went");
        assert!(h.start(&0) && h.start(&2) && h.start(&(MEMBER_SOURCES as u32)), "the others stay");

        // The local network's policy follows the members.
        let (me, other) = ids();
        let mut p = Policy::new(me, Limits::default());
        let addr: SocketAddr = "10.0.0.2:7420".parse().unwrap();
        p.connected(&other, 1, true, Link::Lan(addr));
        p.disconnected(&other, 1);
        let outsiders = (0..200u8).filter(|i| p.handshake_start(IpAddr::from([10, 1, 0, *i]))).count();
        assert_eq!(outsiders, 64 - 16, "outsiders hold the room not kept for members");
        assert!(p.handshake_start(addr.ip()), "the member's address has room");
        p.handshake_ended(addr.ip());
        p.members_now(&BTreeSet::new());
        assert!(!p.handshake_start(addr.ip()), "not once its hub is revoked");
    }

    #[test]
    fn an_outsider_uses_up_its_own_slots_never_the_members() {
        let (me, _) = ids();
        let mut p = Policy::new(me, Limits::default());
        let outsider: IpAddr = "10.0.0.66".parse().unwrap();
        let member: IpAddr = "10.0.0.2".parse().unwrap();
        let admitted = (0..200).filter(|_| p.handshake_start(outsider)).count();
        assert_eq!(admitted, 4);
        assert!(p.handshake_start(member), "a member still gets a slot");
        p.handshake_ended(outsider);
        assert!(p.handshake_start(outsider), "a slot that ends is free again");
        // Many sources at once are capped in all, with room kept for where members come from.
        let (me, peer) = ids();
        let mut q = Policy::new(me, Limits { total: 5, reserved_for_members: 2, ..Limits::default() });
        q.connected(&peer, 1, false, addr("10.0.9.9:40000"));
        let n = (1..=10).filter(|i| q.handshake_start(IpAddr::from([10, 0, 1, *i]))).count();
        assert_eq!(n, 3, "outsiders with ten addresses get the unreserved slots only");
        assert!(q.handshake_start(IpAddr::from([10, 0, 9, 9])), "a member's address still gets one");
        assert!(q.handshake_start(IpAddr::from([10, 0, 9, 9])));
        assert!(!q.handshake_start(IpAddr::from([10, 0, 9, 9])), "until the total is reached");
        // One IPv6 host is one source however many addresses of its /64 it uses.
        let mut r = Policy::new(ids().0, Limits::default());
        let n = (1..=50u16).filter(|i| r.handshake_start(IpAddr::from([0xfd00, 0, 0, 1, 0, 0, 0, *i]))).count();
        assert_eq!(n, 4);
        assert!(r.handshake_start(IpAddr::from([0xfd00, 0, 0, 2, 0, 0, 0, 1])), "another /64 is another source");
        // Ending a handshake that was never started changes nothing.
        q.handshake_ended(IpAddr::from([10, 9, 9, 9]));
        assert!(!q.handshake_start(IpAddr::from([10, 0, 2, 1])));
    }

    #[test]
    fn both_hubs_keep_the_connection_the_smaller_id_dialled() {
        let (small, big) = ids();
        let mut ps = Policy::new(small.clone(), Limits::default());
        let mut pb = Policy::new(big.clone(), Limits::default());
        // Connection 1 dialled by the smaller id, connection 2 by the bigger, in either order.
        assert_eq!(ps.connected(&big, 2, false, addr("10.0.0.9:7433")), Connected::Keep { replaced: None });
        assert_eq!(ps.connected(&big, 1, true, addr("10.0.0.9:7433")), Connected::Keep { replaced: Some(2) });
        assert_eq!(pb.connected(&small, 1, false, addr("10.0.0.9:7433")), Connected::Keep { replaced: None });
        assert_eq!(pb.connected(&small, 2, true, addr("10.0.0.9:7433")), Connected::Duplicate);
        assert_eq!(ps.link(&big), Some(1));
        assert_eq!(pb.link(&small), Some(1));
        let members: BTreeSet<HubId> = [small.clone(), big.clone()].into();
        assert_eq!(ps.review(&big, 2, &members), Review::Close("replaced by another connection to the same peer"));
        assert_eq!(ps.review(&big, 1, &members), Review::Keep);
        assert_eq!(ps.connected(&small, 3, true, addr("10.0.0.9:7433")), Connected::Myself);
        // The smaller restarts and dials again while the bigger still holds the old connection:
        // both take the new one, rather than waiting for the old one to be declared dead.
        let mut ps = Policy::new(small.clone(), Limits::default());
        assert_eq!(ps.connected(&big, 4, true, addr("10.0.0.9:7433")), Connected::Keep { replaced: None });
        assert_eq!(pb.connected(&small, 4, false, addr("10.0.0.9:7433")), Connected::Keep { replaced: Some(1) });
    }

    #[test]
    fn a_lan_connection_is_kept_rather_than_one_over_the_internet() {
        let (small, big) = ids();
        let mut ps = Policy::new(small.clone(), Limits::default());
        let mut pb = Policy::new(big.clone(), Limits::default());
        // Over the internet first, dialled by the bigger id.
        assert_eq!(ps.connected(&big, 1, false, Link::Internet(Reach::Relayed)), Connected::Keep { replaced: None });
        assert_eq!(pb.connected(&small, 1, true, Link::Internet(Reach::Relayed)), Connected::Keep { replaced: None });
        assert!(!ps.should_dial(Target::Hub(big.clone())), "a connected hub is not dialled over the internet");
        // The LAN address it was reached at before is dialled again while the link is over the
        // internet; they meet on the LAN: both sides keep the LAN connection, whoever dialled it.
        let lan = addr("10.0.0.9:7433");
        ps.connected(&big, 9, true, lan);
        ps.disconnected(&big, 9);
        ps.connected(&big, 1, false, Link::Internet(Reach::Relayed));
        assert!(ps.should_dial(lan), "a LAN address is dialled while the peer is reached over the internet");
        assert_eq!(ps.connected(&big, 2, false, addr("10.0.0.9:7433")), Connected::Keep { replaced: Some(1) });
        assert_eq!(pb.connected(&small, 2, true, addr("10.0.0.9:7433")), Connected::Keep { replaced: Some(1) });
        // An internet connection beside it is refused on both sides, even one the smaller id dialled.
        assert_eq!(ps.connected(&big, 3, true, Link::Internet(Reach::Relayed)), Connected::Duplicate);
        assert_eq!(pb.connected(&small, 3, false, Link::Internet(Reach::Relayed)), Connected::Duplicate);
        assert_eq!((ps.link(&big), pb.link(&small)), (Some(2), Some(2)));
        assert!(!ps.should_dial(Target::Hub(big.clone())));
        // The LAN goes: the internet may be dialled again.
        ps.disconnected(&big, 2);
        assert!(ps.should_dial(Target::Hub(big.clone())));
        assert_eq!(ps.connected(&big, 4, true, Link::Internet(Reach::Relayed)), Connected::Keep { replaced: None });
    }

    #[test]
    fn a_revoked_peer_is_closed_and_forgotten() {
        let (me, peer) = ids();
        let mut p = Policy::new(me.clone(), Limits::default());
        p.connected(&peer, 7, true, addr("10.0.0.9:7433"));
        let only_me: BTreeSet<HubId> = [me].into();
        assert_eq!(p.review(&peer, 7, &only_me), Review::Close("the peer is no longer a member"));
        assert_eq!(p.link(&peer), None);
    }

    #[test]
    fn dialling_backs_off_with_jitter_and_resets_only_after_a_real_session() {
        let (me, peer) = ids();
        let mut p = Policy::new(me, Limits::default());
        let a = addr("10.0.0.2:7433");
        let waits: Vec<i64> = (0..12).map(|i| p.dial_failed(a, i * 7919)).collect();
        for w in waits.windows(2) {
            assert!(w[1] >= w[0] / 2, "{waits:?}");
        }
        assert!(waits[0] <= 200 && waits[0] >= 100, "{waits:?}");
        assert!(*waits.last().unwrap() >= 30_000 && *waits.last().unwrap() <= 60_000, "{waits:?}");
        // TLS completed but the peer refused us: still a failure, the wait keeps growing.
        p.connected(&peer, 1, true, a);
        p.disconnected(&peer, 1);
        p.session_ended(a, false, 0);
        assert!(p.dial_failed(a, 0) >= 30_000);
        // A peer that answers, then ends the session at once (say, over a change it refuses),
        // is no reason to come back quickly either.
        p.session_ended(a, true, 100);
        assert!(p.dial_failed(a, 0) >= 30_000);
        // A session that ran resets it.
        p.session_ended(a, true, 5_000);
        assert!(p.dial_failed(a, 0) <= 200);
        // Two hubs refused at once do not come back at once.
        let mut q = Policy::new(ids().0, Limits::default());
        let spread: BTreeSet<i64> =
            (0..20u64).map(|r| q.dial_failed(addr(&format!("10.0.0.3:{}", 1000 + r)), r * 31)).collect();
        assert!(spread.len() > 10, "{spread:?}");
    }

    #[test]
    fn an_address_whose_peer_is_connected_is_not_dialled() {
        let (me, peer) = ids();
        let mut p = Policy::new(me, Limits::default());
        let a = addr("10.0.0.2:7433");
        assert!(p.should_dial(a));
        p.connected(&peer, 1, true, a);
        assert!(!p.should_dial(a));
        p.disconnected(&peer, 1);
        assert!(p.should_dial(a));
    }

    #[test]
    fn refusals_are_logged_at_a_bounded_rate_and_counted() {
        let (me, _) = ids();
        let mut p = Policy::new(me, Limits::default());
        let t = |ms: i64| Timestamp::from_millis(1_000_000 + ms);
        let logged: Vec<Option<u64>> = (0..1000).map(|i| p.refusal(t(i))).collect();
        assert_eq!(logged.iter().filter(|l| l.is_some()).count(), 10);
        // The next minute's first line says how many went unlogged.
        assert_eq!(p.refusal(t(60_000)), Some(990));
        assert_eq!(p.refusal(t(60_001)), Some(0));
    }

    fn hubs(n: usize) -> BTreeSet<HubId> {
        (0..n)
            .map(|i| {
                let mut b = [0u8; 20];
                b[..8].copy_from_slice(&((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_be_bytes());
                HubId::from_bytes(b)
            })
            .collect()
    }

    /// Sessions of each hub (dialled or dialling) and the most hops between two hubs.
    fn shape(all: &BTreeSet<HubId>, dials: usize) -> (usize, usize) {
        let mut links: BTreeMap<&HubId, BTreeSet<&HubId>> = all.iter().map(|h| (h, BTreeSet::new())).collect();
        for h in all {
            for n in neighbours(h, all, dials) {
                let n = all.get(&n).unwrap();
                links.get_mut(h).unwrap().insert(n);
                links.get_mut(n).unwrap().insert(h);
            }
        }
        let degree = links.values().map(|l| l.len()).max().unwrap_or(0);
        let mut diameter = 0;
        for start in all {
            let mut seen: BTreeMap<&HubId, usize> = [(start, 0)].into();
            let mut queue = VecDeque::from([start]);
            while let Some(h) = queue.pop_front() {
                for n in &links[h] {
                    if !seen.contains_key(n) {
                        seen.insert(n, seen[h] + 1);
                        queue.push_back(n);
                    }
                }
            }
            assert_eq!(seen.len(), all.len(), "every hub reaches every other");
            diameter = diameter.max(*seen.values().max().unwrap());
        }
        (degree, diameter)
    }

    #[test]
    fn a_coalition_stays_connected_with_a_few_sessions_per_hub() {
        assert!(neighbours(&hubs(1).into_iter().next().unwrap(), &hubs(1), DIALS).is_empty());
        let two = hubs(2);
        for h in &two {
            assert_eq!(neighbours(h, &two, DIALS).len(), 1, "two hubs dial each other");
        }
        for (n, most_hops) in [(3, 1), (8, 2), (20, 3), (50, 3), (200, 6)] {
            let (degree, diameter) = shape(&hubs(n), DIALS);
            assert!(degree <= 2 * DIALS, "{n} hubs: {degree} sessions at one hub");
            assert!(diameter <= most_hops, "{n} hubs: {diameter} hops apart");
        }
        // A hub that is not a member yet (or no more) still finds its place in the ring.
        let all = hubs(10);
        let outside = HubId::from_bytes([0xff; 20]);
        assert_eq!(neighbours(&outside, &all, 2).len(), 2);
    }

    /// A link between two hubs, either way round.
    fn link(a: &HubId, b: &HubId) -> (HubId, HubId) {
        if a < b {
            (a.clone(), b.clone())
        } else {
            (b.clone(), a.clone())
        }
    }

    /// The sessions hubs end up with when each dials what its `WayIn` says at the sessions of
    /// the moment (a hold apart each round), every hub was given `way_in`'s address (which
    /// always answers), and of the links between neighbours only those in `up` work.
    fn settle(all: &BTreeSet<HubId>, way_in: &HubId, up: &BTreeSet<(HubId, HubId)>) -> BTreeSet<(HubId, HubId)> {
        let given: BTreeSet<HubId> = [way_in.clone()].into();
        let mut state: BTreeMap<&HubId, WayIn> = all.iter().map(|h| (h, WayIn::default())).collect();
        let mut sessions: BTreeSet<(HubId, HubId)> = BTreeSet::new();
        for round in 0..all.len() + 4 {
            let now = round as i64 * WAY_IN_HOLD_MS;
            let mut next = BTreeSet::new();
            for h in all {
                let connected: BTreeSet<HubId> = sessions
                    .iter()
                    .filter_map(|(a, b)| {
                        if a == h {
                            Some(b.clone())
                        } else if b == h {
                            Some(a.clone())
                        } else {
                            None
                        }
                    })
                    .collect();
                for d in state.get_mut(h).unwrap().dials(h, all, &given, &connected, now) {
                    if h == way_in || d == *way_in || up.contains(&link(h, &d)) {
                        next.insert(link(h, &d));
                    }
                }
            }
            if next == sessions && round > 2 {
                return sessions;
            }
            sessions = next;
        }
        panic!("the dials never settle");
    }

    /// The way in is let go only after the hold, and dialled again at once when a neighbour
    /// goes.
    #[test]
    fn a_way_in_is_held_until_the_hub_has_been_settled_a_while() {
        let all = hubs(20);
        let list: Vec<&HubId> = all.iter().collect();
        let (me, way_in) = (list[3], list[10]);
        let ring: BTreeSet<HubId> = neighbours(me, &all, DIALS).into_iter().collect();
        assert!(!ring.contains(way_in));
        let given: BTreeSet<HubId> = [way_in.clone()].into();
        let mut w = WayIn::default();
        let mut at = |connected: &BTreeSet<HubId>, ms: i64| w.dials(me, &all, &given, connected, ms).contains(way_in);
        let none = BTreeSet::new();
        assert!(at(&none, 0), "not yet connected: the way in");
        assert!(at(&ring, 1_000), "settled, but not for long");
        assert!(at(&ring, 1_000 + WAY_IN_HOLD_MS - 1));
        assert!(!at(&ring, 1_000 + WAY_IN_HOLD_MS), "settled a while: let go");
        let short: BTreeSet<HubId> = ring.iter().skip(1).cloned().collect();
        assert!(at(&short, 40_000), "a neighbour gone: the way in at once");
        assert!(at(&ring, 41_000), "back, but the hold starts again");
        assert!(!at(&ring, 41_000 + WAY_IN_HOLD_MS));
    }

    /// How many hubs the sessions join to `way_in`.
    fn joined(way_in: &HubId, sessions: &BTreeSet<(HubId, HubId)>) -> usize {
        let mut joined: BTreeSet<&HubId> = [way_in].into();
        loop {
            let more: Vec<&HubId> = sessions
                .iter()
                .filter_map(|(a, b)| match (joined.contains(a), joined.contains(b)) {
                    (true, false) => Some(b),
                    (false, true) => Some(a),
                    _ => None,
                })
                .collect();
            if more.is_empty() {
                return joined.len();
            }
            joined.extend(more);
        }
    }

    /// Every hub was given one hub's address; of the links between neighbours, some work and
    /// some do not (a NAT with no relay, say). However they fail, every hub stays joined to the
    /// one it was given; with every link working, that hub keeps no more sessions than any
    /// other.
    #[test]
    fn a_given_address_is_let_go_only_where_the_ring_keeps_the_hub_joined() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        for round in 0..300 {
            let n = rng.gen_range(2..60);
            let all = hubs(n);
            let way_in = all.iter().nth(rng.gen_range(0..n)).unwrap().clone();
            let works = match round % 3 {
                0 => 1.0,
                1 => rng.gen_range(0.0..0.5),
                _ => rng.gen_range(0.5..0.95),
            };
            let mut up = BTreeSet::new();
            for h in &all {
                for m in neighbours(h, &all, DIALS) {
                    if works == 1.0 || rng.gen_bool(works) {
                        up.insert(link(h, &m));
                    }
                }
            }
            let sessions = settle(&all, &way_in, &up);
            assert_eq!(joined(&way_in, &sessions), n, "round {round}: {n} hubs, links working {works:.2}");
            if works == 1.0 {
                let at_given = sessions.iter().filter(|(a, b)| *a == way_in || *b == way_in).count();
                assert!(at_given <= 2 * DIALS, "round {round}: the given hub keeps {at_given} sessions");
            }
        }
        // Hubs that reach only each other, around a cycle of dials (each dials the next at the
        // same ring distance), none of them the way in: each reaches one neighbour, not all, so
        // each keeps its way in (were one neighbour enough, the cycle would be cut off).
        let mut cycles = 0;
        for n in [9, 12, 16, 30] {
            let all = hubs(n);
            let list: Vec<&HubId> = all.iter().collect();
            let way_in = list[0].clone();
            for step in 2..n {
                let dials_step = |i: usize| neighbours(list[i], &all, DIALS).contains(list[(i + step) % n]);
                if n % step != 0 || !(0..n).all(dials_step) {
                    continue;
                }
                for first in 1..step {
                    let cycle: Vec<usize> = (0..n / step).map(|k| first + k * step).collect();
                    let up: BTreeSet<(HubId, HubId)> =
                        cycle.iter().map(|i| link(list[*i], list[(i + step) % n])).collect();
                    assert_eq!(joined(&way_in, &settle(&all, &way_in, &up)), n, "{n} hubs: a cycle cut off");
                    cycles += 1;
                }
            }
        }
        assert!(cycles > 0, "the ring has cycles of dials");
    }
}
