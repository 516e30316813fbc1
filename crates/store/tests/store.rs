//! The store against real SQLCipher files.

use aidmesh_store::*;

fn row(id: &str, kind: &str, text: &str) -> IndexRow {
    IndexRow {
        id: id.into(),
        kind: kind.into(),
        doc: "d1".into(),
        created_at: 1,
        label: text.into(),
        search_text: text.into(),
        json: format!("{{\"id\":\"{id}\",\"name\":\"{text}\"}}"),
        conflicts: 0,
        refs: vec![],
    }
}

#[test]
fn create_open_and_wrong_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hub.aidmesh");
    assert!(matches!(Store::open(&p, "x"), Err(Error::Missing(_))));
    assert!(!p.exists(), "opening a missing store creates nothing");
    assert!(matches!(Store::create(&p, "", [7; 16]), Err(Error::EmptyPassphrase)));
    {
        let mut s = Store::create(&p, "correct horse", [7; 16]).unwrap();
        s.write(|tx| tx.set_meta("hub_name", "North")).unwrap();
    }
    assert!(matches!(Store::create(&p, "correct horse", [7; 16]), Err(Error::Exists(_))));
    let e = Store::open(&p, "wrong").err().unwrap();
    assert!(matches!(e, Error::WrongPassphrase(_)), "{e}");
    assert!(e.to_string().contains("wrong passphrase"));
    let s = Store::open(&p, "correct horse").unwrap();
    assert_eq!(s.meta("hub_name").unwrap().as_deref(), Some("North"));
    s.check().unwrap();
}

#[test]
fn the_file_reveals_nothing_without_the_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hub.aidmesh");
    let mut s = Store::create(&p, "pw", [7; 16]).unwrap();
    s.write(|tx| {
        tx.index(&row("i1", "item", "Unmistakable-Water-Marker"))?;
        tx.vault_put("v1", &[7; 32], &[1; 12], b"Maria Sanchez +34 600", 5, "h", 1, "", false)
    })
    .unwrap();
    s.checkpoint().unwrap();
    drop(s);
    let mut raw = std::fs::read(&p).unwrap();
    if let Ok(wal) = std::fs::read(dir.path().join("hub.aidmesh-wal")) {
        raw.extend(wal);
    }
    let hay = String::from_utf8_lossy(&raw);
    assert!(!hay.contains("Unmistakable"), "record text in clear");
    assert!(!hay.contains("Sanchez"), "vault text in clear");
    assert!(!raw.starts_with(b"SQLite format 3"));
}

#[test]
fn writes_are_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::create(&dir.path().join("s"), "pw", [7; 16]).unwrap();
    let r: Result<()> = s.write(|tx| {
        tx.index(&row("i1", "item", "water"))?;
        tx.add_stock("i1", "p1", 5)?;
        Err(Error::Corrupt("simulated failure mid-write".into()))
    });
    assert!(r.is_err());
    assert!(s.record("i1").unwrap().is_none());
    assert!(s.stock(None).unwrap().is_empty());
}

#[test]
fn index_search_and_stock() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::create(&dir.path().join("s"), "pw", [7; 16]).unwrap();
    s.write(|tx| {
        assert!(tx.index(&row("i1", "item", "Bottled water 1.5l"))?);
        tx.index(&row("i2", "item", "Rice"))?;
        tx.index(&row("v1", "volunteer", "fox water carrier"))?;
        tx.add_stock("i1", "p1", 5)?;
        tx.add_stock("i1", "p1", -2)?;
        tx.add_stock("i1", "p2", 4)
    })
    .unwrap();
    fn ids(s: &Store, q: &str, k: Option<&str>) -> Vec<String> {
        let mut v: Vec<_> = s.search(q, k, 10).unwrap().into_iter().map(|h| h.id).collect();
        v.sort();
        v
    }
    assert_eq!(ids(&s, "water", None), vec!["i1", "v1"]);
    assert_eq!(ids(&s, "wat", Some("item")), vec!["i1"]);
    assert_eq!(ids(&s, "bottled WATER", None), vec!["i1"]);
    assert!(ids(&s, "\"); DROP TABLE records; --", None).is_empty());
    // Re-indexing replaces the searchable text.
    s.write(|tx| tx.index(&row("i1", "item", "Sparkling juice")).map(|new| assert!(!new))).unwrap();
    assert_eq!(ids(&s, "water", None), vec!["v1"]);
    assert_eq!(ids(&s, "juice", None), vec!["i1"]);
    assert_eq!(s.stock(Some("i1")).unwrap(), vec![("i1".into(), "p1".into(), 3), ("i1".into(), "p2".into(), 4)]);
    assert_eq!(s.count("item").unwrap(), 2);
}

