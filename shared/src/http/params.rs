//! Query-string parameters of the read routes, and the HTTP status of a read error: the HTTP side of
//! [`crate::query`].

use serde::Deserialize;

use crate::ports::StoreError;
use crate::query::{timestamp_param, QueryError, Range, RangeRequest};

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
}
