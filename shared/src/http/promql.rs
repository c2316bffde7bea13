//! The read endpoints of the Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`,
//! `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/{name}/values`) over the same engine as
//! `/api/query`, in Prometheus's response and error format, so a Grafana Prometheus data source or
//! `promtool query` can read Flowscope. Names and labels follow the OpenTelemetry–Prometheus
//! compatibility specification ([`crate::expr::names`]). Both GET and POST (form body) are answered,
//! as Prometheus does. What is not supported answers `bad_data` with a message naming it.

use std::collections::BTreeSet;

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value as Json_};
use utoipa::{IntoParams, ToSchema};

use super::api::{ApiPath, ApiState};
use super::query_expr::{get, pairs, store_status};
use super::query_times::{self, step_param};
use crate::expr::{self, EvalError, QueryTimes, Value};

/// Prometheus's envelope: `{"status": "success", "data": …}` or
/// `{"status": "error", "errorType": "bad_data", "error": "…"}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PromResponse {
    /// `success` or `error`.
    pub status: String,
    /// The result (absent on errors): see Prometheus's HTTP API documentation.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub data: Option<Json_>,
    /// `bad_data`, `execution`, `unavailable` or `internal` on errors.
    #[serde(rename = "errorType", skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub(crate) struct PromError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl PromError {
    fn bad(message: impl Into<String>) -> Self {
        PromError {
            status: StatusCode::BAD_REQUEST,
            kind: "bad_data",
            message: message.into(),
        }
    }
}

impl From<EvalError> for PromError {
    fn from(e: EvalError) -> Self {
        match &e {
            EvalError::Expr(_) | EvalError::BadParam(_) => PromError::bad(e.to_string()),
            EvalError::Store(s) => {
                let status = store_status(s);
                PromError {
                    status,
                    kind: if status == StatusCode::SERVICE_UNAVAILABLE {
                        "unavailable"
                    } else {
                        "internal"
                    },
                    message: e.to_string(),
                }
            }
            // Prometheus answers its own `--query.max-samples` this way.
            EvalError::TooManySamples(_) => PromError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                kind: "execution",
                message: e.to_string(),
            },
        }
    }
}

impl IntoResponse for PromError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(PromResponse {
                status: "error".into(),
                data: None,
                error_type: Some(self.kind.into()),
                error: Some(self.message),
            }),
        )
            .into_response()
    }
}

fn success(data: Json_) -> Json<PromResponse> {
    Json(PromResponse {
        status: "success".into(),
        data: Some(data),
        error_type: None,
        error: None,
    })
}

/// The parameters from the query string and, for a form POST, the body (at most
/// [`MAX_FORM_BYTES`]).
pub(crate) struct PromParams(Vec<(String, String)>);

/// Largest form body of a POST to the Prometheus endpoints.
const MAX_FORM_BYTES: usize = 1 << 20;

impl<S: Send + Sync> axum::extract::FromRequest<S> for PromParams {
    type Rejection = PromError;

    async fn from_request(req: axum::extract::Request, _state: &S) -> Result<Self, PromError> {
        let mut out = pairs(req.uri().query());
        let form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if form {
            let body = axum::body::to_bytes(req.into_body(), MAX_FORM_BYTES)
                .await
                .map_err(|e| PromError::bad(format!("reading the form body: {e}")))?;
            out.extend(
                form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), v.into_owned())),
            );
        }
        Ok(PromParams(out))
    }
}

/// A Prometheus time parameter (absent: `default`), in Prometheus's error wording.
fn time_param(text: Option<&str>, name: &str, default: i64) -> Result<i64, PromError> {
    query_times::time_param(text, name)
        .map(|t| t.unwrap_or(default))
        .map_err(|e| PromError::bad(format!("invalid parameter \"{name}\": {e}")))
}

/// A sample value as Prometheus writes it (Go's `FormatFloat(v, 'f', -1, 64)`).
fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// Documentation of the parameters of `/api/v1/query`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct InstantParams {
    /// The PromQL expression (Flowscope's supported subset: docs/query-language.md).
    query: String,
    /// Evaluation time: unix seconds or RFC 3339 (default now).
    time: Option<String>,
}

