//! Sign-in with a name and a password, beside API tokens: passwords are kept only as argon2
//! hashes; a successful sign-in opens a session whose token (only its SHA-256 kept) expires
//! after [`SESSION_MS`]; failed attempts count against the name, known or not, so the limiter
//! does not tell which names exist.

use crate::error::PortalError;
use crate::model::{Caller, Role};
use crate::portal::{Portal, audit};
use crate::registry::token_hash;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use serde::Serialize;
use serde_json::json;
use sqlx::Row;

/// How long a session lasts: a working day and a half.
pub const SESSION_MS: i64 = 12 * 3_600_000;
/// Failed sign-ins per name within [`FAILURE_WINDOW_MS`] before the name is held off.
const MAX_FAILURES: usize = 5;
const FAILURE_WINDOW_MS: i64 = 5 * 60_000;
/// Shortest password accepted.
const MIN_PASSWORD: usize = 10;

/// An open session.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    pub token: String,
    pub expires_at_ms: i64,
    pub caller: Caller,
}

fn hash(password: &str) -> Result<String, PortalError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| PortalError::invalid(format!("password salt: {e}")))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PortalError::invalid(format!("password hash: {e}")))
}

fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

pub(crate) fn caller_from(row: &sqlx::postgres::PgRow) -> Result<Option<Caller>, sqlx::Error> {
    let role: String = row.try_get("role")?;
    let Some(role) = Role::parse(&role) else {
        return Ok(None);
    };
    Ok(Some(Caller {
        user: row.try_get("name")?,
        role,
        plant: row.try_get("plant_id")?,
        provider: row.try_get("provider_id")?,
    }))
}

impl Portal {
    /// Sets a user's password: officers for anyone, a person for themselves.
    pub async fn set_password(
        &self,
        caller: &Caller,
        user: &str,
        password: &str,
    ) -> Result<(), PortalError> {
        if !(caller.role.is_officer() || caller.user == user) {
            return Err(PortalError::Forbidden(
                "only programme officers set another user's password".into(),
            ));
        }
        if password.chars().count() < MIN_PASSWORD {
            return Err(PortalError::invalid(format!(
                "a password has at least {MIN_PASSWORD} characters"
            )));
        }
        let password = password.to_owned();
        let hashed = tokio::task::spawn_blocking(move || hash(&password))
            .await
            .map_err(|e| PortalError::invalid(format!("hashing: {e}")))??;
        let now = self.now_ms();
        // The portal itself writes the row: a person may set only their own password (checked above).
        let system = Caller::system();
        let mut tx = self.begin(&system).await?;
        let updated = sqlx::query("UPDATE users SET password_hash = $2 WHERE name = $1")
            .bind(user)
            .bind(&hashed)
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(PortalError::not_found("user", user));
        }
        // Sessions opened with the old password end.
        sqlx::query("DELETE FROM sessions WHERE user_name = $1")
            .bind(user)
            .execute(&mut *tx)
            .await?;
        let actor = Caller {
            user: caller.user.clone(),
            ..system
        };
        audit(&mut tx, &actor, now, "user.password", user, json!({})).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Signs a user in with a password and opens a session.
    pub async fn sign_in(&self, name: &str, password: &str) -> Result<Session, PortalError> {
        let now = self.now_ms();
        if let Some(wait) = self.held_off(name, now) {
            return Err(PortalError::RateLimited(wait));
        }
        let system = Caller::system();
        let mut tx = self.begin(&system).await?;
        let row = sqlx::query(
            "SELECT name, role, plant_id, provider_id, password_hash FROM users WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let stored: Option<String> = match &row {
            Some(r) => r.try_get("password_hash")?,
            None => None,
        };
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || match stored {
            Some(stored) => verify(&password, &stored),
            // Spend the same work on an unknown name, so timing does not tell names apart.
            None => {
                let _ = hash(&password);
                false
            }
        })
        .await
        .map_err(|e| PortalError::invalid(format!("verifying: {e}")))?;
        let caller = match (ok, &row) {
            (true, Some(r)) => caller_from(r)?,
            _ => None,
        };
        let Some(caller) = caller else {
            self.record_failure(name, now);
            return Err(PortalError::Unauthorized(
                "wrong user name or password".into(),
            ));
        };
        if let Ok(mut failures) = self.failed_sign_ins.lock() {
            failures.remove(name);
        }
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let token = format!("afs_{}", hex::encode(bytes));
        let expires_at_ms = now + SESSION_MS;
        sqlx::query(
            "INSERT INTO sessions (token_sha256, user_name, created_at_ms, expires_at_ms) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash(&token))
        .bind(name)
        .bind(now)
        .bind(expires_at_ms)
        .execute(&mut *tx)
        .await?;
        // Expired sessions go as new ones open.
        sqlx::query("DELETE FROM sessions WHERE expires_at_ms <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let actor = Caller {
            user: name.to_owned(),
            ..Caller::system()
        };
        audit(&mut tx, &actor, now, "user.sign_in", name, json!({})).await?;
        tx.commit().await?;
        Ok(Session {
            token,
            expires_at_ms,
            caller,
        })
    }

    /// Ends the session a token opened (an API token is not a session: nothing happens).
    pub async fn sign_out(&self, token: &str) -> Result<(), PortalError> {
        let mut tx = self.begin(&Caller::system()).await?;
        sqlx::query("DELETE FROM sessions WHERE token_sha256 = $1")
            .bind(token_hash(token))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The caller of an open, unexpired session.
    pub(crate) async fn session_caller(&self, token: &str) -> Result<Option<Caller>, PortalError> {
        let mut tx = self.begin(&Caller::system()).await?;
        let row = sqlx::query(
            "SELECT u.name, u.role, u.plant_id, u.provider_id FROM sessions s \
             JOIN users u ON u.name = s.user_name WHERE s.token_sha256 = $1 AND s.expires_at_ms > $2",
        )
        .bind(token_hash(token))
        .bind(self.now_ms())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        match row {
            Some(r) => Ok(caller_from(&r)?),
            None => Ok(None),
        }
    }

    /// Seconds to wait when `name` has failed too often lately.
    fn held_off(&self, name: &str, now: i64) -> Option<u64> {
        let mut failures = self.failed_sign_ins.lock().ok()?;
        let recent = failures.entry(name.to_owned()).or_default();
        recent.retain(|t| now - t < FAILURE_WINDOW_MS);
        if recent.len() < MAX_FAILURES {
            return None;
        }
        let oldest = recent.first().copied().unwrap_or(now);
        Some(((FAILURE_WINDOW_MS - (now - oldest)) / 1000).max(1) as u64)
    }

    fn record_failure(&self, name: &str, now: i64) {
        if let Ok(mut failures) = self.failed_sign_ins.lock() {
            failures.entry(name.to_owned()).or_default().push(now);
        }
    }
}
