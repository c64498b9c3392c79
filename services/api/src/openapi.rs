//! The OpenAPI document's own parts: its metadata, the bearer scheme, and the answers every
//! route shares because one mechanism gives them for all routes (the request guard, the
//! extractors, the bearer check). They are added here, to every operation, so that the document
//! tells the truth about each route without each route having to repeat them.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};

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

/// Adds the shared answers to every operation of `openapi` (once all routes are in it).
pub fn add_shared_responses(openapi: &mut OpenApi) {
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
