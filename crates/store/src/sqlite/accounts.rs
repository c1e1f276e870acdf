//! Users and API tokens of `aifactory serve`.

use super::SqliteStore;
use crate::common::{get, read, token_of, write};
use crate::{StoreError, StoredToken, StoredUser};
use aifactory_core::Timestamp;

impl SqliteStore {
    /// Adds a user or replaces its password hash and role.
    pub async fn save_user(&self, user: &StoredUser) -> Result<(), StoreError> {
        const WHAT: &str = "user";
        let mut tx = self.begin_write(WHAT).await?;
        sqlx::query(
            "INSERT INTO accounts_users (name, password_hash, role) VALUES (?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role",
        )
        .bind(user.name.as_str())
        .bind(user.password_hash.as_str())
        .bind(user.role.as_str())
        .execute(&mut *tx)
        .await
        .map_err(write(WHAT))?;
        tx.commit().await.map_err(write(WHAT))
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<StoredUser>, StoreError> {
        const WHAT: &str = "users";
        let rows =
            sqlx::query("SELECT name, password_hash, role FROM accounts_users ORDER BY name")
                .fetch_all(&self.reader)
                .await
                .map_err(read(WHAT))?;
        rows.iter()
            .map(|r| {
                Ok(StoredUser {
                    name: get(r, 0, WHAT)?,
                    password_hash: get(r, 1, WHAT)?,
                    role: get(r, 2, WHAT)?,
                })
            })
            .collect()
    }

    /// Keeps an issued token (its hash); the same hash or id twice is an error.
    pub async fn save_token(&self, token: &StoredToken) -> Result<(), StoreError> {
        const WHAT: &str = "token";
        let mut tx = self.begin_write(WHAT).await?;
        sqlx::query(
            "INSERT INTO accounts_tokens (token_sha256, id, user_name, role, kind, issued_at, \
             expires_at, revoked_at, revoked_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(token.sha256.as_str())
        .bind(token.id.as_str())
        .bind(token.user.as_str())
        .bind(token.role.as_str())
        .bind(token.kind.as_str())
        .bind(token.issued_at.0)
        .bind(token.expires_at.0)
        .bind(token.revoked_at.map(|t| t.0))
        .bind(token.revoked_by.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(write(WHAT))?;
        tx.commit().await.map_err(write(WHAT))
    }

    /// Every token kept, revoked and expired ones too, oldest first.
    pub async fn tokens(&self) -> Result<Vec<StoredToken>, StoreError> {
        const WHAT: &str = "tokens";
        let rows = sqlx::query(TOKENS_SQL)
            .fetch_all(&self.reader)
            .await
            .map_err(read(WHAT))?;
        rows.iter().map(|r| token_of(r, WHAT)).collect()
    }

    /// Revokes the token `id` unless it already is; says whether it did.
    pub async fn revoke_token(
        &self,
        id: &str,
        by: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        const WHAT: &str = "token revocation";
        let mut tx = self.begin_write(WHAT).await?;
        let done = sqlx::query(
            "UPDATE accounts_tokens SET revoked_at = ?, revoked_by = ? \
             WHERE id = ? AND revoked_at IS NULL",
        )
        .bind(at.0)
        .bind(by)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(write(WHAT))?
        .rows_affected();
        tx.commit().await.map_err(write(WHAT))?;
        Ok(done == 1)
    }

    /// Forgets tokens that expired before `before`; how many.
    pub async fn delete_expired_tokens(&self, before: Timestamp) -> Result<u64, StoreError> {
        const WHAT: &str = "expired tokens";
        let mut tx = self.begin_write(WHAT).await?;
        let done = sqlx::query("DELETE FROM accounts_tokens WHERE expires_at < ?")
            .bind(before.0)
            .execute(&mut *tx)
            .await
            .map_err(write(WHAT))?
            .rows_affected();
        tx.commit().await.map_err(write(WHAT))?;
        Ok(done)
    }
}

const TOKENS_SQL: &str = "SELECT token_sha256, id, user_name, role, kind, issued_at, expires_at, \
     revoked_at, revoked_by FROM accounts_tokens ORDER BY issued_at, id";
