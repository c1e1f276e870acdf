//! What both engines share: input checks that run before anything is written, error mapping,
//! and decoding rows back into domain types. Kept engine-neutral so that the two engines cannot
//! drift apart on what they accept or how they read it back.

use crate::StoreError;
use aifactory_core::{Decision, EventKind, Kpis, PlantEvent, TelemetryReading, Timestamp};
use sqlx::{ColumnIndex, Decode, Row, Type};

/// The SELECT every decision read shares: each decision with its latest outcome, if any. It has
/// no placeholders, so each engine appends its own `WHERE` or `ORDER BY`.
macro_rules! decision_select {
    () => {
        "SELECT d.id, d.at, d.skill, d.stage, d.inputs_ref, d.model, d.model_version, d.output, \
         d.confidence, d.executed_by, o.measured_at, o.measured, o.success \
         FROM decisions AS d LEFT JOIN decision_outcomes AS o \
         ON o.seq = (SELECT MAX(seq) FROM decision_outcomes WHERE decision_id = d.id)"
    };
}
pub(crate) use decision_select;

pub(crate) fn write(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError + Copy {
    move |source| StoreError::Write { what, source }
}

pub(crate) fn read(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError + Copy {
    move |source| StoreError::Read { what, source }
}

/// One column of a row; a value of the wrong type is corruption, not a panic.
pub(crate) fn get<'r, R, T>(row: &'r R, column: usize, what: &'static str) -> Result<T, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(column).map_err(|e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

/// A series name from four text columns starting at `first` (site, node, device, metric).
pub(crate) fn series_name<R>(
    row: &R,
    first: usize,
    what: &'static str,
) -> Result<crate::ingest::SeriesName, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(crate::ingest::SeriesName::new(
        get::<_, String>(row, first, what)?,
        get::<_, String>(row, first + 1, what)?,
        get::<_, String>(row, first + 2, what)?,
        get::<_, String>(row, first + 3, what)?,
    ))
}

/// The samples of a staged row from four columns starting at `first` (series ids, timestamps,
/// values, count).
pub(crate) fn staged_row<R>(
    row: &R,
    first: usize,
    what: &'static str,
) -> Result<Vec<crate::ingest::IdSample>, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    staged_columns(row, first, what)?.samples()
}

/// A staged row's four columns (series ids, timestamps, values, count) read out of the row, so
/// decoding can happen away from the async task.
pub(crate) struct StagedColumns {
    ids: Vec<u8>,
    timestamps: Vec<u8>,
    values: Vec<u8>,
    count: i64,
}

impl StagedColumns {
    fn samples(&self) -> Result<Vec<crate::ingest::IdSample>, StoreError> {
        crate::ingest::unstage(&self.ids, &self.timestamps, &self.values, self.count)
    }
}

pub(crate) fn staged_columns<R>(
    row: &R,
    first: usize,
    what: &'static str,
) -> Result<StagedColumns, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(StagedColumns {
        ids: get(row, first, what)?,
        timestamps: get(row, first + 1, what)?,
        values: get(row, first + 2, what)?,
        count: get(row, first + 3, what)?,
    })
}

/// Runs a commit's compression work on tokio's blocking threads. The task awaiting a commit may
/// have its own work meanwhile (ingest decodes the next batch while one commits): done inline,
/// the compression would take that task's thread and the two would run one after the other.
async fn off_thread<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Worker {
            what,
            detail: e.to_string(),
        })?
}

/// Compresses a commit's samples into one staged row, off the async thread.
pub(crate) async fn stage_off_thread(
    samples: Vec<crate::ingest::IdSample>,
) -> Result<Option<crate::ingest::Staged>, StoreError> {
    off_thread("staging telemetry", move || crate::ingest::stage(&samples)).await
}

/// Decodes staged rows and folds them into per-series chunks, off the async thread.
pub(crate) async fn fold_off_thread(
    rows: Vec<StagedColumns>,
) -> Result<std::collections::BTreeMap<i64, crate::ingest::Chunk>, StoreError> {
    off_thread("folding staged telemetry", move || {
        let mut samples = Vec::new();
        for r in &rows {
            samples.extend(r.samples()?);
        }
        crate::ingest::build_chunks(samples.into_iter())
    })
    .await
}

pub(crate) fn finite(what: &'static str, field: &str, value: f64) -> Result<(), StoreError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            what,
            detail: format!("{field} is {value}; only finite numbers can be stored"),
        })
    }
}

pub(crate) fn to_json(value: &serde_json::Value, what: &'static str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid {
        what,
        detail: e.to_string(),
    })
}

pub(crate) fn json(text: &str, what: &'static str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what,
        detail: format!("invalid json: {e}"),
    })
}

pub(crate) fn event_kind(text: &str) -> Result<EventKind, StoreError> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).map_err(|_| {
        StoreError::Corrupt {
            what: "event",
            detail: format!("unknown event kind `{text}`"),
        }
    })
}

/// Every event's detail as JSON text, encoded up front so that a bad detail fails the batch
/// before anything is written.
pub(crate) fn event_details(events: &[PlantEvent]) -> Result<Vec<String>, StoreError> {
    events
        .iter()
        .map(|e| serde_json::to_string(&e.detail))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Invalid {
            what: "event detail",
            detail: e.to_string(),
        })
}

