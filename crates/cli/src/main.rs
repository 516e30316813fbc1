//! `aidmesh`: the command-line hub. See the library for everything it does.

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    aidmesh_cli::main()
}
