//! Hand-forged access tokens: every known JWT attack is refused with 401, never a 500.

use awc::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn sign_ed(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64(&signature.to_bytes()))
}

struct Forge {
    kid: String,
    claims: Value,
}

impl Forge {
    async fn new(app: &TestApp) -> Self {
        let (_, login) = app.logged_in_user().await;
        let jwks = app.get("/.well-known/jwks.json", None).await.body;
        let now = chrono::Utc::now().timestamp();
        Self {
            kid: jwks["keys"][0]["kid"].as_str().unwrap().to_owned(),
            claims: json!({
                "iss": "confab", "aud": "confab-api", "sub": login["user"]["id"],
                "exp": now + 600, "iat": now, "jti": "forged", "role": "user", "ver": 0,
                "fam": uuid::Uuid::new_v4(),
            }),
        }
    }

    fn header(&self) -> Value {
        json!({"alg": "EdDSA", "typ": "JWT", "kid": self.kid})
    }

    fn with(&self, field: &str, value: Value) -> Value {
        let mut claims = self.claims.clone();
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(field);
        } else {
            claims[field] = value;
        }
        claims
    }
}

async fn status_of(app: &TestApp, token: &str) -> StatusCode {
    app.get("/v1/me", Some(token)).await.status
}

#[actix_web::test]
async fn a_correctly_forged_token_is_accepted_so_the_attacks_below_are_meaningful() {
    let app = spawn_app().await;
    let forge = Forge::new(&app).await;
    let token = sign_ed(&app.signing_key, &forge.header(), &forge.claims);
    assert_eq!(status_of(&app, &token).await, StatusCode::OK);
}

#[actix_web::test]
async fn alg_none_is_rejected() {
    let app = spawn_app().await;
    let forge = Forge::new(&app).await;
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": forge.kid});
        let token = format!("{}.{}.", b64(header.to_string().as_bytes()), b64(forge.claims.to_string().as_bytes()));
        assert_eq!(status_of(&app, &token).await, StatusCode::UNAUTHORIZED, "alg {alg}");
    }
}

#[actix_web::test]
async fn hs256_signed_with_the_public_key_is_rejected() {
    let app = spawn_app().await;
    let forge = Forge::new(&app).await;
    let public = app.signing_key.verifying_key().to_bytes();
    let jwks = app.get("/.well-known/jwks.json", None).await.raw;
    for secret in [public.to_vec(), b64(&public).into_bytes(), jwks] {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(forge.kid.clone());
        let key = jsonwebtoken::EncodingKey::from_secret(&secret);
        let token = jsonwebtoken::encode(&header, &forge.claims, &key).unwrap();
        assert_eq!(status_of(&app, &token).await, StatusCode::UNAUTHORIZED);
    }
}

#[actix_web::test]
async fn wrong_audience_issuer_and_missing_required_claims_are_rejected() {
    let app = spawn_app().await;
    let forge = Forge::new(&app).await;
    let cases = [
        ("aud", json!("confab-gateway")),
        ("aud", json!(["someone-else"])),
        ("iss", json!("https://evil.example")),
        ("sub", Value::Null),
        ("exp", Value::Null),
        ("aud", Value::Null),
        ("iss", Value::Null),
        ("sub", json!("not-a-uuid")),
        ("sub", json!("00000000-0000-0000-0000-000000000000")),
        ("ver", json!(1)),
        ("fam", Value::Null),
        ("fam", json!("not-a-uuid")),
        ("role", json!("superuser")),
    ];
    for (field, value) in cases {
        let token = sign_ed(&app.signing_key, &forge.header(), &forge.with(field, value.clone()));
        assert_eq!(status_of(&app, &token).await, StatusCode::UNAUTHORIZED, "{field} = {value}");
    }
}

#[actix_web::test]
async fn expiry_is_enforced_with_at_most_30_seconds_of_leeway() {
    let app = spawn_app().await;
    let forge = Forge::new(&app).await;
    let now = chrono::Utc::now().timestamp();
    let expired = sign_ed(&app.signing_key, &forge.header(), &forge.with("exp", json!(now - 45)));
    assert_eq!(status_of(&app, &expired).await, StatusCode::UNAUTHORIZED);
    let within_leeway = sign_ed(&app.signing_key, &forge.header(), &forge.with("exp", json!(now - 5)));
    assert_eq!(status_of(&app, &within_leeway).await, StatusCode::OK);
}

#[actix_web::test]
async fn a_tampered_payload_is_rejected() {
    let app = spawn_app().await;
    let forge = Forge::new(&app).await;
    let token = sign_ed(&app.signing_key, &forge.header(), &forge.claims);
    let parts: Vec<&str> = token.split('.').collect();
    let tampered_claims = forge.with("role", json!("admin"));
    let tampered = format!("{}.{}.{}", parts[0], b64(tampered_claims.to_string().as_bytes()), parts[2]);
    assert_eq!(status_of(&app, &tampered).await, StatusCode::UNAUTHORIZED);
    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    signature[0] ^= 1;
    let bad_signature = format!("{}.{}.{}", parts[0], parts[1], b64(&signature));
    assert_eq!(status_of(&app, &bad_signature).await, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn unknown_missing_and_hostile_key_ids_are_rejected() {
    let app = spawn_app().await;
    let forge = Forge::new(&app).await;
    // Not the app's key (the testkit's), whatever the kid says.
    let rogue = SigningKey::from_bytes(&[9; 32]);
    assert_ne!(rogue.verifying_key(), app.signing_key.verifying_key());
    let own_kid = sign_ed(&rogue, &forge.header(), &forge.claims);
    assert_eq!(status_of(&app, &own_kid).await, StatusCode::UNAUTHORIZED, "a key outside the set");
    for kid in [json!("unknown"), json!("../../../../etc/passwd"), json!("' OR 1=1 --"), json!(null), json!(42)] {
        let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": kid});
        let token = sign_ed(&app.signing_key, &header, &forge.claims);
        assert_eq!(status_of(&app, &token).await, StatusCode::UNAUTHORIZED, "kid {kid}");
    }
    let header = json!({"alg": "EdDSA", "typ": "JWT", "jku": "http://127.0.0.1:1/jwks.json", "kid": "x"});
    let token = sign_ed(&rogue, &header, &forge.claims);
    assert_eq!(status_of(&app, &token).await, StatusCode::UNAUTHORIZED, "jku is never followed");
}

#[actix_web::test]
async fn garbage_in_the_authorization_header_is_a_clean_401() {
    let app = spawn_app().await;
    for token in ["", "x", "a.b", "a.b.c", "....", &"A".repeat(10_000), "eyJhbGciOiJFZERTQSJ9.e30.", "ünï.cö.dé"] {
        let reply = app.get("/v1/me", Some(token)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{token:.20}");
        assert_eq!(reply.code(), "unauthorized");
    }
}
