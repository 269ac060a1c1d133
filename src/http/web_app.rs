//! The browser app (`web/`, built by Vite into `server.web_dir`), served by the hub itself:
//! hashed assets under `/assets/` cached for good, `index.html` for every other GET that a
//! browser makes outside the API (the app's own routes), never cached, with a content
//! security policy that keeps the page to its own origin. Without a built app, those paths
//! answer the API's 404 as before.

use std::path::{Path, PathBuf};

use actix_files::{Files, NamedFile};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::ApiError;

/// Hashed file names change with their content: a year, never revalidated.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Scripts and fonts from the hub only, never inline; the socket and API on the same origin;
/// no plugins, no framing. Inline styles and https images are allowed for the one place
/// that needs them, an email shown in its sandboxed frame: that frame adds a policy of its
/// own that refuses remote images until the reader asks (web/src/email).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob: https:; font-src 'self'; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// Where the built app is, when there is one.
#[derive(Clone, Debug)]
pub struct WebApp {
    index: Option<PathBuf>,
}

impl WebApp {
    pub fn at(dir: &Path) -> Self {
        let index = dir.join("index.html");
        WebApp { index: index.is_file().then_some(index) }
    }

    pub fn is_built(&self) -> bool {
        self.index.is_some()
    }

    /// The `/assets` route, when the app is built.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        let Some(index) = &self.index else { return };
        let assets = index.with_file_name("assets");
        cfg.app_data(web::Data::new(self.clone())).service(
            web::scope("/assets")
                .wrap(DefaultHeaders::new().add((header::CACHE_CONTROL, IMMUTABLE)))
                .service(Files::new("", assets).use_etag(true).use_last_modified(true)),
        );
    }
}

/// What no route matched: the app's page for a browser's GET outside the API, else the
/// API's 404 in the error format.
pub async fn fallback(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let app = req.app_data::<web::Data<WebApp>>().and_then(|app| app.index.clone());
    let wants_page = matches!(*req.method(), actix_web::http::Method::GET | actix_web::http::Method::HEAD)
        && !req.path().starts_with("/api/")
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|accept| accept.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"));
    match app {
        Some(index) if wants_page => {
            let page = NamedFile::open_async(&index)
                .await
                .map_err(|err| ApiError::Internal(anyhow::anyhow!("the app's page could not be read: {err}")))?;
            let mut response = page.use_etag(true).use_last_modified(true).into_response(&req);
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
            headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
            headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            Ok(response)
        }
        _ => Err(ApiError::NotFound("no such resource".into())),
    }
}
