//! The router a process serves from the moment it binds its port: `/health` and `/ready` answer
//! at once, and every other request waits for the full API (503 with `Retry-After` until then),
//! so a load balancer sees a replaying node as alive but not ready instead of refused.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hourglass_types::ErrorKind;
use tower::ServiceExt;

use crate::error::ApiError;
use crate::readiness::Readiness;

/// The API the process will serve once started; set exactly once.
pub type LateRouter = Arc<OnceLock<Router>>;

#[derive(Clone)]
struct Startup {
    readiness: Arc<Readiness>,
    app: LateRouter,
}

/// A router answering health and readiness itself and handing everything else to `app` once it
/// is set.
pub fn startup_router(readiness: Arc<Readiness>, app: LateRouter) -> Router {
    Router::new()
        .route("/health", get(crate::handlers::health))
        .route("/ready", get(ready))
        .fallback(delegate)
        .with_state(Startup { readiness, app })
}

async fn ready(State(s): State<Startup>) -> Response {
    readiness_response(&s.readiness)
}

/// The `/ready` answer: 200 `{"status":"ready"}`, or 503 naming every condition that holds.
pub(crate) fn readiness_response(readiness: &Readiness) -> Response {
    let problems = readiness.problems();
    if problems.is_empty() {
        return axum::Json(serde_json::json!({"status": "ready"})).into_response();
    }
    // Not an ApiError: the reasons are meant for operators and load balancers poll often, so
    // this is neither hidden nor logged per request.
    let reasons: Vec<&str> = problems.iter().map(|c| c.describe()).collect();
    let body = serde_json::json!({"status": "not ready", "reasons": reasons});
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

async fn delegate(State(s): State<Startup>, request: Request<Body>) -> Response {
    match s.app.get() {
        Some(app) => match app.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        None => ApiError::new(ErrorKind::Unavailable, "starting: replaying the WAL").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;
    use axum::http::Request as HttpRequest;

    use super::*;
    use crate::readiness::Condition;

    async fn call(router: &Router, path: &str) -> (StatusCode, String) {
        let request = HttpRequest::builder().uri(path).body(Body::empty()).expect("request");
        let response = router.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let body = to_bytes(response.into_body(), 1 << 20).await.expect("body");
        (status, String::from_utf8_lossy(&body).to_string())
    }

    #[tokio::test]
    async fn answers_health_at_once_and_the_api_once_started() {
        let readiness = Arc::new(Readiness::new());
        let app: LateRouter = Arc::default();
        let router = startup_router(Arc::clone(&readiness), Arc::clone(&app));

        assert_eq!(call(&router, "/health").await.0, StatusCode::OK);
        let (status, body) = call(&router, "/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("replaying the WAL"), "{body}");
        assert_eq!(call(&router, "/api/v1/anything").await.0, StatusCode::SERVICE_UNAVAILABLE);

        let api = Router::new().route("/api/v1/anything", get(|| async { "served" }));
        assert!(app.set(api).is_ok());
        readiness.set(Condition::Starting, false);
        assert_eq!(call(&router, "/ready").await, (StatusCode::OK, r#"{"status":"ready"}"#.to_string()));
        assert_eq!(call(&router, "/api/v1/anything").await, (StatusCode::OK, "served".to_string()));

        readiness.set(Condition::CatalogUnreachable, true);
        readiness.set(Condition::Draining, true);
        let (status, body) = call(&router, "/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("catalog unreachable") && body.contains("shutting down"), "{body}");
    }
}
