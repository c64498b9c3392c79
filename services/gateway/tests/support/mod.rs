//! What the gateway tests share: a JWKS endpoint standing in for the API, and tickets signed the
//! way the API signs them.

use actix_web::{App, HttpResponse, HttpServer, web};
use confab_common::tokens::SigningKeys;
use confab_tickets::{TICKET_AUDIENCE, TicketClaims};

/// Serves `keys`' public half over HTTP on a free port; returns the JWKS URL.
pub fn jwks_server(keys: &SigningKeys) -> String {
    jwks_server_at(keys, 0)
}

/// Serves `keys`' public half on `port` (0: any free port); returns the JWKS URL.
pub fn jwks_server_at(keys: &SigningKeys, port: u16) -> String {
    let jwks = keys.jwks();
    let server = HttpServer::new(move || {
        let jwks = jwks.clone();
        App::new().route(
            "/jwks",
            web::get().to(move || {
                let jwks = jwks.clone();
                async move { HttpResponse::Ok().json(jwks) }
            }),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", port))
    .unwrap();
    let url = format!("http://127.0.0.1:{}/jwks", server.addrs()[0].port());
    actix_web::rt::spawn(server.run());
    url
}

/// A 60-second join ticket for `user` in `room`.
pub fn ticket(keys: &SigningKeys, room: &str, name: &str, user: &str, capacity: u32) -> String {
    ticket_as(keys, room, name, user, capacity, "member", None)
}

/// A ticket with the given room role (and, for a recorder, its recording).
pub fn ticket_as(
    keys: &SigningKeys,
    room: &str,
    name: &str,
    user: &str,
    capacity: u32,
    role: &str,
    recording_id: Option<&str>,
) -> String {
    let now = chrono::Utc::now().timestamp();
    keys.sign(&TicketClaims {
        iss: "confab".into(),
        aud: TICKET_AUDIENCE.into(),
        sub: user.to_owned(),
        exp: now + 60,
        iat: now,
        jti: uuid::Uuid::new_v4().simple().to_string(),
        room_id: room.into(),
        display_name: name.into(),
        room_role: role.into(),
        max_participants: capacity,
        recording_id: recording_id.map(str::to_owned),
    })
    .unwrap()
}
