//! What the request extractors answer when they cannot read a request: every failure of a JSON
//! body, a query string or a path segment is a 4xx in the one JSON error shape, naming the
//! problem, instead of actix's plain-text defaults.

use actix_web::error::{InternalError, JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use confab_common::http::error_response;

/// JSON bodies: any content type, and every parse failure a 4xx. (Their size is capped before,
/// by the request guard.)
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default().content_type_required(false).error_handler(|err, _req| {
        let res = match &err {
            JsonPayloadError::Deserialize(e) if e.is_data() => {
                error_response(StatusCode::BAD_REQUEST, "invalid_field", e.to_string())
            }
            JsonPayloadError::Deserialize(e) => {
                error_response(StatusCode::BAD_REQUEST, "malformed_json", e.to_string())
            }
            JsonPayloadError::ContentType => {
                error_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send application/json")
            }
            other => error_response(StatusCode::BAD_REQUEST, "invalid_body", other.to_string()),
        };
        shaped(err, res)
    })
}

/// Query strings: a parameter of the wrong type or out of range is a 400 `invalid_query`.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let message = match &err {
            QueryPayloadError::Deserialize(e) => e.to_string(),
            other => other.to_string(),
        };
        let res = error_response(StatusCode::BAD_REQUEST, "invalid_query", message);
        shaped(err, res)
    })
}

/// Path segments: one that cannot be read names no resource, so it is the same 404 as an unknown
/// id.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _req| {
        let res = error_response(StatusCode::NOT_FOUND, "not_found", "no such resource");
        shaped(err, res)
    })
}

fn shaped(err: impl std::fmt::Debug + std::fmt::Display + 'static, res: HttpResponse) -> actix_web::Error {
    InternalError::from_response(err, res).into()
}
