//! One owner per store: while `aidmesh serve` runs, every `aidmesh` command runs inside it,
//! over the store's control channel, and behaves exactly as it does with no hub running.
//! Before, both processes wrote to the file as one Automerge actor and, within seconds of
//! ordinary use, left a store that no longer opened ("duplicate seq N found for actor …").

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Two member hubs, North founding and Central admitted, with Central's coordinator an admin.
fn pair(dir: &tempfile::TempDir) -> (PathBuf, PathBuf) {
    let a = dir.path().join("north.aidmesh");
    let b = dir.path().join("central.aidmesh");
    ok(&a, &["init", "--name", "North"]);
    ok(&b, &["init", "--name", "Central"]);
    let key = ok(&b, &["identity"])["public_key"].as_str().unwrap().to_string();
    let code = ok(&a, &["admit", &key, "--name", "Central"])["founder_code"].as_str().unwrap().to_string();
    ok(&b, &["adopt-founder", &code]);
    // Central's coordinator is an admin of the coalition: they may read vault entries (logged),
    // those no record names included.
    let person = ok(&b, &["person", "list"])["acting"]["key"].as_str().unwrap().to_string();
    ok(&a, &["person", "add", &person, "--name", "central", "--admin"]);
    (a, b)
}

fn ids(store: &Path, kind: &str) -> std::collections::BTreeSet<String> {
    ok(store, &["list", kind, "--limit", "100000"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_thousand_commands_while_both_hubs_serve_and_sync_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = pair(&dir);
    let sa = serve(&a, "127.0.0.1:0", &[]);
    let sb = serve(&b, "127.0.0.1:0", &[&sa.1]);
    // Central writes too, all along, through its own running hub.
    let b2 = b.clone();
    let central = std::thread::spawn(move || {
        (0..100)
            .map(|i| {
                ok(&b2, &["add", "item", &format!("name=Central {i}"), "unit=box"])["id"].as_str().unwrap().to_string()
            })
            .collect::<Vec<_>>()
    });
    let mut items = Vec::new();
    let mut vault_live = Vec::new();
    let mut vault_erased = Vec::new();
    let mut writes = 0;
    let mut i = 0;
    while writes < 1000 {
        i += 1;
        let id = ok(&a, &["add", "item", &format!("name=North {i}"), "unit=bottle", "category=water"])["id"]
            .as_str()
            .unwrap()
            .to_string();
        ok(&a, &["update", &id, &format!("name=North {i} (checked)")]);
        let v = ok(&a, &["vault", "put", &format!("name=Person {i}"), "phone=+34 600 000 000"])["vault_id"]
            .as_str()
            .unwrap()
            .to_string();
        if i % 3 == 0 {
            let o = cmd(&a, &["vault", "erase", &v]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            vault_erased.push(v);
            writes += 1;
        } else {
            vault_live.push(v);
        }
        items.push(id);
        writes += 3;
    }
    let central_items = central.join().unwrap();
    // Every acknowledged write, on both hubs.
    let mut expected: std::collections::BTreeSet<String> = items.iter().cloned().collect();
    expected.extend(central_items.iter().cloned());
    for s in [&a, &b] {
        wait_until("every item on both hubs", Duration::from_secs(60), || ids(s, "item") == expected);
    }
    let last = items.last().unwrap();
    assert!(ok(&b, &["show", last])["record"].to_string().contains("(checked)"));
    for v in &vault_live {
        wait_until("the vault entry on Central", Duration::from_secs(20), || {
            cmd(&b, &["vault", "show", v, "--reason", "checking sync"]).status.success()
        });
    }
    for v in &vault_erased {
        let o = cmd(&b, &["vault", "show", v, "--reason", "checking sync"]);
        assert!(String::from_utf8_lossy(&o.stderr).contains("erased at"), "{v}: {o:?}");
    }
    // Both stores open on their own once the hubs stop: nothing was damaged.
    stop(sa);
    stop(sb);
    for s in [&a, &b] {
        assert_eq!(ids(s, "item"), expected);
        let r = ok(s, &["repair"]);
        assert_eq!(r, serde_json::json!([]), "nothing to repair");
    }
}

#[test]
fn vault_puts_and_erasures_reach_the_peer_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = pair(&dir);
    let sa = serve(&a, "127.0.0.1:0", &[]);
    let _sb = serve(&b, "127.0.0.1:0", &[&sa.1]);
    let first = ok(&a, &["add", "place", "name=Hall"])["id"].as_str().unwrap().to_string();
    wait_until("the peers to connect and sync", Duration::from_secs(30), || ids(&b, "place").contains(&first));
    for i in 0..5 {
        let v = ok(&a, &["vault", "put", &format!("name=Person {i}")])["vault_id"].as_str().unwrap().to_string();
        // Before, a vault entry written by the command reached peers only at the next reconnection.
        wait_until("the entry on Central", Duration::from_secs(5), || {
            cmd(&b, &["vault", "show", &v, "--reason", "checking sync"]).status.success()
        });
        assert!(cmd(&a, &["vault", "erase", &v]).status.success());
        wait_until("the erasure on Central", Duration::from_secs(5), || {
            String::from_utf8_lossy(&cmd(&b, &["vault", "show", &v, "--reason", "checking sync"]).stderr)
                .contains("erased at")
        });
    }
}

/// A command through the running hub prints, exits and fails exactly as on its own.
#[test]
fn a_command_reads_the_same_through_the_running_hub() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("hub.aidmesh");
    ok(&store, &["init", "--name", "North"]);
    let hall = ok(&store, &["add", "place", "name=Hall"])["id"].as_str().unwrap().to_string();
    let water =
        ok(&store, &["add", "item", "name=Water", "unit=bottle", "category=water"])["id"].as_str().unwrap().to_string();
    ok(&store, &["add", "movement", &format!("item={water}"), "type=receive", "quantity=12", &format!("place={hall}")]);
    let out = dir.path().join("out.json");
    let cases: Vec<Vec<String>> = [
        vec!["list", "item"],
        vec!["--json", "list", "item"],
        vec!["stock"],
        vec!["--json", "show", &water],
        vec!["show", "01nosuchrecord00000000000"],
        vec!["add", "item", "unit=bottle"],
        vec!["add", "nosuchkind", "name=x"],
        vec!["amend", &water, "name", "x", "--reason", "typo"],
        vec!["search", "wat"],
        vec!["vault", "show", "vnothing", "--reason", "to test"],
        vec!["export", "hxl", "inventory"],
    ]
    .iter()
    .map(|v| v.iter().map(|s| s.to_string()).collect())
    .collect();
    let run_all = || -> Vec<(Option<i32>, String, String)> {
        cases
            .iter()
            .map(|c| {
                let args: Vec<&str> = c.iter().map(String::as_str).collect();
                let o = cmd(&store, &args);
                (o.status.code(), String::from_utf8(o.stdout).unwrap(), String::from_utf8(o.stderr).unwrap())
            })
            .collect()
    };
    let alone = run_all();
    let s = serve(&store, "127.0.0.1:0", &[]);
    let through = run_all();
    for (c, (x, y)) in cases.iter().zip(alone.iter().zip(&through)) {
        assert_eq!(x, y, "{c:?} differs through the running hub");
    }
    assert!(alone.iter().any(|r| r.0 == Some(1)), "some cases fail, and fail the same");
    // A relative output path is the command's, not the hub's.
    let o = Command::new(BIN)
        .current_dir(dir.path())
        .args(["--store", "hub.aidmesh", "export", "json", "--out", "out.json"])
        .env("AIDMESH_PASSPHRASE", "pw for tests")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read_to_string(&out).unwrap().contains("Water"));
    // A path that means something only in the command's process is refused, not handed to
    // the hub (which would read its own standard input).
    let o = Command::new(BIN)
        .arg("--store")
        .arg(&store)
        .args(["import", "json", "/dev/stdin"])
        .env("AIDMESH_PASSPHRASE", "pw for tests")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not a plain file"), "{o:?}");
    // A second owner is refused, saying why; the first keeps running.
    let o = cmd(&store, &["serve", "--listen", "127.0.0.1:0", "--no-discovery"]);
    assert_eq!(o.status.code(), Some(1));
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("a hub already runs on") && said.contains(&format!("process {}", s.0.id())), "{said}");
    assert_eq!(ok(&store, &["list", "place"])[0]["id"], hall.as_str());
    stop(s);
    // The socket and token are gone with the hub; commands open the store themselves again.
    assert!(!dir.path().join("hub.aidmesh.sock").exists() && !dir.path().join("hub.aidmesh.token").exists());
    assert_eq!(run_all(), alone);
}

