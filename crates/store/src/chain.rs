//! The ledger's hash chain as both engines keep it: every decision, outcome and model update
//! gets a row in `ledger` (its position, the previous entry's hash and its own) in the same
//! transaction that writes it, so the store itself — not only an evidence bundle made from it —
//! shows an edited, removed or inserted record. The hash is `aifactory_assess::ledger`'s, so a
//! store's chain and an in-memory ledger of the same records agree entry for entry.

use crate::StoreError;
use crate::common::{finite, get, json, to_json};
use aifactory_assess::LedgerEntry;
use aifactory_core::{Decision, ExecutedBy, LedgerRecord, LifecycleStage, Outcome, Timestamp};
use sqlx::{ColumnIndex, Decode, Row, Type};

/// Every ledger entry with the record it chains, oldest first. `LEFT JOIN`s, so an entry whose
/// record was deleted still comes back (with NULLs) and can be named. No placeholders.
pub(crate) const LEDGER_SELECT: &str = "SELECT l.seq, l.kind, l.row_seq, l.prev, l.hash, \
     d.id, d.at, d.skill, d.stage, d.inputs_ref, d.model, d.model_version, d.output, \
     d.confidence, d.executed_by, \
     o.decision_id, o.measured_at, o.measured, o.success, \
     m.at, m.skill, m.model, m.from_version, m.to_version, m.triggered_by \
     FROM ledger AS l \
     LEFT JOIN decisions AS d ON l.kind = 'decision' AND d.seq = l.row_seq \
     LEFT JOIN decision_outcomes AS o ON l.kind = 'outcome' AND o.seq = l.row_seq \
     LEFT JOIN model_updates AS m ON l.kind = 'model_update' AND m.seq = l.row_seq \
     ORDER BY l.seq";

/// The first record in a ledger table that no chain entry points at: written by something that
/// went around the store (or a store from before the chain, chained at open instead).
pub(crate) const UNCHAINED_SELECT: &str = "SELECT 'decision', d.id FROM decisions AS d \
     WHERE NOT EXISTS (SELECT 1 FROM ledger AS l WHERE l.kind = 'decision' AND l.row_seq = d.seq) \
     UNION ALL SELECT 'outcome', o.decision_id FROM decision_outcomes AS o \
     WHERE NOT EXISTS (SELECT 1 FROM ledger AS l WHERE l.kind = 'outcome' AND l.row_seq = o.seq) \
     UNION ALL SELECT 'model update', m.skill FROM model_updates AS m \
     WHERE NOT EXISTS (SELECT 1 FROM ledger AS l WHERE l.kind = 'model_update' AND l.row_seq = m.seq) \
     LIMIT 1";

/// The chain's columns in a ledger row, as the `kind` column spells them.
pub(crate) fn kind(record: &LedgerRecord) -> &'static str {
    match record {
        LedgerRecord::Decision(_) => "decision",
        LedgerRecord::Outcome { .. } => "outcome",
        LedgerRecord::ModelUpdate { .. } => "model_update",
    }
}

/// A record made ready to write: its JSON columns encoded and checked up front, so a bad
/// record fails the batch before anything is written.
pub(crate) enum Prepared<'a> {
    Decision {
        decision: &'a Decision,
        output: String,
    },
    Outcome {
        decision: &'a str,
        outcome: &'a Outcome,
        measured: String,
    },
    ModelUpdate {
        at: Timestamp,
        skill: &'a str,
        model: &'a str,
        from_version: &'a str,
        to_version: &'a str,
        trigger: &'a str,
    },
}

/// The records to write, in chain order: a decision handed in with its outcome becomes two
/// entries (the decision without it, then the outcome), as in an in-memory ledger.
pub(crate) fn entries(records: &[LedgerRecord]) -> Vec<LedgerRecord> {
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        match record {
            LedgerRecord::Decision(d) if d.outcome.is_some() => {
                let mut d = d.clone();
                let outcome = d.outcome.take();
                let id = d.id.clone();
                out.push(LedgerRecord::Decision(d));
                if let Some(outcome) = outcome {
                    out.push(LedgerRecord::Outcome {
                        decision: id,
                        outcome,
                    });
                }
            }
            other => out.push(other.clone()),
        }
    }
    out
}

pub(crate) fn prepare(record: &LedgerRecord) -> Result<Prepared<'_>, StoreError> {
    Ok(match record {
        LedgerRecord::Decision(d) => {
            if let Some(c) = d.confidence {
                finite("decision", "confidence", c)?;
            }
            Prepared::Decision {
                decision: d,
                output: to_json(&d.output, "decision output")?,
            }
        }
        LedgerRecord::Outcome { decision, outcome } => Prepared::Outcome {
            decision,
            outcome,
            measured: to_json(&outcome.measured, "decision outcome")?,
        },
        LedgerRecord::ModelUpdate {
            at,
            skill,
            model,
            from_version,
            to_version,
            trigger,
        } => Prepared::ModelUpdate {
            at: *at,
            skill,
            model,
            from_version,
            to_version,
            trigger,
        },
    })
}

