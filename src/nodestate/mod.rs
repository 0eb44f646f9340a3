//! The node-state database, `cache/nodes.db`: what each node last reported
//! (the generation it booted, kernel, uptime, failed units), when it last
//! fetched its iPXE script, and the machines not in the inventory that asked
//! for one (`discovered`). SQLite in WAL mode, so `ddc serve` writes while
//! `ddc status` and `ddc gc` read; the schema is versioned by
//! `PRAGMA user_version`. Every command that reads or writes node state goes
//! through this module; rollouts are stored by `rollout.rs`. It imports only `fsutil`: the states it derives
//! (`never_seen`, `booting`, `up`, `silent`) need only times and a heartbeat.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

mod rollout;
pub use rollout::{RolloutNode, RolloutRow};

/// The schema this ddc writes and reads. Still 1: what came since (the
/// rollout tables, the `system` column) is only added, so an older ddc
/// keeps opening the database.
const SCHEMA_VERSION: i32 = 1;

/// At most this many machines not in the inventory are remembered; a
/// stranger cannot grow the table without bound.
pub const DISCOVERED_MAX: i64 = 10_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS nodes (
    hostname TEXT PRIMARY KEY,
    mac TEXT,
    image TEXT,
    generation TEXT,
    boot_id TEXT,
    kernel TEXT,
    uptime REAL,
    failed_units TEXT,
    report_at INTEGER,
    report_ip TEXT,
    fetch_at INTEGER,
    fetch_ip TEXT
);
CREATE TABLE IF NOT EXISTS serve (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    alive_at INTEGER NOT NULL,
    pid INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS discovered (
    mac TEXT PRIMARY KEY,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    ip TEXT NOT NULL,
    platform TEXT NOT NULL,
    arch TEXT NOT NULL
);
";

/// How often a running `ddc serve` says so in the database (`Write::Alive`):
/// `ddc rollout` reboots nothing unless it said so within 3 of these.
pub const ALIVE_EVERY_MS: i64 = 5_000;

/// The database file of a cluster whose cache folder is `cache`.
pub fn db_path(cache: &Path) -> PathBuf {
    cache.join("nodes.db")
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A report a node sent, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub hostname: String,
    pub mac: String,
    pub image: String,
    pub generation: String,
    pub boot_id: String,
    pub kernel: String,
    pub uptime: f64,
    pub failed_units: Vec<String>,
    /// `systemctl is-system-running` at the report (`starting`, `running`,
    /// `degraded`, …); None from an image that does not send it.
    pub system: Option<String>,
}

/// One write to the database.
#[derive(Debug, Clone)]
pub enum Write {
    /// A node's report, received at `at` (ms) from `ip`.
    Report { report: Report, at: i64, ip: String },
    /// A node fetched its iPXE script.
    Fetch {
        hostname: String,
        at: i64,
        ip: String,
    },
    /// `ddc serve` (process `pid`) is running at `at` (ms), every
    /// [`ALIVE_EVERY_MS`]; 0 when it stops.
    Alive { at: i64, pid: u32 },
    /// A machine not in the inventory asked for a script.
    Unknown {
        mac: String,
        at: i64,
        ip: String,
        platform: String,
        arch: String,
    },
}

/// What the database holds about one node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeRow {
    pub report: Option<Report>,
    pub report_at: Option<i64>,
    pub fetch_at: Option<i64>,
}

/// A node's state, from its last report and last script fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    NeverSeen,
    Booting,
    Up,
    Silent,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::NeverSeen => "never_seen",
            State::Booting => "booting",
            State::Up => "up",
            State::Silent => "silent",
        }
    }
}

impl NodeRow {
    /// `booting` when it fetched its script after its last report, `up`
    /// with a report in the last 3 heartbeats, `silent` before that.
    pub fn state(&self, now: i64, heartbeat_s: u32) -> State {
        match (self.report_at, self.fetch_at) {
            (None, None) => State::NeverSeen,
            (None, Some(_)) => State::Booting,
            (Some(r), Some(f)) if f > r => State::Booting,
            (Some(r), _) if now - r <= 3 * i64::from(heartbeat_s) * 1000 => State::Up,
            (Some(_), _) => State::Silent,
        }
    }

    /// The later of the last report and the last fetch.
    pub fn last_seen(&self) -> Option<i64> {
        self.report_at.max(self.fetch_at)
    }

