//! Shared helpers of the hub's integration tests.
#![allow(dead_code, unreachable_pub)]

use aidmesh_hub::Driver;
use std::path::{Path, PathBuf};

use aidmesh_hub::model::{Kind, Timestamp};
use aidmesh_hub::{Config, Hub, InitOptions, ManualClock};
use serde_json::{Map, Value};

pub const PASS: &str = "test passphrase";

pub fn t0() -> Timestamp {
    Timestamp::parse("2026-11-25T10:00:00Z").unwrap()
}

pub fn config(handle: &str, clock: &ManualClock, seed: u8) -> Config {
    Config { handle: handle.into(), clock: Box::new(clock.clone()), seed: [seed; 32] }
}

pub struct TestHub {
    pub hub: Hub,
    pub clock: ManualClock,
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn new_hub(name: &str, seed: u8) -> TestHub {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.aidmesh");
    let clock = ManualClock::at(t0());
    let hub = Hub::init(
        &path,
        PASS,
        &InitOptions { hub_name: name.into(), location: "hall".into(), pin: None },
        config("coord", &clock, seed),
    )
    .unwrap();
    TestHub { hub, clock, path, _dir: dir }
}

pub fn reopen(path: &Path, clock: &ManualClock) -> Hub {
    Hub::open(path, PASS, config("coord", clock, 9)).unwrap()
}

pub fn fields(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

pub fn add(hub: &mut Hub, kind: Kind, v: Value) -> String {
    hub.add(kind, fields(v)).unwrap().id().to_string()
}

/// Makes `b` a member of `a`'s coalition by hand: `a` admits it (so that each takes the
/// other's signed changes), and `b` adopts the code the admission made (the founder, and the
/// coalition secret sealed for `b`) and `a`'s coalition key.
pub fn join(a: &mut Hub, b: &mut Hub) {
    let name = b.hub_name().unwrap();
    let code = a.admit(&b.public_key(), &name).unwrap();
    b.adopt(&code).unwrap();
    b.set_coalition_key(&a.coalition_key_hex().unwrap().unwrap()).unwrap();
}

/// Copies every document of `from` into `to`, as a sync or a bundle would.
pub fn merge_into(from: &mut Hub, to: &mut Hub) -> Vec<String> {
    // The authority log travels beside the documents, as in a sync.
    let theirs = to.authority_heads().unwrap();
    to.offer_authority(&from.authority_missing_for(&theirs).unwrap(), "test merge").unwrap();
    let mut changed = Vec::new();
    for d in from.export_docs().unwrap() {
        changed.extend(to.merge_doc(&d.doc, &d.partition, d.created_at, &d.bytes, &d.sigs).unwrap());
    }
    changed
}
