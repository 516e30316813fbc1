//! The `aidmesh` binary as a person or a script uses it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env { dir: tempfile::tempdir().unwrap() }
    }
    fn store(&self) -> PathBuf {
        self.dir.path().join("hub.aidmesh")
    }
    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, "pw for tests")
    }
    fn command(&self, args: &[&str], pass: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_aidmesh"));
        c.arg("--store")
            .arg(self.store())
            .args(args)
            .env("AIDMESH_PASSPHRASE", pass)
            .env("AIDMESH_HANDLE", "tester")
            .env_remove("AIDMESH_STORE");
        c
    }
    fn run_with(&self, args: &[&str], pass: &str) -> Output {
        self.command(args, pass).output().unwrap()
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    }
    fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(!o.status.success(), "{args:?} should fail: {}", String::from_utf8_lossy(&o.stdout));
        String::from_utf8(o.stderr).unwrap()
    }
    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }
}

fn id_of(v: &serde_json::Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

#[test]
fn a_coordinator_session() {
    let e = Env::new();
    assert!(e.fails(&["overview"]).contains("aidmesh init"));
    e.ok(&["init", "--name", "North hub", "--location", "St Mary's hall"]);
    assert!(e.fails(&["init", "--name", "Again"]).contains("already exists"));
    let o = e.run_with(&["overview"], "wrong");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("wrong passphrase"));
    let hall = id_of(&e.json(&["add", "place", "name=Hall", "type=staging"]));
    let water = id_of(&e.json(&[
        "add",
        "item",
        "name=Bottled water",
        "unit=bottle 1.5 l",
        "category=water",
        &format!("place={hall}"),
        "reorder_level=50",
    ]));
    e.ok(&["add", "movement", &format!("item={water}"), "type=receive", "quantity=20", &format!("place={hall}")]);
    e.ok(&["add", "movement", &format!("item={water}"), "type=issue", "quantity=5", &format!("place={hall}")]);
    let err =
        e.fails(&["add", "movement", &format!("item={water}"), "type=issue", "quantity=50", &format!("place={hall}")]);
    assert!(err.contains("only 15 in stock"), "{err}");
    let stock = e.json(&["stock", &water]);
    assert_eq!(stock[0]["quantity"], 15);
    // Numbers typed for text fields stay text.
    let exp = e.json(&[
        "add",
        "expense",
        "amount_minor=1250",
        "currency=EUR",
        "payee=Shop",
        "purpose=Water",
        "fund=general",
        "receipt=0042",
        "date=2026-11-25",
    ]);
    assert_eq!(exp["receipt"], "0042");
    let ov = e.json(&["overview"]);
    assert_eq!(ov["shortages"][0]["item"], water.as_str());
    assert_eq!(ov["unapproved_expenses"].as_array().unwrap().len(), 1);
    let out = e.ok(&["overview"]);
    assert!(out.contains("Shortages (below reorder level): 1") && out.contains("Bottled water"), "{out}");
    let hits = e.json(&["search", "bottled"]);
    assert_eq!(hits[0]["id"], water.as_str());
    e.ok(&["update", &water, "name=Still water"]);
    let shown = e.json(&["show", &water]);
    assert_eq!(shown["record"]["name"], "Still water");
    assert_eq!(shown["history"].as_array().unwrap().len(), 2);
    // `history` names who signed each change as `show` does: the person whose key signed it,
    // or the hub's handle marked as only its word.
    let lines = e.ok(&["history", &water]);
    assert_eq!(lines.lines().count(), 2, "{lines}");
    for (line, h) in lines.lines().zip(shown["history"].as_array().unwrap()) {
        let by = match h["person"].as_str() {
            Some(p) => p.to_string(),
            None => format!("{} (no person signed)", h["handle"].as_str().unwrap()),
        };
        assert!(line.contains(&by), "{line} should name {by}");
    }
    // A check-out is an amendment, once; the check-in itself is never edited.
    let vol = id_of(&e.json(&["add", "volunteer", "handle=swift-otter"]));
    let ci = id_of(&e.json(&["add", "check_in", &format!("volunteer={vol}"), "checked_in=2026-11-25T08:00"]));
    assert!(e.fails(&["update", &ci, "checked_out=2026-11-25T12:00"]).contains("append-only"));
    let out = e.ok(&["close", &ci]);
    assert!(out.contains(&format!("Check-in {ci}: checked out at")), "{out}");
    assert!(e.json(&["show", &ci])["record"]["checked_out"].is_string());
    assert!(e.fails(&["close", &ci]).contains("checked out already"));
    let inc =
        id_of(&e.json(&["add", "incident", "occurred=2026-11-25T10:00", "severity=4", "description=Fall at the gate"]));
    assert!(e.fails(&["update", &inc, "severity=2"]).contains("append-only"));
    e.ok(&["amend", &inc, "severity", "2", "--reason", "only a scrape"]);
    let shown = e.json(&["show", &inc]);
    assert_eq!(shown["record"]["severity"], 2);
    assert_eq!(shown["original"]["severity"], 4);
    assert!(e.ok(&["fields", "shift"]).contains("needed"));
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    // `aidmesh list item | head -c 16`: the reader leaves while the command still writes.
    let e = Env::new();
    e.ok(&["demo"]);
    let args = ["--json", "list", "item", "--limit", "1000"];
    let whole = e.ok(&args);
    assert!(whole.len() > 65_536 + 16, "the output must outgrow a pipe's buffer: {} bytes", whole.len());
    let mut child = e.command(&args, "pw for tests").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut first = [0u8; 16];
    let mut out = child.stdout.take().unwrap();
    out.read_exact(&mut first).unwrap();
    drop(out);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.is_empty(), "{:?}: {err}", o.status);
}

