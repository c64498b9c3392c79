//! A signing key as the API holds it, the join tickets it signs, and a JWKS endpoint that
//! publishes it to gateways.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{App, HttpResponse, HttpServer, web};
use confab_common::tokens::SigningKeys;
use confab_tickets::{TICKET_AUDIENCE, TicketClaims};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;

/// The API's signing key: as keys, and as the PEM services are configured with.
pub struct TestKeys {
    pub keys: SigningKeys,
    pub pem: String,
}

impl Default for TestKeys {
    fn default() -> Self {
        let pem = SigningKey::from_bytes(&[7; 32]).to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        Self { keys: SigningKeys::from_pem(&pem).unwrap(), pem }
    }
}

impl TestKeys {
    /// A ticket for `room` as the API signs it (issuer `confab`, one minute, up to 4 in the room).
    pub fn ticket(&self, room: &str, display_name: &str, room_role: &str, recording_id: Option<String>) -> String {
        self.ticket_for(&uuid::Uuid::new_v4().to_string(), room, display_name, room_role, recording_id)
    }

    /// A ticket for user `user_id`.
    pub fn ticket_for(
        &self,
        user_id: &str,
        room: &str,
        display_name: &str,
        room_role: &str,
        recording_id: Option<String>,
    ) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        self.keys
            .sign(&TicketClaims {
                iss: "confab".into(),
                aud: TICKET_AUDIENCE.into(),
                sub: user_id.to_owned(),
                exp: now + 60,
                iat: now,
                jti: uuid::Uuid::new_v4().simple().to_string(),
                room_id: room.to_owned(),
                display_name: display_name.to_owned(),
                room_role: room_role.to_owned(),
                max_participants: 4,
                recording_id,
                media: None,
                mode: None,
            })
            .unwrap()
    }
}

/// Serves `keys`' JWKS on an ephemeral port; returns its URL.
pub fn jwks_server(keys: &SigningKeys) -> String {
    jwks_server_at(keys, 0)
}

/// Serves `keys`' JWKS on `port` (0: any free port), which a test may choose before, for a
/// gateway configured before its key server is up; returns its URL.
pub fn jwks_server_at(keys: &SigningKeys, port: u16) -> String {
    let jwks = keys.jwks();
    let server = HttpServer::new(move || {
        let jwks = jwks.clone();
        App::new().route("/jwks", web::get().to(move || std::future::ready(HttpResponse::Ok().json(jwks.clone()))))
    })
    .workers(1)
    .bind(("127.0.0.1", port))
    .unwrap();
    let url = format!("http://127.0.0.1:{}/jwks", server.addrs()[0].port());
    actix_web::rt::spawn(server.run());
    url
}
