//! Sync traffic and time, measured side by side in one run (in-memory sessions, frames encoded
//! as on the wire, each with its 4-byte length; TLS adds about 44 bytes per record on top).
//! Each figure gives the bytes as sent (frames from 256 bytes on deflated where that is
//! smaller) beside the same frames plain, and the time spent deflating and inflating them
//! beside plain encoding and decoding.
//!
//!     cargo bench -p aidmesh-mesh --bench sync
//!
//! 1. One record edit between two connected hubs: frame bytes against the Automerge change.
//! 2. Reconnect after a partition in which each side made 1,000 edits, on a document with 100k
//!    changes of history: with persisted sync state (aidmesh) against fresh state (what a
//!    protocol keeping no sync state across connections sends).
//! 3. Signed and verified changes against unsigned ones, on the workload of 2: each side makes
//!    1,000 edits (signing each commit), then the reconnect, where the receiver checks every
//!    change against the signatures before applying it. Frame bytes and time, side by side.
//! 4. Ten hubs that each made 1,000 edits while apart, then all connect (full mesh): bytes and
//!    time to converge, each hub's sessions sharing their fetches (as a hub's do) against each
//!    session asking on its own, from the same start. Against two measures of what is needed:
//!    each change once, as a single change, to each of the nine hubs that lack it; and each hub
//!    synced alone with one hub that holds everything, summed over the ten (Automerge then
//!    sends one compressed save of the document).
//! 5. Fifty hubs over the internet's overlay (each dials its `policy::neighbours`, so about
//!    eight sessions a hub, up to 3 hops apart) that each made 1,000 edits while apart, then
//!    connect: bytes and time to converge against each change once to each of the 49 hubs that
//!    lack it (`AIDMESH_OVERLAY_HUBS`, `AIDMESH_OVERLAY_EDITS` change the workload).

use std::time::Instant;

use std::collections::BTreeSet;

use aidmesh_mesh::memory::{converge, converge_over, converge_traffic, same, Mem, Traffic};
use aidmesh_mesh::policy::{neighbours, DIALS};
use aidmesh_mesh::Identity;
use automerge::ActorId;

/// Sent bytes beside plain bytes, and the coding time each way.
fn traffic(t: &Traffic) -> String {
    format!(
        "{} bytes sent ({} plain: {:.2}x) in {} frames; coding {:.1} ms (plain {:.1} ms)",
        t.wire,
        t.plain,
        t.wire as f64 / t.plain as f64,
        t.frames,
        t.coding.as_secs_f64() * 1e3,
        t.plain_coding.as_secs_f64() * 1e3
    )
}