/// A document's records indexed together, and its movements' deltas summed first, leave the
/// index as indexing and adding them one at a time does: counts per kind and per document, stock
/// per place, each item's total (read through the shortage list).
#[test]
fn records_and_deltas_written_together_count_as_written_one_at_a_time() {
    let short =
        |id: &str| IndexRow { json: format!("{{\"id\":\"{id}\",\"reorder_level\":100}}"), ..row(id, "item", id) };
    let rows = [short("i1"), short("i2"), row("v1", "volunteer", "fox"), short("i1"), row("v2", "volunteer", "owl")];
    let deltas = [("i1", "p1", 5), ("i2", "p1", 7), ("i1", "p1", -2), ("i1", "p2", 4), ("i2", "p2", 0)];
    let dir = tempfile::tempdir().unwrap();
    let stores = [("one at a time", false), ("together", true)].map(|(name, together)| {
        let mut s = Store::create(&dir.path().join(name), "pw", [7; 16]).unwrap();
        s.write(|tx| {
            tx.add_doc("d1", "item", 1)?;
            // Held before: the batch updates it, as a later change does.
            tx.index(&short("i2"))?;
            if together {
                assert_eq!(tx.index_all(&rows)?, 3, "i1, v1 and v2 are new; i1 again and i2 are not");
                let mut sums = std::collections::BTreeMap::new();
                for (item, place, d) in deltas {
                    *sums.entry((item.to_string(), place.to_string())).or_insert(0) += d;
                }
                tx.add_stocks(&sums)
            } else {
                for r in &rows {
                    tx.index(r)?;
                }
                deltas.iter().try_for_each(|(item, place, d)| tx.add_stock(item, place, *d))
            }
        })
        .unwrap();
        s
    });
    let seen = stores.map(|s| {
        (
            s.count("item").unwrap(),
            s.count("volunteer").unwrap(),
            s.docs().unwrap(),
            s.stock(None).unwrap(),
            s.short_items(10).unwrap().into_iter().map(|(_, total)| total).collect::<Vec<_>>(),
        )
    });
    assert_eq!(seen[0], seen[1]);
    let (items, volunteers, docs, stock, totals) = &seen[1];
    assert_eq!((*items, *volunteers, docs[0].3), (2, 2, 4));
    assert_eq!(stock.len(), 4, "a place whose deltas sum to nothing is still listed: {stock:?}");
    assert_eq!(totals, &vec![7, 7]);
}

#[test]
fn chunks_append_and_compact() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::create(&dir.path().join("s"), "pw", [7; 16]).unwrap();
    s.write(|tx| {
        tx.add_doc("d1", "item", 1)?;
        tx.append_chunk("d1", b"ab")?;
        tx.append_chunk("d1", b"cd")
    })
    .unwrap();
    assert_eq!(s.doc_bytes("d1").unwrap().unwrap(), b"abcd");
    assert_eq!(s.chunk_count("d1").unwrap(), 2);
    s.write(|tx| tx.replace_doc("d1", b"ABCD")).unwrap();
    assert_eq!(s.doc_bytes("d1").unwrap().unwrap(), b"ABCD");
    assert_eq!(s.chunk_count("d1").unwrap(), 1);
    assert!(s.doc_bytes("nope").unwrap().is_none());
    assert_eq!(s.partition_docs("item").unwrap(), vec![("d1".into(), 1, 0)]);
    s.write(|tx| tx.index(&row("i1", "item", "water")).map(|_| ())).unwrap();
    assert_eq!(s.partition_docs("item").unwrap(), vec![("d1".into(), 1, 1)], "records per document are counted");
}

#[test]
fn vault_erasure_destroys_content() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s");
    let mut s = Store::create(&p, "pw", [7; 16]).unwrap();
    s.write(|tx| tx.vault_put("v1", &[9; 32], &[3; 12], b"{\"name\":\"Amal\"}", 10, "h", 1, "", false)).unwrap();
    assert_eq!(s.vault_get("v1").unwrap(), Some(VaultState::Present(b"{\"name\":\"Amal\"}".to_vec())));
    assert!(s.write(|tx| tx.vault_erase("v1", 20, 2, "")).unwrap());
    assert_eq!(s.vault_get("v1").unwrap(), Some(VaultState::Erased { at: 20 }));
    let e = s.write(|tx| tx.vault_put("v1", &[9; 32], &[3; 12], b"again", 30, "h", 3, "", false)).unwrap_err();
    assert!(matches!(e, Error::Erased(_)));
    assert!(!s.write(|tx| tx.vault_erase("nope", 20, 1, "")).unwrap());
    let list = s.vault_list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].erased_at, Some(20));
    s.write(|tx| tx.vault_tombstone("v2", 40, "other", 1, "")).unwrap();
    assert_eq!(s.vault_get("v2").unwrap(), Some(VaultState::Erased { at: 40 }));
}

