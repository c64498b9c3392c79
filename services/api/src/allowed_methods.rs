//! Which methods each API path answers, read from the OpenAPI document (every route is in it,
//! so the two cannot drift apart). A request for a known path with another method is a 405 with
//! an `Allow` header listing the methods the path does accept, not a 404 that says the path does
//! not exist.

use actix_web::HttpResponse;
use actix_web::dev::ResourceDef;
use actix_web::http::StatusCode;
use actix_web::http::header::ALLOW;
use confab_common::http::error_response;
use utoipa::openapi::OpenApi;

/// Each documented path with its `Allow` header value, e.g. `/v1/me` → `GET, PATCH`.
pub struct AllowedMethods(Vec<(ResourceDef, String)>);

impl AllowedMethods {
    pub fn from_openapi(doc: &OpenApi) -> Self {
        let paths = doc.paths.paths.iter().map(|(path, item)| {
            let methods = [
                ("GET", &item.get),
                ("HEAD", &item.head),
                ("POST", &item.post),
                ("PUT", &item.put),
                ("PATCH", &item.patch),
                ("DELETE", &item.delete),
                ("OPTIONS", &item.options),
                ("TRACE", &item.trace),
            ];
            let allow: Vec<&str> =
                methods.into_iter().filter(|(_, operation)| operation.is_some()).map(|(name, _)| name).collect();
            (ResourceDef::new(path.as_str()), allow.join(", "))
        });
        Self(paths.collect())
    }

    /// The 405 for a request to `path` that no route took, if `path` is a documented one.
    pub fn refuse(&self, path: &str) -> Option<HttpResponse> {
        let (_, allow) = self.0.iter().find(|(def, _)| def.is_match(path))?;
        let mut res = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("this resource answers {allow}"),
        );
        res.headers_mut().insert(ALLOW, allow.parse().ok()?);
        Some(res)
    }
}
