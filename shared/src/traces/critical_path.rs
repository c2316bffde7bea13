//! The critical path of a trace: the chain of span sections that determines its end-to-end duration,
//! as Jaeger defines it.
//!
//! Starting at the root, take its *last finishing child*; the parent's own time after that child's end
//! is on the path, and the walk descends into the child. A span without (more) children is on the path
//! from its start; the walk then returns to the parent with the child's start as the new limit and
//! takes the child that finished last *by* that limit, and so on. A child that ended after the limit
//! (it ran in parallel with the one on the path) is off the path.
//!
//! One deliberate difference: Jaeger takes only a child that ended strictly *before* the limit, so a
//! call ending in the very nanosecond the next one starts (common in hand-built and coarse-clock
//! traces) drops off its path. Here it stays on; each child is entered at most once, which is what
//! the strict comparison guarded against (a zero-length span would be re-entered forever).
//!
//! As in Jaeger, before the walk a child is clipped to its parent's time range (dropped if entirely
//! outside), and a CONSUMER child of a PRODUCER is removed with its descendants: the producer does not
//! wait for it. Every root (span whose parent is not in the trace) gets its own walk. The walk is
//! iterative, so a deep or cyclic parent chain from bad input cannot overflow the stack.

use std::collections::{HashMap, HashSet};

use crate::spans::{Span, SpanKind};

/// A stretch of one span's own time on the critical path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    /// Index of the span in the slice given to [`critical_path`].
    pub span: usize,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
}

/// A span as the walk sees it: clipped times and its remaining children.
struct Node {
    start: u64,
    end: u64,
    parent: Option<usize>,
    children: Vec<usize>,
}

/// The sections of the critical path, from the end of the trace backwards (the order of the walk).
pub fn critical_path(spans: &[Span]) -> Vec<Section> {
    let mut by_id: HashMap<[u8; 8], usize> = HashMap::with_capacity(spans.len());
    for (i, span) in spans.iter().enumerate() {
        by_id.entry(span.span_id).or_insert(i);
    }
    let parent_of = |i: usize| -> Option<usize> {
        let parent = spans[i].parent_span_id?;
        by_id.get(&parent).copied().filter(|&p| p != i)
    };
    let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (&_, &i) in by_id.iter() {
        match parent_of(i) {
            Some(p) => children.entry(p).or_default().push(i),
            None => roots.push(i),
        }
    }
    // Determinism for equal end times: prefer the span that comes first in the input.
    roots.sort_unstable();
    for list in children.values_mut() {
        list.sort_unstable();
    }

    let mut sections = Vec::new();
    for root in roots {
        let nodes = clipped_tree(spans, root, &children);
        walk(&nodes, root, &mut sections);
    }
    sections
}

/// The spans reachable from `root` (each once, so cycles end), clipped into their parents' ranges,
/// without producer → consumer subtrees.
fn clipped_tree(
    spans: &[Span],
    root: usize,
    children: &HashMap<usize, Vec<usize>>,
) -> HashMap<usize, Node> {
    let mut nodes: HashMap<usize, Node> = HashMap::new();
    let mut visited: HashSet<usize> = HashSet::new();
    let root_span = &spans[root];
    nodes.insert(
        root,
        Node {
            start: root_span.start_unix_nano,
            end: root_span.end_unix_nano.max(root_span.start_unix_nano),
            parent: None,
            children: Vec::new(),
        },
    );
    visited.insert(root);
    // Breadth-first, so a parent is clipped before its children are clipped into it.
    let mut queue = std::collections::VecDeque::from([root]);
    while let Some(parent) = queue.pop_front() {
        let Some((parent_start, parent_end)) = nodes.get(&parent).map(|n| (n.start, n.end)) else {
            continue;
        };
        let mut kept = Vec::new();
        for &child in children.get(&parent).map(Vec::as_slice).unwrap_or_default() {
            if !visited.insert(child) {
                continue;
            }
            let span = &spans[child];
            let non_blocking =
                spans[parent].kind == SpanKind::Producer && span.kind == SpanKind::Consumer;
            let start = span.start_unix_nano.max(parent_start);
            let end = span.end_unix_nano.min(parent_end);
            let outside = span.start_unix_nano >= parent_end || span.end_unix_nano <= parent_start;
            if non_blocking || outside || start > end {
                continue;
            }
            nodes.insert(
                child,
                Node {
                    start,
                    end,
                    parent: Some(parent),
                    children: Vec::new(),
                },
            );
            kept.push(child);
            queue.push_back(child);
        }
        // Latest end first (ties: input order), the order in which the walk considers them.
        kept.sort_by_key(|c| (std::cmp::Reverse(nodes.get(c).map_or(0, |n| n.end)), *c));
        if let Some(node) = nodes.get_mut(&parent) {
            node.children = kept;
        }
    }
    nodes
}

