//! A local server that speaks the part of Jira's REST API (v2) the Jira sink uses: creating issues
//! (answers `{"id", "key", "self"}` with keys `FS-1`, `FS-2`, …), comments and transitions. It
//! records every request and can fail the first N with a chosen status. An axum server on
//! 127.0.0.1.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct JiraRequest {
    /// `create`, `comment` or `transition`.
    pub kind: &'static str,
    /// The issue key in the path (comment, transition).
    pub key: Option<String>,
    pub authorization: Option<String>,
    pub body: Value,
    /// What the receiver answered.
    pub status: u16,
}

#[derive(Default)]
struct Inner {
    requests: Vec<JiraRequest>,
    fail_next: usize,
    fail_status: u16,
    /// Only requests of this kind fail (`None`: any).
    fail_kind: Option<&'static str>,
    issues_created: usize,
}

type Shared = Arc<Mutex<Inner>>;

pub struct JiraReceiver {
    /// Base URL (`http://127.0.0.1:PORT`), what a sink's `url` is set to.
    pub url: String,
    inner: Shared,
}

impl JiraReceiver {
    pub async fn start() -> JiraReceiver {
        let inner: Shared = Arc::default();
        let app = Router::new()
            .route("/rest/api/2/issue", post(create))
            .route("/rest/api/2/issue/{key}/comment", post(comment))
            .route("/rest/api/2/issue/{key}/transitions", post(transition))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        JiraReceiver { url, inner }
    }

    /// The next `n` requests are answered `status` (and change nothing).
    pub fn fail_next(&self, n: usize, status: u16) {
        let mut inner = self.inner.lock().unwrap();
        inner.fail_next = n;
        inner.fail_status = status;
        inner.fail_kind = None;
    }

    /// The next `n` requests of `kind` (`create`, `comment`, `transition`) are answered `status`.
    pub fn fail_next_of(&self, kind: &'static str, n: usize, status: u16) {
        let mut inner = self.inner.lock().unwrap();
        inner.fail_next = n;
        inner.fail_status = status;
        inner.fail_kind = Some(kind);
    }

    pub fn requests(&self) -> Vec<JiraRequest> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// The requests of one kind that succeeded.
    pub fn accepted(&self, kind: &str) -> Vec<JiraRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.kind == kind && r.status < 300)
            .collect()
    }
}

fn record(
    inner: &Shared,
    kind: &'static str,
    key: Option<String>,
    headers: &HeaderMap,
    body: Value,
    ok: StatusCode,
) -> StatusCode {
    let mut inner = inner.lock().unwrap();
    let status = if inner.fail_next > 0 && inner.fail_kind.is_none_or(|k| k == kind) {
        inner.fail_next -= 1;
        StatusCode::from_u16(inner.fail_status).unwrap()
    } else {
        ok
    };
    inner.requests.push(JiraRequest {
        kind,
        key,
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body,
        status: status.as_u16(),
    });
    if kind == "create" && status == ok {
        inner.issues_created += 1;
    }
    status
}

async fn create(
    State(inner): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let status = record(&inner, "create", None, &headers, body, StatusCode::CREATED);
    if status != StatusCode::CREATED {
        return (status, Json(json!({"errorMessages": ["unavailable"]})));
    }
    let n = inner.lock().unwrap().issues_created;
    (
        status,
        Json(
            json!({"id": (10_000 + n).to_string(), "key": format!("FS-{n}"), "self": format!("/rest/api/2/issue/{}", 10_000 + n)}),
        ),
    )
}

async fn comment(
    State(inner): State<Shared>,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let status = record(
        &inner,
        "comment",
        Some(key),
        &headers,
        body,
        StatusCode::CREATED,
    );
    (status, Json(json!({"id": "1"})))
}

async fn transition(
    State(inner): State<Shared>,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    record(
        &inner,
        "transition",
        Some(key),
        &headers,
        body,
        StatusCode::NO_CONTENT,
    )
}
