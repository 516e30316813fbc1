//! Files a hub writes for people (exports, bundles), and the mark of a store made for a join
//! that has not finished (a join that failed, or an app quit while it waited): the same for
//! every face.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Creates `dir` and any missing parents, readable by this user only (where it is new): the
/// folder of a store, of its exports and of its PDFs.
pub fn private_dir(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(|e| io(dir, "create", e))
}

/// A bundle file's bytes, judged before they are held: a file over the bundle size limit, or one
/// that does not start as a bundle, is refused having read at most its first 16 bytes; then its
/// head (the slots) is read, `key_for` gives the key it is sealed under for this hub (see
/// [`Hub::bundle_key`](crate::Hub::bundle_key)), and the ciphertext's tag is checked in passes of
/// 1 MiB. So a stray disk image offered as a bundle, a bundle for another hub or coalition, or
/// one altered or cut short, costs no more memory than that, whatever its size. Only then is it
/// read (and decrypted again by the import: a file changed in between is refused there).
pub fn read_bundle_file<E: From<Error>>(
    path: &Path,
    key_for: impl FnOnce(&[u8]) -> std::result::Result<[u8; 32], E>,
) -> std::result::Result<Vec<u8>, E> {
    use aidmesh_mesh::bundle::{self, BundleError, MAGIC, MAX_BUNDLE};
    use std::io::{Read, Seek};
    let refuse = |e: BundleError| Err(E::from(Error::Malformed { format: "bundle", why: e.to_string() }));
    let read_err = |e| E::from(io(path, "read", e));
    let mut f = std::fs::File::open(path).map_err(read_err)?;
    let len = f.metadata().map_err(read_err)?.len();
    if len > MAX_BUNDLE as u64 {
        return refuse(BundleError::TooLarge(len.min(usize::MAX as u64) as usize));
    }
    let mut head = Vec::with_capacity(50);
    (&mut f).take(16).read_to_end(&mut head).map_err(read_err)?;
    if head.len() < 16 || (head[..] != MAGIC[..] && head[..] != aidmesh_mesh::bundle::MAGIC_V1[..]) {
        return refuse(BundleError::NotABundle);
    }
    (&mut f).take(50 - 16).read_to_end(&mut head).map_err(read_err)?;
    let head_len = match bundle::head_len(&head) {
        Ok(n) if (n as u64).saturating_add(16) <= len => n,
        Ok(_) => return refuse(BundleError::Truncated),
        Err(e) => return refuse(e),
    };
    // A version 1 head is shorter than what was read of it.
    head.truncate(head_len);
    (&mut f).take((head_len - head.len()) as u64).read_to_end(&mut head).map_err(read_err)?;
    let key = key_for(&head)?;
    f.seek(std::io::SeekFrom::Start(head_len as u64)).map_err(read_err)?;
    let cut = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            E::from(Error::Malformed { format: "bundle", why: BundleError::Truncated.to_string() })
        }
        _ => read_err(e),
    };
    if !bundle::sealed_whole(&head, &key, &mut f, len - head_len as u64).map_err(cut)? {
        return refuse(BundleError::WrongKeyOrTampered);
    }
    f.rewind().map_err(read_err)?;
    let mut bytes = Vec::with_capacity(len as usize);
    // Never more than was checked: a file that changed since is refused (a stick that is
    // failing, or another program writing to it), and the import decrypts it again anyway.
    f.take(len + 1).read_to_end(&mut bytes).map_err(read_err)?;
    if bytes.len() as u64 != len {
        return Err(E::from(io(path, "read", std::io::Error::other("the file changed while it was read"))));
    }
    Ok(bytes)
}

/// Writes `path` through `write`: into a new file beside it first (created exclusively under a
/// random name, so nothing planted there — a link to another file — is followed, and readable
/// by this user only), then renamed over it, so a pulled stick or a full disk leaves the old
/// file or none, never half of one. Answers what `write` answered.
pub fn write_atomically<T>(path: &Path, write: impl FnOnce(&mut dyn Write) -> Result<T>) -> Result<T> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .tempfile_in(&dir)
        .map_err(|e| io(path, "write", e))?;
    let out = write(tmp.as_file_mut())?;
    tmp.as_file_mut().flush().and_then(|_| tmp.as_file().sync_all()).map_err(|e| io(path, "write", e))?;
    tmp.persist(path).map_err(|e| io(path, "write", e.error))?;
    // The rename itself reaches the disk with the folder.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(out)
}

/// Marks the store at `path` as made for a join: until [`join_finished`], it is no hub yet, and
/// [`clear_unfinished_join`] removes it.
pub fn begin_join(path: &Path) -> Result<()> {
    std::fs::write(join_mark(path), b"").map_err(|e| io(path, "mark the join of", e))
}

/// The join of the store at `path` is done: it is a hub of its coalition.
pub fn join_finished(path: &Path) -> Result<()> {
    match std::fs::remove_file(join_mark(path)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path, "finish the join of", e)),
    }
}

/// Whether the store at `path` was made for a join that never finished.
pub fn unfinished_join(path: &Path) -> bool {
    join_mark(path).exists()
}

/// Removes the store at `path` if it was made for a join that never finished (with its journal
/// and its mark), so that joining or founding starts clean. A store without the mark, or one a
/// process owns, is left alone.
pub fn clear_unfinished_join(path: &Path) -> Result<()> {
    if !unfinished_join(path) {
        return Ok(());
    }
    aidmesh_store::Store::remove(path)?;
    join_finished(path)
}

fn join_mark(path: &Path) -> PathBuf {
    aidmesh_store::sibling(path, ".joining")
}

fn io(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::Io(std::io::Error::new(e.kind(), format!("cannot {what} {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_partial_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bundle");
        std::fs::write(&path, b"old").unwrap();
        let r: Result<()> = write_atomically(&path, |w| {
            w.write_all(b"half").unwrap();
            Err(Error::Malformed { format: "test", why: "stopped halfway".into() })
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no partial file is left");
        write_atomically(&path, |w| Ok(w.write_all(b"new")?)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "only the file itself is left");
    }

    #[test]
    fn a_store_marked_as_joining_is_removed_and_a_hub_never_is() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("hub.aidmesh");
        // An unfinished join: the store and its journal go with the mark.
        begin_join(&store).unwrap();
        for f in ["hub.aidmesh", "hub.aidmesh-wal"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        assert!(unfinished_join(&store));
        clear_unfinished_join(&store).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing of it is left");
        // A store without the mark is a hub: left alone.
        std::fs::write(&store, b"a hub").unwrap();
        clear_unfinished_join(&store).unwrap();
        assert_eq!(std::fs::read(&store).unwrap(), b"a hub");
        // A finished join leaves the store and takes the mark.
        begin_join(&store).unwrap();
        join_finished(&store).unwrap();
        assert!(!unfinished_join(&store));
        clear_unfinished_join(&store).unwrap();
        assert!(store.exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_link_is_not_followed_and_the_file_is_the_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("hub.aidmesh");
        std::fs::write(&victim, b"the store").unwrap();
        let path = dir.path().join("north.bundle");
        // Whatever name a writer might use beside the target, planted as a link to the store.
        std::os::unix::fs::symlink(&victim, dir.path().join("north.bundle.partial")).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(".north.bundle.partial")).unwrap();
        write_atomically(&path, |w| Ok(w.write_all(b"bundle")?)).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"the store");
        assert_eq!(std::fs::read(&path).unwrap(), b"bundle");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
