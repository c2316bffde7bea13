//! Continuous profiling's processing side (issue 14): [`service::ProfileService`] merges pushes
//! ([`crate::profiles`]) into the [`crate::ports::profiles::ProfileStore`] exactly once and serves
//! the reads; [`events`] turns merges into the live `profile` event and the total series.

pub mod events;
pub mod service;
