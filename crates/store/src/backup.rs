//! Copies of the embedded store: an online backup taken while a server writes to it, and the
//! integrity check a copy must pass before it is trusted. A PostgreSQL store is backed up with
//! PostgreSQL's own tools (`pg_dump`/`pg_restore`, see docs/OPERATIONS.md).

use crate::StoreError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection, Row};
use std::path::Path;
use std::time::Duration;

/// How long the copy waits for a writer's lock (it needs none in WAL mode; a store still in
/// rollback-journal mode makes it wait for the writer's transaction).
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The first bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

async fn read_only(path: &Path) -> Result<SqliteConnection, StoreError> {
    SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(BUSY_TIMEOUT)
        .connect()
        .await
        .map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })
}

/// Whether `path` starts like a SQLite database (an unreadable file says why).
pub fn is_sqlite_file(path: &Path) -> Result<bool, StoreError> {
    use std::io::Read;
    let mut head = [0u8; 16];
    let mut file = std::fs::File::open(path).map_err(|e| StoreError::Invalid {
        what: "store file",
        detail: format!("{}: {e}", path.display()),
    })?;
    match file.read_exact(&mut head) {
        Ok(()) => Ok(&head == SQLITE_MAGIC),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(StoreError::Invalid {
            what: "store file",
            detail: format!("{}: {e}", path.display()),
        }),
    }
}

/// Writes a consistent copy of the SQLite store at `source` to the new file `dest`, while other
/// connections (a running `serve`) keep writing: SQLite's `VACUUM INTO` reads one snapshot in a
/// read transaction, which in WAL mode blocks no writer, and writes a compact file with no
/// journal beside it. `dest` must not exist. Nothing is written to `source`.
pub async fn backup_sqlite(source: &Path, dest: &Path) -> Result<(), StoreError> {
    if !source.is_file() {
        return Err(StoreError::Invalid {
            what: "backup source",
            detail: format!("{} is not a file", source.display()),
        });
    }
    if !is_sqlite_file(source)? {
        return Err(StoreError::Invalid {
            what: "backup source",
            detail: format!("{} is not a SQLite database", source.display()),
        });
    }
    if dest.exists() {
        return Err(StoreError::Invalid {
            what: "backup",
            detail: format!(
                "{} already exists; a backup never overwrites a file",
                dest.display()
            ),
        });
    }
    let target = dest.to_str().ok_or_else(|| StoreError::Invalid {
        what: "backup",
        detail: format!("{} is not a UTF-8 path", dest.display()),
    })?;
    let mut conn = read_only(source).await?;
    let copied = sqlx::query("VACUUM INTO ?1")
        .bind(target)
        .execute(&mut conn)
        .await
        .map_err(|source| StoreError::Write {
            what: "the backup copy",
            source,
        });
    let _ = conn.close().await;
    copied.map(drop)
}

/// SQLite's message when `error` says the file is damaged (`SQLITE_CORRUPT`, `SQLITE_NOTADB`).
fn damaged(error: &sqlx::Error) -> Option<String> {
    let sqlx::Error::Database(db) = error else {
        return None;
    };
    let code = db.code()?;
    let primary = code.parse::<i32>().ok()? & 0xff;
    (primary == 11 || primary == 26).then(|| db.message().to_owned())
}

/// SQLite's `PRAGMA integrity_check` on the file at `path`, read-only: `Ok` when the database
/// is sound, else [`StoreError::Corrupt`] with what SQLite found (its first ten findings).
pub async fn integrity_check(path: &Path) -> Result<(), StoreError> {
    if !is_sqlite_file(path)? {
        return Err(StoreError::Corrupt {
            what: "store file",
            detail: format!("{} is not a SQLite database", path.display()),
        });
    }
    let mut conn = read_only(path).await?;
    let rows = sqlx::query("PRAGMA integrity_check(10)")
        .fetch_all(&mut conn)
        .await
        .map_err(|source| match damaged(&source) {
            // Damage bad enough that SQLite stops the check is still a finding, not an I/O error.
            Some(message) => StoreError::Corrupt {
                what: "database file",
                detail: format!("{}: {message}", path.display()),
            },
            None => StoreError::Read {
                what: "the integrity check",
                source,
            },
        });
    let _ = conn.close().await;
    let findings: Vec<String> = rows?
        .iter()
        .filter_map(|r| r.try_get::<String, _>(0).ok())
        .collect();
    if findings.len() == 1 && findings[0] == "ok" {
        Ok(())
    } else {
        Err(StoreError::Corrupt {
            what: "database file",
            detail: format!("{}: {}", path.display(), findings.join("; ")),
        })
    }
}
