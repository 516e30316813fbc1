//! Schema migrations, applied in order from the version the file records (`PRAGMA user_version`).

use std::path::Path;

use rusqlite::Connection;

use crate::{Error, Result};

/// Each entry moves the schema from version `i` to `i + 1`. Never edit a released entry: add one.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE docs(doc TEXT PRIMARY KEY, partition TEXT NOT NULL, created_at INTEGER NOT NULL,
                      records INTEGER NOT NULL DEFAULT 0);
     CREATE INDEX docs_partition ON docs(partition, created_at);
     CREATE TABLE chunks(doc TEXT NOT NULL, seq INTEGER NOT NULL, bytes BLOB NOT NULL, PRIMARY KEY(doc, seq));
     CREATE TABLE sync_state(peer TEXT NOT NULL, doc TEXT NOT NULL, state BLOB NOT NULL, PRIMARY KEY(peer, doc));
     CREATE TABLE records(id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, doc TEXT NOT NULL,
                          created_at INTEGER NOT NULL, label TEXT NOT NULL, json TEXT NOT NULL,
                          conflicts INTEGER NOT NULL DEFAULT 0);
     CREATE INDEX records_conflicts ON records(conflicts) WHERE conflicts > 0;
     CREATE INDEX records_kind ON records(kind, created_at);
     CREATE INDEX records_id_kind ON records(id, kind);
     CREATE INDEX records_doc ON records(doc);
     CREATE VIRTUAL TABLE search USING fts5(kind, text, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2');
     CREATE TABLE refs(id TEXT NOT NULL, field TEXT NOT NULL, target TEXT NOT NULL, PRIMARY KEY(id, field, target));
     CREATE INDEX refs_target ON refs(target, field);
     CREATE TABLE kind_counts(kind TEXT PRIMARY KEY, n INTEGER NOT NULL);
     CREATE INDEX items_expiry ON records(json_extract(json, '$.expiry')) WHERE kind = 'item';
     CREATE INDEX items_reorder ON records(id) WHERE kind = 'item' AND json_extract(json, '$.reorder_level') > 0;
     CREATE TABLE stock(item TEXT NOT NULL, place TEXT NOT NULL, qty INTEGER NOT NULL, PRIMARY KEY(item, place));
     CREATE TABLE vault(id TEXT PRIMARY KEY, nonce BLOB, ciphertext BLOB, updated_at INTEGER NOT NULL,
                        erased_at INTEGER, origin TEXT NOT NULL);
     CREATE TABLE vault_keys(id TEXT PRIMARY KEY, key BLOB NOT NULL);",
    // 2: per-item totals with the item's reorder level and expiry, so that the overview reads
    // the worst shortages and the soonest expiries without scanning every item.
    "CREATE TABLE item_levels(item TEXT PRIMARY KEY, total INTEGER NOT NULL DEFAULT 0,
                              reorder_level INTEGER NOT NULL DEFAULT 0, expiry TEXT);
     CREATE INDEX item_levels_short ON item_levels(total * 1.0 / reorder_level, item) WHERE reorder_level > 0;
     CREATE INDEX item_levels_expiry ON item_levels(expiry, item) WHERE expiry IS NOT NULL;
     INSERT INTO item_levels(item, total, reorder_level, expiry)
       SELECT id, coalesce((SELECT sum(qty) FROM stock WHERE stock.item = records.id), 0),
              coalesce(json_extract(json, '$.reorder_level'), 0), json_extract(json, '$.expiry')
       FROM records WHERE kind = 'item';
     INSERT OR IGNORE INTO item_levels(item, total)
       SELECT item, sum(qty) FROM stock GROUP BY item;",
    // 3: each document's heads (so that a bundle export skips unchanged documents without
    // loading them), and changes that arrived before the changes they depend on (a bundle
    // imported out of order), kept until their dependencies arrive.
    "ALTER TABLE docs ADD COLUMN heads TEXT;
     CREATE TABLE pending(doc TEXT NOT NULL, sha256 TEXT NOT NULL, bytes BLOB NOT NULL, PRIMARY KEY(doc, sha256));",
    // 4: what the overview reads at unlock without scanning a kind: shifts by start (a shift
    // lasts at most a day, so the shifts around a moment are a range of starts), and open
    // requests by urgency then deadline (none last). The overview's queries repeat these WHERE terms word for word, which
    // is what lets SQLite use a partial index.
    "CREATE INDEX shifts_start ON records(json_extract(json, '$.start')) WHERE kind = 'shift';
     CREATE INDEX requests_open
       ON records(json_extract(json, '$.urgency'), coalesce(json_extract(json, '$.needed_by'), '~'), id)
       WHERE kind = 'request' AND json_extract(json, '$.status') NOT IN ('fulfilled', 'cancelled');",
    // 5: the authority log, beside Automerge: entries in the order they were stored (each
    // after the entries it follows), entries waiting for the ones they follow, and what was
    // refused at the door, by whom.
    "CREATE TABLE authority(seq INTEGER PRIMARY KEY, id BLOB NOT NULL UNIQUE, bytes BLOB NOT NULL);
     CREATE TABLE authority_waiting(id BLOB PRIMARY KEY, bytes BLOB NOT NULL);
     CREATE TABLE authority_refused(seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, source TEXT NOT NULL,
                                    reason TEXT NOT NULL, entry BLOB);",
    // 6: vault entries carry their origin's version number and signature.
    "ALTER TABLE vault ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE vault ADD COLUMN sig TEXT NOT NULL DEFAULT '';",
    // 7: entries kept at this hub only (the person did not consent to share them), and who
    // read which entry, when and why.
    "ALTER TABLE vault ADD COLUMN local INTEGER NOT NULL DEFAULT 0;
     CREATE TABLE vault_reads(seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, by TEXT NOT NULL,
                              entry TEXT NOT NULL, record TEXT NOT NULL, reason TEXT NOT NULL);",
    // 8: for each document and actor, the latest change held here with the signature of the
    // actor's hub over it (hash and signature, 96 bytes): what vouches for that actor's changes
    // when they are passed on.
    "CREATE TABLE change_tips(doc TEXT NOT NULL, actor BLOB NOT NULL, seq INTEGER NOT NULL, sig BLOB NOT NULL,
                              PRIMARY KEY(doc, actor)) WITHOUT ROWID;",
    // 9: signed changes that wait here for a change they depend on, with their bytes: each
    // vouches for its actor's held changes before it, and goes with them to peers. Changes from
    // bundles that waited for earlier ones were never checked against signatures: they are
    // dropped, and come again from a hub that vouches.
    "CREATE TABLE change_vouchers(doc TEXT NOT NULL, actor BLOB NOT NULL, seq INTEGER NOT NULL, sig BLOB NOT NULL,
                                  change BLOB NOT NULL, PRIMARY KEY(doc, actor)) WITHOUT ROWID;
     DELETE FROM pending;",
    // 10: the full-text index merges its segments only when the hub is idle (`Store::upkeep`),
    // never in a writer's commit, where a merge rewrote megabytes for one record; 64 segments on
    // one level force a merge all the same (the default is 16).
    "INSERT INTO search(search, rank) VALUES('automerge', 0);
     INSERT INTO search(search, rank) VALUES('crisismerge', 64);",
    // 11: peer status lives in the running mesh, never in the store: the last one recorded
    // (peer addresses, when each synced) goes.
    "DELETE FROM meta WHERE key = 'peer_status';",
    // 12: requests by status, urgency and deadline (none last). Which statuses count as open is
    // the model's to say: the overview asks for each one it names, instead of this index
    // holding a list of closed ones.
    "DROP INDEX requests_open;
     CREATE INDEX requests_by_status
       ON records(json_extract(json, '$.status'), json_extract(json, '$.urgency'),
                  coalesce(json_extract(json, '$.needed_by'), '~'), id)
       WHERE kind = 'request';",
    // 13: the authority log's resolved state, kept so that opening reads it instead of replaying
    // every entry; it stands for the entries up to `upto` (entries are never deleted but all
    // together, which deletes it too).
    "CREATE TABLE authority_resolved(one INTEGER PRIMARY KEY CHECK (one = 1), upto INTEGER NOT NULL,
                                     state BLOB NOT NULL);",
    // 14: no second index keyed by record id: `records(id)`'s own answers every look-up by id
    // (this one only saved reading the row for its kind). 37 MiB of the bench coalition's
    // 905 MiB file.
    "DROP INDEX records_id_kind;",
    // 15: the reasons given for reading entries erased before every erasure blanked them (an
    // erasure from a peer, or an admin's, left them at every hub but the erasing one).
    "UPDATE vault_reads SET reason = '' WHERE entry IN (SELECT id FROM vault WHERE erased_at IS NOT NULL);",
];

