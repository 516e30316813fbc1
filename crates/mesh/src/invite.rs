//! Joining a coalition with an invite: a short code (also shown as a QR code) that carries the
//! inviting hub's fingerprint and address, a one-time secret and an expiry.
//!
//! The joining hub connects over TLS to the address; the inviting hub shows a throwaway
//! certificate (as the mesh does, see `net::throwaway_configs`) and the joiner none, so the port
//! shows no key to whoever connects. Bound to the TLS session's exporter:
//! 1. the joiner proves it holds the invite's secret (an HMAC under it), without showing it;
//! 2. only then does the inviting hub answer, with its own HMAC under the secret and its key's
//!    signature of the session, which the joiner checks against the fingerprint in the code;
//! 3. the joiner sends its own key's signature of the session, then its request.
//!
//! An outsider that connects, without the secret, meets silence and a closed connection. Both
//! screens then show a confirmation code derived from the secret and both keys; the inviting
//! coordinator admits the new hub only after the two codes were compared aloud. The invite works
//! once, until it expires.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use aidmesh_model::Timestamp;
use hmac::{Hmac, Mac};
use rustls::pki_types::ServerName;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::identity::{verify_strict, HubId, Identity};
use crate::net::NetError;

/// Why an invite code was not read, or a join did not happen.
#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    #[error("the invite code has characters that are not in it (a-z, 2-7)")]
    NotBase32,
    #[error("the invite code is {by} character{} too {}", if *.by == 1 { "" } else { "s" }, if *.long { "long" } else { "short" })]
    Length { by: usize, long: bool },
    #[error("the invite code's checksum does not match: a character is mistyped")]
    Checksum,
    #[error("the invite expired before anyone joined")]
    Expired,
    #[error("no answer from {0}")]
    NoAnswer(SocketAddrV4),
    #[error("cannot reach the inviting hub at {0}: {1}")]
    Unreachable(SocketAddrV4, std::io::Error),
    #[error("the hub at {0} is not the one that made this invite ({1})")]
    NotTheInviter(SocketAddrV4, std::io::Error),
    #[error("the join was refused: {0}")]
    Refused(String),
    #[error("the inviting hub closed the connection: {0}")]
    Closed(Box<InviteError>),
    #[error("no decision from the inviting hub within 5 minutes")]
    NoDecision,
    #[error("join message of {0} bytes is too large")]
    TooLarge(usize),
    #[error("malformed join message: {0}")]
    Malformed(serde_json::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Net(#[from] NetError),
}

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// What an invite code carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invite {
    pub inviter: HubId,
    pub addr: SocketAddrV4,
    pub secret: [u8; 10],
    /// Minutes since the Unix epoch after which the invite is refused.
    pub expires_min: u32,
}

impl Invite {
    /// The code people type: base32 in groups of five, with a checksum.
    pub fn code(&self) -> String {
        let mut b = Vec::with_capacity(41);
        b.extend(self.inviter.bytes());
        b.extend(self.addr.ip().octets());
        b.extend(self.addr.port().to_be_bytes());
        b.extend(self.secret);
        b.extend(self.expires_min.to_be_bytes());
        let check = Sha256::digest(&b)[0];
        b.push(check);
        let s = base32(&b);
        s.as_bytes().chunks(5).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-")
    }

    /// Reads a code as typed; a mistyped character fails the checksum.
    pub fn parse(code: &str) -> Result<Invite, InviteError> {
        let clean: String =
            code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect();
        let b = unbase32(&clean).ok_or(InviteError::NotBase32)?;
        let Ok(b) = <[u8; 41]>::try_from(b.as_slice()) else {
            return Err(InviteError::Length { by: b.len().abs_diff(41), long: b.len() > 41 });
        };
        if Sha256::digest(&b[..40])[0] != b[40] {
            return Err(InviteError::Checksum);
        }
        let mut inviter = [0u8; 20];
        inviter.copy_from_slice(&b[..20]);
        let inviter = HubId::from_bytes(inviter);
        let ip = Ipv4Addr::new(b[20], b[21], b[22], b[23]);
        let port = u16::from_be_bytes([b[24], b[25]]);
        let mut secret = [0u8; 10];
        secret.copy_from_slice(&b[26..36]);
        let expires_min = u32::from_be_bytes([b[36], b[37], b[38], b[39]]);
        Ok(Invite { inviter, addr: SocketAddrV4::new(ip, port), secret, expires_min })
    }

