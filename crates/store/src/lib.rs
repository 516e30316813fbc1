//! The hub's one file on disk: an SQLCipher database unlocked by a passphrase.
//!
//! It holds the Automerge documents as chunks, per-peer sync state, a query index rebuilt from
//! the CRDT (records as JSON, full-text search, stock levels), and the personal-data vault.
//! Writes go through [`Store::write`], one SQLite transaction: a write the caller was told
//! succeeded is durable (WAL, `synchronous=FULL`), and a failed one leaves nothing behind. What
//! a peer sends again if it is lost goes through [`Store::write_resendable`], which groups such
//! writes into fewer commits that do not wait for the disk (a group may be lost whole: see
//! there, and [`Store::take_lost`]).
//! The store knows nothing of domain rules beyond the stock deltas it is handed.

#[cfg(feature = "forensic")]
pub mod forensic;
mod key;
mod schema;
mod vault;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, ErrorCode, OptionalExtension};
use zeroize::Zeroizing;

pub use vault::{VaultEntry, VaultRead, VaultState};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("wrong passphrase for {0}, or the file is not an aidmesh store")]
    WrongPassphrase(PathBuf),
    #[error("no store at {0}: run `aidmesh init` first")]
    Missing(PathBuf),
    #[error("a store already exists at {0}")]
    Exists(PathBuf),
    #[error("the store at {path} was written by a newer aidmesh (schema {found}, this one knows up to {known})")]
    TooNew { path: PathBuf, found: i64, known: i64 },
    #[error("the disk is full: nothing was written ({0})")]
    DiskFull(String),
    #[error("the store file is damaged: {0}")]
    Corrupt(String),
    #[error("the passphrase must not be empty")]
    EmptyPassphrase,
    #[error("cannot derive the store key: {0}")]
    Key(String),
    #[error("vault entry {0} is unreadable: its key is gone or the data was altered")]
    VaultUnreadable(String),
    #[error("vault entry {0} was erased")]
    Erased(String),
    #[error(
        "the store at {path} is open in another aidmesh process{} (`aidmesh serve` or the desktop app): \
         stop it first, or work through it (the `aidmesh` command does so by itself)",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Busy { path: PathBuf, pid: Option<u32> },
    #[error("cannot lock {path}: {why}")]
    Lock { path: PathBuf, why: String },
    #[error(
        "the log of the store at {0} could not be folded into its file and emptied (a reader kept it busy): \
         what was just erased may linger in the log until its next fold"
    )]
    LogNotFolded(PathBuf),
    #[error("storage error: {0}")]
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => Error::DiskFull(e.to_string()),
            Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase) => Error::Corrupt(e.to_string()),
            _ => Error::Sqlite(e),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An authority log entry as stored: its id and its bytes.
pub type AuthorityRow = (Vec<u8>, Vec<u8>);

/// SQLite page cache, in KiB.
const CACHE_KIB: i64 = 64 * 1024;
/// Resendable writes that one transaction holds at most ([`Store::write_resendable`]).
pub const GROUP_WRITES: u32 = 32;

/// Pages of write-ahead log (4 KiB each) past which a writer's commit folds it into the file;
/// below it, upkeep does when the hub is idle. SQLite's default is 1,000.
pub const AUTOCHECKPOINT_PAGES: i64 = 8192;
/// The same while a [`LogFolder`] folds the log on a thread of its own (a fold of 8,192 pages
/// took 30–50 ms inside the commit of one edit on the full bench coalition).
pub const FOLDED_ELSEWHERE_PAGES: i64 = 65_536;
/// Bytes the log file is cut back to once folded (SQLite otherwise keeps it at its largest).
const JOURNAL_SIZE_LIMIT: i64 = 64 << 20;

/// One row of the query index: a record as the CRDT holds it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexRow {
    pub id: String,
    pub kind: String,
    pub doc: String,
    pub created_at: i64,
    pub label: String,
    pub search_text: String,
    /// The record's flat JSON.
    pub json: String,
    /// How many fields hold concurrent values waiting for a person.
    pub conflicts: i64,
    /// References to other records: (field, target id).
    pub refs: Vec<(String, String)>,
}

/// A search hit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    pub id: String,
    pub kind: String,
    pub label: String,
}

/// Shifts around a window of time, as the roster reads them: starting in
/// `[starts_from, starts_before)` and ending after `ends_after` (timestamps as records carry
/// them, which sort as text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShiftWindow {
    pub starts_from: String,
    pub starts_before: String,
    pub ends_after: String,
}

/// The open store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Transactions committed through this handle: how upkeep tells that nothing was written.
    writes: u64,
    /// `writes` when upkeep last folded the log into the file.
    folded_at: u64,
    /// Whether the connection commits with `synchronous=FULL` now (see [`Store::write`]).
    full: bool,
    /// Whether a batch is open ([`Store::begin`]).
    batch: bool,
    /// SQLCipher's raw `PRAGMA key` value that opens this file now, for a [`LogFolder`];
    /// `None` while the store is still keyed by SQLCipher's own derivation of the passphrase
    /// (its re-key failed), which is not kept.
    key: Option<Zeroizing<String>>,
    /// Shared with the [`LogFolder`] made last, if any.
    folding: Option<Arc<Folding>>,
    /// The log's pages past which this connection's commits fold it, as set now.
    autocheckpoint: i64,
    /// Held for as long as the store is open: one process owns a store at a time.
    _owner: OwnerLock,
    /// Resendable writes in the open group, not yet committed ([`Store::write_resendable`]);
    /// 0 when no group is open.
    grouped: std::cell::Cell<u32>,
    /// Whether a group was lost since [`Store::take_lost`] was last asked.
    lost: std::cell::Cell<bool>,
}

/// A second connection to a store that folds its write-ahead log into the file, made by
/// [`Store::log_folder`] to run on a thread of its own: the hub's writes never wait for a fold
/// (SQLite's passive checkpoint), and a fold waits only for an erasure's ([`Store::checkpoint`]).
pub struct LogFolder {
    conn: Connection,
    shared: Arc<Folding>,
}

/// What a [`Store`] and its [`LogFolder`] share: one fold at a time (an erasure's fold waits
/// for the folder's), and whether the folder folds (if not, the store's commits fold again).
struct Folding {
    one_at_a_time: Mutex<()>,
    folds: AtomicBool,
}

/// What one [`LogFolder::fold`] found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Folded {
    /// Pages in the log.
    pub log: i64,
    /// Of them, pages now in the file.
    pub folded: i64,
}

impl LogFolder {
    /// Folds as much of the log into the file as no reader still needs, and makes it durable.
    /// While folds fail, the store's own commits fold the log again, as without a folder.
    pub fn fold(&mut self) -> Result<Folded> {
        let _one = self.shared.one_at_a_time.lock().unwrap_or_else(|e| e.into_inner());
        let r = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)));
        self.shared.folds.store(r.is_ok(), Ordering::Relaxed);
        let (log, folded) = r?;
        Ok(Folded { log: log.max(0), folded: folded.max(0) })
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // What peers sent, grouped and not yet committed, is kept (their sync states with it).
        if let Err(e) = self.settle() {
            tracing::error!(store = %self.path.display(), error = %e, "cannot commit what peers sent last");
        }
    }
}

impl Drop for LogFolder {
    fn drop(&mut self) {
        self.shared.folds.store(false, Ordering::Relaxed);
    }
}