#[test]
fn bad_input_is_named_and_exits_non_zero() {
    let e = Env::new();
    e.ok(&["init", "--name", "North"]);
    let cases: &[(&[&str], &str)] = &[
        (&["add", "widget", "name=x"], "unknown record kind \"widget\""),
        (&["add", "item", "name=x"], "unit: is required"),
        (&["add", "item", "name=x", "unit=u", "expiry=31/12/2026"], "expiry"),
        (&["add", "item", "name=x", "unit=u", "colour=red"], "no field \"colour\""),
        (&["add", "item", "name=x", "unit=u", "place=nowhere"], "no place with id nowhere"),
        (&["add", "movement", "item=ghost", "type=receive", "quantity=-3", "place=p"], "quantity"),
        (
            &[
                "add",
                "expense",
                "amount_minor=100",
                "currency=EURO",
                "payee=a",
                "purpose=b",
                "fund=c",
                "date=2026-11-25",
            ],
            "ISO 4217",
        ),
        (&["add", "incident", "occurred=2026-11-25T10:00", "severity=7", "description=x"], "severity: must be 1 to 5"),
        (&["show", "01nosuchrecord"], "no record with id"),
        (&["add", "item", "noequals"], "is not FIELD=VALUE"),
        (&["import", "json", "/nonexistent/file.json"], "cannot read"),
    ];
    for (args, want) in cases {
        let err = e.fails(args);
        assert!(err.contains(want), "{args:?}: expected {want:?} in {err}");
    }
    assert_eq!(e.json(&["list", "item"]).as_array().unwrap().len(), 0, "nothing was written");
}

#[test]
fn imports_are_all_or_nothing_and_exports_round_trip() {
    let e = Env::new();
    e.ok(&["demo", "--seed", "3"]);
    let dir = e.dir.path();
    let export = dir.join("all.json");
    e.ok(&["export", "json", "--out", export.to_str().unwrap()]);
    let f = Env::new();
    f.ok(&["init", "--name", "South"]);
    let rep = f.json(&["import", "json", export.to_str().unwrap()]);
    assert!(rep["imported"].as_u64().unwrap() > 1000);
    assert_eq!(e.json(&["overview"])["counts"]["item"], f.json(&["overview"])["counts"]["item"]);
    let inv = dir.join("inv.csv");
    std::fs::write(
        &inv,
        "Item,Unit,Reorder\n#item+name,#item+unit,#indicator+num+reorder\nRice,kg,5\n,kg,3\nBeans,,x\n",
    )
    .unwrap();
    let err = f.fails(&["import", "hxl", "inventory", inv.to_str().unwrap()]);
    assert!(err.contains("row 4") && err.contains("row 5") && err.contains("nothing was changed"), "{err}");
    assert!(!err.contains("row 3:"), "{err}");
}

