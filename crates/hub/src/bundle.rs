//! USB bundles on the hub side: what goes in, who may have made it, and an all-or-nothing merge.

use std::collections::BTreeMap;

use aidmesh_mesh::bundle::{self, Header};
use aidmesh_mesh::session::DocInfo;
use aidmesh_model::Timestamp;
use automerge::ChangeHash;
use serde::Serialize;

use crate::write::Incoming;
use crate::{Error, Hub, Result};

/// What a bundle holds, as `aidmesh bundle inspect` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct BundleSummary {
    /// Hub id of the exporting hub.
    pub exporter: String,
    /// Its name, if it is a member this hub knows.
    pub exporter_name: Option<String>,
    /// Whether the exporting hub is a current member (only then can the bundle be imported).
    pub member: bool,
    pub created_at: Timestamp,
    pub full: bool,
    pub documents: usize,
    pub bytes: u64,
    /// Records per kind in the bundle (new or changed ones, for an incremental bundle).
    pub records: BTreeMap<String, u64>,
    pub vault_entries: usize,
}

/// A bundle ready to be written; [`Hub::bundle_written`] records it once the file is safe.
pub struct BundleExport {
    pub bytes: Vec<u8>,
    pub summary: BundleSummary,
    heads: BTreeMap<String, Vec<String>>,
}

/// The kind of the records a partition holds.
fn partition_kind(partition: &str) -> String {
    partition.split('/').next().unwrap_or(partition).to_string()
}

impl Hub {
    /// The coalition key (hex), if this hub holds one.
    pub fn coalition_key_hex(&self) -> Result<Option<String>> {
        Ok(self.store.meta("coalition_key")?.filter(|k| !k.is_empty()))
    }

    /// Takes the coalition key handed over when joining.
    pub fn set_coalition_key(&mut self, hex: &str) -> Result<()> {
        if aidmesh_mesh::membership::unhex(hex).is_none_or(|k| k.len() != 32) {
            return Err(Error::Malformed { format: "coalition key", why: "expected 32 bytes in hex".into() });
        }
        Ok(self.store.write(|tx| tx.set_meta("coalition_key", hex))?)
    }

    fn coalition_key(&self) -> Result<[u8; 32]> {
        self.coalition_key_hex()?
            .and_then(|h| aidmesh_mesh::membership::unhex(&h))
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| Error::Malformed {
                format: "bundle",
                why: "this hub holds no coalition key: join the coalition with an invite (`aidmesh join`)".into(),
            })
    }

    /// Builds a bundle of everything (`full`), or of what changed since the last bundle written.
    pub fn export_bundle(&mut self, full: bool) -> Result<BundleExport> {
        let key = self.coalition_key()?;
        let last: BTreeMap<String, Vec<String>> =
            self.store.meta("bundle_heads")?.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default();
        let mut docs = Vec::new();
        let mut heads = BTreeMap::new();
        let mut records: BTreeMap<String, u64> = BTreeMap::new();
        for (doc, partition, created_at, count) in self.store.docs()? {
            if doc == aidmesh_replica::INDEX_DOC {
                continue;
            }
            let info = DocInfo { doc: doc.clone(), partition: partition.clone(), created_at };
            let since: Vec<ChangeHash> = if full {
                Vec::new()
            } else {
                last.get(&doc).map(|hs| hs.iter().filter_map(|h| h.parse().ok()).collect()).unwrap_or_default()
            };
            let d = self.doc(&doc)?;
            let now_heads = d.heads();
            heads.insert(doc.clone(), now_heads.iter().map(|h| h.to_string()).collect());
            if !since.is_empty() && since == now_heads {
                continue;
            }
            let (bytes, n) = if since.is_empty() {
                (self.store.doc_bytes(&doc)?.unwrap_or_default(), count as u64)
            } else {
                let n = d.touched_since(&since).len() as u64;
                (d.save_after(&since), n)
            };
            *records.entry(partition_kind(&partition)).or_insert(0) += n;
            docs.push((info, bytes));
        }
        let vault = self.vault_snapshot()?;
        let header = Header {
            exporter: String::new(),
            created_at: self.clock.now().millis(),
            full,
            docs: vec![],
            vault: vault.clone(),
            records: records.clone(),
        };
        let nonce: [u8; 24] = self.random();
        let bytes = bundle::write(&self.identity, &key, &nonce, header, &docs);
        let summary = BundleSummary {
            exporter: self.fingerprint().to_string(),
            exporter_name: Some(self.hub_name()?),
            member: true,
            created_at: self.clock.now(),
            full,
            documents: docs.len(),
            bytes: bytes.len() as u64,
            records,
            vault_entries: vault.len(),
        };
        Ok(BundleExport { bytes, summary, heads })
    }

    /// Records that a bundle was written safely: the next incremental bundle starts after it.
    pub fn bundle_written(&mut self, e: &BundleExport) -> Result<()> {
        let j = serde_json::to_string(&e.heads).map_err(|x| Error::Corrupt(x.to_string()))?;
        Ok(self.store.write(|tx| tx.set_meta("bundle_heads", &j))?)
    }

    /// Reads a bundle's header without importing it.
    pub fn inspect_bundle(&self, bytes: &[u8]) -> Result<BundleSummary> {
        let key = self.coalition_key()?;
        let b = bundle::read(&key, bytes).map_err(|e| Error::Malformed { format: "bundle", why: e.to_string() })?;
        self.summary(&b, bytes.len())
    }

    fn summary(&self, b: &bundle::Bundle, len: usize) -> Result<BundleSummary> {
        let members = self.members()?;
        let m = members.members.get(&b.exporter);
        Ok(BundleSummary {
            exporter: b.exporter.to_string(),
            exporter_name: m.map(|m| m.name.clone()),
            member: m.is_some(),
            created_at: Timestamp::from_millis(b.header.created_at),
            full: b.header.full,
            documents: b.docs.len(),
            bytes: len as u64,
            records: b.header.records.clone(),
            vault_entries: b.header.vault.len(),
        })
    }

    /// Imports a bundle: all of its documents in one transaction, or nothing. Refused whole when
    /// it cannot be decrypted with this coalition's key, is damaged or tampered with, or was made
    /// by a hub that is not (or no longer) a member. Importing twice changes nothing.
    pub fn import_bundle(&mut self, bytes: &[u8]) -> Result<(BundleSummary, usize)> {
        let key = self.coalition_key()?;
        let b = bundle::read(&key, bytes).map_err(|e| Error::Malformed { format: "bundle", why: e.to_string() })?;
        let summary = self.summary(&b, bytes.len())?;
        if !summary.member {
            let why = if self.members()?.revoked.contains(&b.exporter) {
                format!("it was made by {}, a hub that has been revoked", b.exporter)
            } else {
                format!("it was made by {}, which is not a member of this coalition", b.exporter)
            };
            return Err(Error::Malformed { format: "bundle", why });
        }
        // The documents are authenticated and hashed; applying them all happens in memory first
        // and is written in one transaction, so any failure leaves the store as it was.
        let items: Vec<Incoming<'_>> = b
            .docs
            .iter()
            .map(|(info, data)| Incoming {
                doc: &info.doc,
                partition: &info.partition,
                created_at: Timestamp::from_millis(info.created_at),
                sync_state: None,
                apply: Box::new(move |d: &mut aidmesh_replica::Doc| Ok(d.apply_checked(data).map(|_| ())?)),
            })
            .collect();
        let changed = self.ingest_many(items)?;
        self.vault_merge_items(b.header.vault.clone())?;
        Ok((summary, changed.len()))
    }
}
