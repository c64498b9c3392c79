//! The OpenAPI document's own parts: its metadata, the bearer scheme, and the answers every
//! route shares because one mechanism gives them for all routes (the request guard, the
//! extractors, the bearer check). They are added here, to every operation, so that the document
//! tells the truth about each route without each route having to repeat them.

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, Object, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};

use crate::domain::PeerId;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Confab API",
        description = "Accounts, rooms, invites, cameras, recordings and administration.\n\n\
                       Every error is `{\"error\":{\"code\":\"snake_case\",\"message\":\"...\"}}`. No text \
                       anywhere (path, query or body) may contain the NUL character (U+0000): such a request \
                       is answered 400 `invalid_text`. A method a path does not answer is 405 with `Allow`."
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// Completes the document once every route is in it, with what route annotations cannot say:
/// the shared answers and a rule across two fields.
pub fn complete(openapi: &mut OpenApi) {
    add_shared_responses(openapi);
    camera_username_needs_password(openapi);
    room_capacity_fits_media_and_mode(openapi);
}

/// `max_participants` within the limit of `media` and `mode` (`RoomSettings`): at most 8 when
/// `media` is `mesh`, 50 in a `meeting`, 1000 in a `lecture`. A new room's absent fields are its
/// defaults (`auto`, `meeting`); an update's absent fields are the room's current ones, which no
/// schema knows, so its rule holds them to the most they could allow (an update that fits this
/// rule but not the room is a 409).
fn room_capacity_fits_media_and_mode(openapi: &mut OpenApi) {
    let Some(schemas) = openapi.components.as_mut().map(|c| &mut c.schemas) else { return };
    // Untyped, so that each constrains only the values it names (a builder's default is `object`).
    let one_of = |values: &[&str]| {
        ObjectBuilder::new().schema_type(SchemaType::AnyValue).enum_values(Some(values.iter().map(|v| match *v {
            "null" => serde_json::Value::Null,
            v => serde_json::json!(v),
        })))
    };
    let at_most = |n: i32| ObjectBuilder::new().schema_type(SchemaType::AnyValue).maximum(Some(n));
    let not_mesh = || one_of(&["sfu", "auto", "null"]);
    for (component, lecture) in [
        ("CreateRoomRequest", ObjectBuilder::new().property("mode", one_of(&["lecture"])).required("mode")),
        ("UpdateRoomRequest", ObjectBuilder::new().property("mode", one_of(&["lecture", "null"]))),
    ] {
        let Some(fields) = schemas.remove(component) else { continue };
        let rule = AnyOfBuilder::new()
            .item(ObjectBuilder::new().property("max_participants", one_of(&["null"])))
            .item(ObjectBuilder::new().property("max_participants", at_most(8)))
            .item(ObjectBuilder::new().property("max_participants", at_most(50)).property("media", not_mesh()))
            .item(lecture.property("media", not_mesh()));
        schemas.insert(component.to_owned(), AllOfBuilder::new().item(fields).item(rule).into());
    }
}

/// A camera's user name (other than empty) needs a password (other than empty): a rule across
/// two properties, added to the `NewCameraRequest` component as an `anyOf`.
fn camera_username_needs_password(openapi: &mut OpenApi) {
    let Some(schemas) = openapi.components.as_mut().map(|c| &mut c.schemas) else { return };
    let Some(fields) = schemas.remove("NewCameraRequest") else { return };
    let no_username = ObjectBuilder::new()
        .property(
            "username",
            ObjectBuilder::new()
                .schema_type(nullable_if(true, Type::String))
                .enum_values(Some([serde_json::json!(""), serde_json::Value::Null])),
        )
        .build();
    let with_password = ObjectBuilder::new()
        .property("password", ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)))
        .required("password")
        .build();
    let rule = AnyOfBuilder::new().item(no_username).item(with_password);
    schemas.insert("NewCameraRequest".to_owned(), AllOfBuilder::new().item(fields).item(rule).into());
}

/// Adds the shared answers to every operation.
fn add_shared_responses(openapi: &mut OpenApi) {
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            add(operation, "400", "A parameter or field the route cannot read, or text with a NUL character");
            add(operation, "408", "The request body did not arrive within the read deadline");
            add(operation, "413", "The request body is larger than 64 KiB");
            if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                add(operation, "401", "No valid access token");
                add(operation, "503", "Postgres or Redis is unreachable; retry later");
            }
        }
    }
}

