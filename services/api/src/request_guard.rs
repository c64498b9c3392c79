//! The one guard every request passes before its route, for what no handler should have to think
//! about. Text that Postgres cannot store — the NUL character, `%00` in the address or `\u0000`
//! in a JSON body — is refused with 400 on every route at once, instead of reaching a query and
//! failing there as a 500. The body is read here, once, with a size cap (413) and a deadline
//! (408), so a client that sends the headers and half a body cannot hold a connection; the
//! handler's extractor then reads the buffered copy. Every body the API reads is a JSON object,
//! so a JSON array is refused here too (serde would otherwise read `[..]` into a struct's fields
//! by position).

use std::time::Duration;

use actix_web::HttpMessage;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::middleware::Next;
use actix_web::web::{Bytes, BytesMut};
use confab_common::http::error_response;
use futures_util::StreamExt;

/// Request bodies above this size are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Why a request was refused before its route saw it.
enum Refusal {
    Nul,
    Array,
    TooLarge,
    TooSlow(Duration),
    Broken(PayloadError),
}

impl Refusal {
    fn into_response(self) -> actix_web::HttpResponse {
        match self {
            Self::Nul => error_response(
                StatusCode::BAD_REQUEST,
                "invalid_text",
                "text must not contain the NUL character (U+0000)",
            ),
            Self::Array => {
                error_response(StatusCode::BAD_REQUEST, "invalid_field", "the request body must be a JSON object")
            }
            Self::TooLarge => error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("request body exceeds {MAX_BODY_BYTES} bytes"),
            ),
            Self::TooSlow(deadline) => error_response(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!("the request body did not arrive within {} ms", deadline.as_millis()),
            ),
            Self::Broken(e) => error_response(StatusCode::BAD_REQUEST, "invalid_body", e.to_string()),
        }
    }
}

/// The middleware: checks the address, reads and checks the body, then calls the route.
pub async fn guard(
    body_deadline: Duration,
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    match checked_body(body_deadline, &mut req).await {
        Ok(body) => {
            req.set_payload(Payload::from(body));
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(refusal) => Ok(req.into_response(refusal.into_response()).map_into_right_body()),
    }
}

async fn checked_body(deadline: Duration, req: &mut ServiceRequest) -> Result<Bytes, Refusal> {
    let uri = req.uri();
    if uri.path().contains("%00") || uri.query().is_some_and(|q| q.contains("%00")) {
        return Err(Refusal::Nul);
    }
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES) {
        return Err(Refusal::TooLarge);
    }
    let mut payload = req.take_payload();
    let read = async {
        let mut body = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(Refusal::Broken)?;
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(Refusal::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    let body = tokio::time::timeout(deadline, read).await.map_err(|_| Refusal::TooSlow(deadline))??;
    if carries_nul(&body) {
        return Err(Refusal::Nul);
    }
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(Refusal::Array);
    }
    Ok(body.freeze())
}

/// Whether a JSON body would put a NUL into a string: a `\u0000` escape whose backslash is not
/// itself escaped (it ends an odd run of backslashes). Outside a JSON string a backslash is
/// invalid JSON anyway, so this never refuses a body the JSON parser would have accepted without
/// a NUL. A raw NUL byte is never valid JSON: the parser refuses it as malformed.
fn carries_nul(body: &[u8]) -> bool {
    let mut backslashes = 0usize;
    for (i, &byte) in body.iter().enumerate() {
        match byte {
            b'\\' => {
                backslashes += 1;
                continue;
            }
            b'u' if backslashes % 2 == 1 && body[i + 1..].starts_with(b"0000") => return true,
            _ => {}
        }
        backslashes = 0;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::carries_nul;

    #[test]
    fn a_json_nul_escape_is_found_wherever_it_is() {
        for body in [&br#"{"a":"\u0000"}"#[..], br#"{"\u0000":1}"#, br#"["x\\\u0000"]"#] {
            assert!(carries_nul(body), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn an_escaped_backslash_before_u0000_is_plain_text() {
        for body in [&br#"{"a":"\\u0000"}"#[..], br#"{"a":"\u0001 u0000"}"#, br#"{"a":"\\\\u0000"}"#, b"\\u000"] {
            assert!(!carries_nul(body), "{}", String::from_utf8_lossy(body));
        }
    }
}