/// The hash of the entry at `seq` after `prev`.
pub(crate) fn hash(seq: i64, prev: &str, record: &LedgerRecord) -> Result<String, StoreError> {
    let seq = u64::try_from(seq).map_err(|_| StoreError::Corrupt {
        what: "ledger",
        detail: format!("sequence number {seq}"),
    })?;
    aifactory_assess::ledger::entry_hash(seq, prev, record).map_err(|e| StoreError::Invalid {
        what: "ledger entry",
        detail: e.to_string(),
    })
}

/// One row of [`LEDGER_SELECT`] as a chain entry; an entry whose record is gone is an error
/// naming the entry.
pub(crate) fn decode_entry<'r, R>(row: &'r R) -> Result<LedgerEntry, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    f64: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    const WHAT: &str = "ledger";
    let seq: i64 = get(row, 0, WHAT)?;
    let kind: String = get(row, 1, WHAT)?;
    let row_seq: i64 = get(row, 2, WHAT)?;
    let missing = || StoreError::LedgerRecordMissing {
        seq,
        kind: kind.replace('_', " "),
        row_seq,
    };
    let record = match kind.as_str() {
        "decision" => {
            let id: Option<String> = get(row, 5, WHAT)?;
            LedgerRecord::Decision(decode_decision_at(row, 5, id.ok_or_else(missing)?)?)
        }
        "outcome" => {
            let decision: Option<String> = get(row, 15, WHAT)?;
            LedgerRecord::Outcome {
                decision: decision.ok_or_else(missing)?,
                outcome: decode_outcome_at(row, 16)?,
            }
        }
        "model_update" => {
            let at: Option<i64> = get(row, 19, WHAT)?;
            LedgerRecord::ModelUpdate {
                at: Timestamp(at.ok_or_else(missing)?),
                skill: get(row, 20, WHAT)?,
                model: get(row, 21, WHAT)?,
                from_version: get(row, 22, WHAT)?,
                to_version: get(row, 23, WHAT)?,
                trigger: get(row, 24, WHAT)?,
            }
        }
        other => {
            return Err(StoreError::Corrupt {
                what: WHAT,
                detail: format!("ledger row {seq} has unknown kind `{other}`"),
            });
        }
    };
    let seq = u64::try_from(seq).map_err(|_| StoreError::Corrupt {
        what: WHAT,
        detail: format!("sequence number {seq}"),
    })?;
    Ok(LedgerEntry {
        seq,
        record,
        prev: get(row, 3, WHAT)?,
        hash: get(row, 4, WHAT)?,
    })
}

/// A decision (without outcome) from the ten columns starting at `first` (id first).
pub(crate) fn decode_decision_at<'r, R>(
    row: &'r R,
    first: usize,
    id: String,
) -> Result<Decision, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    f64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    const WHAT: &str = "decision";
    let stage: String = get(row, first + 3, WHAT)?;
    let output: String = get(row, first + 7, WHAT)?;
    let executed_by: String = get(row, first + 9, WHAT)?;
    let corrupt = |e: aifactory_core::decision::UnknownVariant| StoreError::Corrupt {
        what: WHAT,
        detail: format!("decision `{id}`: {e}"),
    };
    Ok(Decision {
        at: Timestamp(get(row, first + 1, WHAT)?),
        skill: get(row, first + 2, WHAT)?,
        stage: stage.parse::<LifecycleStage>().map_err(corrupt)?,
        inputs_ref: get(row, first + 4, WHAT)?,
        model: get(row, first + 5, WHAT)?,
        model_version: get(row, first + 6, WHAT)?,
        output: json(&output, "decision output")?,
        confidence: get(row, first + 8, WHAT)?,
        executed_by: executed_by.parse::<ExecutedBy>().map_err(corrupt)?,
        outcome: None,
        id,
    })
}

/// An outcome from the three columns starting at `first` (measured_at, measured, success).
pub(crate) fn decode_outcome_at<'r, R>(row: &'r R, first: usize) -> Result<Outcome, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    const WHAT: &str = "decision outcome";
    let measured: String = get(row, first + 1, WHAT)?;
    Ok(Outcome {
        measured_at: Timestamp(get(row, first, WHAT)?),
        measured: json(&measured, WHAT)?,
        success: get(row, first + 2, WHAT)?,
    })
}

/// The records of a store from before the chain, each with its row's `seq`: decision rows
/// (`seq`, then the decision's ten columns) in order, then outcome rows (`seq`, `decision_id`,
/// then the outcome's three columns).
pub(crate) fn unchained_records<R>(
    decisions: &[R],
    outcomes: &[R],
) -> Result<Vec<(i64, LedgerRecord)>, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    const WHAT: &str = "ledger";
    let mut records = Vec::with_capacity(decisions.len() + outcomes.len());
    for row in decisions {
        let id = get(row, 1, WHAT)?;
        records.push((
            get(row, 0, WHAT)?,
            LedgerRecord::Decision(decode_decision_at(row, 1, id)?),
        ));
    }
    for row in outcomes {
        records.push((
            get(row, 0, WHAT)?,
            LedgerRecord::Outcome {
                decision: get(row, 1, WHAT)?,
                outcome: decode_outcome_at(row, 2)?,
            },
        ));
    }
    Ok(records)
}

/// The error for the first record [`UNCHAINED_SELECT`] found.
pub(crate) fn unchained(kind: String, name: String) -> StoreError {
    StoreError::Unchained { kind, name }
}