    pub fn expired(&self, now: Timestamp) -> bool {
        now.millis() / 60_000 > self.expires_min as i64
    }

    /// The code printed as a QR code with Unicode blocks, for a phone or a second screen.
    /// The code as a QR image (SVG), for a screen.
    pub fn qr_svg(&self) -> String {
        match qrcode::QrCode::new(self.code().to_uppercase().as_bytes()) {
            Ok(q) => q.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).quiet_zone(true).build(),
            Err(_) => String::new(),
        }
    }

    pub fn qr(&self) -> String {
        match qrcode::QrCode::new(self.code().to_uppercase().as_bytes()) {
            Ok(q) => q.render::<qrcode::render::unicode::Dense1x2>().quiet_zone(true).build(),
            Err(_) => String::new(),
        }
    }
}

/// The six digits both screens show: from the secret and both hubs' keys.
pub fn confirmation(secret: &[u8; 10], inviter: &HubId, joiner: &HubId) -> String {
    let h = Sha256::digest([&b"aidmesh join v1\n"[..], secret, &inviter.bytes(), &joiner.bytes()].concat());
    let n = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % 1_000_000;
    format!("{:03} {:03}", n / 1000, n % 1000)
}

fn base32(b: &[u8]) -> String {
    let mut s = String::new();
    let (mut bits, mut n) = (0u64, 0);
    for x in b {
        bits = (bits << 8) | *x as u64;
        n += 8;
        while n >= 5 {
            n -= 5;
            s.push(ALPHABET[((bits >> n) & 31) as usize] as char);
        }
    }
    if n > 0 {
        s.push(ALPHABET[((bits << (5 - n)) & 31) as usize] as char);
    }
    s
}

fn unbase32(s: &str) -> Option<Vec<u8>> {
    let (mut bits, mut n, mut out) = (0u64, 0, Vec::new());
    for c in s.bytes() {
        bits = (bits << 5) | ALPHABET.iter().position(|a| *a == c)? as u64;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    Some(out)
}

/// The TLS exporter's label for an invite's session.
const EXPORTER_LABEL: &[u8] = b"EXPORTER-aidmesh-invite-v2";
/// Bytes of a proof of a key: the key, then its signature of the session.
const PROOF: usize = 32 + 64;
/// How long each step of the exchange may take.
const STEP: Duration = Duration::from_secs(10);
/// How long a connection may take before it proved it holds the secret (TLS, then the HMAC).
const FIRST_STEP: Duration = Duration::from_secs(3);
/// Connections an open invite answers at once, from one address and in all.
pub const TRIES_PER_ADDRESS: usize = 4;
pub const TRIES: usize = 32;

/// The two ends of an invite's session.
#[derive(Clone, Copy)]
enum End {
    Joiner,
    Inviter,
}

impl End {
    fn name(self) -> &'static str {
        match self {
            End::Joiner => "joiner",
            End::Inviter => "inviter",
        }
    }
}

/// `end`'s HMAC of the session under the invite's secret: proves the secret, shows nothing of
/// it, and is worth nothing in another session or from the other end.
fn secret_mac(secret: &[u8; 10], end: End, exporter: &[u8; 32]) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(format!("aidmesh invite v2\n{}\n", end.name()).as_bytes());
    m.update(exporter);
    m
}

fn proof_bytes(end: End, exporter: &[u8; 32]) -> Vec<u8> {
    [format!("aidmesh invite v2 proof\n{}\n", end.name()).as_bytes(), exporter].concat()
}

/// `identity`'s key and its signature of the session, as `end`.
fn proof(identity: &Identity, end: End, exporter: &[u8; 32]) -> [u8; PROOF] {
    let mut out = [0u8; PROOF];
    out[..32].copy_from_slice(identity.public().as_bytes());
    out[32..].copy_from_slice(&identity.sign(&proof_bytes(end, exporter)));
    out
}

