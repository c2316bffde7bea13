//! Lambda events and requests in the JSON shapes AWS delivers, parsed by the same libraries the
//! functions use, so the handlers see exactly what they would see on AWS.

use std::collections::HashMap;

use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest;
use aws_lambda_events::event::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use std::sync::Arc;

use flowscope_core::auth::ApiKeys;
use flowscope_core::http::{ingest_router, query_router, ApiState};
use flowscope_core::ingest::{Ingest, IngestLimits};
use flowscope_core::ports::{StreamRecord, StreamSink};
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use tower::ServiceExt;

/// An API Gateway HTTP API (payload v2) request, parsed by `lambda_http` as the ingest and query
/// functions receive it.
pub fn http_request(
    method: &str,
    path: &str,
    raw_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Request {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), Value::String(v.to_string())))
        .collect();
    let route = format!("{method} {path}");
    let event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "e2e",
            "domainName": "e2e.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "e2e",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "flowscope-e2e"
            },
            "requestId": "e2e-request",
            "routeKey": route,
            "stage": "$default",
            "time": "24/Nov/2025:12:00:00 +0000",
            "timeEpoch": 1_764_000_000_000_i64
        },
        "body": BASE64.encode(body),
        "isBase64Encoded": true
    });
    lambda_http::request::from_str(&event.to_string()).expect("a valid HTTP API v2 event")
}

/// Serves one API Gateway request with `router` as `lambda_http::run` does in the functions: the
/// request converted by lambda_http in, the router's response converted back by lambda_http.
pub async fn serve(router: axum::Router, request: Request) -> Response<Body> {
    let response = router
        .oneshot(request)
        .await
        .expect("the router is infallible");
    lambda_http::IntoResponse::into_response(response).await
}

/// The ingest function: the core's ingest router (API key check, OTLP routes) over `ingest`.
pub async fn ingest_function(
    ingest: &Arc<Ingest<dyn StreamSink>>,
    keys: &ApiKeys,
    request: Request,
) -> Response<Body> {
    serve(ingest_router(ingest.clone(), keys.clone()), request).await
}

/// The query function: the core's `/api/*` router behind the API key check.
pub async fn query_function(state: &ApiState, keys: &ApiKeys, request: Request) -> Response<Body> {
    serve(query_router(state.clone(), keys.clone()), request).await
}

/// A receiver over any stream sink, typed as the functions and local mode hold it.
pub fn dyn_ingest<S: StreamSink + 'static>(
    sink: Arc<S>,
    limits: IngestLimits,
) -> Ingest<dyn StreamSink> {
    Ingest::new(sink as Arc<dyn StreamSink>, limits)
}

/// `POST /v1/metrics` with a protobuf body, authenticated with `key` when given.
pub fn otlp_post(body: &[u8], key: Option<&str>) -> Request {
    otlp_post_to("/v1/metrics", body, key)
}

/// `POST path` (`/v1/traces`, say) with a protobuf body, authenticated with `key` when given.
pub fn otlp_post_to(path: &str, body: &[u8], key: Option<&str>) -> Request {
    let authorization = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("content-type", "application/x-protobuf")];
    if let Some(value) = authorization.as_deref() {
        headers.push(("authorization", value));
    }
    http_request("POST", path, "", &headers, body)
}

/// `GET path?query` with `x-api-key: key`.
pub fn api_get(path: &str, query: &str, key: &str) -> Request {
    http_request("GET", path, query, &[("x-api-key", key)], b"")
}

/// The JSON body of a query API response.
pub fn json_body(response: &Response<Body>) -> Value {
    serde_json::from_slice(response.body().as_ref()).expect("a JSON body")
}

/// The Kinesis event Lambda's event source mapping would deliver for `records` (as read with
/// GetRecords).
pub fn kinesis_event(records: &[StreamRecord]) -> KinesisEvent {
    flowscope_core::aws::lambda::kinesis::kinesis_event(
        "arn:aws:kinesis:us-east-1:123456789012:stream/flowscope-e2e",
        records,
    )
    .expect("a valid Kinesis event")
}

/// An API Gateway WebSocket event for `route_key` (`$connect`, `$disconnect`, `subscribe`, `$default`).
pub fn websocket_event(
    route_key: &str,
    connection_id: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> ApiGatewayWebsocketProxyRequest {
    let query = token.map(|t| json!({ "token": t }));
    serde_json::from_value(json!({
        "queryStringParameters": query,
        "requestContext": {
            "routeKey": route_key,
            "eventType": if route_key == "$connect" { "CONNECT" } else { "MESSAGE" },
            "connectionId": connection_id,
            "connectedAt": 1_764_000_000_000_i64,
            "requestTimeEpoch": 1_764_000_000_000_i64,
            "domainName": "e2e.execute-api.us-east-1.amazonaws.com",
            "stage": "prod",
            "apiId": "e2e"
        },
        "body": body,
        "isBase64Encoded": false
    }))
    .expect("a valid WebSocket event")
}

/// One SDK attribute value in DynamoDB JSON, as DynamoDB Streams delivers images.
pub fn dynamodb_json(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": BASE64.encode(b.as_ref()) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::M(m) => json!({ "M": item_json(m) }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(dynamodb_json).collect::<Vec<_>>() }),
        AttributeValue::Ss(ss) => json!({ "SS": ss }),
        AttributeValue::Ns(ns) => json!({ "NS": ns }),
        _ => json!({ "NULL": true }),
    }
}

fn item_json(item: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        item.iter()
            .map(|(k, v)| (k.clone(), dynamodb_json(v)))
            .collect(),
    )
}

/// A DynamoDB Streams event (view type NEW_IMAGE) with one MODIFY record per item.
pub fn bucket_stream_event(items: &[HashMap<String, AttributeValue>]) -> DynamoDbEvent {
    stream_event("MODIFY", "buckets", items)
}

/// A DynamoDB Streams event of the live table (view type NEW_IMAGE): one INSERT record per item,
/// as the aggregator's conditional puts of new items produce.
pub fn live_stream_event(items: &[HashMap<String, AttributeValue>]) -> DynamoDbEvent {
    stream_event("INSERT", "live", items)
}

/// A DynamoDB Streams event of `table` with one `event_name` record per item.
pub fn stream_event(
    event_name: &str,
    table: &str,
    items: &[HashMap<String, AttributeValue>],
) -> DynamoDbEvent {
    let records: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let keys: HashMap<String, AttributeValue> = item
                .iter()
                .filter(|(k, _)| k.as_str() == "pk" || k.as_str() == "start")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            json!({
                "eventID": format!("e2e-{i}"),
                "eventName": event_name,
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": 1_764_000_000,
                    "Keys": item_json(&keys),
                    "NewImage": item_json(item),
                    "SequenceNumber": format!("{}", 100 + i),
                    "SizeBytes": 512,
                    "StreamViewType": "NEW_IMAGE"
                },
                "eventSourceARN": format!("arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/2025-11-24T00:00:00.000")
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("a valid DynamoDB Streams event")
}
