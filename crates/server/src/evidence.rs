//! A store's evidence for the tier assessment: its decisions as a ledger (oldest first) and its
//! data coverage. One definition for `aifactory assess --db` and `GET /api/v1/assessment`.

use aifactory_assess::{Coverage, Ledger};
use aifactory_core::LedgerRecord;
use aifactory_store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("decision {0} could not be encoded for the ledger")]
    Encode(String),
}

/// The ledger of `store`'s decisions and its coverage: machines from master data (or at least
/// those seen streaming), streaming = machines with recorded telemetry or ingested series.
pub async fn read(store: &Store) -> Result<(Ledger, Coverage), EvidenceError> {
    let mut decisions = store.decisions(u32::MAX).await?;
    // The store lists newest first; the ledger runs oldest first.
    decisions.reverse();
    let mut ledger = Ledger::new();
    for d in decisions {
        let id = d.id.clone();
        ledger
            .append(LedgerRecord::Decision(d))
            .map_err(|_| EvidenceError::Encode(id))?;
    }
    let counts = store.counts().await?;
    let mut streaming: std::collections::BTreeSet<String> =
        store.streaming_machines().await?.into_iter().collect();
    streaming.extend(
        store
            .series_counts()
            .await?
            .into_iter()
            .filter(|(series, n)| *n > 0 && !series.device.is_empty())
            .map(|(series, _)| series.device),
    );
    let days = match (ledger.entries().first(), ledger.entries().last()) {
        (Some(a), Some(b)) => (b.record.at().0 - a.record.at().0).max(0) as f64 / 86_400_000.0,
        _ => 0.0,
    };
    let machines = counts.machines.max(streaming.len() as u64);
    let coverage = Coverage {
        machines: u32::try_from(machines).unwrap_or(u32::MAX),
        machines_streaming: u32::try_from(streaming.len()).unwrap_or(u32::MAX),
        days,
    };
    Ok((ledger, coverage))
}