/// The exclusive OS lock that makes a process a store's one owner: `flock` on `<store>.lock`
/// beside the file, held by an open file description until it is closed (or the process dies,
/// however it dies). The lock file also tells the next comer which process holds it.
struct OwnerLock(#[allow(dead_code)] std::fs::File);

/// A file beside the store at `path`: `sibling("hub.aidmesh", ".lock")` is `hub.aidmesh.lock`.
/// The path is resolved first (symbolic links, `..`), so that every name of one store file
/// leads to the same lock and socket.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let path = resolved(path);
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// `path` with symbolic links and relative parts resolved, as far as it exists.
fn resolved(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => {
            let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
            std::fs::canonicalize(dir).map(|d| d.join(name)).unwrap_or_else(|_| path.to_path_buf())
        }
        _ => path.to_path_buf(),
    }
}

impl OwnerLock {
    fn take(path: &Path) -> Result<OwnerLock> {
        use std::io::{Read, Seek, Write};
        let lock_path = sibling(path, ".lock");
        let lock_err = |e: std::io::Error| Error::Lock { path: lock_path.clone(), why: e.to_string() };
        if std::fs::symlink_metadata(&lock_path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(lock_err(std::io::Error::other("it is a symbolic link, not the store's own lock file")));
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut file = opts.open(&lock_path).map_err(lock_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut s = String::new();
                let _ = file.read_to_string(&mut s);
                return Err(Error::Busy { path: path.to_path_buf(), pid: s.trim().parse().ok() });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(lock_err(e)),
        }
        file.set_len(0).map_err(lock_err)?;
        file.rewind().map_err(lock_err)?;
        write!(file, "{}", std::process::id()).map_err(lock_err)?;
        Ok(OwnerLock(file))
    }
}

/// Creates the empty file a new store goes into, readable and writable by its owner only
/// (SQLite gives its journal the same mode).
fn owner_only(path: &Path) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path).map(drop)
}

/// Makes a store's files (made before stores were created owner-only) readable by their owner
/// only. Best effort: a file system without modes keeps what it has.
fn tighten(path: &Path) {
    #[cfg(unix)]
    for p in [path.to_path_buf(), sibling(path, "-wal"), sibling(path, "-shm")] {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(&p) {
            if m.permissions().mode() & 0o077 != 0 {
                if let Err(e) = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
                    tracing::warn!(file = %p.display(), error = %e, "cannot make the store owner-only");
                }
            }
        }
    }
}

/// Removes a store's files: the database, SQLite's journal beside it, then its lock file. The
/// only place that knows which files a store is.
fn remove_files(path: &Path) -> Result<()> {
    for p in [path.to_path_buf(), sibling(path, "-wal"), sibling(path, "-shm")] {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::Lock { path: p, why: format!("cannot remove it: {e}") }),
        }
    }
    let _ = std::fs::remove_file(sibling(path, ".lock"));
    Ok(())
}

/// A connection made by `open` with `key` (SQLCipher's `PRAGMA key` value: a raw key, or a
/// passphrase for SQLCipher's own derivation) and proven by a first read: a wrong key is
/// [`Error::WrongPassphrase`].
///
/// SQLCipher's key can fail to attach for a reason of SQLCipher's own (its crypto provider's
/// start-up, seen once in CI while many test threads opened and closed stores); the connection
/// is then read-only for good. Such a failure is tried again on a new connection, twice at
/// most; a wrong passphrase is never tried again.
fn keyed(path: &Path, key: &str, open: impl Fn() -> rusqlite::Result<Connection>) -> Result<Connection> {
    let mut tries = 0;
    loop {
        let conn = open()?;
        // A wrong passphrase is reported as an error; SQLCipher need not also log it to stderr.
        let _ = conn.execute_batch("PRAGMA cipher_log_level = NONE");
        match conn.pragma_update(None, "key", key) {
            Ok(()) => {}
            Err(e) if tries < 2 && e.to_string().contains("PRAGMA key") => {
                tries += 1;
                drop(conn);
                std::thread::sleep(std::time::Duration::from_millis(20 * tries));
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        // The first read proves the key: SQLCipher reports a wrong one as "not a database".
        let probe: rusqlite::Result<i64> = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0));
        return match probe {
            Ok(_) => Ok(conn),
            Err(e) if matches!(e.sqlite_error_code(), Some(ErrorCode::NotADatabase)) => {
                Err(Error::WrongPassphrase(path.to_path_buf()))
            }
            Err(e) => Err(e.into()),
        };
    }
}

impl Store {
    /// [`Error::Busy`] if a process owns the store at `path` now, checked without opening it:
    /// a command asks before it prompts for a passphrase.
    pub fn ensure_free(path: &Path) -> Result<()> {
        OwnerLock::take(path).map(drop)
    }

    /// The store around a keyed connection, before it is configured.
    fn opened(conn: Connection, path: &Path, key: Option<Zeroizing<String>>, owner: OwnerLock) -> Store {
        Store {
            conn,
            path: path.to_path_buf(),
            writes: 0,
            folded_at: 0,
            full: true,
            batch: false,
            key,
            folding: None,
            autocheckpoint: AUTOCHECKPOINT_PAGES,
            _owner: owner,
            grouped: std::cell::Cell::new(0),
            lost: std::cell::Cell::new(false),
        }
    }

    /// Creates a new store at `path`, keyed by `passphrase` with `salt` (random, from the
    /// caller, and the file's for its life). Fails if a file is already there.
    pub fn create(path: &Path, passphrase: &str, salt: [u8; 16]) -> Result<Store> {
        if passphrase.is_empty() {
            return Err(Error::EmptyPassphrase);
        }
        let owner = OwnerLock::take(path)?;
        if path.exists() {
            return Err(Error::Exists(path.to_path_buf()));
        }
        let derived = key::derive(passphrase, &salt)?;
        let raw = key::raw(&derived, Some(&salt));
        let made = owner_only(path).map_err(|e| Error::Lock { path: path.to_path_buf(), why: e.to_string() });
        let conn = match made.and_then(|_| keyed(path, &raw, || Connection::open(path))) {
            Ok(c) => c,
            Err(e) => {
                let _ = remove_files(path);
                return Err(e);
            }
        };
        let mut s = Store::opened(conn, path, Some(key::raw(&derived, None)), owner);
        // A store that could not be set up is removed again: nothing half-made stays behind.
        if let Err(e) = s.configure().and_then(|_| schema::migrate(&mut s.conn, &s.path)) {
            let _ = s.destroy();
            return Err(e);
        }
        Ok(s)
    }

    /// Opens an existing store. A wrong passphrase is [`Error::WrongPassphrase`]; nothing is created.
    /// A store keyed by SQLCipher's own derivation (made before keys came from Argon2id) is
    /// re-keyed now, once.
    pub fn open(path: &Path, passphrase: &str) -> Result<Store> {
        if !path.is_file() {
            return Err(Error::Missing(path.to_path_buf()));
        }
        let owner = OwnerLock::take(path)?;
        let raw = key::pragma(passphrase, &key::file_salt(path)?, false)?;
        let open = || {
            Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
        };
        let (conn, legacy) = match keyed(path, &raw, open) {
            Ok(c) => (c, false),
            Err(Error::WrongPassphrase(_)) if !passphrase.is_empty() => (keyed(path, passphrase, open)?, true),
            Err(e) => return Err(e),
        };
        let mut s = Store::opened(conn, path, (!legacy).then(|| raw.clone()), owner);
        s.configure()?;
        schema::migrate(&mut s.conn, &s.path)?;
        tighten(path);
        // Best effort: if the re-key cannot be written (a full disk), the old key still opens
        // the store, and the next unlock tries again.
        if legacy {
            match s.conn.pragma_update(None, "rekey", raw.as_str()) {
                Ok(()) => s.key = Some(raw),
                Err(e) => {
                    tracing::warn!(store = %path.display(), error = %e, "cannot re-key the store with Argon2id yet")
                }
            }
        }
        Ok(s)
    }

