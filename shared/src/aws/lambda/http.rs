//! API Gateway HTTP API requests (through `lambda_http`) ↔ the OTLP receiver and the `/api/*` router
//! (query API and alert routes).

use bytes::Bytes;
use lambda_http::http::{header, HeaderMap, HeaderValue, StatusCode};
use lambda_http::{Body, Request, Response};

use crate::api::ApiRouter;
use crate::auth::{ApiKeys, AuthError, CHALLENGE};
use crate::ingest::{Ingest, IngestRequest, IngestResponse, Signal};
use crate::otlp::response::status_body;
use crate::otlp::Format;
use crate::ports::{AlertStore, MetricStore, StreamSink};
use crate::query::ApiResponse;

/// `google.rpc.Code.UNAUTHENTICATED`.
const UNAUTHENTICATED: i32 = 16;
/// `google.rpc.Code.NOT_FOUND`.
const NOT_FOUND: i32 = 5;

/// The OTLP signal served at `path` (`/v1/metrics`, `/v1/traces`, `/v1/logs`).
pub fn signal_for_path(path: &str) -> Option<Signal> {
    match path.trim_end_matches('/') {
        "/v1/metrics" => Some(Signal::Metrics),
        "/v1/traces" => Some(Signal::Traces),
        "/v1/logs" => Some(Signal::Logs),
        _ => None,
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The key a client presented: `Authorization: Bearer <key>` or `x-api-key: <key>`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    ApiKeys::key_from_headers(
        header_text(headers, header::AUTHORIZATION.as_str()),
        header_text(headers, "x-api-key"),
    )
}

fn is_authorized(keys: &ApiKeys, headers: &HeaderMap) -> bool {
    presented_key(headers).is_some_and(|key| keys.accepts(key))
}

/// The receiver's view of an OTLP request.
pub fn ingest_request(signal: Signal, request: &Request) -> IngestRequest {
    let headers = request.headers();
    IngestRequest {
        signal,
        content_type: header_text(headers, header::CONTENT_TYPE.as_str()).map(str::to_string),
        content_encoding: header_text(headers, header::CONTENT_ENCODING.as_str())
            .map(str::to_string),
        body: Bytes::copy_from_slice(request.body().as_ref()),
    }
}

/// The receiver's answer as an HTTP response (`Retry-After` included).
pub fn ingest_response(response: IngestResponse) -> Response<Body> {
    let mut http = Response::new(Body::Binary(response.body));
    *http.status_mut() =
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = HeaderValue::from_str(&response.content_type) {
        http.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    if let Some(seconds) = response.retry_after_seconds {
        http.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    http
}

/// A `google.rpc.Status` refusal in the request's format (protobuf when it cannot be told).
fn status_refusal(request: &Request, status: u16, code: i32, message: &str) -> Response<Body> {
    let format = Format::from_content_type(header_text(
        request.headers(),
        header::CONTENT_TYPE.as_str(),
    ))
    .unwrap_or(Format::Protobuf);
    ingest_response(IngestResponse {
        status,
        content_type: format.content_type().to_string(),
        body: status_body(format, code, message),
        retry_after_seconds: None,
    })
}

/// The ingest function: API key check (401 with a `google.rpc.Status`), route, then the receiver.
pub async fn handle_ingest<S: StreamSink + ?Sized>(
    ingest: &Ingest<S>,
    keys: &ApiKeys,
    request: Request,
) -> Response<Body> {
    if !is_authorized(keys, request.headers()) {
        return status_refusal(
            &request,
            401,
            UNAUTHENTICATED,
            "a valid API key is required: send `Authorization: Bearer <key>` or `x-api-key: <key>`",
        );
    }
    let Some(signal) = signal_for_path(request.uri().path()) else {
        let message = format!(
            "no OTLP endpoint at {}: use /v1/metrics, /v1/traces or /v1/logs",
            request.uri().path()
        );
        return status_refusal(&request, 404, NOT_FOUND, &message);
    };
    ingest_response(ingest.handle(ingest_request(signal, &request)).await)
}

fn json_response(response: ApiResponse) -> Response<Body> {
    let mut http = Response::new(Body::Text(response.body));
    *http.status_mut() =
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    http.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    http
}

/// The query API's credential check: `Authorization: Bearer <key>` or `x-api-key: <key>`. A
/// `?token=` is not read here: a key in a URL ends up in access logs and browser history.
pub fn query_auth(keys: &ApiKeys, headers: &HeaderMap) -> Result<(), AuthError> {
    keys.check_headers(
        header_text(headers, header::AUTHORIZATION.as_str()),
        header_text(headers, "x-api-key"),
    )
}

/// The 401 of the query API: `{"error": "<reason>"}` and a `WWW-Authenticate: Bearer` challenge.
pub fn unauthorized(error: AuthError) -> Response<Body> {
    let mut http = json_response(ApiResponse {
        status: 401,
        body: error.json_body(),
    });
    http.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(CHALLENGE),
    );
    http
}

/// The query function: API key check (headers only), then the `/api/*` router.
/// Acknowledgements are stored and returned; their live `alert` event is not pushed from here (the
/// function has no WebSocket management client), so dashboards see it on their next alert reload.
pub async fn handle_query<S: MetricStore + ?Sized, A: AlertStore + ?Sized>(
    api: &ApiRouter<S, A>,
    keys: &ApiKeys,
    request: Request,
    now_unix_s: i64,
) -> Response<Body> {
    if let Err(error) = query_auth(keys, request.headers()) {
        return unauthorized(error);
    }
    let query = request.uri().query().unwrap_or("");
    let routed = api
        .handle(
            request.method().as_str(),
            request.uri().path(),
            query,
            request.body().as_ref(),
            now_unix_s,
        )
        .await;
    let mut response = json_response(routed.response);
    if let Some(allow) = routed.allow {
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otlp_paths_map_to_signals() {
        assert_eq!(signal_for_path("/v1/metrics"), Some(Signal::Metrics));
        assert_eq!(signal_for_path("/v1/traces/"), Some(Signal::Traces));
        assert_eq!(signal_for_path("/v1/logs"), Some(Signal::Logs));
        assert_eq!(signal_for_path("/v1/profiles"), None);
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn the_query_api_refuses_missing_and_wrong_keys_with_a_reason() {
        let keys = ApiKeys::from_clear_keys(["k1"]);
        assert_eq!(
            query_auth(&keys, &headers(&[])),
            Err(AuthError::MissingHeader)
        );
        assert_eq!(
            query_auth(&keys, &headers(&[("authorization", "Bearer nope")])),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            query_auth(&keys, &headers(&[("authorization", "Bearer k1")])),
            Ok(())
        );
        assert_eq!(query_auth(&keys, &headers(&[("x-api-key", "k1")])), Ok(()));

        let refused = unauthorized(AuthError::Invalid);
        assert_eq!(refused.status(), 401);
        assert_eq!(refused.headers()[header::WWW_AUTHENTICATE], CHALLENGE);
        assert_eq!(refused.headers()[header::CONTENT_TYPE], "application/json");
        let Body::Text(body) = refused.body() else {
            panic!("a JSON text body")
        };
        assert_eq!(body, r#"{"error":"invalid credential"}"#);
    }

    #[test]
    fn retry_after_and_content_type_reach_the_http_response() {
        let response = ingest_response(IngestResponse {
            status: 429,
            content_type: "application/json".into(),
            body: b"{}".to_vec(),
            retry_after_seconds: Some(2),
        });
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }
}
