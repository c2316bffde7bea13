//! Domain-level ports: the only ways the core talks to the outside world.
//!
//! Each port has an embedded adapter (`crate::embedded`, for local mode and tests) and an AWS adapter
//! (issue 3: Kinesis, DynamoDB, API Gateway management). The contract tests in `shared/tests/contract`
//! run one suite against every adapter so they cannot drift.

pub mod admission;
pub mod alerts;
pub mod connections;
pub mod live_events;
pub mod profiles;
pub mod pusher;
pub mod registry;
pub mod rules;
pub mod sequence;
pub mod store;
pub mod stream;
pub mod traces;
pub mod wrapped;

pub use admission::{AdmissionError, SeriesAdmission};
pub use alerts::{AlertStore, AlertStoreError, Notifier, NotifyError, PutOutcome, SinkStateStore};
pub use connections::{ConnectionStore, ConnectionStoreError, Subscription};
pub use live_events::{LiveEvent, LiveEventSink, NoLiveEvents};
pub use pusher::{ConnectionPosts, ConnectionPusher, PushError};
pub use registry::{InstanceRecord, InstanceSource, RegistryStore, RegistryStoreError};
pub use rules::{RulePut, RuleStore, StoredRules};
pub use sequence::SequenceNumber;
pub use store::{
    ApplyOutcome, BucketDelta, BucketKey, BucketStore, MetricStore, Purge, SeriesCatalog,
    StateStore, StoreError,
};
pub use stream::{ShardBatch, StreamEntry, StreamError, StreamRecord, StreamSink, StreamSource};
pub use traces::{TraceStore, TraceStoreError, TraceSummary, TraceWrite};
pub use wrapped::{StoreHooks, Wrapped};
