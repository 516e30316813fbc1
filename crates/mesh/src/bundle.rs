//! USB bundles: a file that carries documents and vault entries between hubs that never meet.
//!
//! Layout (version 2): `AIDMESH-BUNDLE-2` (16 bytes), an ephemeral X25519 public key (32), a
//! u16 count of *slots*, the slots (48 bytes each), a 24-byte nonce, then XChaCha20-Poly1305
//! ciphertext under a content key made for this bundle alone, with everything before it as
//! associated data. Each slot is that content key sealed for one hub the exporter counted as a
//! member when it wrote the bundle: XChaCha20-Poly1305 under SHA-256 of the X25519 agreement
//! between the ephemeral key and the hub's key (its Ed25519 key in Montgomery form), with both
//! public keys. Slots name no one and are sorted; a hub finds its own by trying. So a hub
//! revoked before a bundle was written cannot open it, and the file shows nothing but its size
//! and how many hubs it was made for.
//!
//! Inside: a u32 length and a JSON header (exporting hub's key, time, documents with their
//! lengths and SHA-256, vault entries, records per kind, signatures of changes), the documents'
//! bytes one after the other, and a 64-byte Ed25519 signature by the exporting hub over
//! everything before it (`verify_strict`). Reading checks every layer and names the first that
//! fails. Version 1 bundles (sealed under the one coalition key) are still read.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::hex;
use crate::identity::{verify_strict, HubId, Identity};
use crate::seal::{self, SLOT};
use crate::session::{DocInfo, VaultItem};

/// How every bundle file starts.
pub const MAGIC: &[u8; 16] = b"AIDMESH-BUNDLE-2";
/// How bundles sealed under the coalition key started (still read).
pub const MAGIC_V1: &[u8; 16] = b"AIDMESH-BUNDLE-1";
/// The most hubs a bundle is made for.
pub const MAX_RECIPIENTS: usize = 4096;
/// Bundles larger than this are refused before decryption.
pub const MAX_BUNDLE: usize = 2 * 1024 * 1024 * 1024 - 1;

/// What a bundle says about itself (readable only with the coalition key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Public key (hex) of the exporting hub.
    pub exporter: String,
    pub created_at: i64,
    /// Whether it holds everything, or only what changed since the previous bundle.
    pub full: bool,
    pub docs: Vec<DocEntry>,
    pub vault: Vec<VaultItem>,
    /// Records per kind, for `aidmesh bundle inspect`.
    pub records: std::collections::BTreeMap<String, u64>,
    /// The exporter's heads of every document it held (hex), including documents left out:
    /// what the importing hub now knows the exporter has.
    #[serde(default)]
    pub heads: std::collections::BTreeMap<String, Vec<String>>,
    /// Authority log entries the intended hubs may lack (each entry's JSON text, each after
    /// those it follows; the exporter's heads are `heads["authority"]`): the importing hub's
    /// door checks every one.
    #[serde(default)]
    pub authority: Vec<String>,
    /// Per document, the signatures that vouch for its changes (each a
    /// [`crate::changes::ChangeSig`], 96 bytes in hex): the importing hub checks every change
    /// against them.
    #[serde(default)]
    pub sigs: std::collections::BTreeMap<String, Vec<String>>,
    /// Where member hubs can be reached over the internet, as the exporter knew it (each entry
    /// signed by its hub: [`crate::whereabouts`]).
    #[serde(default)]
    pub whereabouts: Vec<crate::whereabouts::Whereabouts>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocEntry {
    pub info: DocInfo,
    pub len: u64,
    /// SHA-256 of the document bytes, hex.
    pub sha256: String,
}

/// A bundle read and checked: header, documents, and who made it.
#[derive(Debug)]
pub struct Bundle {
    pub header: Header,
    pub docs: Vec<(DocInfo, Vec<u8>)>,
    pub exporter: HubId,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("not an aidmesh bundle (the file does not start as one)")]
    NotABundle,
    #[error("the bundle is truncated")]
    Truncated,
    #[error("the bundle cannot be opened with this coalition's key: it is for another coalition, or it was altered")]
    WrongKeyOrTampered,
    #[error("this hub cannot open the bundle: it was sealed for the {0} hubs its maker counted as members, and this hub was not one of them (revoked before it was made, admitted after, or of another coalition), or it was altered")]
    NotForThisHub(usize),
    #[error("the bundle is damaged: {0}")]
    Damaged(String),
    #[error("the bundle's signature does not match its content")]
    BadSignature,
    #[error("the bundle is too large ({0} bytes)")]
    TooLarge(usize),
}