/// Refuses a telemetry batch holding a non-finite value: SQLite would store NaN as NULL and lose
/// the reading, and both engines must accept exactly the same input.
pub(crate) fn check_readings(readings: &[TelemetryReading]) -> Result<(), StoreError> {
    match readings
        .iter()
        .enumerate()
        .find(|(_, r)| !r.value.is_finite())
    {
        None => Ok(()),
        Some((i, r)) => Err(StoreError::Invalid {
            what: "telemetry",
            detail: format!(
                "reading {i} ({}/{} at {}) is {}; only finite values can be stored",
                r.machine, r.signal, r.at, r.value
            ),
        }),
    }
}

/// A run's KPIs as (name, value) rows, one per numeric field of [`Kpis`], refusing any that is
/// not a finite number.
pub(crate) fn kpi_rows(kpis: &Kpis) -> Result<Vec<(String, f64)>, StoreError> {
    const WHAT: &str = "kpis";
    let value = serde_json::to_value(kpis).map_err(|e| StoreError::Invalid {
        what: WHAT,
        detail: e.to_string(),
    })?;
    let serde_json::Value::Object(fields) = value else {
        return Err(StoreError::Invalid {
            what: WHAT,
            detail: format!("expected an object of numbers, got {value}"),
        });
    };
    // serde_json writes a non-finite number as null, so null here means NaN or infinity.
    let mut rows = Vec::with_capacity(fields.len());
    for (name, field) in fields {
        match field.as_f64() {
            Some(v) if v.is_finite() => rows.push((name, v)),
            _ => {
                return Err(StoreError::Invalid {
                    what: WHAT,
                    detail: format!("kpi `{name}` is {field}, not a finite number"),
                });
            }
        }
    }
    Ok(rows)
}

/// A row of `SELECT at, kind, machine, order_id, detail FROM events`.
pub(crate) fn decode_event<'r, R>(row: &'r R) -> Result<PlantEvent, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    const WHAT: &str = "event";
    let kind: String = get(row, 1, WHAT)?;
    let detail: String = get(row, 4, WHAT)?;
    Ok(PlantEvent {
        at: Timestamp(get(row, 0, WHAT)?),
        kind: event_kind(&kind)?,
        machine: get(row, 2, WHAT)?,
        order: get(row, 3, WHAT)?,
        detail: json(&detail, "event detail")?,
    })
}

/// A row of `SELECT at, machine, signal, value` over telemetry joined with its series.
pub(crate) fn decode_reading<'r, R>(row: &'r R) -> Result<TelemetryReading, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    f64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    const WHAT: &str = "telemetry";
    Ok(TelemetryReading {
        at: Timestamp(get(row, 0, WHAT)?),
        machine: get(row, 1, WHAT)?,
        signal: get(row, 2, WHAT)?,
        value: get(row, 3, WHAT)?,
    })
}

/// A row of [`decision_select!`]: the decision's columns as the ledger reads them, then its
/// latest outcome, if any.
pub(crate) fn decode_decision<'r, R>(row: &'r R) -> Result<Decision, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    f64: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let id: String = get(row, 0, "decision")?;
    let mut decision = crate::chain::decode_decision_at(row, 0, id)?;
    let measured_at: Option<i64> = get(row, 10, "decision")?;
    if measured_at.is_some() {
        decision.outcome = Some(crate::chain::decode_outcome_at(row, 10)?);
    }
    Ok(decision)
}

/// A count read back as a signed integer; a negative one can only be corruption.
pub(crate) fn count(n: i64, what: &'static str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt {
        what,
        detail: format!("negative count {n}"),
    })
}

/// A proposal both engines keep faithfully: finite hours (SQLite would keep NaN as NULL).
pub(crate) fn check_proposal(p: &crate::NewProposal) -> Result<(), StoreError> {
    finite("proposal", "hours", p.hours)
}

/// A token row: sha256, id, user, role, kind, issued, expires, revoked at, revoked by.
pub(crate) fn token_of<R>(r: &R, what: &'static str) -> Result<crate::StoredToken, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(crate::StoredToken {
        sha256: get(r, 0, what)?,
        id: get(r, 1, what)?,
        user: get(r, 2, what)?,
        role: get(r, 3, what)?,
        kind: get(r, 4, what)?,
        issued_at: Timestamp(get(r, 5, what)?),
        expires_at: Timestamp(get(r, 6, what)?),
        revoked_at: get::<_, Option<i64>>(r, 7, what)?.map(Timestamp),
        revoked_by: get(r, 8, what)?,
    })
}

/// A proposal row, in the column order both engines select.
pub(crate) fn proposal_of<R>(r: &R, what: &'static str) -> Result<crate::StoredProposal, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(crate::StoredProposal {
        seq: get(r, 0, what)?,
        proposal: crate::NewProposal {
            created_at: Timestamp(get(r, 1, what)?),
            requested_by: get(r, 2, what)?,
            role: get(r, 3, what)?,
            via: get(r, 4, what)?,
            kind: get(r, 5, what)?,
            machine: get(r, 6, what)?,
            hours: get(r, 7, what)?,
            summary: get(r, 8, what)?,
            plan_decision: get(r, 9, what)?,
        },
        status: get(r, 10, what)?,
        decided_by: get(r, 11, what)?,
        decided_at: get::<_, Option<i64>>(r, 12, what)?.map(Timestamp),
        decision: get(r, 13, what)?,
    })
}
