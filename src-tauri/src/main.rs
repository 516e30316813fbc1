//! The aidmesh desktop app's binary: everything is in the library (`lib.rs`), so that tests
//! can run the same commands without a window.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    aidmesh_app::run();
}