/// The reason given for reading an entry may name the person ("drive Amal to dialysis"): every
/// erasure blanks it, the hub's own and one learned from a peer alike; who read it and when stay.
#[test]
fn every_erasure_blanks_the_reasons_an_entry_was_read_for() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::create(&dir.path().join("s"), "pw", [7; 16]).unwrap();
    for id in ["v1", "v2", "v3"] {
        s.write(|tx| tx.vault_put(id, &[9; 32], &[3; 12], b"{}", 10, "h", 1, "", false)).unwrap();
        s.write(|tx| tx.log_vault_read(11, "coord", id, "r", &format!("drive Amal to dialysis ({id})"))).unwrap();
    }
    s.write(|tx| tx.vault_erase("v1", 20, 2, "").map(|_| ())).unwrap();
    s.write(|tx| tx.vault_tombstone("v2", 30, "h", 2, "")).unwrap();
    let reasons: Vec<(String, String, String)> =
        s.vault_reads(10).unwrap().into_iter().map(|r| (r.entry, r.by, r.reason)).collect();
    assert_eq!(
        reasons,
        vec![
            ("v3".into(), "coord".into(), "drive Amal to dialysis (v3)".into()),
            ("v2".into(), "coord".into(), String::new()),
            ("v1".into(), "coord".into(), String::new()),
        ]
    );
}

/// What erasure destroys is gone from the disk, not only from the tables: someone who seized
/// the laptop and has its passphrase decrypts every page of the file and of its log, free ones
/// too, and finds neither an erased entry's key (its content is sealed under it) nor the reason
/// it was read for, by either erasure; what was not erased is found that way (so the search
/// finds what is there).
#[test]
fn an_erased_entrys_key_and_the_reasons_it_was_read_for_are_on_no_page_of_the_file_or_log() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s");
    let mut s = Store::create(&p, "pw", [7; 16]).unwrap();
    let key = |n: u8| -> [u8; 32] { std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ n.wrapping_mul(101)) };
    let entries = [("v1", 1, "Amal Haddad"), ("v2", 2, "Omar Saleh"), ("v3", 3, "Lina Farouk")];
    for (id, n, name) in entries {
        s.write(|tx| tx.vault_put(id, &key(n), &[3; 12], b"{}", 10, "h", 1, "", false)).unwrap();
        s.write(|tx| tx.log_vault_read(11, "coord", id, "r", &format!("drive {name} to dialysis"))).unwrap();
    }
    let on_disk = |s: Option<&Store>| {
        if let Some(s) = s {
            s.settle().unwrap();
        }
        aidmesh_store::forensic::plaintext(&p, "pw").unwrap()
    };
    let holds = |disk: &[u8], what: &[u8]| disk.windows(what.len()).any(|w| w == what);
    let disk = on_disk(Some(&s));
    for (_, n, name) in entries {
        assert!(holds(&disk, &key(n)) && holds(&disk, format!("drive {name}").as_bytes()), "{name}");
    }
    // Erased here, and learned erased from a peer; then the log folded, as the hub does after
    // every erasure (the log's earlier frames hold the pages as they were).
    s.write(|tx| tx.vault_erase("v1", 20, 2, "").map(|_| ())).unwrap();
    s.write(|tx| tx.vault_tombstone("v2", 30, "h", 2, "")).unwrap();
    assert!(holds(&on_disk(Some(&s)), &key(1)), "until the log is folded");
    s.checkpoint().unwrap();
    for disk in [on_disk(Some(&s)), {
        drop(s);
        on_disk(None)
    }] {
        for (_, n, name) in &entries[..2] {
            assert!(!holds(&disk, &key(*n)), "{name}'s key is still on disk");
            assert!(!holds(&disk, name.as_bytes()), "{name} is still on disk");
        }
        assert!(holds(&disk, &key(3)) && holds(&disk, b"drive Lina Farouk to dialysis"));
    }
    let e = aidmesh_store::forensic::plaintext(&p, "not the passphrase").unwrap_err();
    assert!(matches!(e, Error::WrongPassphrase(_)), "{e}");
}

/// The same at the scale of a hub's vault, where rows move between pages as the tables' trees
/// split and merge: hundreds of entries read for reasons, a third erased (here or from a peer),
/// the log folded; not one erased key or reason is left on any page, every kept one is found.
/// And an entry saved again under a new key leaves its old key on no page once the log is folded.
#[test]
fn erasures_and_replacements_across_many_pages_leave_nothing_behind() {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s");
    let mut s = Store::create(&p, "pw", [7; 16]).unwrap();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
    let entries: Vec<(String, [u8; 32], String)> = (0..300)
        .map(|i| (format!("v{i:04}"), rng.gen(), format!("reason {:016x} for {i}", rng.gen::<u64>())))
        .collect();
    for chunk in entries.chunks(50) {
        s.write(|tx| {
            for (id, key, reason) in chunk {
                let content = vec![b'x'; 40 + (key[0] as usize) * 2];
                tx.vault_put(id, key, &[3; 12], &content, 10, "h", 1, "", false)?;
                tx.log_vault_read(11, "coord", id, "r", reason)?;
            }
            Ok(())
        })
        .unwrap();
    }
    let erased: Vec<bool> = entries.iter().map(|_| rng.gen_ratio(1, 3)).collect();
    for ((id, _, _), gone) in entries.iter().zip(&erased) {
        if *gone {
            match rng.gen_bool(0.5) {
                true => s.write(|tx| tx.vault_erase(id, 20, 2, "").map(|_| ())).unwrap(),
                false => s.write(|tx| tx.vault_tombstone(id, 20, "h", 2, "")).unwrap(),
            }
        }
    }
    // One kept entry saved again under a new key.
    let (again, old_key, _) = entries.iter().zip(&erased).find(|(_, gone)| !**gone).unwrap().0.clone();
    let new_key = [0xA5; 32];
    s.write(|tx| tx.vault_put(&again, &new_key, &[4; 12], b"{}", 30, "h", 2, "", false)).unwrap();
    s.checkpoint().unwrap();
    let disk = aidmesh_store::forensic::plaintext(&p, "pw").unwrap();
    let holds = |what: &[u8]| disk.windows(what.len()).any(|w| w == what);
    for ((id, key, reason), gone) in entries.iter().zip(&erased) {
        let replaced = *id == again;
        assert_eq!(holds(key), !gone && !replaced, "{id}'s key (erased: {gone}, replaced: {replaced})");
        assert_eq!(holds(reason.as_bytes()), !gone, "{id}'s reason (erased: {gone})");
    }
    assert!(holds(&new_key) && !holds(&old_key));
}

