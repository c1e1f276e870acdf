//! API tokens: who a bearer token belongs to, and the tokens' lifecycle. A user may hold
//! several tokens; each expires ([`TOKEN_DAYS`] by default), officers list, issue and revoke
//! them, and logging out with one revokes it. Only a token's SHA-256 is kept, and lists name a
//! token by its public id, never by the token or its hash.

use crate::error::PortalError;
use crate::model::Caller;
use crate::portal::{Portal, audit, require_officer};
use crate::registry::token_hash;
use rand::RngCore;
use serde::Serialize;
use serde_json::json;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};

/// A new token's lifetime unless the officer says otherwise, and the longest allowed.
pub const TOKEN_DAYS: u32 = 365;
pub const MAX_TOKEN_DAYS: u32 = 3650;
const DAY_MS: i64 = 86_400_000;

/// A token as officers see it (never the token nor its hash).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenRecord {
    pub id: String,
    pub user: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
    pub revoked_by: Option<String>,
    /// `valid`, `expired` or `revoked`, as of the portal's clock.
    pub state: &'static str,
}

/// A token just issued: the only time the token itself is shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IssuedToken {
    pub id: String,
    pub user: String,
    pub token: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

const TOKEN_COLUMNS: &str =
    "id, user_name, created_at_ms, expires_at_ms, revoked_at_ms, revoked_by";

fn token_from_row(row: &PgRow, now: i64) -> Result<TokenRecord, sqlx::Error> {
    let expires_at_ms: i64 = row.try_get("expires_at_ms")?;
    let revoked_at_ms: Option<i64> = row.try_get("revoked_at_ms")?;
    let state = match revoked_at_ms {
        Some(_) => "revoked",
        None if expires_at_ms <= now => "expired",
        None => "valid",
    };
    Ok(TokenRecord {
        id: row.try_get("id")?,
        user: row.try_get("user_name")?,
        created_at_ms: row.try_get("created_at_ms")?,
        expires_at_ms,
        revoked_at_ms,
        revoked_by: row.try_get("revoked_by")?,
        state,
    })
}

/// A fresh API token (`afp_` and 48 hex digits).
pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("afp_{}", hex::encode(bytes))
}

/// Checks a lifetime in days (the default when absent) and returns it in milliseconds.
fn lifetime_ms(days: Option<u32>) -> Result<i64, PortalError> {
    let days = days.unwrap_or(TOKEN_DAYS);
    if (1..=MAX_TOKEN_DAYS).contains(&days) {
        Ok(i64::from(days) * DAY_MS)
    } else {
        Err(PortalError::invalid(format!(
            "expires_in_days {days}: 1 to {MAX_TOKEN_DAYS} (default {TOKEN_DAYS})"
        )))
    }
}

