//! Files a hub writes for people (exports, bundles) and the removal of a store that never
//! came to be (a join that failed): the same for every face.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Writes `path` through `write`: beside it first, then renamed over it, so a pulled stick or
/// a full disk leaves the old file or none, never half of one. Answers what `write` answered.
pub fn write_atomically<T>(path: &Path, write: impl FnOnce(&mut dyn Write) -> Result<T>) -> Result<T> {
    let tmp = partial_path(path);
    let result = (|| -> Result<T> {
        let mut file = std::fs::File::create(&tmp).map_err(|e| io(&tmp, "write", e))?;
        let out = write(&mut file)?;
        file.flush().and_then(|_| file.sync_all()).map_err(|e| io(&tmp, "write", e))?;
        std::fs::rename(&tmp, path).map_err(|e| io(path, "write", e))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The rename itself reaches the disk with the folder.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(out)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `<file>.partial` beside `path`.
fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    path.with_file_name(name)
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
        assert!(!partial_path(&path).exists());
        write_atomically(&path, |w| Ok(w.write_all(b"new")?)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "only the file itself is left");
    }
}