#[test]
fn rekey_changes_the_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s");
    let mut s = Store::create(&p, "old", [7; 16]).unwrap();
    s.write(|tx| tx.set_meta("k", "v")).unwrap();
    s.rekey("new").unwrap();
    drop(s);
    assert!(matches!(Store::open(&p, "old"), Err(Error::WrongPassphrase(_))));
    assert_eq!(Store::open(&p, "new").unwrap().meta("k").unwrap().as_deref(), Some("v"));
}

#[test]
fn a_damaged_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s");
    std::fs::write(&p, vec![0x42u8; 8192]).unwrap();
    let e = Store::open(&p, "pw").err().unwrap();
    assert!(matches!(e, Error::WrongPassphrase(_) | Error::Corrupt(_)), "{e}");
}

#[test]
fn a_store_from_a_newer_version_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s");
    {
        // Keyed as stores were before Argon2id (that key can be set from here).
        let c = rusqlite::Connection::open(&p).unwrap();
        c.pragma_update(None, "key", "pw").unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
    }
    let before = std::fs::read(&p).unwrap();
    let e = Store::open(&p, "pw").err().unwrap();
    assert!(matches!(e, Error::TooNew { found: 99, .. }), "{e}");
    assert!(e.to_string().contains("newer aidmesh"));
    assert_eq!(std::fs::read(&p).unwrap(), before);
}

/// One process owns a store: whoever comes second does not open the file, and learns who holds
/// it. The lock is an OS lock, so it goes with the owner however the owner ends.
#[test]
fn a_second_opener_is_refused_until_the_owner_closes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hub.aidmesh");
    let owner = Store::create(&p, "pw", [7; 16]).unwrap();
    for second in [Store::open(&p, "pw").err(), Store::create(&p, "pw", [7; 16]).err()] {
        let e = second.expect("refused while the owner holds the store");
        assert!(matches!(&e, Error::Busy { pid: Some(pid), .. } if *pid == std::process::id()), "{e}");
        assert!(e.to_string().contains("open in another aidmesh process"), "{e}");
    }
    // The owner can still check a passphrase (a second connection, nothing written).
    owner.check_passphrase("pw").unwrap();
    assert!(matches!(owner.check_passphrase("nope"), Err(Error::WrongPassphrase(_))));
    drop(owner);
    Store::open(&p, "pw").unwrap();
    // The lock file is the owner's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("hub.aidmesh.lock")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// Every name of one store file leads to one lock: a symbolic link to the store cannot be used
/// to open it a second time.
#[test]
fn a_store_reached_through_a_symbolic_link_has_the_same_owner() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hub.aidmesh");
    let _owner = Store::create(&p, "pw", [7; 16]).unwrap();
    let other = dir.path().join("elsewhere");
    std::fs::create_dir(&other).unwrap();
    let link = other.join("linked.aidmesh");
    std::os::unix::fs::symlink(&p, &link).unwrap();
    assert!(matches!(Store::open(&link, "pw"), Err(Error::Busy { .. })));
    assert!(matches!(Store::open(&other.join("../hub.aidmesh"), "pw"), Err(Error::Busy { .. })));
}