/// The key a proof shows, if its signature holds for `end` in this session.
fn check_proof(p: &[u8; PROOF], end: End, exporter: &[u8; 32]) -> Option<[u8; 32]> {
    let key: [u8; 32] = p[..32].try_into().expect("32 bytes");
    let sig: [u8; 64] = p[32..].try_into().expect("64 bytes");
    verify_strict(&key, &proof_bytes(end, exporter), &sig).then_some(key)
}

fn exporter<D>(conn: &rustls::ConnectionCommon<D>) -> Result<[u8; 32], InviteError> {
    conn.export_keying_material([0u8; 32], EXPORTER_LABEL, None)
        .map_err(|e| InviteError::Net(NetError::Tls(e.to_string())))
}

/// Fresh bytes for this exchange's throwaway TLS keys.
fn tls_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
    seed
}

/// The join request and the answer, as length-prefixed JSON inside TLS, after the proofs.
#[derive(Debug, Serialize, Deserialize)]
struct JoinRequest {
    name: String,
    /// The coordinator at the joining hub, to be added as a person with the hub.
    #[serde(default)]
    person: Option<Claim>,
}

/// A person's key (hex) and handle, as a joining hub presents its coordinator.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claim {
    pub key: String,
    pub handle: String,
}

/// What the inviting hub gives the new member.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Welcome {
    pub founder_key: String,
    pub founder_name: String,
    pub founded_at: i64,
    /// Where the inviting hub syncs (`aidmesh serve`), to dial first.
    pub peer: Option<String>,
    /// The coalition's key for USB bundles (hex), if the inviting hub holds it.
    #[serde(default)]
    pub coalition_key: Option<String>,
    /// The coalition's documents (its hubs, places, roles and the whole signed membership log),
    /// so that the new hub knows every member, and so accepts every admin, before it first syncs.
    #[serde(default)]
    pub coalition: Vec<WelcomeDoc>,
    /// The coalition's id (its founding authority entry, hex) and its whole authority log (each
    /// entry's JSON text, each after those it follows): the joining hub's door checks every one.
    #[serde(default)]
    pub coalition_id: Option<String>,
    #[serde(default)]
    pub authority: Vec<String>,
}

/// One document handed over with a welcome: its saved Automerge bytes, in hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WelcomeDoc {
    pub doc: String,
    pub partition: String,
    pub created_at: i64,
    pub bytes: String,
    /// The signatures that vouch for the document's changes, each 96 bytes in hex, or 160 with
    /// a person's ([`crate::changes::ChangeSig`]).
    #[serde(default)]
    pub sigs: Vec<String>,
}

/// The largest join request an inviting hub reads from a laptop it does not know yet.
const MAX_REQUEST: usize = 64 * 1024;
/// The largest welcome a joining hub reads from the inviter it pinned by key (it carries the
/// coalition's documents).
const MAX_ANSWER: usize = 16 * 1024 * 1024;

#[derive(Debug, Serialize, Deserialize)]
enum JoinAnswer {
    Welcome(Welcome),
    Refused(String),
}

/// A joiner waiting for the inviting coordinator's decision.
pub struct Pending {
    pub joiner: HubId,
    pub joiner_key: [u8; 32],
    pub name: String,
    /// The joining hub's coordinator, if it presented one.
    pub person: Option<Claim>,
    pub confirmation: String,
    stream: tokio_rustls::server::TlsStream<TcpStream>,
}

/// Why a connection to an open invite was closed before its request.
#[derive(Debug)]
enum NotJoined {
    /// It did not prove it holds the invite's secret: it was shown nothing.
    NoSecret,
    /// It proved the secret, then not its key: someone who saw the code, or a broken joiner.
    BadProof,
}

