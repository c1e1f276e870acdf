//! The OpenAPI 3.1 document of the API, generated from the handlers' annotations so it cannot
//! drift from the routes; served at `/api/v1/openapi.json`.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Bearer tokens for programs, the session cookie for browsers.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::SESSION_COOKIE,
                "Browser session from POST /api/v1/session; changes also need the X-CSRF-Token header",
            ))),
        );
    }
}

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "aifactory",
        description = "The plant live, the plan and its what-ifs, the decision ledger and the tier. Every route but /health, /api/v1/login and /api/v1/session needs a token or a session; roles are viewer, operator, engineer, admin and agent."
    ),
    paths(
        crate::health,
        crate::login,
        crate::open_session,
        crate::logout,
        crate::me,
        crate::new_token,
        crate::list_tokens,
        crate::revoke_token,
        crate::kpis,
        crate::decisions,
        crate::assessment,
        crate::latest,
        crate::metrics,
        crate::plant::plant,
        crate::plant::machine,
        crate::plant::orders,
        crate::plant::schedule,
        crate::plant::what_if,
        crate::plant::proposals,
        crate::plant::approve,
        crate::plant::reject,
        crate::plant::telemetry,
        crate::plant::spc,
        crate::plant::forecast,
        crate::plant::events,
        crate::agent::ask,
        crate::agent::list_tools,
        crate::agent::call_tool,
        crate::agent::actions,
        crate::agent::approve,
        crate::agent::reject,
        crate::agent::audit,
        crate::agent::usage,
        openapi_json,
    ),
    components(schemas(crate::auth::Role, crate::plant::Proposal)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "plant", description = "The plant now: machines, orders, KPIs, forecasts, live events"),
        (name = "schedule", description = "The plan, what-ifs and their approval"),
        (name = "telemetry", description = "Sensor series: ranges, roll-ups, latest values"),
        (name = "quality", description = "Control charts"),
        (name = "ledger", description = "Decisions and the tier assessment"),
        (name = "auth", description = "Logins, sessions, tokens"),
        (name = "system", description = "Health and metrics"),
        (name = "agent", description = "The agent: ask, tools, held actions and their approval, audit, usage; MCP at /mcp"),
    )
)]
pub struct ApiDoc;

#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "system", responses((status = 200, description = "This document", body = serde_json::Value)), security(("bearer" = []), ("session" = [])))]
pub(crate) async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
