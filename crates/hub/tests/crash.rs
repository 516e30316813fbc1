//! SIGKILL in the middle of writes: every acknowledged write is there after reopening, the
//! store passes its integrity check, and the index agrees with the documents.

mod util;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use aidmesh_hub::model::{Body, Kind};
use aidmesh_hub::{Config, Hub, ManualClock};

fn writer() -> &'static str {
    env!("CARGO_BIN_EXE_crash-writer")
}

#[test]
fn killed_mid_write_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.aidmesh");
    let mut acked = Vec::new();
    for (round, stop_after) in [7usize, 40, 3, 120, 61, 15].into_iter().enumerate() {
        let mut child = Command::new(writer())
            .args([path.to_str().unwrap(), util::PASS, &round.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start crash-writer");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for _ in 0..stop_after {
            let line = lines.next().expect("writer ended early").unwrap();
            acked.push(line.strip_prefix("ack ").unwrap().to_string());
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let clock = ManualClock::at(util::t0());
        let mut hub =
            Hub::open(&path, util::PASS, Config { handle: "t".into(), clock: Box::new(clock), seed: [99; 32] })
                .unwrap();
        for id in &acked {
            hub.get(id).unwrap_or_else(|e| panic!("round {round}: acknowledged {id} lost: {e}"));
        }
        // Stock sums equal the sum of the movements the index holds.
        let moved: i64 = hub
            .stored(Kind::Movement, usize::MAX, 0)
            .unwrap()
            .iter()
            .map(|r| match &r.body {
                Body::Movement(m) => m.quantity,
                _ => 0,
            })
            .sum();
        let stocked: i64 = hub.stock(None).unwrap().iter().map(|s| s.quantity).sum();
        assert_eq!(moved, stocked, "round {round}");
        // The index is exactly what the documents say.
        let items = hub.count(Kind::Item).unwrap();
        let movements = hub.count(Kind::Movement).unwrap();
        hub.rebuild_index().unwrap();
        assert_eq!(
            (hub.count(Kind::Item).unwrap(), hub.count(Kind::Movement).unwrap()),
            (items, movements),
            "round {round}"
        );
        assert_eq!(hub.stock(None).unwrap().iter().map(|s| s.quantity).sum::<i64>(), stocked);
    }
}
