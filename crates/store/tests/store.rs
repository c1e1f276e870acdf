//! The store's contract, exercised on both engines: what goes in comes back exactly, the ledger
//! refuses rewrites (in the methods and in the database itself), and a reopened store keeps
//! everything.
//!
//! Every test in `conformance!` runs twice, as `sqlite::name` on a fresh file and as
//! `postgres::name` in a fresh schema of the database named by `AIFACTORY_TEST_PG_URL`; without
//! that variable the PostgreSQL runs say they skipped and pass. Each PostgreSQL run drops its
//! schema at the end, even when the test fails, so runs in parallel never see each other's rows.

use aifactory_core::{
    Decision, EventKind, ExecutedBy, KpiInputs, Kpis, LifecycleStage, Outcome, Plant, PlantEvent,
    TelemetryReading, Timestamp,
};
use aifactory_store::ingest::{
    IngestBatch, IngestMessage, LatestValue, OtherSample, OtherValue, PruneReport, QuarantineRow,
    Resolution, Retention, Sample, SeriesName,
};
use aifactory_store::{Counts, PgStore, RunId, RunInfo, SqliteStore, Store, StoreError};
use serde_json::json;
use sqlx::Connection;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// Where the PostgreSQL runs connect; absent means they skip.
const PG_URL_VAR: &str = "AIFACTORY_TEST_PG_URL";

const PLANT: &str = r#"
[plant]
id = "SITE-1"
name = "Test works"
name_zh = "测试工厂"
industry = "machining"
start = 2026-03-02T00:00:00+08:00

[[areas]]
id = "A1"
name = "Machining hall"

[[lines]]
id = "L1"
name = "Shaft line"
area = "A1"

[[work_centres]]
id = "WC-TURN"
name = "Turning"
line = "L1"
kind = "turning"

[[work_centres]]
id = "WC-QC"
name = "Inspection"
kind = "inspection"

[[machine_types]]
id = "LATHE"
name = "CNC lathe"
power_kw = { run = 12.0, idle = 2.0, down = 0.5 }
health = { wear_per_run_hour = 0.001, mtbf_new_h = 400.0, hazard_growth = 3.0, slowdown_at_worn = 0.2, defect_at_worn = 0.05 }
maintenance = { preventive_h = 2.0, preventive_cost = 300.0, corrective_h = 8.0, corrective_cost = 2000.0, pm_interval_run_h = 200.0 }
sensors = { vibration_mm_s = 2.0, temperature_rise_c = 25.0, current_a = 18.0 }

[[machines]]
id = "TURN-01"
name = "Lathe 1"
work_centre = "WC-TURN"
type = "LATHE"

[[machines]]
id = "QC-01"
work_centre = "WC-QC"
type = "LATHE"

[[materials]]
id = "BAR-40"
name = "Steel bar 40 mm"
unit_cost = 12.5
lead_time_days = 3.0
initial_stock = 100.0
reorder_point = 40.0
order_qty = 200.0

[[products]]
id = "SHAFT-A"
name = "Shaft A"
price = 80.0
lot_size = 20
bom = [{ item = "BAR-40", qty = 1.0 }]
routing = [{ name = "turn", times = { "TURN-01" = 6.0 } }, { name = "inspect", times = { "QC-01" = 1.5 } }]

[tariff]
periods = [{ name = "flat", from_h = 0, to_h = 24, price_per_kwh = 0.8 }]
"#;

fn plant() -> Plant {
    match Plant::parse(PLANT, Path::new("test-plant.toml")) {
        Ok(plant) => plant,
        Err(e) => panic!("test plant does not parse: {e}"),
    }
}

fn t(ms: i64) -> Timestamp {
    Timestamp(1_772_380_800_000 + ms)
}

fn run_info() -> RunInfo {
    RunInfo {
        plant_id: "SITE-1".to_owned(),
        // Above i64::MAX, so the bit-for-bit storage of the seed is exercised.
        seed: u64::MAX - 6,
        policy: "baseline".to_owned(),
        sim_days: 30.5,
        started_at: t(0),
    }
}

fn events() -> Vec<PlantEvent> {
    vec![
        PlantEvent {
            at: t(1_000),
            kind: EventKind::OrderReceived,
            machine: None,
            order: Some("SO-1".to_owned()),
            detail: json!({"units": 40, "product": "SHAFT-A", "due": "2026-03-09"}),
        },
        PlantEvent {
            at: t(2_000),
            kind: EventKind::MachineFailed,
            machine: Some("TURN-01".to_owned()),
            order: None,
            detail: json!({"wear": 0.8125, "nested": {"list": [1, 2.5, null, true]}}),
        },
        PlantEvent {
            at: t(2_000),
            kind: EventKind::UnitsScrapped,
            machine: Some("QC-01".to_owned()),
            order: Some("WO-7".to_owned()),
            detail: serde_json::Value::Null,
        },
    ]
}

fn telemetry(n: usize) -> Vec<TelemetryReading> {
    let signals = ["vibration_mm_s", "temperature_c", "current_a"];
    let machines = ["TURN-01", "QC-01"];
    (0..n)
        .map(|i| TelemetryReading {
            at: t(i as i64 * 60_000),
            machine: machines[i % machines.len()].to_owned(),
            signal: signals[(i / machines.len()) % signals.len()].to_owned(),
            // Irrational-looking values so a lossy round trip cannot pass by accident.
            value: (i as f64).sqrt() * 1.000_000_1 - 3.3,
        })
        .collect()
}

fn kpis() -> Kpis {
    Kpis::compute(&KpiInputs {
        horizon_s: 7.0 * 86_400.0,
        run_s: 400_000.0,
        setup_s: 20_000.0,
        breakdown_s: 15_000.0,
        ideal_run_s: 350_000.0,
        op_units_processed: 5_000,
        op_units_good: 4_930,
        finished_good_units: 2_400,
        scrapped_units: 70,
        orders_due: 60,
        orders_on_time: 55,
        orders_completed: 58,
        tardiness_h: 31.5,
        energy_kwh: 12_345.6,
        energy_cost: 9_876.5,
        failures: 3,
        events_processed: 123_456,
        ..KpiInputs::default()
    })
}

fn decision(id: &str, at_ms: i64) -> Decision {
    Decision {
        id: id.to_owned(),
        at: t(at_ms),
        skill: "rul".to_owned(),
        stage: LifecycleStage::Production,
        inputs_ref: "telemetry:TURN-01:2026-03-01/2026-03-02".to_owned(),
        model: "weibull-rul".to_owned(),
        model_version: "0.1.0".to_owned(),
        output: json!({"machine": "TURN-01", "action": "preventive_maintenance", "rul_h": 41.25}),
        confidence: Some(0.87),
        executed_by: ExecutedBy::Auto,
        outcome: None,
    }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temporary folder: {e}"))
}

#[derive(Debug, Clone, Copy)]
enum Engine {
    Sqlite,
    Postgres,
}

/// One test's private database: a SQLite file in its own folder, or a PostgreSQL schema of its
/// own. `open` may be called again to check what survives reopening.
#[derive(Debug)]
enum TestDb {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres {
        /// The server as the environment names it, for creating and dropping the schema.
        admin_url: String,
        schema: String,
        /// `admin_url` with the schema as the connection's search path.
        url: String,
    },
}

impl TestDb {
    /// A fresh database for `test`, or `None` (after saying so) when the engine is not available.
    async fn create(engine: Engine, test: &str) -> Option<TestDb> {
        match engine {
            Engine::Sqlite => {
                let dir = tempdir();
                let path = dir.path().join("plant.db");
                Some(TestDb::Sqlite { _dir: dir, path })
            }
            Engine::Postgres => {
                let Ok(admin_url) = std::env::var(PG_URL_VAR) else {
                    println!("skipped postgres::{test}: {PG_URL_VAR} is not set");
                    return None;
                };
                let schema = unique_schema();
                pg_admin(&admin_url, &format!("CREATE SCHEMA {schema}")).await;
                let separator = if admin_url.contains('?') { '&' } else { '?' };
                let url = format!("{admin_url}{separator}options[search_path]={schema}");
                Some(TestDb::Postgres {
                    admin_url,
                    schema,
                    url,
                })
            }
        }
    }

    /// Opens the store through [`Store::open`], so that the choice of engine by location is
    /// exercised too.
    async fn open(&self) -> Store {
        let location = match self {
            TestDb::Sqlite { path, .. } => path
                .to_str()
                .unwrap_or_else(|| panic!("temporary path {} is not UTF-8", path.display()))
                .to_owned(),
            TestDb::Postgres { url, .. } => url.clone(),
        };
        let store = Store::open(&location)
            .await
            .unwrap_or_else(|e| panic!("cannot open the test store: {e}"));
        let expected = match self {
            TestDb::Sqlite { .. } => "sqlite",
            TestDb::Postgres { .. } => "postgres",
        };
        assert_eq!(store.engine(), expected);
        store
    }

