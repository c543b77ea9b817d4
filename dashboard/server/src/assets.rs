//! The app bundle from `static_dir`, as `scripts/build-dashboard.sh` writes it: `index.html`
//! plus content-hashed files (`logjet-3f9a0c1d2e4b5a6c.wasm`, `snippets-…/…`), each with a
//! `.gz` sibling.
//!
//! - A browser that accepts gzip gets the `.gz` file with `Content-Encoding: gzip`.
//! - A name with a content hash never changes: `Cache-Control: public, max-age=31536000,
//!   immutable`. `index.html` (which names the hashed files) is `no-cache` with an `ETag`, so a
//!   new build is picked up on the next load.
//! - A path without a file extension that is not a file is the app itself (`index.html`), so a
//!   shared link always opens the dashboard.

use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use logjet_core::http::ApiError;

use crate::AppState;

pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
pub const NO_CACHE: &str = "no-cache";

/// Content type by file extension (the bundle has few kinds of file).
pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" | "map" => "application/json",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Whether a path carries a content hash: a segment whose stem ends in `-` and at least 8 hex
/// digits (`logjet-0123abcd.js`, `snippets-0123abcd/`).
pub fn is_hashed(rel: &str) -> bool {
    rel.split('/').any(|segment| {
        let stem = segment.split('.').next().unwrap_or("");
        stem.rsplit_once('-').is_some_and(|(_, h)| {
            h.len() >= 8
                && h.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
    })
}

/// `rel` as a path inside the bundle, refusing anything that could leave it.
fn safe_join(root: &Path, rel: &str) -> Option<PathBuf> {
    let rel_path = Path::new(rel);
    if rel.contains('\\') || rel.contains('\0') {
        return None;
    }
    let mut out = root.to_path_buf();
    for c in rel_path.components() {
        match c {
            Component::Normal(part) => {
                if part.to_str().is_none_or(|s| s.starts_with('.')) {
                    return None;
                }
                out.push(part);
            }
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// Whether `Accept-Encoding` allows gzip (present and not `q=0`).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let q_zero = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
        })
}

async fn is_file(p: &Path) -> bool {
    tokio::fs::metadata(p).await.is_ok_and(|m| m.is_file())
}

pub async fn serve(State(st): State<AppState>, req: Request) -> Response {
    let method = req.method().clone();
    if method != Method::GET && method != Method::HEAD {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are served here",
        )
        .into_response();
    }
    let root = &st.cfg.static_dir;
    let rel = req.uri().path().trim_start_matches('/');
    let rel = if rel.is_empty() || rel.ends_with('/') {
        format!("{rel}index.html")
    } else {
        rel.to_string()
    };
    let Some(mut path) = safe_join(root, &rel) else {
        return ApiError::new(StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let mut rel = rel;
    if !is_file(&path).await {
        let last = rel.rsplit('/').next().unwrap_or("");
        if last.contains('.') {
            return ApiError::new(StatusCode::NOT_FOUND, "no such file").into_response();
        }
        // An app route: the app reads the URL itself.
        rel = "index.html".into();
        path = root.join("index.html");
        if !is_file(&path).await {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the dashboard bundle is not built (no {}): run scripts/build-dashboard.sh",
                    path.display()
                ),
            )
            .into_response();
        }
    }

    let is_index = rel.ends_with(".html");
    let gz = PathBuf::from(format!("{}.gz", path.display()));
    let use_gz = accepts_gzip(req.headers()) && is_file(&gz).await;
    let file = if use_gz { &gz } else { &path };
    let meta = match tokio::fs::metadata(file).await {
        Ok(m) => m,
        Err(e) => {
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading {rel}: {e}"),
            )
            .into_response();
        }
    };
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let etag = format!(
        "\"{:x}-{:x}{}\"",
        meta.len(),
        mtime,
        if use_gz { "-gz" } else { "" }
    );

    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&path)),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if !is_index && is_hashed(&rel) {
            IMMUTABLE
        } else {
            NO_CACHE
        }),
    );
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    if use_gz {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if is_index {
        headers.insert(
            header::HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        );
    }

    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if not_modified {
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        *resp.headers_mut() = headers;
        return resp;
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
    if method == Method::HEAD {
        let mut resp = Response::new(Body::empty());
        *resp.headers_mut() = headers;
        return resp;
    }
    match tokio::fs::read(file).await {
        Ok(bytes) => {
            let mut resp = Response::new(Body::from(bytes));
            *resp.headers_mut() = headers;
            resp
        }
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading {rel}: {e}"),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_names() {
        assert!(is_hashed("logjet-0123abcd4567ef89.wasm"));
        assert!(is_hashed("snippets-0123abcd/dioxus/inline0.js"));
        assert!(is_hashed("app-deadbeef.css"));
        assert!(!is_hashed("index.html"));
        assert!(!is_hashed("favicon.svg"));
        assert!(!is_hashed("logjet-dashboard.js"));
        assert!(!is_hashed("x-DEADBEEF.js"));
    }

    #[test]
    fn paths_stay_inside_the_bundle() {
        let root = Path::new("/srv/dist");
        assert_eq!(
            safe_join(root, "a/b.js"),
            Some(PathBuf::from("/srv/dist/a/b.js"))
        );
        assert_eq!(safe_join(root, "../etc/passwd"), None);
        assert_eq!(safe_join(root, "a/../../x"), None);
        assert_eq!(safe_join(root, ".git/config"), None);
        assert_eq!(safe_join(root, "/etc/passwd"), None);
        assert_eq!(safe_join(root, "a\\..\\b"), None);
    }

    #[test]
    fn gzip_negotiation() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            m
        };
        assert!(accepts_gzip(&h("gzip, deflate, br")));
        assert!(accepts_gzip(&h("br;q=1.0, gzip;q=0.8")));
        assert!(!accepts_gzip(&h("gzip;q=0")));
        assert!(!accepts_gzip(&h("br")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
