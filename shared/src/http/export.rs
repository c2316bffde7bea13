//! `GET /api/export`: a range of buckets (`service&metric`) or of an expression's result (`expr`) as
//! CSV or NDJSON, streamed: the store is read a page at a time (at most [`PAGE_BUCKETS`] buckets
//! of one series, or [`PAGE_STEPS`] evaluation times of an expression) and each page is written out
//! before the next is read, so memory stays flat whatever the range. Gzip (flate2, already in the
//! tree) when the client's `Accept-Encoding` allows it. Formats: `docs/export.md`.

use std::io::Write;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use flate2::write::GzEncoder;
use serde_json::json;
use utoipa::IntoParams;

use super::api::{ApiError, ApiState};
use super::query_expr::{get, pairs};
use super::query_times::{step_param, time_param};
use crate::expr::{self, QueryTimes};
use crate::model::{Resolution, SeriesMeta};
use crate::ports::MetricStore;

/// Buckets of one series read from the store at once.
pub const PAGE_BUCKETS: i64 = 1000;
/// Evaluation times of an expression evaluated at once.
pub const PAGE_STEPS: i64 = 100;
/// Bytes of rows gathered before they are compressed and sent.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks in flight between the reader task and the connection (backpressure beyond).
const CHANNEL_CHUNKS: usize = 4;
/// Range when `from` is omitted.
const DEFAULT_RANGE_SECONDS: i64 = 3600;

/// Header row of a bucket export (CSV).
pub const BUCKET_COLUMNS: &str = "time,service,metric,attributes,count,sum,min,max,avg,p50,p95,p99";
/// Header row of an expression export (CSV).
pub const EXPR_COLUMNS: &str = "time,labels,value";

/// The parameters of `GET /api/export` (documentation; parsed from the raw query string).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ExportParams {
    /// An expression (docs/query-language.md); or give `service` and `metric`.
    expr: Option<String>,
    /// Export the buckets of every series of this service's `metric`.
    service: Option<String>,
    metric: Option<String>,
    /// First time, unix seconds or RFC 3339 (default `to` − 1 h).
    from: Option<String>,
    /// Last time (exclusive for buckets, inclusive for evaluation times), default now.
    to: Option<String>,
    /// Bucket width (1m, 5m, 1h, 1d); default 1m for buckets, chosen from `step` for `expr`.
    resolution: Option<Resolution>,
    /// `expr` only: seconds or a duration between evaluation times (default 60).
    step: Option<String>,
    /// `csv` (default) or `ndjson`.
    format: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Ndjson,
}

/// What to read.
enum Source {
    Buckets {
        series: Vec<SeriesMeta>,
        resolution: Resolution,
    },
    Expr {
        src: String,
        step: i64,
        resolution: Option<Resolution>,
        limits: expr::ExprLimits,
        /// The first page, evaluated before the response started (its errors are the request's).
        first: Option<expr::QueryResult>,
    },
}

/// Whether `Accept-Encoding` allows gzip (a `gzip` or `*` token whose `q` is not 0).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let token = parts.next().unwrap_or("").trim();
            let q_zero = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f64>().ok())
                    == Some(0.0)
            });
            (token.eq_ignore_ascii_case("gzip") || token == "*") && !q_zero
        })
}

/// A CSV field: quoted (with doubled quotes) when it holds a comma, quote or line break (RFC 4180).
fn csv_field(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\"")).into()
    } else {
        text.into()
    }
}

fn number(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v}"),
        Some(v) if v.is_nan() => "NaN".into(),
        Some(v) if v > 0.0 => "+Inf".into(),
        Some(_) => "-Inf".into(),
        None => String::new(),
    }
}

fn json_number(v: Option<f64>) -> serde_json::Value {
    v.filter(|v| v.is_finite())
        .map_or(serde_json::Value::Null, |v| json!(v))
}

/// Rows gathered into chunks, gzip-compressed when asked, sent to the connection.
struct Writer {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    rows: Vec<u8>,
    gzip: Option<GzEncoder<Vec<u8>>>,
}

impl Writer {
    /// Sends what is gathered once it reaches [`CHUNK_BYTES`] (or always with `force`); `false`
    /// when the client has gone.
    async fn flush(&mut self, force: bool) -> bool {
        if self.rows.len() < CHUNK_BYTES && !force {
            return true;
        }
        let rows = std::mem::take(&mut self.rows);
        let out = match &mut self.gzip {
            None => rows,
            Some(gz) => {
                if let Err(e) = gz.write_all(&rows) {
                    let _ = self.tx.send(Err(e)).await;
                    return false;
                }
                std::mem::take(gz.get_mut())
            }
        };
        out.is_empty() || self.tx.send(Ok(Bytes::from(out))).await.is_ok()
    }