    /// Runs `sql` on a connection of its own, bypassing the store, as an intruder would.
    async fn execute_raw(&self, sql: &str) -> Result<(), sqlx::Error> {
        match self {
            TestDb::Sqlite { path, .. } => {
                let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
                let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            }
            TestDb::Postgres { url, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            }
        }
    }

    /// Drops the triggers that keep the ledger append-only, as an intruder with the database's
    /// owner rights would before editing it.
    async fn drop_ledger_triggers(&self) {
        let sql = match self {
            TestDb::Sqlite { .. } => {
                let mut sql = String::new();
                for table in ["decisions", "decision_outcomes", "model_updates", "ledger"] {
                    for op in ["update", "delete"] {
                        sql.push_str(&format!("DROP TRIGGER {table}_append_only_{op};"));
                    }
                }
                sql
            }
            TestDb::Postgres { .. } => "DROP FUNCTION ledger_append_only() CASCADE".to_owned(),
        };
        self.execute_raw(&sql)
            .await
            .unwrap_or_else(|e| panic!("dropping the ledger's triggers failed: {e}"));
    }

    async fn drop_database(&self) {
        if let TestDb::Postgres {
            admin_url, schema, ..
        } = self
        {
            pg_admin(admin_url, &format!("DROP SCHEMA {schema} CASCADE")).await;
        }
    }
}

/// A schema name no other test, test process or earlier run is using: the process id keeps
/// parallel test binaries apart and the counter keeps this process's tests apart.
fn unique_schema() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "aifactory_test_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

async fn pg_admin(url: &str, sql: &str) {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {PG_URL_VAR}: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"));
    // Closing is best effort: the statement has already run.
    let _ = conn.close().await;
}

/// Runs `body` on a fresh database of `engine`, then drops the database whatever happened, then
/// fails the test if the body failed. The body runs as its own task so that a panic in it is
/// caught and the cleanup still runs.
async fn run_on<F, Fut>(engine: Engine, test: &str, body: F)
where
    F: FnOnce(Arc<TestDb>) -> Fut,
    Fut: Future<Output = Result<(), StoreError>> + Send + 'static,
{
    let Some(db) = TestDb::create(engine, test).await else {
        return;
    };
    let db = Arc::new(db);
    let outcome = tokio::spawn(body(Arc::clone(&db))).await;
    db.drop_database().await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{test} on {engine:?}: {e}"),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("{test} on {engine:?}: {e}"),
    }
}

/// Fails unless a raw statement was refused by the ledger's own triggers, so that a statement
/// failing for another reason (say, a table it cannot see) does not pass for a refusal.
fn assert_append_only(result: Result<(), sqlx::Error>, sql: &str) {
    match result {
        Err(e) if e.to_string().contains("the decision ledger is append-only") => {}
        Err(e) => panic!("`{sql}` failed for another reason than the ledger: {e}"),
        Ok(()) => panic!("`{sql}` must be refused"),
    }
}

/// A ledger of every kind of record, written in three batches: decisions (one with its outcome
/// given), a re-measured outcome and a model update.
fn ledger_records() -> Vec<Vec<aifactory_core::LedgerRecord>> {
    use aifactory_core::LedgerRecord;
    let mut first = decision("D-1", 1);
    first.outcome = Some(Outcome {
        measured_at: t(5),
        measured: json!({"failed": false, "hours": 12.5}),
        success: Some(true),
    });
    let update = LedgerRecord::ModelUpdate {
        at: t(9),
        skill: "maintenance".into(),
        model: "service-age".into(),
        from_version: "1".into(),
        to_version: "2".into(),
        trigger: "3 failures and 9 services of LATHE".into(),
    };
    vec![
        vec![
            LedgerRecord::Decision(first),
            LedgerRecord::Decision(decision("D-2", 2)),
        ],
        vec![LedgerRecord::Outcome {
            decision: "D-2".into(),
            outcome: Outcome {
                measured_at: t(7),
                measured: json!({"late_h": 0.0}),
                success: None,
            },
        }],
        vec![update, LedgerRecord::Decision(decision("D-3", 10))],
    ]
}

/// Writes [`ledger_records`], drops the triggers, runs `sql` as an intruder and returns why the
/// store's ledger no longer verifies.
async fn tampered(db: &TestDb, sql: &str) -> Result<String, StoreError> {
    let store = db.open().await;
    for batch in ledger_records() {
        store.append_ledger(&batch).await?;
    }
    aifactory_assess::verify_chain(&store.ledger().await?)
        .unwrap_or_else(|e| panic!("the untouched ledger must verify: {e}"));
    db.drop_ledger_triggers().await;
    db.execute_raw(sql)
        .await
        .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"));
    // Reopened, so an open cannot quietly re-chain what was tampered with either.
    store.close().await;
    let store = db.open().await;
    let why = match store.ledger().await {
        Err(e) => e.to_string(),
        Ok(entries) => match aifactory_assess::verify_chain(&entries) {
            Err(e) => e.to_string(),
            Ok(()) => panic!("`{sql}` went unnoticed"),
        },
    };
    store.close().await;
    Ok(why)
}

fn series(metric: &str) -> SeriesName {
    SeriesName {
        site: "hz".into(),
        node: "line-1".into(),
        device: "cnc-1".into(),
        metric: metric.into(),
    }
}

fn ingest_message(key: u8, metric: &str, from_ms: i64, n: i64) -> IngestMessage {
    IngestMessage {
        key: Some([key; 16]),
        samples: (0..n)
            .map(|i| Sample {
                series: series(metric),
                at_ms: from_ms + i,
                value: (from_ms + i) as f64 * 0.5,
            })
            .collect(),
        others: Vec::new(),
    }
}

/// Defines each test once and runs it on both engines, as `sqlite::name` and `postgres::name`.
macro_rules! conformance {
    ($(async fn $name:ident($db:ident) $body:block)*) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    async fn body($db: Arc<TestDb>) -> Result<(), StoreError> $body
                    run_on(Engine::Sqlite, stringify!($name), body).await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    async fn body($db: Arc<TestDb>) -> Result<(), StoreError> $body
                    run_on(Engine::Postgres, stringify!($name), body).await;
                }
            )*
        }
    };
}

