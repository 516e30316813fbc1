//! Tidy checks, run as ordinary tests: the layering of docs/ARCHITECTURE.md holds (read from
//! `cargo metadata`, every dependency table), core logic reads no clock and no random source of
//! its own, and only one adapter reads the wall clock.

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
    }

    /// The workspace as `cargo metadata` reads it (every member, src-tauri and xtask included).
    fn metadata() -> &'static serde_json::Value {
        static META: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
        META.get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let out = std::process::Command::new(cargo)
                .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
                .current_dir(root())
                .output()
                .expect("cargo metadata runs");
            assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
        })
    }

    /// The crates a member (by its folder) uses to build: every `dependencies` table, those of
    /// `[target.*]` included, by the name its code uses; not dev- or build-dependencies.
    fn deps(dir: &str) -> Vec<String> {
        let manifest = root().join(dir).join("Cargo.toml");
        let package = metadata()["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| Path::new(p["manifest_path"].as_str().unwrap()) == manifest)
            .unwrap_or_else(|| panic!("{dir} is not a workspace member"));
        package["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"].is_null())
            .map(|d| d["rename"].as_str().or(d["name"].as_str()).unwrap().to_string())
            .collect()
    }

    #[test]
    fn dependencies_are_read_from_every_table() {
        // Platform tables count: the command's Unix-only crate, the app's Linux-only ones.
        assert!(deps("crates/cli").contains(&"rustix".to_string()));
        assert!(deps("src-tauri").contains(&"webkit2gtk".to_string()));
        // Dev-dependencies do not.
        assert!(!deps("crates/hub").contains(&"tokio".to_string()));
    }

    /// (crate dir, crates it may use from the workspace, external crates it must not use).
    const LAYERS: &[(&str, &[&str], &[&str])] = &[
        ("crates/model", &[], &["automerge", "rusqlite", "tokio", "rand", "mdns-sd", "tauri", "rustls", "iroh"]),
        ("crates/replica", &["aidmesh-model"], &["rusqlite", "tokio", "rand", "mdns-sd", "tauri", "rustls", "iroh"]),
        ("crates/store", &["aidmesh-model"], &["automerge", "tokio", "mdns-sd", "tauri", "rustls", "iroh"]),
        ("crates/mesh", &["aidmesh-model"], &["rusqlite", "tauri", "iroh"]),
        ("crates/hub", &["aidmesh-model", "aidmesh-replica", "aidmesh-store", "aidmesh-mesh"], &["tauri", "iroh"]),
        // Internet sync: iroh is built and linked from here up only.
        ("crates/internet", &["aidmesh-hub", "aidmesh-mesh"], &["tauri", "rusqlite", "automerge", "mdns-sd"]),
        ("crates/node", &["aidmesh-hub", "aidmesh-mesh", "aidmesh-internet"], &["tauri", "rusqlite", "automerge"]),
        (
            "crates/cli",
            &["aidmesh-model", "aidmesh-hub", "aidmesh-mesh", "aidmesh-node", "aidmesh-internet"],
            &["tauri", "rusqlite", "automerge"],
        ),
        // The app uses the CLI only to answer `aidmesh` commands sent to it while it owns the
        // store (`aidmesh_cli::commands`).
        (
            "src-tauri",
            &["aidmesh-hub", "aidmesh-mesh", "aidmesh-node", "aidmesh-cli", "aidmesh-internet"],
            &["rusqlite", "automerge"],
        ),
    ];

    #[test]
    fn dependencies_point_one_way() {
        let mut problems = Vec::new();
        for (dir, allowed, forbidden) in LAYERS {
            for d in deps(dir) {
                if d.starts_with("aidmesh-") && !allowed.contains(&d.as_str()) {
                    problems.push(format!("{dir} depends on {d}, against the layering"));
                }
                if forbidden.contains(&d.as_str()) {
                    problems.push(format!("{dir} depends on {d}, which its layer never does"));
                }
            }
        }
        // Only the desktop shell may know Tauri.
        for entry in std::fs::read_dir(root().join("crates")).unwrap() {
            let dir = format!("crates/{}", entry.unwrap().file_name().to_string_lossy());
            if deps(&dir).iter().any(|d| d.starts_with("tauri")) {
                problems.push(format!("{dir} depends on tauri; only src-tauri may"));
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn every_crate_is_covered_by_the_layering() {
        for entry in std::fs::read_dir(root().join("crates")).unwrap() {
            let dir = entry.unwrap().path();
            let name = format!("crates/{}", dir.file_name().unwrap().to_string_lossy());
            assert!(LAYERS.iter().any(|(d, ..)| *d == name), "{name} has no place in the layering table");
        }
    }

    fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == "target") {
                    continue;
                }
                sources(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// Every Rust source under these folders of the workspace.
    fn every_source(dirs: &[&str]) -> Vec<std::path::PathBuf> {
        let mut files = Vec::new();
        for d in dirs {
            sources(&root().join(d), &mut files);
        }
        files
    }

    #[test]
    fn core_logic_takes_time_and_randomness_as_parameters() {
        let banned =
            ["SystemTime::now", "Utc::now", "Local::now", "Instant::now", "thread_rng", "OsRng", "rand::random"];
        let mut problems = Vec::new();
        let files = every_source(&["crates/model/src", "crates/replica/src", "crates/store/src"]);
        // The one adapter that reads the system's clock, which front ends hand in.
        for f in files.into_iter().filter(|f| !f.ends_with("crates/model/src/clock.rs")) {
            let text = std::fs::read_to_string(&f).unwrap();
            for b in banned {
                if text.contains(b) {
                    problems.push(format!("{} uses {b}", f.display()));
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn the_wall_clock_is_read_in_one_place() {
        let adapter = root().join("crates/model/src/clock.rs");
        let files = every_source(&["crates", "src-tauri/src"]);
        let readers: Vec<String> = files
            .iter()
            .filter(|f| **f != adapter)
            // Tests and benchmarks time themselves; they are no layer's clock.
            .filter(|f| !f.components().any(|c| c.as_os_str() == "tests" || c.as_os_str() == "benches"))
            .filter(|f| {
                let text = std::fs::read_to_string(f).unwrap();
                ["SystemTime::now", "Utc::now", "Local::now"].iter().any(|b| text.contains(b))
            })
            .map(|f| f.display().to_string())
            .collect();
        assert!(readers.is_empty(), "read the wall clock outside {}: {readers:?}", adapter.display());
        assert!(std::fs::read_to_string(&adapter).unwrap().contains("SystemTime::now"), "the adapter moved");
    }

    /// The store owns its schema: no layer above it writes SQL or names a rusqlite type (tests may
    /// open a store file to damage it).
    #[test]
    fn sql_lives_in_the_store() {
        let store = root().join("crates/store");
        let files = every_source(&["crates", "src-tauri/src"]);
        let sql = ["rusqlite", "SELECT ", "INSERT INTO", "UPDATE ", "DELETE FROM", "CREATE TABLE", "PRAGMA "];
        let mut problems = Vec::new();
        for f in files.iter().filter(|f| !f.starts_with(&store)) {
            if f.components().any(|c| c.as_os_str() == "tests" || c.as_os_str() == "benches") {
                continue;
            }
            let text = std::fs::read_to_string(f).unwrap();
            for word in sql.iter().filter(|w| text.contains(**w)) {
                problems.push(format!("{} has {word:?}", f.display()));
            }
        }
        assert!(problems.is_empty(), "SQL above the store:\n{}", problems.join("\n"));
    }

    /// The faces call the application API; only the node drives a hub (sync, documents from
    /// elsewhere, upkeep) through `aidmesh_hub::Driver`.
    #[test]
    fn the_faces_do_not_drive_the_hub() {
        let files = every_source(&["crates/cli/src", "src-tauri/src"]);
        let drivers: Vec<String> = files
            .iter()
            .filter(|f| std::fs::read_to_string(f).unwrap().contains("Driver"))
            .map(|f| f.display().to_string())
            .collect();
        assert!(drivers.is_empty(), "faces that drive the hub: {drivers:?}");
    }

    #[test]
    fn every_module_says_what_it_is_for() {
        let files = every_source(&["crates", "src-tauri/src"]);
        let missing: Vec<String> = files
            .iter()
            .filter(|f| !f.components().any(|c| c.as_os_str() == "tests"))
            .filter(|f| !std::fs::read_to_string(f).unwrap().trim_start().starts_with("//!"))
            .map(|f| f.display().to_string())
            .collect();
        assert!(missing.is_empty(), "modules without a //! line:\n{}", missing.join("\n"));
    }
}
