//! The sync protocol never panics, whatever a peer sends: frames decode or are refused, what
//! decodes encodes back to itself, and a session takes Automerge sync messages, documents and
//! authority entries from it or ends with an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = aidmesh_mesh::memory::feed_frames(data);
});
