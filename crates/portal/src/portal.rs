//! The portal's handle: a PostgreSQL pool, the injected clock, and the one way to start a
//! transaction — in the caller's tenant, as the portal's unprivileged role.

use crate::error::PortalError;
use crate::limiter::Limiter;
use crate::model::Caller;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Milliseconds since the Unix epoch, from whatever clock the caller trusts.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

#[derive(Clone)]
pub struct Portal {
    pub(crate) pool: PgPool,
    clock: Clock,
    /// Recent failed sign-ins by address and by name; shared by every clone.
    pub(crate) limiter: Arc<Limiter>,
    /// Permits for argon2 runs at once (each takes 19 MiB); shared by every clone.
    pub(crate) hashing: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Portal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Portal").finish_non_exhaustive()
    }
}

/// The URL with any password replaced, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl Portal {
    /// Connects to PostgreSQL at `url` and applies the portal's migrations. The tables go into
    /// the first schema of the connection's `search_path` (add `?options[search_path]=name` to
    /// keep the portal in a schema of its own). `pool_size` bounds the connections.
    pub async fn open(url: &str, pool_size: u32, clock: Clock) -> Result<Portal, PortalError> {
        let connect_error = |source| PortalError::Connect {
            url: redact(url),
            source,
        };
        let options = PgConnectOptions::from_str(url).map_err(connect_error)?;
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(connect_error)?;
        MIGRATOR.run(&pool).await?;
        let portal = Portal {
            pool,
            clock,
            limiter: Arc::default(),
            hashing: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(4, |n| n.get().clamp(2, 16)),
            )),
        };
        // Fail at start-up, not at the first request, when the role cannot be taken.
        let tx = portal.begin(&Caller::system()).await.map_err(|e| match e {
            PortalError::Forbidden(m) | PortalError::Invalid(m) => PortalError::Role(m),
            PortalError::Database(e) => PortalError::Role(e.to_string()),
            other => other,
        })?;
        tx.rollback().await?;
        Ok(portal)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub fn now_ms(&self) -> i64 {
        (self.clock)()
    }

    /// A transaction in `caller`'s tenant: the role and tenant settings last until it ends,
    /// so a pooled connection never carries one caller's tenant into the next.
    pub(crate) async fn begin(
        &self,
        caller: &Caller,
    ) -> Result<Transaction<'static, Postgres>, PortalError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "SELECT set_config('role', 'aifactory_portal', true), \
             set_config('aifactory.role', $1, true), \
             set_config('aifactory.plant', $2, true), \
             set_config('aifactory.provider', $3, true)",
        )
        .bind(caller.role.as_str())
        .bind(caller.plant.as_deref().unwrap_or(""))
        .bind(caller.provider.as_deref().unwrap_or(""))
        .execute(&mut *tx)
        .await?;
        Ok(tx)
    }
}

/// Refuses a caller who is not a programme officer; `what` completes "only programme officers …".
pub(crate) fn require_officer(caller: &Caller, what: &str) -> Result<(), PortalError> {
    if caller.role.is_officer() {
        Ok(())
    } else {
        Err(PortalError::Forbidden(format!(
            "only programme officers {what}"
        )))
    }
}

/// The rows a caller may name by id: "not found" covers both absent rows and rows the
/// caller's tenant cannot see.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Named {
    Plant,
    Provider,
}

/// Fails with "not found" unless the row exists and the caller's tenant sees it.
pub(crate) async fn require(
    tx: &mut Transaction<'static, Postgres>,
    what: Named,
    id: &str,
) -> Result<(), PortalError> {
    let (sql, name) = match what {
        Named::Plant => ("SELECT id FROM plants WHERE id = $1", "plant"),
        Named::Provider => ("SELECT id FROM providers WHERE id = $1", "provider"),
    };
    let found: Option<String> = sqlx::query_scalar(sql)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(PortalError::not_found(name, id)),
    }
}

/// One audit row, written in the same transaction as the change it records.
pub(crate) async fn audit(
    tx: &mut Transaction<'static, Postgres>,
    caller: &Caller,
    at_ms: i64,
    action: &str,
    subject: &str,
    detail: serde_json::Value,
) -> Result<(), PortalError> {
    sqlx::query(
        "INSERT INTO audit (at_ms, actor, role, action, subject, plant_id, provider_id, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)",
    )
    .bind(at_ms)
    .bind(&caller.user)
    .bind(caller.role.as_str())
    .bind(action)
    .bind(subject)
    .bind(caller.plant.as_deref())
    .bind(caller.provider.as_deref())
    .bind(detail.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
