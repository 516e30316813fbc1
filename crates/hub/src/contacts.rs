//! People's contacts and consent: the vault as coordinators use it.
//!
//! A contact (a real name, a phone number) belongs to one record that names a person: a
//! volunteer, a request, an offer. The record holds only the vault id. Three rules hold for every
//! face:
//! - a volunteer's contact leaves this hub only with consent: one who did not consent to share
//!   it has it kept here only (never synced, never in a bundle). A contact kept here is never
//!   widened by a later change of the record (any member can edit a record): to share it, erase
//!   it and save it again. Withdrawing consent, here or from another hub, erases the shared copy
//!   everywhere and keeps a new one here. A request's or offer's contact is shared: whoever
//!   delivers needs it;
//! - reading one needs an unlocked person of the coalition and a reason, and every read is
//!   logged with both (`contact_reads`), before the content is returned;
//! - erasing follows the vault's rule: the hub that holds the consent, or an admin.

use aidmesh_model::{Body, Consent, FieldError, Kind, Record, Timestamp};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::{Error, Hub, Result, VaultState};

/// Reads a contact's reason must be at least this long (characters, trimmed).
pub const MIN_REASON_CHARS: usize = 4;

/// What the vault holds for a record's contact, as this hub knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ContactState {
    /// The record names no contact.
    None,
    /// Held here; `here_only` when it never leaves this hub; `ours` when this hub holds the
    /// person's consent (it may replace or erase the contact).
    Held { updated_at: Timestamp, here_only: bool, ours: bool },
    /// Erased: content and key destroyed.
    Erased { at: Timestamp },
    /// Named by the record, but not held here (kept at the hub that took it, or not synced yet).
    NotHere,
}

/// A record that names (or may name) a person's contact.
#[derive(Clone, Debug, PartialEq, Serialize, ts_rs::TS)]
pub struct ContactView {
    pub record: String,
    pub kind: Kind,
    /// The record's label: a volunteer's handle, a request's description.
    pub label: String,
    /// A volunteer's consent; requests and offers carry none.
    pub consent: Option<Consent>,
    /// The vault id the record names.
    pub vault: Option<String>,
    pub state: ContactState,
}

/// One read of a contact: who, when, which record, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct ContactRead {
    pub at: Timestamp,
    pub by: String,
    pub vault: String,
    pub record: String,
    pub reason: String,
}

/// The kinds whose records name a contact.
const WITH_CONTACT: [Kind; 3] = [Kind::Volunteer, Kind::Request, Kind::Offer];

pub(crate) fn contact_of(body: &Body) -> Option<(Option<&String>, Option<&Consent>)> {
    match body {
        Body::Volunteer(v) => Some((v.contact.as_ref(), Some(&v.consent))),
        Body::Request(r) => Some((r.contact.as_ref(), None)),
        Body::Offer(o) => Some((o.contact.as_ref(), None)),
        _ => None,
    }
}

impl Hub {
    /// Every volunteer, and every request and offer that names a contact, with what the vault
    /// holds for it. Volunteers first, then by label.
    pub fn contacts(&self) -> Result<Vec<ContactView>> {
        let entries: std::collections::BTreeMap<String, aidmesh_store::VaultEntry> =
            self.store.vault_list()?.into_iter().map(|e| (e.id.clone(), e)).collect();
        let mut out = Vec::new();
        for kind in WITH_CONTACT {
            let mut views: Vec<ContactView> = self
                .all(kind)?
                .iter()
                .filter_map(|r| {
                    let (vault, consent) = contact_of(&r.body)?;
                    if vault.is_none() && kind != Kind::Volunteer {
                        return None;
                    }
                    Some(ContactView {
                        record: r.id().to_string(),
                        kind,
                        label: r.body.label(),
                        consent: consent.cloned(),
                        vault: vault.cloned(),
                        state: self.state_of(vault.map(|v| entries.get(v)), vault.is_some()),
                    })
                })
                .collect();
            views.sort_by_key(|v| v.label.to_lowercase());
            out.extend(views);
        }
        Ok(out)
    }