    /// Closes the store and removes its files (the database with SQLite's journal beside it,
    /// and the lock): for a store that never came to be, such as one made for a join that
    /// failed. Its pages were encrypted; nothing readable is left behind.
    pub fn destroy(mut self) -> Result<()> {
        self.settle()?;
        // Closed here, to learn that it closed, while the lock is still held.
        let conn = std::mem::replace(&mut self.conn, Connection::open_in_memory()?);
        conn.close().map_err(|(_, e)| Error::from(e))?;
        remove_files(&self.path)
    }

    /// Removes the store at `path` with its files, as [`Store::destroy`] does, without opening
    /// it (no passphrase is needed to throw away what cannot be read): [`Error::Busy`] while a
    /// process owns it.
    pub fn remove(path: &Path) -> Result<()> {
        let _owner = OwnerLock::take(path)?;
        remove_files(path)
    }

    /// SQLCipher's `PRAGMA key` value that opens the store at `path` with `passphrase`: for
    /// tools that read the file with SQLCipher itself (tests that damage a store on purpose).
    /// Whoever has the passphrase can compute it; it gives nothing more.
    pub fn sqlcipher_key(path: &Path, passphrase: &str) -> Result<zeroize::Zeroizing<String>> {
        key::pragma(passphrase, &key::file_salt(path)?, false)
    }

    /// Whether `passphrase` opens this store, checked on a second connection (the owner asks;
    /// nothing is written).
    pub fn check_passphrase(&self, passphrase: &str) -> Result<()> {
        let raw = key::pragma(passphrase, &key::file_salt(&self.path)?, false)?;
        keyed(&self.path, &raw, || Connection::open_with_flags(&self.path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY))
            .map(drop)
    }

