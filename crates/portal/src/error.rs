//! What can go wrong, in words a caller can act on; the HTTP layer maps each kind to a status.

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    /// The request itself is wrong: a field, a value, a rule of the programme.
    #[error("{0}")]
    Invalid(String),
    #[error("{what} `{id}` not found")]
    NotFound { what: &'static str, id: String },
    /// The caller may not do this (also: the database's row-level security refused it).
    #[error("{0}")]
    Forbidden(String),
    /// Sign-in failed (a wrong name or password, or an expired session).
    #[error("{0}")]
    Unauthorized(String),
    /// Too many failed sign-ins from this address lately; try again after the seconds given.
    #[error("too many failed sign-ins; try again in {0} s")]
    RateLimited(u64),
    /// The request clashes with the current state: already spent, already redeemed, over budget.
    #[error("{0}")]
    Conflict(String),
    /// An evidence bundle was refused; the reason says which check failed.
    #[error("evidence refused: {0}")]
    Evidence(String),
    #[error("connecting to the portal database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("preparing the portal database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "the portal's database role `aifactory_portal` is missing or not granted to the connecting user ({0}); a database administrator must create it (NOLOGIN) and grant it"
    )]
    Role(String),
    #[error("database: {0}")]
    Database(sqlx::Error),
}

impl PortalError {
    pub(crate) fn invalid(message: impl fmt::Display) -> Self {
        PortalError::Invalid(message.to_string())
    }

    pub(crate) fn not_found(what: &'static str, id: impl Into<String>) -> Self {
        PortalError::NotFound {
            what,
            id: id.into(),
        }
    }
}

impl From<sqlx::Error> for PortalError {
    fn from(e: sqlx::Error) -> Self {
        // The database's own refusals keep their meaning: row-level security and the append-only
        // triggers are a refusal, a constraint is a bad value or a clash.
        if let sqlx::Error::Database(db) = &e {
            let message = db.message().to_owned();
            match db.code().as_deref() {
                Some("42501") => return PortalError::Forbidden(message),
                Some("23505") => return PortalError::Conflict(message),
                Some("23514") | Some("23502") | Some("22P02") | Some("22003") => {
                    return PortalError::Invalid(message);
                }
                Some("23503") => return PortalError::Invalid(message),
                _ => {}
            }
        }
        PortalError::Database(e)
    }
}
