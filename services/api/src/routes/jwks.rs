//! The public signing keys, so other services verify tokens without the private key.

use actix_web::{HttpResponse, get, web};

use crate::state::AppState;

/// The JSON Web Key Set of the access-token and ticket signing keys (Ed25519, `kid`-keyed).
#[utoipa::path(tag = "auth", responses((status = 200, description = "RFC 7517 JWK Set")))]
#[get("/.well-known/jwks.json")]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().insert_header(("Cache-Control", "public, max-age=300")).json(state.access_tokens.keys().jwks())
}
