//! Continuous profiling (issue 14): profiles in (pprof, folded), symbolized and merged per service,
//! profile type, labels and minute into [`tree::StackTree`]s, read back as flame graphs, top
//! functions, diffs, pprof and snapshots ([`view`]). `crate::profiling` ties this domain to the
//! `crate::ports::profiles::ProfileStore` port.

pub mod folded;
pub mod limits;
pub mod otlp;
pub mod pprof;
pub mod push;
pub mod tree;
pub mod view;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Why a profile could not be read or stored.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The client's fault: 400 with this reason.
    #[error("{0}")]
    Malformed(String),
    /// Over a size limit: 413.
    #[error("{0}")]
    TooLarge(String),
    /// Stored bytes that do not decode.
    #[error("corrupt profile data: {0}")]
    Corrupt(String),
}

/// The profile types Flowscope keeps (the API contract's ids).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ProfileType {
    Cpu,
    Wall,
    AllocSpace,
    AllocObjects,
    InuseSpace,
    InuseObjects,
    Goroutines,
    Samples,
}

impl ProfileType {
    pub const ALL: [ProfileType; 8] = [
        ProfileType::Cpu,
        ProfileType::Wall,
        ProfileType::AllocSpace,
        ProfileType::AllocObjects,
        ProfileType::InuseSpace,
        ProfileType::InuseObjects,
        ProfileType::Goroutines,
        ProfileType::Samples,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProfileType::Cpu => "cpu",
            ProfileType::Wall => "wall",
            ProfileType::AllocSpace => "alloc_space",
            ProfileType::AllocObjects => "alloc_objects",
            ProfileType::InuseSpace => "inuse_space",
            ProfileType::InuseObjects => "inuse_objects",
            ProfileType::Goroutines => "goroutines",
            ProfileType::Samples => "samples",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            ProfileType::Cpu | ProfileType::Wall => "nanoseconds",
            ProfileType::AllocSpace | ProfileType::InuseSpace => "bytes",
            _ => "count",
        }
    }

    pub fn parse(text: &str) -> Option<ProfileType> {
        ProfileType::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// The type of a pprof sample type (`type`/`unit` as Go, Node's pprof and async-profiler write
    /// them).
    pub fn from_pprof(name: &str, unit: &str) -> Option<ProfileType> {
        Some(match (name, unit) {
            ("cpu", _) => ProfileType::Cpu,
            ("wall", _) => ProfileType::Wall,
            ("alloc_space", _) => ProfileType::AllocSpace,
            ("alloc_objects", _) => ProfileType::AllocObjects,
            ("inuse_space", _) | ("space", "bytes") => ProfileType::InuseSpace,
            ("inuse_objects", _) | ("objects", "count") => ProfileType::InuseObjects,
            ("goroutine" | "goroutines", _) => ProfileType::Goroutines,
            ("samples" | "sample", "count") => ProfileType::Samples,
            _ => return None,
        })
    }

    /// The name of its per-minute total series (`flowscope.profile.cpu`, …).
    pub fn series_name(self) -> String {
        format!("flowscope.profile.{}", self.as_str())
    }
}

/// Start of the minute holding `unix_seconds`, in unix seconds.
pub fn minute_of(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(60) * 60
}