conformance! {
    async fn an_agent_action_is_decided_once_and_its_audit_and_usage_read_back(db) {
        use aifactory_store::{AuditEntry, StoredAction, UsageRecord};
        let store = db.open().await;
        let action = StoredAction {
            id: "A-1".into(),
            created_at: t(1),
            conversation: Some("C-1".into()),
            tool: "create_work_order".into(),
            arguments: r#"{"machine":"M3"}"#.into(),
            requested_by: "bot".into(),
            role: "agent".into(),
            via: "mcp".into(),
            status: "pending".into(),
            decided_by: None,
            decided_at: None,
            result: None,
        };
        store.save_action(&action).await?;
        assert!(store.save_action(&action).await.is_err(), "an action id is kept once");
        let later = StoredAction { id: "A-2".into(), created_at: t(2), conversation: None, ..action.clone() };
        store.save_action(&later).await?;
        assert_eq!(store.actions(Some("pending"), 10).await?, vec![later.clone(), action.clone()]);
        assert_eq!(store.actions(None, 1).await?, vec![later.clone()]);
        // Of two approvals of one action, one wins; a rejection after it changes nothing.
        assert!(store.transition_action("A-1", "pending", "approved", Some("ana"), t(5), None).await?);
        assert!(!store.transition_action("A-1", "pending", "approved", Some("bob"), t(6), None).await?);
        assert!(!store.transition_action("A-1", "pending", "rejected", Some("bob"), t(6), None).await?);
        assert!(!store.transition_action("A-9", "pending", "approved", Some("bob"), t(6), None).await?);
        assert!(store.transition_action("A-1", "approved", "executed", None, t(7), Some(r#"{"ok":true}"#)).await?);
        let done = store.action("A-1").await?.expect("A-1 is kept");
        assert_eq!(done.status, "executed");
        assert_eq!(done.decided_by.as_deref(), Some("ana"));
        assert_eq!(done.decided_at, Some(t(5)));
        assert_eq!(done.result.as_deref(), Some(r#"{"ok":true}"#));
        assert_eq!(store.actions(Some("pending"), 10).await?, vec![later]);
        assert!(store.action("A-9").await?.is_none());

        let step = |n: u32, kind: &str| AuditEntry {
            conversation: "C-1".into(), step: n, at: t(i64::from(n)), user: "bot".into(),
            role: "agent".into(), via: "mcp".into(), kind: kind.into(), content: "{}".into(),
        };
        store.append_audit(&[step(0, "question"), step(1, "tool_call")]).await?;
        assert!(store.append_audit(&[step(1, "again")]).await.is_err(), "a step is written once");
        let other = AuditEntry { conversation: "C-2".into(), ..step(9, "answer") };
        store.append_audit(std::slice::from_ref(&other)).await?;
        assert_eq!(store.audit(Some("C-1"), 100).await?, vec![step(0, "question"), step(1, "tool_call")]);
        assert_eq!(store.audit(None, 1).await?, vec![other]);

        let use_ = |skill: &str, p: u64| UsageRecord {
            at: t(1), conversation: "C-1".into(), user: "bot".into(), skill: skill.into(),
            model: "qwen".into(), prompt_tokens: p, completion_tokens: 10, elapsed_ms: 5,
        };
        store.record_usage(&use_("telemetry", 100)).await?;
        store.record_usage(&use_("telemetry", 50)).await?;
        store.record_usage(&use_("answer", 7)).await?;
        let totals = store.usage_totals().await?;
        assert_eq!(totals.len(), 2);
        assert_eq!((totals[1].skill.as_str(), totals[1].calls, totals[1].prompt_tokens, totals[1].completion_tokens, totals[1].elapsed_ms), ("telemetry", 2, 150, 20, 10));
        Ok(())
    }

    async fn users_and_token_hashes_survive_reopening(db) {
        let store = db.open().await;
        assert!(store.users().await?.is_empty());
        let ana = aifactory_store::StoredUser {
            name: "ana".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            role: "operator".into(),
        };
        store.save_user(&ana).await?;
        // Saving again replaces the hash and the role: a password reset.
        let reset = aifactory_store::StoredUser {
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdDI$aGFzaDI".into(),
            role: "engineer".into(),
            ..ana.clone()
        };
        store.save_user(&reset).await?;
        let token = aifactory_store::StoredToken {
            sha256: "ab".repeat(32),
            id: "tok-1".into(),
            user: "dashboard".into(),
            role: "viewer".into(),
            kind: "api".into(),
            issued_at: t(3),
            expires_at: t(1_000),
            revoked_at: None,
            revoked_by: None,
        };
        store.save_token(&token).await?;
        assert!(store.save_token(&token).await.is_err(), "a token hash is kept once");
        let same_id = aifactory_store::StoredToken {
            sha256: "cd".repeat(32),
            ..token.clone()
        };
        assert!(store.save_token(&same_id).await.is_err(), "a token id is given once");
        drop(store);
        let store = db.open().await;
        assert_eq!(store.users().await?, vec![reset]);
        assert_eq!(store.tokens().await?, vec![token.clone()]);
        Ok(())
    }

    async fn a_token_is_revoked_once_and_expired_ones_are_forgotten(db) {
        let store = db.open().await;
        let token = |n: u8, expires: i64| aifactory_store::StoredToken {
            sha256: format!("{n:02x}").repeat(32),
            id: format!("tok-{n}"),
            user: "ana".into(),
            role: "operator".into(),
            kind: "login".into(),
            issued_at: t(1),
            expires_at: t(expires),
            revoked_at: None,
            revoked_by: None,
        };
        store.save_token(&token(1, 100)).await?;
        store.save_token(&token(2, 10_000)).await?;
        assert!(store.revoke_token("tok-2", "admin", t(50)).await?);
        assert!(!store.revoke_token("tok-2", "admin", t(60)).await?, "once");
        assert!(!store.revoke_token("tok-9", "admin", t(60)).await?, "unknown");
        assert_eq!(store.delete_expired_tokens(t(500)).await?, 1);
        let left = store.tokens().await?;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id, "tok-2");
        assert_eq!(left[0].revoked_at, Some(t(50)));
        assert_eq!(left[0].revoked_by.as_deref(), Some("admin"));
        Ok(())
    }

    async fn proposals_are_numbered_once_decided_once_and_survive_reopening(db) {
        let store = db.open().await;
        let new = |machine: &str| aifactory_store::NewProposal {
            created_at: t(5),
            requested_by: "ana".into(),
            role: "operator".into(),
            via: "api".into(),
            kind: "machine_down".into(),
            machine: machine.into(),
            hours: 2.5,
            summary: format!("{machine} down"),
            plan_decision: Some("D-1".into()),
        };
        let first = store.add_proposal(&new("MILL-01")).await?;
        let second = store.add_proposal(&new("GRIND-03")).await?;
        assert!(second > first);
        assert!(
            store
                .add_proposal(&aifactory_store::NewProposal {
                    hours: f64::NAN,
                    ..new("X")
                })
                .await
                .is_err()
        );
        assert!(
            store
                .transition_proposal(first, "pending", "approved", Some("bo"), Some(t(9)), Some("H-1"))
                .await?
        );
        assert!(
            !store
                .transition_proposal(first, "pending", "rejected", Some("cy"), Some(t(9)), None)
                .await?,
            "decided once"
        );
        drop(store);
        let store = db.open().await;
        let all = store.proposals(None, 10).await?;
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].seq, second, "newest first");
        assert_eq!(all[0].status, "pending");
        let pending = store.proposals(Some("pending"), 10).await?;
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].seq, second);
        assert_eq!(store.proposals(None, 1).await?.len(), 1);
        let decided = store.proposal(first).await?.expect("kept");
        assert_eq!(decided.proposal, new("MILL-01"));
        assert_eq!(decided.status, "approved");
        assert_eq!(decided.decided_by.as_deref(), Some("bo"));
        assert_eq!(decided.decision.as_deref(), Some("H-1"));
        assert!(store.proposal(second + 100).await?.is_none());
        // A number is never given twice, even after the newest is gone from view.
        let third = store.add_proposal(&new("TURN-01")).await?;
        assert!(third > second);
        Ok(())
    }

    async fn everything_written_reads_back_exactly_and_survives_reopening(db) {
        let store = db.open().await;
        assert_eq!(store.counts().await?, Counts::default());

        let plant = plant();
        store.save_plant(&plant).await?;
        let run = store.start_run(&run_info()).await?;

        let run_events = events();
        let live_events = vec![PlantEvent {
            at: t(5),
            kind: EventKind::RepairCompleted,
            machine: Some("TURN-01".to_owned()),
            order: None,
            detail: json!({"source": "mes"}),
        }];
        store.append_events(Some(run), &run_events).await?;
        store.append_events(None, &live_events).await?;

        let readings = telemetry(50_000);
        assert!(store.streaming_machines().await?.is_empty());
        store.append_telemetry(Some(run), &readings).await?;
        let live_readings = telemetry(7);
        store.append_telemetry(None, &live_readings).await?;

        let kpis = kpis();
        store.save_kpis(run, &kpis).await?;

        let first = decision("D-1", 10);
        let mut second = decision("D-2", 20);
        second.stage = LifecycleStage::Sales;
        second.executed_by = ExecutedBy::Human;
        second.confidence = None;
        second.outcome = Some(Outcome {
            measured_at: t(30),
            measured: json!({"quoted_days": 4}),
            success: None,
        });
        store.record_decision(&first).await?;
        store.record_decision(&second).await?;
        let outcome = Outcome {
            measured_at: t(86_400_000),
            measured: json!({"failures_avoided": 1, "downtime_h": 0.0}),
            success: Some(true),
        };
        store.record_outcome("D-1", &outcome).await?;
        store.close().await;

        // Everything below reads a freshly opened store: migrations must be a no-op the second
        // time.
        let store = db.open().await;
        assert_eq!(
            store.counts().await?,
            Counts {
                runs: 1,
                events: 4,
                telemetry: 50_007,
                decisions: 2,
                machines: 2,
                products: 1,
            }
        );
        assert_eq!(store.run(run).await?, Some(run_info()));
        assert_eq!(store.events(Some(run)).await?, run_events);
        assert_eq!(store.events(None).await?, live_events);
        assert_eq!(store.telemetry(Some(run)).await?, readings);
        assert_eq!(store.telemetry(None).await?, live_readings);
        assert_eq!(store.streaming_machines().await?, ["QC-01", "TURN-01"]);

        let machines = store.machines("SITE-1").await?;
        let paths: Vec<(&str, &str)> = machines
            .iter()
            .map(|m| (m.id.as_str(), m.equipment_path.as_str()))
            .collect();
        assert_eq!(
            paths,
            [
                ("TURN-01", "SITE-1/A1/L1/WC-TURN/TURN-01"),
                ("QC-01", "SITE-1/WC-QC/QC-01"),
            ]
        );
        assert_eq!(machines[0].name, "Lathe 1");
        assert_eq!(machines[0].work_centre, "WC-TURN");
        assert_eq!(machines[0].machine_type, "LATHE");

        let Some(stored) = store.run_kpis(run).await? else {
            panic!("the run's kpis were not read back");
        };
        let expected = match serde_json::to_value(&kpis) {
            Ok(serde_json::Value::Object(fields)) => fields,
            other => panic!("kpis do not serialise to an object: {other:?}"),
        };
        assert_eq!(stored.len(), expected.len());
        assert!(stored.len() >= 20, "every numeric KPI is a row: {stored:?}");
        for (name, value) in &expected {
            assert_eq!(stored.get(name).copied(), value.as_f64(), "kpi {name}");
        }
        assert_eq!(stored.get("oee").copied(), Some(kpis.oee));
        assert_eq!(stored.get("failures").copied(), Some(3.0));

        let mut first_done = first.clone();
        first_done.outcome = Some(outcome);
        assert_eq!(
            store.decisions(10).await?,
            vec![second.clone(), first_done.clone()]
        );
        assert_eq!(store.decisions(1).await?, vec![second]);
        assert_eq!(store.decision("D-1").await?, Some(first_done));
        assert_eq!(store.decision("D-404").await?, None);
        store.close().await;
        Ok(())
    }

    async fn saving_the_plant_again_updates_instead_of_duplicating(db) {
        let store = db.open().await;
        let mut plant = plant();
        store.save_plant(&plant).await?;
        plant.machines[0].name = "Lathe 1 (retrofitted)".to_owned();
        store.save_plant(&plant).await?;
        let counts = store.counts().await?;
        assert_eq!((counts.machines, counts.products), (2, 1));
        let machines = store.machines("SITE-1").await?;
        assert_eq!(machines[0].name, "Lathe 1 (retrofitted)");
        store.close().await;
        Ok(())
    }

    async fn a_duplicate_decision_id_is_refused_and_the_first_kept(db) {
        let store = db.open().await;
        let original = decision("D-7", 100);
        store.record_decision(&original).await?;
        let mut rewrite = decision("D-7", 200);
        rewrite.output = json!({"action": "nothing"});
        match store.record_decision(&rewrite).await {
            Err(StoreError::DuplicateDecision(id)) => assert_eq!(id, "D-7"),
            other => panic!("expected a duplicate-decision error, got {other:?}"),
        }
        assert_eq!(store.decisions(10).await?, vec![original]);
        store.close().await;
        Ok(())
    }

    async fn racing_writers_of_one_decision_id_leave_exactly_one(db) {
        let store = db.open().await;
        let writers: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                let mut d = decision("D-race", i);
                d.output = json!({"writer": i});
                tokio::spawn(async move { store.record_decision(&d).await })
            })
            .collect();
        let mut won = 0;
        for writer in writers {
            match writer.await.unwrap_or_else(|e| panic!("writer task failed: {e}")) {
                Ok(()) => won += 1,
                Err(StoreError::DuplicateDecision(id)) => assert_eq!(id, "D-race"),
                Err(e) => return Err(e),
            }
        }
        assert_eq!(won, 1);
        assert_eq!(store.counts().await?.decisions, 1);
        store.close().await;
        Ok(())
    }

    async fn the_database_itself_refuses_to_rewrite_the_ledger(db) {
        let store = db.open().await;
        let mut d = decision("D-1", 1);
        d.outcome = Some(Outcome {
            measured_at: t(2),
            measured: json!({}),
            success: None,
        });
        store.record_decision(&d).await?;
        for sql in [
            "UPDATE decisions SET skill = 'forged'",
            "UPDATE decisions SET confidence = 0.99 WHERE id = 'D-1'",
            "DELETE FROM decisions",
            "UPDATE decision_outcomes SET success = TRUE",
            "DELETE FROM decision_outcomes",
        ] {
            assert_append_only(db.execute_raw(sql).await, sql);
        }
        assert_eq!(store.decision("D-1").await?, Some(d.clone()));
        // Recording outcomes is the one change the ledger allows, and it appends.
        let later = Outcome {
            measured_at: t(3),
            measured: json!({"ok": true}),
            success: Some(true),
        };
        store.record_outcome("D-1", &later).await?;
        d.outcome = Some(later);
        assert_eq!(store.decision("D-1").await?, Some(d));
        store.close().await;
        Ok(())
    }

    async fn every_ledger_record_is_chained_as_an_in_memory_ledger_would_chain_it(db) {
        let store = db.open().await;
        let mut expected = aifactory_assess::Ledger::new();
        for batch in ledger_records() {
            store.append_ledger(&batch).await?;
            for record in batch {
                expected.append(record).expect("records encode");
            }
        }
        // Single-record writes chain on after the batches.
        let later = decision("D-4", 11);
        store.record_decision(&later).await?;
        expected.append(aifactory_core::LedgerRecord::Decision(later)).expect("encodes");
        let chained = store.ledger().await?;
        assert_eq!(chained.len(), 7, "a decision given with its outcome is two entries");
        assert_eq!(chained, expected.entries());
        aifactory_assess::verify_chain(&chained).expect("the stored chain verifies");
        // A batch with a bad record writes nothing.
        let mut forged = vec![aifactory_core::LedgerRecord::Decision(decision("D-5", 12))];
        forged.push(aifactory_core::LedgerRecord::Outcome {
            decision: "D-404".into(),
            outcome: Outcome { measured_at: t(13), measured: json!({}), success: None },
        });
        match store.append_ledger(&forged).await {
            Err(StoreError::UnknownDecision(id)) => assert_eq!(id, "D-404"),
            other => panic!("expected an unknown-decision error, got {other:?}"),
        }
        assert_eq!(store.ledger().await?.len(), 7);
        store.close().await;
        // Reopening chains nothing twice.
        let store = db.open().await;
        assert_eq!(store.ledger().await?, expected.entries());
        for sql in ["UPDATE ledger SET hash = 'x'", "DELETE FROM ledger", "UPDATE model_updates SET skill = 'x'", "DELETE FROM model_updates"] {
            assert_append_only(db.execute_raw(sql).await, sql);
        }
        store.close().await;
        Ok(())
    }

    async fn an_edited_decision_is_named_by_its_ledger_row(db) {
        let why = tampered(&db, "UPDATE decisions SET confidence = 0.99 WHERE id = 'D-2'").await?;
        assert!(why.contains("ledger row 3") && why.contains("decision D-2") && why.contains("edited"), "{why}");
        Ok(())
    }

    async fn an_edited_model_update_is_named_by_its_ledger_row(db) {
        let why = tampered(&db, "UPDATE model_updates SET to_version = '7'").await?;
        assert!(why.contains("ledger row 5") && why.contains("model update of maintenance"), "{why}");
        Ok(())
    }

    async fn a_deleted_outcome_is_named_by_its_ledger_row(db) {
        let why = tampered(&db, "DELETE FROM decision_outcomes WHERE decision_id = 'D-2'").await?;
        assert!(why.contains("ledger row 4") && why.contains("outcome") && why.contains("deleted"), "{why}");
        Ok(())
    }

    async fn a_deleted_chain_entry_is_named_by_its_position(db) {
        let why = tampered(&db, "DELETE FROM decision_outcomes WHERE decision_id = 'D-2'; DELETE FROM ledger WHERE seq = 4").await?;
        assert!(why.contains("ledger row 4") && why.contains("removed"), "{why}");
        Ok(())
    }

    async fn an_emptied_chain_is_named_not_rebuilt(db) {
        let why = tampered(&db, "DELETE FROM ledger").await?;
        assert!(why.contains("D-1") && why.contains("not in the ledger's chain"), "{why}");
        Ok(())
    }

    async fn a_record_inserted_around_the_store_is_named(db) {
        let why = tampered(&db, "INSERT INTO decisions (id, at, skill, stage, inputs_ref, model, model_version, output, confidence, executed_by) VALUES ('D-9', 1, 'rul', 'production', '', 'm', '1', '{}', NULL, 'auto')").await?;
        assert!(why.contains("D-9") && why.contains("not in the ledger's chain"), "{why}");
        Ok(())
    }

    async fn a_store_written_before_the_chain_is_chained_when_opened(db) {
        let store = db.open().await;
        store.close().await;
        // Rows as an older aifactory wrote them: a schema without the chain, no chain entries.
        db.execute_raw("DROP TABLE ledger; DROP TABLE model_updates; DELETE FROM _sqlx_migrations WHERE version = 7; INSERT INTO decisions (id, at, skill, stage, inputs_ref, model, model_version, output, confidence, executed_by) VALUES ('D-1', 1, 'rul', 'production', '', 'm', '1', '{\"a\":1}', 0.5, 'auto'); INSERT INTO decision_outcomes (decision_id, measured_at, measured, success) VALUES ('D-1', 2, '{}', NULL)")
            .await
            .unwrap_or_else(|e| panic!("writing old rows failed: {e}"));
        let store = db.open().await;
        let chained = store.ledger().await?;
        assert_eq!(chained.len(), 2);
        aifactory_assess::verify_chain(&chained).expect("the chain made at open verifies");
        assert!(matches!(&chained[1].record, aifactory_core::LedgerRecord::Outcome { decision, .. } if decision == "D-1"));
        store.close().await;
        Ok(())
    }

    async fn an_outcome_for_an_unknown_decision_is_refused(db) {
        let store = db.open().await;
        store.record_decision(&decision("D-1", 1)).await?;
        let outcome = Outcome {
            measured_at: t(5),
            measured: json!({}),
            success: Some(false),
        };
        match store.record_outcome("D-2", &outcome).await {
            Err(StoreError::UnknownDecision(id)) => assert_eq!(id, "D-2"),
            other => panic!("expected an unknown-decision error, got {other:?}"),
        }
        assert_eq!(store.decision("D-1").await?.and_then(|d| d.outcome), None);
        store.close().await;
        Ok(())
    }

    async fn a_remeasured_outcome_replaces_the_reported_one(db) {
        let store = db.open().await;
        store.record_decision(&decision("D-1", 1)).await?;
        let early = Outcome {
            measured_at: t(5),
            measured: json!({"oee": 0.61}),
            success: Some(false),
        };
        let late = Outcome {
            measured_at: t(9),
            measured: json!({"oee": 0.72}),
            success: Some(true),
        };
        store.record_outcome("D-1", &early).await?;
        store.record_outcome("D-1", &late).await?;
        assert_eq!(
            store.decision("D-1").await?.and_then(|d| d.outcome),
            Some(late)
        );
        store.close().await;
        Ok(())
    }

    async fn decisions_come_newest_first(db) {
        let store = db.open().await;
        for (id, at) in [("D-b", 20), ("D-a", 10), ("D-c", 30), ("D-c2", 30)] {
            store.record_decision(&decision(id, at)).await?;
        }
        let ids: Vec<String> = store
            .decisions(3)
            .await?
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(ids, ["D-c2", "D-c", "D-b"]);
        store.close().await;
        Ok(())
    }

    async fn a_non_finite_confidence_is_refused(db) {
        let store = db.open().await;
        let mut d = decision("D-nan", 1);
        d.confidence = Some(f64::NAN);
        assert!(matches!(
            store.record_decision(&d).await,
            Err(StoreError::Invalid { .. })
        ));
        assert_eq!(store.counts().await?.decisions, 0);
        store.close().await;
        Ok(())
    }

    async fn a_plants_runs_are_listed_oldest_first(db) {
        let store = db.open().await;
        assert!(store.runs("SITE-1").await?.is_empty());
        store.save_plant(&plant()).await?;
        let first = store.start_run(&run_info()).await?;
        let second = store
            .start_run(&RunInfo {
                policy: "plant feed: edd".into(),
                ..run_info()
            })
            .await?;
        let runs = store.runs("SITE-1").await?;
        assert_eq!(
            runs.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            [first, second]
        );
        assert_eq!(runs[1].1.policy, "plant feed: edd");
        assert_eq!(runs[0].1, run_info());
        assert!(store.runs("SITE-2").await?.is_empty());
        store.close().await;
        Ok(())
    }

    async fn a_run_needs_a_saved_plant(db) {
        let store = db.open().await;
        match store.start_run(&run_info()).await {
            Err(StoreError::UnknownPlant(id)) => assert_eq!(id, "SITE-1"),
            other => panic!("expected an unknown-plant error, got {other:?}"),
        }
        store.close().await;
        Ok(())
    }

    async fn data_for_an_unknown_run_is_refused(db) {
        let store = db.open().await;
        let ghost = RunId(99);
        assert!(matches!(
            store.append_events(Some(ghost), &events()).await,
            Err(StoreError::UnknownRun(RunId(99)))
        ));
        assert!(matches!(
            store.append_telemetry(Some(ghost), &telemetry(3)).await,
            Err(StoreError::UnknownRun(RunId(99)))
        ));
        assert!(matches!(
            store.save_kpis(ghost, &kpis()).await,
            Err(StoreError::UnknownRun(RunId(99)))
        ));
        assert_eq!(store.run_kpis(ghost).await?, None);
        assert_eq!(store.run(ghost).await?, None);
        assert_eq!(store.counts().await?, Counts::default());
        store.close().await;
        Ok(())
    }

    async fn a_batch_with_a_nan_reading_stores_nothing(db) {
        let store = db.open().await;
        let mut readings = telemetry(10_000);
        readings[9_999].value = f64::NAN;
        assert!(matches!(
            store.append_telemetry(None, &readings).await,
            Err(StoreError::Invalid { .. })
        ));
        assert_eq!(store.counts().await?.telemetry, 0);
        store.close().await;
        Ok(())
    }

    async fn batches_spanning_many_statements_keep_their_order(db) {
        let store = db.open().await;
        // Several full statements plus a partial one, for both batch writers on both engines.
        let readings = telemetry(30_001);
        store.append_telemetry(None, &readings).await?;
        let many_events: Vec<PlantEvent> = (0..12_345)
            .map(|i| PlantEvent {
                at: t(i),
                kind: EventKind::OperationCompleted,
                machine: Some(format!("M-{}", i % 7)),
                order: (i % 3 != 0).then(|| format!("WO-{i}")),
                detail: json!({"i": i}),
            })
            .collect();
        store.append_events(None, &many_events).await?;
        assert_eq!(store.telemetry(None).await?, readings);
        assert_eq!(store.events(None).await?, many_events);
        store.close().await;
        Ok(())
    }

    async fn new_series_join_known_ones_across_batches(db) {
        let store = db.open().await;
        let first = telemetry(4);
        let mut second = telemetry(12);
        second.push(TelemetryReading {
            at: t(1),
            machine: "NEW-01".to_owned(),
            signal: "pressure_bar".to_owned(),
            value: 1.5,
        });
        store.append_telemetry(None, &first).await?;
        store.append_telemetry(None, &second).await?;
        let mut all = first;
        all.extend(second);
        assert_eq!(store.telemetry(None).await?, all);
        store.close().await;
        Ok(())
    }

    async fn saving_kpis_again_replaces_them(db) {
        let store = db.open().await;
        store.save_plant(&plant()).await?;
        let run = store.start_run(&run_info()).await?;
        let mut k = kpis();
        store.save_kpis(run, &k).await?;
        k.oee = 0.5;
        store.save_kpis(run, &k).await?;
        let stored = store.run_kpis(run).await?;
        assert_eq!(stored.and_then(|s| s.get("oee").copied()), Some(0.5));
        store.close().await;
        Ok(())
    }

    async fn ingested_samples_round_trip_and_a_redelivered_message_is_stored_once(db) {
        let store = db.open().await;
        let first = IngestBatch {
            messages: vec![ingest_message(1, "temp", 1_000, 100), ingest_message(2, "temp", 1_100, 100)],
            quarantined: Vec::new(),
        };
        let r = store.commit_ingest(&first, 5).await?;
        assert_eq!((r.messages, r.duplicates, r.samples, r.chunks), (2, 0, 200, 0), "staged, not yet folded");
        // After a crash the broker redelivers message 2 with a new one.
        let again = IngestBatch {
            messages: vec![ingest_message(2, "temp", 1_100, 100), ingest_message(3, "temp", 1_200, 50)],
            quarantined: Vec::new(),
        };
        let r = store.commit_ingest(&again, 6).await?;
        assert_eq!((r.duplicates, r.samples), (1, 50));
        let got = store.samples(&series("temp"), 0, i64::MAX).await?;
        assert_eq!(got.len(), 250);
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "in time order, no duplicates");
        assert!(got.iter().all(|&(t, v)| v == t as f64 * 0.5));
        assert_eq!(store.samples(&series("temp"), 1_150, 1_160).await?.len(), 11);
        let counts = store.series_counts().await?;
        assert_eq!(counts.get(&series("temp")), Some(&250));
        Ok(())
    }

    async fn ingested_text_values_and_quarantined_messages_are_kept(db) {
        let store = db.open().await;
        let batch = IngestBatch {
            messages: vec![IngestMessage {
                key: None,
                samples: Vec::new(),
                others: vec![
                    OtherSample {
                        series: series("event"),
                        at_ms: 7,
                        value: OtherValue::Text("machine_failed".into()),
                    },
                    OtherSample {
                        series: series("raw"),
                        at_ms: 8,
                        value: OtherValue::Bytes(vec![0, 1, 255]),
                    },
                ],
            }],
            quarantined: vec![QuarantineRow {
                received_ms: 9,
                topic: "spBv1.0/hz/DDATA/line-1/cnc-1".into(),
                reason_kind: "malformed_protobuf".into(),
                reason: "not a Sparkplug B protobuf payload".into(),
                payload: vec![0x0A, 0xFF],
            }],
        };
        let r = store.commit_ingest(&batch, 10).await?;
        assert_eq!((r.others, r.quarantined), (2, 1));
        assert_eq!(
            store.other_samples(&series("event"), 0, 100).await?,
            vec![(7, OtherValue::Text("machine_failed".into()))]
        );
        assert_eq!(
            store.other_samples(&series("raw"), 0, 100).await?,
            vec![(8, OtherValue::Bytes(vec![0, 1, 255]))]
        );
        assert_eq!(store.quarantined(10).await?, batch.quarantined);
        Ok(())
    }

    async fn a_non_finite_ingested_sample_refuses_the_whole_batch(db) {
        let store = db.open().await;
        let mut bad = ingest_message(1, "temp", 0, 3);
        bad.samples[1].value = f64::NAN;
        let batch = IngestBatch {
            messages: vec![ingest_message(2, "temp", 10, 3), bad],
            quarantined: Vec::new(),
        };
        assert!(store.commit_ingest(&batch, 0).await.is_err());
        assert!(store.samples(&series("temp"), 0, i64::MAX).await?.is_empty(), "nothing of a refused batch is stored");
        Ok(())
    }

    async fn rollups_and_latest_values_agree_with_the_raw_samples(db) {
        let store = db.open().await;
        // 150 samples a second apart from 00:00:30: minute buckets 0, 1, 2; hour bucket 0.
        let first = IngestBatch {
            messages: vec![ingest_message(1, "temp", 30_000, 0), ingest_message(1, "temp", 0, 0)],
            quarantined: Vec::new(),
        };
        store.commit_ingest(&first, 1).await?;
        let spaced = |key: u8, from: i64, n: i64| IngestMessage {
            key: Some([key; 16]),
            samples: (0..n)
                .map(|i| Sample { series: series("temp"), at_ms: from + i * 1_000, value: ((from / 1_000 + i) % 7) as f64 })
                .collect(),
            others: Vec::new(),
        };
        let a = IngestBatch { messages: vec![spaced(10, 30_000, 100)], quarantined: Vec::new() };
        let b = IngestBatch { messages: vec![spaced(11, 130_000, 50), spaced(10, 30_000, 100)], quarantined: Vec::new() };
        store.commit_ingest(&a, 2).await?;
        let r = store.commit_ingest(&b, 3).await?;
        assert_eq!(r.duplicates, 1, "the redelivered message is not rolled up twice");
        let raw = store.samples(&series("temp"), 0, i64::MAX).await?;
        assert_eq!(raw.len(), 150);
        let minutes = store.aggregate(&series("temp"), Resolution::Minute, 0, 200_000).await?;
        assert_eq!(minutes.iter().map(|b| b.start_ms).collect::<Vec<_>>(), vec![0, 60_000, 120_000]);
        for bucket in &minutes {
            let inside: Vec<f64> = raw.iter().filter(|(t, _)| (bucket.start_ms..bucket.start_ms + 60_000).contains(t)).map(|p| p.1).collect();
            assert_eq!(bucket.count, inside.len() as u64);
            assert_eq!(bucket.min, inside.iter().copied().fold(f64::INFINITY, f64::min));
            assert_eq!(bucket.max, inside.iter().copied().fold(f64::NEG_INFINITY, f64::max));
            let mean = inside.iter().sum::<f64>() / inside.len() as f64;
            assert!((bucket.mean - mean).abs() < 1e-9, "{} vs {mean}", bucket.mean);
        }
        // A range starting inside a bucket includes that whole bucket; one ending before a
        // bucket starts leaves it out.
        let from_middle = store.aggregate(&series("temp"), Resolution::Minute, 70_000, 119_999).await?;
        assert_eq!(from_middle.iter().map(|b| b.start_ms).collect::<Vec<_>>(), vec![60_000]);
        let hours = store.aggregate(&series("temp"), Resolution::Hour, 0, i64::MAX).await?;
        assert_eq!((hours.len(), hours[0].count), (1, 150));

        // Latest: the newest sample wins even when an older one is committed after it.
        let late = IngestBatch { messages: vec![spaced(12, 5_000, 1)], quarantined: Vec::new() };
        store.commit_ingest(&late, 4).await?;
        let text = IngestBatch {
            messages: vec![IngestMessage {
                key: None,
                samples: Vec::new(),
                others: vec![OtherSample { series: series("state"), at_ms: 9, value: OtherValue::Text("running".into()) }],
            }],
            quarantined: Vec::new(),
        };
        store.commit_ingest(&text, 5).await?;
        let latest = store.latest(Some("hz")).await?;
        assert_eq!(latest.len(), 2);
        assert_eq!((&*latest[0].series.metric, latest[0].at_ms), ("state", 9));
        assert_eq!(latest[0].value, LatestValue::Text("running".into()));
        let last = raw.last().copied().unwrap_or_default();
        assert_eq!((latest[1].at_ms, latest[1].value.clone()), (last.0, LatestValue::Number(last.1)));
        assert!(store.latest(Some("elsewhere")).await?.is_empty());
        assert_eq!(store.latest(None).await?, latest);

        // Folding what is staged into chunks changes the layout, not a single answer.
        let before = (
            store.samples(&series("temp"), 0, i64::MAX).await?,
            store.aggregate(&series("temp"), Resolution::Minute, 0, i64::MAX).await?,
            store.series_counts().await?,
        );
        assert!(store.compact().await? > 0);
        assert_eq!(store.compact().await?, 0, "nothing left to fold");
        let after = (
            store.samples(&series("temp"), 0, i64::MAX).await?,
            store.aggregate(&series("temp"), Resolution::Minute, 0, i64::MAX).await?,
            store.series_counts().await?,
        );
        assert_eq!(before, after);
        assert_eq!(store.latest(None).await?, latest);
        Ok(())
    }

    async fn a_large_commit_folds_what_is_staged_into_chunks_by_itself(db) {
        let store = db.open().await;
        let metrics = ["a", "b", "c", "d", "e"];
        let per_metric = 50_001;
        let messages = metrics
            .iter()
            .enumerate()
            .map(|(k, m)| {
                let mut msg = ingest_message(k as u8, m, 0, per_metric);
                msg.samples.iter_mut().for_each(|s| s.value = (s.at_ms % 97) as f64);
                msg
            })
            .collect();
        let report = store.commit_ingest(&IngestBatch { messages, quarantined: Vec::new() }, 1).await?;
        assert_eq!((report.samples, report.chunks), (5 * per_metric as u64, 5));
        assert_eq!(store.compact().await?, 0, "the commit folded everything already");
        let got = store.samples(&series("c"), 1_000, 1_999).await?;
        assert_eq!(got.len(), 1_000);
        assert!(got.iter().all(|&(t, v)| v == (t % 97) as f64));
        let hour = store.aggregate(&series("e"), Resolution::Hour, 0, 0).await?;
        assert_eq!(hour.len(), 1);
        assert_eq!(hour[0].count, per_metric as u64);
        Ok(())
    }

    async fn retention_deletes_only_what_is_older_than_each_cutoff(db) {
        let store = db.open().await;
        for (key, from) in [(1u8, 0i64), (2, 100_000), (3, 7_200_000)] {
            let batch = IngestBatch {
                messages: vec![ingest_message(key, "temp", from, 10)],
                quarantined: vec![QuarantineRow {
                    received_ms: from,
                    topic: "t".into(),
                    reason_kind: "malformed_json".into(),
                    reason: "r".into(),
                    payload: vec![1],
                }],
            };
            store.commit_ingest(&batch, from).await?;
            // Chunks span what one fold takes in; fold each batch alone so each is a chunk.
            store.compact().await?;
        }
        let report = store
            .prune(&Retention {
                raw_before_ms: Some(100_000),
                minute_rollups_before_ms: Some(7_200_000),
                hour_rollups_before_ms: None,
                message_keys_before_ms: Some(1),
                quarantine_before_ms: Some(100_001),
            })
            .await?;
        assert_eq!((report.chunks, report.rollups, report.message_keys, report.quarantined), (1, 2, 1, 2));
        let left: Vec<i64> = store.samples(&series("temp"), 0, i64::MAX).await?.iter().map(|p| p.0).collect();
        assert_eq!(left.first(), Some(&100_000));
        assert_eq!(left.len(), 20);
        let minutes = store.aggregate(&series("temp"), Resolution::Minute, 0, i64::MAX).await?;
        assert_eq!(minutes.iter().map(|b| b.start_ms).collect::<Vec<_>>(), vec![7_200_000]);
        assert_eq!(store.aggregate(&series("temp"), Resolution::Hour, 0, i64::MAX).await?.len(), 2);
        assert_eq!(store.quarantined(10).await?.len(), 1);
        assert_eq!(store.prune(&Retention::default()).await?, PruneReport::default(), "nothing asked, nothing deleted");
        Ok(())
    }
}

