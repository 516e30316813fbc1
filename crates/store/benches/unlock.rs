//! Unlocking a store: Argon2id of the passphrase (64 MiB), then SQLCipher's first read.
//!
//!     cargo bench -p aidmesh-store --bench unlock
//!
//! Prints the wall time of `Store::open` on a small store, five times, and of a wrong
//! passphrase (which also tries the key stores had before Argon2id).

use std::time::Instant;

use aidmesh_store::Store;

// The binaries' allocator, so that what is measured is what they run.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("unlock bench: run with `cargo bench -p aidmesh-store --bench unlock`");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hub.aidmesh");
    drop(Store::create(&p, "correct horse battery", [7; 16]).unwrap());
    let mut ms = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        drop(Store::open(&p, "correct horse battery").unwrap());
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let t = Instant::now();
    assert!(Store::open(&p, "wrong horse battery").is_err());
    let wrong = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "unlock: {} ms; a wrong passphrase refused in {wrong:.0} ms",
        ms.iter().map(|m| format!("{m:.0}")).collect::<Vec<_>>().join(", ")
    );
}
