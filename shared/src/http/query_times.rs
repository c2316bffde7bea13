//! Time and step parameters of the expression endpoints (`/api/query`, `/api/export` and the
//! Prometheus read API), parsed in one place: a time is unix seconds (fractions allowed, rounded
//! down, as Prometheus accepts) or RFC 3339; a step is whole seconds or a duration (`5m`).

use crate::expr;
use crate::query::{MAX_TIMESTAMP, MIN_TIMESTAMP};

/// A time parameter named `name`: `None` when absent; the error says what is accepted.
pub(crate) fn time_param(text: Option<&str>, name: &str) -> Result<Option<i64>, String> {
    let Some(text) = text else {
        return Ok(None);
    };
    let text = text.trim();
    let seconds = if let Ok(f) = text.parse::<f64>() {
        f.floor()
    } else if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => d.as_secs() as f64,
            Err(_) => -1.0,
        }
    } else {
        return Err(format!(
            "`{name}` must be unix seconds or RFC 3339, cannot parse {text:?}"
        ));
    };
    if !(MIN_TIMESTAMP as f64..=MAX_TIMESTAMP as f64).contains(&seconds) {
        return Err(format!(
            "`{name}` {text:?} is outside 1970-01-01 … 9999-12-31"
        ));
    }
    Ok(Some(seconds as i64))
}

/// A step: whole seconds (`60`, `60.0`) or a duration (`1m`).
pub(crate) fn step_param(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        if (1.0..=1e9).contains(&seconds) && seconds.fract() == 0.0 {
            return Ok(seconds as i64);
        }
        return Err(format!(
            "`step` must be whole seconds from 1 to 1e9 or a duration like `5m`, got {text:?}"
        ));
    }
    match expr::parse::parse_duration(text) {
        Some(s) if s >= 1 => Ok(s),
        _ => Err(format!(
            "`step` must be whole seconds or a duration like `5m`, got {text:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_seconds_fractions_or_rfc3339() {
        assert_eq!(time_param(None, "t"), Ok(None));
        assert_eq!(time_param(Some("1700000000"), "t"), Ok(Some(1_700_000_000)));
        assert_eq!(
            time_param(Some("1700000000.9"), "t"),
            Ok(Some(1_700_000_000))
        );
        assert_eq!(
            time_param(Some("2023-11-14T22:13:20Z"), "t"),
            Ok(Some(1_700_000_000))
        );
        assert!(time_param(Some("-1"), "t").is_err());
        assert!(time_param(Some("yesterday"), "from")
            .unwrap_err()
            .contains("`from`"));
    }

    #[test]
    fn steps_are_seconds_or_durations() {
        assert_eq!(step_param("60"), Ok(60));
        assert_eq!(step_param("5m"), Ok(300));
        assert!(step_param("0").is_err());
        assert!(step_param("1.5").is_err());
    }
}