/// SHA-256 of `bytes`, hex: how a bundle names the content of each document.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What makes one bundle unique: an ephemeral X25519 secret, the content key and the nonce,
/// fresh random bytes from the caller.
pub struct Seal {
    pub ephemeral: [u8; 32],
    pub content_key: [u8; 32],
    pub nonce: [u8; 24],
}

/// The domain of a bundle's slots.
const SLOT_DOMAIN: &[u8] = b"aidmesh bundle slot v2\n";

/// The header and documents, signed by `identity`: what a bundle seals.
fn signed_body(identity: &Identity, mut header: Header, docs: &[(DocInfo, Vec<u8>)]) -> Vec<u8> {
    header.exporter = hex::encode(identity.public().as_bytes());
    header.docs = docs
        .iter()
        .map(|(info, b)| DocEntry { info: info.clone(), len: b.len() as u64, sha256: hex::encode(Sha256::digest(b)) })
        .collect();
    let h = serde_json::to_vec(&header).unwrap_or_default();
    let mut plain = Vec::with_capacity(4 + h.len() + docs.iter().map(|d| d.1.len()).sum::<usize>() + 64);
    plain.extend((h.len() as u32).to_be_bytes());
    plain.extend(&h);
    for (_, b) in docs {
        plain.extend(b);
    }
    let sig = identity.sign(&plain);
    plain.extend(sig);
    plain
}

/// Writes a bundle: signs with `identity`, encrypts under a content key sealed for each of
/// `recipients` (Ed25519 public keys of member hubs; anything not a key is skipped).
pub fn write(
    identity: &Identity,
    recipients: &[[u8; 32]],
    seal: &Seal,
    header: Header,
    docs: &[(DocInfo, Vec<u8>)],
) -> Vec<u8> {
    let plain = signed_body(identity, header, docs);
    let (eph_pub, slots) = seal::seal(SLOT_DOMAIN, seal.ephemeral, recipients, MAX_RECIPIENTS, &seal.content_key);
    let mut out = Vec::with_capacity(16 + 32 + 2 + slots.len() * SLOT + 24 + plain.len() + 16);
    out.extend(MAGIC);
    out.extend(eph_pub);
    out.extend((slots.len() as u16).to_be_bytes());
    slots.iter().for_each(|s| out.extend(s));
    out.extend(seal.nonce);
    let cipher = XChaCha20Poly1305::new((&seal.content_key).into());
    let ct = cipher.encrypt(XNonce::from_slice(&seal.nonce), Payload { msg: &plain, aad: &out }).unwrap_or_default();
    out.extend(ct);
    out
}

/// Reads and checks a bundle: magic, decryption (for `identity`, or under the coalition key for
/// a version 1 bundle), structure, every document's hash, signature. Whether the exporter is a
/// member is for the caller to decide.
pub fn read(identity: &Identity, coalition_key: Option<&[u8; 32]>, bytes: &[u8]) -> Result<Bundle, BundleError> {
    if bytes.len() > MAX_BUNDLE {
        return Err(BundleError::TooLarge(bytes.len()));
    }
    let head = &bytes[..bytes.len().min(16)];
    if head != MAGIC && head != MAGIC_V1 {
        return Err(if MAGIC.starts_with(head) || MAGIC_V1.starts_with(head) {
            BundleError::Truncated
        } else {
            BundleError::NotABundle
        });
    }
    let plain = open(identity, coalition_key, bytes)?;
    if plain.len() < 4 + 64 {
        return Err(BundleError::Damaged("too short".into()));
    }
    let (body, sig) = plain.split_at(plain.len() - 64);
    let hlen = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
    let h = body.get(4..4 + hlen).ok_or_else(|| BundleError::Damaged("header length".into()))?;
    let header: Header = serde_json::from_slice(h).map_err(|e| BundleError::Damaged(format!("header: {e}")))?;
    let key: [u8; 32] =
        hex::decode_array(&header.exporter).ok_or_else(|| BundleError::Damaged("exporter key".into()))?;
    let sig: [u8; 64] = sig.try_into().map_err(|_| BundleError::Damaged("signature".into()))?;
    if !verify_strict(&key, body, &sig) {
        return Err(BundleError::BadSignature);
    }
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|_| BundleError::Damaged("exporter key".into()))?;
    let mut at = 4 + hlen;
    let mut docs = Vec::with_capacity(header.docs.len());
    for d in &header.docs {
        let end = at
            .checked_add(d.len as usize)
            .filter(|e| *e <= body.len())
            .ok_or_else(|| BundleError::Damaged(format!("document {} is cut short", d.info.doc)))?;
        let b = &body[at..end];
        if hex::encode(Sha256::digest(b)) != d.sha256 {
            return Err(BundleError::Damaged(format!("document {} does not match its hash", d.info.doc)));
        }
        docs.push((d.info.clone(), b.to_vec()));
        at = end;
    }
    if at != body.len() {
        return Err(BundleError::Damaged("bytes after the last document".into()));
    }
    Ok(Bundle { header, docs, exporter: HubId::of(&vk) })
}

