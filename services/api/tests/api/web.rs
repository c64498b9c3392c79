//! The browser client is served at `/`: its files, `index.html` for page addresses such as an
//! invite link, and the JSON 404 for unknown API paths; all with the browser-safety headers.

use awc::http::StatusCode;

use crate::helpers::spawn_app;

async fn fetch(app: &crate::helpers::TestApp, method: &str, path: &str) -> (StatusCode, String, String, Vec<u8>) {
    let mut response =
        app.client.request(method.parse().unwrap(), app.url(path)).send().await.expect("the API answers");
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let (content_type, csp) = (header("content-type"), header("content-security-policy"));
    let body = response.body().limit(1 << 20).await.unwrap().to_vec();
    (response.status(), content_type, csp, body)
}

#[actix_web::test]
async fn the_client_and_its_page_addresses_are_served_with_a_strict_policy() {
    let app = spawn_app().await;
    let index = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/index.html")).unwrap();
    for path in ["/", "/rooms", "/invite/abc123", "/rooms/9b2f/call"] {
        let (status, content_type, csp, body) = fetch(&app, "GET", path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(content_type.starts_with("text/html"), "{path}: {content_type}");
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(body, index, "{path} is the client's index.html");
    }
    let (status, content_type, _, body) = fetch(&app, "GET", "/js/main.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.contains("javascript"), "{content_type}");
    assert!(String::from_utf8(body).unwrap().contains("import"));
}

#[actix_web::test]
async fn unknown_api_paths_and_other_methods_get_the_json_404() {
    let app = spawn_app().await;
    for (method, path) in
        [("GET", "/v1/nothing-here"), ("GET", "/.well-known/nothing"), ("POST", "/rooms"), ("DELETE", "/")]
    {
        let (status, content_type, _, body) = fetch(&app, method, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
        assert!(content_type.starts_with("application/json"), "{method} {path}: {content_type}");
        assert!(String::from_utf8_lossy(&body).contains("not_found"), "{method} {path}");
    }
}

#[actix_web::test]
async fn paths_that_climb_out_of_the_client_directory_never_reach_other_files() {
    let app = spawn_app().await;
    let index = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/index.html")).unwrap();
    for path in ["/js/../../Cargo.toml", "/%2e%2e/Cargo.toml", "/..%2fCargo.toml", "/js/%2e%2e/%2e%2e/README.md"] {
        let (status, _, _, body) = fetch(&app, "GET", path).await;
        // Either refused or treated as a page address (the client shows "not found").
        assert!(status == StatusCode::NOT_FOUND || body == index, "{path}: {status}");
        assert!(!String::from_utf8_lossy(&body).contains("[workspace]"), "{path} leaked a file outside web/");
    }
}
