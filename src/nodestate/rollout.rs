//! Rollouts in the node-state database: each rollout (its image, its
//! parameters as the command stored them, when it started and how it ended)
//! and each of its nodes (batch, the generation it ran and the one it moves
//! to, how it is rebooted, its state and when its reboot was recorded).
//! `ddc rollout` records a node's "rebooting" here before it issues the
//! reboot, so `--resume` never reboots a node twice for the same target.

use anyhow::Result;
use rusqlite::{params, OptionalExtension};

use super::{explain, Store};

/// The tables, made by the same setup as the others.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rollouts (
    id INTEGER PRIMARY KEY,
    image TEXT,
    params TEXT NOT NULL,
    started INTEGER NOT NULL,
    stage TEXT NOT NULL,
    batch INTEGER NOT NULL,
    finished INTEGER
);
CREATE TABLE IF NOT EXISTS rollout_nodes (
    rollout INTEGER NOT NULL,
    hostname TEXT NOT NULL,
    batch INTEGER NOT NULL,
    from_image TEXT NOT NULL,
    from_gen TEXT NOT NULL,
    to_image TEXT NOT NULL,
    to_gen TEXT NOT NULL,
    method TEXT NOT NULL,
    phase TEXT NOT NULL,
    state TEXT NOT NULL,
    reboot_at INTEGER,
    why TEXT,
    PRIMARY KEY (rollout, hostname)
);
";

/// A rollout as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutRow {
    pub id: i64,
    pub image: Option<String>,
    /// The command's parameters (JSON).
    pub params: String,
    pub started: i64,
    pub stage: String,
    pub batch: usize,
    pub finished: Option<i64>,
}

/// A node of a rollout as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutNode {
    pub hostname: String,
    pub batch: usize,
    pub from_image: String,
    pub from_gen: String,
    pub to_image: String,
    pub to_gen: String,
    /// `bmc` or `ssh`.
    pub method: String,
    pub phase: String,
    pub state: String,
    pub reboot_at: Option<i64>,
    pub why: Option<String>,
}

impl Store {
    /// The newest rollout not finished, with its nodes.
    pub fn unfinished_rollout(&self) -> Result<Option<(RolloutRow, Vec<RolloutNode>)>> {
        self.read_unfinished().map_err(|e| explain(&self.path, e))
    }