/// How many bytes of a bundle come before its ciphertext (its *head*: the magic, then a version
/// 2 bundle's slots, then the nonce), read from its first 50 bytes (or fewer, for version 1).
pub fn head_len(first: &[u8]) -> Result<usize, BundleError> {
    match first.get(..16) {
        Some(m) if m == MAGIC_V1 => Ok(16 + 24),
        Some(m) if m == MAGIC => {
            let count =
                first.get(48..50).map(|c| u16::from_be_bytes([c[0], c[1]]) as usize).ok_or(BundleError::Truncated)?;
            if count > MAX_RECIPIENTS {
                return Err(BundleError::Damaged(format!("{count} slots, more than a bundle is made for")));
            }
            Ok(50 + count * SLOT + 24)
        }
        _ => Err(BundleError::NotABundle),
    }
}

/// The key a bundle's ciphertext is sealed under, from its head: this hub's slot of a version 2
/// bundle, or the coalition key for version 1.
pub fn content_key(
    identity: &Identity,
    coalition_key: Option<&[u8; 32]>,
    head: &[u8],
) -> Result<[u8; 32], BundleError> {
    if head.len() != head_len(head)? {
        return Err(BundleError::Truncated);
    }
    if head.starts_with(MAGIC_V1) {
        return coalition_key.copied().ok_or(BundleError::WrongKeyOrTampered);
    }
    let count = (head.len() - 50 - 24) / SLOT;
    let eph_pub: [u8; 32] = head[16..48].try_into().expect("32 bytes");
    seal::open(SLOT_DOMAIN, identity, &eph_pub, head[50..50 + count * SLOT].chunks(SLOT))
        .ok_or(BundleError::NotForThisHub(count))
}

/// What a head binds the ciphertext to (the whole head for version 2, the magic for version 1),
/// and its nonce.
fn aad_and_nonce(head: &[u8]) -> (&[u8], &XNonce) {
    let aad = if head.starts_with(MAGIC_V1) { &head[..16] } else { head };
    (aad, XNonce::from_slice(&head[head.len() - 24..]))
}

/// The plaintext of a bundle, if this hub holds its key.
fn open(identity: &Identity, coalition_key: Option<&[u8; 32]>, bytes: &[u8]) -> Result<Vec<u8>, BundleError> {
    let len = head_len(bytes)?;
    if bytes.len() < len + 16 {
        return Err(BundleError::Truncated);
    }
    let (head, ct) = bytes.split_at(len);
    let key = content_key(identity, coalition_key, head)?;
    let (aad, nonce) = aad_and_nonce(head);
    XChaCha20Poly1305::new((&key).into())
        .decrypt(nonce, Payload { msg: ct, aad })
        .map_err(|_| BundleError::WrongKeyOrTampered)
}