#[test]
fn the_key_is_argon2id_not_sqlciphers_own_and_an_old_store_moves_to_it_at_unlock() {
    let dir = tempfile::tempdir().unwrap();
    let sqlcipher = |p: &std::path::Path, key: &str| {
        let c = rusqlite::Connection::open(p).unwrap();
        c.pragma_update(None, "key", key).unwrap();
        c.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))
    };
    // A new store does not open with the passphrase as SQLCipher's own (PBKDF2) key.
    let p = dir.path().join("new.aidmesh");
    drop(Store::create(&p, "correct horse", [7; 16]).unwrap());
    assert!(sqlcipher(&p, "correct horse").is_err(), "the passphrase alone opened the file");
    // A store keyed the old way: the passphrase through SQLCipher's own derivation.
    let old = dir.path().join("old.aidmesh");
    sqlcipher(&old, "correct horse").unwrap();
    {
        let c = rusqlite::Connection::open(&old).unwrap();
        c.pragma_update(None, "key", "correct horse").unwrap();
        c.execute_batch("CREATE TABLE before_argon2(x)").unwrap();
    }
    let mut s = Store::open(&old, "correct horse").unwrap();
    s.write(|tx| tx.set_meta("hub_name", "North")).unwrap();
    drop(s);
    // Re-keyed at that unlock: the old key no longer opens it, the passphrase still does.
    assert!(sqlcipher(&old, "correct horse").is_err(), "still keyed the old way");
    let s = Store::open(&old, "correct horse").unwrap();
    assert_eq!(s.meta("hub_name").unwrap().as_deref(), Some("North"));
    drop(s);
    assert!(matches!(Store::open(&old, "wrong horse"), Err(Error::WrongPassphrase(_))));
}

#[cfg(unix)]
#[test]
fn a_new_store_and_its_journal_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hub.aidmesh");
    let mut s = Store::create(&p, "correct horse", [7; 16]).unwrap();
    s.write(|tx| tx.set_meta("hub_name", "North")).unwrap();
    for f in [p.clone(), sibling(&p, "-wal")] {
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", f.display());
    }
    // A store made readable by others (as stores were made before) is tightened at its unlock.
    drop(s);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(Store::open(&p, "correct horse").unwrap());
    assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn an_empty_or_short_file_is_not_a_store_and_stays_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    for bytes in [&b""[..], b"short"] {
        let p = dir.path().join("hub.aidmesh");
        std::fs::write(&p, bytes).unwrap();
        let e = Store::open(&p, "correct horse").err().unwrap();
        assert!(matches!(e, Error::Corrupt(_)) && e.to_string().contains("too short to be an aidmesh store"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), bytes);
    }
}

/// Frames in the write-ahead log, as a second connection folding it sees them (all folded
/// after the call, so that the next commit starts the log again).
fn log_frames(side: &rusqlite::Connection) -> i64 {
    side.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1)).unwrap()
}

#[test]
fn a_commit_of_one_record_writes_a_few_pages_and_idle_upkeep_merges_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hub.aidmesh");
    let mut s = Store::create(&p, "pw", [7; 16]).unwrap();
    s.write(|tx| {
        for i in 0..20_000 {
            tx.index(&row(&format!("i{i}"), "item", &format!("water rice blanket {i} tent{}", i % 97)))?;
        }
        Ok(())
    })
    .unwrap();
    // A few edits, then the hub is idle a while, as after it received the coalition.
    for n in 0..4 {
        s.write(|tx| tx.index(&row(&format!("e{n}"), "item", "tarp")).map(drop)).unwrap();
    }
    while s.upkeep(256).unwrap() != Upkeep::Nothing {}
    let side = rusqlite::Connection::open(&p).unwrap();
    side.pragma_update(None, "key", Store::sqlcipher_key(&p, "pw").unwrap().as_str()).unwrap();
    log_frames(&side);
    // One record per commit, new or changed, as edits arrive: each writes its own pages, never
    // a merge of the index's segments (which rewrote megabytes in one edit's commit).
    let mut most = 0;
    for n in 0..2000 {
        let id = if n % 2 == 0 { format!("i{}", n * 61 % 20_000) } else { format!("n{n}") };
        s.write(|tx| tx.index(&row(&id, "item", &format!("soap {n}"))).map(drop)).unwrap();
        most = most.max(log_frames(&side));
    }
    assert!(most <= 64, "a commit of one record wrote {most} pages");
    // Idle, upkeep merges in bounded steps until nothing is left, then folds the log, then rests.
    let mut steps = Vec::new();
    loop {
        let step = s.upkeep(64).unwrap();
        steps.push(step);
        if step == Upkeep::Nothing || steps.len() > 1000 {
            break;
        }
    }
    let merged = steps.iter().filter(|s| **s == Upkeep::IndexMerged).count();
    assert!(merged >= 1, "{steps:?}");
    assert_eq!(steps[merged..], [Upkeep::LogFolded, Upkeep::Nothing], "{steps:?}");
    assert_eq!(s.upkeep(64).unwrap(), Upkeep::Nothing);
    // The index still answers for every record, old text gone where it changed.
    assert_eq!(s.search("soap", None, 3000).unwrap().len(), 2000);
    assert_eq!(s.search("water", None, 30_000).unwrap().len(), 20_000 - 1000);
    // A write starts it again.
    s.write(|tx| tx.index(&row("late", "item", "tarp")).map(drop)).unwrap();
    assert_ne!(s.upkeep(64).unwrap(), Upkeep::Nothing);
}