#[test]
fn a_hub_killed_with_sigkill_leaves_nothing_that_stops_the_next_owner() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("hub.aidmesh");
    ok(&store, &["init", "--name", "North"]);
    let mut s = serve(&store, "127.0.0.1:0", &[]);
    ok(&store, &["add", "place", "name=Hall"]);
    s.0.kill().unwrap();
    s.0.wait().unwrap();
    // The socket file is left behind, but nobody answers on it: the command opens the store.
    assert!(dir.path().join("hub.aidmesh.sock").exists());
    assert_eq!(ok(&store, &["list", "place"]).as_array().unwrap().len(), 1);
    let _s = serve(&store, "127.0.0.1:0", &[]);
    ok(&store, &["add", "place", "name=Tent"]);
    assert_eq!(ok(&store, &["list", "place"]).as_array().unwrap().len(), 2);
}

/// A hub serves for days: its passphrase must not stay where any process of the same user
/// reads it, and its files are its owner's alone.
#[cfg(target_os = "linux")]
#[test]
fn a_serving_hub_keeps_no_passphrase_in_its_environment_and_its_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("field").join("north.aidmesh");
    ok(&store, &["init", "--name", "North"]);
    let folder = std::fs::metadata(dir.path().join("field")).unwrap().permissions().mode() & 0o777;
    assert_eq!(folder, 0o700, "the store's folder is {folder:o}");
    let s = serve(&store, "127.0.0.1:0", &[]);
    let environ = std::fs::read(format!("/proc/{}/environ", s.0.id())).unwrap();
    let has = |needle: &[u8]| environ.windows(needle.len()).any(|w| w == needle);
    assert!(!has(b"pw for tests"), "the passphrase is readable in /proc/<pid>/environ");
    assert!(!has(b"AIDMESH_PASSPHRASE=p"));
    for f in [store.clone(), aidmesh_store_sibling(&store, "-wal")] {
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", f.display());
    }
    stop(s);
}

