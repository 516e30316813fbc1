//! `cargo xtask`: the README's commands.
//!
//! - `cargo xtask run`: check what is needed, build the UI and the desktop app, and start it on
//!   a hub kept in `.app-data/` (first start on a new hub; discovery on loopback only).
//! - `cargo xtask demo`: the headless hub: seed (first time) a demo coalition in `.demo/` and
//!   print its overview; `cargo xtask demo -- ARGS` runs `aidmesh ARGS` on it.
//! - `cargo xtask test`: check or install what the tests need, then run every test.
//! - `cargo xtask bundle`: the desktop package (.deb) through the Tauri bundler, offline.
//! - `cargo xtask soak [SEEDS]`: the connection-policy simulation over many more seeded
//!   schedules than a test run (20,000 by default), in release mode.
//!
//! Installs go through the system's own package clients: apt (only as root), npm into ui/,
//! pip into a project-local virtual environment, cargo install for tauri-driver and tauri-cli.
//! Nothing else is downloaded.

mod tidy;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Debian packages the desktop app needs to build and run.
const APP_PACKAGES: &[&str] = &["build-essential", "pkg-config", "libssl-dev", "libwebkit2gtk-4.1-dev"];
/// And what the tests need beside: the HXL validator's Python, network namespaces and NAT in
/// them, the real window under Xvfb driven through WebKitWebDriver.
const TEST_PACKAGES: &[&str] =
    &["python3", "python3-venv", "iproute2", "nftables", "xvfb", "xauth", "webkit2gtk-driver", "poppler-utils"];