/// Documentation of the parameters of `/api/v1/query_range`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct RangeParams {
    query: String,
    /// Unix seconds or RFC 3339.
    start: String,
    end: String,
    /// Seconds or a duration (`1m`); a multiple of 60.
    step: String,
}

/// Documentation of the parameters of `/api/v1/series` and the label endpoints.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct MatchParams {
    /// Series selectors (repeatable); required by `/api/v1/series`.
    #[param(rename = "match[]")]
    matches: Option<Vec<String>>,
    /// Accepted for compatibility; every known series is listed.
    start: Option<String>,
    end: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/query",
    operation_id = "prom_query",
    description = "Also answered as POST with the parameters in an `application/x-www-form-urlencoded` body, as Prometheus does.",
    summary = "Prometheus API: instant query",
    params(InstantParams),
    responses(
        (status = 200, description = "`{status, data: {resultType, result}}`", body = PromResponse),
        (status = 400, description = "`{status: error, errorType: bad_data, error}`", body = PromResponse),
        (status = 422, description = "The query would hold more samples than `--query-max-samples` allows (`errorType: execution`)", body = PromResponse),
        (status = 503, description = "The store is unavailable (`errorType: unavailable`)", body = PromResponse),
    )
)]
pub(crate) async fn query(
    State(state): State<ApiState>,
    PromParams(p): PromParams,
) -> Result<Json<PromResponse>, PromError> {
    let src =
        get(&p, "query").ok_or_else(|| PromError::bad("invalid parameter \"query\": missing"))?;
    let t = time_param(get(&p, "time"), "time", state.now())?;
    let times = QueryTimes {
        start: t,
        end: t,
        step: 60,
        resolution: None,
    };
    let store = state.metric_store();
    let result = expr::evaluate(store.as_ref(), src, times, true, state.expr_limits()).await?;
    let data = match &result.value {
        Value::Scalar(v) => json!({
            "resultType": "scalar",
            "result": [t, format_value(v.first().copied().unwrap_or(f64::NAN))],
        }),
        Value::Vector(_) => {
            let result: Vec<Json_> = result
                .series()
                .into_iter()
                .filter_map(|(labels, points)| {
                    let v = points.first().copied().flatten()?;
                    Some(json!({"metric": labels, "value": [t, format_value(v)]}))
                })
                .collect();
            json!({"resultType": "vector", "result": result})
        }
    };
    Ok(success(data))
}

