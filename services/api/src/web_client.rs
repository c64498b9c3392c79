//! Serves the browser client from `web/`: its files as they are, and `index.html` for any other
//! page address (`/invite/{token}`, `/rooms/{id}`, …) so that the client's router shows it. API
//! paths with a method they do not answer get the JSON 405, and paths that match no route the
//! JSON 404. Every response carries a strict
//! Content-Security-Policy (scripts and styles only from this origin) and sends no `Referer`,
//! since invite links carry their token in the path.

use std::path::{Path, PathBuf};

use actix_files::{Files, NamedFile};
use actix_web::http::Method;
use actix_web::http::header::{CACHE_CONTROL, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpRequest, HttpResponse, web};
use confab_common::http::not_found;

use crate::allowed_methods::AllowedMethods;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                   media-src 'self' blob:; connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; \
                   form-action 'self'";

/// The browser-safety headers, added to every response that does not set them itself.
pub fn headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("Content-Security-Policy", CSP))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("X-Frame-Options", "DENY"))
}

/// The client's static folders under `dir` (each served by actix-files, which refuses paths
/// that climb out of it).
pub fn folders(dir: &Path) -> impl Iterator<Item = Files> + '_ {
    ["js", "css"].into_iter().map(move |folder| Files::new(&format!("/{folder}"), dir.join(folder)))
}

/// Everything no route matched: the 405 for an API path asked with another method, `index.html`
/// for page addresses, else the JSON 404.
pub async fn fallback(req: HttpRequest, index: web::Data<Index>, routes: web::Data<AllowedMethods>) -> HttpResponse {
    if let Some(refusal) = routes.refuse(req.path()) {
        return refusal;
    }
    if !is_page(req.method(), req.path()) {
        return not_found().await;
    }
    match NamedFile::open(&index.0) {
        Ok(file) => {
            let mut response = file.into_response(&req);
            // Always revalidated, so that a new client version is picked up at once.
            response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
        Err(_) => not_found().await,
    }
}

/// The path of the client's `index.html`.
pub struct Index(pub PathBuf);

/// A GET for something that is not the API's: a page the client routes.
fn is_page(method: &Method, path: &str) -> bool {
    let api = ["/v1/", "/.well-known/", "/openapi.json", "/metrics", "/healthz", "/readyz"];
    (method == Method::GET || method == Method::HEAD) && !api.iter().any(|prefix| path.starts_with(prefix))
}