fn walk(nodes: &HashMap<usize, Node>, root: usize, sections: &mut Vec<Section>) {
    // Per node, how many of its children (latest end first) the walk has taken or passed over. A
    // parent's limit only moves earlier, so a child passed over once never qualifies later: each
    // child is entered at most once and the walk ends after at most two steps per span.
    let mut taken: HashMap<usize, usize> = HashMap::new();
    let mut current = root;
    // Set while returning from a child: only children that ended by then may be on the path.
    let mut limit: Option<u64> = None;
    loop {
        let Some(node) = nodes.get(&current) else {
            return;
        };
        let section_end = limit.unwrap_or(node.end);
        let next = taken.entry(current).or_insert(0);
        while node
            .children
            .get(*next)
            .and_then(|c| nodes.get(c))
            .is_some_and(|child| child.end > section_end)
        {
            *next += 1;
        }
        match node
            .children
            .get(*next)
            .and_then(|c| nodes.get(c).map(|n| (*c, n)))
        {
            Some((child, child_node)) => {
                *next += 1;
                push(sections, current, child_node.end, section_end);
                current = child;
                limit = None;
            }
            None => {
                push(sections, current, node.start, section_end);
                match node.parent {
                    Some(parent) => {
                        limit = Some(node.start);
                        current = parent;
                    }
                    None => return,
                }
            }
        }
    }
}

fn push(sections: &mut Vec<Section>, span: usize, start: u64, end: u64) {
    if start < end {
        sections.push(Section {
            span,
            start_unix_nano: start,
            end_unix_nano: end,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attributes;
    use crate::spans::SpanStatus;

    fn span(id: u8, parent: Option<u8>, start: u64, end: u64) -> Span {
        Span {
            trace_id: [1; 16],
            span_id: [id; 8],
            parent_span_id: parent.map(|p| [p; 8]),
            service: "s".into(),
            name: format!("s{id}"),
            kind: SpanKind::Internal,
            start_unix_nano: start,
            end_unix_nano: end,
            status: SpanStatus::Unset,
            attributes: Attributes::new(),
        }
    }

    fn on_path(spans: &[Span]) -> Vec<(u8, u64, u64)> {
        let mut out: Vec<(u8, u64, u64)> = critical_path(spans)
            .iter()
            .map(|s| (spans[s.span].span_id[0], s.start_unix_nano, s.end_unix_nano))
            .collect();
        out.sort_by_key(|(_, start, _)| *start);
        out
    }

    #[test]
    fn a_single_span_is_its_own_critical_path() {
        assert_eq!(on_path(&[span(1, None, 0, 10)]), [(1, 0, 10)]);
    }

    #[test]
    fn the_walk_follows_the_last_finishing_child_then_what_ended_before_it_started() {
        // root 0..100; b 10..40 and c 20..30 overlap; d 50..90 finishes last.
        let spans = [
            span(1, None, 0, 100),
            span(2, Some(1), 10, 40),
            span(3, Some(1), 20, 30),
            span(4, Some(1), 50, 90),
        ];
        assert_eq!(
            on_path(&spans),
            [
                (1, 0, 10),
                (2, 10, 40),
                (1, 40, 50),
                (4, 50, 90),
                (1, 90, 100)
            ]
        );
    }

    #[test]
    fn a_call_ending_exactly_when_the_next_starts_stays_on_the_path() {
        // cache 5..20 and db 5..60 run in parallel, then queue 60..90; sql 10..55 inside db.
        let spans = [
            span(1, None, 0, 100),
            span(2, Some(1), 5, 20),
            span(3, Some(1), 5, 60),
            span(4, Some(1), 60, 90),
            span(5, Some(3), 10, 55),
        ];
        assert_eq!(
            on_path(&spans),
            [
                (1, 0, 5),
                (3, 5, 10),
                (5, 10, 55),
                (3, 55, 60),
                (4, 60, 90),
                (1, 90, 100)
            ]
        );
    }

    #[test]
    fn a_child_running_past_its_parent_is_clipped_to_the_parent() {
        let spans = [span(1, None, 0, 50), span(2, Some(1), 40, 80)];
        assert_eq!(on_path(&spans), [(1, 0, 40), (2, 40, 50)]);
    }

    #[test]
    fn a_consumer_of_a_producer_is_not_waited_for() {
        let mut producer = span(2, Some(1), 10, 20);
        producer.kind = SpanKind::Producer;
        let mut consumer = span(3, Some(2), 12, 19);
        consumer.kind = SpanKind::Consumer;
        let spans = [span(1, None, 0, 30), producer, consumer];
        assert_eq!(on_path(&spans), [(1, 0, 10), (2, 10, 20), (1, 20, 30)]);
    }

    #[test]
    fn cycles_and_self_parents_end_without_looping() {
        // 2 and 3 are each other's parents: unreachable from any root, so not on any path.
        let spans = [
            span(1, Some(1), 0, 10),
            span(2, Some(3), 0, 5),
            span(3, Some(2), 0, 5),
        ];
        assert_eq!(on_path(&spans), [(1, 0, 10)]);
    }
}
