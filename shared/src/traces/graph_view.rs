//! The service graph for a time range, read back from the RED and edge series (`GET /api/graph`):
//! services with their RED summary (from `red.duration` / `red.errors`), virtual nodes with the
//! summary of the calls into them, and edges with count, errors and p50/p95/p99.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::stats::BucketStats;
use crate::model::{Resolution, SeriesMeta};
use crate::ports::{BucketStore, SeriesCatalog};
use crate::query::{QueryError, Range};

use super::graph::{
    NodeKind, CONNECTION_ATTRIBUTE, EDGE_DURATION, EDGE_ERRORS, SERVER_ATTRIBUTE,
    SERVER_KIND_ATTRIBUTE,
};
use super::red;

/// Buckets per series a graph query reads at most when it picks the resolution itself.
const AUTO_MAX_BUCKETS: i64 = 360;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GraphView {
    pub from: i64,
    pub to: i64,
    pub resolution: Resolution,
    pub nodes: Vec<NodeView>,
    pub edges: Vec<EdgeView>,
}

/// Requests, errors and latency over the range; durations in ms.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RedView {
    pub count: u64,
    pub errors: u64,
    /// Requests per second over the range.
    pub rate: f64,
    /// errors / count; `None` without requests.
    pub error_rate: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NodeView {
    pub id: String,
    pub name: String,
    /// `service`, or for a virtual node `database`, `messaging` or `external`.
    pub kind: &'static str,
    pub r#virtual: bool,
    #[serde(flatten)]
    pub red: RedView,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EdgeView {
    pub source: String,
    pub target: String,
    /// `call` (client → server) or `messaging` (producer → consumer).
    pub kind: String,
    #[serde(flatten)]
    pub red: RedView,
}

/// Totals of one node or edge over the range.
#[derive(Debug, Default)]
struct Totals {
    duration: BucketStats,
    errors: f64,
}

impl Totals {
    fn view(&self, seconds: i64) -> RedView {
        let count = self.duration.count;
        let errors = self.errors.max(0.0).round() as u64;
        RedView {
            count,
            errors,
            rate: count as f64 / seconds.max(1) as f64,
            error_rate: (count > 0).then(|| (errors as f64 / count as f64).min(1.0)),
            p50_ms: self.duration.quantile(0.5),
            p95_ms: self.duration.quantile(0.95),
            p99_ms: self.duration.quantile(0.99),
        }
    }
}

/// Edge identity: (caller, callee, connection).
type EdgeId = (String, String, String);

/// The resolution a graph query uses when none is asked for: the finest that keeps the range within
/// [`AUTO_MAX_BUCKETS`] buckets per series.
pub fn auto_resolution(from: i64, to: i64) -> Resolution {
    Resolution::ALL
        .into_iter()
        .find(|r| (to - from) / r.seconds() <= AUTO_MAX_BUCKETS)
        .unwrap_or(Resolution::OneDay)
}

pub async fn service_graph<S: SeriesCatalog + BucketStore + ?Sized>(
    store: &S,
    range: Range,
) -> Result<GraphView, QueryError> {
    let mut services: BTreeMap<String, Totals> = BTreeMap::new();
    let mut edges: BTreeMap<EdgeId, Totals> = BTreeMap::new();
    let mut virtual_kinds: BTreeMap<String, NodeKind> = BTreeMap::new();
    for service in store.list_services().await? {
        for meta in store.list_series(&service).await? {
            let metric = meta.key.metric.as_str();
            let wanted = [red::DURATION, red::ERRORS, EDGE_DURATION, EDGE_ERRORS];
            if !wanted.contains(&metric) {
                continue;
            }
            let stats = range_totals(store, &meta, range).await?;
            if stats.is_empty() {
                continue;
            }
            let totals = if metric == red::DURATION || metric == red::ERRORS {
                services.entry(service.clone()).or_default()
            } else {
                let attribute = |k: &str| meta.key.attributes.get(k).cloned().unwrap_or_default();
                let target = attribute(SERVER_ATTRIBUTE);
                let kind = NodeKind::parse(&attribute(SERVER_KIND_ATTRIBUTE))
                    .unwrap_or(NodeKind::External);
                if kind != NodeKind::Service {
                    virtual_kinds.insert(target.clone(), kind);
                }
                let id = (service.clone(), target, attribute(CONNECTION_ATTRIBUTE));
                edges.entry(id).or_default()
            };
            if metric == red::DURATION || metric == EDGE_DURATION {
                totals.duration.merge(&stats);
            } else {
                totals.errors += stats.sum;
            }
        }
    }

    let seconds = range.to - range.from;
    let mut nodes: BTreeMap<String, NodeView> = services
        .iter()
        .map(|(name, totals)| {
            let node = NodeView {
                id: name.clone(),
                name: name.clone(),
                kind: NodeKind::Service.as_str(),
                r#virtual: false,
                red: totals.view(seconds),
            };
            (name.clone(), node)
        })
        .collect();
    // A node nobody reports for: a virtual node, summarized from the calls into it.
    let mut incoming: BTreeMap<String, Totals> = BTreeMap::new();
    for ((source, target, _), totals) in &edges {
        for name in [source, target] {
            if !services.contains_key(name) {
                let into = incoming.entry(name.clone()).or_default();
                if name == target {
                    into.duration.merge(&totals.duration);
                    into.errors += totals.errors;
                }
            }
        }
    }
    for (name, totals) in incoming {
        let kind = virtual_kinds
            .get(&name)
            .copied()
            .unwrap_or(NodeKind::Service);
        nodes.insert(
            name.clone(),
            NodeView {
                id: name.clone(),
                name,
                kind: kind.as_str(),
                r#virtual: kind != NodeKind::Service,
                red: totals.view(seconds),
            },
        );
    }
    Ok(GraphView {
        from: range.from,
        to: range.to,
        resolution: range.resolution,
        nodes: nodes.into_values().collect(),
        edges: edges
            .into_iter()
            .map(|((source, target, kind), totals)| EdgeView {
                source,
                target,
                kind,
                red: totals.view(seconds),
            })
            .collect(),
    })
}

async fn range_totals<S: SeriesCatalog + BucketStore + ?Sized>(
    store: &S,
    meta: &SeriesMeta,
    range: Range,
) -> Result<BucketStats, QueryError> {
    let mut total = BucketStats::new();
    for (_, stats) in store
        .query_buckets(meta.id, range.resolution, range.from, range.to)
        .await?
    {
        total.merge(&stats);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_resolution_is_the_finest_within_the_bucket_budget() {
        assert_eq!(auto_resolution(0, 15 * 60), Resolution::OneMinute);
        assert_eq!(auto_resolution(0, 6 * 3600), Resolution::OneMinute);
        assert_eq!(auto_resolution(0, 24 * 3600), Resolution::FiveMinutes);
        assert_eq!(auto_resolution(0, 7 * 86_400), Resolution::OneHour);
        assert_eq!(auto_resolution(0, 30 * 86_400), Resolution::OneDay);
    }
}
