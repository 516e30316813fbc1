//! Tauri's build step, plus a fingerprint of the built UI: the app embeds ui/dist at compile
//! time, so a new UI build must recompile the app (the fingerprint changes an env var it reads).

use std::path::Path;

fn fingerprint(dir: &Path, h: &mut u64) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            fingerprint(&p, h);
        } else if let Ok(bytes) = std::fs::read(&p) {
            for b in p.to_string_lossy().bytes().chain(bytes) {
                *h = (*h ^ b as u64).wrapping_mul(0x100000001b3);
            }
        }
    }
}

fn main() {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/dist");
    if !dist.join("index.html").exists() {
        println!("cargo:warning=ui/dist is missing: build the UI first (cargo xtask run / cargo xtask test do)");
    }
    let mut h = 0xcbf29ce484222325u64;
    fingerprint(&dist, &mut h);
    println!("cargo:rerun-if-changed=../ui/dist");
    println!("cargo:rustc-env=AIDMESH_UI_FINGERPRINT={h:016x}");
    tauri_build::build()
}