    /// The contact of one record.
    pub fn contact(&self, record: &str) -> Result<ContactView> {
        let rec = self.get(record)?;
        let (vault, consent) = contact_of(&rec.body).ok_or_else(|| no_contact(&rec.meta.kind))?;
        let entry = match vault {
            Some(v) => self.store.vault_list()?.into_iter().find(|e| &e.id == v),
            None => None,
        };
        Ok(ContactView {
            record: record.to_string(),
            kind: rec.kind(),
            label: rec.body.label(),
            consent: consent.cloned(),
            vault: vault.cloned(),
            state: self.state_of(vault.map(|_| entry.as_ref()), vault.is_some()),
        })
    }

    fn state_of(&self, entry: Option<Option<&aidmesh_store::VaultEntry>>, named: bool) -> ContactState {
        match entry.flatten() {
            _ if !named => ContactState::None,
            None => ContactState::NotHere,
            Some(e) => match e.erased_at {
                Some(at) => ContactState::Erased { at: Timestamp::from_millis(at) },
                None => ContactState::Held {
                    updated_at: Timestamp::from_millis(e.updated_at),
                    here_only: e.local,
                    ours: e.origin == self.hub_id,
                },
            },
        }
    }

    /// Stores a record's contact and has the record name it. The fields given (`name`, `phone`,
    /// `access_needs`, ...) change those of the contact this hub holds the consent for, the
    /// others stay: a form that adds access needs does not wipe the number it did not show. A
    /// field given empty (or null) is removed; at least one must have a value (to remove the
    /// contact, erase it). A contact taken at another hub is never copied: the new entry here
    /// holds the fields given. One another record names too (pointed at by hand) is refused.
    ///
    /// A volunteer's contact is kept at this hub only unless they consented to share it. A
    /// contact this hub holds the consent for is replaced in place (a new version); one taken
    /// elsewhere, erased, or shared when consent is now withdrawn is replaced by a new entry
    /// (the withdrawn one is erased on every hub).
    pub fn set_contact(&mut self, record: &str, fields: &Map<String, Value>) -> Result<ContactView> {
        let rec = self.get(record)?;
        let (vault, consent) = contact_of(&rec.body).ok_or_else(|| no_contact(&rec.meta.kind))?;
        let empty = |v: &Value| v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty());
        if fields.values().all(empty) {
            let why = "no value given: give at least one field with a value (one given empty is removed from the contact; to remove the contact, erase it)";
            return Err(Error::invalid("contact", vec![FieldError::new("", why)]));
        }
        let here_only = consent.is_some_and(|c| !c.share);
        let current = match vault {
            Some(v) => self.store.vault_list()?.into_iter().find(|e| &e.id == v),
            None => None,
        };
        // What the contact holds now, with the fields given (not a read: nothing is shown): a
        // contact this hub holds the consent for. One another record names too (a member's
        // hand-written change pointed one of them at it) is neither changed nor copied: which
        // record it was made for is not known here, and a copy would outlive its erasure.
        let own = current.filter(|e| e.erased_at.is_none() && e.origin == self.hub_id);
        if let Some(e) = &own {
            let others: Vec<String> = self.naming(&e.id)?.into_iter().filter(|r| r != rec.id().as_str()).collect();
            if !others.is_empty() {
                let why = format!(
                    "its contact {} is also named by {} (pointed at it by hand): an admin erases it on every hub (aidmesh vault erase {}), then save the contact again",
                    e.id,
                    others.join(", "),
                    e.id
                );
                return Err(Error::invalid("contact", vec![FieldError::new("contact", why)]));
            }
        }
        let mut merged = match &own {
            Some(e) => match self.store.vault_get(&e.id)? {
                Some(VaultState::Present(content)) => fields_of(&content),
                _ => Map::new(),
            },
            None => Map::new(),
        };
        for (k, v) in fields {
            match empty(v) {
                true => merged.remove(k),
                false => merged.insert(k.clone(), v.clone()),
            };
        }
        let fields = &merged;
        let (id, withdrawn) = match own {
            // Kept here stays here: a record's consent is anyone's to edit.
            Some(e) if e.local || !here_only => {
                (self.put_vault_entry(Some((&e.id, e.version + 1)), fields, e.local)?, None)
            }
            // Consent to share was withdrawn: the shared copy goes everywhere it went, erased
            // once the record names the new one.
            Some(e) => (self.put_vault_entry(None, fields, here_only)?, Some(e.id)),
            // None yet, erased, taken at another hub, or another's: a new entry of its own.
            None => (self.put_vault_entry(None, fields, here_only)?, None),
        };
        if vault != Some(&id) {
            let mut patch = Map::new();
            patch.insert("contact".into(), Value::String(id.clone()));
            // A new entry no record names would stay on every hub: erased if the record refuses it.
            if let Err(e) = self.update_as(record, patch, true) {
                self.vault_erase(&id)?;
                return Err(e);
            }
        }
        if let Some(old) = withdrawn {
            self.vault_erase(&old)?;
        }
        self.contact(record)
    }

    /// A record's contact, for `reason`: the read is logged with the unlocked person's handle
    /// and the reason before the content is returned. `who` is a record id or a vault id.
    pub fn read_contact(&mut self, who: &str, reason: &str) -> Result<Map<String, Value>> {
        let reason = reason.trim();
        if reason.chars().count() < MIN_REASON_CHARS {
            return Err(Error::invalid(
                "contact read",
                vec![FieldError::new(
                    "reason",
                    format!(
                        "say why you need this person's contact (at least {MIN_REASON_CHARS} characters): every read is logged with its reason"
                    ),
                )],
            ));
        }
        let person = self.acting_identity()?;
        let key = aidmesh_mesh::authority::Key::of(person);
        if self.resolved()?.person_of(&key).is_none() {
            return Err(Error::NotAllowed(format!(
                "{} is not a person of the coalition: only its people read contacts",
                self.acting_handle()
            )));
        }
        let (vault, record) = if self.store.record(who)?.is_none() {
            // A vault id: logged with the record that names it. An entry no record names (stored
            // with `vault put`) is an admin's to read.
            match self.owner_of(who)? {
                Some(r) => (who.to_string(), r),
                None if self.acting_is_admin()? => (who.to_string(), String::new()),
                None => {
                    return Err(Error::NotAllowed(format!(
                        "no volunteer, request or offer names {who}: only an admin reads it"
                    )))
                }
            }
        } else {
            let rec = self.get(who)?;
            let (vault, _) = contact_of(&rec.body).ok_or_else(|| no_contact(&rec.meta.kind))?;
            let vault = vault.cloned().ok_or_else(|| Error::NoContact(format!("record {who} names no contact")))?;
            (vault, who.to_string())
        };
        let content = match self.store.vault_get(&vault)? {
            Some(VaultState::Present(b)) => b,
            Some(VaultState::Erased { at }) => {
                return Err(Error::NoContact(format!(
                    "contact {vault} was erased at {}: its content and key are destroyed",
                    Timestamp::from_millis(at)
                )))
            }
            None => {
                return Err(Error::NoContact(format!(
                    "contact {vault} is not held at this hub (kept at the hub that took it, or not synced yet)"
                )))
            }
        };
        let at = self.clock.now().millis();
        let by = self.acting_handle();
        self.store.write(|tx| tx.log_vault_read(at, &by, &vault, &record, reason))?;
        Ok(fields_of(&content))
    }

    /// Erases a record's contact (see [`Hub::vault_erase`] for who may).
    pub fn erase_contact(&mut self, record: &str) -> Result<ContactView> {
        let rec = self.get(record)?;
        let (vault, _) = contact_of(&rec.body).ok_or_else(|| no_contact(&rec.meta.kind))?;
        let vault = vault.cloned().ok_or_else(|| Error::NoContact(format!("record {record} names no contact")))?;
        if !aidmesh_model::is_vault_id(&vault) {
            return Err(Error::NoContact(format!(
                "record {record} names no vault entry as its contact ({vault:?} was typed into it by hand, and stays in its history): clear it (contact=null) or set its contact with the contact form"
            )));
        }
        self.vault_erase(&vault)?;
        self.contact(record)
    }

    /// The latest reads of contacts at this hub, newest first: for a person unlocked here.
    pub fn contact_reads(&self, limit: usize) -> Result<Vec<ContactRead>> {
        self.acting_identity()?;
        Ok(self
            .store
            .vault_reads(limit)?
            .into_iter()
            .map(|r| ContactRead {
                at: Timestamp::from_millis(r.at),
                by: r.by,
                vault: r.entry,
                record: r.record,
                reason: r.reason,
            })
            .collect())
    }
}

