//! Bounds on what one profile push may make Flowscope hold (hostile input is normal input), and the
//! account of what a push had refused by them. Over a bound only the excess is left out: the samples
//! that do not fit; the rest of the push is kept, and the answer names every limit that refused
//! something (with its flag), so a push is never answered 200 for data that was not kept.

use std::collections::BTreeMap;

/// A limit that can refuse part of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Limit {
    /// Samples (pprof samples, folded lines) per push; those past it are refused.
    Samples,
    /// Frames of one sample's stack; deeper samples are refused.
    StackDepth,
    /// Bytes of one frame (function) name; samples through a longer one are refused.
    FunctionNameBytes,
    /// Distinct call paths (tree nodes) of one pushed profile; samples needing more are refused.
    PushNodes,
    /// Distinct call paths of one stored per-minute tree; samples needing more are refused.
    MinuteNodes,
    /// Distinct label sets per service, profile type and minute; a further label set is refused.
    LabelSets,
}

impl Limit {
    /// The local-mode flag that sets it.
    pub fn flag(self) -> &'static str {
        match self {
            Limit::Samples => "--max-profile-samples",
            Limit::StackDepth => "--max-profile-stack-depth",
            Limit::FunctionNameBytes => "--max-profile-function-name-bytes",
            Limit::PushNodes => "--max-profile-nodes",
            Limit::MinuteNodes => "--max-profile-minute-nodes",
            Limit::LabelSets => "--max-profile-label-sets",
        }
    }

    /// A short id, used as the key of the answer's `refused` object.
    pub fn id(self) -> &'static str {
        match self {
            Limit::Samples => "samples",
            Limit::StackDepth => "stack_depth",
            Limit::FunctionNameBytes => "function_name_bytes",
            Limit::PushNodes => "push_nodes",
            Limit::MinuteNodes => "minute_nodes",
            Limit::LabelSets => "label_sets",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Limit::Samples => "samples past the per-push sample limit",
            Limit::StackDepth => "samples deeper than the stack depth limit",
            Limit::FunctionNameBytes => "samples with a function name over the name length limit",
            Limit::PushNodes => "samples whose call paths exceed the per-push call path limit",
            Limit::MinuteNodes => "sample value whose call paths exceed the per-minute tree limit",
            Limit::LabelSets => "sample value of a label set over the per-minute label set limit",
        }
    }
}

/// Per-sample bounds applied while a profile is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleLimits {
    pub max_samples: usize,
    pub max_stack_depth: usize,
    pub max_function_name_bytes: usize,
    /// Nodes of one decoded tree (the root included).
    pub max_nodes: usize,
}

impl SampleLimits {
    /// No bound (tests, benchmarks, and the bounded input of a stored tree).
    pub const UNBOUNDED: SampleLimits = SampleLimits {
        max_samples: usize::MAX,
        max_stack_depth: usize::MAX,
        max_function_name_bytes: usize::MAX,
        max_nodes: usize::MAX,
    };
}

/// What limits refused, per limit: samples for the read-time limits, sample value (in the profile
/// type's unit) for the per-minute ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refusals {
    pub by_limit: BTreeMap<Limit, u64>,
}

impl Refusals {
    pub fn add(&mut self, limit: Limit, n: u64) {
        if n > 0 {
            let slot = self.by_limit.entry(limit).or_insert(0);
            *slot = slot.saturating_add(n);
        }
    }

    pub fn absorb(&mut self, other: &Refusals) {
        for (limit, n) in &other.by_limit {
            self.add(*limit, *n);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_limit.is_empty()
    }

    pub fn count(&self, limit: Limit) -> u64 {
        self.by_limit.get(&limit).copied().unwrap_or(0)
    }

    /// `refused by limits: 12 samples deeper than the stack depth limit (--max-profile-stack-depth), …`
    pub fn message(&self) -> String {
        let parts: Vec<String> = self
            .by_limit
            .iter()
            .map(|(limit, n)| format!("{n} {} ({})", limit.what(), limit.flag()))
            .collect();
        format!("refused by limits: {}", parts.join(", "))
    }
}