/// HXL exports pass libhxl's validator (installed by `cargo xtask test`).
#[test]
fn hxl_exports_pass_the_libhxl_validator() {
    let e = Env::new();
    e.ok(&["demo"]);
    for kind in ["inventory", "requests", "incidents"] {
        let out = e.dir.path().join(format!("{kind}.csv"));
        e.ok(&["export", "hxl", kind, "--out", out.to_str().unwrap()]);
        let v = Command::new(validator()).arg(&out).output().unwrap_or_else(|err| {
            panic!("cannot run hxlvalidate ({err}): `cargo xtask test` installs libhxl from PyPI")
        });
        let text = String::from_utf8_lossy(&v.stdout).to_string() + &String::from_utf8_lossy(&v.stderr);
        assert!(v.status.success() && text.contains("Validation succeeded"), "{kind}: {text}");
        let rows = std::fs::read_to_string(&out).unwrap().lines().count();
        assert!(rows > 3, "{kind} export has data rows");
    }
}

fn validator() -> PathBuf {
    if let Some(p) = std::env::var_os("HXLVALIDATE") {
        return PathBuf::from(p);
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("hxlvalidate")).find(|p| Path::new(p).is_file()))
        .unwrap_or_else(|| PathBuf::from("hxlvalidate"))
}

#[test]
fn bundles_travel_as_files_between_hubs_that_never_meet() {
    let a = Env::new();
    let b = Env::new();
    a.ok(&["init", "--name", "North"]);
    b.ok(&["init", "--name", "South"]);
    // South joins North's coalition by hand (no network between them).
    let key = b.json(&["identity"])["public_key"].as_str().unwrap().to_string();
    let code = a.json(&["admit", &key, "--name", "South"])["founder_code"].as_str().unwrap().to_string();
    b.ok(&["adopt-founder", &code]);
    a.ok(&["add", "item", "name=Blankets", "unit=blanket"]);
    let stick = a.dir.path().join("stick.bundle");
    let s = a.json(&["bundle", "export", "--to", stick.to_str().unwrap(), "--full"]);
    assert_eq!(s["records"]["item"], 1);
    assert!(stick.exists() && !stick.with_extension("partial").exists(), "written whole, then renamed");
    // The bundle is sealed for the members North knows: South opens it; a hub North never
    // admitted cannot, and nothing changes there.
    let c = Env::new();
    c.ok(&["init", "--name", "Outside"]);
    let err = c.fails(&["bundle", "import", stick.to_str().unwrap()]);
    assert!(err.contains("cannot open the bundle"), "{err}");
    b.ok(&["bundle", "import", stick.to_str().unwrap()]);
    assert!(b.ok(&["list", "item"]).contains("Blankets"));
    let err = b.fails(&["bundle", "import", "/nonexistent.bundle"]);
    assert!(err.contains("cannot read"), "{err}");
    let shown = a.ok(&["bundle", "inspect", stick.to_str().unwrap()]);
    assert!(shown.contains("North") && shown.contains("item"), "{shown}");
}

/// A hub left out of a turnover of the coalition secret (an admin sealed it nothing it can
/// open), as the command shows it: `person list` names the entry's signer and what to do.
#[test]
fn person_list_says_when_this_hub_was_left_out_of_a_turnover() {
    use aidmesh_hub::{Config, Driver, Hub};
    use aidmesh_mesh::authority::{Body, Entry, Key, Log, Slot};
    let e = Env::new();
    e.ok(&["init", "--name", "North"]);
    assert!(!e.ok(&["person", "list"]).contains("Left out"));
    {
        let mut hub = Hub::open(&e.store(), "pw for tests", Config::system("tester")).unwrap();
        let mole = aidmesh_mesh::Identity::from_secret(&[91; 32]);
        assert!(hub.add_person(&Key::of(&mole).hex(), "mole", true).unwrap());
        let log = Log::load(hub.authority_entries().unwrap()).unwrap();
        let Body::Rotate { mut rekey } = aidmesh_mesh::keyring::rotate(log.state(), [5; 32], [6; 32]).unwrap() else {
            panic!("a rotation")
        };
        rekey.slots.iter_mut().for_each(|s| *s = Slot([0x42; 48]));
        let at = Key::parse(&hub.public_key()).unwrap();
        let heads = hub.authority_heads().unwrap();
        let entry = Entry::sign(&mole, at, log.coalition(), heads, 0, Body::Rotate { rekey }).encode();
        assert_eq!(hub.offer_authority(&[entry], "hub Mole").unwrap().added, 1);
    }
    let out = e.ok(&["person", "list"]);
    assert!(out.contains("Left out of the turnover of the coalition secret in entry"), "{out}");
    assert!(out.contains("by mole") && out.contains("revokes this hub and admits it again"), "{out}");
}

