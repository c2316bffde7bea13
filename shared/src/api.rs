//! `/api/*` as one router, shared by local mode's gateway and the query function: the alert routes
//! (which also take POST and DELETE) and the read-only query API.

use crate::alerts::{AlertApi, AlertEvent};
use std::sync::Arc;

use crate::ports::{AlertStore, MetricStore, SeriesAdmission};
use crate::query::{ApiResponse, QueryApi};

pub struct ApiRouter<S: MetricStore + ?Sized, A: AlertStore + ?Sized> {
    query: QueryApi<S>,
    alerts: AlertApi<A>,
    /// Serves `GET /api/limits` (active-series refusals) when set.
    limits: Option<Arc<dyn SeriesAdmission>>,
}

/// One routed answer.
pub struct RoutedResponse {
    pub response: ApiResponse,
    /// The `Allow` header of a 405 from the read-only routes.
    pub allow: Option<&'static str>,
    /// Alert events the request caused (an acknowledgement), for the live push.
    pub events: Vec<AlertEvent>,
}

impl<S: MetricStore + ?Sized, A: AlertStore + ?Sized> ApiRouter<S, A> {
    pub fn new(query: QueryApi<S>, alerts: AlertApi<A>) -> Self {
        ApiRouter {
            query,
            alerts,
            limits: None,
        }
    }

    /// Serves the refusal counts of the active-series limits at `GET /api/limits`.
    pub fn with_series_admission(mut self, admission: Arc<dyn SeriesAdmission>) -> Self {
        self.limits = Some(admission);
        self
    }

    /// Serves one request; `now_unix_s` is the query API's "now" and stamps acknowledgements.
    pub async fn handle(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
        now_unix_s: i64,
    ) -> RoutedResponse {
        if AlertApi::<A>::handles(path) {
            let outcome = self
                .alerts
                .handle_with_events(method, path, query, body, now_unix_s)
                .await;
            return RoutedResponse {
                response: outcome.response,
                allow: None,
                events: outcome.events,
            };
        }
        if method == "GET" && path == "/api/limits" {
            if let Some(admission) = &self.limits {
                return RoutedResponse {
                    response: limits_response(admission.as_ref()).await,
                    allow: None,
                    events: Vec::new(),
                };
            }
        }
        if method == "GET" {
            return RoutedResponse {
                response: self.query.handle(path, query, now_unix_s).await,
                allow: None,
                events: Vec::new(),
            };
        }
        RoutedResponse {
            response: ApiResponse {
                status: 405,
                body: serde_json::json!({ "error": format!("{method} is not allowed on {path}") })
                    .to_string(),
            },
            allow: Some("GET"),
            events: Vec::new(),
        }
    }
}

/// `GET /api/limits`: the active-series limits and what they refused.
async fn limits_response(admission: &dyn SeriesAdmission) -> ApiResponse {
    match admission.refusals().await {
        Ok(report) => ApiResponse {
            status: 200,
            body: serde_json::to_string(&report)
                .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }).to_string()),
        },
        Err(e) => ApiResponse {
            status: 503,
            body: serde_json::json!({ "error": e.to_string() }).to_string(),
        },
    }
}
