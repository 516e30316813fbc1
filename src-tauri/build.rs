fn main() {
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/dist/index.html");
    if !dist.exists() {
        println!("cargo:warning=ui/dist is missing: build the UI first (cargo xtask run / cargo xtask test do)");
    }
    tauri_build::build()
}