    async fn finish(mut self) {
        if !self.flush(true).await {
            return;
        }
        if let Some(gz) = self.gzip.take() {
            match gz.finish() {
                Ok(tail) => {
                    let _ = self.tx.send(Ok(Bytes::from(tail))).await;
                }
                Err(e) => {
                    let _ = self.tx.send(Err(e)).await;
                }
            }
        }
    }

    /// Ends the body with an error: the client sees a truncated transfer, not a complete file.
    async fn fail(self, message: String) {
        tracing::warn!(error = %message, "export aborted");
        let _ = self.tx.send(Err(std::io::Error::other(message))).await;
    }
}

fn bucket_row(
    format: Format,
    meta: &SeriesMeta,
    start: i64,
    b: &crate::domain::stats::BucketStats,
) -> String {
    let [p50, p95, p99] = [b.quantile(0.5), b.quantile(0.95), b.quantile(0.99)];
    let attributes = serde_json::to_string(&meta.key.attributes).unwrap_or_default();
    match format {
        Format::Csv => format!(
            "{start},{},{},{},{},{},{},{},{},{},{},{}\n",
            csv_field(&meta.key.service),
            csv_field(&meta.key.metric),
            csv_field(&attributes),
            b.count,
            number(Some(b.finite_sum())),
            number(b.finite_min()),
            number(b.finite_max()),
            number(b.avg()),
            number(p50),
            number(p95),
            number(p99),
        ),
        Format::Ndjson => {
            let mut line = json!({
                "time": start,
                "service": meta.key.service,
                "metric": meta.key.metric,
                "attributes": meta.key.attributes,
                "count": b.count,
                "sum": json_number(Some(b.finite_sum())),
                "min": json_number(b.finite_min()),
                "max": json_number(b.finite_max()),
                "avg": json_number(b.avg()),
                "p50": json_number(p50),
                "p95": json_number(p95),
                "p99": json_number(p99),
            })
            .to_string();
            line.push('\n');
            line
        }
    }
}

/// Reads `source` page by page into `w`.
async fn produce(
    store: std::sync::Arc<dyn MetricStore>,
    source: Source,
    format: Format,
    from: i64,
    to: i64,
    mut w: Writer,
) {
    if format == Format::Csv {
        let columns = match source {
            Source::Buckets { .. } => BUCKET_COLUMNS,
            Source::Expr { .. } => EXPR_COLUMNS,
        };
        w.rows.extend_from_slice(columns.as_bytes());
        w.rows.push(b'\n');
    }
    match source {
        Source::Buckets { series, resolution } => {
            let page = PAGE_BUCKETS * resolution.seconds();
            for meta in &series {
                let mut start = from.div_euclid(resolution.seconds()) * resolution.seconds();
                while start < to {
                    let end = start.saturating_add(page).min(to);
                    let buckets = match store.query_buckets(meta.id, resolution, start, end).await {
                        Ok(b) => b,
                        Err(e) => return w.fail(format!("reading the store: {e}")).await,
                    };
                    for (t, b) in &buckets {
                        w.rows
                            .extend_from_slice(bucket_row(format, meta, *t, b).as_bytes());
                        if !w.flush(false).await {
                            return;
                        }
                    }
                    start = end;
                }
            }
        }
        Source::Expr {
            src,
            step,
            resolution,
            limits,
            mut first,
        } => {
            let mut start = from;
            while start <= to {
                let end = start.saturating_add(step * (PAGE_STEPS - 1)).min(to);
                let times = QueryTimes {
                    start,
                    end,
                    step,
                    resolution,
                };
                let evaluated = match first.take() {
                    Some(r) => Ok(r),
                    None => expr::evaluate(store.as_ref(), &src, times, false, limits).await,
                };
                let result = match evaluated {
                    Ok(r) => r,
                    Err(e) => return w.fail(format!("evaluating: {e}")).await,
                };
                let series = result.series();
                let labels: Vec<String> = series
                    .iter()
                    .map(|(l, _)| serde_json::to_string(l).unwrap_or_default())
                    .collect();
                for (i, t) in result.times.iter().enumerate() {
                    for ((_, points), l) in series.iter().zip(&labels) {
                        let Some(v) = points.get(i).copied().flatten() else {
                            continue;
                        };
                        let line = match format {
                            Format::Csv => format!("{t},{},{}\n", csv_field(l), number(Some(v))),
                            Format::Ndjson => {
                                let labels: serde_json::Value =
                                    serde_json::from_str(l).unwrap_or_default();
                                let mut line = json!({"time": t, "labels": labels, "value": json_number(Some(v))}).to_string();
                                line.push('\n');
                                line
                            }
                        };
                        w.rows.extend_from_slice(line.as_bytes());
                    }
                    if !w.flush(false).await {
                        return;
                    }
                }
                start = end + step;
            }
        }
    }
    w.finish().await;
}

