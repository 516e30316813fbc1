//! The personal-data vault: real names, contacts and health notes, outside the CRDT.
//!
//! Each entry is sealed with its own key (ChaCha20-Poly1305) inside the already encrypted store.
//! Erasing an entry deletes its key and its ciphertext and leaves a tombstone with no content,
//! so that hubs that sync the vault learn of the erasure and not of what was erased.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rusqlite::{params, OptionalExtension};
use zeroize::Zeroizing;

use crate::{Error, Result, Store, Tx};

/// What the vault holds for an id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VaultState {
    Present(Vec<u8>),
    Erased { at: i64 },
}

/// A vault entry as listed: no content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultEntry {
    pub id: String,
    pub updated_at: i64,
    pub erased_at: Option<i64>,
    pub origin: String,
    /// The origin's version number, and its signature of that version (hex).
    pub version: u64,
    pub sig: String,
    /// Kept at this hub only: never sent to other hubs or written to bundles.
    pub local: bool,
}

/// One read of a vault entry: who, when, and the reason they gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultRead {
    pub at: i64,
    pub by: String,
    pub entry: String,
    pub record: String,
    pub reason: String,
}

impl Store {
    /// Decrypts a vault entry.
    pub fn vault_get(&self, id: &str) -> Result<Option<VaultState>> {
        type Row = (Option<Vec<u8>>, Option<Vec<u8>>, Option<i64>);
        let row: Option<Row> = self
            .conn
            .query_row("SELECT nonce, ciphertext, erased_at FROM vault WHERE id = ?1", [id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        let Some((nonce, ct, erased)) = row else {
            return Ok(None);
        };
        if let Some(at) = erased {
            return Ok(Some(VaultState::Erased { at }));
        }
        let key: Option<Zeroizing<Vec<u8>>> = self
            .conn
            .query_row("SELECT key FROM vault_keys WHERE id = ?1", [id], |r| r.get::<_, Vec<u8>>(0))
            .optional()?
            .map(Zeroizing::new);
        let (Some(key), Some(nonce), Some(ct)) = (key, nonce, ct) else {
            return Err(Error::VaultUnreadable(id.to_string()));
        };
        if key.len() != 32 || nonce.len() != 12 {
            return Err(Error::VaultUnreadable(id.to_string()));
        }
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&key));
        let pt = cipher
            .decrypt(Nonce::from_slice(&nonce), Payload { msg: &ct, aad: id.as_bytes() })
            .map_err(|_| Error::VaultUnreadable(id.to_string()))?;
        Ok(Some(VaultState::Present(pt)))
    }

