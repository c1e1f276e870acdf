//! The agent platform's records: actions awaiting approval, the audit log, token metering.

use super::SqliteStore;
use crate::common::{get, read, write};
use crate::{AuditEntry, StoreError, StoredAction, UsageRecord, UsageTotal};
use aifactory_core::Timestamp;

fn action_of(r: &sqlx::sqlite::SqliteRow, what: &'static str) -> Result<StoredAction, StoreError> {
    Ok(StoredAction {
        id: get(r, 0, what)?,
        created_at: Timestamp(get(r, 1, what)?),
        conversation: get(r, 2, what)?,
        tool: get(r, 3, what)?,
        arguments: get(r, 4, what)?,
        requested_by: get(r, 5, what)?,
        role: get(r, 6, what)?,
        via: get(r, 7, what)?,
        status: get(r, 8, what)?,
        decided_by: get(r, 9, what)?,
        decided_at: get::<_, Option<i64>>(r, 10, what)?.map(Timestamp),
        result: get(r, 11, what)?,
    })
}

fn count(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn uncount(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl SqliteStore {
    /// Queues an action; the same id twice is an error.
    pub async fn save_action(&self, action: &StoredAction) -> Result<(), StoreError> {
        const WHAT: &str = "agent action";
        let mut tx = self.begin_write(WHAT).await?;
        sqlx::query(
            "INSERT INTO agent_actions (id, created_at, conversation, tool, arguments, \
             requested_by, role, via, status, decided_by, decided_at, result) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(action.id.as_str())
        .bind(action.created_at.0)
        .bind(action.conversation.as_deref())
        .bind(action.tool.as_str())
        .bind(action.arguments.as_str())
        .bind(action.requested_by.as_str())
        .bind(action.role.as_str())
        .bind(action.via.as_str())
        .bind(action.status.as_str())
        .bind(action.decided_by.as_deref())
        .bind(action.decided_at.map(|t| t.0))
        .bind(action.result.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(write(WHAT))?;
        tx.commit().await.map_err(write(WHAT))
    }

    /// One action by id.
    pub async fn action(&self, id: &str) -> Result<Option<StoredAction>, StoreError> {
        const WHAT: &str = "agent action";
        let row = sqlx::query(
            "SELECT id, created_at, conversation, tool, arguments, requested_by, \
             role, via, status, decided_by, decided_at, result FROM agent_actions WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.reader)
        .await
        .map_err(read(WHAT))?;
        row.map(|r| action_of(&r, WHAT)).transpose()
    }

    /// Actions, newest first, optionally only those in one status.
    pub async fn actions(
        &self,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredAction>, StoreError> {
        const WHAT: &str = "agent actions";
        let rows = sqlx::query(
            "SELECT id, created_at, conversation, tool, arguments, requested_by, \
             role, via, status, decided_by, decided_at, result FROM agent_actions WHERE (? IS NULL OR status = ?) \
             ORDER BY created_at DESC, id DESC LIMIT ?",
        )
        .bind(status)
        .bind(status)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(read(WHAT))?;
        rows.iter().map(|r| action_of(r, WHAT)).collect()
    }

    /// Moves an action from `from` to `to` and says whether it did: of two deciders racing for
    /// one action, exactly one wins.
    pub async fn transition_action(
        &self,
        id: &str,
        from: &str,
        to: &str,
        decided_by: Option<&str>,
        at: Timestamp,
        result: Option<&str>,
    ) -> Result<bool, StoreError> {
        const WHAT: &str = "agent action";
        let mut tx = self.begin_write(WHAT).await?;
        let done = sqlx::query(
            "UPDATE agent_actions SET status = ?, \
             decided_by = COALESCE(?, decided_by), \
             decided_at = CASE WHEN ? IS NULL THEN decided_at ELSE ? END, \
             result = COALESCE(?, result) \
             WHERE id = ? AND status = ?",
        )
        .bind(to)
        .bind(decided_by)
        .bind(decided_by)
        .bind(at.0)
        .bind(result)
        .bind(id)
        .bind(from)
        .execute(&mut *tx)
        .await
        .map_err(write(WHAT))?
        .rows_affected();
        tx.commit().await.map_err(write(WHAT))?;
        Ok(done == 1)
    }

    /// Appends steps to the audit log; a (conversation, step) already there is an error.
    pub async fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        const WHAT: &str = "agent audit entry";
        let mut tx = self.begin_write(WHAT).await?;
        for e in entries {
            sqlx::query(
                "INSERT INTO agent_audit (conversation, step, at, user_name, role, via, kind, \
                 content) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(e.conversation.as_str())
            .bind(i64::from(e.step))
            .bind(e.at.0)
            .bind(e.user.as_str())
            .bind(e.role.as_str())
            .bind(e.via.as_str())
            .bind(e.kind.as_str())
            .bind(e.content.as_str())
            .execute(&mut *tx)
            .await
            .map_err(write(WHAT))?;
        }
        tx.commit().await.map_err(write(WHAT))
    }

    /// Audit entries in order, of one conversation or the most recent `limit` of all.
    pub async fn audit(
        &self,
        conversation: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        const WHAT: &str = "agent audit log";
        let rows = sqlx::query(
            "SELECT conversation, step, at, user_name, role, via, kind, content FROM ( \
             SELECT * FROM agent_audit WHERE (? IS NULL OR conversation = ?) \
             ORDER BY at DESC, conversation DESC, step DESC LIMIT ?) AS recent \
             ORDER BY at, conversation, step",
        )
        .bind(conversation)
        .bind(conversation)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(read(WHAT))?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    conversation: get(r, 0, WHAT)?,
                    step: u32::try_from(get::<_, i64>(r, 1, WHAT)?).unwrap_or(u32::MAX),
                    at: Timestamp(get(r, 2, WHAT)?),
                    user: get(r, 3, WHAT)?,
                    role: get(r, 4, WHAT)?,
                    via: get(r, 5, WHAT)?,
                    kind: get(r, 6, WHAT)?,
                    content: get(r, 7, WHAT)?,
                })
            })
            .collect()
    }

    /// Meters one model call.
    pub async fn record_usage(&self, usage: &UsageRecord) -> Result<(), StoreError> {
        const WHAT: &str = "agent usage";
        let mut tx = self.begin_write(WHAT).await?;
        sqlx::query(
            "INSERT INTO agent_usage (at, conversation, user_name, skill, model, prompt_tokens, \
             completion_tokens, elapsed_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(usage.at.0)
        .bind(usage.conversation.as_str())
        .bind(usage.user.as_str())
        .bind(usage.skill.as_str())
        .bind(usage.model.as_str())
        .bind(count(usage.prompt_tokens))
        .bind(count(usage.completion_tokens))
        .bind(count(usage.elapsed_ms))
        .execute(&mut *tx)
        .await
        .map_err(write(WHAT))?;
        tx.commit().await.map_err(write(WHAT))
    }

    /// Usage summed per user, skill and model.
    pub async fn usage_totals(&self) -> Result<Vec<UsageTotal>, StoreError> {
        const WHAT: &str = "agent usage";
        let rows = sqlx::query(
            "SELECT user_name, skill, model, COUNT(*), CAST(SUM(prompt_tokens) AS BIGINT), \
             CAST(SUM(completion_tokens) AS BIGINT), CAST(SUM(elapsed_ms) AS BIGINT) FROM agent_usage \
             GROUP BY user_name, skill, model ORDER BY user_name, skill, model",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(read(WHAT))?;
        rows.iter()
            .map(|r| {
                Ok(UsageTotal {
                    user: get(r, 0, WHAT)?,
                    skill: get(r, 1, WHAT)?,
                    model: get(r, 2, WHAT)?,
                    calls: uncount(get(r, 3, WHAT)?),
                    prompt_tokens: uncount(get(r, 4, WHAT)?),
                    completion_tokens: uncount(get(r, 5, WHAT)?),
                    elapsed_ms: uncount(get(r, 6, WHAT)?),
                })
            })
            .collect()
    }
}
