//! A store's evidence for the tier assessment: its ledger (decisions, outcomes and model
//! updates, oldest first, with the hash chain the store keeps, verified) and its data coverage.
//! One definition for `aifactory assess --db` and `GET /api/v1/assessment`.

use aifactory_assess::{ChainError, Coverage, Ledger};
use aifactory_store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store's chain does not verify: a record was edited, removed or inserted behind it.
    #[error("the store's ledger does not verify")]
    Chain(#[from] ChainError),
}

impl EvidenceError {
    /// The error with its cause, in one line (for an API body, which has no source chain).
    pub fn explain(&self) -> String {
        match self {
            EvidenceError::Chain(e) => format!("{self}: {e}"),
            EvidenceError::Store(e) => e.to_string(),
        }
    }

    /// Whether the evidence itself was tampered with (as opposed to the store being unreachable).
    pub fn is_tampering(&self) -> bool {
        matches!(
            self,
            EvidenceError::Chain(_)
                | EvidenceError::Store(
                    StoreError::LedgerRecordMissing { .. } | StoreError::Unchained { .. }
                )
        )
    }
}

/// The ledger `store` keeps, its chain verified, and its coverage: machines from master data (or at least
/// those seen streaming), streaming = machines with recorded telemetry or ingested series.
pub async fn read(store: &Store) -> Result<(Ledger, Coverage), EvidenceError> {
    let ledger = Ledger::from_entries(store.ledger().await?)?;
    let counts = store.counts().await?;
    let mut streaming: std::collections::BTreeSet<String> =
        store.streaming_machines().await?.into_iter().collect();
    streaming.extend(
        store
            .series_counts()
            .await?
            .into_iter()
            .filter(|(series, n)| *n > 0 && !series.device.is_empty())
            .map(|(series, _)| series.device.to_string()),
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
