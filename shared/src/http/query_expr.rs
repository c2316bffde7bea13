//! `GET /api/query`: an expression (`docs/query-language.md`) evaluated over a range
//! (`expr&from&to&step`) or at one time (`expr&time`), answered in Flowscope's JSON.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::api::ApiState;
use super::query_times::{step_param, time_param};
use crate::expr::{self, EvalError, QueryResult, QueryTimes, Value};
use crate::model::Resolution;

/// Range when `from` is omitted.
const DEFAULT_RANGE_SECONDS: i64 = 15 * 60;

/// The parameters of `GET /api/query` (documentation; parsed from the raw query string).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ExprQuery {
    /// The expression (docs/query-language.md).
    expr: String,
    /// Instant query: the evaluation time, unix seconds (fractions allowed) or RFC 3339. Without `from`/`to`/`step` and without
    /// `time`, an instant query at now.
    time: Option<i64>,
    /// Range query: first evaluation time, unix seconds or RFC 3339 (default `to` − 15 min).
    from: Option<i64>,
    /// Range query: last evaluation time, unix seconds or RFC 3339 (default now).
    to: Option<i64>,
    /// Range query: seconds between evaluation times, as seconds (`60`) or a duration (`5m`);
    /// default 60. At most 11,000 evaluation times (`--query-max-steps`).
    step: Option<String>,
    /// Bucket width (1m, 5m, 1h, 1d); default: for a range query the coarsest that divides the
    /// step and every range and offset, for an instant query the finest whose windows hold at most
    /// 1440 buckets.
    resolution: Option<Resolution>,
}

/// One series of a result.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ExprSeries {
    /// Prometheus-style labels (`__name__`, `job` = service.name, attributes with `_` for `.`).
    pub labels: std::collections::BTreeMap<String, String>,
    /// `[time, value]` pairs, oldest first; times without a value are absent. NaN and ±Inf are `null`.
    #[schema(value_type = Vec<Vec<f64>>)]
    pub points: Vec<(i64, f64)>,
}

/// `GET /api/query`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ExprResult {
    pub expr: String,
    /// `vector` (series) or `scalar` (one unlabelled series).
    #[serde(rename = "resultType")]
    pub result_type: String,
    /// The bucket width the expression was evaluated at.
    pub resolution: Resolution,
    /// Evaluation times: one for an instant query.
    pub times: Vec<i64>,
    pub series: Vec<ExprSeries>,
}

/// An expression error: the reason, and where in the expression (1-based character) when known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ExprErrorBody {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
}

/// 503 when the store throttles or is unavailable (retry later), else 500.
pub(crate) fn store_status(e: &crate::ports::StoreError) -> StatusCode {
    match e {
        crate::ports::StoreError::Throttled(_) | crate::ports::StoreError::Unavailable(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        crate::ports::StoreError::Corrupt { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub(crate) struct ExprApiError {
    status: StatusCode,
    body: ExprErrorBody,
}

impl ExprApiError {
    fn bad(message: impl Into<String>) -> Self {
        ExprApiError {
            status: StatusCode::BAD_REQUEST,
            body: ExprErrorBody {
                error: message.into(),
                position: None,
            },
        }
    }
}

impl From<EvalError> for ExprApiError {
    fn from(e: EvalError) -> Self {
        let (status, position) = match &e {
            EvalError::Expr(x) => (StatusCode::BAD_REQUEST, Some(x.position)),
            EvalError::BadParam(_) => (StatusCode::BAD_REQUEST, None),
            EvalError::Store(s) => (store_status(s), None),
            EvalError::TooManySamples(x) => (StatusCode::UNPROCESSABLE_ENTITY, Some(x.position)),
        };
        ExprApiError {
            status,
            body: ExprErrorBody {
                error: e.to_string(),
                position,
            },
        }
    }
}

impl IntoResponse for ExprApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// `key=value` pairs of a query string, decoded (`+` is a space, as in forms).
pub(crate) fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub(crate) fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn to_body(src: &str, result: QueryResult) -> ExprResult {
    let result_type = match result.value {
        Value::Scalar(_) => "scalar",
        Value::Vector(_) => "vector",
    };
    ExprResult {
        expr: src.to_string(),
        result_type: result_type.to_string(),
        resolution: result.resolution,
        series: result
            .series()
            .into_iter()
            .map(|(labels, points)| ExprSeries {
                labels,
                points: result
                    .times
                    .iter()
                    .zip(points)
                    .filter_map(|(t, v)| Some((*t, v?)))
                    .collect(),
            })
            .collect(),
        times: result.times,
    }
}

#[utoipa::path(
    get,
    path = "/api/query",
    operation_id = "expr_query",
    summary = "Evaluate an expression over a range or at one time",
    description = "The expression language (PromQL-flavoured: selectors with =, !=, =~, !~; rate, increase, *_over_time, sum/avg/min/max/count/quantile by|without, histogram_quantile, arithmetic and comparisons, offset) is documented in docs/query-language.md. Quantiles merge the DDSketches of the selected series. A range query gives `from`, `to` and/or `step`; an instant query gives `time` (or nothing: now). Errors in the expression answer 400 with the 1-based `position` of the problem.",
    params(ExprQuery),
    responses(
        (status = 200, description = "The series of the result", body = ExprResult),
        (status = 400, description = "A parse or type error (with its position), or a bad parameter", body = ExprErrorBody),
        (status = 422, description = "The query would hold more samples than `--query-max-samples` allows (with the selector's position)", body = ExprErrorBody),
        (status = 503, description = "The store is throttled or unavailable", body = ExprErrorBody),
    )
)]
pub(crate) async fn query(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<ExprResult>, ExprApiError> {
    let pairs = pairs(raw.as_deref());
    let Some(src) = get(&pairs, "expr") else {
        return Err(ExprApiError::bad("`expr` is required"));
    };
    let resolution = get(&pairs, "resolution")
        .map(str::parse::<Resolution>)
        .transpose()
        .map_err(ExprApiError::bad)?;
    let time = time_param(get(&pairs, "time"), "time").map_err(ExprApiError::bad)?;
    let to = time_param(get(&pairs, "to"), "to").map_err(ExprApiError::bad)?;
    let from = time_param(get(&pairs, "from"), "from").map_err(ExprApiError::bad)?;
    let step = get(&pairs, "step")
        .map(step_param)
        .transpose()
        .map_err(ExprApiError::bad)?;
    let range = from.is_some() || to.is_some() || step.is_some();
    if range && time.is_some() {
        return Err(ExprApiError::bad(
            "give either `time` (instant query) or `from`/`to`/`step` (range query)",
        ));
    }
    let now = state.now();
    let times = if range {
        let to = to.unwrap_or(now);
        let from = from.unwrap_or(to - DEFAULT_RANGE_SECONDS).max(0);
        if from > to {
            return Err(ExprApiError::bad(format!(
                "`from` ({from}) must not be after `to` ({to})"
            )));
        }
        QueryTimes {
            start: from,
            end: to,
            step: step.unwrap_or(60),
            resolution,
        }
    } else {
        let t = time.unwrap_or(now);
        QueryTimes {
            start: t,
            end: t,
            step: 60,
            resolution,
        }
    };
    let store = state.metric_store();
    let result = expr::evaluate(store.as_ref(), src, times, !range, state.expr_limits()).await?;
    Ok(Json(to_body(src, result)))
}
