//! Conditional GETs for the query routes (issue 15 item 7a): a strong `ETag` (a SHA-256 of the
//! response body) and a `Cache-Control` that depends on whether the range asked for is closed, and
//! `304 Not Modified` when `If-None-Match` names the current tag.
//!
//! - A range whose end (`to`, `end` or `time`) lies at or before the start of the open bucket, less
//!   [`SETTLE_S`] for points still in the pipeline, only covers closed buckets: they never change
//!   (retention aside), so it is cached for [`CLOSED_MAX_AGE_S`].
//! - Any other range (no end given means "now") covers the open bucket: [`OPEN_MAX_AGE_S`].
//! - `private`: answers depend on the API key; a shared cache must not hand them to others.
//!
//! The tag is of the body, so it is right whatever the cache policy: a client revalidating a range
//! that did change gets the new body. Bodies larger than [`MAX_TAGGED_BODY`] (or of unknown
//! length) pass through untagged, so nothing here buffers an unbounded response.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};

use super::api::ApiState;

/// Cache lifetime of an answer over closed buckets only.
pub const CLOSED_MAX_AGE_S: u64 = 86_400;
/// Cache lifetime of an answer that includes the open bucket.
pub const OPEN_MAX_AGE_S: u64 = 5;
/// A bucket counts as closed this long after its end (points still being aggregated).
pub const SETTLE_S: i64 = 120;
/// Larger responses are sent without an `ETag` (never buffered to hash them).
pub const MAX_TAGGED_BODY: u64 = 8 * 1024 * 1024;

/// Whether `path` is a query route whose answers are tagged.
fn is_query_route(path: &str) -> bool {
    path == "/api/query"
        || path == "/api/v1/query"
        || path == "/api/v1/query_range"
        || path.starts_with("/api/series/")
        || (path.starts_with("/api/services/")
            && path.split('/').count() == 6
            && path.split('/').nth(4) == Some("metrics"))
}

/// The middleware: tags 200 answers of the query routes and answers `If-None-Match` with 304; with
/// a breaker ([`ApiState::with_store_breaker`]) it keeps recent answers and serves one, marked
/// stale, when the store fails (5xx).
pub async fn conditional_get(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::GET || !is_query_route(request.uri().path()) {
        return next.run(request).await;
    }
    let now = state.now();
    let cache_control = cache_control(request.uri().query().unwrap_or(""), now);
    let key = request.uri().to_string();
    let if_none_match = request.headers().get(IF_NONE_MATCH).cloned();
    let response = next.run(request).await;
    // A store failure answers 503 (throttled, or on the expression routes unavailable) or 500.
    if response.status().is_server_error() {
        if let Some(stale) = state.recent().and_then(|r| r.get(&key)) {
            return stale_response(stale, now);
        }
        return response;
    }
    if response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let small = axum::body::HttpBody::size_hint(&body)
        .upper()
        .is_some_and(|n| n <= MAX_TAGGED_BODY);
    if !small {
        return Response::from_parts(parts, body);
    }
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(serde_json::json!({ "error": format!("reading the answer: {e}") })),
            )
                .into_response()
        }
    };
    if let Some(recent) = state.recent() {
        recent.put(key, bytes.clone(), now);
    }
    let tag = etag(&bytes);
    if let Ok(value) = HeaderValue::from_str(&tag) {
        parts.headers.insert(ETAG, value);
    }
    parts.headers.insert(CACHE_CONTROL, cache_control);
    if if_none_match.is_some_and(|v| matches(&v, &tag)) {
        let mut headers = HeaderMap::new();
        for name in [ETAG, CACHE_CONTROL] {
            if let Some(value) = parts.headers.get(&name) {
                headers.insert(name, value.clone());
            }
        }
        let mut not_modified = Response::new(Body::empty());
        *not_modified.status_mut() = StatusCode::NOT_MODIFIED;
        *not_modified.headers_mut() = headers;
        return not_modified;
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Header on an answer served from the recent results while the store fails.
pub const STALE_HEADER: &str = "x-flowscope-stale";

/// A kept answer, 200 with `"stale": true` added to its JSON object, [`STALE_HEADER`]` : true`, its
/// `Age`, and `Cache-Control: no-store` (a client must not keep it as fresh).
fn stale_response(entry: Recent, now: i64) -> Response {
    let body = match serde_json::from_slice::<serde_json::Value>(&entry.body) {
        Ok(serde_json::Value::Object(mut object)) => {
            object.insert("stale".into(), serde_json::Value::Bool(true));
            serde_json::to_vec(&object)
                .map(Bytes::from)
                .unwrap_or(entry.body)
        }
        _ => entry.body,
    };
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(STALE_HEADER, HeaderValue::from_static("true"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(age) = HeaderValue::from_str(&(now - entry.at).max(0).to_string()) {
        headers.insert(axum::http::header::AGE, age);
    }
    response
}

/// One kept answer.
#[derive(Clone)]
struct Recent {
    body: Bytes,
    /// When it was answered (unix seconds).
    at: i64,
    /// Insertion order, for eviction of the oldest.
    order: u64,
}

/// The recent answers of the query routes, by request URI: at most `max_entries` answers and
/// `max_bytes` of bodies; the oldest go first. (A handful of entries: a linear scan to evict.)
pub struct RecentResults {
    max_entries: usize,
    max_bytes: usize,
    inner: std::sync::Mutex<RecentInner>,
}

#[derive(Default)]
struct RecentInner {
    entries: std::collections::HashMap<String, Recent>,
    bytes: usize,
    next: u64,
}

impl RecentResults {
    pub fn new(max_entries: usize, max_bytes: usize) -> RecentResults {
        RecentResults {
            max_entries,
            max_bytes,
            inner: std::sync::Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecentInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn put(&self, key: String, body: Bytes, at: i64) {
        if self.max_entries == 0 || body.len() > self.max_bytes {
            return;
        }
        let mut inner = self.lock();
        if let Some(old) = inner.entries.remove(&key) {
            inner.bytes -= old.body.len();
        }
        while inner.entries.len() >= self.max_entries || inner.bytes + body.len() > self.max_bytes {
            let Some(oldest) = inner
                .entries
                .iter()
                .min_by_key(|(_, e)| e.order)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(gone) = inner.entries.remove(&oldest) {
                inner.bytes -= gone.body.len();
            }
        }
        inner.next += 1;
        let order = inner.next;
        inner.bytes += body.len();
        inner.entries.insert(key, Recent { body, at, order });
    }

    fn get(&self, key: &str) -> Option<Recent> {
        self.lock().entries.get(key).cloned()
    }

    /// How many answers are kept, and their bytes.
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.entries.len(), inner.bytes)
    }
}

/// `"<first 128 bits of SHA-256, hex>"`: a strong tag of exactly these bytes.
pub fn etag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", hex::encode(&digest[..16]))
}

/// Whether an `If-None-Match` value names `tag` (weak comparison, as RFC 9110 asks of it; `*` matches
/// any current representation).
fn matches(header: &HeaderValue, tag: &str) -> bool {
    let Ok(text) = header.to_str() else {
        return false;
    };
    text.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == tag
    })
}

