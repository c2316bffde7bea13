//! Query-string parameters of the read routes, and the HTTP status of a read error: the HTTP side of
//! [`crate::query`].

use serde::Deserialize;

use crate::alerts::api::{
    HistoryFilter, DEFAULT_HISTORY_LIMIT, DEFAULT_HISTORY_S, MAX_HISTORY_LIMIT,
};
use crate::ports::StoreError;
use crate::query::{
    timestamp_param, QueryError, Range, RangeRequest, MAX_TIMESTAMP, MIN_TIMESTAMP,
};

/// `?limit=`: `default` when absent, else a whole number from 1 to `max`; the error names `limit`.
pub fn limit_param(value: Option<&str>, default: usize, max: usize) -> Result<usize, String> {
    match value {
        None => Ok(default),
        Some(text) => match text.trim().parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(format!(
                "`limit` must be a number from 1 to {max}, got {text:?}"
            )),
        },
    }
}

/// The query string of `GET /api/alerts/history`, as sent.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HistoryParams {
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<String>,
    pub fingerprint: Option<String>,
    pub rule: Option<String>,
    pub service: Option<String>,
}

impl HistoryParams {
    /// Parses the parameters and fills the defaults: `to` = now + 1 s, `from` = `to` − 24 h,
    /// `limit` = 500 (at most 5000). An error names the parameter.
    pub fn filter(&self, now: i64) -> Result<HistoryFilter, String> {
        let to = timestamp_param(self.to.as_deref(), "to")?
            .unwrap_or_else(|| now.saturating_add(1).clamp(MIN_TIMESTAMP, MAX_TIMESTAMP));
        let from = timestamp_param(self.from.as_deref(), "from")?
            .unwrap_or_else(|| to.saturating_sub(DEFAULT_HISTORY_S).max(MIN_TIMESTAMP));
        let limit = limit_param(
            self.limit.as_deref(),
            DEFAULT_HISTORY_LIMIT,
            MAX_HISTORY_LIMIT,
        )?;
        Ok(HistoryFilter {
            from,
            to,
            limit,
            fingerprint: self.fingerprint.clone(),
            rule: self.rule.clone(),
            service: self.service.clone(),
        })
    }
}

/// The range parameters of a query string (`from`, `to`: unix seconds; `resolution`: 1m/5m/1h),
/// as sent; [`RangeParams::request`] parses them, [`Range::from_params`] validates them too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RangeParams {
    pub from: Option<String>,
    pub to: Option<String>,
    pub resolution: Option<String>,
}

impl RangeParams {
    /// Parses the parameters; an error names the parameter that is not a whole number of unix
    /// seconds in range, or not a resolution.
    pub fn request(&self) -> Result<RangeRequest, QueryError> {
        // `to` first: its error is the one reported when both are wrong.
        let to = timestamp_param(self.to.as_deref(), "to").map_err(QueryError::BadRequest)?;
        let from = timestamp_param(self.from.as_deref(), "from").map_err(QueryError::BadRequest)?;
        Ok(RangeRequest {
            from,
            to,
            resolution: self
                .resolution
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(QueryError::BadRequest)?,
        })
    }
}

impl Range {
    /// Parses and validates `from`, `to` and `resolution` from a query string (defaults and limits in
    /// [`RangeRequest::resolve`]).
    pub fn from_params(params: &RangeParams, now: i64) -> Result<Range, QueryError> {
        params.request()?.resolve(now)
    }
}

impl QueryError {
    /// The HTTP status of a failed read: 400, 404, 503 when the store throttles, else 500.
    pub fn status(&self) -> u16 {
        match self {
            QueryError::BadRequest(_) => 400,
            QueryError::NotFound(_) => 404,
            QueryError::Store(StoreError::Throttled(_)) => 503,
            QueryError::Store(_) => 500,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Resolution;

    #[test]
    fn range_params_parse_and_validate() {
        let mut p = RangeParams::default();
        let r = Range::from_params(&p, 10_000).unwrap();
        assert_eq!(
            (r.from, r.to, r.resolution),
            (10_000 - 900, 10_000, Resolution::OneMinute)
        );
        p.from = Some("x".into());
        assert!(matches!(
            Range::from_params(&p, 10_000),
            Err(QueryError::BadRequest(_))
        ));
        p.from = Some("0".into());
        p.to = Some("86400000".into());
        let err = Range::from_params(&p, 10_000).unwrap_err();
        assert!(err.to_string().contains("coarser resolution"), "{err}");
        p.resolution = Some("2m".into());
        assert!(Range::from_params(&p, 10_000).is_err());
    }

    #[test]
    fn limit_defaults_when_absent_and_names_itself_when_out_of_range() {
        assert_eq!(limit_param(None, 20, 200), Ok(20));
        assert_eq!(limit_param(Some("200"), 20, 200), Ok(200));
        for bad in ["0", "201", "-1", "ten", ""] {
            let err = limit_param(Some(bad), 20, 200).unwrap_err();
            assert!(
                err.contains("`limit`") && err.contains("200"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn history_params_default_to_the_last_day_and_keep_the_filters() {
        let params = HistoryParams {
            service: Some("api".into()),
            ..HistoryParams::default()
        };
        let f = params.filter(100_000).unwrap();
        assert_eq!((f.from, f.to, f.limit), (100_001 - 86_400, 100_001, 500));
        assert_eq!(f.service.as_deref(), Some("api"));
        let bad = HistoryParams {
            from: Some("soon".into()),
            ..HistoryParams::default()
        };
        assert!(bad.filter(100_000).unwrap_err().contains("`from`"));
    }
}
