//! A stored trace as `GET /api/traces/{traceId}` returns it: the span tree flattened depth-first
//! (children by start time, each with its `depth` and `parent_span_id`), every span marked with
//! whether it is on the critical path and for how long, plus the trace's summary.
//!
//! Flat rather than nested so that a deep (or adversarial) trace cannot exhaust the stack of the
//! serializer or the client's parser. Nanosecond times are decimal strings, as in OTLP/JSON: they
//! exceed what a JSON number holds exactly in JavaScript.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::model::Attributes;
use crate::ports::TraceSummary;
use crate::spans::{hex, Span, SpanStatus};

use super::critical_path::critical_path;
use super::red::{is_error, kind_name};

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TraceView {
    /// Trace id and summary fields, at the top level of the JSON.
    #[serde(flatten)]
    pub summary: SummaryView,
    /// Ids of the spans with time on the critical path.
    pub critical_path: Vec<String>,
    /// The path's sections in time order.
    pub critical_sections: Vec<SectionView>,
    pub spans: Vec<SpanView>,
}

/// A trace in the list of a service's recent traces (and the head of a [`TraceView`]).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SummaryView {
    pub trace_id: String,
    pub root_service: Option<String>,
    pub root_name: Option<String>,
    pub start_unix_nano: String,
    pub duration_ms: f64,
    pub span_count: u64,
    pub error: bool,
    pub services: Vec<String>,
}