#[test]
fn a_write_waits_for_the_disk_whatever_came_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::create(&dir.path().join("s"), "pw", [7; 16]).unwrap();
    assert!(s.commits_wait_for_the_disk().unwrap());
    s.write_resendable(|tx| tx.set_meta("from_a_peer", "1")).unwrap();
    assert!(!s.commits_wait_for_the_disk().unwrap(), "what a peer sends again does not wait");
    s.write(|tx| tx.set_meta("typed_here", "1")).unwrap();
    assert!(s.commits_wait_for_the_disk().unwrap());
    // A resendable write that fails, or panics, leaves the next write as durable as ever.
    let failed: Result<()> = s.write_resendable(|_| Err(Error::Corrupt("simulated".into())));
    assert!(failed.is_err());
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        s.write_resendable(|_| -> Result<()> { panic!("simulated panic mid-write") })
    }));
    assert!(panicked.is_err());
    s.write(|tx| tx.set_meta("after", "1")).unwrap();
    assert!(s.commits_wait_for_the_disk().unwrap());
    assert_eq!(s.meta("from_a_peer").unwrap().as_deref(), Some("1"));
}

#[test]
fn what_peers_send_is_grouped_and_each_failed_write_undone_alone() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s");
    let mut s = Store::create(&p, "pw", [7; 16]).unwrap();
    s.write_resendable(|tx| tx.set_meta("a", "1")).unwrap();
    s.write_resendable(|tx| tx.set_meta("b", "1")).unwrap();
    // A write of the group that fails, or panics, takes back what it wrote and nothing else.
    let failed: Result<()> = s.write_resendable(|tx| {
        tx.set_meta("c", "1")?;
        Err(Error::Corrupt("simulated".into()))
    });
    assert!(failed.is_err());
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        s.write_resendable(|tx| -> Result<()> {
            tx.set_meta("d", "1")?;
            panic!("simulated panic mid-write")
        })
    }));
    assert!(panicked.is_err());
    s.write_resendable(|tx| tx.set_meta("e", "1")).unwrap();
    assert_eq!(s.meta("a").unwrap().as_deref(), Some("1"), "reads see the group before it commits");
    assert_eq!(s.meta("c").unwrap(), None);
    assert_eq!(s.meta("d").unwrap(), None);
    // Closing the store commits the group.
    drop(s);
    let mut s = Store::open(&p, "pw").unwrap();
    for k in ["a", "b", "e"] {
        assert_eq!(s.meta(k).unwrap().as_deref(), Some("1"), "{k} was kept");
    }
    assert_eq!(s.meta("c").unwrap(), None);
    assert_eq!(s.meta("d").unwrap(), None);
    // A full group, then a person's write: all of it kept, the person's write durable.
    for i in 0..aidmesh_store::GROUP_WRITES * 2 + 3 {
        s.write_resendable(|tx| tx.set_meta(&format!("peer{i}"), "1")).unwrap();
    }
    s.write(|tx| tx.set_meta("typed_here", "1")).unwrap();
    assert!(s.commits_wait_for_the_disk().unwrap());
    s.settle().unwrap();
    drop(s);
    let s = Store::open(&p, "pw").unwrap();
    assert_eq!(s.meta(&format!("peer{}", GROUP_WRITES * 2 + 2)).unwrap().as_deref(), Some("1"));
    assert_eq!(s.meta("typed_here").unwrap().as_deref(), Some("1"));
}

/// A full disk in the middle of a group makes SQLite undo the whole group: the store says so
/// once (`take_lost`, for the hub to forget what it holds of it), keeps nothing of it, and goes
/// on taking writes.
#[test]
fn a_group_that_a_full_disk_undid_is_reported_and_the_store_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s");
    let mut s = Store::create(&p, "pw", [7; 16]).unwrap();
    let pages = s.page_count().unwrap();
    s.limit_pages(pages + 8).unwrap();
    s.write_resendable(|tx| tx.set_meta("early", "1")).unwrap();
    let big = "x".repeat(1 << 20);
    let failed = s.write_resendable(|tx| tx.set_meta("big", &big));
    assert!(matches!(failed, Err(Error::DiskFull(_))), "{failed:?}");
    // SQLite undoes the whole transaction on a full disk here: the earlier write goes too.
    let lost = s.take_lost();
    assert!(lost, "the group was lost, and the store says so");
    assert!(!s.take_lost(), "said once");
    s.limit_pages(pages + 1000).unwrap();
    s.write_resendable(|tx| tx.set_meta("late", "1")).unwrap();
    s.settle().unwrap();
    assert!(!s.take_lost());
    drop(s);
    let s = Store::open(&p, "pw").unwrap();
    assert_eq!(s.meta("big").unwrap(), None);
    assert_eq!(s.meta("late").unwrap().as_deref(), Some("1"));
    assert_eq!(s.meta("early").unwrap(), None, "lost with its group");
}