/// The schema version this build writes.
pub(crate) const VERSION: i64 = MIGRATIONS.len() as i64;

pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > VERSION {
        return Err(Error::TooNew { path: path.to_path_buf(), found, known: VERSION });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{Store, VaultState};

    /// A store an earlier release left, holding the reason someone read an entry that was erased
    /// since without blanking it: opened by this release, the reason is blanked; the reasons of
    /// entries still held stay.
    #[test]
    fn reasons_for_reading_entries_erased_before_are_blanked_on_opening() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        let mut s = Store::create(&p, "pw", [7; 16]).unwrap();
        for id in ["v1", "v2"] {
            s.write(|tx| tx.vault_put(id, &[9; 32], &[3; 12], b"{}", 10, "h", 1, "", false)).unwrap();
            s.write(|tx| tx.log_vault_read(11, "coord", id, "r", "drive Amal to dialysis")).unwrap();
        }
        // As the earlier release erased from a peer: content gone, reason left.
        s.conn
            .execute_batch(
                "UPDATE vault SET nonce = NULL, ciphertext = NULL, erased_at = 20 WHERE id = 'v1';
                 DELETE FROM vault_keys WHERE id = 'v1';
                 PRAGMA user_version = 14;",
            )
            .unwrap();
        drop(s);
        let s = Store::open(&p, "pw").unwrap();
        assert_eq!(s.vault_get("v1").unwrap(), Some(VaultState::Erased { at: 20 }));
        let reasons: Vec<(String, String)> =
            s.vault_reads(10).unwrap().into_iter().map(|r| (r.entry, r.reason)).collect();
        assert_eq!(reasons, vec![("v2".into(), "drive Amal to dialysis".into()), ("v1".into(), String::new())]);
    }
}