/// tauri-driver (WebDriver for the app) and tauri-cli (the .deb bundler), pinned.
const TAURI_DRIVER: &str = "2.1.0";
const TAURI_CLI: &str = "2.12.4";
/// The pinned cargo-machete, which finds dependencies a crate declares and never uses.
const CARGO_MACHETE: &str = "0.9.2";
/// The HXL validator the tests run against exports, with the dependencies it imports pinned
/// (libhxl imports `six`, which python-dateutil 4 no longer brings).
const LIBHXL: &[&str] = &["libhxl==5.2.2", "six==1.17.0", "python-dateutil==2.9.0.post0", "jsonpath-ng==1.8.0"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(),
        Some("demo") => demo(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("bundle") => bundle(),
        Some("soak") => soak(args.get(1).map(String::as_str).unwrap_or("20000")),
        Some("types") => types(),
        Some("screenshots") => screenshots(),
        _ => {
            eprintln!(
                "usage: cargo xtask run | demo [-- aidmesh arguments] | test [-- cargo test arguments] | bundle | soak [SEEDS] | types | screenshots"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::from(1)
        }
    }
}

type Result<T = ()> = std::result::Result<T, String>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

/// Builds the UI and the desktop app and starts it.
fn run() -> Result {
    ensure_system_packages(APP_PACKAGES)?;
    let root = root();
    ensure_ui(&root, false)?;
    step("building the desktop app");
    cargo(&root, &["build", "--quiet", "-p", "aidmesh-app"])?;
    let data = std::env::var_os("AIDMESH_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| root.join(".app-data"));
    step(&format!("starting aidmesh (hub data in {})", data.display()));
    let st = Command::new(root.join("target/debug/aidmesh-app"))
        .env("AIDMESH_DATA_DIR", &data)
        // Here, meeting other hubs stays on this machine: loopback only.
        .env("AIDMESH_MDNS_INTERFACES", std::env::var("AIDMESH_MDNS_INTERFACES").unwrap_or_else(|_| "lo".into()))
        .env("AIDMESH_LISTEN", std::env::var("AIDMESH_LISTEN").unwrap_or_else(|_| "127.0.0.1:7420".into()))
        .status()
        .map_err(|e| format!("cannot start the app: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("the app stopped with {st} (no display? it needs a graphical session)"))
    }
}

/// The headless hub with a demo coalition.
fn demo(extra: &[String]) -> Result {
    ensure_system_packages(&["build-essential", "pkg-config"])?;
    let root = root();
    step("building the aidmesh command");
    cargo(&root, &["build", "--quiet", "-p", "aidmesh-cli"])?;
    let bin = root.join("target/debug/aidmesh");
    let home = root.join(".demo");
    let store = home.join("hub.aidmesh");
    let pass = std::env::var("AIDMESH_PASSPHRASE").unwrap_or_else(|_| "demo passphrase".to_string());
    let aidmesh = |args: &[&str]| -> Result {
        let st = Command::new(&bin)
            .args(["--store", store.to_str().unwrap_or_default()])
            .args(args)
            .env("AIDMESH_PASSPHRASE", &pass)
            .status()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        if st.success() {
            Ok(())
        } else {
            Err(format!("aidmesh {} failed", args.join(" ")))
        }
    };
    if !store.exists() {
        step(&format!("first run: seeding a demo hub in {} (passphrase {pass:?})", home.display()));
        std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
        aidmesh(&["demo"])?;
    }
    if extra.is_empty() {
        step(&format!("overview of the demo hub (store {}, passphrase {pass:?})", store.display()));
        aidmesh(&["overview"])?;
        println!();
        println!("More: target/debug/aidmesh --store {} --help", store.display());
        Ok(())
    } else {
        let args: Vec<&str> = extra.iter().map(String::as_str).filter(|a| *a != "--").collect();
        aidmesh(&args)
    }
}

fn test(extra: &[String]) -> Result {
    let mut pkgs = APP_PACKAGES.to_vec();
    pkgs.extend(TEST_PACKAGES);
    ensure_system_packages(&pkgs)?;
    let root = root();
    let validator = ensure_libhxl(&root)?;
    ensure_ui(&root, true)?;
    ensure_cargo_tool(&root, "tauri-driver", &["tauri-driver", "--version", TAURI_DRIVER])?;
    ensure_cargo_tool(&root, "cargo-machete", &["cargo-machete", "--version", CARGO_MACHETE])?;
    step("checking that every crate uses every dependency it declares (cargo machete)");
    machete(&root)?;
    step("running every test (cargo test --workspace)");
    let mut args: Vec<&str> = vec!["test", "--workspace", "--locked", "--no-fail-fast"];
    args.extend(extra.iter().map(String::as_str));
    // Any hub a test starts without its own setting keeps mDNS on loopback.
    let env = [("HXLVALIDATE", validator.as_os_str()), ("AIDMESH_MDNS_INTERFACES", "lo".as_ref())];
    cargo_with(&root, &args, &env, "tests failed")?;
    fuzz(&root)?;
    step("all tests passed");
    Ok(())
}

/// Writes ui/src/lib/hub.gen.ts again from the Rust types the app's commands send and take
/// (src-tauri/src/edge.rs), then type-checks the UI against it.
fn types() -> Result {
    let root = root();
    step("writing ui/src/lib/hub.gen.ts from the Rust types");
    cargo_with(
        &root,
        &["test", "--locked", "-p", "aidmesh-app", "--lib", "edge::tests"],
        &[("AIDMESH_WRITE_TYPES", "1".as_ref())],
        "the types could not be written",
    )?;
    ensure_ui_packages(&root)?;
    step("type-checking the UI against them (svelte-check)");
    npm(&root.join("ui"), &["run", "--silent", "check"])
}

/// Runs the app's end-to-end test with its screenshots written to docs/screenshots, for the
/// README and the user guide (an ordinary test run writes them under target/).
fn screenshots() -> Result {
    let mut pkgs = APP_PACKAGES.to_vec();
    pkgs.extend(TEST_PACKAGES);
    ensure_system_packages(&pkgs)?;
    let root = root();
    ensure_ui(&root, false)?;
    ensure_cargo_tool(&root, "tauri-driver", &["tauri-driver", "--version", TAURI_DRIVER])?;
    step("refreshing docs/screenshots from the end-to-end test");
    let shots = root.join("docs/screenshots");
    cargo_with(
        &root,
        &["test", "--locked", "-p", "aidmesh-app", "--test", "e2e"],
        &[("AIDMESH_SCREENSHOTS", shots.as_os_str()), ("AIDMESH_MDNS_INTERFACES", "lo".as_ref())],
        "the end-to-end test failed; docs/screenshots may be partly refreshed",
    )
}

/// The mesh simulation (`crates/mesh/tests/policy_sim.rs`) over `seeds` schedules.
fn soak(seeds: &str) -> Result {
    let n: u64 = seeds.parse().map_err(|_| format!("{seeds:?} is not a number of seeds"))?;
    step(&format!("running the connection-policy simulation over {n} seeded schedules"));
    let seeds = n.to_string();
    cargo_with(
        &root(),
        &["test", "--release", "--locked", "-p", "aidmesh-mesh", "--test", "policy_sim", "--", "--nocapture"],
        &[("AIDMESH_SIM_SEEDS", seeds.as_ref())],
        "the simulation found a schedule that fails (its seed is in the message above)",
    )
}

/// The .deb package of the desktop app, through the Tauri bundler (no network needed).
fn bundle() -> Result {
    ensure_system_packages(APP_PACKAGES)?;
    let root = root();
    ensure_ui(&root, false)?;
    ensure_cargo_tool(&root, "cargo-tauri", &["tauri-cli", "--version", TAURI_CLI])?;
    step("bundling the desktop app (.deb)");
    let st = Command::new(cargo_bin())
        .current_dir(root.join("src-tauri"))
        .args(["tauri", "build", "--bundles", "deb", "--no-sign"])
        .status()
        .map_err(|e| format!("cannot run cargo tauri: {e}"))?;
    if !st.success() {
        return Err("the Tauri bundler failed".into());
    }
    let dir = root.join("target/release/bundle/deb");
    for e in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?.flatten() {
        println!("{}", e.path().display());
    }
    Ok(())
}

/// The UI's npm packages (from package-lock.json), its unit tests when `tests`, and its build
/// in ui/dist, which the desktop app embeds.
fn ensure_ui(root: &Path, tests: bool) -> Result {
    let ui = root.join("ui");
    let version = Command::new("node").arg("--version").output().map_err(|_| {
        "Node.js is missing: install Node.js 20.19 or newer with npm (apt-get install nodejs from a Node 20 repository)"
            .to_string()
    })?;
    let v = String::from_utf8_lossy(&version.stdout).trim().trim_start_matches('v').to_string();
    let parts: Vec<u32> = v.split('.').filter_map(|p| p.parse().ok()).collect();
    if parts.len() < 2 || (parts[0], parts[1]) < (20, 19) {
        return Err(format!("Node.js {v} is too old for the UI's build tools: install 20.19 or newer"));
    }
    ensure_ui_packages(root)?;
    if tests {
        // The UI against the types the hub sends (hub.gen.ts, checked against the Rust types by
        // the app's `edge` test): a field the hub renamed fails here, at every use.
        step("type-checking the UI (svelte-check)");
        npm(&ui, &["run", "--silent", "check"])?;
        step("UI unit tests (vitest, against the mock backend)");
        npm(&ui, &["test", "--silent"])?;
    }
    step("building the UI (vite)");
    npm(&ui, &["run", "--silent", "build"])
}

/// The UI's npm packages as its lock file pins them (npm ci, once per change of the lock).
fn ensure_ui_packages(root: &Path) -> Result {
    let ui = root.join("ui");
    let lock = ui.join("package-lock.json");
    let stamp = ui.join("node_modules/.aidmesh-lock");
    let lock_text = std::fs::read_to_string(&lock).map_err(|e| format!("{}: {e}", lock.display()))?;
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(lock_text.as_str()) {
        step("installing the UI's npm packages (npm ci)");
        npm(&ui, &["ci", "--no-audit", "--no-fund"])?;
        std::fs::write(&stamp, &lock_text).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn npm(dir: &Path, args: &[&str]) -> Result {
    let st = Command::new("npm").current_dir(dir).args(args).status().map_err(|e| format!("cannot run npm: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("npm {} failed in {}", args.join(" "), dir.display()))
    }
}

/// Installs a pinned tool with `cargo install` unless its binary `bin` is already in cargo's
/// bin folder or on the PATH.
fn ensure_cargo_tool(root: &Path, bin: &str, install: &[&str]) -> Result {
    let on_path = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()));
    if on_path || cargo_home().join("bin").join(bin).is_file() {
        return Ok(());
    }
    step(&format!("installing {bin} from crates.io (cargo install {})", install.join(" ")));
    let mut args = vec!["install", "--locked"];
    args.extend_from_slice(install);
    cargo(root, &args)
}

/// Runs cargo-machete over the workspace (called directly: as `cargo machete` under cargo, it
/// took its own name for a path): fails on a dependency a crate declares and never uses.
fn machete(root: &Path) -> Result {
    let installed = cargo_home().join("bin").join("cargo-machete");
    let bin = if installed.is_file() { installed } else { PathBuf::from("cargo-machete") };
    let st = Command::new(&bin).arg(root).status().map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if st.success() {
        Ok(())
    } else {
        Err("a crate declares a dependency it does not use (cargo machete names it above)".into())
    }
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo"))
}

/// The pinned cargo-fuzz, and how long each fuzz target runs.
const CARGO_FUZZ: &str = "0.13.2";
const FUZZ_SECONDS: &str = "30";
/// The fuzz targets of crates/mesh/fuzz: the bundle reader, the sync protocol as a peer drives
/// it, and a document's taking in of changes (apply, the check for rewritten records, reading
/// what they touched).
const FUZZ_TARGETS: [&str; 3] = ["bundle_read", "sync_frames", "change_ingest"];

/// Runs each fuzz target briefly on its seed corpus (nightly toolchain). Inputs one ever
/// crashed on belong in crates/mesh/fuzz/regressions/<target>, where a unit test replays them.
fn fuzz(root: &Path) -> Result {
    let toolchains =
        Command::new("rustup").args(["toolchain", "list"]).output().map_err(|e| format!("cannot run rustup: {e}"))?;
    if !String::from_utf8_lossy(&toolchains.stdout).contains("nightly") {
        return Err("the fuzz step needs a nightly toolchain (rustup toolchain install nightly)".into());
    }
    let has_fuzz = Command::new(cargo_bin()).args(["fuzz", "--version"]).output().is_ok_and(|o| o.status.success());
    if !has_fuzz {
        step(&format!("installing cargo-fuzz {CARGO_FUZZ} from crates.io"));
        cargo(root, &["install", "cargo-fuzz", "--locked", "--version", CARGO_FUZZ])?;
    }
    for target in FUZZ_TARGETS {
        let corpus = root.join("target/fuzz-corpus").join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| e.to_string())?;
        let seeds = root.join("crates/mesh/fuzz/corpus").join(target);
        for e in std::fs::read_dir(&seeds).map_err(|e| format!("{}: {e}", seeds.display()))?.flatten() {
            std::fs::copy(e.path(), corpus.join(e.file_name())).map_err(|e| e.to_string())?;
        }
        step(&format!("fuzzing {target} for {FUZZ_SECONDS} s"));
        // Through rustup: `$CARGO` is the stable toolchain's own cargo, which has no `+nightly`.
        let st = Command::new("rustup")
            .current_dir(root.join("crates/mesh"))
            .args(["run", "nightly", "cargo", "fuzz", "run", target, corpus.to_str().unwrap_or_default(), "--"])
            .arg(format!("-max_total_time={FUZZ_SECONDS}"))
            .arg("-seed=1")
            .status()
            .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
        if !st.success() {
            return Err(format!(
                "the fuzzer found a crash in {target}: its input is in crates/mesh/fuzz/artifacts/{target}; copy it into crates/mesh/fuzz/regressions/{target} and fix the code"
            ));
        }
    }
    Ok(())
}

/// Installs missing Debian packages when root; otherwise names them and stops.
fn ensure_system_packages(pkgs: &[&str]) -> Result {
    if !Path::new("/usr/bin/dpkg-query").exists() {
        step("not a Debian system: make sure a C compiler, pkg-config and python3 with venv are installed");
        return Ok(());
    }
    let missing: Vec<&str> = pkgs
        .iter()
        .copied()
        .filter(|p| {
            let out = Command::new("dpkg-query").args(["-W", "-f=${Status}", p]).output();
            !matches!(out, Ok(o) if String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        return Err(format!(
            "missing system packages: {}\n  install them with: sudo apt-get install {}",
            missing.join(" "),
            missing.join(" ")
        ));
    }
    step(&format!("installing system packages: {}", missing.join(" ")));
    sh("apt-get", &["update", "-q"])?;
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(missing.iter());
    sh("apt-get", &args)
}

/// A virtual environment in target/ with libhxl, for the HXL validation test.
fn ensure_libhxl(root: &Path) -> Result<PathBuf> {
    let venv = root.join("target/tools-venv");
    let validator = venv.join("bin/hxlvalidate");
    let marker = venv.join("installed.txt");
    let wanted = LIBHXL.join(" ");
    if validator.is_file() && std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted) {
        return Ok(validator);
    }
    step(&format!("installing {wanted} from PyPI into {}", venv.display()));
    sh("python3", &["-m", "venv", venv.to_str().unwrap_or_default()])
        .map_err(|e| format!("{e}\n  python3 with the venv module is needed for the HXL validator"))?;
    let pip = venv.join("bin/pip");
    let mut args = vec!["install", "-q", "--disable-pip-version-check"];
    args.extend_from_slice(LIBHXL);
    sh(pip.to_str().unwrap_or_default(), &args)?;
    if !validator.is_file() {
        return Err(format!("libhxl installed no hxlvalidate at {}", validator.display()));
    }
    std::fs::write(&marker, &wanted).map_err(|e| e.to_string())?;
    Ok(validator)
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

fn cargo_bin() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn cargo(dir: &Path, args: &[&str]) -> Result {
    cargo_with(dir, args, &[], &format!("cargo {} failed", args.join(" ")))
}

/// Runs cargo in `dir` with `args` and the environment variables `env`; `failed` says what a
/// failure means.
fn cargo_with(dir: &Path, args: &[&str], env: &[(&str, &std::ffi::OsStr)], failed: &str) -> Result {
    let st = Command::new(cargo_bin())
        .current_dir(dir)
        .args(args)
        .envs(env.iter().copied())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(failed.to_string())
    }
}

fn sh(cmd: &str, args: &[&str]) -> Result {
    let st = Command::new(cmd).args(args).status().map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("{cmd} {} failed ({st})", args.join(" ")))
    }
}

fn step(msg: &str) {
    eprintln!("==> {msg}");
}
