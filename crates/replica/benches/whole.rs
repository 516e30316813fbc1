//! What taking a whole document costs, for a document of long history: 2,500 items made ten a
//! change, then 20,000 edits one a change (each renames an item and rewrites its notes), as a
//! hub's own coordinators make them. Prints, for its saved bytes: Automerge's load; the load,
//! rebuilt from its changes as a hub takes a document from elsewhere
//! (`aidmesh_replica::rebuilt`); and the check for rewritten records from nothing, given the
//! changes it was rebuilt from (`Doc::rewrite_of_rebuilt`), which a hub runs on every document
//! it takes whole. Then a heal: 1,000 + 1,000 edits made apart on it, and the check of the
//! 1,000 one hub takes from the other (each read at its dependencies). Beside them, the same
//! changes as one Automerge bundle: its size, and what taking it costs.
//!
//! `cargo bench -p aidmesh-replica --bench whole` (`AIDMESH_BENCH_EDITS` edits, default 20,000).

use std::time::Instant;

use aidmesh_model::{Body, Item, Kind, Meta, Record, Timestamp};
use aidmesh_replica::{rebuilt, Author, Doc};
use automerge::AutoCommit;

// The binaries' allocator, so that what is measured is what they run.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let edits: usize = std::env::var("AIDMESH_BENCH_EDITS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let item = |i: usize, name: String, notes: String| {
        let body = Body::Item(Item { name, unit: "box".into(), notes, ..Default::default() });
        let meta = Meta {
            id: format!("i{i}").as_str().into(),
            kind: body.kind(),
            created_hub: "a".into(),
            created_by: "fox".into(),
            created_at: Timestamp::from_millis(1),
        };
        Record { meta, body }
    };
    let author = |n: usize| Author { hub: "a".into(), handle: "fox".into(), at: Timestamp::from_millis(n as i64) };
    let mut doc = Doc::new("items", b"bench");
    for i in 0..2_500 {
        doc.create(&item(i, format!("item {i}"), "keep dry".into())).expect("made");
        if i % 10 == 9 {
            doc.commit(&author(i));
        }
    }
    for e in 0..edits {
        doc.update(&item(e % 2_500, format!("item {e}, renamed"), format!("note {e}"))).expect("written");
        doc.commit(&author(e));
    }
    let bytes = doc.save();
    let fixed = |k: &str| Kind::parse(k).is_ok_and(|k| k.append_only());
    println!("document: 2,500 items, {} changes, {} bytes saved", edits + 250, bytes.len());
    let t = Instant::now();
    let loaded = AutoCommit::load(&bytes).expect("loads");
    println!("load:                      {:>8.0} ms", t.elapsed().as_secs_f64() * 1e3);
    let t = Instant::now();
    let (whole, changes) = rebuilt("items", loaded).expect("rebuilds");
    println!("rebuilt from its changes: +{:>8.0} ms", t.elapsed().as_secs_f64() * 1e3);
    let t = Instant::now();
    let verdict = Doc::arrived("items", whole).rewrite_of_rebuilt(&changes, fixed).expect("checked");
    println!("rewrite check from nothing: {:>7.0} ms", t.elapsed().as_secs_f64() * 1e3);
    assert!(verdict.is_none());
    // The same changes as one Automerge bundle (an experimental format of Automerge 0.12, not
    // for production yet): what a hub that holds nothing could be sent instead of the save, to
    // take without loading the document first. Its size, and the time to read its changes and
    // apply them into an empty document (where a save costs the load and the rebuild above).
    let hashes = changes.iter().map(|c| c.hash());
    let bundle = doc.automerge().bundle(hashes).expect("bundled");
    let t = Instant::now();
    let mut taken = AutoCommit::load(bundle.bytes()).expect("a bundle loads");
    println!(
        "as one bundle: {} bytes ({:.2}x the save), read and applied in {:.0} ms",
        bundle.bytes().len(),
        bundle.bytes().len() as f64 / bytes.len() as f64,
        t.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(taken.get_heads(), doc.heads());
    // A heal: two hubs each make 1,000 edits apart on the document, one a change; one takes
    // the other's. Their changes are not made on top of the taker's own, so each is read at its
    // dependencies.
    let made = doc.heads();
    let (mut a, mut b) = (doc.fork(b"hub-a"), doc.fork(b"hub-b"));
    for e in 0..1_000 {
        a.update(&item((2 * e) % 2_500, format!("a {e}"), format!("a note {e}"))).expect("written");
        a.commit(&author(e));
        b.update(&item((2 * e + 1) % 2_500, format!("b {e}"), format!("b note {e}"))).expect("written");
        b.commit(&author(e));
    }
    let before = a.heads();
    let theirs = b.changes_after(&made);
    let t = Instant::now();
    for c in &theirs {
        a.apply_checked(c.raw_bytes()).expect("applied");
    }
    println!("heal, 1,000 changes applied:  {:>5.0} ms", t.elapsed().as_secs_f64() * 1e3);
    let t = Instant::now();
    let verdict = a.rewrite_since(&before, fixed).expect("checked");
    println!("heal, their rewrite check:    {:>5.0} ms", t.elapsed().as_secs_f64() * 1e3);
    assert!(verdict.is_none());
}
