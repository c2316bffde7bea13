//! What the query routes answer, computed from merged trees: the flame graph (Pyroscope's
//! "flamebearer" layout, absolute starts), the top functions, the diff of two trees, the timeline
//! and the snapshot file.

use foldhash::HashMap;
use foldhash::HashMapExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::tree::{StackTree, ROOT};
use super::ProfileType;

/// Default and largest `max_nodes` of a flame graph or diff.
pub const DEFAULT_MAX_NODES: usize = 8192;
pub const MAX_MAX_NODES: usize = 65_536;

/// `GET /api/profiles/flamegraph`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FlameGraph {
    pub service: String,
    #[serde(rename = "type")]
    pub profile_type: ProfileType,
    pub unit: String,
    /// Range start, unix milliseconds.
    pub from: i64,
    /// Range end, unix milliseconds.
    pub to: i64,
    pub total: u64,
    /// Frame names; index 0 is the root `total`.
    pub names: Vec<String>,
    /// Level 0 is the root. Each level lists its nodes as groups of 4 numbers
    /// `[start, total, self, name_index]`, sorted by start; `start` is the absolute offset in sample
    /// units from the left edge. A node's children lie within `[start, start + total)` on the next
    /// level. The smallest nodes may be left out (`max_nodes`); every listed value is exact.
    pub levels: Vec<Vec<u64>>,
}

/// `GET /api/profiles/diff`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DiffGraph {
    pub service: String,
    #[serde(rename = "type")]
    pub profile_type: ProfileType,
    pub unit: String,
    pub from: i64,
    pub to: i64,
    pub base_from: i64,
    pub base_to: i64,
    /// Grand total of the range.
    pub total: u64,
    /// Grand total of the base range.
    pub base_total: u64,
    pub names: Vec<String>,
    /// Groups of 7: `[start, width, name_index, total, self, base_total, base_self]` over the union
    /// of both trees; `width = total + base_total`, `start` in that space.
    pub levels: Vec<Vec<u64>>,
}

/// One function of `GET /api/profiles/top`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TopFunction {
    pub name: String,
    /// Samples ending in this function.
    #[serde(rename = "self")]
    pub self_value: u64,
    /// Samples with this function anywhere on the stack (counted once per stack).
    pub total: u64,
}

/// `GET /api/profiles/top`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TopFunctions {
    pub unit: String,
    pub total: u64,
    /// Sorted by self, descending (then by name).
    pub functions: Vec<TopFunction>,
}

/// One minute of a timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TimelinePoint {
    /// Minute start, unix milliseconds.
    pub t: i64,
    pub total: u64,
}

/// `GET /api/profiles/timeline`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Timeline {
    pub service: String,
    #[serde(rename = "type")]
    pub profile_type: ProfileType,
    pub unit: String,
    /// One point per stored minute, oldest first.
    pub points: Vec<TimelinePoint>,
}

/// The snapshot file (`GET /api/profiles/snapshot`, gzip JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Always 1.
    pub version: u32,
    pub service: String,
    #[serde(rename = "type")]
    pub profile_type: ProfileType,
    pub unit: String,
    pub from: i64,
    pub to: i64,
    pub timeline: Vec<TimelinePoint>,
    pub flamegraph: FlameGraph,
}

/// Which nodes to list: all, or the `max_nodes` largest (ancestors always included: a parent's
/// total is at least its child's and it sorts first on ties).
fn kept(widths: &[u64], depths: &[u32], max_nodes: usize) -> Vec<bool> {
    if widths.len() <= max_nodes {
        return vec![true; widths.len()];
    }
    let mut order: Vec<u32> = (0..widths.len() as u32).collect();
    order.sort_by(|a, b| {
        let (a, b) = (*a as usize, *b as usize);
        widths[b]
            .cmp(&widths[a])
            .then(depths[a].cmp(&depths[b]))
            .then(a.cmp(&b))
    });
    let mut keep = vec![false; widths.len()];
    for id in order.into_iter().take(max_nodes.max(1)) {
        keep[id as usize] = true;
    }
    keep
}

