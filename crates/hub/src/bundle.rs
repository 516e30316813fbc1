//! USB bundles on the hub side: what goes in, who may have made it, and an all-or-nothing merge.
//!
//! An incremental bundle holds what its intended hubs may lack: for each of them, the changes
//! after what this hub knows they hold. That knowledge comes from three places, all kept in the
//! store: the sync state of past connections (heads both sides shared), the heads announced in
//! bundles they made, and the heads of bundles this hub wrote for them. Changes that arrive
//! before the changes they build on (bundles imported out of order) are kept until those arrive,
//! so bundles may be imported in any order.

use std::collections::{BTreeMap, BTreeSet};

use aidmesh_mesh::authority::Id;
use aidmesh_mesh::bundle::{self, Header};
use aidmesh_mesh::changes::ChangeSig;
use aidmesh_mesh::session::DocInfo;
use aidmesh_mesh::HubId;
use aidmesh_model::Timestamp;
use automerge::ChangeHash;
use serde::{Deserialize, Serialize};

use crate::signing::Door;
use crate::write::Incoming;
use crate::Driver;
use crate::{Error, Event, Hub, Result, Task};

/// Threads that read a bundle's documents ahead of the hub that writes them (a laptop has at
/// least two cores).
const READERS: usize = 2;

/// What a bundle holds, as `aidmesh bundle inspect` shows it.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
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
    /// The Automerge data inside (documents or changes), before encryption.
    pub data_bytes: u64,
    /// Records per kind in the bundle (new or changed ones, for an incremental bundle).
    pub records: BTreeMap<String, u64>,
    pub vault_entries: usize,
    /// On export: the hubs an incremental bundle was made for (names, or ids when unnamed).
    pub made_for: Vec<String>,
    /// On export: members this hub knows nothing of (never synced, no bundle either way): an
    /// incremental bundle may lack what they need, a full one does not.
    pub unknown_members: Vec<String>,
    /// On import: documents whose changes wait for an earlier bundle (or a sync) to complete them.
    pub waiting_documents: usize,
}

/// A bundle ready to be written; [`Hub::bundle_written`] records it once the file is safe.
pub struct BundleExport {
    pub bytes: Vec<u8>,
    pub summary: BundleSummary,
    heads: BTreeMap<String, Vec<String>>,
    made_for: Vec<HubId>,
}

/// Heads a hub was known to hold at some time (the newest knowledge of each kind wins: a hub's
/// heads only ever move forward).
#[derive(Default, Serialize, Deserialize)]
struct Known {
    at: i64,
    heads: BTreeMap<String, Vec<String>>,
}

/// Where a hub's knowledge keeps the authority log's heads, beside the documents' heads.
const AUTHORITY: &str = "authority";

pub(crate) fn parse_heads<'a>(hs: impl IntoIterator<Item = &'a str>) -> Vec<ChangeHash> {
    hs.into_iter().filter_map(|h| h.parse().ok()).collect()
}

impl Hub {
    /// Whether this hub holds the coalition key (bundles need it).
    pub fn has_coalition_key(&self) -> Result<bool> {
        Ok(self.coalition_key_hex()?.is_some())
    }

    /// The coalition key (hex), if this hub holds one.
    pub(crate) fn coalition_key_hex(&self) -> Result<Option<String>> {
        Ok(self.store.meta("coalition_key")?.filter(|k| !k.is_empty()))
    }

    /// Takes the coalition key handed over when joining.
    pub(crate) fn set_coalition_key(&mut self, hex: &str) -> Result<()> {
        if aidmesh_mesh::hex::decode(hex).is_none_or(|k| k.len() != 32) {
            return Err(Error::Malformed { format: "coalition key", why: "expected 32 bytes in hex".into() });
        }
        Ok(self.store.write(|tx| tx.set_meta("coalition_key", hex))?)
    }

    /// The coalition key a hub got when it joined: what opens version 1 bundles.
    fn coalition_key(&self) -> Result<Option<[u8; 32]>> {
        Ok(self.coalition_key_hex()?.and_then(|h| aidmesh_mesh::hex::decode_array(&h)))
    }

    fn known(&self, key: &str) -> Result<Known> {
        Ok(self.store.meta(key)?.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default())
    }

