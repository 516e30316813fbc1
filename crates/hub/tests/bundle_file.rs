//! A bundle file is judged before it is read: alone in its test binary, so that the process's
//! peak memory is this test's own.

use aidmesh_hub::{read_bundle_file, Error};

/// This process's peak resident memory (VmHWM), in MiB.
fn peak_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

#[test]
fn a_huge_or_foreign_file_offered_as_a_bundle_is_refused_in_constant_memory() {
    let dir = tempfile::tempdir().unwrap();
    // Sparse files: large to whoever reads them, nothing on this disk.
    let huge = dir.path().join("disk.img");
    std::fs::File::create(&huge).unwrap().set_len(3 << 30).unwrap();
    let foreign = dir.path().join("photos.zip");
    std::fs::File::create(&foreign).unwrap().set_len(1 << 30).unwrap();
    let e = read_bundle_file(&huge).unwrap_err();
    assert!(matches!(e, Error::Malformed { format: "bundle", .. }) && e.to_string().contains("too large"), "{e}");
    assert!(e.to_string().contains(&(3u64 << 30).to_string()), "the size is named: {e}");
    let e = read_bundle_file(&foreign).unwrap_err();
    assert!(e.to_string().contains("not an aidmesh bundle"), "{e}");
    let missing = read_bundle_file(&dir.path().join("none.bundle")).unwrap_err();
    assert!(missing.to_string().contains("none.bundle"), "the path is named: {missing}");
    #[cfg(target_os = "linux")]
    assert!(peak_mib() < 64, "refusing took {} MiB at peak", peak_mib());
}