/// Lays `tree` out: per node its depth and absolute start (children from the parent's start, in
/// name order; a parent's self at its right end), visiting nodes in pre-order.
fn layout(tree: &StackTree, widths: &[u64]) -> (Vec<u32>, Vec<u64>, Vec<u32>) {
    let children = tree.children_lists();
    let n = tree.nodes().len();
    let mut depth = vec![0u32; n];
    let mut start = vec![0u64; n];
    let mut preorder = Vec::with_capacity(n);
    let mut stack = vec![0u32];
    while let Some(id) = stack.pop() {
        preorder.push(id);
        let mut offset = start[id as usize];
        for child in &children[id as usize] {
            let c = *child as usize;
            depth[c] = depth[id as usize] + 1;
            start[c] = offset;
            offset = offset.saturating_add(widths[c]);
        }
        stack.extend(children[id as usize].iter().rev());
    }
    (depth, start, preorder)
}

struct Names<'a> {
    tree: &'a StackTree,
    index: HashMap<u32, u64>,
    names: Vec<String>,
}

impl<'a> Names<'a> {
    fn new(tree: &'a StackTree) -> Self {
        let mut index = HashMap::new();
        index.insert(ROOT, 0);
        Names {
            tree,
            index,
            names: vec!["total".to_string()],
        }
    }

    fn get(&mut self, name: u32) -> u64 {
        if let Some(i) = self.index.get(&name) {
            return *i;
        }
        let i = self.names.len() as u64;
        self.names.push(self.tree.name(name).to_string());
        self.index.insert(name, i);
        i
    }
}

/// The flame graph of `tree` (levels and names only; the caller fills in the rest).
pub fn flame_levels(tree: &StackTree, max_nodes: usize) -> (Vec<String>, Vec<Vec<u64>>) {
    let nodes = tree.nodes();
    let widths: Vec<u64> = nodes.iter().map(|n| n.total).collect();
    let (depth, start, preorder) = layout(tree, &widths);
    let keep = kept(&widths, &depth, max_nodes);
    let mut names = Names::new(tree);
    let mut levels: Vec<Vec<u64>> = Vec::new();
    for id in preorder {
        let i = id as usize;
        if !keep[i] {
            continue;
        }
        let d = depth[i] as usize;
        if levels.len() <= d {
            levels.resize_with(d + 1, Vec::new);
        }
        let name = names.get(nodes[i].name);
        levels[d].extend_from_slice(&[start[i], nodes[i].total, nodes[i].self_value, name]);
    }
    (names.names, levels)
}

/// The diff levels of `tree` against `base`: returns (names, levels).
pub fn diff_levels(
    tree: &StackTree,
    base: &StackTree,
    max_nodes: usize,
) -> (Vec<String>, Vec<Vec<u64>>) {
    let mut union = StackTree::new();
    let a = union.merge_mapped(tree);
    let b = union.merge_mapped(base);
    let n = union.nodes().len();
    // [total, self, base_total, base_self] per union node.
    let mut values = vec![[0u64; 4]; n];
    for (node, u) in tree.nodes().iter().zip(&a) {
        values[*u as usize][0] = node.total;
        values[*u as usize][1] = node.self_value;
    }
    for (node, u) in base.nodes().iter().zip(&b) {
        values[*u as usize][2] = node.total;
        values[*u as usize][3] = node.self_value;
    }
    let widths: Vec<u64> = union.nodes().iter().map(|n| n.total).collect();
    let (depth, start, preorder) = layout(&union, &widths);
    let keep = kept(&widths, &depth, max_nodes);
    let mut names = Names::new(&union);
    let mut levels: Vec<Vec<u64>> = Vec::new();
    for id in preorder {
        let i = id as usize;
        if !keep[i] {
            continue;
        }
        let d = depth[i] as usize;
        if levels.len() <= d {
            levels.resize_with(d + 1, Vec::new);
        }
        let name = names.get(union.nodes()[i].name);
        let [t, s, bt, bs] = values[i];
        levels[d].extend_from_slice(&[start[i], widths[i], name, t, s, bt, bs]);
    }
    (names.names, levels)
}