/// The inviting hub's side of one connection, after TLS: the joiner's HMAC, this hub's answer,
/// the joiner's proof; the joiner's key.
async fn answer_joiner<S: AsyncRead + AsyncWrite + Unpin>(
    identity: &Identity,
    invite: &Invite,
    exporter: &[u8; 32],
    stream: &mut S,
) -> Result<Result<[u8; 32], NotJoined>, InviteError> {
    let mut mac = [0u8; 32];
    tokio::time::timeout(FIRST_STEP, stream.read_exact(&mut mac)).await.map_err(|_| InviteError::NoDecision)??;
    if secret_mac(&invite.secret, End::Joiner, exporter).verify_slice(&mac).is_err() {
        return Ok(Err(NotJoined::NoSecret));
    }
    let ours = secret_mac(&invite.secret, End::Inviter, exporter).finalize().into_bytes();
    stream.write_all(&[ours.as_slice(), &proof(identity, End::Inviter, exporter)].concat()).await?;
    stream.flush().await?;
    let mut theirs = [0u8; PROOF];
    tokio::time::timeout(STEP, stream.read_exact(&mut theirs)).await.map_err(|_| InviteError::NoDecision)??;
    Ok(check_proof(&theirs, End::Joiner, exporter).ok_or(NotJoined::BadProof))
}

/// One connection to an open invite, from TLS to the joiner's request: the joiner waiting for
/// the coordinator's decision, or `None` (logged) for anything else.
async fn one_try(
    identity: Arc<Identity>,
    invite: Invite,
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
    from: SocketAddr,
) -> Option<Pending> {
    let Ok(Ok(mut stream)) = tokio::time::timeout(FIRST_STEP, acceptor.accept(tcp)).await else {
        tracing::info!(%from, "join attempt failed its TLS handshake");
        return None;
    };
    let exporter = exporter(stream.get_ref().1).ok()?;
    let joiner = match answer_joiner(&identity, &invite, &exporter, &mut stream).await {
        Ok(Ok(key)) => key,
        // Closed without a word: whoever it was learnt nothing of this hub.
        Ok(Err(NotJoined::NoSecret)) => {
            tracing::warn!(%from, "join attempt without the invite's secret refused");
            return None;
        }
        Ok(Err(NotJoined::BadProof)) => {
            tracing::warn!(
                %from,
                "a join attempt proved the invite's secret but not its key: if it was not your joiner, \
                 someone else saw the code (compare the confirmation codes aloud)"
            );
            return None;
        }
        Err(e) => {
            tracing::info!(%from, error = %e, "join attempt cut short");
            return None;
        }
    };
    let req: JoinRequest = tokio::time::timeout(STEP, recv(&mut stream, MAX_REQUEST)).await.ok()?.ok()?;
    // The proof's key was checked as an Ed25519 key: this cannot fail, but a joiner is refused
    // rather than trusted if it does.
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&joiner).ok()?;
    let jid = HubId::of(&vk);
    let confirmation = confirmation(&invite.secret, &identity.id(), &jid);
    Some(Pending { joiner: jid, joiner_key: joiner, name: req.name, person: req.person, confirmation, stream })
}

impl Pending {
    /// Sends the decision to the joiner.
    pub async fn answer(mut self, welcome: Option<Welcome>) -> Result<(), InviteError> {
        let a = match welcome {
            Some(w) => JoinAnswer::Welcome(w),
            None => JoinAnswer::Refused("the inviting coordinator did not confirm the code".into()),
        };
        send(&mut self.stream, &a).await
    }
}

/// Listens for the joiner of one invite until it expires. Connections are answered side by side
/// (at most [`TRIES_PER_ADDRESS`] from one address, [`TRIES`] in all), so that no one holding
/// connections open keeps the joiner out; one without the secret, or with a bad proof, is closed
/// and listening goes on. The first joiner that proves the secret and its key is returned.
pub async fn accept_join(
    identity: &Identity,
    listener: &TcpListener,
    invite: &Invite,
    now: impl Fn() -> Timestamp,
) -> Result<Pending, InviteError> {
    let (server, _) = crate::net::throwaway_configs(tls_seed())?;
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let identity = Arc::new(Identity::from_secret(&identity.secret()));
    let mut tries: tokio::task::JoinSet<(std::net::IpAddr, Option<Pending>)> = tokio::task::JoinSet::new();
    let mut per_address: std::collections::HashMap<std::net::IpAddr, usize> = Default::default();
    loop {
        if invite.expired(now()) {
            return Err(InviteError::Expired);
        }
        tokio::select! {
            accepted = tokio::time::timeout(Duration::from_secs(5), listener.accept()) => {
                let (tcp, from) = match accepted {
                    Ok(Ok(x)) => x,
                    Ok(Err(e)) => return Err(e.into()),
                    Err(_) => continue,
                };
                let mine = per_address.entry(from.ip()).or_default();
                if *mine >= TRIES_PER_ADDRESS || tries.len() >= TRIES {
                    tracing::info!(%from, "too many join attempts at once: closed");
                    continue;
                }
                *mine += 1;
                let (identity, invite, acceptor) = (identity.clone(), invite.clone(), acceptor.clone());
                tries.spawn(async move { (from.ip(), one_try(identity, invite, acceptor, tcp, from).await) });
            }
            Some(done) = tries.join_next(), if !tries.is_empty() => {
                let Ok((ip, pending)) = done else { continue };
                if let Some(n) = per_address.get_mut(&ip) {
                    *n = n.saturating_sub(1);
                }
                if let Some(p) = pending {
                    return Ok(p);
                }
            }
        }
    }
}

