//! The console's files, embedded in the binary at build time.
//!
//! Every answer forbids framing and content sniffing and allows scripts,
//! styles and requests from this origin only (the UI has no inline script
//! or style, and loads nothing from elsewhere).

use axum::extract::Path;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::Error;

/// The page.
pub const INDEX_HTML: &str = include_str!("assets/index.html");
/// The script.
pub const APP_JS: &str = include_str!("assets/app.js");
/// The style sheet.
pub const STYLE_CSS: &str = include_str!("assets/style.css");

/// Headers every console file is served with.
const SECURITY_HEADERS: [(HeaderName, &str); 4] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::CACHE_CONTROL, "no-cache"),
];

fn serve(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// `GET /console/`.
pub async fn index() -> Response {
    serve("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /console/{file}`: the script and the style sheet; 404 otherwise.
pub async fn file(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "app.js" => serve("text/javascript; charset=utf-8", APP_JS),
        "style.css" => serve("text/css; charset=utf-8", STYLE_CSS),
        "index.html" => serve("text/html; charset=utf-8", INDEX_HTML),
        _ => Error::NotFound(format!("no console file {name}")).into_response(),
    }
}