/// The `Cache-Control` of an answer to `query` at `now`.
fn cache_control(query: &str, now: i64) -> HeaderValue {
    let max_age = if range_is_closed(query, now) {
        CLOSED_MAX_AGE_S
    } else {
        OPEN_MAX_AGE_S
    };
    HeaderValue::from_str(&format!("private, max-age={max_age}"))
        .unwrap_or(HeaderValue::from_static("no-cache"))
}

/// Whether the range of `query` (`to`/`end`/`time`, `resolution`/`step`) ends at or before the
/// open bucket's start, [`SETTLE_S`] ago. Anything unparsed counts as open.
fn range_is_closed(query: &str, now: i64) -> bool {
    let mut end = None;
    let mut bucket_s: i64 = 60;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "to" | "end" | "time" => end = value.parse::<f64>().ok().filter(|v| v.is_finite()),
            "resolution" | "step" => {
                if let Some(seconds) = seconds(&value) {
                    bucket_s = bucket_s.max(seconds);
                }
            }
            _ => {}
        }
    }
    let Some(end) = end else {
        return false;
    };
    let settled = now - SETTLE_S;
    let open_start = settled.div_euclid(bucket_s) * bucket_s;
    end.ceil() <= open_start as f64
}

/// `60`, `1m`, `1h`, `1d` (whole seconds, at least 1).
fn seconds(text: &str) -> Option<i64> {
    if let Ok(n) = text.parse::<f64>() {
        return (1.0..1e9).contains(&n).then_some(n.ceil() as i64);
    }
    let duration = humantime::parse_duration(text).ok()?;
    i64::try_from(duration.as_secs()).ok().filter(|s| *s >= 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ranges_ending_before_the_settled_open_bucket_are_closed() {
        let now = 1_700_000_000; // 13:33:20 past an hour boundary at 1_699_999_200
        let minute_start = (now - SETTLE_S) / 60 * 60;
        assert!(range_is_closed(&format!("from=0&to={minute_start}"), now));
        assert!(!range_is_closed(&format!("to={}", minute_start + 60), now));
        assert!(!range_is_closed("from=0", now), "no end means now");
        assert!(!range_is_closed("to=yesterday", now));
        let hour_start = (now - SETTLE_S) / 3600 * 3600;
        assert!(!range_is_closed(
            &format!("to={}&resolution=1h", hour_start + 60),
            now
        ));
        assert!(range_is_closed(
            &format!("to={hour_start}&resolution=1h"),
            now
        ));
        assert!(range_is_closed(&format!("end={minute_start}&step=15"), now));
    }

    #[test]
    fn if_none_match_lists_and_weak_tags_match() {
        let tag = etag(b"{}");
        assert!(matches(&HeaderValue::from_str(&tag).unwrap(), &tag));
        assert!(matches(
            &HeaderValue::from_str(&format!("\"x\", W/{tag}")).unwrap(),
            &tag
        ));
        assert!(matches(&HeaderValue::from_static("*"), &tag));
        assert!(!matches(&HeaderValue::from_static("\"other\""), &tag));
    }

    #[test]
    fn query_routes_are_recognised() {
        assert!(is_query_route(
            "/api/services/api/metrics/http.server.requests"
        ));
        assert!(is_query_route("/api/series/0123456789abcdef"));
        assert!(is_query_route("/api/v1/query_range"));
        assert!(!is_query_route("/api/services/api/metrics"));
        assert!(!is_query_route("/api/alerts"));
    }
}
