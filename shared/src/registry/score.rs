//! The health score (issue 13 item 3); see `docs/health-score.md`.