    /// Every vault entry, without content.
    pub fn vault_list(&self) -> Result<Vec<VaultEntry>> {
        let mut st = self
            .conn
            .prepare("SELECT id, updated_at, erased_at, origin, version, sig, local FROM vault ORDER BY id")?;
        let rows = st.query_map([], |r| {
            Ok(VaultEntry {
                id: r.get(0)?,
                updated_at: r.get(1)?,
                erased_at: r.get(2)?,
                origin: r.get(3)?,
                version: r.get::<_, i64>(4)? as u64,
                sig: r.get(5)?,
                local: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The latest reads of vault entries, newest first.
    pub fn vault_reads(&self, limit: usize) -> Result<Vec<VaultRead>> {
        let mut st =
            self.conn.prepare("SELECT at, by, entry, record, reason FROM vault_reads ORDER BY seq DESC LIMIT ?1")?;
        let rows = st.query_map([limit as i64], |r| {
            Ok(VaultRead { at: r.get(0)?, by: r.get(1)?, entry: r.get(2)?, record: r.get(3)?, reason: r.get(4)? })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

impl Tx<'_> {
    /// Stores (or replaces) a vault entry, sealed with `key` and `nonce` (fresh random values from
    /// the caller). Refuses to bring back an erased entry. A `local` entry stays at this hub.
    #[allow(clippy::too_many_arguments)]
    pub fn vault_put(
        &mut self,
        id: &str,
        key: &[u8; 32],
        nonce: &[u8; 12],
        plaintext: &[u8],
        now: i64,
        origin: &str,
        version: u64,
        sig: &str,
        local: bool,
    ) -> Result<()> {
        let erased: Option<Option<i64>> =
            self.tx.query_row("SELECT erased_at FROM vault WHERE id = ?1", [id], |r| r.get(0)).optional()?;
        if let Some(Some(_)) = erased {
            return Err(Error::Erased(id.to_string()));
        }
        let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
        let ct = cipher
            .encrypt(Nonce::from_slice(nonce), Payload { msg: plaintext, aad: id.as_bytes() })
            .map_err(|_| Error::VaultUnreadable(id.to_string()))?;
        self.tx.execute(
            "INSERT INTO vault(id, nonce, ciphertext, updated_at, erased_at, origin, version, sig, local)
             VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6, ?7, ?8)
             ON CONFLICT(id) DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext,
               updated_at = excluded.updated_at, version = excluded.version, sig = excluded.sig,
               local = excluded.local",
            params![id, &nonce[..], ct, now, origin, version as i64, sig, local],
        )?;
        self.tx.execute(
            "INSERT INTO vault_keys(id, key) VALUES (?1, ?2) ON CONFLICT(id) DO UPDATE SET key = excluded.key",
            params![id, &key[..]],
        )?;
        Ok(())
    }

    /// Erases a vault entry: its key and ciphertext are deleted (with `secure_delete` zeroing the
    /// freed pages) and a content-free tombstone remains; the reasons given for reading it are
    /// blanked. Returns false if there was no such entry. `version` and `sig` are the erasure's
    /// (signed by the origin, or empty when an authority entry stands for it).
    pub fn vault_erase(&mut self, id: &str, now: i64, version: u64, sig: &str) -> Result<bool> {
        self.blank_vault_reads(id)?;
        self.tx.execute("DELETE FROM vault_keys WHERE id = ?1", [id])?;
        let n = self.tx.execute(
            "UPDATE vault SET nonce = NULL, ciphertext = NULL, erased_at = coalesce(erased_at, ?2), updated_at = ?2,
               version = ?3, sig = ?4 WHERE id = ?1",
            params![id, now, version as i64, sig],
        )?;
        Ok(n > 0)
    }

    /// Records the erasure of an entry this hub may never have held (learned from a peer), as
    /// [`Tx::vault_erase`] does (reasons for reading it blanked).
    pub fn vault_tombstone(&mut self, id: &str, at: i64, origin: &str, version: u64, sig: &str) -> Result<()> {
        self.blank_vault_reads(id)?;
        self.tx.execute("DELETE FROM vault_keys WHERE id = ?1", [id])?;
        self.tx.execute(
            "INSERT INTO vault(id, nonce, ciphertext, updated_at, erased_at, origin, version, sig)
             VALUES (?1, NULL, NULL, ?2, ?2, ?3, ?4, ?5)
             ON CONFLICT(id) DO UPDATE SET nonce = NULL, ciphertext = NULL,
               erased_at = coalesce(erased_at, excluded.erased_at), version = excluded.version, sig = excluded.sig",
            params![id, at, origin, version as i64, sig],
        )?;
        Ok(())
    }

    /// Records that `by` read vault entry `entry` (of record `record`) at `at`, and why.
    pub fn log_vault_read(&mut self, at: i64, by: &str, entry: &str, record: &str, reason: &str) -> Result<()> {
        self.tx.execute(
            "INSERT INTO vault_reads(at, by, entry, record, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![at, by, entry, record, reason],
        )?;
        Ok(())
    }

    /// Blanks the reasons logged for reads of `entry` (they may name the person): who read it
    /// and when stay. Every erasure does, however it reaches the hub.
    fn blank_vault_reads(&mut self, entry: &str) -> Result<()> {
        self.tx.execute("UPDATE vault_reads SET reason = '' WHERE entry = ?1", [entry])?;
        Ok(())
    }

    /// Sets the version and signature of a vault entry (stores from before entries were signed).
    pub fn vault_sign(&mut self, id: &str, version: u64, sig: &str) -> Result<()> {
        self.tx.execute("UPDATE vault SET version = ?2, sig = ?3 WHERE id = ?1", params![id, version as i64, sig])?;
        Ok(())
    }
}
