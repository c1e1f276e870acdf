//! The portal's web UI, embedded in the binary (nothing is fetched at run time): its own pages
//! under `ui/`, and from `aifactory serve`'s UI the theme, the DOM helpers and the language
//! choice under `/ui/shared/`, so both look and speak alike without a second copy.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(rust_embed::RustEmbed)]
#[folder = "ui/"]
struct Own;

#[derive(rust_embed::RustEmbed)]
#[folder = "../server/ui/"]
struct Serve;

/// The files of `serve`'s UI the portal uses; nothing else of it is served here.
const SHARED: [&str; 4] = ["style.css", "dom.js", "i18n.js", "favicon.svg"];

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

fn file(path: &str) -> Response {
    let data = match path.strip_prefix("shared/") {
        Some(shared) if SHARED.contains(&shared) => Serve::get(shared).map(|f| f.data),
        Some(_) => None,
        None => Own::get(path).map(|f| f.data),
    };
    match data {
        Some(data) => (
            [
                (header::CONTENT_TYPE, content_type(path)),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            data,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "no such file", "status": 404})),
        )
            .into_response(),
    }
}

pub(crate) async fn index() -> Response {
    file("index.html")
}

pub(crate) async fn asset(Path(path): Path<String>) -> Response {
    file(&path)
}