// The binaries' allocator, so that what is measured is what they run.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("sync bench: run with `cargo bench -p aidmesh-mesh --bench sync`");
        return;
    }
    // 1. One edit between two connected hubs.
    let mut pair = vec![Mem::new(1), Mem::new(2)];
    pair[0].edit("d", 0);
    converge(&mut pair, true);
    let change = pair[0].edit("d", 1);
    let start = Instant::now();
    let t = converge_traffic(&mut pair, true, true);
    let el = start.elapsed();
    assert!(same(&mut pair));
    println!(
        "one edit: {} both ways; Automerge change {change} bytes (sent {:.1}x), {:.2} ms",
        traffic(&t),
        t.wire as f64 / change as f64,
        el.as_secs_f64() * 1e3
    );

    // 2. Reconnect after a partition, on 100k changes of history.
    let history: u64 = std::env::var("AIDMESH_BENCH_HISTORY").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let mut a = Mem::new(1);
    let build = Instant::now();
    for n in 0..history {
        a.edit("d", n);
    }
    let mut b = Mem::new(2);
    let mut nodes = vec![a, b];
    let first = converge_traffic(&mut nodes, true, true);
    println!(
        "history: {history} changes built in {:.1} s; first full sync {}",
        build.elapsed().as_secs_f64(),
        traffic(&first)
    );
    b = nodes.pop().unwrap();
    a = nodes.pop().unwrap();
    let (mut a2, mut b2) = (Mem::new(1), Mem::new(2));
    let mut partition_bytes = 0usize;
    for n in 0..1000 {
        partition_bytes += a.edit("d", history + n);
        partition_bytes += b.edit("d", history + 10_000 + n);
    }
    // Two copies of the same situation: one keeps sync state, one forgets it.
    a2.docs.insert("d".into(), a.doc("d").fork().with_actor(ActorId::from(vec![1u8; 16])));
    b2.docs.insert("d".into(), b.doc("d").fork().with_actor(ActorId::from(vec![2u8; 16])));
    let mut kept = vec![a, b];
    let s1 = Instant::now();
    let heal = converge_traffic(&mut kept, true, true);
    let with_state = heal.wire;
    let t1 = s1.elapsed();
    assert!(same(&mut kept));
    let mut fresh = vec![a2, b2];
    let s2 = Instant::now();
    let without = converge(&mut fresh, false);
    let t2 = s2.elapsed();
    assert!(same(&mut fresh));
    println!(
        "reconnect after 2 x 1,000 edits on {history} changes: {} in {:.0} ms with persisted sync state ({:.2}x the 2,000 changes themselves, {partition_bytes} bytes), {without} bytes sent in {:.0} ms without (ratio {:.2})",
        traffic(&heal),
        t1.as_secs_f64() * 1e3,
        with_state as f64 / partition_bytes as f64,
        t2.as_secs_f64() * 1e3,
        without as f64 / with_state as f64
    );

    // 3. Signed against unsigned, from the same history and the same sync states.
    let mut hist = kept.pop().unwrap();
    let states = hist.states.clone();
    let other_states = kept.pop().unwrap().states;
    let history_doc = hist.doc("d");
    let (ida, idb) = (Identity::from_secret(&[1; 32]), Identity::from_secret(&[2; 32]));
    let (ka, kb) = (*ida.public().as_bytes(), *idb.public().as_bytes());
    // The same actors on both sides (a hub's key, then 8 bytes), as hubs had before signing.
    let mut unsigned = vec![Mem::unsigned(&ida), Mem::unsigned(&idb)];
    let (pa, pb) = (Identity::from_secret(&[3; 32]), Identity::from_secret(&[4; 32]));
    let mut by_people =
        vec![Mem::signed_by(Identity::from_secret(&[1; 32]), pa), Mem::signed_by(Identity::from_secret(&[2; 32]), pb)];
    let mut signed = vec![Mem::signed(ida), Mem::signed(idb)];
    for pair in [&mut signed, &mut by_people] {
        pair[0].admit(kb);
        pair[1].admit(ka);
    }
    for pair in [&mut unsigned, &mut signed, &mut by_people] {
        // Index 0 takes the first side's sync states, index 1 the second's (converge names
        // peers by index), so both pairs start where the reconnect above ended.
        pair[0].put_doc("d", history_doc);
        pair[1].put_doc("d", history_doc);
        pair[0].states = other_states.clone();
        pair[1].states = states.clone();
    }
    let mut timed = Vec::new();
    for pair in [&mut unsigned, &mut signed, &mut by_people] {
        let e = Instant::now();
        for n in 0..1000 {
            pair[0].edit("d", 3 * history + n);
            pair[1].edit("d", 3 * history + 10_000 + n);
        }
        let edits = e.elapsed();
        let s = Instant::now();
        let bytes = converge(pair, true);
        let heal = s.elapsed();
        assert!(same(pair));
        timed.push((bytes, heal, edits));
    }
    let ((ub, ut, ue), (sb, st, se), (pb, pt, pe)) = (timed[0], timed[1], timed[2]);
    println!(
        "signed changes, heal after 2 x 1,000 edits on {history} changes: unsigned {ub} bytes in {:.0} ms, signed and checked {sb} bytes in {:.0} ms (bytes {:.3}x, time {:.2}x); the 2,000 edits took {:.0} ms unsigned, {:.0} ms signing each commit",
        ut.as_secs_f64() * 1e3,
        st.as_secs_f64() * 1e3,
        sb as f64 / ub as f64,
        st.as_secs_f64() / ut.as_secs_f64(),
        ue.as_secs_f64() * 1e3,
        se.as_secs_f64() * 1e3,
    );
    println!(
        "signed by hub and person (a person's actor, two signatures per tip), the same heal: {pb} bytes in {:.0} ms (bytes {:.3}x unsigned, time {:.2}x); the 2,000 edits took {:.0} ms",
        pt.as_secs_f64() * 1e3,
        pb as f64 / ub as f64,
        pt.as_secs_f64() / ut.as_secs_f64(),
        pe.as_secs_f64() * 1e3,
    );

    // 4. Ten hubs, 1,000 edits each while apart.
    let mut ten: Vec<Mem> = (0..10).map(|i| Mem::new(i as u8 + 1)).collect();
    ten[0].edit("d", 0);
    converge(&mut ten, true);
    let mut made = 0;
    for (i, m) in ten.iter_mut().enumerate() {
        for n in 0..1000 {
            made += m.edit("d", (i as u64 + 1) * 100_000 + n);
        }
    }
    let once = 9 * made as u64;
    let mut everything = Mem::new(99);
    for m in ten.iter_mut() {
        everything.doc("d").merge(m.doc("d")).unwrap();
    }
    let mut floor = 0;
    for (i, m) in ten.iter_mut().enumerate() {
        let mut pair = vec![Mem::new(i as u8 + 1), Mem::new(99)];
        pair[0].put_doc("d", m.doc("d"));
        pair[1].put_doc("d", everything.doc("d"));
        floor += converge(&mut pair, true);
    }
    let mut alone: Vec<Mem> = ten
        .iter_mut()
        .enumerate()
        .map(|(i, m)| {
            let mut copy = Mem::new(i as u8 + 1);
            copy.put_doc("d", m.doc("d"));
            copy.states = m.states.clone();
            copy
        })
        .collect();
    for (label, nodes, share) in [("sharing fetches", &mut ten, true), ("each session alone", &mut alone, false)] {
        let s3 = Instant::now();
        let t = converge_traffic(nodes, true, share);
        let bytes = t.wire;
        assert!(same(nodes));
        println!(
            "ten hubs, 1,000 edits each while apart, {label}: converged in {:.1} s, {} over 90 directed sessions: {:.2}x each change once to each hub that lacks it ({once} bytes), {:.1}x each hub synced alone with one that holds everything ({floor} bytes)",
            s3.elapsed().as_secs_f64(),
            traffic(&t),
            bytes as f64 / once as f64,
            bytes as f64 / floor as f64
        );
    }

    // 5. Fifty hubs on the overlay, 1,000 edits each while apart.
    let var = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (hubs, edits) = (var("AIDMESH_OVERLAY_HUBS", 50), var("AIDMESH_OVERLAY_EDITS", 1000));
    let ids: Vec<aidmesh_mesh::HubId> = (0..hubs).map(|i| Identity::from_secret(&[i as u8 + 1; 32]).id()).collect();
    let members: BTreeSet<aidmesh_mesh::HubId> = ids.iter().cloned().collect();
    let links: BTreeSet<(usize, usize)> = ids
        .iter()
        .enumerate()
        .flat_map(|(a, me)| {
            let ids = &ids;
            neighbours(me, &members, DIALS).into_iter().map(move |peer| {
                let b = ids.iter().position(|i| *i == peer).expect("a member");
                (a.min(b), a.max(b))
            })
        })
        .collect();
    let mut overlay: Vec<Mem> = (0..hubs).map(|i| Mem::new(i as u8 + 1)).collect();
    overlay[0].edit("d", 0);
    converge(&mut overlay, true);
    let mut made = 0;
    for (i, m) in overlay.iter_mut().enumerate() {
        for n in 0..edits {
            made += m.edit("d", (i as u64 + 1) * 100_000 + n as u64);
        }
    }
    let once = (hubs as u64 - 1) * made as u64;
    let start = Instant::now();
    let t = converge_over(&mut overlay, &links, true, true);
    assert!(same(&mut overlay));
    println!(
        "{hubs} hubs on the overlay ({} links, {} sessions), {edits} edits each while apart: converged in {:.1} s, {}: {:.2}x each change once to each hub that lacks it ({once} bytes)",
        links.len(),
        2 * links.len(),
        start.elapsed().as_secs_f64(),
        traffic(&t),
        t.wire as f64 / once as f64,
    );
}
