//! The bundle reader never panics, whatever the bytes: under the right key or a wrong one.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The key the seed corpus was written with, and another.
    let _ = aidmesh_mesh::bundle::read(&[7u8; 32], data);
    let _ = aidmesh_mesh::bundle::read(&[0u8; 32], data);
});