/// The top functions of `tree` by self value.
pub fn top(tree: &StackTree, limit: usize) -> Vec<TopFunction> {
    let nodes = tree.nodes();
    let children = tree.children_lists();
    let mut self_by: HashMap<u32, u64> = HashMap::new();
    let mut total_by: HashMap<u32, u64> = HashMap::new();
    let mut on_stack: HashMap<u32, u32> = HashMap::new();
    // Depth-first with enter/exit, so recursion counts a function's total once per stack.
    let mut work: Vec<(u32, bool)> = children[0].iter().rev().map(|c| (*c, true)).collect();
    while let Some((id, enter)) = work.pop() {
        let node = nodes[id as usize];
        if enter {
            let depth = on_stack.entry(node.name).or_insert(0);
            if *depth == 0 {
                *total_by.entry(node.name).or_insert(0) += node.total;
            }
            *depth += 1;
            *self_by.entry(node.name).or_insert(0) += node.self_value;
            work.push((id, false));
            work.extend(children[id as usize].iter().rev().map(|c| (*c, true)));
        } else if let Some(depth) = on_stack.get_mut(&node.name) {
            *depth -= 1;
        }
    }
    let mut functions: Vec<TopFunction> = total_by
        .into_iter()
        .map(|(name, total)| TopFunction {
            name: tree.name(name).to_string(),
            self_value: self_by.get(&name).copied().unwrap_or(0),
            total,
        })
        .collect();
    functions.sort_by(|a, b| {
        b.self_value
            .cmp(&a.self_value)
            .then_with(|| a.name.cmp(&b.name))
    });
    functions.truncate(limit);
    functions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(stacks: &[(&str, u64)]) -> StackTree {
        StackTree::from_folded_pairs(stacks)
    }

    #[test]
    fn flame_levels_use_absolute_starts_in_name_order() {
        let t = tree(&[("main;b", 3), ("main;a", 2), ("main", 1)]);
        let (names, levels) = flame_levels(&t, DEFAULT_MAX_NODES);
        assert_eq!(names[0], "total");
        assert_eq!(levels[0], vec![0, 6, 0, 0]);
        assert_eq!(levels[1][..3], [0, 6, 1]);
        // a (2) from 0, b (3) from 2.
        let l2 = &levels[2];
        assert_eq!((names[l2[3] as usize].as_str(), l2[0], l2[1]), ("a", 0, 2));
        assert_eq!((names[l2[7] as usize].as_str(), l2[4], l2[5]), ("b", 2, 3));
    }

    #[test]
    fn pruning_keeps_the_largest_nodes_with_exact_values() {
        let t = tree(&[("main;big", 100), ("main;small", 1), ("main;tiny", 1)]);
        let (_, levels) = flame_levels(&t, 3);
        assert_eq!(levels.len(), 3);
        assert_eq!(levels[2].len(), 4, "only `big` is listed");
        assert_eq!(levels[2][1], 100);
        assert_eq!(levels[1][1], 102, "the parent's total stays exact");
    }

    #[test]
    fn top_counts_recursion_once() {
        let t = tree(&[("main;f;f;g", 5), ("main;f", 1)]);
        let top = top(&t, 10);
        let f = top.iter().find(|f| f.name == "f").unwrap();
        assert_eq!((f.self_value, f.total), (1, 6));
        assert_eq!(top[0].name, "g");
    }

    #[test]
    fn diff_covers_the_union() {
        let now = tree(&[("main;a", 5), ("main;new", 2)]);
        let base = tree(&[("main;a", 3), ("main;gone", 1)]);
        let (names, levels) = diff_levels(&now, &base, DEFAULT_MAX_NODES);
        assert_eq!(levels[0][..], [0, 11, 0, 7, 0, 4, 0]);
        let find = |name: &str| {
            levels[2]
                .chunks(7)
                .find(|g| names[g[2] as usize] == name)
                .unwrap()
                .to_vec()
        };
        assert_eq!(find("a")[3..], [5, 5, 3, 3]);
        assert_eq!(find("new")[3..], [2, 2, 0, 0]);
        assert_eq!(find("gone")[3..], [0, 0, 1, 1]);
    }
}