#[utoipa::path(
    get,
    path = "/api/export",
    operation_id = "export",
    summary = "Export a range of buckets or an expression's result as CSV or NDJSON, streamed",
    description = "Give `expr` (docs/query-language.md; rows `time,labels,value`, one per series and evaluation time) or `service` and `metric` (rows `time,service,metric,attributes,count,sum,min,max,avg,p50,p95,p99`, one per bucket, series after series). CSV starts with that header row; NDJSON has one object per line with the same fields. Streamed a page at a time (flat memory whatever the range); gzip-compressed when `Accept-Encoding` allows it. An error after the first bytes ends the transfer without its end (a truncated body), never a complete-looking file. Formats: docs/export.md.",
    params(ExportParams),
    responses(
        (status = 200, description = "The rows", content_type = "text/csv", body = String),
        (status = 400, description = "A bad parameter or expression", body = super::api::ErrorBody),
        (status = 404, description = "No series of that service and metric", body = super::api::ErrorBody),
        (status = 422, description = "A page of the expression (100 evaluation times) would hold more samples than `--query-max-samples` allows", body = super::api::ErrorBody),
        (status = 503, description = "The store is throttled or unavailable", body = super::api::ErrorBody),
    )
)]
pub(crate) async fn export(
    State(state): State<ApiState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let p = pairs(raw.as_deref());
    let format = match get(&p, "format").unwrap_or("csv") {
        "csv" => Format::Csv,
        "ndjson" => Format::Ndjson,
        other => return Err(bad(format!("`format` is csv or ndjson, got {other:?}"))),
    };
    let resolution = get(&p, "resolution")
        .map(str::parse::<Resolution>)
        .transpose()
        .map_err(bad)?;
    let to = time_param(get(&p, "to"), "to")
        .map_err(bad)?
        .unwrap_or_else(|| state.now());
    let from = time_param(get(&p, "from"), "from")
        .map_err(bad)?
        .unwrap_or(to - DEFAULT_RANGE_SECONDS)
        .max(0);
    if from > to {
        return Err(bad(format!(
            "`from` ({from}) must not be after `to` ({to})"
        )));
    }
    let store = state.metric_store();
    let source = match (get(&p, "expr"), get(&p, "service"), get(&p, "metric")) {
        (Some(src), None, None) => {
            let step = get(&p, "step")
                .map(step_param)
                .transpose()
                .map_err(bad)?
                .unwrap_or(60);
            // The first page answers for the request: a bad expression (400), the sample budget
            // (422) or the store (503) before any byte is sent. Later pages select the same series.
            let limits = state.expr_limits();
            let times = QueryTimes {
                start: from,
                end: from
                    .saturating_add(step.saturating_mul(PAGE_STEPS - 1))
                    .min(to),
                step,
                resolution,
            };
            let first = expr::evaluate(store.as_ref(), src, times, false, limits)
                .await
                .map_err(|e| {
                    let status = match &e {
                        expr::EvalError::Expr(_) | expr::EvalError::BadParam(_) => {
                            StatusCode::BAD_REQUEST
                        }
                        expr::EvalError::TooManySamples(_) => StatusCode::UNPROCESSABLE_ENTITY,
                        expr::EvalError::Store(s) => super::query_expr::store_status(s),
                    };
                    ApiError::new(status, e.to_string())
                })?;
            Source::Expr {
                src: src.to_string(),
                step,
                resolution,
                limits,
                first: Some(first),
            }
        }
        (None, Some(service), Some(metric)) => {
            let series: Vec<SeriesMeta> = store
                .list_series(service)
                .await
                .map_err(|e| ApiError::new(super::query_expr::store_status(&e), e.to_string()))?
                .into_iter()
                .filter(|m| m.key.metric == metric)
                .collect();
            if series.is_empty() {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("service {service:?} has no series of metric {metric:?}"),
                ));
            }
            Source::Buckets {
                series,
                resolution: resolution.unwrap_or(Resolution::OneMinute),
            }
        }
        _ => {
            return Err(bad(
                "give `expr`, or `service` and `metric` (not both)".to_string()
            ))
        }
    };
    let gzip = accepts_gzip(&headers);
    let (tx, rx) = tokio::sync::mpsc::channel(CHANNEL_CHUNKS);
    let writer = Writer {
        tx,
        rows: Vec::with_capacity(CHUNK_BYTES + 1024),
        gzip: gzip.then(|| GzEncoder::new(Vec::new(), flate2::Compression::fast())),
    };
    tokio::spawn(produce(store, source, format, from, to, writer));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let (content_type, ext) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Ndjson => ("application/x-ndjson", "ndjson"),
    };
    let mut response = Body::from_stream(stream).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) =
        HeaderValue::from_str(&format!("attachment; filename=\"flowscope-export.{ext}\""))
    {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_only_when_accepted() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_gzip(&h)
        };
        assert!(with("gzip"));
        assert!(with("br, GZIP;q=0.5"));
        assert!(with("*"));
        assert!(!with("gzip;q=0"));
        assert!(!with("br, deflate"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("{\"a\":\"b,c\"}"), "\"{\"\"a\"\":\"\"b,c\"\"}\"");
    }
}
