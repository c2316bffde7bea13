//! Silences: label matchers with a time range. A silenced alert still changes state and is still
//! listed (marked `silenced`); only its notifications are suppressed.

use serde::{Deserialize, Serialize};

use super::state::{Labels, Severity};

/// Longest silence the API accepts: forgotten silences should not hide alerts forever.
pub const MAX_SILENCE_S: i64 = 30 * 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub enum MatchOp {
    #[default]
    #[serde(rename = "=")]
    Equal,
    #[serde(rename = "!=")]
    NotEqual,
    /// `*` matches any run of characters (`checkout-*`).
    #[serde(rename = "=~")]
    Glob,
}

/// Matches one label. Besides an alert's labels, `alertname` (the rule) and `severity` can be matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Matcher {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub op: MatchOp,
}

impl Matcher {
    fn matches(&self, actual: Option<&str>) -> bool {
        match self.op {
            MatchOp::Equal => actual == Some(self.value.as_str()),
            MatchOp::NotEqual => actual != Some(self.value.as_str()),
            MatchOp::Glob => actual.is_some_and(|a| glob_matches(&self.value, a)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Silence {
    pub id: String,
    /// All must match.
    pub matchers: Vec<Matcher>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub created_by: String,
    #[serde(default)]
    pub comment: String,
    pub created_at: i64,
}

impl Silence {
    pub fn is_active(&self, now: i64) -> bool {
        self.starts_at <= now && now < self.ends_at
    }

    /// Whether this silence covers an alert of `rule` with `labels` at `severity`, at `now`.
    pub fn silences(
        &self,
        rule: &str,
        labels: &Labels,
        severity: Option<Severity>,
        now: i64,
    ) -> bool {
        self.is_active(now)
            && self.matchers.iter().all(|m| {
                let actual = match m.name.as_str() {
                    "alertname" => Some(rule),
                    "severity" => severity.map(Severity::as_str),
                    name => labels.get(name).map(String::as_str),
                };
                m.matches(actual)
            })
    }
}

/// Whether any of `silences` covers the alert.
pub fn is_silenced(
    silences: &[Silence],
    rule: &str,
    labels: &Labels,
    severity: Option<Severity>,
    now: i64,
) -> bool {
    silences
        .iter()
        .any(|s| s.silences(rule, labels, severity, now))
}

/// What `POST /api/silences` accepts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceRequest {
    pub matchers: Vec<Matcher>,
    /// Defaults to now.
    pub starts_at: Option<i64>,
    /// Either `ends_at` (unix seconds) or `duration` (`"2h"`).
    pub ends_at: Option<i64>,
    pub duration: Option<String>,
    pub created_by: String,
    #[serde(default)]
    pub comment: String,
}

impl SilenceRequest {
    /// Validates the request into a silence with the given id.
    pub fn into_silence(self, id: String, now: i64) -> Result<Silence, String> {
        if self.matchers.is_empty() {
            return Err(
                "a silence needs at least one matcher; silencing everything is not allowed".into(),
            );
        }
        if self.matchers.iter().any(|m| m.name.trim().is_empty()) {
            return Err("every matcher needs a `name`".into());
        }
        if self
            .matchers
            .iter()
            .all(|m| m.op == MatchOp::NotEqual || (m.op == MatchOp::Glob && m.value == "*"))
        {
            return Err("at least one matcher must select something (= or a narrower =~)".into());
        }
        if self.created_by.trim().is_empty() {
            return Err("`created_by` must name who creates the silence".into());
        }
        let starts_at = self.starts_at.unwrap_or(now);
        let ends_at = match (self.ends_at, self.duration) {
            (Some(end), None) => end,
            (None, Some(duration)) => {
                starts_at.saturating_add(crate::duration::parse_seconds(&duration, true)?)
            }
            _ => return Err("give exactly one of `ends_at` or `duration`".into()),
        };
        if ends_at <= starts_at {
            return Err("`ends_at` must be after `starts_at`".into());
        }
        if ends_at <= now {
            return Err("the silence would already have ended".into());
        }
        if ends_at - starts_at > MAX_SILENCE_S {
            return Err("a silence may last at most 30 days".into());
        }
        Ok(Silence {
            id,
            matchers: self.matchers,
            starts_at,
            ends_at,
            created_by: self.created_by,
            comment: self.comment,
            created_at: now,
        })
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(service: &str) -> Labels {
        let mut l = Labels::new();
        l.insert("service".into(), service.into());
        l
    }

    fn silence(matchers: Vec<Matcher>) -> Silence {
        Silence {
            id: "s".into(),
            matchers,
            starts_at: 100,
            ends_at: 200,
            created_by: "ann".into(),
            comment: String::new(),
            created_at: 100,
        }
    }

    fn m(name: &str, op: MatchOp, value: &str) -> Matcher {
        Matcher {
            name: name.into(),
            value: value.into(),
            op,
        }
    }

    #[test]
    fn matchers_all_apply_and_only_while_active() {
        let s = silence(vec![
            m("service", MatchOp::Equal, "checkout"),
            m("severity", MatchOp::NotEqual, "critical"),
        ]);
        let warn = Some(Severity::Warning);
        assert!(s.silences("latency", &labels("checkout"), warn, 150));
        assert!(!s.silences(
            "latency",
            &labels("checkout"),
            Some(Severity::Critical),
            150
        ));
        assert!(!s.silences("latency", &labels("cart"), warn, 150));
        assert!(!s.silences("latency", &labels("checkout"), warn, 99));
        assert!(!s.silences("latency", &labels("checkout"), warn, 200));
        let by_rule = silence(vec![m("alertname", MatchOp::Glob, "high-*")]);
        assert!(by_rule.silences("high-latency", &labels("x"), warn, 150));
        assert!(!by_rule.silences("error-rate", &labels("x"), warn, 150));
    }

    #[test]
    fn globs_match_prefixes_suffixes_and_middles() {
        assert!(glob_matches("checkout-*", "checkout-eu"));
        assert!(glob_matches("*-eu", "checkout-eu"));
        assert!(glob_matches("a*b*c", "axxbyyc"));
        assert!(!glob_matches("a*b*c", "axxcyyb"));
        assert!(!glob_matches("ab*ba", "aba"));
        assert!(glob_matches("*", ""));
        assert!(!glob_matches("exact", "exactly"));
    }

    #[test]
    fn requests_are_validated() {
        let request = |matchers, duration: &str| SilenceRequest {
            matchers,
            starts_at: None,
            ends_at: None,
            duration: Some(duration.into()),
            created_by: "ann".into(),
            comment: String::new(),
        };
        let ok = request(vec![m("service", MatchOp::Equal, "api")], "2h")
            .into_silence("id".into(), 1000)
            .unwrap();
        assert_eq!((ok.starts_at, ok.ends_at), (1000, 1000 + 7200));
        assert!(request(vec![], "2h").into_silence("id".into(), 0).is_err());
        assert!(request(vec![m("service", MatchOp::NotEqual, "api")], "2h")
            .into_silence("id".into(), 0)
            .is_err());
        assert!(request(vec![m("service", MatchOp::Equal, "api")], "90d")
            .into_silence("id".into(), 0)
            .is_err());
    }
}