    /// When the node booted: the report's time less its uptime.
    pub fn booted_at(&self) -> Option<i64> {
        let r = self.report.as_ref()?;
        Some(self.report_at? - (r.uptime * 1000.0) as i64)
    }
}

/// A machine not in the inventory that asked for an iPXE script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// Lowercase, colon separated.
    pub mac: String,
    /// When it first and last asked (ms since the epoch).
    pub first_seen: i64,
    pub last_seen: i64,
    /// The address its last request came from.
    pub ip: String,
    /// What iPXE said of it: `efi` or `pcbios`, `x86_64` or `arm64`.
    pub platform: String,
    pub arch: String,
}

/// An open node-state database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    discovered: i64,
    /// The nodes table has the `system` column.
    system: bool,
}

/// The error for a database SQLite cannot read, naming the file and the reset.
fn explain(path: &Path, e: rusqlite::Error) -> anyhow::Error {
    use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
    let corrupt = matches!(e.sqlite_error_code(), Some(DatabaseCorrupt | NotADatabase));
    if corrupt {
        anyhow!(
            "the node-state database {} is corrupt ({e}); stop `ddc serve` and run \
             `ddc status --reset-db` to move it aside and start an empty one \
             (nodes report again within one heartbeat)",
            path.display()
        )
    } else {
        anyhow!(e).context(format!(
            "cannot use the node-state database {}",
            path.display()
        ))
    }
}

impl Store {
    /// Opens (creating it, mode 0600, if missing) the database for writing:
    /// WAL, full sync on commit, the schema checked or made.
    pub fn open(path: &Path) -> Result<Store> {
        if !path.exists() {
            // Created empty with its mode before SQLite opens it.
            crate::fsutil::open_file(path, crate::fsutil::Open::Keep, 0o600)
                .with_context(|| format!("cannot create {}", path.display()))?;
        }
        let conn = Connection::open(path).map_err(|e| explain(path, e))?;
        let mut s = Store {
            conn,
            path: path.to_path_buf(),
            discovered: 0,
            system: false,
        };
        s.setup(true).map_err(|e| explain(path, e))?;
        s.discovered = s
            .conn
            .query_row("SELECT count(*) FROM discovered", [], |r| r.get(0))
            .map_err(|e| explain(path, e))?;
        Ok(s)
    }

    /// Opens an existing database to read; None when there is none yet.
    pub fn open_existing(path: &Path) -> Result<Option<Store>> {
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(|e| explain(path, e))?;
        let mut s = Store {
            conn,
            path: path.to_path_buf(),
            discovered: 0,
            system: false,
        };
        s.setup(false).map_err(|e| explain(path, e))?;
        Ok(Some(s))
    }