fn aidmesh_store_sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The contact rules through the command, between two serving hubs over real TLS: a number typed
/// into a record is refused; a contact saved with the form is read at the other hub for a
/// reason, which the erasure blanks there when it arrives; an admin erasing a contact only the
/// other hub keeps is told the erasure is signed, not done, and that hub destroys it once the
/// erasure reaches it.
#[test]
fn contacts_are_kept_read_and_erased_across_serving_hubs_as_the_rules_say() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = pair(&dir);
    let sa = serve(&a, "127.0.0.1:0", &[]);
    let _sb = serve(&b, "127.0.0.1:0", &[&sa.1]);
    let typed = cmd(&a, &["add", "request", "category=food", "quantity=1", "contact=+34 600 123 456"]);
    let said = String::from_utf8_lossy(&typed.stderr);
    assert!(!typed.status.success() && said.contains("contact") && said.contains("no vault id"), "{said}");
    let req = ok(&a, &["add", "request", "category=food", "quantity=1"])["id"].as_str().unwrap().to_string();
    let v = ok(&a, &["vault", "contact", &req, "name=Amal", "phone=+34 600"])["vault"].as_str().unwrap().to_string();
    let show = |store: &Path, who: &str| cmd(store, &["vault", "show", who, "--reason", "drive Amal to the clinic"]);
    wait_until("the contact on Central", Duration::from_secs(20), || show(&b, &req).status.success());
    let reasons = |store: &Path| -> Vec<String> {
        ok(store, &["vault", "reads"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["vault"] == serde_json::json!(v))
            .map(|r| r["reason"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(reasons(&b), vec!["drive Amal to the clinic"]);
    let erased = cmd(&a, &["vault", "erase", &v]);
    assert!(String::from_utf8_lossy(&erased.stdout).contains("destroyed here"), "{erased:?}");
    wait_until("the erasure on Central", Duration::from_secs(20), || {
        String::from_utf8_lossy(&show(&b, &req).stderr).contains("erased at")
    });
    assert_eq!(reasons(&b), vec![String::new()], "the reason given is blanked where the erasure arrived");
    // A volunteer's contact kept at North only; Central's admin erases it from afar.
    let vol = ok(&a, &["add", "volunteer", "handle=quiet-fox", r#"consent={"contact":true,"share":false}"#])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let kept = ok(&a, &["vault", "contact", &vol, "name=Bo"])["vault"].as_str().unwrap().to_string();
    // Access needs are health data: never in the record, kept with the contact, whose saving
    // changes the fields given and keeps the others.
    let typed = cmd(&a, &["add", "volunteer", "handle=loud-owl", "access_needs=wheelchair user"]);
    let said = String::from_utf8_lossy(&typed.stderr);
    assert!(!typed.status.success() && said.contains("access_needs") && said.contains("contact form"), "{said}");
    let again = ok(&a, &["vault", "contact", &vol, "access_needs=step-free access"]);
    assert_eq!(again["vault"], serde_json::json!(kept), "saved again in place");
    let held = ok(&a, &["vault", "show", &vol, "--reason", "plan the night shift"]);
    assert_eq!(
        (&held["name"], &held["access_needs"]),
        (&serde_json::json!("Bo"), &serde_json::json!("step-free access")),
        "{held}"
    );
    wait_until("the volunteer on Central", Duration::from_secs(20), || ids(&b, "volunteer").contains(&vol));
    let signed = cmd(&b, &["vault", "erase", &kept]);
    let out = String::from_utf8_lossy(&signed.stdout);
    assert!(signed.status.success() && out.contains("signed") && out.contains("does not hold it"), "{signed:?}");
    wait_until("the erasure on North", Duration::from_secs(20), || {
        String::from_utf8_lossy(&show(&a, &vol).stderr).contains("erased at")
    });
}