fn add(operation: &mut Operation, status: &str, description: &str) {
    operation.responses.responses.entry(status.to_owned()).or_insert_with(|| {
        let body = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorResponse"))).build();
        ResponseBuilder::new().description(description).content("application/json", body).build().into()
    });
}

/// Characters that are never allowed in names and emails: the control characters (`char::is_control`).
const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";

fn text(min: usize, max: usize, pattern: String, nullable: bool) -> Object {
    ObjectBuilder::new()
        .schema_type(nullable_if(nullable, Type::String))
        .min_length(Some(min))
        .max_length(Some(max))
        .pattern(Some(pattern))
        .build()
}

/// Text of at most `max` characters without a control character.
fn free_text(max: usize, nullable: bool) -> Object {
    ObjectBuilder::new()
        .schema_type(nullable_if(nullable, Type::String))
        .max_length(Some(max))
        .pattern(Some(format!("^[^{CONTROL}]*$")))
        .build()
}

fn name_pattern() -> String {
    format!("^[^{CONTROL}]*[^\\s{CONTROL}][^{CONTROL}]*$")
}

/// A name (display name, room or camera name): 1–100 characters, one of them not white space,
/// no control character (`domain::parse_name`).
pub fn name() -> Object {
    text(1, 100, name_pattern(), false)
}

/// [`name`], or `null` for "unchanged".
pub fn optional_name() -> Object {
    text(1, 100, name_pattern(), true)
}

/// An email address as `domain::Email::parse` takes it: white space around it is trimmed; one
/// `@`; 1–64 characters before it; a domain with a dot, not at either end; no white space or
/// control character inside.
pub fn email() -> Object {
    let part = format!("[^@\\s{CONTROL}]");
    let edge = format!("[^@.\\s{CONTROL}]");
    text(3, 254, format!("^\\s*{part}{{1,64}}@{edge}{part}*\\.{part}*{edge}\\s*$"), false)
}

fn any_password(nullable: bool) -> Object {
    ObjectBuilder::new()
        .schema_type(nullable_if(nullable, Type::String))
        .min_length(Some(8))
        .max_length(Some(1024))
        .build()
}

/// A password: 8–1024 characters, anything.
pub fn password() -> Object {
    any_password(false)
}

/// [`password`], or `null`.
pub fn optional_password() -> Object {
    any_password(true)
}

/// A peer id in a call, as the gateways spell them: 1–64 characters of the URL-safe base64
/// alphabet (`domain::PeerId`).
pub fn peer_id() -> Object {
    text(1, PeerId::MAX_LEN, PEER_ID_PATTERN.to_owned(), false)
}

/// [`peer_id`]'s pattern, also for the path parameter that names a peer.
const PEER_ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";

/// A role that can be given to a member: `member` or `moderator` (ownership cannot be given).
fn assignable_role(nullable: bool) -> Object {
    let mut values = vec![serde_json::json!("member"), serde_json::json!("moderator")];
    if nullable {
        values.push(serde_json::Value::Null);
    }
    ObjectBuilder::new().schema_type(nullable_if(nullable, Type::String)).enum_values(Some(values)).build()
}

pub fn role_to_give() -> Object {
    assignable_role(false)
}

pub fn optional_role_to_give() -> Object {
    assignable_role(true)
}

/// A room's `media`, or `null` for the default (create) or "unchanged" (update).
pub fn media() -> Object {
    nullable_choice(&["mesh", "sfu", "auto"])
}

/// A room's `mode`, or `null` for the default (create) or "unchanged" (update).
pub fn mode() -> Object {
    nullable_choice(&["meeting", "lecture"])
}

fn nullable_choice(values: &[&str]) -> Object {
    let values = values.iter().map(|v| serde_json::json!(v)).chain([serde_json::Value::Null]);
    ObjectBuilder::new().schema_type(nullable_if(true, Type::String)).enum_values(Some(values)).build()
}

