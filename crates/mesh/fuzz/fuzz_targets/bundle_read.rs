//! The bundle reader never panics, whatever the bytes: for the hub it was sealed for or another.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The hub the seed corpus was sealed for (with the coalition key of version 1), and another.
    let ours = aidmesh_mesh::Identity::from_secret(&[7u8; 32]);
    let other = aidmesh_mesh::Identity::from_secret(&[0u8; 32]);
    let _ = aidmesh_mesh::bundle::read(&ours, Some(&[7u8; 32]), data);
    let _ = aidmesh_mesh::bundle::read(&other, None, data);
});