impl SummaryView {
    pub fn new(summary: &TraceSummary) -> SummaryView {
        SummaryView {
            trace_id: hex(&summary.trace_id),
            root_service: summary.root_service.clone(),
            root_name: summary.root_name.clone(),
            start_unix_nano: summary.start_unix_nano.to_string(),
            duration_ms: summary.duration_nanos as f64 / 1e6,
            span_count: summary.span_count,
            error: summary.error,
            services: summary.services.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SectionView {
    pub span_id: String,
    pub start_unix_nano: String,
    pub end_unix_nano: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SpanView {
    pub span_id: String,
    pub parent_span_id: Option<String>,
    /// 0 for a root (or a span whose parent is not in the trace).
    pub depth: usize,
    pub service: String,
    pub name: String,
    pub kind: &'static str,
    pub status: &'static str,
    pub error: bool,
    pub start_unix_nano: String,
    pub end_unix_nano: String,
    pub duration_ms: f64,
    pub critical: bool,
    /// The span's own time on the critical path.
    pub critical_ms: f64,
    pub attributes: Attributes,
}

/// The view of a trace from its stored spans (any order).
pub fn trace_view(trace_id: &[u8; 16], spans: &[Span]) -> TraceView {
    let mut summary = TraceSummary::empty(*trace_id);
    let mut seen = HashSet::new();
    for span in spans {
        if seen.insert(span.span_id) {
            summary.absorb(span);
        }
    }
    let sections = critical_path(spans);
    let mut critical_nanos: HashMap<usize, u64> = HashMap::new();
    for section in &sections {
        *critical_nanos.entry(section.span).or_default() +=
            section.end_unix_nano - section.start_unix_nano;
    }
    let mut critical_sections: Vec<SectionView> = sections
        .iter()
        .map(|s| SectionView {
            span_id: hex(&spans[s.span].span_id),
            start_unix_nano: s.start_unix_nano.to_string(),
            end_unix_nano: s.end_unix_nano.to_string(),
        })
        .collect();
    critical_sections.reverse(); // the walk goes from the end backwards

    let (order, depths) = tree_order(spans);
    let mut critical_ids = Vec::new();
    let span_views = order
        .iter()
        .map(|&i| {
            let span = &spans[i];
            let on_path = critical_nanos.get(&i).copied();
            if on_path.is_some() {
                critical_ids.push(hex(&span.span_id));
            }
            SpanView {
                span_id: hex(&span.span_id),
                parent_span_id: span.parent_span_id.map(|p| hex(&p)),
                depth: depths[i],
                service: span.service.clone(),
                name: span.name.clone(),
                kind: kind_name(span.kind),
                status: match span.status {
                    SpanStatus::Unset => "unset",
                    SpanStatus::Ok => "ok",
                    SpanStatus::Error => "error",
                },
                error: is_error(span),
                start_unix_nano: span.start_unix_nano.to_string(),
                end_unix_nano: span.end_unix_nano.to_string(),
                duration_ms: span.duration_nanos() as f64 / 1e6,
                critical: on_path.is_some(),
                critical_ms: on_path.unwrap_or(0) as f64 / 1e6,
                attributes: span.attributes.clone(),
            }
        })
        .collect();
    TraceView {
        summary: SummaryView::new(&summary),
        critical_path: critical_ids,
        critical_sections,
        spans: span_views,
    }
}

/// Depth-first order (roots and siblings by start time) and each span's depth. Spans reachable from
/// no root (a parent cycle) come last at depth 0, so nothing stored is hidden. Duplicate span ids
/// after the first are left out.
fn tree_order(spans: &[Span]) -> (Vec<usize>, Vec<usize>) {
    let mut first_of: HashMap<[u8; 8], usize> = HashMap::new();
    for (i, span) in spans.iter().enumerate() {
        first_of.entry(span.span_id).or_insert(i);
    }
    let unique: Vec<usize> = (0..spans.len())
        .filter(|&i| first_of.get(&spans[i].span_id) == Some(&i))
        .collect();
    let by_start = |a: &usize, b: &usize| {
        (spans[*a].start_unix_nano, *a).cmp(&(spans[*b].start_unix_nano, *b))
    };
    let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for &i in &unique {
        let parent = spans[i]
            .parent_span_id
            .and_then(|p| first_of.get(&p).copied())
            .filter(|&p| p != i);
        match parent {
            Some(p) => children.entry(p).or_default().push(i),
            None => roots.push(i),
        }
    }
    roots.sort_by(by_start);
    for list in children.values_mut() {
        list.sort_by(by_start);
    }
    let mut depths = vec![0; spans.len()];
    let mut order = Vec::with_capacity(unique.len());
    let mut visited = vec![false; spans.len()];
    let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&r| (r, 0)).collect();
    while let Some((i, depth)) = stack.pop() {
        if std::mem::replace(&mut visited[i], true) {
            continue;
        }
        depths[i] = depth;
        order.push(i);
        if let Some(kids) = children.get(&i) {
            stack.extend(kids.iter().rev().map(|&c| (c, depth + 1)));
        }
    }
    order.extend(unique.into_iter().filter(|&i| !visited[i]));
    (order, depths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spans::SpanKind;

    fn span(id: u8, parent: Option<u8>, start: u64, end: u64) -> Span {
        Span {
            trace_id: [1; 16],
            span_id: [id; 8],
            parent_span_id: parent.map(|p| [p; 8]),
            service: if id == 1 { "web".into() } else { "db".into() },
            name: format!("op{id}"),
            kind: SpanKind::Internal,
            start_unix_nano: start,
            end_unix_nano: end,
            status: SpanStatus::Unset,
            attributes: Attributes::new(),
        }
    }

    #[test]
    fn spans_come_depth_first_with_depths_and_critical_marks() {
        // Stored out of order; 3 runs in parallel with 2 and ends first, so it is off the path.
        let spans = [
            span(3, Some(1), 1_000_000, 2_000_000),
            span(2, Some(1), 1_000_000, 8_000_000),
            span(4, Some(2), 2_000_000, 3_000_000),
            span(1, None, 0, 10_000_000),
        ];
        let view = trace_view(&[1; 16], &spans);
        let order: Vec<(&str, usize, bool)> = view
            .spans
            .iter()
            .map(|s| (&s.name[..], s.depth, s.critical))
            .collect();
        assert_eq!(
            order,
            [
                ("op1", 0, true),
                ("op3", 1, false),
                ("op2", 1, true),
                ("op4", 2, true)
            ]
        );
        assert_eq!(view.summary.root_name.as_deref(), Some("op1"));
        assert_eq!(view.summary.span_count, 4);
        assert_eq!(view.summary.duration_ms, 10.0);
        assert_eq!(view.summary.services, ["db", "web"]);
        let root = &view.spans[0];
        // Root's own time on the path: 0..1 ms and 8..10 ms.
        assert_eq!(root.critical_ms, 3.0);
    }

    #[test]
    fn a_parent_cycle_still_lists_every_span_once() {
        let spans = [
            span(1, None, 0, 10),
            span(2, Some(3), 0, 5),
            span(3, Some(2), 0, 5),
            span(2, Some(3), 0, 5),
        ];
        let view = trace_view(&[1; 16], &spans);
        assert_eq!(view.spans.len(), 3);
        assert_eq!(view.summary.span_count, 3);
    }
}