    fn setup(&mut self, create: bool) -> rusqlite::Result<()> {
        self.conn.busy_timeout(Duration::from_secs(5))?;
        let version: i32 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        // 2 was written for a while for the same schema (rollout tables
        // only added): read alike, written back as 1.
        if version > SCHEMA_VERSION + 1 {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
                Some(format!(
                    "schema version {version} is newer than this ddc's {SCHEMA_VERSION}"
                )),
            ));
        }
        if create {
            self.conn
                .pragma_update(None, "journal_mode", "WAL")
                .or_else(|e| match e {
                    // The pragma returns a row: rusqlite reports it as an error.
                    rusqlite::Error::ExecuteReturnedResults => Ok(()),
                    e => Err(e),
                })?;
            self.conn.pragma_update(None, "synchronous", "FULL")?;
            self.conn.execute_batch(SCHEMA)?;
            if !self.has_system()? {
                self.conn
                    .execute_batch("ALTER TABLE nodes ADD COLUMN system TEXT")?;
            }
            self.conn.execute_batch(rollout::SCHEMA)?;
            self.conn
                .pragma_update(None, "user_version", SCHEMA_VERSION)?;
        } else {
            // Reads the header: a file that is not a database fails here.
            self.conn
                .query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                    r.get::<_, i64>(0)
                })?;
        }
        self.system = self.has_system()?;
        Ok(())
    }

    /// Whether the nodes table has the `system` column (added after 1.0;
    /// a database only read may predate it).
    fn has_system(&self) -> rusqlite::Result<bool> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM pragma_table_info('nodes') WHERE name = 'system'",
            [],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// Applies `writes` in one transaction (one commit, one sync). Each gets
    /// its own outcome: `Err` with a reason for an unknown machine refused
    /// because the `discovered` table is full.
    pub fn apply(&mut self, writes: &[Write]) -> Result<Vec<Result<(), String>>> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| explain(&path, e))?;
        let mut out = Vec::with_capacity(writes.len());
        let mut added = 0;
        for w in writes {
            out.push(
                apply_one(&tx, w, self.discovered + added, &mut added)
                    .map_err(|e| explain(&path, e))?,
            );
        }
        tx.commit().map_err(|e| explain(&path, e))?;
        self.discovered += added;
        Ok(out)
    }

    /// Every node row, by hostname.
    pub fn nodes(&self) -> Result<BTreeMap<String, NodeRow>> {
        self.read_nodes().map_err(|e| explain(&self.path, e))
    }

    fn read_nodes(&self) -> rusqlite::Result<BTreeMap<String, NodeRow>> {
        let mut stmt = self.conn.prepare(if self.system {
            "SELECT hostname, mac, image, generation, boot_id, kernel, uptime, failed_units, \
             report_at, fetch_at, system FROM nodes"
        } else {
            "SELECT hostname, mac, image, generation, boot_id, kernel, uptime, failed_units, \
             report_at, fetch_at, NULL FROM nodes"
        })?;
        let rows = stmt.query_map([], |r| {
            let hostname: String = r.get(0)?;
            let report_at: Option<i64> = r.get(8)?;
            let report = match report_at {
                Some(_) => Some(Report {
                    hostname: hostname.clone(),
                    mac: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    image: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    generation: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                    boot_id: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                    kernel: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
                    uptime: r.get::<_, Option<f64>>(6)?.unwrap_or_default(),
                    failed_units: r
                        .get::<_, Option<String>>(7)?
                        .and_then(|t| serde_json::from_str(&t).ok())
                        .unwrap_or_default(),
                    system: r.get(10)?,
                }),
                None => None,
            };
            let row = NodeRow {
                report,
                report_at,
                fetch_at: r.get(9)?,
            };
            Ok((hostname, row))
        })?;
        rows.collect()
    }

    /// When a running `ddc serve` last said so (ms), and its pid; None if
    /// none ever did, or it stopped (a database from before this table, or
    /// only read, has none).
    pub fn serve_alive(&self) -> Result<Option<(i64, u32)>> {
        let row = self
            .conn
            .query_row("SELECT alive_at, pid FROM serve WHERE id = 1", [], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, u32>(1)?))
            })
            .optional();
        match row {
            Ok(r) => Ok(r.filter(|(at, _)| *at > 0)),
            Err(rusqlite::Error::SqliteFailure(_, Some(m))) if m.contains("no such table") => {
                Ok(None)
            }
            Err(e) => Err(explain(&self.path, e)),
        }
    }

    /// The machines not in the inventory that asked for a script, first
    /// seen first (then by MAC).
    pub fn discovered(&self) -> Result<Vec<Discovered>> {
        self.read_discovered().map_err(|e| explain(&self.path, e))
    }

    fn read_discovered(&self) -> rusqlite::Result<Vec<Discovered>> {
        let mut stmt = self.conn.prepare(
            "SELECT mac, first_seen, last_seen, ip, platform, arch FROM discovered \
             ORDER BY first_seen, mac",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Discovered {
                mac: r.get(0)?,
                first_seen: r.get(1)?,
                last_seen: r.get(2)?,
                ip: r.get(3)?,
                platform: r.get(4)?,
                arch: r.get(5)?,
            })
        })?;
        rows.collect()
    }

    /// The generations nodes report running, by (image, generation), with
    /// the nodes, sorted: what `gc` must not delete. Only nodes for which
    /// `in_inventory` holds count; the reports of the others (removed from
    /// the inventory) come back as notes saying they were ignored. A report
    /// superseded by a later one from the same MAC under another hostname (a
    /// renamed node that rebooted) no longer counts: that machine runs what
    /// it said last.
    #[allow(clippy::type_complexity)]
    pub fn running(
        &self,
        in_inventory: &dyn Fn(&str) -> bool,
    ) -> Result<(BTreeMap<(String, String), Vec<String>>, Vec<String>)> {
        let rows = self.nodes()?;
        let mut latest: BTreeMap<String, i64> = BTreeMap::new();
        for row in rows.values() {
            if let (Some(r), Some(at)) = (&row.report, row.report_at) {
                let t = latest.entry(r.mac.to_ascii_lowercase()).or_insert(at);
                *t = (*t).max(at);
            }
        }
        let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        let mut ignored = Vec::new();
        for (host, row) in rows {
            let Some(r) = row.report else { continue };
            let newest = latest.get(&r.mac.to_ascii_lowercase()).copied();
            if row.report_at.is_some() && row.report_at < newest {
                continue;
            }
            if !in_inventory(&host) {
                ignored.push(format!(
                    "{host} reported {} of image {} but is no longer in the inventory: not kept",
                    r.generation, r.image
                ));
                continue;
            }
            out.entry((r.image, r.generation)).or_default().push(host);
        }
        Ok((out, ignored))
    }
}

