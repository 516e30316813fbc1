//! A bundle file is judged before it is read: alone in its test binary, so that the process's
//! peak memory is this test's own.

mod util;

use aidmesh_hub::model::Kind;
use aidmesh_hub::{read_bundle_file, Error, Hub};
use aidmesh_mesh::bundle::{MAGIC, MAGIC_V1};
use serde_json::json;
use util::*;

/// This process's resident memory now and at its peak since the last [`reset_peak`] (VmRSS and
/// VmHWM), in MiB.
fn resident_mib(which: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(which))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

/// Starts counting the peak from here (opening a store takes Argon2id's 256 MiB first).
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

fn read(hub: &Hub, path: &std::path::Path) -> Result<Vec<u8>, Error> {
    read_bundle_file(path, |head| hub.bundle_key(head))
}

/// A sparse file: `len` bytes to whoever reads it, `start` first, nothing on this disk.
fn sparse(dir: &std::path::Path, name: &str, start: &[u8], len: u64) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, start).unwrap();
    std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(len).unwrap();
    p
}

#[test]
fn a_huge_foreign_or_altered_file_offered_as_a_bundle_is_refused_in_constant_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut north = new_hub("North", 1);
    let mut south = new_hub("South", 2);
    join(&mut north.hub, &mut south.hub);
    add(&mut north.hub, Kind::Item, json!({"name": "Insulin pens", "unit": "pen"}));
    let good = north.hub.export_bundle(true, &[]).unwrap().bytes;
    let stranger = new_hub("Elsewhere", 3);
    #[cfg(target_os = "linux")]
    let before = {
        reset_peak();
        resident_mib("VmRSS:")
    };
    let just_under = aidmesh_mesh::bundle::MAX_BUNDLE as u64;

    let huge = sparse(dir.path(), "disk.img", b"", 3 << 30);
    let e = read(&south.hub, &huge).unwrap_err();
    assert!(matches!(e, Error::Malformed { format: "bundle", .. }) && e.to_string().contains("too large"), "{e}");
    assert!(e.to_string().contains(&(3u64 << 30).to_string()), "the size is named: {e}");
    let foreign = sparse(dir.path(), "photos.zip", b"PK\x03\x04", 1 << 30);
    let e = read(&south.hub, &foreign).unwrap_err();
    assert!(e.to_string().contains("not an aidmesh bundle"), "{e}");
    // Junk that starts as a bundle, just under the limit: no slot of a version 2 head opens,
    // and a version 1 head's tag is checked in passes, never holding the file.
    let mut head = MAGIC.to_vec();
    head.extend([0; 32]);
    head.extend(1u16.to_be_bytes());
    let junk_v2 = sparse(dir.path(), "junk-2.bundle", &head, just_under);
    let e = read(&south.hub, &junk_v2).unwrap_err();
    assert!(e.to_string().contains("this hub cannot open the bundle"), "{e}");
    let junk_v1 = sparse(dir.path(), "junk-1.bundle", MAGIC_V1, just_under);
    let e = read(&south.hub, &junk_v1).unwrap_err();
    assert!(e.to_string().contains("cannot be opened with this coalition's key"), "{e}");
    // A real bundle for this hub, its ciphertext grown with junk: refused by its tag.
    let mut grown = good.clone();
    grown.truncate(good.len() - 16);
    let grown = sparse(dir.path(), "grown.bundle", &grown, just_under);
    let e = read(&south.hub, &grown).unwrap_err();
    assert!(e.to_string().contains("cannot be opened with this coalition's key"), "{e}");
    #[cfg(target_os = "linux")]
    {
        let peak = resident_mib("VmHWM:");
        assert!(peak < before + 64, "refusing took {} MiB above the {before} MiB before", peak - before);
    }

    // Cut short, or one byte changed: refused, as the import would.
    let cut = dir.path().join("cut.bundle");
    std::fs::write(&cut, &good[..good.len() - 1]).unwrap();
    assert!(read(&south.hub, &cut).unwrap_err().to_string().contains("cannot be opened"));
    let mut flipped = good.clone();
    let n = flipped.len() / 2;
    flipped[n] ^= 1;
    let flipped_path = dir.path().join("flipped.bundle");
    std::fs::write(&flipped_path, &flipped).unwrap();
    assert!(read(&south.hub, &flipped_path).unwrap_err().to_string().contains("cannot be opened"));
    // Another coalition's hub: named as one the bundle was not made for.
    let ok = dir.path().join("north.bundle");
    std::fs::write(&ok, &good).unwrap();
    let e = read(&stranger.hub, &ok).unwrap_err();
    assert!(e.to_string().contains("this hub cannot open the bundle"), "{e}");
    // The real one reads whole, and imports.
    let bytes = read(&south.hub, &ok).unwrap();
    assert_eq!(bytes, good);
    south.hub.import_bundle(bytes).unwrap();
    assert_eq!(south.hub.search("Insulin", None, 10).unwrap().len(), 1);

    let missing = read(&south.hub, &dir.path().join("none.bundle")).unwrap_err();
    assert!(missing.to_string().contains("none.bundle"), "the path is named: {missing}");
}
