//! What someone who seized a laptop and has its passphrase finds in a store's files with
//! forensic tools, not through SQLite: every page of the file and of its write-ahead log
//! decrypted, free pages, unused space in pages and stale log frames included. For tests that
//! erased content is gone from the disk, not only from the tables (built with the `forensic`
//! feature; nothing of the hub uses it).
//!
//! SQLCipher 4 encrypts each page on its own with AES-256-CBC under the raw key, the page's IV
//! in the first 16 bytes of its reserved tail (80 bytes: the IV and an HMAC-SHA512, which is
//! not checked here); page 1's first 16 bytes are the file's salt, in the clear. The log holds
//! a 32-byte header, then frames of a 24-byte header (the page's number first) and the page
//! encrypted the same way.

use std::path::Path;

use aes::cipher::{generic_array::GenericArray, BlockDecrypt, KeyInit};

use crate::{key, sibling, Error, Result};

/// SQLCipher 4's default page size, which the store keeps.
const PAGE: usize = 4096;
/// Bytes at the end of each page that SQLCipher keeps for the IV and the HMAC.
const RESERVE: usize = 80;
const WAL_HEADER: usize = 32;
const FRAME_HEADER: usize = 24;

/// The plaintext of every page of the store at `path` and of its write-ahead log, as
/// `passphrase` decrypts them, one after the other (each page's reserved tail left out). Fails
/// if `passphrase` does not decrypt the file's first page to an SQLite header with SQLCipher's
/// page size and reserve.
pub fn plaintext(path: &Path, passphrase: &str) -> Result<Vec<u8>> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| Error::Key(format!("cannot read {}: {e}", p.display())));
    let file = read(path)?;
    let salt: [u8; key::SALT_LEN] = file
        .get(..key::SALT_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| Error::Corrupt(format!("{} is too short to be a store", path.display())))?;
    let key = key::derive(passphrase, &salt)?;
    let aes = aes::Aes256::new(GenericArray::from_slice(key.as_ref()));
    let mut out = Vec::with_capacity(file.len());
    for (n, page) in file.chunks(PAGE).enumerate() {
        decrypt_page(&aes, n + 1, page, &mut out);
        if n == 0 {
            // The header's page size (bytes 16–17) and reserve (byte 20), past the salt.
            let header = [out.first(), out.get(1), out.get(4)];
            if header != [Some(&((PAGE >> 8) as u8)), Some(&0), Some(&(RESERVE as u8))] {
                return Err(Error::WrongPassphrase(path.to_path_buf()));
            }
        }
    }
    let wal = sibling(path, "-wal");
    if wal.exists() {
        let log = read(&wal)?;
        for frame in log.get(WAL_HEADER..).unwrap_or_default().chunks(FRAME_HEADER + PAGE) {
            let Some(number) = frame.get(..4) else { break };
            let number = u32::from_be_bytes(number.try_into().expect("four bytes")) as usize;
            decrypt_page(&aes, number, &frame[FRAME_HEADER.min(frame.len())..], &mut out);
        }
    }
    Ok(out)
}

/// Appends the plaintext of page `number` (1 for the first) to `out`; a page cut short (a
/// log frame being written) is passed over.
fn decrypt_page(aes: &aes::Aes256, number: usize, page: &[u8], out: &mut Vec<u8>) {
    if page.len() != PAGE {
        return;
    }
    let start = if number == 1 { key::SALT_LEN } else { 0 };
    let end = PAGE - RESERVE;
    let mut prev: [u8; 16] = page[end..end + 16].try_into().expect("sixteen bytes");
    for block in page[start..end].chunks_exact(16) {
        let mut b = GenericArray::clone_from_slice(block);
        aes.decrypt_block(&mut b);
        out.extend(b.iter().zip(prev).map(|(x, p)| x ^ p));
        prev = block.try_into().expect("sixteen bytes");
    }
}
