//! USB bundles: a file that carries documents and vault entries between hubs that never meet.
//!
//! Layout: `AIDMESH-BUNDLE-1\n` (16 bytes), a 24-byte nonce, then XChaCha20-Poly1305 ciphertext
//! under the coalition key (the magic is authenticated too). Inside: a u32 length and a JSON
//! header (exporting hub's key, time, documents with their lengths and SHA-256, vault entries,
//! records per kind), the documents' bytes one after the other, and a 64-byte Ed25519 signature
//! by the exporting hub over everything before it. Without the coalition key the file shows
//! nothing but its size. Reading checks every layer and names the first that fails.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::identity::{verify, HubId, Identity};
use crate::membership::{hex, unhex};
use crate::session::{DocInfo, VaultItem};

/// How every bundle file starts.
pub const MAGIC: &[u8; 16] = b"AIDMESH-BUNDLE-1";
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
    #[error("the bundle is damaged: {0}")]
    Damaged(String),
    #[error("the bundle's signature does not match its content")]
    BadSignature,
    #[error("the bundle is too large ({0} bytes)")]
    TooLarge(usize),
}

/// SHA-256 of `bytes`, hex: how a bundle names the content of each document.
pub fn digest(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Writes a bundle: signs with `identity`, encrypts under `key` with `nonce` (fresh random bytes
/// from the caller).
pub fn write(
    identity: &Identity,
    key: &[u8; 32],
    nonce: &[u8; 24],
    mut header: Header,
    docs: &[(DocInfo, Vec<u8>)],
) -> Vec<u8> {
    header.exporter = hex(identity.public().as_bytes());
    header.docs = docs
        .iter()
        .map(|(info, b)| DocEntry { info: info.clone(), len: b.len() as u64, sha256: hex(&Sha256::digest(b)) })
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
    let cipher = XChaCha20Poly1305::new(key.into());
    let ct = cipher.encrypt(XNonce::from_slice(nonce), Payload { msg: &plain, aad: MAGIC }).unwrap_or_default();
    let mut out = Vec::with_capacity(16 + 24 + ct.len());
    out.extend(MAGIC);
    out.extend(nonce);
    out.extend(ct);
    out
}

/// Reads and checks a bundle: magic, decryption, structure, every document's hash, signature.
/// Whether the exporter is a member is for the caller to decide.
pub fn read(key: &[u8; 32], bytes: &[u8]) -> Result<Bundle, BundleError> {
    if bytes.len() > MAX_BUNDLE {
        return Err(BundleError::TooLarge(bytes.len()));
    }
    if bytes.len() < 16 || &bytes[..16] != MAGIC {
        return Err(if MAGIC.starts_with(&bytes[..bytes.len().min(16)]) {
            BundleError::Truncated
        } else {
            BundleError::NotABundle
        });
    }
    if bytes.len() < 16 + 24 + 16 {
        return Err(BundleError::Truncated);
    }
    let cipher = XChaCha20Poly1305::new(key.into());
    let plain = cipher
        .decrypt(XNonce::from_slice(&bytes[16..40]), Payload { msg: &bytes[40..], aad: MAGIC })
        .map_err(|_| BundleError::WrongKeyOrTampered)?;
    if plain.len() < 4 + 64 {
        return Err(BundleError::Damaged("too short".into()));
    }
    let (body, sig) = plain.split_at(plain.len() - 64);
    let hlen = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
    let h = body.get(4..4 + hlen).ok_or_else(|| BundleError::Damaged("header length".into()))?;
    let header: Header = serde_json::from_slice(h).map_err(|e| BundleError::Damaged(format!("header: {e}")))?;
    let key: [u8; 32] = unhex(&header.exporter)
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| BundleError::Damaged("exporter key".into()))?;
    let sig: [u8; 64] = sig.try_into().map_err(|_| BundleError::Damaged("signature".into()))?;
    if !verify(&key, body, &sig) {
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
        if hex(&Sha256::digest(b)) != d.sha256 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    fn sample() -> (Identity, [u8; 32], Vec<u8>) {
        let id = Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(5));
        let key = [9u8; 32];
        let docs = vec![(
            DocInfo { doc: "d1".into(), partition: "item".into(), created_at: 1, ..Default::default() },
            b"automerge bytes".to_vec(),
        )];
        let header = Header {
            exporter: String::new(),
            created_at: 5,
            full: true,
            docs: vec![],
            vault: vec![],
            records: Default::default(),
            heads: Default::default(),
            authority: vec![],
            sigs: Default::default(),
        };
        let b = write(&id, &key, &[1; 24], header, &docs);
        (id, key, b)
    }

    /// Every input the fuzzer was seeded with or ever crashed on stays a regression test.
    #[test]
    fn fuzz_corpus_and_regressions_never_panic() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let mut n = 0;
        for dir in ["corpus/bundle_read", "regressions/bundle_read"] {
            for e in std::fs::read_dir(root.join(dir)).into_iter().flatten().flatten() {
                let bytes = std::fs::read(e.path()).unwrap();
                let _ = read(&[7u8; 32], &bytes);
                let _ = read(&[0u8; 32], &bytes);
                n += 1;
            }
        }
        assert!(n >= 3, "the seed corpus is missing");
    }

    /// Writes the seed corpus (run with AIDMESH_WRITE_CORPUS=1 to refresh it).
    #[test]
    fn seed_corpus_is_current() {
        let id = Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(11));
        let docs = vec![(
            DocInfo { doc: "item-1".into(), partition: "item".into(), created_at: 1, ..Default::default() },
            vec![0x85, 0x6f, 0x4a, 0x83, 1, 2, 3],
        )];
        let header = Header {
            exporter: String::new(),
            created_at: 1,
            full: true,
            docs: vec![],
            vault: vec![],
            records: Default::default(),
            heads: Default::default(),
            authority: vec![],
            sigs: Default::default(),
        };
        let good = write(&id, &[7u8; 32], &[3; 24], header, &docs);
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/bundle_read");
        let want = [("good", good.clone()), ("truncated", good[..good.len() / 2].to_vec()), ("magic", MAGIC.to_vec())];
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
    fn round_trip_and_every_fault_is_named() {
        let (id, key, b) = sample();
        let got = read(&key, &b).unwrap();
        assert_eq!(got.exporter, id.id());
        assert_eq!(got.docs[0].1, b"automerge bytes");
        assert!(!String::from_utf8_lossy(&b).contains("automerge bytes"), "content is encrypted");
        assert_eq!(read(&[8; 32], &b).unwrap_err(), BundleError::WrongKeyOrTampered);
        let mut t = b.clone();
        let n = t.len() - 30;
        t[n] ^= 1;
        assert_eq!(read(&key, &t).unwrap_err(), BundleError::WrongKeyOrTampered);
        assert_eq!(read(&key, &b[..b.len() - 10]).unwrap_err(), BundleError::WrongKeyOrTampered);
        assert_eq!(read(&key, &b[..10]).unwrap_err(), BundleError::Truncated);
        assert_eq!(read(&key, b"PK\\x03\\x04 a zip file").unwrap_err(), BundleError::NotABundle);
        assert_eq!(read(&key, b"").unwrap_err(), BundleError::Truncated);
    }
}