    fn read_unfinished(&self) -> rusqlite::Result<Option<(RolloutRow, Vec<RolloutNode>)>> {
        // A database opened to read, made before rollouts were stored.
        let tables: i64 = self.conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'rollouts'",
            [],
            |r| r.get(0),
        )?;
        if tables == 0 {
            return Ok(None);
        }
        let row = self
            .conn
            .query_row(
                "SELECT id, image, params, started, stage, batch, finished FROM rollouts \
                 WHERE finished IS NULL ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok(RolloutRow {
                        id: r.get(0)?,
                        image: r.get(1)?,
                        params: r.get(2)?,
                        started: r.get(3)?,
                        stage: r.get(4)?,
                        batch: r.get::<_, i64>(5)? as usize,
                        finished: r.get(6)?,
                    })
                },
            )
            .optional()?;
        let Some(row) = row else { return Ok(None) };
        let mut stmt = self.conn.prepare(
            "SELECT hostname, batch, from_image, from_gen, to_image, to_gen, method, phase, \
             state, reboot_at, why FROM rollout_nodes WHERE rollout = ?1 ORDER BY rowid",
        )?;
        let nodes = stmt
            .query_map([row.id], |r| {
                Ok(RolloutNode {
                    hostname: r.get(0)?,
                    batch: r.get::<_, i64>(1)? as usize,
                    from_image: r.get(2)?,
                    from_gen: r.get(3)?,
                    to_image: r.get(4)?,
                    to_gen: r.get(5)?,
                    method: r.get(6)?,
                    phase: r.get(7)?,
                    state: r.get(8)?,
                    reboot_at: r.get(9)?,
                    why: r.get(10)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some((row, nodes)))
    }

    /// Records a new rollout and its nodes (in one transaction); its id.
    pub fn start_rollout(
        &mut self,
        image: Option<&str>,
        params_json: &str,
        now: i64,
        nodes: &[RolloutNode],
    ) -> Result<i64> {
        let path = self.path.clone();
        let mut run = || -> rusqlite::Result<i64> {
            let tx = self.conn.transaction()?;
            tx.execute(
                "INSERT INTO rollouts (image, params, started, stage, batch) \
                 VALUES (?1, ?2, ?3, 'forward', 0)",
                params![image, params_json, now],
            )?;
            let id = tx.last_insert_rowid();
            for n in nodes {
                write_node(&tx, id, n)?;
            }
            tx.commit()?;
            Ok(id)
        };
        run().map_err(|e| explain(&path, e))
    }

    /// Saves the rollout's stage and batch and the given nodes' states, in
    /// one transaction; `finished` (ms) ends it.
    pub fn save_rollout(
        &mut self,
        id: i64,
        stage: &str,
        batch: usize,
        finished: Option<i64>,
        nodes: &[RolloutNode],
    ) -> Result<()> {
        let path = self.path.clone();
        let mut run = || -> rusqlite::Result<()> {
            let tx = self.conn.transaction()?;
            tx.execute(
                "UPDATE rollouts SET stage = ?2, batch = ?3, finished = ?4 WHERE id = ?1",
                params![id, stage, batch as i64, finished],
            )?;
            for n in nodes {
                write_node(&tx, id, n)?;
            }
            tx.commit()
        };
        run().map_err(|e| explain(&path, e))
    }
}

fn write_node(tx: &rusqlite::Transaction, id: i64, n: &RolloutNode) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO rollout_nodes (rollout, hostname, batch, from_image, from_gen, to_image, \
         to_gen, method, phase, state, reboot_at, why) \
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12) \
         ON CONFLICT(rollout, hostname) DO UPDATE SET phase=?9, state=?10, reboot_at=?11, why=?12",
    )?
    .execute(params![
        id,
        n.hostname,
        n.batch as i64,
        n.from_image,
        n.from_gen,
        n.to_image,
        n.to_gen,
        n.method,
        n.phase,
        n.state,
        n.reboot_at,
        n.why
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{db_path, Store};
    use super::*;

    fn node(host: &str, state: &str) -> RolloutNode {
        RolloutNode {
            hostname: host.into(),
            batch: 0,
            from_image: "default".into(),
            from_gen: "0001-aaaaaaaaaaaa".into(),
            to_image: "default".into(),
            to_gen: "0002-bbbbbbbbbbbb".into(),
            method: "bmc".into(),
            phase: "forward".into(),
            state: state.into(),
            reboot_at: None,
            why: None,
        }
    }

    #[test]
    fn a_database_from_before_rollouts_has_none_and_gets_the_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_path(dir.path());
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE nodes (hostname TEXT PRIMARY KEY); PRAGMA user_version = 1;")
            .unwrap();
        drop(c);
        // Read as a dry run reads it: nothing written.
        let r = Store::open_existing(&path).unwrap().unwrap();
        assert_eq!(r.unfinished_rollout().unwrap(), None);
        drop(r);
        let c = rusqlite::Connection::open(&path).unwrap();
        let tables: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name LIKE 'rollout%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0);
        // Opened to write, it gets them.
        let mut s = Store::open(&path).unwrap();
        s.start_rollout(None, "{}", 1, &[]).unwrap();
        assert!(s.unfinished_rollout().unwrap().is_some());
    }

    #[test]
    fn a_rollout_reads_back_until_it_is_finished() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&db_path(dir.path())).unwrap();
        assert_eq!(s.unfinished_rollout().unwrap(), None);
        let nodes = [node("n1", "pending"), node("n2", "pending")];
        let id = s.start_rollout(Some("default"), "{}", 5, &nodes).unwrap();
        let mut n1 = node("n1", "rebooting");
        n1.reboot_at = Some(7);
        s.save_rollout(id, "forward", 0, None, &[n1.clone()])
            .unwrap();
        // Another connection (another process) reads it.
        let r = Store::open_existing(&db_path(dir.path())).unwrap().unwrap();
        let (row, back) = r.unfinished_rollout().unwrap().unwrap();
        assert_eq!(
            (row.id, row.image.as_deref(), row.started),
            (id, Some("default"), 5)
        );
        assert_eq!(back, [n1, node("n2", "pending")]);
        s.save_rollout(id, "succeeded", 1, Some(9), &[]).unwrap();
        assert_eq!(s.unfinished_rollout().unwrap(), None);
    }
}
