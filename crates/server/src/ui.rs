//! The web UI's files, embedded in the binary at build time: nothing is fetched at run time,
//! so the UI works in an air-gapped plant.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::RustEmbed)]
#[folder = "ui/"]
struct Assets;

/// Files kept beside the UI but not part of it: the recipe of the custom ECharts build.
const NOT_SERVED: &str = "vendor/echarts-build/";

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

/// The path as the embedded files name it: backslashes are separators (rust-embed treats them
/// so), empty and `.` segments go; `None` for a path that climbs (`..`). Every check runs on
/// this form, never on the path as sent.
fn normalise(path: &str) -> Option<String> {
    let mut parts = Vec::new();
    for part in path.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

fn file(path: &str) -> Response {
    let found = normalise(path)
        .filter(|p| !p.starts_with(NOT_SERVED))
        .and_then(|p| Assets::get(&p).map(|f| (p, f)));
    match found {
        Some((path, f)) => (
            [
                (header::CONTENT_TYPE, content_type(&path)),
                // Pages change with the binary; the browser revalidates rather than guesses.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            f.data,
        )
            .into_response(),
        None => crate::ApiError::new(StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

pub(crate) async fn index() -> Response {
    file("index.html")
}

pub(crate) async fn asset(Path(path): Path<String>) -> Response {
    file(&path)
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn paths_are_checked_in_the_form_files_are_found_by() {
        assert_eq!(normalise("app.js").as_deref(), Some("app.js"));
        assert_eq!(
            normalise("vendor\\echarts-build\\build.sh").as_deref(),
            Some("vendor/echarts-build/build.sh")
        );
        assert_eq!(
            normalise("./vendor//echarts-build/x").as_deref(),
            Some("vendor/echarts-build/x")
        );
        assert_eq!(normalise("vendor/../index.html"), None);
    }
}