    /// Keeps `heads` as what `key` says a hub holds, unless newer knowledge is already kept.
    fn learn(&mut self, key: &str, at: i64, heads: &BTreeMap<String, Vec<String>>) -> Result<()> {
        if self.known(key)?.at > at {
            return Ok(());
        }
        let j =
            serde_json::to_string(&Known { at, heads: heads.clone() }).map_err(|e| Error::Corrupt(e.to_string()))?;
        Ok(self.store.write(|tx| tx.set_meta(key, &j))?)
    }

    /// Per document, the heads this hub knows `hub` holds (from syncs and bundles both ways).
    fn knowledge_of(&self, hub: &HubId) -> Result<BTreeMap<String, BTreeSet<String>>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (doc, state) in self.store.sync_states_of(&hub.to_string())? {
            if let Ok(s) = automerge::sync::State::decode(&state) {
                out.entry(doc).or_default().extend(s.shared_heads.iter().map(|h| h.to_string()));
            }
        }
        for key in [format!("bundle_from/{hub}"), format!("bundle_to/{hub}")] {
            for (doc, hs) in self.known(&key)?.heads {
                out.entry(doc).or_default().extend(hs);
            }
        }
        out.retain(|_, hs| !hs.is_empty());
        Ok(out)
    }

    /// Builds a bundle of everything (`full`), or of what the hubs in `made_for` may lack. When
    /// `made_for` is empty it is every other member this hub knows something of, or every other
    /// member if it knows nothing of any (then the bundle holds everything).
    pub fn export_bundle(&mut self, full: bool, made_for: &[String]) -> Result<BundleExport> {
        let members = self.members()?;
        let me = self.fingerprint();
        let mut targets: Vec<(HubId, BTreeMap<String, BTreeSet<String>>)> = Vec::new();
        let mut unknown = Vec::new();
        let mut wanted = BTreeSet::new();
        for w in made_for {
            let id = HubId::parse(w).map_err(|e| Error::Malformed { format: "hub id", why: e.to_string() })?;
            if !members.members.contains_key(&id) {
                return Err(Error::Malformed {
                    format: "hub id",
                    why: format!("{id} is not a member of this coalition (see `aidmesh members`)"),
                });
            }
            wanted.insert(id);
        }
        for (id, m) in &members.members {
            if *id == me || (!wanted.is_empty() && !wanted.contains(id)) {
                continue;
            }
            let k = self.knowledge_of(id)?;
            if k.is_empty() && wanted.is_empty() && !full {
                unknown.push((id.clone(), m.name.clone()));
            } else {
                targets.push((id.clone(), k));
            }
        }
        // Knowing nothing of any member (a first bundle), the bundle is for all of them: whole.
        if targets.is_empty() {
            targets = unknown.drain(..).map(|(id, _)| (id, BTreeMap::new())).collect();
        }
        let unknown: Vec<String> = unknown.into_iter().map(|(_, name)| name).collect();
        let cached_heads = self.store.doc_heads()?;
        let all_docs = self.shared_docs()?;
        let total = all_docs.len() as u64;
        let mut docs = Vec::new();
        let mut heads = BTreeMap::new();
        let mut records: BTreeMap<String, u64> = BTreeMap::new();
        let mut learned_heads = Vec::new();
        let mut sigs = BTreeMap::new();
        for (i, (doc, partition, created_at, _)) in all_docs.into_iter().enumerate() {
            self.emit(Event::Progress { task: Task::BundleExport, done: i as u64, total });
            let info =
                DocInfo { doc: doc.as_str().into(), partition: partition.clone(), created_at, ..Default::default() };
            // What each target holds of this document; a target holding nothing needs it whole.
            let haves: Vec<Option<&BTreeSet<String>>> = targets.iter().map(|(_, k)| k.get(&doc)).collect();
            let whole = full || haves.is_empty() || haves.iter().any(|h| h.is_none());
            if !whole {
                if let Some(now) = cached_heads.get(&doc) {
                    heads.insert(doc.clone(), now.split_whitespace().map(String::from).collect());
                    if now.split_whitespace().all(|h| haves.iter().all(|have| have.is_some_and(|s| s.contains(h)))) {
                        continue;
                    }
                }
            }
            let d = self.doc(&doc)?;
            heads.insert(doc.clone(), d.heads().iter().map(|h| h.to_string()).collect());
            if !cached_heads.contains_key(&doc) {
                learned_heads.push((doc.clone(), d.heads_text()));
            }
            let bytes = if whole {
                for (kind, n) in self.store.kinds_in_doc(&doc)? {
                    *records.entry(kind).or_insert(0) += n as u64;
                }
                self.held_bytes(&doc)?
            } else {
                let mut seen = BTreeSet::new();
                let mut bytes = Vec::new();
                let mut touched = BTreeSet::new();
                for have in haves.into_iter().flatten() {
                    let have = parse_heads(have.iter().map(String::as_str));
                    let changes = d.changes_after(&have);
                    if changes.is_empty() {
                        continue;
                    }
                    let since: Vec<ChangeHash> = have.into_iter().filter(|h| d.has_change(h)).collect();
                    touched.extend(d.touched_since(&since));
                    for c in changes {
                        if seen.insert(c.hash()) {
                            bytes.extend(c.raw_bytes());
                        }
                    }
                }
                if bytes.is_empty() {
                    continue;
                }
                for id in touched {
                    if let Some(kind) = self.store.kind_of(&id.to_string())? {
                        *records.entry(kind).or_insert(0) += 1;
                    }
                }
                bytes
            };
            let (vouching, vouchers) = self.doc_sigs(&doc)?;
            let mut bytes = bytes;
            bytes.extend(vouchers);
            sigs.insert(doc.clone(), vouching.iter().map(|s| aidmesh_mesh::hex::encode(s.to_bytes())).collect());
            docs.push((info, bytes));
        }
        self.emit(Event::Progress { task: Task::BundleExport, done: total, total });
        // Stores written before heads were kept learn them here, once.
        if !learned_heads.is_empty() {
            self.store.write(|tx| learned_heads.iter().try_for_each(|(d, h)| tx.set_heads(d, h)))?;
        }
        let vault = self.vault_snapshot()?;
        // The authority log travels like the documents: what the intended hubs may lack.
        let known: Option<Vec<Vec<Id>>> = targets
            .iter()
            .map(|(_, k)| k.get(AUTHORITY).map(|hs| hs.iter().filter_map(|h| Id::parse(h).ok()).collect()))
            .collect();
        let authority = match known {
            Some(known) if !full && !known.is_empty() => self.log()?.missing_for_any(&known),
            _ => self.authority_entries()?,
        };
        let authority: Vec<String> = authority.into_iter().filter_map(|e| String::from_utf8(e).ok()).collect();
        heads.insert(AUTHORITY.to_string(), self.authority_heads()?.iter().map(Id::hex).collect());
        let header = Header {
            exporter: String::new(),
            created_at: self.clock.now().millis(),
            full,
            docs: vec![],
            vault: vault.clone(),
            records: records.clone(),
            heads: heads.clone(),
            authority,
            sigs,
            whereabouts: self.whereabouts_table()?.entries().cloned().collect(),
        };
        // Sealed for the hubs that are members now, this one included: a hub revoked before
        // this moment cannot open it.
        let mut recipients = vec![*self.identity.public().as_bytes()];
        recipients.extend(members.members.values().map(|m| m.key.0));
        let seal = bundle::Seal { ephemeral: self.random(), content_key: self.random(), nonce: self.random() };
        let bytes = bundle::write(&self.identity, &recipients, &seal, header, &docs);
        let name_of = |id: &HubId| members.members.get(id).map(|m| m.name.clone()).unwrap_or_else(|| id.to_string());
        let summary = BundleSummary {
            exporter: me.to_string(),
            exporter_name: Some(self.hub_name()?),
            member: true,
            created_at: self.clock.now(),
            full,
            documents: docs.len(),
            bytes: bytes.len() as u64,
            data_bytes: docs.iter().map(|d| d.1.len() as u64).sum(),
            records,
            vault_entries: vault.len(),
            made_for: targets.iter().map(|(id, _)| name_of(id)).collect(),
            unknown_members: if full { Vec::new() } else { unknown },
            waiting_documents: 0,
        };
        Ok(BundleExport { bytes, summary, heads, made_for: targets.into_iter().map(|t| t.0).collect() })
    }

    /// Records that a bundle was written safely: the next incremental bundle for the same hubs
    /// starts after it.
    pub fn bundle_written(&mut self, e: &BundleExport) -> Result<()> {
        let at = e.summary.created_at.millis();
        for id in &e.made_for {
            self.learn(&format!("bundle_to/{id}"), at, &e.heads)?;
        }
        Ok(())
    }

    /// The key a bundle is sealed under for this hub, from its head (its first bytes, up to the
    /// ciphertext): what [`read_bundle_file`](crate::read_bundle_file) checks the rest against
    /// before it reads it.
    pub fn bundle_key(&self, head: &[u8]) -> Result<[u8; 32]> {
        let key = self.coalition_key()?;
        bundle::content_key(&self.identity, key.as_ref(), head)
            .map_err(|e| Error::Malformed { format: "bundle", why: e.to_string() })
    }

    /// Reads a bundle's header without importing it.
    pub fn inspect_bundle(&self, bytes: &[u8]) -> Result<BundleSummary> {
        let key = self.coalition_key()?;
        let b = bundle::read(&self.identity, key.as_ref(), bytes)
            .map_err(|e| Error::Malformed { format: "bundle", why: e.to_string() })?;
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
            data_bytes: b.docs.iter().map(|d| d.1.len() as u64).sum(),
            records: b.header.records.clone(),
            vault_entries: b.header.vault.len(),
            made_for: Vec::new(),
            unknown_members: Vec::new(),
            waiting_documents: 0,
        })
    }

    /// Imports a bundle: all of its documents in one transaction, or nothing (indexed one
    /// document at a time, so memory holds one document's records, not the bundle's). Refused
    /// whole when it cannot be decrypted with this coalition's key, is damaged or tampered with,
    /// or was made by a hub that is not (or no longer) a member. Importing twice changes
    /// nothing; changes that build on a bundle not imported yet wait in the store until it is.
    ///
    /// Given the bytes it owns (a file read), the hub frees them once they are decrypted.
    pub fn import_bundle(&mut self, bytes: impl AsRef<[u8]>) -> Result<(BundleSummary, usize)> {
        let key = self.coalition_key()?;
        let len = bytes.as_ref().len();
        let b = bundle::read(&self.identity, key.as_ref(), bytes.as_ref())
            .map_err(|e| Error::Malformed { format: "bundle", why: e.to_string() })?;
        drop(bytes);
        // Authority entries speak for themselves (each is signed and checked at the door), so
        // they go first: a bundle may carry the very admission of the hub that made it.
        let entries: Vec<Vec<u8>> = b.header.authority.iter().map(|e| e.as_bytes().to_vec()).collect();
        // Refusals are kept by source, so many of each: a bundle signed by a key that is no
        // member hub yet (anyone may make a fresh one) counts as one source with all such, so
        // that a pile of them cannot push out what members were refused for.
        let source = match self.members()?.members.contains_key(&b.exporter) {
            true => format!("bundle made by {}", b.exporter),
            false => "bundle made by a hub that was not a member".to_string(),
        };
        self.offer_authority(&entries, &source)?;
        let mut summary = self.summary(&b, len)?;
        if !summary.member {
            let why = if self.members()?.revoked.contains(&b.exporter) {
                format!("it was made by {}, a hub that has been revoked", b.exporter)
            } else {
                format!("it was made by {}, which is not a member of this coalition", b.exporter)
            };
            return Err(Error::Malformed { format: "bundle", why });
        }
        // Whereabouts, each signed by its hub, are judged before any document: a forged one
        // refuses the bundle with nothing of it taken.
        self.merge_whereabouts(b.header.whereabouts.clone(), &format!("bundle made by {}", b.exporter))?;
        if let Some((info, _)) = b
            .docs
            .iter()
            .find(|(i, _)| i.doc == aidmesh_replica::INDEX_DOC || !aidmesh_mesh::session::valid_doc_id(&i.doc))
        {
            let why = format!("it holds document {:?}, which hubs never exchange", info.doc);
            return Err(Error::Malformed { format: "bundle", why });
        }
        // The documents are authenticated and hashed; each change must be vouched for by its
        // hub's signature. They are applied and written one by one inside one store
        // transaction, so any failure leaves the store as it was.
        let sigs = b
            .docs
            .iter()
            .map(|(info, _)| {
                let sigs = b.header.sigs.get(info.doc.as_str()).map(Vec::as_slice).unwrap_or_default();
                sigs.iter()
                    .map(|s| aidmesh_mesh::hex::decode(s).as_deref().and_then(ChangeSig::from_bytes))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| Error::Malformed {
                        format: "bundle",
                        why: format!("document {} has a damaged change signature", info.doc),
                    })
            })
            .collect::<Result<Vec<Vec<ChangeSig>>>>();
        let held = b.docs.iter().map(|(info, _)| self.store.has_doc(&info.doc)).collect::<Result<Vec<bool>, _>>();
        let ingested = match (sigs, held) {
            (Ok(sigs), Ok(held)) => self.ingest_bundle_docs(&b.docs, sigs, held),
            (Err(e), _) => Err(e),
            (_, Err(e)) => Err(e.into()),
        };
        let changed = match ingested {
            Ok(c) => c,
            Err(e) => {
                self.note_refused(&format!("bundle made by {}", b.exporter), &e);
                return Err(e);
            }
        };
        self.vault_merge_items(b.header.vault.clone(), &format!("bundle made by {}", b.exporter))?;
        self.learn(&format!("bundle_from/{}", b.exporter), b.header.created_at, &b.header.heads)?;
        let waiting: BTreeSet<String> = self.store.pending_docs()?.into_iter().collect();
        summary.waiting_documents = b.docs.iter().filter(|(i, _)| waiting.contains(i.doc.as_str())).count();
        Ok((summary, changed.len()))
    }

    /// Ingests a bundle's documents in one store transaction ([`Hub::ingest_many`]).
    /// [`READERS`] threads read the documents ahead, in turn (each loads its document and, for
    /// one this hub holds nothing of (`held`), rebuilds it from its changes, checks it for
    /// rewritten records and reads its index rows) while this one writes the one before. Each
    /// thread holds at most two documents (one waiting in its channel, one it reads or waits to
    /// hand over), so memory holds a few at a time: five with the one being written (handing
    /// each over before reading the next would make it three, as one thread had, for about a
    /// tenth more import time in two runs).
    fn ingest_bundle_docs(
        &mut self,
        docs: &[(DocInfo, Vec<u8>)],
        sigs: Vec<Vec<ChangeSig>>,
        held: Vec<bool>,
    ) -> Result<Vec<String>> {
        std::thread::scope(|scope| {
            let mut turns: Vec<Vec<_>> = (0..READERS).map(|_| Vec::new()).collect();
            for (i, doc) in docs.iter().zip(sigs).zip(held).enumerate() {
                turns[i % READERS].push((i, doc));
            }
            let mut readers = Vec::new();
            for turn in turns {
                let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Result<Door>)>(1);
                readers.push(rx);
                scope.spawn(move || {
                    for (i, (((info, data), sigs), held)) in turn {
                        // A document that makes Automerge panic is refused as malformed, as one
                        // that fails to load is; the hub goes on.
                        let door = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            if held {
                                Door::of_held_bytes("bundle", data, sigs)
                            } else {
                                Door::of_bytes_prepared(&info.doc, "bundle", data, sigs)
                            }
                        }))
                        .unwrap_or_else(|_| {
                            Err(Error::Malformed {
                                format: "bundle",
                                why: format!("document {} cannot be read", info.doc),
                            })
                        });
                        // The import stopped (a refusal): nothing more is read.
                        if tx.send((i, door)).is_err() {
                            return;
                        }
                    }
                });
            }
            // Each document's door comes from its thread, by its place in the bundle (ids may
            // repeat); once the items are gone (the import ended, or stopped early), so are the
            // receivers, and the reading threads stop.
            let readers = std::rc::Rc::new(readers);
            let items = docs
                .iter()
                .enumerate()
                .map(|(i, (info, data))| {
                    let readers = readers.clone();
                    Incoming {
                        doc: &info.doc,
                        partition: &info.partition,
                        created_at: Timestamp::from_millis(info.created_at),
                        sync_state: None,
                        apply: Box::new(move |d: &mut aidmesh_replica::Doc, taken: bool| {
                            if !taken {
                                d.apply_checked(data)?;
                            }
                            Ok(())
                        }),
                        keep: Some(data.as_slice()),
                        door: Box::new(move || match readers[i % READERS].recv() {
                            Ok((at, door)) if at == i => door,
                            _ => Err(Error::Io(std::io::Error::other(format!(
                                "the bundle's document {} was not read in its turn",
                                info.doc
                            )))),
                        }),
                    }
                })
                .collect::<Vec<Incoming<'_>>>();
            drop(readers);
            self.ingest_many(items, Some(Task::BundleImport))
        })
    }
}
