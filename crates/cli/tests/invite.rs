//! Joining a coalition with an invite code between two `aidmesh` processes on loopback.

mod common;

use std::io::Write;
use std::path::PathBuf;

use common::{cmd as cli, free_port, item_names as names, join, line_with, ok as json, serve};

fn invite(store: &std::path::Path) -> (std::process::Child, common::Lines, String) {
    common::invite(store, &["--listen", "127.0.0.1:0", "--minutes", "5"])
}

#[test]
fn a_hub_joins_with_an_invite_after_both_screens_show_the_same_code() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    for (s, n) in [(&a, "North"), (&b, "South"), (&c, "Spy")] {
        assert!(cli(s, &["init", "--name", n]).status.success());
    }
    let (mut inviter, mut lines, code) = invite(&a);
    // A forged code for the same hub and address with another secret meets silence.
    let mut forged = aidmesh_mesh::invite::Invite::parse(&code).unwrap();
    forged.secret = [0; 10];
    let o = cli(&c, &["join", &forged.code(), "--name", "Spy"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("closed without proving it holds the invite"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The real joiner.
    let (joiner, mut jlines) = join(&b, &code, "South", None);
    let shown_joiner = line_with(&mut jlines, "Confirmation code:");
    let shown_inviter = line_with(&mut lines, "Confirmation code:");
    assert_eq!(shown_joiner, shown_inviter, "both screens show the same code");
    inviter.stdin.take().unwrap().write_all(b"y\n").unwrap();
    assert!(inviter.wait().unwrap().success());
    let out = joiner.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // North admitted South; South took North's founder.
    let b_id = json(&b, &["identity"])["hub_id"].as_str().unwrap().to_string();
    let members = json(&a, &["peers"])["members"].to_string();
    assert!(members.contains(&b_id), "{members}");
    assert_eq!(json(&b, &["identity"])["founder_code"], json(&a, &["identity"])["founder_code"]);
    // The invite handed over the coalition key: South's USB bundles open on North.
    assert!(cli(&b, &["add", "item", "name=Tea", "unit=box"]).status.success());
    let stick = dir.path().join("south.bundle");
    assert!(cli(&b, &["bundle", "export", "--to", stick.to_str().unwrap()]).status.success());
    let o = cli(&a, &["bundle", "import", stick.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&cli(&a, &["list", "item"]).stdout).contains("Tea"));
    // The invite worked once: the same code again finds nobody waiting.
    let o = cli(&c, &["join", &code, "--name", "Spy"]);
    assert!(!o.status.success());
    // A coordinator who does not confirm admits nobody.
    let (mut inviter, mut lines, code) = invite(&a);
    let (spy, _spy_out) = join(&c, &code, "Spy", None);
    line_with(&mut lines, "Confirmation code:");
    inviter.stdin.take().unwrap().write_all(b"n\n").unwrap();
    assert!(!inviter.wait().unwrap().success());
    let out = spy.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused"), "{}", String::from_utf8_lossy(&out.stderr));
    let c_id = json(&c, &["identity"])["hub_id"].as_str().unwrap().to_string();
    assert!(!json(&a, &["peers"])["members"].to_string().contains(&c_id));
}

fn wait_for(what: &str, f: impl FnMut() -> bool) {
    common::wait_until(what, std::time::Duration::from_secs(30), f);
}

/// North founds and makes Central an admin; Central, while it serves, invites South. South
/// knows every member from its welcome, connects to Central at once, and changes cross the line
/// North – Central – South although North and South never share a link.
#[test]
fn a_hub_invited_by_an_admin_who_is_not_the_founder_syncs_across_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (dir.path().join("north"), dir.path().join("central"), dir.path().join("south"));
    for (s, n) in [(&a, "North"), (&b, "Central"), (&c, "South")] {
        assert!(cli(s, &["init", "--name", n]).status.success());
    }
    let key = json(&b, &["identity"])["public_key"].as_str().unwrap().to_string();
    // Authority belongs to people: North's coordinator admits Central's hub and makes Central's
    // coordinator (by the key they made at Central) an admin.
    let central = json(&b, &["person", "list"])["acting"]["key"].as_str().unwrap().to_string();
    let code = json(&a, &["admit", &key, "--name", "Central"])["founder_code"].as_str().unwrap().to_string();
    assert!(cli(&b, &["adopt-founder", &code]).status.success());
    assert!(cli(&a, &["person", "add", &central, "--name", "central", "--admin"]).status.success());
    let (pa, pb) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let _sa = serve(&a, &pa, &[]);
    let sb = serve(&b, &pb, &[&pa]);
    let is_admin = |store: &PathBuf, person: &str| {
        json(store, &["person", "list"])["people"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["key"] == person && p["admin"] == true)
    };
    wait_for("Central to learn from North that its coordinator is an admin", || is_admin(&b, &central));
    // The invite runs inside Central's running hub; its prompt is answered here.
    let (mut inviter, mut lines, invite_code) =
        common::invite(&b, &["--listen", "127.0.0.1:0", "--minutes", "5", "--serve-addr", &pb]);
    let (joiner, mut jlines) = join(&c, &invite_code, "South", None);
    assert_eq!(line_with(&mut jlines, "Confirmation code:"), line_with(&mut lines, "Confirmation code:"));
    inviter.stdin.take().unwrap().write_all(b"y\n").unwrap();
    let o = inviter.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = joiner.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // South knows Central's coordinator as an admin, and itself as a member, before it ever
    // synced: the welcome carried the whole authority log.
    assert!(is_admin(&c, &central));
    let south = json(&c, &["person", "list"]);
    let me = south["acting"]["key"].clone();
    assert!(south["people"].as_array().unwrap().iter().any(|p| p["key"] == me && p["admin"] == false), "{south}");
    let sc = serve(&c, "127.0.0.1:0", &[&pb]);
    assert!(cli(&a, &["add", "item", "name=From North", "unit=box"]).status.success());
    wait_for("North's item on South", || names(&c).contains(&"From North".to_string()));
    assert!(cli(&c, &["add", "item", "name=From South", "unit=box"]).status.success());
    wait_for("South's item on North", || names(&a).contains(&"From South".to_string()));
    // Central goes away; North and South write apart; Central comes back: all three converge.
    drop(sb);
    assert!(cli(&a, &["add", "item", "name=North alone", "unit=box"]).status.success());
    assert!(cli(&c, &["add", "item", "name=South alone", "unit=box"]).status.success());
    let _sb = serve(&b, &pb, &[&pa]);
    let all = ["From North", "From South", "North alone", "South alone"].map(String::from).to_vec();
    for s in [&a, &b, &c] {
        wait_for("all three to converge", || names(s) == all);
    }
    drop(sc);
}
