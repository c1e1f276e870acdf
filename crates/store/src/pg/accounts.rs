//! Users and API tokens of `aifactory serve`.

use super::PgStore;
use crate::common::{get, read, write};
use crate::{StoreError, StoredToken, StoredUser};
use aifactory_core::Timestamp;

impl PgStore {
    /// Adds a user or replaces its password hash and role.
    pub async fn save_user(&self, user: &StoredUser) -> Result<(), StoreError> {
        const WHAT: &str = "user";
        let mut tx = self.begin(WHAT).await?;
        sqlx::query(
            "INSERT INTO accounts_users (name, password_hash, role) VALUES ($1, $2, $3) \
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
                .fetch_all(&self.pool)
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

    /// Keeps an issued token (its hash); the same hash twice is an error.
    pub async fn save_token(&self, token: &StoredToken) -> Result<(), StoreError> {
        const WHAT: &str = "API token";
        let mut tx = self.begin(WHAT).await?;
        sqlx::query(
            "INSERT INTO accounts_tokens (token_sha256, user_name, role, issued_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token.sha256.as_str())
        .bind(token.user.as_str())
        .bind(token.role.as_str())
        .bind(token.issued_at.0)
        .execute(&mut *tx)
        .await
        .map_err(write(WHAT))?;
        tx.commit().await.map_err(write(WHAT))
    }

    /// Every token kept, oldest first.
    pub async fn tokens(&self) -> Result<Vec<StoredToken>, StoreError> {
        const WHAT: &str = "API tokens";
        let rows = sqlx::query(
            "SELECT token_sha256, user_name, role, issued_at FROM accounts_tokens \
             ORDER BY issued_at, token_sha256",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(read(WHAT))?;
        rows.iter()
            .map(|r| {
                Ok(StoredToken {
                    sha256: get(r, 0, WHAT)?,
                    user: get(r, 1, WHAT)?,
                    role: get(r, 2, WHAT)?,
                    issued_at: Timestamp(get(r, 3, WHAT)?),
                })
            })
            .collect()
    }
}