/// The joining side: connects, proves it holds the invite's secret, checks the inviting hub's
/// proof against the fingerprint in the code, shows its own, shows the confirmation code
/// through `show`, and waits for the decision.
pub async fn join(
    identity: &Identity,
    invite: &Invite,
    name: &str,
    person: Option<Claim>,
    show: impl Fn(&str),
) -> Result<Welcome, InviteError> {
    let tcp = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(SocketAddr::V4(invite.addr)))
        .await
        .map_err(|_| InviteError::NoAnswer(invite.addr))?
        .map_err(|e| InviteError::Unreachable(invite.addr, e))?;
    let _ = tcp.set_nodelay(true);
    let (_, client) = crate::net::throwaway_configs(tls_seed())?;
    let not_the_inviter = |why: &str| InviteError::NotTheInviter(invite.addr, std::io::Error::other(why.to_string()));
    let mut stream = tokio::time::timeout(
        STEP,
        tokio_rustls::TlsConnector::from(client)
            .connect(ServerName::IpAddress(std::net::IpAddr::V4(*invite.addr.ip()).into()), tcp),
    )
    .await
    .map_err(|_| InviteError::NoAnswer(invite.addr))?
    .map_err(|e| not_the_inviter(&format!("TLS: {e}")))?;
    let exporter = exporter(stream.get_ref().1)?;
    let mac = secret_mac(&invite.secret, End::Joiner, &exporter).finalize().into_bytes();
    stream.write_all(&mac).await?;
    stream.flush().await?;
    let mut answer = [0u8; 32 + PROOF];
    match tokio::time::timeout(STEP, stream.read_exact(&mut answer)).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => {
            return Err(not_the_inviter(
                "it closed without proving it holds the invite: the code is mistyped or no longer open (used \
                 or expired), or another laptop answers at that address",
            ))
        }
        Err(_) => return Err(InviteError::NoAnswer(invite.addr)),
    }
    let (their_mac, their_proof) = answer.split_at(32);
    if secret_mac(&invite.secret, End::Inviter, &exporter).verify_slice(their_mac).is_err() {
        return Err(not_the_inviter("it does not hold the invite's secret"));
    }
    let key = check_proof(their_proof.try_into().expect("96 bytes"), End::Inviter, &exporter)
        .ok_or_else(|| not_the_inviter("its proof of its key does not hold"))?;
    if HubId::of_bytes(&key).as_ref() != Some(&invite.inviter) {
        return Err(not_the_inviter("its key is not the one in the invite"));
    }
    stream.write_all(&proof(identity, End::Joiner, &exporter)).await?;
    let req = JoinRequest { name: name.to_string(), person };
    send(&mut stream, &req).await?;
    show(&confirmation(&invite.secret, &invite.inviter, &identity.id()));
    match tokio::time::timeout(Duration::from_secs(300), recv::<_, JoinAnswer>(&mut stream, MAX_ANSWER)).await {
        Ok(Ok(JoinAnswer::Welcome(w))) => Ok(w),
        Ok(Ok(JoinAnswer::Refused(why))) => Err(InviteError::Refused(why)),
        Ok(Err(e)) => Err(InviteError::Closed(Box::new(e))),
        Err(_) => Err(InviteError::NoDecision),
    }
}