#[test]
fn internet_settings_are_checked_and_kept() {
    use serde_json::json;
    let e = Env::new();
    e.ok(&["init", "--name", "North"]);
    let shown = e.json(&["internet", "show"]);
    assert_eq!((&shown["on"], &shown["relays"], &shown["budget"]), (&json!(true), &json!([]), &json!(null)));
    assert_eq!(shown["used_today"], json!(0));
    assert!(e.fails(&["internet", "relays", "http://relay.example.org"]).contains("must start with https://"));
    assert!(e.fails(&["internet", "relays", "https://relay.example.org@evil.example"]).contains("no user name"));
    assert!(e.fails(&["internet", "relays"]).contains("--none for direct addresses only"));
    e.ok(&["internet", "relays", "https://relay.riverside.example"]);
    e.ok(&["internet", "off"]);
    // Kept in the store: another process reads both.
    let shown = e.json(&["internet", "show"]);
    assert_eq!((&shown["on"], &shown["relays"]), (&json!(false), &json!(["https://relay.riverside.example/"])));
    assert!(e.ok(&["internet", "show"]).contains("off at this hub"));
    e.ok(&["internet", "on"]);
    e.ok(&["internet", "relays", "--none"]);
    assert_eq!(e.json(&["internet", "show"])["relays"], json!([]));
    // A day's budget for a metered link, as people write sizes; bad ones are named.
    for (size, bytes) in [("50MB", 50_000_000), ("1.5 GB", 1_500_000_000), ("500kB", 500_000), ("2MiB", 2 << 20)] {
        e.ok(&["internet", "budget", size]);
        assert_eq!(e.json(&["internet", "show"])["budget"], json!(bytes), "{size}");
    }
    assert!(e.ok(&["internet", "show"]).contains("0 B of the day's budget of 2.1 MB used"));
    for bad in ["lots", "50 parsecs", "0", "1.5.2MB"] {
        let err = e.fails(&["internet", "budget", bad]);
        assert!(err.contains(&format!("{bad:?}")) && err.contains("size"), "{bad}: {err}");
    }
    assert!(e.fails(&["internet", "budget"]).contains("--none"));
    e.ok(&["internet", "budget", "--none"]);
    assert_eq!(e.json(&["internet", "show"])["budget"], json!(null));
    // The relay's access list is the member hubs' keys.
    let me = e.json(&["identity"]);
    let list = e.json(&["internet", "allowlist"]);
    assert_eq!(list["allowlist"], serde_json::json!([me["public_key"]]), "{me}");
    let toml = e.ok(&["internet", "allowlist"]);
    assert!(
        toml.contains("[access]") && toml.contains(&format!("\"{}\",", me["public_key"].as_str().unwrap())),
        "{toml}"
    );
    // `serve` names a bad internet option before it takes the store.
    let cases: &[(&[&str], &str)] = &[
        (&["serve", "--relay", "ftp://relay.example.org"], "ftp://relay.example.org"),
        (&["serve", "--internet-peer", "nokey"], "expected KEY@IP:PORT"),
        (&["serve", "--internet-peer", "abcd@10.0.0.1:4433"], "expected KEY@IP:PORT"),
        (&["serve", "--relay-root", "/nonexistent/root.pem"], "not a readable PEM certificate file"),
    ];
    for (args, want) in cases {
        let err = e.fails(args);
        assert!(err.contains(want), "{args:?}: expected {want:?} in {err}");
    }
}