mod sqlite_only {
    use super::*;

    async fn open(path: &Path) -> SqliteStore {
        SqliteStore::open(path)
            .await
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
    }

    #[tokio::test]
    async fn wal_mode_is_on_and_survives_reopening() -> Result<(), StoreError> {
        let dir = tempdir();
        let path = dir.path().join("plant.db");
        let store = open(&path).await;
        assert_eq!(store.journal_mode().await?, "wal");
        store.close().await;
        let store = open(&path).await;
        assert_eq!(store.journal_mode().await?, "wal");
        store.close().await;
        Ok(())
    }

    #[tokio::test]
    async fn a_store_in_memory_starts_empty() -> Result<(), StoreError> {
        let store = Store::open_in_memory().await?;
        assert_eq!(store.engine(), "sqlite");
        assert_eq!(store.counts().await?, Counts::default());
        Ok(())
    }
}

mod postgres_only {
    use super::*;

    #[tokio::test]
    async fn a_bad_url_is_a_connect_error_that_hides_the_password() {
        // No server is needed: the URL fails to parse before any connection is tried.
        match PgStore::open("postgres://app:s3cret@localhost:notaport/plant").await {
            Err(e @ StoreError::Connect { .. }) => {
                let message = e.to_string();
                assert!(!message.contains("s3cret"), "password leaked: {message}");
                assert!(message.contains("app@localhost"), "{message}");
            }
            other => panic!("expected a connect error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_ledger_refuses_truncation() {
        async fn body(db: Arc<TestDb>) -> Result<(), StoreError> {
            let store = db.open().await;
            store.record_decision(&decision("D-1", 1)).await?;
            for sql in ["TRUNCATE decision_outcomes", "TRUNCATE decisions CASCADE"] {
                assert_append_only(db.execute_raw(sql).await, sql);
            }
            assert_eq!(store.counts().await?.decisions, 1);
            store.close().await;
            Ok(())
        }
        run_on(Engine::Postgres, "the_ledger_refuses_truncation", body).await;
    }
}

/// Online backups of the embedded store (`aifactory backup`).
mod backup {
    use super::*;
    use aifactory_store::backup::{backup_sqlite, integrity_check};

    /// A store on disk with every kind of ledger record.
    async fn written_store(dir: &Path) -> Result<PathBuf, StoreError> {
        let path = dir.join("serve.sqlite");
        let store = SqliteStore::open(&path).await?;
        for batch in ledger_records() {
            store.append_ledger(&batch).await?;
        }
        store.close().await;
        Ok(path)
    }

    #[tokio::test]
    async fn a_backup_taken_while_a_writer_appends_is_a_consistent_prefix() -> Result<(), StoreError>
    {
        let dir = tempdir();
        let path = written_store(dir.path()).await?;
        let store = SqliteStore::open(&path).await?;
        // The writer keeps appending decisions while two backups are taken.
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..300 {
                    store
                        .record_decision(&decision(&format!("W-{i}"), 100 + i))
                        .await?;
                }
                Ok::<(), StoreError>(())
            })
        };
        let mut copies = Vec::new();
        for k in 0..2 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let copy = dir.path().join(format!("copy-{k}.sqlite"));
            backup_sqlite(&path, &copy).await?;
            copies.push(copy);
        }
        writer.await.expect("the writer task ran")?;
        let all = store.ledger().await?;
        store.close().await;
        assert_eq!(all.len(), 6 + 300);
        for copy in &copies {
            integrity_check(copy).await?;
            let backup = SqliteStore::open(copy).await?;
            let entries = backup.ledger().await?;
            aifactory_assess::verify_chain(&entries).expect("the copy's chain verifies");
            // A snapshot: exactly the first entries of the store, none torn, none missing.
            assert!(entries.len() >= 6 && entries.len() <= all.len());
            assert_eq!(
                entries.last().map(|e| &e.hash),
                all.get(entries.len() - 1).map(|e| &e.hash)
            );
            backup.close().await;
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_backup_never_overwrites_and_needs_a_sqlite_source() -> Result<(), StoreError> {
        let dir = tempdir();
        let path = written_store(dir.path()).await?;
        let taken = dir.path().join("taken.sqlite");
        std::fs::write(&taken, b"keep me").expect("write");
        let why = backup_sqlite(&path, &taken)
            .await
            .expect_err("must refuse")
            .to_string();
        assert!(why.contains("already exists"), "{why}");
        assert_eq!(std::fs::read(&taken).expect("read"), b"keep me");

        let text = dir.path().join("notes.txt");
        std::fs::write(&text, b"not a database at all, but long enough").expect("write");
        let why = backup_sqlite(&text, &dir.path().join("x.sqlite"))
            .await
            .expect_err("must refuse")
            .to_string();
        assert!(why.contains("not a SQLite database"), "{why}");
        let why = backup_sqlite(
            &dir.path().join("missing.sqlite"),
            &dir.path().join("y.sqlite"),
        )
        .await
        .expect_err("must refuse")
        .to_string();
        assert!(
            why.contains("missing.sqlite") && why.contains("not a file"),
            "{why}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_damaged_copy_fails_the_integrity_check_with_what_sqlite_found()
    -> Result<(), StoreError> {
        let dir = tempdir();
        let path = written_store(dir.path()).await?;
        let copy = dir.path().join("copy.sqlite");
        backup_sqlite(&path, &copy).await?;
        integrity_check(&copy).await?;
        // Scribble over the second half of every page after the first (the schema page stays
        // readable, so the damage is found by the check rather than at open).
        let mut bytes = std::fs::read(&copy).expect("read");
        let page = u16::from_be_bytes([bytes[16], bytes[17]]) as usize;
        let page = if page == 1 { 65_536 } else { page };
        let len = bytes.len();
        for start in (page..len).step_by(page) {
            for b in &mut bytes[start + page / 2..(start + page).min(len)] {
                *b = 0xA5;
            }
        }
        std::fs::write(&copy, &bytes).expect("write");
        match integrity_check(&copy).await {
            Err(StoreError::Corrupt { detail, .. }) => {
                assert!(detail.contains("copy.sqlite"), "{detail}")
            }
            other => panic!("expected a corrupt-file error, got {other:?}"),
        }
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, b"hello").expect("write");
        assert!(matches!(
            integrity_check(&text).await,
            Err(StoreError::Corrupt { .. })
        ));
        Ok(())
    }
}

/// The PostgreSQL backup path docs/OPERATIONS.md gives: `pg_dump` of the store's schema,
/// `pg_restore` into a new database, and the store opened there reads the same chained ledger.
mod backup_pg {
    use super::*;

    /// `url` with its database replaced by `database` (and no query).
    fn with_database(url: &str, database: &str) -> String {
        let base = url.split('?').next().unwrap_or(url);
        match base.rfind('/') {
            Some(i) if i > base.find("//").map_or(0, |j| j + 1) => {
                format!("{}/{database}", &base[..i])
            }
            _ => format!("{base}/{database}"),
        }
    }

    fn run(program: &str, args: &[&str]) -> Result<(), String> {
        let out = std::process::Command::new(program)
            .args(args)
            .output()
            .map_err(|e| format!("{program}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    #[tokio::test]
    async fn pg_dump_and_pg_restore_carry_the_store_and_its_chain() {
        async fn body(db: Arc<TestDb>) -> Result<(), StoreError> {
            let TestDb::Postgres {
                admin_url, schema, ..
            } = &*db
            else {
                unreachable!("run on PostgreSQL only")
            };
            if run("pg_dump", &["--version"]).is_err() {
                println!("skipped: pg_dump is not installed");
                return Ok(());
            }
            let store = db.open().await;
            for batch in ledger_records() {
                store.append_ledger(&batch).await?;
            }
            let original = store.ledger().await?;
            store.close().await;

            let dir = tempdir();
            let dump = dir.path().join("aifactory.dump");
            let dump = dump.to_str().expect("utf-8");
            run(
                "pg_dump",
                &[
                    "--format=custom",
                    &format!("--schema={schema}"),
                    &format!("--file={dump}"),
                    admin_url,
                ],
            )
            .unwrap_or_else(|e| panic!("{e}"));
            let restored_db = format!("{schema}_restored");
            pg_admin(admin_url, &format!("CREATE DATABASE {restored_db}")).await;
            let restored_url = with_database(admin_url, &restored_db);
            let result = async {
                run("pg_restore", &[&format!("--dbname={restored_url}"), dump])
                    .unwrap_or_else(|e| panic!("{e}"));
                let store =
                    Store::open(&format!("{restored_url}?options[search_path]={schema}")).await?;
                let entries = store.ledger().await?;
                aifactory_assess::verify_chain(&entries).expect("the restored chain verifies");
                assert_eq!(entries, original);
                store.close().await;
                // The append-only triggers came back with the schema.
                let sql = "UPDATE decisions SET skill = 'edited'";
                let mut conn = sqlx::PgConnection::connect(&format!(
                    "{restored_url}?options[search_path]={schema}"
                ))
                .await
                .expect("connect to the restored database");
                let edited = sqlx::raw_sql(sql).execute(&mut conn).await.map(drop);
                let _ = conn.close().await;
                assert_append_only(edited, sql);
                Ok::<(), StoreError>(())
            }
            .await;
            pg_admin(admin_url, &format!("DROP DATABASE {restored_db}")).await;
            result
        }
        run_on(
            Engine::Postgres,
            "pg_dump_and_pg_restore_carry_the_store_and_its_chain",
            body,
        )
        .await;
    }
}

/// Stores written by an earlier aifactory (schema 6, before the ledger's hash chain), made by the
/// binary of commit 2d93d09 on SQLite and on PostgreSQL; `tests/fixtures/README.md` says how.
/// This version must open them, migrate them and keep every row.
mod upgrade {
    use super::*;
    use sqlx::Row;
    use std::collections::BTreeMap;

    const SQLITE_FIXTURE: &str = "tests/fixtures/schema6.sqlite";
    const PG_FIXTURE: &str = "tests/fixtures/schema6.pg.sql";
    const PG_FIXTURE_SCHEMA: &str = "fixture_schema6";
    /// The migration the fixtures stop at, and the newest this version has.
    const FIXTURE_SCHEMA: i64 = 6;

    fn fixture(relative: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
    }

    /// Rows per table (every table but SQLite's own), and the newest migration applied.
    async fn sqlite_rows(path: &Path) -> (BTreeMap<String, i64>, i64) {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .read_only(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .expect("open the fixture");
        let tables: Vec<String> = sqlx::query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name <> '_sqlx_migrations' ORDER BY name",
        )
        .fetch_all(&mut conn)
        .await
        .expect("list tables")
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
        let mut rows = BTreeMap::new();
        for table in tables {
            let n: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM \"{table}\""
            )))
            .fetch_one(&mut conn)
            .await
            .expect("count")
            .get(0);
            rows.insert(table, n);
        }
        let version: i64 = sqlx::query("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&mut conn)
            .await
            .expect("migrations")
            .get(0);
        let _ = conn.close().await;
        (rows, version)
    }

    async fn pg_rows(url: &str) -> (BTreeMap<String, i64>, i64) {
        let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
        let tables: Vec<String> = sqlx::query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
             AND table_name <> '_sqlx_migrations' ORDER BY 1",
        )
        .fetch_all(&mut conn)
        .await
        .expect("list tables")
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
        let mut rows = BTreeMap::new();
        for table in tables {
            let n: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM \"{table}\""
            )))
            .fetch_one(&mut conn)
            .await
            .expect("count")
            .get(0);
            rows.insert(table, n);
        }
        let version: i64 = sqlx::query("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&mut conn)
            .await
            .expect("migrations")
            .get(0);
        let _ = conn.close().await;
        (rows, version)
    }

    /// Every table the fixture had keeps its rows; the chain covers every ledger record.
    async fn check_upgraded(
        before: &BTreeMap<String, i64>,
        after: &BTreeMap<String, i64>,
        store: &Store,
    ) -> Result<(), StoreError> {
        assert!(
            before["decisions"] > 0,
            "the fixture has decisions: {before:?}"
        );
        let telemetry = before["telemetry"] + before["ingest_staged"] + before["ingest_chunks"];
        assert!(telemetry > 0, "the fixture has telemetry: {before:?}");
        for (table, n) in before {
            assert_eq!(
                after.get(table),
                Some(n),
                "rows of {table} after the upgrade"
            );
        }
        let entries = store.ledger().await?;
        aifactory_assess::verify_chain(&entries).expect("the chain made at open verifies");
        let outcomes = before.get("decision_outcomes").copied().unwrap_or(0);
        assert_eq!(entries.len() as i64, before["decisions"] + outcomes);
        assert_eq!(after["ledger"], entries.len() as i64);
        // The decisions come back whole, oldest first in the chain.
        assert_eq!(store.counts().await?.decisions as i64, before["decisions"]);
        Ok(())
    }

    #[tokio::test]
    async fn a_sqlite_store_of_the_previous_schema_opens_migrates_and_keeps_every_row()
    -> Result<(), StoreError> {
        let dir = tempdir();
        let path = dir.path().join("old.sqlite");
        std::fs::copy(fixture(SQLITE_FIXTURE), &path).expect("copy the fixture");
        let (before, version) = sqlite_rows(&path).await;
        assert_eq!(
            version, FIXTURE_SCHEMA,
            "the fixture is of the previous schema"
        );
        let store = Store::open(path.to_str().expect("utf-8")).await?;
        let (after, version) = sqlite_rows(&path).await;
        assert!(version > FIXTURE_SCHEMA);
        check_upgraded(&before, &after, &store).await?;
        store.close().await;
        // Reopened, nothing is chained twice.
        let store = Store::open(path.to_str().expect("utf-8")).await?;
        assert_eq!(store.ledger().await?.len() as i64, after["ledger"]);
        store.close().await;
        Ok(())
    }

    #[tokio::test]
    async fn a_store_written_by_a_newer_version_is_refused_not_guessed_at() -> Result<(), StoreError>
    {
        let dir = tempdir();
        let path = dir.path().join("newer.sqlite");
        let store = SqliteStore::open(&path).await?;
        store.close().await;
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .expect("open");
        sqlx::raw_sql(
            "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) \
             SELECT 999, 'from a newer aifactory', installed_on, 1, checksum, 0 FROM _sqlx_migrations LIMIT 1",
        )
        .execute(&mut conn)
        .await
        .expect("a newer migration");
        let _ = conn.close().await;
        match SqliteStore::open(&path).await {
            Err(e @ StoreError::Migrate(_)) => assert!(e.to_string().contains("999"), "{e}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_postgres_store_of_the_previous_schema_opens_migrates_and_keeps_every_row() {
        async fn body(db: Arc<TestDb>) -> Result<(), StoreError> {
            let TestDb::Postgres { url, schema, .. } = &*db else {
                unreachable!("run on PostgreSQL only")
            };
            let dump = std::fs::read_to_string(fixture(PG_FIXTURE)).expect("read the fixture");
            // psql's own commands (`\restrict`) are not SQL; the schema is the test's own.
            let dump: String = dump
                .lines()
                .filter(|line| !line.starts_with('\\'))
                .collect::<Vec<_>>()
                .join("\n");
            let dump = dump
                .replace(&format!("CREATE SCHEMA {PG_FIXTURE_SCHEMA};"), "")
                .replace(&format!("{PG_FIXTURE_SCHEMA}."), &format!("{schema}."));
            db.execute_raw(&dump)
                .await
                .unwrap_or_else(|e| panic!("loading the fixture failed: {e}"));
            let (before, version) = pg_rows(url).await;
            assert_eq!(
                version, FIXTURE_SCHEMA,
                "the fixture is of the previous schema"
            );
            let store = db.open().await;
            let (after, version) = pg_rows(url).await;
            assert!(version > FIXTURE_SCHEMA);
            check_upgraded(&before, &after, &store).await?;
            store.close().await;
            Ok(())
        }
        run_on(
            Engine::Postgres,
            "a_postgres_store_of_the_previous_schema_opens_migrates_and_keeps_every_row",
            body,
        )
        .await;
    }
}