/// Stores `token` for `user`, valid for `days` from `now`; returns its public id.
pub(crate) async fn insert_token(
    tx: &mut Transaction<'static, Postgres>,
    user: &str,
    token: &str,
    now: i64,
    days: Option<u32>,
) -> Result<(String, i64), PortalError> {
    let expires_at_ms = now
        .checked_add(lifetime_ms(days)?)
        .ok_or_else(|| PortalError::invalid("expires_in_days: past the end of time"))?;
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    let id = format!("tok_{}", hex::encode(bytes));
    sqlx::query(
        "INSERT INTO tokens (id, token_sha256, user_name, created_at_ms, expires_at_ms) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(token_hash(token))
    .bind(user)
    .bind(now)
    .bind(expires_at_ms)
    .execute(&mut **tx)
    .await?;
    Ok((id, expires_at_ms))
}

impl Portal {
    /// The caller a bearer token belongs to: an unexpired, unrevoked API token or an open session.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Caller>, PortalError> {
        let mut tx = self.begin(&Caller::system()).await?;
        let row = sqlx::query(
            "SELECT name, role, plant_id, provider_id FROM users WHERE name = ( \
                 SELECT user_name FROM tokens \
                 WHERE token_sha256 = $1 AND revoked_at_ms IS NULL AND expires_at_ms > $2 \
                 UNION ALL \
                 SELECT user_name FROM sessions WHERE token_sha256 = $1 AND expires_at_ms > $2 \
                 LIMIT 1)",
        )
        .bind(token_hash(token))
        .bind(self.now_ms())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        match row {
            Some(row) => Ok(crate::sign_in::caller_from(&row)?),
            None => Ok(None),
        }
    }

    /// Issues a new API token for `user` (officers), valid for `days` (1 to [`MAX_TOKEN_DAYS`],
    /// [`TOKEN_DAYS`] when absent). The token is in the answer once; only its hash is kept.
    pub async fn issue_token(
        &self,
        caller: &Caller,
        user: &str,
        days: Option<u32>,
    ) -> Result<IssuedToken, PortalError> {
        require_officer(caller, "issue tokens")?;
        lifetime_ms(days)?;
        let now = self.now_ms();
        let mut tx = self.begin(caller).await?;
        let known: Option<String> = sqlx::query_scalar("SELECT name FROM users WHERE name = $1")
            .bind(user)
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_none() {
            return Err(PortalError::not_found("user", user));
        }
        let token = new_token();
        let (id, expires_at_ms) = insert_token(&mut tx, user, &token, now, days).await?;
        audit(
            &mut tx,
            caller,
            now,
            "token.issue",
            user,
            json!({"id": id, "expires_at_ms": expires_at_ms}),
        )
        .await?;
        tx.commit().await?;
        Ok(IssuedToken {
            id,
            user: user.to_owned(),
            token,
            created_at_ms: now,
            expires_at_ms,
        })
    }

    /// Every API token, or one user's, newest first (officers).
    pub async fn tokens(
        &self,
        caller: &Caller,
        user: Option<&str>,
    ) -> Result<Vec<TokenRecord>, PortalError> {
        require_officer(caller, "list tokens")?;
        let now = self.now_ms();
        let mut tx = self.begin(caller).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE ($1::text IS NULL OR user_name = $1) \
             ORDER BY created_at_ms DESC, id LIMIT 10000"
        )))
        .bind(user)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| token_from_row(r, now))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(PortalError::from)
    }

    /// Revokes a token by its id (officers); it is refused from then on.
    pub async fn revoke_token(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<TokenRecord, PortalError> {
        require_officer(caller, "revoke tokens")?;
        let now = self.now_ms();
        let mut tx = self.begin(caller).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1 FOR UPDATE"
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| PortalError::not_found("token", id))?;
        let token = token_from_row(&row, now)?;
        if let (Some(at), Some(by)) = (token.revoked_at_ms, &token.revoked_by) {
            return Err(PortalError::Conflict(format!(
                "token {id} is already revoked (by {by} at {})",
                aifactory_core::Timestamp(at)
            )));
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE tokens SET revoked_at_ms = $2, revoked_by = $3 WHERE id = $1 \
             RETURNING {TOKEN_COLUMNS}"
        )))
        .bind(id)
        .bind(now)
        .bind(&caller.user)
        .fetch_one(&mut *tx)
        .await?;
        audit(
            &mut tx,
            caller,
            now,
            "token.revoke",
            id,
            json!({"user": token.user}),
        )
        .await?;
        tx.commit().await?;
        Ok(token_from_row(&row, now)?)
    }

    /// Ends what `token` opened: a session is closed; an API token is revoked, by its own user.
    /// An unknown, expired or already revoked token changes nothing.
    pub async fn sign_out(&self, token: &str) -> Result<(), PortalError> {
        let now = self.now_ms();
        let hash = token_hash(token);
        let system = Caller::system();
        let mut tx = self.begin(&system).await?;
        let closed = sqlx::query("DELETE FROM sessions WHERE token_sha256 = $1")
            .bind(&hash)
            .execute(&mut *tx)
            .await?;
        if closed.rows_affected() == 0 {
            let revoked: Option<(String, String)> = sqlx::query_as(
                "UPDATE tokens SET revoked_at_ms = $2, revoked_by = user_name \
                 WHERE token_sha256 = $1 AND revoked_at_ms IS NULL AND expires_at_ms > $2 \
                 RETURNING id, user_name",
            )
            .bind(&hash)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((id, user)) = revoked {
                let actor = Caller { user, ..system };
                audit(
                    &mut tx,
                    &actor,
                    now,
                    "token.revoke",
                    &id,
                    json!({"user": actor.user, "by": "logout"}),
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_are_one_day_to_ten_years() {
        assert_eq!(lifetime_ms(None).unwrap(), 365 * DAY_MS);
        assert_eq!(lifetime_ms(Some(1)).unwrap(), DAY_MS);
        assert_eq!(lifetime_ms(Some(3650)).unwrap(), 3650 * DAY_MS);
        for bad in [0, 3651, u32::MAX] {
            let e = lifetime_ms(Some(bad)).unwrap_err().to_string();
            assert!(
                e.contains("expires_in_days") && e.contains("1 to 3650"),
                "{e}"
            );
        }
    }

    #[test]
    fn tokens_are_fresh_and_shaped() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with("afp_") && a.len() == 52, "{a}");
    }
}
