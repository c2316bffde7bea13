//! Alerting's domain types: alert state and its transitions ([`state`]), silences ([`silence`]) and
//! notifications ([`notification`]). Rules, evaluation and delivery are in `crate::alerts`.

pub mod notification;
pub mod silence;
pub mod state;