#[test]
fn a_batch_of_writes_is_stored_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s");
    let mut s = Store::create(&p, "pw", [7; 16]).unwrap();
    s.begin().unwrap();
    s.write(|tx| tx.set_meta("a", "1")).unwrap();
    s.write(|tx| tx.set_meta("b", "1")).unwrap();
    assert_eq!(s.meta("a").unwrap().as_deref(), Some("1"), "the batch reads its own writes");
    s.commit().unwrap();
    assert_eq!(s.meta("b").unwrap().as_deref(), Some("1"));
    // A write that fails inside a batch: the batch is undone, all of it.
    s.begin().unwrap();
    s.write(|tx| tx.set_meta("c", "1")).unwrap();
    let failed: Result<()> = s.write(|tx| {
        tx.set_meta("d", "1")?;
        Err(Error::Corrupt("simulated".into()))
    });
    assert!(failed.is_err());
    s.rollback().unwrap();
    assert_eq!((s.meta("c").unwrap(), s.meta("d").unwrap()), (None, None));
    // A batch undone keeps nothing of it.
    s.begin().unwrap();
    s.write(|tx| tx.set_meta("e", "1")).unwrap();
    s.commit().unwrap();
    s.begin().unwrap();
    s.write(|tx| tx.set_meta("f", "1")).unwrap();
    s.rollback().unwrap();
    // Nor does a store closed in the middle of one (a crash).
    s.begin().unwrap();
    s.write(|tx| tx.set_meta("g", "1")).unwrap();
    drop(s);
    let mut s = Store::open(&p, "pw").unwrap();
    assert_eq!(s.meta("g").unwrap(), None);
    assert_eq!(s.meta("f").unwrap(), None);
    assert_eq!(s.meta("e").unwrap().as_deref(), Some("1"));
    s.write(|tx| tx.set_meta("h", "1")).unwrap();
    assert!(s.commits_wait_for_the_disk().unwrap());
}

/// The kept authority state comes with the entries stored after it, in stored order, so that
/// opening can bring it forward; with too many of them, or after the log was cleared, none.
#[test]
fn the_kept_authority_state_comes_with_the_entries_stored_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.db");
    let mut s = Store::create(&p, "pw", [7; 16]).unwrap();
    assert_eq!(s.authority_resolved(10).unwrap(), None);
    s.write(|tx| {
        tx.add_authority(b"a", b"entry a")?;
        tx.add_authority(b"b", b"entry b")
    })
    .unwrap();
    // A state that does not stand for every stored entry is not kept.
    assert!(!s.write(|tx| tx.keep_authority_resolved(1, b"state at 1")).unwrap());
    assert!(s.write(|tx| tx.keep_authority_resolved(2, b"state at 2")).unwrap());
    assert_eq!(s.authority_resolved(0).unwrap(), Some((b"state at 2".to_vec(), vec![])));
    s.write(|tx| {
        tx.add_authority(b"d", b"entry d")?;
        tx.add_authority(b"c", b"entry c")
    })
    .unwrap();
    let after = vec![(b"d".to_vec(), b"entry d".to_vec()), (b"c".to_vec(), b"entry c".to_vec())];
    assert_eq!(s.authority_resolved(2).unwrap(), Some((b"state at 2".to_vec(), after)));
    assert_eq!(s.authority_resolved(1).unwrap(), None, "more entries came since than asked for");
    drop(s);
    let mut s = Store::open(&p, "pw").unwrap();
    assert!(s.authority_resolved(2).unwrap().is_some(), "kept across opening");
    s.write(|tx| tx.clear_authority()).unwrap();
    assert_eq!(s.authority_resolved(2).unwrap(), None);
}

/// `n` bytes that do not compress (SQLCipher's pages hold them as they are).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// With a log folder, the hub's commits leave the log to it (a fold inside the commit of one
/// edit took 30–50 ms on a large store), it folds all of it, and everything is there when the
/// store opens again, also after a change of passphrase.
#[test]
fn a_log_folder_folds_the_log_instead_of_the_writers_and_nothing_is_lost() {
    const CHUNK: usize = 256 * 1024;
    let commits = (AUTOCHECKPOINT_PAGES as usize * 4096) / CHUNK + 16;
    let wal = |p: &std::path::Path| std::fs::metadata(p.with_extension("aidmesh-wal")).map(|m| m.len()).unwrap_or(0);
    let dir = tempfile::tempdir().unwrap();
    let write_all = |s: &mut Store| {
        for n in 0..commits {
            s.write(|tx| tx.append_chunk("d", &noise(CHUNK, n as u64))).unwrap();
        }
    };
    // Without a folder, a writer's commit folds the log once it holds AUTOCHECKPOINT_PAGES.
    let plain = dir.path().join("plain.aidmesh");
    let mut s = Store::create(&plain, "pw", [7; 16]).unwrap();
    write_all(&mut s);
    let most = (AUTOCHECKPOINT_PAGES as u64 + 2 * (CHUNK as u64 / 4096)) * 4120;
    assert!(wal(&plain) <= most, "the log grew to {} bytes", wal(&plain));
    drop(s);

    let p = dir.path().join("hub.aidmesh");
    let mut s = Store::create(&p, "pw", [7; 16]).unwrap();
    let mut folder = s.log_folder().unwrap();
    write_all(&mut s);
    assert!(wal(&p) > most, "no writer folded the log: {} bytes", wal(&p));
    let f = folder.fold().unwrap();
    assert!(f.log > AUTOCHECKPOINT_PAGES && f.folded == f.log, "{f:?}");
    assert_eq!(folder.fold().unwrap(), f, "nothing more to fold");
    // A fold while the hub writes: neither waits for the other, and nothing is lost.
    let t = std::thread::spawn(move || {
        for _ in 0..20 {
            folder.fold().unwrap();
        }
        folder
    });
    for n in commits..commits + 20 {
        s.write(|tx| tx.append_chunk("d", &noise(CHUNK, n as u64))).unwrap();
    }
    let mut folder = t.join().unwrap();
    // A new passphrase: a fold copies the log's pages as they are, so the folder opened under
    // the old key folds on, and a new one opens under the new key.
    s.rekey("a new passphrase").unwrap();
    s.write(|tx| tx.append_chunk("d", b"after")).unwrap();
    let f = folder.fold().unwrap();
    assert!(f.log > 0 && f.folded == f.log, "{f:?}");
    let mut again = s.log_folder().unwrap();
    s.write(|tx| tx.append_chunk("d", b"!")).unwrap();
    let f = again.fold().unwrap();
    assert!(f.log > 0 && f.folded == f.log, "{f:?}");
    drop((s, folder, again));
    let s = Store::open(&p, "a new passphrase").unwrap();
    let mut expected: Vec<u8> = (0..commits + 20).flat_map(|n| noise(CHUNK, n as u64)).collect();
    expected.extend(b"after!");
    assert!(s.doc_bytes("d").unwrap() == Some(expected), "every chunk is there, in order");
}

