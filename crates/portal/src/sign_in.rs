//! Sign-in with a name and a password, beside API tokens: passwords are kept only as argon2
//! hashes; a successful sign-in opens a session whose token (only its SHA-256 kept) expires
//! after [`SESSION_MS`]. Failed attempts count against the client's address (held off after
//! five) and the name, known or not (slowed after five), in the bounded tables of
//! [`crate::limiter`]; known and unknown names cost the same argon2 work, so neither the
//! limiter nor the timing tells which names exist.

use crate::error::PortalError;
use crate::limiter::{Origin, Verdict};
use crate::model::{Caller, Role};
use crate::portal::{Portal, audit};
use crate::registry::token_hash;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use serde::Serialize;
use serde_json::json;
use sqlx::Row;
use std::net::IpAddr;

/// How long a session lasts: a working day and a half.
pub const SESSION_MS: i64 = 12 * 3_600_000;
/// Shortest password accepted, in characters.
const MIN_PASSWORD: usize = 10;
/// Longest password accepted, in bytes (argon2 would hash anything; the body limit is 2 MB).
const MAX_PASSWORD: usize = 1024;
/// Longest user name (the users table's limit).
const MAX_USER_NAME: usize = 64;

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
        if password.len() > MAX_PASSWORD {
            return Err(PortalError::invalid(format!(
                "a password has at most {MAX_PASSWORD} bytes"
            )));
        }
        let password = password.to_owned();
        let hashed = self.argon2(move || hash(&password)).await??;
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

    /// Signs a user in with a password and opens a session. `client` is the address the
    /// attempt comes from (none where the server was not told): see [`crate::limiter`] for how
    /// failures hold an address off and slow a name down.
    pub async fn sign_in(
        &self,
        name: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Session, PortalError> {
        let wrong = || PortalError::Unauthorized("wrong user name or password".into());
        // A name no user can have is wrong at once: it never reaches the limiter's tables or
        // the database, so sending such names costs the portal no memory.
        if !possible_user_name(name) {
            return Err(wrong());
        }
        let now = self.now_ms();
        let origin = Origin::of(client);
        let attempt_at = match self.limiter.attempt(origin, name, now) {
            Verdict::HeldOff { seconds } => return Err(PortalError::RateLimited(seconds)),
            Verdict::Proceed { delay, at_ms } => {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                at_ms
            }
        };
        // Longer than any password the portal sets: wrong, without hashing megabytes.
        if password.len() > MAX_PASSWORD {
            return Err(wrong());
        }
        let system = Caller::system();
        let mut tx = self.begin(&system).await?;
        let row = sqlx::query(
            "SELECT name, role, plant_id, provider_id, password_hash FROM users WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        // The connection goes back to the pool while argon2 works.
        tx.commit().await?;
        let stored: Option<String> = match &row {
            Some(r) => r.try_get("password_hash")?,
            None => None,
        };
        let password = password.to_owned();
        let ok = self
            .argon2(move || match stored {
                Some(stored) => verify(&password, &stored),
                // Spend the same work on an unknown name, so timing does not tell names apart.
                None => {
                    let _ = hash(&password);
                    false
                }
            })
            .await?;
        let caller = match (ok, &row) {
            (true, Some(r)) => caller_from(r)?,
            _ => None,
        };
        // A failure stays counted (the limiter counted the attempt when it let it through).
        let Some(caller) = caller else {
            return Err(wrong());
        };
        self.limiter.succeeded(origin, name, attempt_at);
        let mut tx = self.begin(&system).await?;
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

    /// Runs argon2 off the async workers, a few at a time: each run takes tens of milliseconds
    /// and 19 MiB, so a flood of sign-ins queues here instead of filling memory.
    async fn argon2<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PortalError> {
        let permit = self
            .hashing
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| PortalError::invalid(format!("password hashing: {e}")))?;
        tokio::task::spawn_blocking(move || {
            let out = work();
            drop(permit);
            out
        })
        .await
        .map_err(|e| PortalError::invalid(format!("password hashing: {e}")))
    }

    /// How many entries the sign-in limiter holds (at most 10,000; tests check the bound).
    #[doc(hidden)]
    pub fn sign_in_limiter_entries(&self) -> usize {
        self.limiter.entries()
    }
}

/// Whether some user could have this name (the users table's own rule: 1–64 letters, digits,
/// '.', '_', '@' or '-', starting with a letter or digit).
fn possible_user_name(name: &str) -> bool {
    name.len() <= MAX_USER_NAME
        && name
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphanumeric)
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_a_user_could_have_reach_the_limiter() {
        assert!(possible_user_name("plant-a"));
        assert!(possible_user_name("ana.li@hz-plant_7"));
        assert!(possible_user_name(&"a".repeat(64)));
        for bad in [
            "",
            &"a".repeat(65),
            "-dash",
            "space name",
            "ünïcode",
            "a\0b",
        ] {
            assert!(!possible_user_name(bad), "{bad:?}");
        }
    }
}
