//! The browser app as the hub serves it: long-lived hashed assets, the page for the app's
//! own routes, and the API's 404 everywhere else.

use crate::helpers::{json, spawn_app, spawn_app_with};

/// A built app in a directory of the test's own: an index and one hashed asset.
fn built_app() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cp-web-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(dir.join("index.html"), "<!doctype html><div id=\"root\"></div>").unwrap();
    std::fs::write(dir.join("assets/index-abc123.js"), "console.log('app')").unwrap();
    dir
}

async fn page(app: &crate::helpers::TestApp, path: &str) -> reqwest::Response {
    app.client.get(app.url(path)).header("Accept", "text/html,application/xhtml+xml").send().await.unwrap()
}

#[actix_web::test]
async fn the_app_page_serves_its_routes_and_its_assets_are_cached_for_good() {
    let dir = built_app();
    let web_dir = dir.to_string_lossy().into_owned();
    let app = spawn_app_with(move |s| s.server.web_dir = web_dir).await;

    for path in ["/", "/inbox", "/inbox/0190c7c4-0000-7000-8000-000000000001", "/sign-in"] {
        let response = page(&app, path).await;
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert_eq!(headers["cache-control"], "no-cache", "{path}");
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("default-src 'self'") && policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(policy.contains("script-src 'self';"), "no inline or remote script: {policy}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(response.text().await.unwrap().contains("id=\"root\""), "{path}");
    }

    let asset = app.get("/assets/index-abc123.js").await;
    assert_eq!(asset.status(), 200);
    assert_eq!(asset.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert!(asset.headers()["content-type"].to_str().unwrap().contains("javascript"));
    assert_eq!(asset.text().await.unwrap(), "console.log('app')");

    // Outside the app: the API's own 404 in the error format, never the page.
    let missing_asset = app.get("/assets/nope.js").await;
    assert_eq!(missing_asset.status(), 404);
    for path in ["/api/v1/no-such-thing", "/api/nope"] {
        let response = page(&app, path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(json(response).await["error"]["code"], "not_found", "{path}");
    }
    // A client that does not ask for HTML (an API client, a script) gets the 404 too.
    let response = app.get("/inbox").await;
    assert_eq!(response.status(), 404);
    assert_eq!(json(response).await["error"]["code"], "not_found");
    // Other methods are not the page.
    let response = app.client.post(app.url("/inbox")).header("Accept", "text/html").send().await.unwrap();
    assert_eq!(response.status(), 404);
    // Paths that climb out of the assets are refused.
    let climbing = app.get("/assets/..%2Findex.html").await;
    assert_ne!(climbing.status(), 200);
    std::fs::remove_dir_all(dir).unwrap();
}

#[actix_web::test]
async fn without_a_built_app_every_unknown_path_is_the_api_404() {
    let app = spawn_app_with(|s| s.server.web_dir = "/nonexistent/web/dist".into()).await;
    for path in ["/", "/inbox", "/assets/index.js"] {
        let response = page(&app, path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(json(response).await["error"]["code"], "not_found", "{path}");
    }
    // The API itself is unchanged.
    assert_eq!(spawn_app().await.get("/health/").await.status(), 200);
}
