//! The store's key: Argon2id of the passphrase (memory-hard), handed to SQLCipher as a raw key.
//!
//! The salt is the database file's own: SQLCipher keeps its first 16 bytes in plaintext as the
//! salt of the file, and takes a salt given with a raw key when it creates the file. So no
//! second file holds anything, and a copy of the store is the whole store. Stores keyed by
//! SQLCipher's own derivation (PBKDF2 of the passphrase) are re-keyed at their next unlock.

use std::io::Read;
use std::path::Path;

use zeroize::Zeroizing;

use crate::{Error, Result};

/// Bytes of salt at the head of every SQLCipher file.
pub(crate) const SALT_LEN: usize = 16;

/// Argon2id's cost: 256 MiB of memory, two passes, one lane (a third of a second on a 2-core
/// laptop). Changing it changes every store's key: it needs a re-key at unlock, as PBKDF2 had.
const MEMORY_KIB: u32 = 256 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// The 32-byte key for `passphrase` and a file's salt.
pub(crate) fn derive(passphrase: &str, salt: &[u8; SALT_LEN]) -> Result<Zeroizing<[u8; 32]>> {
    let params = argon2::Params::new(MEMORY_KIB, PASSES, LANES, Some(32))
        .map_err(|e| Error::Key(format!("Argon2id parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
        .map_err(|e| Error::Key(format!("Argon2id: {e}")))?;
    Ok(key)
}

/// SQLCipher's `PRAGMA key` value for `passphrase` and a file's salt; `new_file`: the salt is
/// given for SQLCipher to write at the head of the file it creates.
pub(crate) fn pragma(passphrase: &str, salt: &[u8; SALT_LEN], new_file: bool) -> Result<Zeroizing<String>> {
    let key = derive(passphrase, salt)?;
    Ok(raw(&key, new_file.then_some(salt)))
}

/// SQLCipher's `PRAGMA key` value for a raw key, with the salt a new file is to take.
pub(crate) fn raw(key: &[u8; 32], new_file_salt: Option<&[u8; SALT_LEN]>) -> Zeroizing<String> {
    let mut hex = Zeroizing::new(String::with_capacity(100));
    hex.push_str("x'");
    for b in key.iter().chain(new_file_salt.into_iter().flatten()) {
        hex.push(char::from_digit((b >> 4) as u32, 16).expect("a nibble"));
        hex.push(char::from_digit((b & 15) as u32, 16).expect("a nibble"));
    }
    hex.push('\'');
    hex
}

/// The salt at the head of an existing store file. A file too short to hold one (left by a
/// creation that was cut short) is [`Error::Corrupt`], not a wrong passphrase.
pub(crate) fn file_salt(path: &Path) -> Result<[u8; SALT_LEN]> {
    let mut salt = [0u8; SALT_LEN];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut salt));
    match read {
        Ok(()) => Ok(salt),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(Error::Corrupt(format!("{} is empty or too short to be an aidmesh store", path.display())))
        }
        Err(e) => Err(Error::Key(format!("cannot read {}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_depends_on_passphrase_and_salt_and_reads_as_sqlcipher_raw_hex() {
        let (s1, s2) = ([1u8; 16], [2u8; 16]);
        let k = derive("correct horse", &s1).unwrap();
        assert_eq!(*k, *derive("correct horse", &s1).unwrap());
        assert_ne!(*k, *derive("correct horse", &s2).unwrap());
        assert_ne!(*k, *derive("correct horsf", &s1).unwrap());
        let r = raw(&k, None);
        assert!(r.starts_with("x'") && r.ends_with('\'') && r.len() == 2 + 64 + 1, "{}", r.as_str());
        assert_eq!(raw(&k, Some(&s1)).len(), 2 + 96 + 1);
        assert!(raw(&k, Some(&s1)).ends_with("01010101010101010101010101010101'"));
    }
}
