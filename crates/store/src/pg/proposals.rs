//! What-if proposals: numbered by a sequence that never gives a number twice, decided once.

use super::PgStore;
use crate::common::{check_proposal, get, proposal_of, read, write};
use crate::{NewProposal, StoreError, StoredProposal};
use aifactory_core::Timestamp;

impl PgStore {
    /// Keeps a new proposal, pending; its number, never given before.
    pub async fn add_proposal(&self, p: &NewProposal) -> Result<i64, StoreError> {
        const WHAT: &str = "proposal";
        check_proposal(p)?;
        let mut tx = self.begin(WHAT).await?;
        let row = sqlx::query(
            "INSERT INTO proposals (created_at, requested_by, role, via, kind, machine, hours, \
             summary, plan_decision, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending') \
             RETURNING seq",
        )
        .bind(p.created_at.0)
        .bind(p.requested_by.as_str())
        .bind(p.role.as_str())
        .bind(p.via.as_str())
        .bind(p.kind.as_str())
        .bind(p.machine.as_str())
        .bind(p.hours)
        .bind(p.summary.as_str())
        .bind(p.plan_decision.as_deref())
        .fetch_one(&mut *tx)
        .await
        .map_err(write(WHAT))?;
        let seq: i64 = get(&row, 0, WHAT)?;
        tx.commit().await.map_err(write(WHAT))?;
        Ok(seq)
    }

    /// One proposal by number.
    pub async fn proposal(&self, seq: i64) -> Result<Option<StoredProposal>, StoreError> {
        const WHAT: &str = "proposal";
        let row = sqlx::query(
            "SELECT seq, created_at, requested_by, role, via, kind, machine, hours, summary, \
             plan_decision, status, decided_by, decided_at, decision \
             FROM proposals WHERE seq = $1",
        )
        .bind(seq)
        .fetch_optional(&self.pool)
        .await
        .map_err(read(WHAT))?;
        row.map(|r| proposal_of(&r, WHAT)).transpose()
    }

    /// Proposals, newest first; only those in `status` when given.
    pub async fn proposals(
        &self,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredProposal>, StoreError> {
        const WHAT: &str = "proposals";
        let rows = sqlx::query(
            "SELECT seq, created_at, requested_by, role, via, kind, machine, hours, summary, \
             plan_decision, status, decided_by, decided_at, decision \
             FROM proposals WHERE ($1::TEXT IS NULL OR status = $1) ORDER BY seq DESC LIMIT $2",
        )
        .bind(status)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(read(WHAT))?;
        rows.iter().map(|r| proposal_of(r, WHAT)).collect()
    }

    /// Moves proposal `seq` from `from` to `to`, setting who decided, when, and the ledger entry,
    /// and says whether it did: of two deciders racing for one proposal, exactly one wins.
    pub async fn transition_proposal(
        &self,
        seq: i64,
        from: &str,
        to: &str,
        decided_by: Option<&str>,
        decided_at: Option<Timestamp>,
        decision: Option<&str>,
    ) -> Result<bool, StoreError> {
        const WHAT: &str = "proposal";
        let mut tx = self.begin(WHAT).await?;
        let done = sqlx::query(
            "UPDATE proposals SET status = $1, decided_by = $2, decided_at = $3, decision = $4 \
             WHERE seq = $5 AND status = $6",
        )
        .bind(to)
        .bind(decided_by)
        .bind(decided_at.map(|t| t.0))
        .bind(decision)
        .bind(seq)
        .bind(from)
        .execute(&mut *tx)
        .await
        .map_err(write(WHAT))?
        .rows_affected();
        tx.commit().await.map_err(write(WHAT))?;
        Ok(done == 1)
    }
}