fn apply_one(
    tx: &rusqlite::Transaction,
    w: &Write,
    discovered: i64,
    added: &mut i64,
) -> rusqlite::Result<Result<(), String>> {
    match w {
        Write::Report { report: r, at, ip } => {
            let units = serde_json::to_string(&r.failed_units).unwrap_or_default();
            tx.prepare_cached(
                "INSERT INTO nodes (hostname, mac, image, generation, boot_id, kernel, uptime, \
                 failed_units, report_at, report_ip, system) \
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11) \
                 ON CONFLICT(hostname) DO UPDATE SET mac=?2, image=?3, generation=?4, \
                 boot_id=?5, kernel=?6, uptime=?7, failed_units=?8, report_at=?9, \
                 report_ip=?10, system=?11",
            )?
            .execute(params![
                r.hostname,
                r.mac,
                r.image,
                r.generation,
                r.boot_id,
                r.kernel,
                r.uptime,
                units,
                at,
                ip,
                r.system
            ])?;
        }
        Write::Alive { at, pid } => {
            tx.prepare_cached(
                "INSERT INTO serve (id, alive_at, pid) VALUES (1, ?1, ?2) \
                 ON CONFLICT(id) DO UPDATE SET alive_at=?1, pid=?2",
            )?
            .execute(params![at, pid])?;
        }
        Write::Fetch { hostname, at, ip } => {
            tx.prepare_cached(
                "INSERT INTO nodes (hostname, fetch_at, fetch_ip) VALUES (?1,?2,?3) \
                 ON CONFLICT(hostname) DO UPDATE SET fetch_at=?2, fetch_ip=?3",
            )?
            .execute(params![hostname, at, ip])?;
        }
        Write::Unknown {
            mac,
            at,
            ip,
            platform,
            arch,
        } => {
            let known: Option<i64> = tx
                .prepare_cached("SELECT 1 FROM discovered WHERE mac = ?1")?
                .query_row([mac], |r| r.get(0))
                .optional()?;
            if known.is_some() {
                tx.prepare_cached(
                    "UPDATE discovered SET last_seen=?2, ip=?3, platform=?4, arch=?5 WHERE mac=?1",
                )?
                .execute(params![mac, at, ip, platform, arch])?;
            } else if discovered >= DISCOVERED_MAX {
                return Ok(Err(format!(
                    "the discovered table is full ({DISCOVERED_MAX} machines)"
                )));
            } else {
                tx.prepare_cached(
                    "INSERT INTO discovered (mac, first_seen, last_seen, ip, platform, arch) \
                     VALUES (?1,?2,?2,?3,?4,?5)",
                )?
                .execute(params![mac, at, ip, platform, arch])?;
                *added += 1;
            }
        }
    }
    Ok(Ok(()))
}

/// Moves a database aside (`FILE.corrupt-SECONDS`, with its WAL files) so
/// the next open starts an empty one. Returns where it went, or None if
/// there was no database.
pub fn reset(path: &Path) -> Result<Option<PathBuf>> {
    if !path.exists() {
        return Ok(None);
    }
    let aside = PathBuf::from(format!("{}.corrupt-{}", path.display(), now_ms() / 1000));
    std::fs::rename(path, &aside)
        .with_context(|| format!("cannot move {} aside", path.display()))?;
    for ext in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{ext}", path.display()));
        if side.exists() {
            std::fs::rename(&side, format!("{}{ext}", aside.display()))
                .with_context(|| format!("cannot move {} aside", side.display()))?;
        }
    }
    Ok(Some(aside))
}

/// RFC 3339 (UTC, seconds) of a time in ms since the epoch.
pub fn rfc3339(ms: i64) -> String {
    let secs = u64::try_from(ms.div_euclid(1000)).unwrap_or(0);
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

#[cfg(test)]
mod tests;