/// An erasure folds the log into the file and empties it, even while a log folder folds at the
/// same time (SQLite does not wait for another connection's fold: the store waits for the folder's).
#[test]
fn a_checkpoint_empties_the_log_while_a_log_folder_folds() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hub.aidmesh");
    let mut s = Store::create(&p, "pw", [7; 16]).unwrap();
    let mut folder = s.log_folder().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let folding = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut folds = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                folder.fold().unwrap();
                folds += 1;
            }
            folds
        })
    };
    for n in 0..60 {
        s.write(|tx| tx.append_chunk("d", &noise(64 * 1024, n))).unwrap();
        s.checkpoint().unwrap();
        let log = std::fs::metadata(p.with_extension("aidmesh-wal")).map(|m| m.len()).unwrap_or(0);
        assert_eq!(log, 0, "after checkpoint {n} the log still holds {log} bytes");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(folding.join().unwrap() > 0);
}

/// Once its log folder is gone (dropped, or failing), the store's own commits fold the log
/// again, as before there was one.
#[test]
fn a_store_whose_log_folder_is_gone_folds_its_log_in_its_commits_again() {
    const CHUNK: usize = 256 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hub.aidmesh");
    let mut s = Store::create(&p, "pw", [7; 16]).unwrap();
    let folder = s.log_folder().unwrap();
    s.write(|tx| tx.append_chunk("d", b"with a folder")).unwrap();
    drop(folder);
    for n in 0..(AUTOCHECKPOINT_PAGES as usize * 4096) / CHUNK + 16 {
        s.write(|tx| tx.append_chunk("d", &noise(CHUNK, n as u64))).unwrap();
    }
    let side = rusqlite::Connection::open(&p).unwrap();
    side.pragma_update(None, "key", Store::sqlcipher_key(&p, "pw").unwrap().as_str()).unwrap();
    let log = log_frames(&side);
    assert!(log <= AUTOCHECKPOINT_PAGES + 2 * (CHUNK as i64 / 4096) + 16, "the log holds {log} pages");
}

/// Refusals are kept, the last 100 of each source and 1,000 in all: one source that floods
/// them pushes out its own, never what others were refused for.
#[test]
fn a_flood_of_refusals_from_one_source_keeps_what_others_were_refused_for() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::create(&dir.path().join("hub.aidmesh"), "pw", [7; 16]).unwrap();
    let refuse = |s: &mut Store, source: &str, n: usize| {
        s.write(|tx| (0..n).try_for_each(|i| tx.add_authority_refused(i as i64, source, &format!("{source} {i}"), &[])))
            .unwrap()
    };
    refuse(&mut s, "hub east", 3);
    refuse(&mut s, "hub south", 250);
    refuse(&mut s, "bundle made by West", 2);
    refuse(&mut s, "hub south", 250);
    let kept = s.authority_refused(10_000).unwrap();
    let of = |source: &str| kept.iter().filter(|(_, s, _)| s == source).count();
    assert_eq!((of("hub east"), of("bundle made by West"), of("hub south")), (3, 2, 100));
    assert!(kept.iter().any(|(_, _, r)| r == "hub south 249"), "the latest of the flood are the ones kept");
    // Past 1,000 in all, the oldest go, whoever they came from.
    for n in 0..12 {
        refuse(&mut s, &format!("hub {n}"), 100);
    }
    assert_eq!(s.authority_refused(10_000).unwrap().len(), 1000);
    assert_eq!(s.authority_refused(10_000).unwrap().iter().filter(|(_, s, _)| s == "hub east").count(), 0);
}
