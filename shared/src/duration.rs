//! Durations as people write them in flags and rule files, parsed by `humantime`: `90s`, `5m`,
//! `1h`, `30d`, and its combinations and long names (`1h 30m`, `1h30m`, `2hours`, `5min`).
//! `y` is humantime's year, 365.25 days. Whole seconds only: `1500ms` is refused.

/// `text` as whole seconds. `bare_seconds`: a plain number (`90`) counts as seconds, as rule files
/// have always allowed; flags want a unit.
pub fn parse_seconds(text: &str, bare_seconds: bool) -> Result<i64, String> {
    let text = text.trim();
    if bare_seconds && !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<i64>()
            .map_err(|_| format!("duration {text:?} is too long"));
    }
    let duration = humantime::parse_duration(text).map_err(|e| {
        format!("invalid duration {text:?} ({e}): write a number with a unit, like 90s, 5m, 1h, 7d or 1h 30m")
    })?;
    if duration.subsec_nanos() != 0 {
        return Err(format!(
            "duration {text:?} is not a whole number of seconds"
        ));
    }
    i64::try_from(duration.as_secs()).map_err(|_| format!("duration {text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::parse_seconds;

    #[test]
    fn accepts_the_units_flags_and_rule_files_always_took() {
        for (text, seconds) in [
            ("45s", 45),
            ("90m", 5400),
            ("12h", 43_200),
            ("7d", 604_800),
            ("365d", 31_536_000),
            (" 5m ", 300),
        ] {
            assert_eq!(parse_seconds(text, false), Ok(seconds), "{text}");
        }
        assert_eq!(parse_seconds("90", true), Ok(90));
        assert!(parse_seconds("90", false).is_err(), "flags want a unit");
    }

    #[test]
    fn accepts_humantime_combinations_and_long_names() {
        assert_eq!(parse_seconds("1h 30m", false), Ok(5400));
        assert_eq!(parse_seconds("1h30m", false), Ok(5400));
        assert_eq!(parse_seconds("2hours", false), Ok(7200));
        assert_eq!(parse_seconds("5min", false), Ok(300));
        assert_eq!(
            parse_seconds("1y", false),
            Ok(31_557_600),
            "a year is 365.25 days"
        );
    }

    #[test]
    fn refuses_what_is_not_a_whole_duration() {
        for text in [
            "",
            "m",
            "-5m",
            "5 parsecs",
            "1500ms",
            "5 minutes ago",
            "99999999999999999999d",
        ] {
            assert!(parse_seconds(text, false).is_err(), "{text:?}");
            assert!(parse_seconds(text, true).is_err(), "{text:?}");
        }
        assert!(parse_seconds("99999999999999999999", true).is_err());
    }
}