#[utoipa::path(
    get,
    path = "/api/v1/query_range",
    operation_id = "prom_query_range",
    description = "Also answered as POST with the parameters in an `application/x-www-form-urlencoded` body, as Prometheus does.",
    summary = "Prometheus API: range query",
    params(RangeParams),
    responses(
        (status = 200, description = "`{status, data: {resultType: matrix, result}}`", body = PromResponse),
        (status = 400, description = "`{status: error, errorType: bad_data, error}`", body = PromResponse),
        (status = 422, description = "The query would hold more samples than `--query-max-samples` allows (`errorType: execution`)", body = PromResponse),
        (status = 503, description = "The store is unavailable", body = PromResponse),
    )
)]
pub(crate) async fn query_range(
    State(state): State<ApiState>,
    PromParams(p): PromParams,
) -> Result<Json<PromResponse>, PromError> {
    let src =
        get(&p, "query").ok_or_else(|| PromError::bad("invalid parameter \"query\": missing"))?;
    let missing = |name: &str| PromError::bad(format!("invalid parameter \"{name}\": missing"));
    let start = time_param(
        Some(get(&p, "start").ok_or_else(|| missing("start"))?),
        "start",
        0,
    )?;
    let end = time_param(
        Some(get(&p, "end").ok_or_else(|| missing("end"))?),
        "end",
        0,
    )?;
    if end < start {
        return Err(PromError::bad(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let step = step_param(get(&p, "step").ok_or_else(|| missing("step"))?)
        .map_err(|e| PromError::bad(format!("invalid parameter \"step\": {e}")))?;
    let times = QueryTimes {
        start,
        end,
        step,
        resolution: None,
    };
    let store = state.metric_store();
    let result = expr::evaluate(store.as_ref(), src, times, false, state.expr_limits()).await?;
    let series: Vec<Json_> = result
        .series()
        .into_iter()
        .filter_map(|(labels, points)| {
            let values: Vec<Json_> = result
                .times
                .iter()
                .zip(points)
                .filter_map(|(t, v)| Some(json!([t, format_value(v?)])))
                .collect();
            (!values.is_empty()).then(|| json!({"metric": labels, "values": values}))
        })
        .collect();
    Ok(success(json!({"resultType": "matrix", "result": series})))
}

fn selectors(p: &[(String, String)]) -> Result<Vec<expr::parse::Selector>, PromError> {
    p.iter()
        .filter(|(k, _)| k == "match[]")
        .map(|(_, v)| {
            expr::parse_selector(v)
                .map_err(|e| PromError::bad(format!("invalid parameter \"match[]\": {e}")))
        })
        .collect()
}

#[utoipa::path(
    get,
    path = "/api/v1/series",
    operation_id = "prom_series",
    description = "Also answered as POST with the parameters in an `application/x-www-form-urlencoded` body, as Prometheus does.",
    summary = "Prometheus API: series matching selectors",
    params(MatchParams),
    responses(
        (status = 200, description = "`{status, data: [label sets]}`", body = PromResponse),
        (status = 400, description = "No or a bad `match[]`", body = PromResponse),
    )
)]
pub(crate) async fn series(
    State(state): State<ApiState>,
    PromParams(p): PromParams,
) -> Result<Json<PromResponse>, PromError> {
    let sel = selectors(&p)?;
    if sel.is_empty() {
        return Err(PromError::bad("no match[] parameter provided"));
    }
    let store = state.metric_store();
    let found = expr::series_labels(store.as_ref(), &sel, state.expr_limits().max_series).await?;
    Ok(success(json!(found)))
}

#[utoipa::path(
    get,
    path = "/api/v1/labels",
    operation_id = "prom_labels",
    description = "Also answered as POST with the parameters in an `application/x-www-form-urlencoded` body, as Prometheus does.",
    summary = "Prometheus API: label names",
    params(MatchParams),
    responses(
        (status = 200, description = "`{status, data: [names]}`, sorted", body = PromResponse),
        (status = 400, description = "A bad `match[]`", body = PromResponse),
    )
)]
pub(crate) async fn labels(
    State(state): State<ApiState>,
    PromParams(p): PromParams,
) -> Result<Json<PromResponse>, PromError> {
    let sel = selectors(&p)?;
    let store = state.metric_store();
    let found = expr::series_labels(store.as_ref(), &sel, usize::MAX).await?;
    let names: BTreeSet<&String> = found.iter().flat_map(|l| l.keys()).collect();
    Ok(success(json!(names)))
}

#[utoipa::path(
    get,
    path = "/api/v1/label/{name}/values",
    operation_id = "prom_label_values",
    summary = "Prometheus API: values of one label",
    params(("name" = String, Path, description = "Label name (`__name__` lists metric names)"), MatchParams),
    responses(
        (status = 200, description = "`{status, data: [values]}`, sorted", body = PromResponse),
        (status = 400, description = "A bad `match[]`", body = PromResponse),
    )
)]
pub(crate) async fn label_values(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<PromResponse>, PromError> {
    let p = pairs(raw.as_deref());
    let sel = selectors(&p)?;
    let store = state.metric_store();
    let found = expr::series_labels(store.as_ref(), &sel, usize::MAX).await?;
    let name = expr::names::label_name(&name);
    let values: BTreeSet<&String> = found.iter().filter_map(|l| l.get(&name)).collect();
    Ok(success(json!(values)))
}