fn nullable_if(nullable: bool, ty: Type) -> SchemaType {
    if nullable { SchemaType::from_iter([ty, Type::Null]) } else { SchemaType::new(ty) }
}

/// An IPv4 address octet as Rust parses it (no leading zeros).
const OCTET: &str = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";

/// A port number, 0 to 65535, in at most five digits.
const PORT: &str = "(?:[0-9]{1,4}|0[0-9]{4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";

/// A webhook receiver, as `is_plain_http_url` takes it: `http(s)://`, a DNS name whose last
/// label starts with a letter (a URL parser reads an all-numeric last label as an IPv4 address)
/// or an IPv4 address, an optional port, then a path, query or fragment in printable ASCII; at
/// most 2048 characters.
fn webhook_url_schema(nullable: bool) -> Object {
    let label = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
    let last = "[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
    let host = format!(r"(?:(?:{label}\.)*{last}|{OCTET}(?:\.{OCTET}){{3}})");
    ObjectBuilder::new()
        .schema_type(nullable_if(nullable, Type::String))
        .max_length(Some(2048))
        .pattern(Some(format!("^https?://{host}(?::{PORT})?(?:[/?#][!-~]*)?$")))
        .build()
}

pub fn webhook_url() -> Object {
    webhook_url_schema(false)
}

pub fn optional_webhook_url() -> Object {
    webhook_url_schema(true)
}

/// A camera: an `rtsp` or `rtsps` URL without credentials. The server also takes host names
/// and any public address, but whether a name resolves to allowed addresses depends on DNS at
/// the time, which no schema can state: the pattern names the form accepted without a lookup, a
/// public IPv4 address in 1.0.0.0/8–9.0.0.0/8.
fn rtsp_url(nullable: bool) -> Object {
    let octet = OCTET;
    ObjectBuilder::new()
        .schema_type(nullable_if(nullable, Type::String))
        .max_length(Some(2048))
        .pattern(Some(format!(r"^rtsps?://[1-9]\.{octet}\.{octet}\.{octet}(?::[1-9][0-9]{{0,3}})?(?:/[!-~]*)?$")))
        .build()
}

pub fn camera_url() -> Object {
    rtsp_url(false)
}

pub fn optional_camera_url() -> Object {
    rtsp_url(true)
}

/// A webhook signing secret as `SigningSecret::parse` takes it: `whsec_` and the canonical
/// padded base64 of 24 to 64 bytes, or `null` for a generated one.
pub fn optional_webhook_secret() -> Object {
    let group = "[A-Za-z0-9+/]{4}";
    let last = "(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=|[A-Za-z0-9+/][AQgw]==)";
    // 8 groups are 24 bytes; 9 to 21 groups with any last one are 25 to 63; 22 with `==` is 64.
    let pattern =
        format!("^whsec_(?:(?:{group}){{8}}|(?:{group}){{8,20}}{last}|(?:{group}){{21}}[A-Za-z0-9+/][AQgw]==)$");
    ObjectBuilder::new().schema_type(nullable_if(true, Type::String)).pattern(Some(pattern)).build()
}

/// A camera's user name: at most 255 characters, no control character (`CameraCredentials`).
pub fn camera_username() -> Object {
    free_text(255, true)
}

/// A camera's password: at most 1024 characters, no control character; empty or `null` is none.
pub fn camera_password() -> Object {
    free_text(1024, true)
}

/// A webhook's note: at most 200 characters, no control character.
pub fn webhook_description() -> Object {
    free_text(200, false)
}

pub fn optional_webhook_description() -> Object {
    free_text(200, true)
}

/// Event types a webhook receives (`webhooks::EVENT_TYPES`).
fn events(nullable: bool) -> utoipa::openapi::schema::Array {
    let kind = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(crate::webhooks::EVENT_TYPES.iter().map(|e| serde_json::json!(e))))
        .build();
    let mut array = utoipa::openapi::schema::ArrayBuilder::new().items(kind);
    if nullable {
        array = array.schema_type(SchemaType::from_iter([Type::Array, Type::Null]));
    }
    array.build()
}

pub fn webhook_events() -> utoipa::openapi::schema::Array {
    events(false)
}

pub fn optional_webhook_events() -> utoipa::openapi::schema::Array {
    events(true)
}
