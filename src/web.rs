//! The admin page: files under `web/`, embedded in the binary with rust-embed (read from disk in
//! debug builds, so the page can be edited live). `/` is `index.html`; unknown paths are 404.
//!
//! Every answer carries `X-Frame-Options: DENY` and a Content-Security-Policy with
//! `frame-ancestors 'none'`, so no other site can frame the page and trick a user into clicking
//! its buttons (clickjacking); the policy also keeps the page to its own scripts, styles and
//! server (`connect-src` names the WebSocket origin too, which older browsers do not count as
//! `'self'`). `nosniff` and `no-referrer` come along.

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "web/"]
#[exclude = "tests/**"]
#[exclude = "package.json"]
#[exclude = "README.md"]
#[exclude = ".*"]
struct Assets;

/// The admin page's policy, before `connect-src`.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

/// Sets the framing refusal (`X-Frame-Options: DENY`, and `csp` as the policy, which must hold
/// `frame-ancestors 'none'`), `nosniff` and `no-referrer`.
pub fn forbid_framing(headers: &mut HeaderMap, csp: &str) {
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Ok(v) = HeaderValue::from_str(csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// The policy for a page served as `host`: the page may talk to its own server over HTTP and
/// WebSocket. A `Host` that is not a plain authority gets `'self'` only.
fn policy(host: Option<&str>) -> String {
    let authority = host.filter(|h| {
        !h.is_empty()
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    });
    match authority {
        Some(h) => format!("{CSP}; connect-src 'self' ws://{h} wss://{h}"),
        None => format!("{CSP}; connect-src 'self'"),
    }
}

pub async fn serve(uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    let mut resp = match Assets::get(path) {
        Some(file) => {
            let mime = file.metadata.mimetype().to_string();
            let cache = if path == "index.html" {
                "no-cache"
            } else {
                "public, max-age=300"
            };
            (
                [
                    (header::CONTENT_TYPE, mime),
                    (header::CACHE_CONTROL, cache.to_string()),
                ],
                file.data,
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    forbid_framing(resp.headers_mut(), &policy(host));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_the_websocket_origin_of_plain_hosts_only() {
        let p = policy(Some("127.0.0.1:8080"));
        assert!(p.contains("frame-ancestors 'none'"), "{p}");
        assert!(p.ends_with("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080"));
        assert!(policy(Some("[::1]:80")).contains("ws://[::1]:80"));
        for odd in [Some("a; script-src *"), Some("x y"), Some(""), None] {
            assert!(policy(odd).ends_with("connect-src 'self'"), "{odd:?}");
        }
    }
}