    fn configure(&mut self) -> Result<()> {
        self.conn.pragma_update(None, "journal_mode", "WAL")?;
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        // The log is folded into the file when the hub is idle (`Store::upkeep`); a hub that is
        // never idle folds it in a writer's commit once it holds this many pages.
        self.conn.pragma_update(None, "wal_autocheckpoint", AUTOCHECKPOINT_PAGES)?;
        // A log that grew large (a bundle's import, a busy hub) shrinks back once folded.
        self.conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)?;
        self.conn.pragma_update(None, "secure_delete", "ON")?;
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        // Every page read from disk is decrypted and authenticated: keep the hot ones in memory.
        self.conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        self.conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(())
    }

    /// A [`LogFolder`] for this store, to run on a thread of its own. While it folds, the
    /// store's own commits fold the log only past [`FOLDED_ELSEWHERE_PAGES`]; once it fails or
    /// is dropped, past [`AUTOCHECKPOINT_PAGES`] again. Drop it before the store: a folder
    /// that outlives its store keeps the file open. A store whose re-key to Argon2id failed
    /// has none ([`Error::Key`]).
    pub fn log_folder(&mut self) -> Result<LogFolder> {
        let key = self.key.as_ref().ok_or_else(|| {
            Error::Key("the store is not re-keyed with Argon2id yet: its log is folded by its own commits".into())
        })?;
        let open = || {
            Connection::open_with_flags(
                &self.path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
        };
        let conn = keyed(&self.path, key, open)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let shared = Arc::new(Folding { one_at_a_time: Mutex::new(()), folds: AtomicBool::new(true) });
        self.folding = Some(shared.clone());
        self.fold_in_commits()?;
        Ok(LogFolder { conn, shared })
    }

    /// Sets how much log this connection's commits let pile up before they fold it: a little,
    /// or much more while a [`LogFolder`] folds it.
    fn fold_in_commits(&mut self) -> Result<()> {
        let folded_elsewhere = self.folding.as_ref().is_some_and(|f| f.folds.load(Ordering::Relaxed));
        let pages = if folded_elsewhere { FOLDED_ELSEWHERE_PAGES } else { AUTOCHECKPOINT_PAGES };
        if pages != self.autocheckpoint {
            self.conn.pragma_update(None, "wal_autocheckpoint", pages)?;
            self.autocheckpoint = pages;
        }
        Ok(())
    }

    /// Changes the passphrase; the whole file is re-encrypted (its salt stays).
    pub fn rekey(&mut self, new_passphrase: &str) -> Result<()> {
        if new_passphrase.is_empty() {
            return Err(Error::EmptyPassphrase);
        }
        let raw = key::pragma(new_passphrase, &key::file_salt(&self.path)?, false)?;
        self.settle()?;
        self.conn.pragma_update(None, "rekey", raw.as_str())?;
        // A folder opened before goes on: a fold copies the log's pages as they are, under
        // whatever key; a new one opens with the new key.
        self.key = Some(raw);
        Ok(())
    }

    /// Caps the file at `pages` pages (4 KiB each): writes beyond it fail as [`Error::DiskFull`],
    /// exactly as on a full disk. For a hub on a small or shared medium.
    pub fn limit_pages(&mut self, pages: i64) -> Result<()> {
        self.conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
        Ok(())
    }

    /// Pages the file uses now.
    pub fn page_count(&self) -> Result<i64> {
        Ok(self.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one transaction: all of it is durable, or none of it happened.
    pub fn write<T>(&mut self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        self.durability(true)?;
        self.transact(f)
    }

    /// Sets how commits reach the disk, if it differs: `synchronous=FULL` (`full`), or NORMAL,
    /// where a commit is flushed with the next FULL one or the next checkpoint. Every write says
    /// which it needs, so that nothing (an error, a panic in a write) leaves a durable write
    /// relaxed. Outside a batch, what peers sent before is committed first and nothing stray
    /// stays open (SQLite changes no durability inside a transaction).
    fn durability(&mut self, full: bool) -> Result<()> {
        if !self.batch {
            self.settle()?;
            self.end_stray_transaction();
        }
        // Every write also follows whether a log folder folds now.
        self.fold_in_commits()?;
        if self.full != full {
            self.conn.pragma_update(None, "synchronous", if full { "FULL" } else { "NORMAL" })?;
            self.full = full;
        }
        Ok(())
    }

    /// Whether the next commit waits for the disk, as SQLite says.
    pub fn commits_wait_for_the_disk(&self) -> Result<bool> {
        let level: i64 = self.conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
        Ok(level >= 2)
    }

    /// One write: a transaction of its own, or, inside a batch ([`Store::begin`]), part of the
    /// batch's (a failed one leaves the batch to be rolled back).
    fn transact<T>(&mut self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        if self.batch {
            let out = f(&mut Tx { tx: &self.conn })?;
            self.writes += 1;
            return Ok(out);
        }
        let tx = self.conn.transaction()?;
        let out = f(&mut Tx { tx: &tx })?;
        tx.commit()?;
        self.writes += 1;
        Ok(out)
    }

    /// A transaction open outside a batch was left by a batch that never ended (its caller
    /// panicked): what it wrote was never committed and is undone, so that this write and every
    /// later one is not silently part of it.
    fn end_stray_transaction(&mut self) {
        if !self.conn.is_autocommit() && self.grouped.get() == 0 {
            tracing::error!(store = %self.path.display(), "a batch was left open: undoing it");
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    /// Starts a batch: the writes until [`Store::commit`] are one durable transaction, or none
    /// of them happened ([`Store::rollback`], the store closed first, or the batch was left
    /// open). For a write too large to hold in memory (a bundle's every document): the caller
    /// writes it piece by piece. A write that fails inside a batch leaves it to be rolled back.
    pub fn begin(&mut self) -> Result<()> {
        self.durability(true)?;
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        self.batch = true;
        Ok(())
    }

    /// Makes the batch's writes durable; if that fails, they are undone.
    pub fn commit(&mut self) -> Result<()> {
        self.batch = false;
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            self.end_stray_transaction();
            return Err(e.into());
        }
        Ok(())
    }

    /// Undoes every write of the batch.
    pub fn rollback(&mut self) -> Result<()> {
        self.batch = false;
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("ROLLBACK")?;
        }
        Ok(())
    }

    /// Like [`Store::write`] for what another hub sends again if it is lost (changes from a
    /// peer, with the peer's sync state). Such writes are grouped: each joins one open
    /// transaction (as a savepoint: one that fails or panics is undone alone), which commits,
    /// without waiting for the disk, at [`GROUP_WRITES`] writes, at [`Store::settle`] (a node
    /// calls it once no further frame is arriving, and at each upkeep tick), before any other
    /// write, and when the store is dropped. A power cut or a crash of the process before that
    /// may lose the group, whole and never in part, and with it the sync states that say it
    /// arrived, so the peers send it again. Reads through this store see it at once. What a
    /// person wrote here always goes through [`Store::write`].
    ///
    /// A write that fails because the disk is full, or on an I/O error, may make SQLite undo
    /// the whole group, as may a failed commit: the group is then lost as in a crash, and
    /// [`Store::take_lost`] says so once, so that whoever keeps what it wrote in memory
    /// forgets it.
    pub fn write_resendable<T>(&mut self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        if self.batch {
            return self.transact(f);
        }
        if self.grouped.get() == 0 {
            self.durability(false)?;
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
        }
        // Undone alone if `f` fails or panics: a savepoint of its own.
        if let Err(e) = self.conn.execute_batch("SAVEPOINT resendable") {
            self.group_failed();
            return Err(e.into());
        }
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut Tx { tx: &self.conn })));
        if matches!(out, Ok(Ok(_))) {
            if let Err(e) = self.conn.execute_batch("RELEASE resendable") {
                self.group_failed();
                return Err(e.into());
            }
            self.grouped.set(self.grouped.get() + 1);
            self.writes += 1;
        } else if self.conn.is_autocommit()
            || self.conn.execute_batch("ROLLBACK TO resendable; RELEASE resendable").is_err()
        {
            // SQLite undid the whole transaction (a full disk, an I/O error), or not even this
            // write could be undone alone: the whole group goes.
            self.group_failed();
        }
        let ended = if self.grouped.get() >= GROUP_WRITES {
            self.settle()
        } else if self.grouped.get() == 0 && !self.conn.is_autocommit() {
            // Nothing in it: an empty group is not left open.
            self.conn.execute_batch("ROLLBACK").map_err(Error::from)
        } else {
            Ok(())
        };
        match out {
            Ok(out) => out.and_then(|v| ended.map(|()| v)),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Commits the open group of resendable writes, if any ([`Store::write_resendable`]).
    pub fn settle(&self) -> Result<()> {
        if self.grouped.get() == 0 {
            return Ok(());
        }
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            self.group_failed();
            return Err(e.into());
        }
        self.grouped.set(0);
        Ok(())
    }

    /// The open group is gone, or going: undone, never left open to join later writes, and
    /// reported by [`Store::take_lost`] if it held any write.
    fn group_failed(&self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        if self.grouped.replace(0) > 0 {
            self.lost.set(true);
        }
    }

    /// Whether a group of resendable writes was lost since the last call (a failed commit, or
    /// a failed write that SQLite undid the whole transaction for): what the caller keeps in
    /// memory of those writes no longer stands for the store.
    pub fn take_lost(&self) -> bool {
        self.lost.replace(false)
    }

    /// Transactions committed through this handle so far.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// One bounded step of the upkeep that writers leave for idle time, the first that has work:
    /// merging up to `pages` pages of the full-text index's segments, or folding the log into the
    /// file (without waiting for readers). Returns what it did.
    pub fn upkeep(&mut self, pages: u32) -> Result<Upkeep> {
        self.settle()?;
        let before = self.conn.total_changes();
        self.conn.execute("INSERT INTO search(search, rank) VALUES('merge', ?1)", [pages])?;
        // FTS5 reports merge work through the change counter: under 2, there was none.
        if self.conn.total_changes() - before >= 2 {
            self.writes += 1;
            return Ok(Upkeep::IndexMerged);
        }
        if self.folded_at == self.writes {
            return Ok(Upkeep::Nothing);
        }
        self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        self.folded_at = self.writes;
        Ok(Upkeep::LogFolded)
    }

    // --- metadata ------------------------------------------------------------------------

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self.conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?)
    }

    // --- documents -----------------------------------------------------------------------

    /// The saved bytes of a document (its chunks, concatenated), or `None` if it has none.
    pub fn doc_bytes(&self, doc: &str) -> Result<Option<Vec<u8>>> {
        let mut st = self.conn.prepare_cached("SELECT bytes FROM chunks WHERE doc = ?1 ORDER BY seq")?;
        let mut rows = st.query([doc])?;
        let mut out: Option<Vec<u8>> = None;
        while let Some(r) = rows.next()? {
            let b: Vec<u8> = r.get(0)?;
            out.get_or_insert_with(Vec::new).extend_from_slice(&b);
        }
        Ok(out)
    }

    /// The bytes the documents take as stored (their chunks), but `except`.
    pub fn saved_bytes(&self, except: &str) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT coalesce(sum(length(bytes)), 0) FROM chunks WHERE doc != ?1",
            [except],
            |r| r.get(0),
        )?)
    }

    /// Documents stored in at least `at_least` chunks, most chunks first, at most `limit`.
    pub fn piled_up(&self, at_least: i64, limit: usize) -> Result<Vec<String>> {
        let mut st = self.conn.prepare_cached(
            "SELECT doc FROM chunks GROUP BY doc HAVING count(*) >= ?1 ORDER BY count(*) DESC, doc LIMIT ?2",
        )?;
        let rows = st.query_map(params![at_least, limit.min(i64::MAX as usize) as i64], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// How many chunks a document is stored in (compaction folds them into one).
    pub fn chunk_count(&self, doc: &str) -> Result<i64> {
        Ok(self.conn.query_row("SELECT count(*) FROM chunks WHERE doc = ?1", [doc], |r| r.get(0))?)
    }

    /// Documents known to the store: (doc, partition, created_at, record count).
    pub fn docs(&self) -> Result<Vec<(String, String, i64, i64)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT doc, partition, created_at, records FROM docs ORDER BY partition, created_at, doc",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The query index's JSON of every record it lists in document `doc`.
    pub fn doc_record_json(&self, doc: &str) -> Result<Vec<String>> {
        let mut st = self.conn.prepare_cached("SELECT json FROM records WHERE doc = ?1 ORDER BY created_at, id")?;
        let rows = st.query_map([doc], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Whether the store knows document `doc` (registered, whether or not anything of it is
    /// stored yet).
    pub fn has_doc(&self, doc: &str) -> Result<bool> {
        let mut st = self.conn.prepare_cached("SELECT 1 FROM docs WHERE doc = ?1")?;
        Ok(st.exists([doc])?)
    }

    /// One document's heads as last saved (hex hashes separated by spaces), where known.
    pub fn heads_of(&self, doc: &str) -> Result<Option<String>> {
        let mut st = self.conn.prepare_cached("SELECT heads FROM docs WHERE doc = ?1")?;
        Ok(st.query_row([doc], |r| r.get::<_, Option<String>>(0)).optional()?.flatten())
    }

    /// Each document's heads as last saved (hex hashes separated by spaces), where known.
    pub fn doc_heads(&self) -> Result<std::collections::BTreeMap<String, String>> {
        let mut st = self.conn.prepare_cached("SELECT doc, heads FROM docs WHERE heads IS NOT NULL")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records per kind in one document, as indexed.
    pub fn kinds_in_doc(&self, doc: &str) -> Result<Vec<(String, i64)>> {
        let mut st = self.conn.prepare_cached("SELECT kind, count(*) FROM records WHERE doc = ?1 GROUP BY kind")?;
        let rows = st.query_map([doc], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Chunks of `doc` waiting for changes they depend on.
    pub fn pending(&self, doc: &str) -> Result<Vec<Vec<u8>>> {
        let mut st = self.conn.prepare_cached("SELECT bytes FROM pending WHERE doc = ?1 ORDER BY sha256")?;
        let rows = st.query_map([doc], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The authority log's entries with their ids, in the order they were stored.
    pub fn authority(&self) -> Result<Vec<AuthorityRow>> {
        let mut st = self.conn.prepare_cached("SELECT id, bytes FROM authority ORDER BY seq")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The authority log's resolved state as this hub last kept it
    /// ([`Tx::keep_authority_resolved`]), with the entries (id and bytes) stored after it, in
    /// stored order; `None` if none is kept or more than `at_most` entries came since.
    pub fn authority_resolved(&self, at_most: usize) -> Result<Option<(Vec<u8>, Vec<AuthorityRow>)>> {
        let Some((upto, state)) = self
            .conn
            .query_row("SELECT upto, state FROM authority_resolved", [], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?)))
            .optional()?
        else {
            return Ok(None);
        };
        let mut st =
            self.conn.prepare_cached("SELECT id, bytes FROM authority WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let limit = i64::try_from(at_most).unwrap_or(i64::MAX).saturating_add(1);
        let after = st.query_map(params![upto, limit], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let after: Vec<AuthorityRow> = after.collect::<rusqlite::Result<_>>()?;
        Ok((after.len() <= at_most).then_some((state, after)))
    }

    /// Whether the authority log holds any entry.
    pub fn has_authority(&self) -> Result<bool> {
        Ok(self.conn.query_row("SELECT EXISTS(SELECT 1 FROM authority)", [], |r| r.get(0))?)
    }

    /// Authority entries waiting for the entries they follow.
    pub fn authority_waiting(&self) -> Result<Vec<Vec<u8>>> {
        let mut st = self.conn.prepare_cached("SELECT bytes FROM authority_waiting ORDER BY id")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The latest refusals at the authority log's door, newest first: (time, source, reason).
    pub fn authority_refused(&self, limit: i64) -> Result<Vec<(i64, String, String)>> {
        let mut st =
            self.conn.prepare_cached("SELECT at, source, reason FROM authority_refused ORDER BY seq DESC LIMIT ?1")?;
        let rows = st.query_map([limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Documents with chunks waiting for changes they depend on.
    pub fn pending_docs(&self) -> Result<Vec<String>> {
        let mut st = self.conn.prepare_cached("SELECT DISTINCT doc FROM pending ORDER BY doc")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Sync states kept for one peer: (doc, encoded state).
    pub fn sync_states_of(&self, peer: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut st = self.conn.prepare_cached("SELECT doc, state FROM sync_state WHERE peer = ?1")?;
        let rows = st.query_map([peer], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Documents of one partition with their record counts.
    pub fn partition_docs(&self, partition: &str) -> Result<Vec<(String, i64, i64)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT doc, created_at, records FROM docs WHERE partition = ?1 ORDER BY created_at, doc",
        )?;
        let rows = st.query_map([partition], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    // --- the query index -----------------------------------------------------------------

    /// The indexed JSON of a record and the document it lives in.
    pub fn record(&self, id: &str) -> Result<Option<(String, String, String)>> {
        Ok(self
            .conn
            .prepare_cached("SELECT kind, doc, json FROM records WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?)
    }

    /// The kind of a record, if the index holds it.
    pub fn kind_of(&self, id: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT kind FROM records WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?)
    }

    /// JSON of records of a kind, newest first, at most `limit` after skipping `offset`.
    pub fn records_of_kind(&self, kind: &str, limit: i64, offset: i64) -> Result<Vec<String>> {
        let mut st = self.conn.prepare_cached(
            "SELECT json FROM records WHERE kind = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2 OFFSET ?3",
        )?;
        let rows = st.query_map(params![kind, limit, offset], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// JSON of records of a kind created in `[from, to)` (milliseconds).
    pub fn records_between(&self, kind: &str, from: i64, to: i64) -> Result<Vec<String>> {
        let mut st = self.conn.prepare_cached(
            "SELECT json FROM records WHERE kind = ?1 AND created_at >= ?2 AND created_at < ?3 ORDER BY created_at, id",
        )?;
        let rows = st.query_map(params![kind, from, to], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// JSON of records of a kind whose reference `field` points to `target`.
    pub fn referring(&self, kind: &str, field: &str, target: &str) -> Result<Vec<String>> {
        let mut st = self.conn.prepare_cached(
            // CROSS JOIN keeps the reference index as the outer loop.
            "SELECT r.json FROM refs f CROSS JOIN records r ON r.id = f.id
             WHERE f.target = ?3 AND f.field = ?2 AND r.kind = ?1 ORDER BY r.created_at, r.id",
        )?;
        let rows = st.query_map(params![kind, field, target], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Ids of records with fields in conflict, and how many fields each.
    pub fn conflicted(&self, limit: i64) -> Result<Vec<(String, String, i64)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, kind, conflicts FROM records WHERE conflicts > 0 ORDER BY created_at DESC LIMIT ?1",
        )?;
        let rows = st.query_map([limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// JSON of records of `kind` whose reference `field` points to any of `targets`: for each
    /// target in turn, oldest first (the amendments of a page of records).
    pub fn referring_any(&self, kind: &str, field: &str, targets: &[&str]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for t in targets {
            out.extend(self.referring(kind, field, t)?);
        }
        Ok(out)
    }

    /// JSON of records of `kind` whose reference `field` points to a record of `target_kind`
    /// created in `[from, to)` (milliseconds): the amendments of a window of incidents.
    pub fn referring_created_between(
        &self,
        kind: &str,
        field: &str,
        target_kind: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<String>> {
        let mut st = self.conn.prepare_cached(
            "SELECT a.json FROM records t
             CROSS JOIN refs f ON f.target = t.id AND f.field = ?2
             CROSS JOIN records a ON a.id = f.id
             WHERE t.kind = ?3 AND t.created_at >= ?4 AND t.created_at < ?5 AND a.kind = ?1",
        )?;
        let rows = st.query_map(params![kind, field, target_kind, from, to], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Items below their reorder level, worst first (total over reorder level), at most
    /// `limit`: (item JSON, total stock). Reads the `item_levels_short` index.
    pub fn short_items(&self, limit: i64) -> Result<Vec<(String, i64)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT r.json, l.total FROM item_levels l INDEXED BY item_levels_short
             CROSS JOIN records r ON r.id = l.item
             WHERE l.reorder_level > 0 AND l.total < l.reorder_level
             ORDER BY l.total * 1.0 / l.reorder_level, l.item LIMIT ?1",
        )?;
        let rows = st.query_map([limit], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Items in stock that expire on or before `until` (a date, `YYYY-MM-DD`), soonest first, at
    /// most `limit`: (item JSON, total stock). Reads the `item_levels_expiry` index.
    pub fn expiring_items(&self, until: &str, limit: i64) -> Result<Vec<(String, i64)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT r.json, l.total FROM item_levels l INDEXED BY item_levels_expiry
             CROSS JOIN records r ON r.id = l.item
             WHERE l.expiry IS NOT NULL AND l.expiry <= ?1 AND l.total > 0
             ORDER BY l.expiry, l.item LIMIT ?2",
        )?;
        let rows = st.query_map(params![until, limit], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// JSON of requests of one `urgency` whose status is one of `statuses`, by deadline (none
    /// last) then id, at most `limit`. The caller names the statuses (the model decides which
    /// are open); each is one range of the `requests_by_status` index, so only what is
    /// returned is read.
    pub fn requests_by_deadline(&self, statuses: &[&str], urgency: &str, limit: i64) -> Result<Vec<String>> {
        let mut st = self.conn.prepare_cached(
            "SELECT json, coalesce(json_extract(json, '$.needed_by'), '~'), id
             FROM records INDEXED BY requests_by_status WHERE kind = 'request'
             AND json_extract(json, '$.status') = ?1 AND json_extract(json, '$.urgency') = ?2
             ORDER BY coalesce(json_extract(json, '$.needed_by'), '~'), id LIMIT ?3",
        )?;
        let mut all: Vec<(String, String, String)> = Vec::new();
        for status in statuses {
            let rows = st.query_map(params![status, urgency, limit], |r| Ok((r.get(1)?, r.get(2)?, r.get(0)?)))?;
            all.extend(rows.collect::<rusqlite::Result<Vec<_>>>()?);
        }
        all.sort();
        all.truncate(limit.max(0) as usize);
        Ok(all.into_iter().map(|(_, _, json)| json).collect())
    }

    /// JSON of the shifts in `window` (see [`ShiftWindow`]). Reads the `shifts_start` index.
    pub fn shifts_in(&self, window: &ShiftWindow) -> Result<Vec<String>> {
        let mut st = self.conn.prepare_cached(
            "SELECT json FROM records WHERE kind = 'shift'
             AND json_extract(json, '$.start') >= ?1 AND json_extract(json, '$.start') < ?2
             AND json_extract(json, '$.end') > ?3",
        )?;
        let rows = st.query_map(params![window.starts_from, window.starts_before, window.ends_after], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// JSON of records of `kind` whose reference `field` points to a shift in `window`: the
    /// assignments to a window of shifts.
    pub fn referring_shifts_in(&self, kind: &str, field: &str, window: &ShiftWindow) -> Result<Vec<String>> {
        let mut st = self.conn.prepare_cached(
            "SELECT a.json FROM records s
             CROSS JOIN refs f ON f.target = s.id AND f.field = ?5
             CROSS JOIN records a ON a.id = f.id
             WHERE s.kind = 'shift'
             AND json_extract(s.json, '$.start') >= ?1 AND json_extract(s.json, '$.start') < ?2
             AND json_extract(s.json, '$.end') > ?3 AND a.kind = ?4",
        )?;
        let rows = st
            .query_map(params![window.starts_from, window.starts_before, window.ends_after, kind, field], |r| {
                r.get(0)
            })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// How many records of a kind the index holds (a maintained count, not a scan).
    pub fn count(&self, kind: &str) -> Result<i64> {
        Ok(self
            .conn
            .prepare_cached("SELECT n FROM kind_counts WHERE kind = ?1")?
            .query_row([kind], |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }

    /// Full-text search; `query` is plain words, each matched as a prefix.
    pub fn search(&self, query: &str, kind: Option<&str>, limit: i64) -> Result<Vec<Hit>> {
        let terms: Vec<String> = query
            .split(|c: char| !c.is_alphanumeric())
            .filter(|t| !t.is_empty())
            .map(|t| format!("\"{}\"*", t.replace('"', "")))
            .collect();
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let mut fts = terms.join(" ");
        if let Some(k) = kind {
            // The kind is a column of the full-text index: FTS intersects it with the words.
            fts = format!("kind : \"{}\" AND text : ({fts})", k.replace('"', ""));
        }
        let mut st = self.conn.prepare_cached(
            "SELECT r.id, r.kind, r.label FROM search s CROSS JOIN records r ON r.rowid = s.rowid
             WHERE search MATCH ?1 AND (?2 IS NULL OR r.kind = ?2) LIMIT ?3",
        )?;
        let rows =
            st.query_map(params![fts, kind, limit], |r| Ok(Hit { id: r.get(0)?, kind: r.get(1)?, label: r.get(2)? }))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Total stock of one item over all places.
    pub fn item_total(&self, item: &str) -> Result<i64> {
        Ok(self
            .conn
            .prepare_cached("SELECT coalesce(sum(qty), 0) FROM stock WHERE item = ?1")?
            .query_row([item], |r| r.get(0))?)
    }

    /// Stock levels: (item, place, quantity), from the index's running sums.
    pub fn stock(&self, item: Option<&str>) -> Result<Vec<(String, String, i64)>> {
        // Two statements, so that the one-item look-up uses the primary key.
        let (sql, args): (&str, Vec<&str>) = match item {
            Some(i) => ("SELECT item, place, qty FROM stock WHERE item = ?1 ORDER BY place", vec![i]),
            None => ("SELECT item, place, qty FROM stock ORDER BY item, place", vec![]),
        };
        let mut st = self.conn.prepare_cached(sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// What is stored at `place`: (item, quantity) for every item with stock there.
    pub fn stock_at(&self, place: &str) -> Result<Vec<(String, i64)>> {
        let mut st =
            self.conn.prepare_cached("SELECT item, qty FROM stock WHERE place = ?1 AND qty != 0 ORDER BY item")?;
        let rows = st.query_map([place], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Per place with stock: (place, how many items, how many units), in one pass.
    pub fn stock_per_place(&self) -> Result<Vec<(String, i64, i64)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT place, count(*), sum(qty) FROM stock WHERE qty != 0 GROUP BY place ORDER BY place",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    // --- sync state ------------------------------------------------------------------------

    pub fn sync_state(&self, peer: &str, doc: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn
            .query_row("SELECT state FROM sync_state WHERE peer = ?1 AND doc = ?2", [peer, doc], |r| r.get(0))
            .optional()?)
    }

    /// The signed tips kept for a document, by actor.
    pub fn change_tips(&self, doc: &str) -> Result<Vec<ChangeTip>> {
        let mut st =
            self.conn.prepare_cached("SELECT actor, seq, sig FROM change_tips WHERE doc = ?1 ORDER BY actor")?;
        let rows = st.query_map([doc], |r| {
            Ok(ChangeTip { actor: r.get(0)?, seq: r.get::<_, i64>(1)? as u64, sig: r.get(2)? })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The vouchers kept for a document: signed changes that wait here (see migration 9).
    pub fn change_vouchers(&self, doc: &str) -> Result<Vec<ChangeVoucher>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT actor, seq, sig, change FROM change_vouchers WHERE doc = ?1 ORDER BY actor")?;
        let rows = st.query_map([doc], |r| {
            Ok(ChangeVoucher {
                tip: ChangeTip { actor: r.get(0)?, seq: r.get::<_, i64>(1)? as u64, sig: r.get(2)? },
                change: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Runs a read-only integrity check of the file.
    pub fn check(&self) -> Result<()> {
        let r: String = self.conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if r == "ok" {
            Ok(())
        } else {
            Err(Error::Corrupt(r))
        }
    }

    /// Folds the write-ahead log into the main file and empties it (so that nothing erased
    /// lingers in it), after a fold of this store's [`LogFolder`] under way (SQLite would not
    /// wait for it). One that cannot finish (a reader past the busy timeout) is
    /// [`Error::LogNotFolded`].
    pub fn checkpoint(&self) -> Result<()> {
        self.settle()?;
        let _one = self.folding.as_ref().map(|f| f.one_at_a_time.lock().unwrap_or_else(|e| e.into_inner()));
        // (busy, pages in the log, pages folded); SQLite waits for readers and writers through
        // the busy timeout.
        let busy: i64 = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy != 0 {
            return Err(Error::LogNotFolded(self.path.clone()));
        }
        Ok(())
    }
}

/// What one step of [`Store::upkeep`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upkeep {
    IndexMerged,
    LogFolded,
    Nothing,
}

/// A write transaction.
/// The latest change of one actor held here, with its hub's signature (opaque bytes to the
/// store: hash and signature).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeTip {
    pub actor: Vec<u8>,
    pub seq: u64,
    pub sig: Vec<u8>,
}

/// A signed change that waits here, with its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeVoucher {
    pub tip: ChangeTip,
    pub change: Vec<u8>,
}

pub struct Tx<'a> {
    tx: &'a Connection,
}

impl Tx<'_> {
    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<()> {
        self.tx.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }

    /// Registers a document of a partition.
    pub fn add_doc(&mut self, doc: &str, partition: &str, created_at: i64) -> Result<()> {
        self.tx.execute(
            "INSERT INTO docs(doc, partition, created_at) VALUES (?1, ?2, ?3) ON CONFLICT(doc) DO NOTHING",
            params![doc, partition, created_at],
        )?;
        Ok(())
    }

    /// Appends saved changes of a document.
    pub fn append_chunk(&mut self, doc: &str, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.tx.execute(
            "INSERT INTO chunks(doc, seq, bytes) VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM chunks WHERE doc = ?1), ?2)",
            params![doc, bytes],
        )?;
        Ok(())
    }

    /// Records a document's heads after a write (hex hashes separated by spaces).
    pub fn set_heads(&mut self, doc: &str, heads: &str) -> Result<()> {
        self.tx.execute("UPDATE docs SET heads = ?2 WHERE doc = ?1", [doc, heads])?;
        Ok(())
    }

    /// Keeps a chunk whose changes wait for changes they depend on.
    pub fn add_pending(&mut self, doc: &str, sha256: &str, bytes: &[u8]) -> Result<()> {
        self.tx.execute(
            "INSERT INTO pending(doc, sha256, bytes) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            params![doc, sha256, bytes],
        )?;
        Ok(())
    }

    /// Stores an authority entry after the ones stored before it.
    pub fn add_authority(&mut self, id: &[u8], bytes: &[u8]) -> Result<()> {
        self.tx.execute(
            "INSERT INTO authority(id, bytes) VALUES (?1, ?2) ON CONFLICT(id) DO NOTHING",
            params![id, bytes],
        )?;
        self.tx.execute("DELETE FROM authority_waiting WHERE id = ?1", params![id])?;
        Ok(())
    }

    /// Forgets the authority log (joining another coalition, whose log replaces it).
    pub fn clear_authority(&mut self) -> Result<()> {
        self.tx
            .execute_batch("DELETE FROM authority; DELETE FROM authority_waiting; DELETE FROM authority_resolved;")?;
        Ok(())
    }

    /// Keeps the resolved state of the authority log's stored entries, `entries` of them, in
    /// place of the one kept before. Returns false and keeps nothing if the store holds another
    /// number of entries: the state resolves some other log.
    pub fn keep_authority_resolved(&mut self, entries: u64, state: &[u8]) -> Result<bool> {
        let (count, upto): (i64, i64) =
            self.tx.query_row("SELECT count(*), coalesce(max(seq), 0) FROM authority", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        if u64::try_from(count) != Ok(entries) {
            return Ok(false);
        }
        self.tx.execute(
            "INSERT INTO authority_resolved(one, upto, state) VALUES (1, ?1, ?2)
             ON CONFLICT(one) DO UPDATE SET upto = excluded.upto, state = excluded.state",
            params![upto, state],
        )?;
        Ok(true)
    }

    /// Keeps an authority entry that waits for entries it follows.
    pub fn add_authority_waiting(&mut self, id: &[u8], bytes: &[u8]) -> Result<()> {
        self.tx.execute(
            "INSERT INTO authority_waiting(id, bytes) VALUES (?1, ?2) ON CONFLICT(id) DO NOTHING",
            params![id, bytes],
        )?;
        Ok(())
    }

    /// Forgets an authority entry that waited, refused once what it follows arrived.
    pub fn remove_authority_waiting(&mut self, id: &[u8]) -> Result<()> {
        self.tx.execute("DELETE FROM authority_waiting WHERE id = ?1", params![id])?;
        Ok(())
    }

    /// Records an entry refused at the authority log's door, or another refusal (the last 100 of
    /// each source are kept, and 1,000 in all).
    pub fn add_authority_refused(&mut self, at: i64, source: &str, reason: &str, entry: &[u8]) -> Result<()> {
        self.tx.execute(
            "INSERT INTO authority_refused(at, source, reason, entry) VALUES (?1, ?2, ?3, ?4)",
            params![at, source, reason, entry],
        )?;
        // The last 100 of each source, and 1,000 in all: one source that floods refusals pushes
        // out its own, not what others were refused for.
        self.tx.execute(
            "DELETE FROM authority_refused WHERE source = ?1
             AND seq <= (SELECT max(seq) - 100 FROM authority_refused WHERE source = ?1)",
            [source],
        )?;
        self.tx.execute(
            "DELETE FROM authority_refused WHERE seq <= (SELECT max(seq) - 1000 FROM authority_refused)",
            [],
        )?;
        Ok(())
    }

    /// Forgets the waiting chunks of a document once everything they depend on has arrived.
    pub fn clear_pending(&mut self, doc: &str) -> Result<()> {
        self.tx.execute("DELETE FROM pending WHERE doc = ?1", [doc])?;
        Ok(())
    }

    /// Forgets every signed change that waits for a document (its vouchers).
    pub fn clear_vouchers(&mut self, doc: &str) -> Result<()> {
        self.tx.execute("DELETE FROM change_vouchers WHERE doc = ?1", [doc])?;
        Ok(())
    }

    /// Replaces all chunks of a document by one compacted save.
    pub fn replace_doc(&mut self, doc: &str, bytes: &[u8]) -> Result<()> {
        self.tx.execute("DELETE FROM chunks WHERE doc = ?1", [doc])?;
        self.tx.execute("INSERT INTO chunks(doc, seq, bytes) VALUES (?1, 1, ?2)", params![doc, bytes])?;
        Ok(())
    }

    /// Inserts or replaces a record in the index. Returns true if the record was new.
    pub fn index(&mut self, row: &IndexRow) -> Result<bool> {
        Ok(self.index_all([row])? == 1)
    }

    /// Inserts or replaces records in the index, as [`Tx::index`] each, and counts the new ones
    /// once a kind and once a document for them all (a document's thousands of records were a
    /// count written for each). Returns how many were new.
    pub fn index_all<'r>(&mut self, rows: impl IntoIterator<Item = &'r IndexRow>) -> Result<usize> {
        let mut kinds: BTreeMap<&str, i64> = BTreeMap::new();
        let mut docs: BTreeMap<&str, i64> = BTreeMap::new();
        for row in rows {
            if self.index_one(row)? {
                *kinds.entry(&row.kind).or_default() += 1;
                *docs.entry(&row.doc).or_default() += 1;
            }
        }
        for (kind, n) in &kinds {
            self.tx
                .prepare_cached(
                    "INSERT INTO kind_counts(kind, n) VALUES (?1, ?2) ON CONFLICT(kind) DO UPDATE SET n = n + excluded.n",
                )?
                .execute(params![kind, n])?;
        }
        for (doc, n) in &docs {
            self.tx
                .prepare_cached("UPDATE docs SET records = records + ?2 WHERE doc = ?1")?
                .execute(params![doc, n])?;
        }
        Ok(kinds.values().sum::<i64>() as usize)
    }

    /// One record of [`Tx::index_all`], its counts left to it. Returns true if it was new.
    fn index_one(&mut self, row: &IndexRow) -> Result<bool> {
        let existed: Option<i64> = self
            .tx
            .prepare_cached("SELECT rowid FROM records WHERE id = ?1")?
            .query_row([&row.id], |r| r.get(0))
            .optional()?;
        self.tx
            .prepare_cached(
                "INSERT INTO records(id, kind, doc, created_at, label, json, conflicts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(id) DO UPDATE SET kind = excluded.kind, doc = excluded.doc, label = excluded.label,
                 json = excluded.json, conflicts = excluded.conflicts",
            )?
            .execute(params![row.id, row.kind, row.doc, row.created_at, row.label, row.json, row.conflicts])?;
        // An update keeps the row's id; an insert made a new one.
        let rowid = existed.unwrap_or_else(|| self.tx.last_insert_rowid());
        if existed.is_some() {
            self.tx.prepare_cached("DELETE FROM search WHERE rowid = ?1")?.execute([rowid])?;
        }
        if !row.search_text.is_empty() {
            self.tx.prepare_cached("INSERT INTO search(rowid, kind, text) VALUES (?1, ?2, ?3)")?.execute(params![
                rowid,
                row.kind,
                row.search_text
            ])?;
        }
        if existed.is_some() {
            self.tx.prepare_cached("DELETE FROM refs WHERE id = ?1")?.execute([&row.id])?;
        }
        if row.kind == "item" {
            self.tx
                .prepare_cached(
                    "INSERT INTO item_levels(item, reorder_level, expiry)
                     VALUES (?1, coalesce(json_extract(?2, '$.reorder_level'), 0), json_extract(?2, '$.expiry'))
                     ON CONFLICT(item) DO UPDATE SET reorder_level = excluded.reorder_level, expiry = excluded.expiry",
                )?
                .execute(params![row.id, row.json])?;
        }
        for (field, target) in &row.refs {
            self.tx
                .prepare_cached("INSERT OR IGNORE INTO refs(id, field, target) VALUES (?1, ?2, ?3)")?
                .execute(params![row.id, field, target])?;
        }
        Ok(existed.is_none())
    }

    /// Adds each (item, place)'s delta to its stock and each item's to its total, as
    /// [`Tx::add_stock`] does one: a write a place and one an item, however many movements the
    /// deltas sum (a document's movements were two writes each).
    pub fn add_stocks(&mut self, deltas: &BTreeMap<(String, String), i64>) -> Result<()> {
        let mut totals: BTreeMap<&str, i64> = BTreeMap::new();
        for ((item, place), delta) in deltas {
            self.tx
                .prepare_cached(
                    "INSERT INTO stock(item, place, qty) VALUES (?1, ?2, ?3)
                     ON CONFLICT(item, place) DO UPDATE SET qty = qty + excluded.qty",
                )?
                .execute(params![item, place, delta])?;
            *totals.entry(item).or_default() += delta;
        }
        for (item, total) in totals {
            self.tx
                .prepare_cached(
                    "INSERT INTO item_levels(item, total) VALUES (?1, ?2)
                     ON CONFLICT(item) DO UPDATE SET total = total + excluded.total",
                )?
                .execute(params![item, total])?;
        }
        Ok(())
    }

    /// Adds `delta` to the stock of an item at a place.
    pub fn add_stock(&mut self, item: &str, place: &str, delta: i64) -> Result<()> {
        self.add_stocks(&BTreeMap::from([((item.to_string(), place.to_string()), delta)]))
    }

    /// Empties the query index, to rebuild it from the documents.
    pub fn clear_index(&mut self) -> Result<()> {
        // The full-text index is emptied whole ('delete-all'), not row by row.
        self.tx.execute_batch(
            "INSERT INTO search(search) VALUES('delete-all'); DELETE FROM records; DELETE FROM stock; DELETE FROM refs;
             DELETE FROM item_levels; DELETE FROM kind_counts; UPDATE docs SET records = 0;",
        )?;
        Ok(())
    }

    /// Keeps a signed tip for (doc, actor), unless one as late is kept already; a voucher it
    /// overtakes goes.
    pub fn set_change_tip(&mut self, doc: &str, actor: &[u8], seq: u64, sig: &[u8]) -> Result<()> {
        self.tx.execute(
            "INSERT INTO change_tips(doc, actor, seq, sig) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(doc, actor) DO UPDATE SET seq = excluded.seq, sig = excluded.sig WHERE excluded.seq > seq",
            params![doc, actor, seq as i64, sig],
        )?;
        self.tx.execute(
            "DELETE FROM change_vouchers WHERE doc = ?1 AND actor = ?2 AND seq <= ?3",
            params![doc, actor, seq as i64],
        )?;
        Ok(())
    }

    /// Keeps a voucher for (doc, actor), unless one as late is kept already.
    pub fn set_change_voucher(&mut self, doc: &str, v: &ChangeVoucher) -> Result<()> {
        self.tx.execute(
            "INSERT INTO change_vouchers(doc, actor, seq, sig, change) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(doc, actor) DO UPDATE SET seq = excluded.seq, sig = excluded.sig, change = excluded.change
             WHERE excluded.seq > seq",
            params![doc, v.tip.actor, v.tip.seq as i64, v.tip.sig, v.change],
        )?;
        Ok(())
    }

    pub fn set_sync_state(&mut self, peer: &str, doc: &str, state: &[u8]) -> Result<()> {
        self.tx.execute(
            "INSERT INTO sync_state(peer, doc, state) VALUES (?1, ?2, ?3)
             ON CONFLICT(peer, doc) DO UPDATE SET state = excluded.state",
            params![peer, doc, state],
        )?;
        Ok(())
    }
}