impl Hub {
    /// The records that name vault entry `vault`.
    fn naming(&self, vault: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for kind in WITH_CONTACT {
            for r in self.all(kind)? {
                if contact_of(&r.body).and_then(|(v, _)| v).is_some_and(|v| v == vault) {
                    out.push(r.id().to_string());
                }
            }
        }
        Ok(out)
    }

    /// Whether `value` may be written by hand as `current`'s contact: one of the values hubs
    /// wrote apart (keeping one settles the conflict; nothing among them), or nothing in place
    /// of a contact typed by hand, which is no vault id (the typed text stays in the history).
    pub(crate) fn contact_by_hand(&mut self, current: &Record, value: &Value) -> Result<bool> {
        let typed = contact_of(&current.body).and_then(|(v, _)| v).is_some_and(|c| !aidmesh_model::is_vault_id(c));
        if value.is_null() && typed {
            return Ok(true);
        }
        self.settles_conflict(current, "contact", value)
    }

    /// Whether `value` is one of the values hubs wrote apart to `field` of `current`: keeping it
    /// settles the conflict and writes nothing new.
    pub(crate) fn settles_conflict(&mut self, current: &Record, field: &str, value: &Value) -> Result<bool> {
        let Some((_, doc_id, _)) = self.store.record(current.id().as_str())? else { return Ok(false) };
        let conflicts = self.doc(&doc_id)?.conflicts(current.id())?;
        Ok(conflicts.into_iter().any(|c| c.field == field && c.values.contains(value)))
    }

