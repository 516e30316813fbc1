//! Taking changes in never panics, whatever a peer sends for a document: Automerge's apply, the
//! check for rewritten records and the reading of the records the changes touched, for a hub
//! that holds the document and for one that takes it whole (`aidmesh_replica::feed_changes`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = aidmesh_replica::feed_changes(data);
});