async fn send<S: AsyncWriteExt + Unpin, T: Serialize>(s: &mut S, v: &T) -> Result<(), InviteError> {
    let b = serde_json::to_vec(v).map_err(InviteError::Malformed)?;
    s.write_u32(b.len() as u32).await?;
    s.write_all(&b).await?;
    Ok(s.flush().await?)
}

async fn recv<S: AsyncReadExt + Unpin, T: for<'de> Deserialize<'de>>(s: &mut S, max: usize) -> Result<T, InviteError> {
    let n = s.read_u32().await? as usize;
    if n > max {
        return Err(InviteError::TooLarge(n));
    }
    let mut b = vec![0; n];
    s.read_exact(&mut b).await?;
    serde_json::from_slice(&b).map_err(InviteError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    fn id(seed: u64) -> Identity {
        Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(seed))
    }

    async fn listening(inviter: &Identity) -> (TcpListener, Invite) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let std::net::SocketAddr::V4(addr) = listener.local_addr().unwrap() else { unreachable!() };
        let invite = Invite { inviter: inviter.id(), addr, secret: [7; 10], expires_min: u32::MAX };
        (listener, invite)
    }

    fn now() -> Timestamp {
        Timestamp::from_millis(1_764_000_000_000)
    }

    /// What the invite's port tells whoever connects: a throwaway certificate, not the hub's
    /// key; without the secret, silence and a closed connection. A joiner with the wrong secret
    /// is told the hub there did not prove it holds the invite; one with the right secret
    /// meets the inviter's proof and joins, and both ends show the same code.
    #[tokio::test]
    async fn the_invite_port_shows_nothing_without_the_secret_and_a_joiner_with_it_joins() {
        let (north, south) = (id(1), id(2));
        let (listener, invite) = listening(&north).await;
        let server = tokio::spawn({
            let invite = invite.clone();
            async move {
                let p = accept_join(&north, &listener, &invite, now).await.unwrap();
                let code = p.confirmation.clone();
                let joiner = p.joiner.clone();
                p.answer(None).await.unwrap();
                (code, joiner)
            }
        });
        // An outsider: TLS without a certificate, then 32 bytes of junk.
        let (_, client) = crate::net::throwaway_configs([9; 32]).unwrap();
        let tcp = TcpStream::connect(SocketAddr::V4(invite.addr)).await.unwrap();
        let name = ServerName::IpAddress(std::net::IpAddr::V4(*invite.addr.ip()).into());
        let mut s = tokio_rustls::TlsConnector::from(client).connect(name, tcp).await.unwrap();
        let cert = s.get_ref().1.peer_certificates().unwrap()[0].clone();
        let shown =
            x509_parser::parse_x509_certificate(cert.as_ref()).unwrap().1.public_key().subject_public_key.data.to_vec();
        assert_ne!(shown, id(1).public().as_bytes().to_vec(), "the certificate is a throwaway");
        s.write_all(&[0; 32]).await.unwrap();
        s.flush().await.unwrap();
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await.unwrap();
        assert!(got.is_empty(), "nothing is said to it: {read:?}, {} bytes", got.len());
        // Silent connections from another address, more than it may hold: they neither keep
        // the joiner waiting (each would take 3 s) nor out.
        let mut silent = Vec::new();
        for _ in 0..(TRIES_PER_ADDRESS + 2) {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
            silent.push(socket.connect(SocketAddr::V4(invite.addr)).await.unwrap());
        }
        // A joiner with another secret.
        let wrong = Invite { secret: [8; 10], ..invite.clone() };
        let e = join(&south, &wrong, "Spy", None, |_| {}).await.unwrap_err().to_string();
        assert!(e.contains("closed without proving it holds the invite"), "{e}");
        // The joiner with the invite.
        let shown = std::sync::Mutex::new(String::new());
        let e = join(&south, &invite, "South", None, |c| *shown.lock().unwrap() = c.to_string()).await.unwrap_err();
        assert!(e.to_string().contains("did not confirm"), "{e}");
        let (code, joiner) = server.await.unwrap();
        drop(silent);
        assert_eq!(joiner, south.id());
        assert_eq!(*shown.lock().unwrap(), code, "both ends show the same code");
    }

    /// A laptop at the invite's address that holds the secret (it saw the code) but not the
    /// inviting hub's key: the joiner shows it nothing of its own and stops.
    /// A joiner is never held by a silent address: whatever takes its connection and says
    /// nothing (TLS never answered, or the secret never proved back) is given up on within a
    /// step, with an error that says no hub answered there.
    #[tokio::test]
    async fn a_joiner_gives_up_on_an_inviter_that_says_nothing() {
        let (north, south) = (id(1), id(2));
        let (listener, invite) = listening(&north).await;
        // Takes every connection and holds it, silent.
        let held = tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                kept.push(s);
            }
        });
        let gives_up = |invite: Invite| {
            let south = &south;
            async move {
                let started = std::time::Instant::now();
                let e = join(south, &invite, "South", None, |_| panic!("no code is shown")).await.unwrap_err();
                assert!(matches!(e, InviteError::NoAnswer(a) if a == invite.addr), "{e}");
                assert!(e.to_string().contains(&invite.addr.to_string()), "the address is named: {e}");
                let waited = started.elapsed();
                assert!(waited >= STEP && waited < STEP + Duration::from_secs(5), "gave up after {waited:?}");
            }
        };
        gives_up(invite).await;
        held.abort();
        // Answers TLS and takes the joiner's proof of the secret, then says nothing.
        let (listener, invite) = listening(&north).await;
        let (server, _) = crate::net::throwaway_configs(tls_seed()).unwrap();
        let held = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = tokio_rustls::TlsAcceptor::from(server).accept(tcp).await.unwrap();
            let mut mac = [0u8; 32];
            tls.read_exact(&mut mac).await.unwrap();
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        gives_up(invite).await;
        held.abort();
    }

    #[tokio::test]
    async fn a_laptop_with_the_secret_but_not_the_inviters_key_is_not_the_inviter() {
        let (north, south, impostor) = (id(1), id(2), id(3));
        let (listener, invite) = listening(&north).await;
        let server = tokio::spawn({
            let invite = Invite { inviter: impostor.id(), ..invite.clone() };
            async move { accept_join(&impostor, &listener, &invite, now).await.map(|p| p.joiner) }
        });
        let e = join(&south, &invite, "South", None, |_| {}).await.unwrap_err().to_string();
        assert!(e.contains("its key is not the one in the invite"), "{e}");
        server.abort();
    }

    #[test]
    fn codes_round_trip_and_catch_typos() {
        let id = Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(3));
        let inv = Invite {
            inviter: id.id(),
            addr: "192.0.2.7:7434".parse().unwrap(),
            secret: [7; 10],
            expires_min: 29_000_000,
        };
        let code = inv.code();
        assert_eq!(Invite::parse(&code).unwrap(), inv);
        assert_eq!(Invite::parse(&code.to_uppercase().replace('-', " ")).unwrap(), inv);
        let mut typo: Vec<char> = code.chars().collect();
        typo[7] = if typo[7] == 'a' { 'b' } else { 'a' };
        assert!(matches!(Invite::parse(&typo.into_iter().collect::<String>()), Err(InviteError::Checksum)));
        assert!(matches!(Invite::parse("abc"), Err(InviteError::Length { long: false, .. })));
        assert!(matches!(Invite::parse(&format!("{code}aa")), Err(InviteError::Length { by: 1, long: true })));
        assert!(matches!(Invite::parse("ab0"), Err(InviteError::NotBase32)));
        assert_eq!(
            Invite::parse(&format!("{code}aa")).unwrap_err().to_string(),
            "the invite code is 1 character too long"
        );
        assert!(inv.expired(Timestamp::from_millis((29_000_001i64) * 60_000)));
        assert!(!inv.qr().is_empty());
        let other = Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(4));
        let c = confirmation(&inv.secret, &id.id(), &other.id());
        assert_eq!(c.len(), 7);
        assert_ne!(c, confirmation(&[8; 10], &id.id(), &other.id()));
    }
}
