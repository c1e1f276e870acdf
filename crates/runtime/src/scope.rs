//! Decision ids of a later run on the same store. The skills number their decisions from 1 in
//! every run and the ledger keeps each id once, so a run after the first suffixes every id it
//! writes with its run (`D-12@R2`) — its own ids, the ids its decisions cite and the ids its
//! outcomes answer — and the links between its decisions still hold.

use aifactory_core::LedgerRecord;

/// `id` as the run `scope` writes it.
pub(crate) fn scoped_id(scope: Option<&str>, id: &str) -> String {
    match scope {
        Some(s) => format!("{id}@{s}"),
        None => id.to_owned(),
    }
}

/// A skill's ledger record as a later run on the same store keeps it: every decision id in it —
/// its own, those its inputs cite (`decision:ID`), the one an outcome answers — suffixed with
/// the run's scope, so the links between this run's decisions still hold.
pub(crate) fn scoped_record(record: LedgerRecord, scope: &str) -> LedgerRecord {
    match record {
        LedgerRecord::Decision(mut d) => {
            d.id = format!("{}@{scope}", d.id);
            d.inputs_ref = scoped_citations(&d.inputs_ref, scope);
            LedgerRecord::Decision(d)
        }
        LedgerRecord::Outcome { decision, outcome } => LedgerRecord::Outcome {
            decision: format!("{decision}@{scope}"),
            outcome,
        },
        other => other,
    }
}

/// `inputs_ref` with each cited `decision:ID` made `decision:ID@scope` (tokens end at `;`, `,`
/// or white space, as the assessment reads them).
fn scoped_citations(inputs_ref: &str, scope: &str) -> String {
    const CITE: &str = "decision:";
    let mut out = String::with_capacity(inputs_ref.len());
    let mut rest = inputs_ref;
    while let Some(at) = rest.find(CITE) {
        let (before, cited) = rest.split_at(at + CITE.len());
        out.push_str(before);
        let end = cited
            .find(|c: char| c == ';' || c == ',' || c.is_whitespace())
            .unwrap_or(cited.len());
        out.push_str(&cited[..end]);
        if end > 0 {
            out.push('@');
            out.push_str(scope);
        }
        rest = &cited[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aifactory_core::{Outcome, Timestamp};

    #[test]
    fn a_later_runs_citations_are_scoped_like_its_ids() {
        assert_eq!(
            scoped_citations("decision:D-1; plan@0,decision:M-2 decision:", "R2"),
            "decision:D-1@R2; plan@0,decision:M-2@R2 decision:"
        );
        assert_eq!(scoped_citations("floor@0", "R2"), "floor@0");
        let outcome = LedgerRecord::Outcome {
            decision: "LOOP-7".into(),
            outcome: Outcome {
                measured_at: Timestamp(1),
                measured: serde_json::json!({}),
                success: None,
            },
        };
        assert!(
            matches!(scoped_record(outcome, "R3"), LedgerRecord::Outcome { decision, .. } if decision == "LOOP-7@R3")
        );
    }
}
