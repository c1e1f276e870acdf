//! The store: a plant's master data (the ISA-95 hierarchy, products, materials), plant events,
//! telemetry, simulation runs with their KPIs, and the decision ledger, on SQLite (one file in
//! WAL mode) or PostgreSQL, each with its own versioned migrations.
//!
//! This crate owns *persistence*, not meaning. It never interprets a KPI, a decision or an event
//! (it stores what it is handed and gives back exactly that), never reads the wall clock (every
//! instant comes from the caller), never overwrites or deletes a ledger entry (on either engine
//! the database itself refuses to), never accepts on one engine what the other would refuse, and
//! never panics on what it reads back: a row that does not decode is a [`StoreError::Corrupt`].
//!
//! # Engines
//!
//! [`SqliteStore`] (one file, one writer connection and a few readers) and [`PgStore`] (one
//! connection pool) have the same inherent async methods with the same argument and return
//! types and the same contract; `tests/store.rs` runs one conformance suite on both. Input
//! checks and row decoding are shared (`common.rs`), so the engines cannot drift on what they
//! accept or how they read it back.
//!
//! Each engine has its own migrations folder: `migrations/` for SQLite and `migrations_pg/` for
//! PostgreSQL. The PostgreSQL schema is the SQLite one with identity sequence columns,
//! `DOUBLE PRECISION`, a `BOOLEAN` outcome flag and PL/pgSQL triggers that refuse `UPDATE`,
//! `DELETE` and `TRUNCATE` on the ledger tables. Bulk writes are chunked multi-row `VALUES` on
//! SQLite and `UNNEST` of one array per column on PostgreSQL.
//!
//! [`Store`] holds either engine, chosen by a file path versus a `postgres://` URL, and forwards
//! each method. An enum rather than a `dyn` trait because async methods are not object-safe
//! without boxing every future, and there will only ever be these two engines.

pub mod backup;
mod chain;
mod common;
mod error;
pub mod ingest;
mod pg;
mod sqlite;
mod store;

use aifactory_core::Timestamp;
use std::fmt;

pub use error::StoreError;
pub use pg::PgStore;
pub use sqlite::SqliteStore;
pub use store::{Store, is_postgres_url};

/// The id of one simulation run. Data stored with no run (`None`) is live plant data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunId(pub i64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What identifies a simulation run: enough to reproduce it from its plant file.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    /// The site id of the plant file the run simulated; the plant must be saved first.
    pub plant_id: String,
    pub seed: u64,
    /// The policy (or tier configuration) the run used, e.g. `"baseline"`.
    pub policy: String,
    pub sim_days: f64,
    /// When the run started, as the caller's clock says.
    pub started_at: Timestamp,
}

/// A machine as stored in the master data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineRecord {
    pub id: String,
    pub name: String,
    pub work_centre: String,
    pub machine_type: String,
    /// `site/area/line/work centre/machine`, absent levels skipped.
    pub equipment_path: String,
}

/// A user of `aifactory serve`, as stored: the password only as its argon2 hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUser {
    pub name: String,
    pub password_hash: String,
    pub role: String,
}

/// A token, as stored: only its SHA-256 (hex), its public id, who it stands for, its kind
/// (`login` or `api`), when it was issued, when it expires and, once revoked, when and by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub sha256: String,
    /// What lists and revocations name it by: never the token or its hash.
    pub id: String,
    pub user: String,
    pub role: String,
    pub kind: String,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub revoked_by: Option<String>,
}

/// A what-if proposal before the store numbers it: what was asked, by whom, by which path.
#[derive(Debug, Clone, PartialEq)]
pub struct NewProposal {
    pub created_at: Timestamp,
    pub requested_by: String,
    pub role: String,
    /// `api`, `agent`, `mcp`, …: the path the request came by.
    pub via: String,
    /// `machine_down`.
    pub kind: String,
    pub machine: String,
    pub hours: f64,
    pub summary: String,
    /// The plan decision it was computed against.
    pub plan_decision: Option<String>,
}

/// A proposal as stored: numbered by a sequence that never gives a number twice, decided once.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredProposal {
    pub seq: i64,
    pub proposal: NewProposal,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<Timestamp>,
    /// The ledger entry an approval wrote.
    pub decision: Option<String>,
}

/// An agent's acting tool call as stored: what was asked, by whom, through which path, and
/// what became of it (`pending`, `approved`, `rejected`, `executed`, `failed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAction {
    pub id: String,
    pub created_at: Timestamp,
    pub conversation: Option<String>,
    pub tool: String,
    /// The call's arguments, JSON.
    pub arguments: String,
    pub requested_by: String,
    pub role: String,
    /// `api`, `web`, `cli`, `mcp`, …: the path the call came by.
    pub via: String,
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<Timestamp>,
    /// What executing it returned (or the error), JSON.
    pub result: Option<String>,
}

/// One step of an agent conversation in the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub conversation: String,
    pub step: u32,
    pub at: Timestamp,
    pub user: String,
    pub role: String,
    pub via: String,
    /// `question`, `model`, `tool_call`, `tool_result`, `policy`, `answer`, `error`, …
    pub kind: String,
    /// JSON.
    pub content: String,
}

/// The tokens and time one model call used, for metering per user and skill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    pub at: Timestamp,
    pub conversation: String,
    pub user: String,
    /// The tool the call led to, or `answer` for a final answer.
    pub skill: String,
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub elapsed_ms: u64,
}

/// Usage summed per (user, skill, model).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageTotal {
    pub user: String,
    pub skill: String,
    pub model: String,
    pub calls: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub elapsed_ms: u64,
}

/// How many rows each kind of record has, for status pages and sanity checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub runs: u64,
    pub events: u64,
    pub telemetry: u64,
    pub decisions: u64,
    pub machines: u64,
    pub products: u64,
}