    /// The record that names vault entry `vault`, if any.
    pub(crate) fn owner_of(&self, vault: &str) -> Result<Option<String>> {
        Ok(self.naming(vault)?.into_iter().next())
    }

    /// Contacts whose volunteer withdrew consent to share them, among `ids` (records just
    /// written here or merged): each shared copy this hub holds the consent for is erased on
    /// every hub, and the contact is kept here only, under a new id.
    pub(crate) fn keep_withdrawn_here(&mut self, ids: &[String]) -> Result<()> {
        let shared: std::collections::BTreeSet<String> = self
            .store
            .vault_list()?
            .into_iter()
            .filter(|e| e.origin == self.hub_id && !e.local && e.erased_at.is_none())
            .map(|e| e.id)
            .collect();
        if shared.is_empty() {
            return Ok(());
        }
        for id in ids {
            // Volunteers only, told apart by the index before any record is read.
            if !matches!(self.store.record(id)?, Some((kind, _, _)) if kind == Kind::Volunteer.name()) {
                continue;
            }
            let Ok(rec) = self.get(id) else { continue };
            let Body::Volunteer(v) = &rec.body else { continue };
            let Some(vault) = v.contact.as_ref().filter(|c| !v.consent.share && shared.contains(*c)) else {
                continue;
            };
            // A record that names another's contact (edited to point at it) moves nothing.
            if self.naming(vault)? != [id.clone()] {
                continue;
            }
            let Some(VaultState::Present(content)) = self.store.vault_get(vault)? else { continue };
            let fields = fields_of(&content);
            let vault = vault.clone();
            // The record names the new entry before the old one is erased: a failure leaves the
            // contact where it was, never erased with nothing naming its copy.
            let kept = self.put_vault_entry(None, &fields, true)?;
            let mut patch = Map::new();
            patch.insert("contact".into(), Value::String(kept.clone()));
            // The hub's own doing, not the unlocked person's: signed by the hub alone.
            if let Err(e) = self.as_hub(|h| h.update_as(id, patch, true)) {
                self.vault_erase(&kept)?;
                return Err(e);
            }
            self.vault_erase(&vault)?;
        }
        Ok(())
    }
}

fn no_contact(kind: &Kind) -> Error {
    Error::invalid(
        kind.name(),
        vec![FieldError::new(
            "contact",
            format!("a {kind} names no person's contact; volunteers, requests and offers do"),
        )],
    )
}

/// The fields of a vault entry's content; one stored as plain text by older hubs reads as one
/// field, `text`.
fn fields_of(content: &[u8]) -> Map<String, Value> {
    match serde_json::from_slice::<Value>(content) {
        Ok(Value::Object(m)) => m,
        _ => {
            let mut m = Map::new();
            m.insert("text".into(), Value::String(String::from_utf8_lossy(content).into_owned()));
            m
        }
    }
}
