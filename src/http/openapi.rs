//! The OpenAPI description, generated from the handlers' annotations.

use utoipa::OpenApi;

use super::error::{ErrorBody, ErrorDetail};
use super::{health, metrics};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ConsultantPro API",
        description = "Real-time communications hub and API for consulting firms. Every success \
                       is `{\"data\", \"meta\"}`; every error is `{\"error\": {\"code\", \"message\", \
                       \"details\"}}`. Every response carries `X-Request-Id`."
    ),
    paths(health::health, health::ready, metrics::metrics_text),
    components(schemas(ErrorBody, ErrorDetail)),
    tags((name = "operations", description = "Health, readiness and metrics"))
)]
pub struct ApiDoc;