/// Whether the `len` bytes that follow `head` in `r` (the ciphertext, its 16-byte tag last) are
/// what was sealed under `key`: XChaCha20-Poly1305's tag worked out as the cipher does, in
/// passes of 1 MiB, before anything is decrypted or held. So a file of any size that was not
/// sealed for this hub, or was altered, is refused in constant memory.
pub fn sealed_whole(head: &[u8], key: &[u8; 32], mut r: impl std::io::Read, len: u64) -> std::io::Result<bool> {
    use chacha20::cipher::{KeyIvInit, StreamCipher};
    use poly1305::universal_hash::{KeyInit as _, UniversalHash};
    let Some(ct_len) = len.checked_sub(16) else { return Ok(false) };
    let (aad, nonce) = aad_and_nonce(head);
    // Poly1305's key is the first 32 bytes of the keystream (chacha20poly1305's `Cipher::new`).
    let mut mac_key = [0u8; 32];
    chacha20::XChaCha20::new(key.into(), nonce).apply_keystream(&mut mac_key);
    let mut mac = poly1305::Poly1305::new((&mac_key).into());
    mac.update_padded(aad);
    // Passes of a multiple of 16 bytes: only the last one is padded, as one pass over all is.
    let mut buf = vec![0u8; 1 << 20];
    let mut left = ct_len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        r.read_exact(&mut buf[..n])?;
        mac.update_padded(&buf[..n]);
        left -= n as u64;
    }
    let mut lens = poly1305::Block::default();
    lens[..8].copy_from_slice(&(aad.len() as u64).to_le_bytes());
    lens[8..].copy_from_slice(&ct_len.to_le_bytes());
    mac.update(&[lens]);
    let mut tag = [0u8; 16];
    r.read_exact(&mut tag)?;
    Ok(mac.verify(&tag.into()).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(n: u8) -> Identity {
        Identity::from_secret(&[n; 32])
    }

    fn header() -> Header {
        Header {
            exporter: String::new(),
            created_at: 5,
            full: true,
            docs: vec![],
            vault: vec![],
            records: Default::default(),
            heads: Default::default(),
            authority: vec![],
            sigs: Default::default(),
            whereabouts: vec![],
        }
    }

    fn docs() -> Vec<(DocInfo, Vec<u8>)> {
        vec![(
            DocInfo { doc: "d1".into(), partition: "item".into(), created_at: 1, ..Default::default() },
            b"automerge bytes".to_vec(),
        )]
    }

    fn seal(n: u8) -> Seal {
        Seal { ephemeral: [n; 32], content_key: [n + 1; 32], nonce: [n + 2; 24] }
    }

    /// A bundle as version 1 wrote it: sealed under the coalition key.
    fn write_v1(identity: &Identity, key: &[u8; 32]) -> Vec<u8> {
        let plain = signed_body(identity, header(), &docs());
        let cipher = XChaCha20Poly1305::new(key.into());
        let ct = cipher.encrypt(XNonce::from_slice(&[1; 24]), Payload { msg: &plain, aad: MAGIC_V1 }).unwrap();
        [&MAGIC_V1[..], &[1; 24], &ct].concat()
    }

    /// Every input the fuzzer was seeded with or ever crashed on stays a regression test.
    #[test]
    fn fuzz_corpus_and_regressions_never_panic() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let mut n = 0;
        for dir in ["corpus/bundle_read", "regressions/bundle_read"] {
            for e in std::fs::read_dir(root.join(dir)).into_iter().flatten().flatten() {
                let bytes = std::fs::read(e.path()).unwrap();
                let _ = read(&hub(7), Some(&[7u8; 32]), &bytes);
                let _ = read(&hub(0), None, &bytes);
                n += 1;
            }
        }
        assert!(n >= 4, "the seed corpus is missing");
    }

    /// Writes the seed corpus (run with AIDMESH_WRITE_CORPUS=1 to refresh it).
    #[test]
    fn seed_corpus_is_current() {
        let docs = vec![(
            DocInfo { doc: "item-1".into(), partition: "item".into(), created_at: 1, ..Default::default() },
            vec![0x85, 0x6f, 0x4a, 0x83, 1, 2, 3],
        )];
        let good = write(&hub(11), &[*hub(7).public().as_bytes()], &seal(3), header(), &docs);
        assert!(read(&hub(7), None, &good).is_ok());
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/bundle_read");
        let want = [
            ("good", good.clone()),
            ("truncated", good[..good.len() / 2].to_vec()),
            ("magic", MAGIC.to_vec()),
            ("version-1", write_v1(&hub(11), &[7u8; 32])),
        ];
        for (name, bytes) in want {
            let p = dir.join(name);
            if std::env::var_os("AIDMESH_WRITE_CORPUS").is_some() {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&p, &bytes).unwrap();
            }
            assert_eq!(std::fs::read(&p).unwrap(), bytes, "{name}: refresh with AIDMESH_WRITE_CORPUS=1");
        }
    }

    #[test]
    fn round_trip_for_each_hub_it_was_made_for_and_every_fault_is_named() {
        let (maker, south, lost) = (hub(1), hub(2), hub(3));
        let recipients = [*maker.public().as_bytes(), *south.public().as_bytes()];
        let b = write(&maker, &recipients, &seal(5), header(), &docs());
        for h in [&maker, &south] {
            let got = read(h, None, &b).unwrap();
            assert_eq!(got.exporter, maker.id());
            assert_eq!(got.docs[0].1, b"automerge bytes");
        }
        assert!(!String::from_utf8_lossy(&b).contains("automerge bytes"), "content is encrypted");
        assert!(
            !b.windows(32).any(|w| w == maker.public().as_bytes() || w == south.public().as_bytes()),
            "no key shows"
        );
        // A hub it was not made for (revoked before it was written): named, not a key error.
        assert_eq!(read(&lost, None, &b).unwrap_err(), BundleError::NotForThisHub(2));
        let mut t = b.clone();
        let n = t.len() - 30;
        t[n] ^= 1;
        assert_eq!(read(&south, None, &t).unwrap_err(), BundleError::WrongKeyOrTampered);
        // A slot count changed: the slots no longer line up, or the content's check fails.
        let mut t = b.clone();
        t[49] ^= 1;
        assert!(read(&south, None, &t).is_err());
        assert_eq!(read(&south, None, &b[..b.len() - 10]).unwrap_err(), BundleError::WrongKeyOrTampered);
        assert_eq!(read(&south, None, &b[..60]).unwrap_err(), BundleError::Truncated);
        assert_eq!(read(&south, None, &b[..10]).unwrap_err(), BundleError::Truncated);
        assert_eq!(read(&south, None, b"PK\x03\x04 a zip file").unwrap_err(), BundleError::NotABundle);
        assert_eq!(read(&south, None, b"").unwrap_err(), BundleError::Truncated);
    }

    /// The tag checked in passes says what decryption says, for both versions, across the
    /// passes' boundaries, and for a change of any byte after the head.
    #[test]
    fn the_tag_checked_in_passes_agrees_with_decryption() {
        let (maker, south) = (hub(1), hub(2));
        let recipients = [*maker.public().as_bytes(), *south.public().as_bytes()];
        // Documents whose ciphertext ends short of, on and past a 1 MiB pass.
        for size in [0usize, 15, 16, (1 << 20) - 200, 1 << 20, (1 << 20) + 17, 3 << 20] {
            let docs = vec![(DocInfo { doc: "d".into(), ..Default::default() }, vec![7u8; size])];
            let v2 = write(&maker, &recipients, &seal(5), header(), &docs);
            let plain = signed_body(&maker, header(), &docs);
            let ct = XChaCha20Poly1305::new((&[9; 32]).into())
                .encrypt(XNonce::from_slice(&[1; 24]), Payload { msg: &plain, aad: MAGIC_V1 })
                .unwrap();
            let v1 = [&MAGIC_V1[..], &[1; 24], &ct].concat();
            for b in [v2, v1] {
                let len = head_len(&b).unwrap();
                let (head, rest) = b.split_at(len);
                let key = content_key(&south, Some(&[9; 32]), head).unwrap();
                let whole = |rest: &[u8]| sealed_whole(head, &key, rest, rest.len() as u64).unwrap();
                assert!(whole(rest), "{size} bytes");
                assert!(read(&south, Some(&[9; 32]), &b).is_ok());
                for at in [0, rest.len() / 2, rest.len() - 17, rest.len() - 1] {
                    let mut t = rest.to_vec();
                    t[at] ^= 0x40;
                    assert!(!whole(&t), "{size} bytes, byte {at} changed");
                }
                assert!(!whole(&rest[..rest.len() - 1]), "cut short");
                assert!(!sealed_whole(head, &[8; 32], rest, rest.len() as u64).unwrap(), "another key");
                let mut h = head.to_vec();
                h[head.len() - 1] ^= 1;
                assert!(!sealed_whole(&h, &key, rest, rest.len() as u64).unwrap(), "another nonce");
            }
        }
        // The head names the hubs' slots: another hub's key opens none.
        let b = write(&maker, &recipients, &seal(5), header(), &docs());
        let head = &b[..head_len(&b).unwrap()];
        assert_eq!(content_key(&hub(3), None, head).unwrap_err(), BundleError::NotForThisHub(2));
        assert_eq!(content_key(&south, None, &head[..head.len() - 1]).unwrap_err(), BundleError::Truncated);
        assert_eq!(head_len(b"AIDMESH-BUNDLE-2 too short").unwrap_err(), BundleError::Truncated);
        let mut many = b[..50].to_vec();
        many[48..50].copy_from_slice(&(MAX_RECIPIENTS as u16 + 1).to_be_bytes());
        assert!(matches!(head_len(&many), Err(BundleError::Damaged(_))), "more slots than a bundle is made for");
    }

    #[test]
    fn a_version_1_bundle_opens_with_the_coalition_key_only() {
        let maker = hub(1);
        let b = write_v1(&maker, &[9; 32]);
        assert_eq!(read(&hub(2), Some(&[9; 32]), &b).unwrap().docs[0].1, b"automerge bytes");
        assert_eq!(read(&hub(2), Some(&[8; 32]), &b).unwrap_err(), BundleError::WrongKeyOrTampered);
        assert_eq!(read(&hub(2), None, &b).unwrap_err(), BundleError::WrongKeyOrTampered);
    }
}
