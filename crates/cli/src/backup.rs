//! `aifactory backup` and `aifactory restore`: an online copy of the embedded store while
//! `serve` writes to it, and a restore into a new file; both prove the copy before it counts
//! (SQLite's integrity check, then the decision ledger's hash chain read back end to end).
//! A PostgreSQL store is backed up with `pg_dump` (docs/OPERATIONS.md).

use anyhow::Context;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(crate) struct BackupArgs {
    /// The store to copy: the SQLite file `serve` uses [default: <data.dir>/serve.sqlite].
    #[arg(long, env = "AIFACTORY_DB")]
    db: Option<String>,
    /// The new backup file [default: <data.dir>/backups/serve-<UTC time>.sqlite]. Never
    /// overwritten.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct RestoreArgs {
    /// The backup file to restore.
    backup: PathBuf,
    /// Where the restored store goes; must not exist yet (stop `serve` and move the old store
    /// aside first) [default: <data.dir>/serve.sqlite].
    #[arg(long, env = "AIFACTORY_DB")]
    db: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// What a checked copy holds.
#[derive(Debug, Serialize)]
struct Checked {
    file: String,
    bytes: u64,
    integrity: &'static str,
    ledger_entries: usize,
    ledger_head: String,
    decisions: u64,
    events: u64,
    telemetry: u64,
    machines: u64,
}

fn default_store(config: &crate::Config) -> String {
    config.data.dir.join("serve.sqlite").display().to_string()
}

fn refuse_postgres(db: &str, verb: &str) -> anyhow::Result<()> {
    if aifactory_store::is_postgres_url(db) {
        anyhow::bail!(
            "{} is a PostgreSQL store: {verb} it with PostgreSQL's own tools, e.g. `pg_dump --format=custom --file=aifactory.dump URL` and `pg_restore --dbname=URL aifactory.dump` (docs/OPERATIONS.md)",
            crate::setup::shown_location(db)
        );
    }
    Ok(())
}

/// Integrity check, then open (bringing an older schema up to date) and read the whole ledger
/// back through its hash chain; the store is closed again, which folds its WAL into the file.
async fn check_copy(path: &Path) -> anyhow::Result<Checked> {
    aifactory_store::backup::integrity_check(path)
        .await
        .with_context(|| format!("checking {}", path.display()))?;
    let store = aifactory_store::Store::open_path(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let read = async {
        let (ledger, _) = aifactory_server::evidence::read(&store)
            .await
            .with_context(|| format!("verifying the decision ledger in {}", path.display()))?;
        let counts = store.counts().await.context("counting rows")?;
        // Recorded runs keep telemetry as rows, a live plant's ingest in per-series chunks.
        let ingested: u64 = store
            .series_counts()
            .await
            .context("counting ingested telemetry")?
            .values()
            .sum();
        anyhow::Ok((ledger, counts, ingested))
    }
    .await;
    store.close().await;
    let (ledger, counts, ingested) = read?;
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(Checked {
        file: path.display().to_string(),
        bytes,
        integrity: "ok",
        ledger_entries: ledger.entries().len(),
        ledger_head: ledger.head().to_owned(),
        decisions: counts.decisions,
        events: counts.events,
        telemetry: counts.telemetry + ingested,
        machines: counts.machines,
    })
}

fn print(what: &str, checked: &Checked, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(checked)?);
    } else {
        println!(
            "{what} {} ({:.1} MB): integrity ok; ledger {} entries, hash chain verified, head {}; {} decisions, {} events, {} telemetry points, {} machines",
            checked.file,
            checked.bytes as f64 / 1e6,
            checked.ledger_entries,
            checked.ledger_head,
            checked.decisions,
            checked.events,
            checked.telemetry,
            checked.machines,
        );
    }
    Ok(())
}

/// `backup_<UTC>` name for now, from the wall clock (read here, at the binary's edge).
fn default_backup_path(config: &crate::Config) -> PathBuf {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let stamp = aifactory_core::Timestamp(ms - ms.rem_euclid(1000))
        .to_string()
        .replace([':', '-'], "")
        .replace(".000", "");
    config
        .data
        .dir
        .join("backups")
        .join(format!("serve-{stamp}.sqlite"))
}

pub(crate) fn backup(config: &crate::Config, args: BackupArgs) -> anyhow::Result<ExitCode> {
    let db = args.db.clone().unwrap_or_else(|| default_store(config));
    refuse_postgres(&db, "back")?;
    let source = PathBuf::from(&db);
    if !source.is_file() {
        anyhow::bail!("no store at {db} (give the store `serve` uses with --db or AIFACTORY_DB)");
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_backup_path(config));
    if let Some(dir) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating backup folder {}", dir.display()))?;
    }
    let checked = crate::setup::runtime()?.block_on(async {
        aifactory_store::backup::backup_sqlite(&source, &out)
            .await
            .with_context(|| format!("copying {db} to {}", out.display()))?;
        match check_copy(&out).await {
            Ok(checked) => anyhow::Ok(checked),
            Err(e) => {
                // A copy that fails its check is not a backup: keep nobody guessing.
                let _ = std::fs::rename(&out, out.with_extension("failed-check"));
                Err(e.context(format!(
                    "the copy failed its check and was renamed to {}",
                    out.with_extension("failed-check").display()
                )))
            }
        }
    })?;
    tracing::info!(backup = %checked.file, entries = checked.ledger_entries, head = %checked.ledger_head, "backup written");
    print("backup", &checked, args.json)?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn restore(config: &crate::Config, args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let db = args.db.clone().unwrap_or_else(|| default_store(config));
    refuse_postgres(&db, "restore")?;
    let target = PathBuf::from(&db);
    for existing in [
        target.clone(),
        PathBuf::from(format!("{db}-wal")),
        PathBuf::from(format!("{db}-shm")),
    ] {
        if existing.exists() {
            anyhow::bail!(
                "{} exists: restore writes a new store and never overwrites one; stop `serve`, move the old store aside (or pick another --db) and run restore again",
                existing.display()
            );
        }
    }
    if !args.backup.is_file() {
        anyhow::bail!("no backup file at {}", args.backup.display());
    }
    if let Some(dir) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data folder {}", dir.display()))?;
    }
    // Work on a copy beside the target and rename it in at the end, so a failed restore leaves
    // no half-restored store where `serve` would open it.
    let staging = PathBuf::from(format!("{db}.restoring-{}", std::process::id()));
    let result = crate::setup::runtime()?.block_on(async {
        aifactory_store::backup::integrity_check(&args.backup)
            .await
            .with_context(|| format!("checking the backup {}", args.backup.display()))?;
        std::fs::copy(&args.backup, &staging)
            .with_context(|| format!("copying the backup to {}", staging.display()))?;
        let checked = check_copy(&staging).await?;
        std::fs::rename(&staging, &target)
            .with_context(|| format!("moving {} to {}", staging.display(), target.display()))?;
        anyhow::Ok(Checked {
            file: target.display().to_string(),
            ..checked
        })
    });
    let checked = match result {
        Ok(checked) => checked,
        Err(e) => {
            for leftover in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{leftover}", staging.display()));
            }
            return Err(e);
        }
    };
    tracing::info!(store = %checked.file, entries = checked.ledger_entries, head = %checked.ledger_head, "store restored");
    print("restored", &checked, args.json)?;
    Ok(ExitCode::SUCCESS)
}
