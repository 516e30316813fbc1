//! `aidmesh`: the command-line hub. See the library for everything it does.

fn main() -> std::process::ExitCode {
    aidmesh_cli::main()
}
