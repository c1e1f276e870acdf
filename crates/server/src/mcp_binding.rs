//! MCP sessions bound to the credential that opened them: a session id learnt by someone else
//! is no use with their own token. (Each call is also checked against its own token by the
//! authorisation layer; this makes the session itself theirs alone.)

use crate::{ApiError, AppState, lock};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// The header MCP's streamable HTTP transport carries its session id in.
const SESSION_HEADER: &str = "mcp-session-id";
/// Sessions remembered at most; the oldest are forgotten first (their clients open new ones).
const MAX_SESSIONS: usize = 10_000;

/// Session id → SHA-256 of the credential (bearer token or session cookie) that opened it.
#[derive(Debug, Default)]
pub(crate) struct Owners {
    owner: HashMap<String, String>,
    order: VecDeque<String>,
}

impl Owners {
    fn insert(&mut self, session: String, credential: String) {
        if self.owner.insert(session.clone(), credential).is_none() {
            self.order.push_back(session);
        }
        while self.order.len() > MAX_SESSIONS {
            if let Some(old) = self.order.pop_front() {
                self.owner.remove(&old);
            }
        }
    }

    fn remove(&mut self, session: &str) {
        if self.owner.remove(session).is_some() {
            self.order.retain(|s| s != session);
        }
    }
}

/// What identifies the caller's credential: the hash of its bearer token or session cookie.
fn credential(req: &Request) -> String {
    let bearer = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let cookie = crate::session_cookie(req);
    crate::auth::token_hash(&format!(
        "{}|{}",
        bearer.unwrap_or_default(),
        cookie.unwrap_or_default()
    ))
}

pub(crate) async fn bind(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let who = credential(&req);
    let asked_for = req
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(session) = &asked_for {
        let owner = lock(&state.mcp_sessions).owner.get(session).cloned();
        if owner.is_some_and(|o| o != who) {
            // Answered as an unknown session: it tells the caller nothing about whose it is.
            return ApiError::new(StatusCode::NOT_FOUND, "no such MCP session").into_response();
        }
    }
    let closing = req.method() == axum::http::Method::DELETE;
    let response = next.run(req).await;
    match asked_for {
        Some(session) if closing && response.status().is_success() => {
            lock(&state.mcp_sessions).remove(&session);
        }
        Some(_) => {}
        None => {
            let opened = response
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if let Some(session) = opened {
                lock(&state.mcp_sessions).insert(session, who);
            }
        }
    }
    response
}
