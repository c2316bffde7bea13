//! A stack tree: frames interned once, one node per distinct call path with its exact `total`
//! (samples in it and below) and `self` (samples ending in it). Merging adds sums, so it is exact and
//! independent of order.
//!
//! Serialized compactly for storage ([`StackTree::encode`]): a version byte, then varints (prost's
//! encoding helpers): the names used, then every node as (parent, name, self) in creation order —
//! parents come before their children, and totals are recomputed on decode.

use bytes::Buf;
use foldhash::HashMap;
use foldhash::HashMapExt;
use prost::encoding::{decode_varint, encode_varint};

use super::ProfileError;

/// The root's name id (it has no name of its own).
pub const ROOT: u32 = u32::MAX;
const ENCODING_VERSION: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub parent: u32,
    pub name: u32,
    pub total: u64,
    pub self_value: u64,
}

#[derive(Debug, Clone)]
pub struct StackTree {
    names: Vec<String>,
    name_ids: HashMap<String, u32>,
    /// Node 0 is the root; a node's parent always has a smaller index.
    nodes: Vec<Node>,
    /// (parent node, name) → node.
    children: HashMap<(u32, u32), u32>,
}

impl Default for StackTree {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for StackTree {
    /// Same stacks with the same values, whatever the interning or insertion order.
    fn eq(&self, other: &Self) -> bool {
        let mut a = Vec::new();
        self.for_each_stack(|s, v| {
            a.push((
                s.iter()
                    .map(|n| self.name(*n).to_string())
                    .collect::<Vec<_>>(),
                v,
            ))
        });
        let mut b = Vec::new();
        other.for_each_stack(|s, v| {
            b.push((
                s.iter()
                    .map(|n| other.name(*n).to_string())
                    .collect::<Vec<_>>(),
                v,
            ))
        });
        a.sort();
        b.sort();
        a == b && self.total() == other.total()
    }
}

impl StackTree {
    pub fn new() -> Self {
        StackTree {
            names: Vec::new(),
            name_ids: HashMap::new(),
            nodes: vec![Node {
                parent: ROOT,
                name: ROOT,
                total: 0,
                self_value: 0,
            }],
            children: HashMap::new(),
        }
    }

    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(id) = self.name_ids.get(name) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_string());
        self.name_ids.insert(name.to_string(), id);
        id
    }

    pub fn name(&self, id: u32) -> &str {
        if id == ROOT {
            return "total";
        }
        self.names.get(id as usize).map_or("", String::as_str)
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn names_len(&self) -> usize {
        self.names.len()
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Sum of every sample.
    pub fn total(&self) -> u64 {
        self.nodes[0].total
    }

    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// Adds `value` to the stack `stack` (name ids, root first).
    pub fn add_stack(&mut self, stack: &[u32], value: u64) {
        if value == 0 {
            return;
        }
        let mut node = 0u32;
        self.nodes[0].total = self.nodes[0].total.saturating_add(value);
        for name in stack {
            node = self.child(node, *name);
            let n = &mut self.nodes[node as usize];
            n.total = n.total.saturating_add(value);
        }
        let n = &mut self.nodes[node as usize];
        n.self_value = n.self_value.saturating_add(value);
    }

    /// Adds a stack given as frame names, root first.
    pub fn add_named_stack<S: AsRef<str>>(&mut self, stack: &[S], value: u64) {
        let ids: Vec<u32> = stack.iter().map(|s| self.intern(s.as_ref())).collect();
        self.add_stack(&ids, value);
    }

    /// Adds a stack given as frame names (root first) unless its new call paths would make the tree
    /// hold more than `max_nodes` nodes; returns whether it was added. A refused stack interns
    /// nothing, so a hostile profile of distinct frames cannot grow the tree past the bound.
    pub fn add_named_stack_bounded<S: AsRef<str>>(
        &mut self,
        stack: &[S],
        value: u64,
        max_nodes: usize,
    ) -> bool {
        if value == 0 {
            return true;
        }
        // How many frames, from the root, already have a node.
        let mut node = 0u32;
        let mut existing = 0;
        for frame in stack {
            let next = self
                .name_ids
                .get(frame.as_ref())
                .and_then(|name| self.children.get(&(node, *name)));
            match next {
                Some(id) => {
                    node = *id;
                    existing += 1;
                }
                None => break,
            }
        }
        if self.nodes.len() + (stack.len() - existing) > max_nodes {
            return false;
        }
        self.add_named_stack(stack, value);
        true
    }

    /// [`StackTree::merge`], creating at most enough nodes for this tree to hold `max_nodes`: the
    /// samples of `other`'s call paths that do not fit (a node that would be new, and everything
    /// below it) are left out. Returns the value left out (0 when everything fitted).
    pub fn merge_bounded(&mut self, other: &StackTree, max_nodes: usize) -> u64 {
        const OUT: u32 = u32::MAX;
        let mut map: Vec<u32> = Vec::with_capacity(other.nodes.len());
        map.push(0);
        let mut names: Vec<u32> = vec![OUT; other.names.len()];
        for node in &other.nodes[1..] {
            let parent = map[node.parent as usize];
            if parent == OUT {
                map.push(OUT);
                continue;
            }
            let name_slot = &mut names[node.name as usize];
            let existing = if *name_slot == OUT {
                self.name_ids
                    .get(other.names[node.name as usize].as_str())
                    .copied()
            } else {
                Some(*name_slot)
            };
            if let Some(id) = existing.and_then(|name| self.children.get(&(parent, name))) {
                *name_slot = existing.unwrap_or(OUT);
                map.push(*id);
                continue;
            }
            if self.nodes.len() >= max_nodes {
                map.push(OUT);
                continue;
            }
            let name = match existing {
                Some(name) => name,
                None => self.intern(&other.names[node.name as usize]),
            };
            *name_slot = name;
            map.push(self.child(parent, name));
        }
        // What each of `other`'s nodes keeps: its own self if it landed, plus what its children
        // keep (children come after their parents, so a reverse pass sums bottom-up).
        let mut kept: Vec<u64> = vec![0; other.nodes.len()];
        for i in (0..other.nodes.len()).rev() {
            let node = other.nodes[i];
            if map[i] == OUT {
                continue;
            }
            kept[i] = kept[i].saturating_add(node.self_value);
            let target = &mut self.nodes[map[i] as usize];
            target.self_value = target.self_value.saturating_add(node.self_value);
            target.total = target.total.saturating_add(kept[i]);
            if i > 0 {
                let parent = node.parent as usize;
                kept[parent] = kept[parent].saturating_add(kept[i]);
            }
        }
        other.total().saturating_sub(kept[0])
    }

    fn child(&mut self, parent: u32, name: u32) -> u32 {
        let next = self.nodes.len() as u32;
        let id = *self.children.entry((parent, name)).or_insert(next);
        if id == next {
            self.nodes.push(Node {
                parent,
                name,
                total: 0,
                self_value: 0,
            });
        }
        id
    }

    /// Adds every sample of `other` to this tree.
    pub fn merge(&mut self, other: &StackTree) {
        self.merge_mapped(other);
    }

    /// [`StackTree::merge`], returning where each node of `other` landed in this tree.
    pub fn merge_mapped(&mut self, other: &StackTree) -> Vec<u32> {
        let names: Vec<u32> = other.names.iter().map(|n| self.intern(n)).collect();
        let mut map: Vec<u32> = Vec::with_capacity(other.nodes.len());
        map.push(0);
        self.nodes[0].total = self.nodes[0].total.saturating_add(other.nodes[0].total);
        self.nodes[0].self_value = self.nodes[0]
            .self_value
            .saturating_add(other.nodes[0].self_value);
        for node in &other.nodes[1..] {
            let parent = map[node.parent as usize];
            let id = self.child(parent, names[node.name as usize]);
            let n = &mut self.nodes[id as usize];
            n.total = n.total.saturating_add(node.total);
            n.self_value = n.self_value.saturating_add(node.self_value);
            map.push(id);
        }
        map
    }

    /// Each node's children, sorted by frame name (the order flame graphs draw them in).
    pub fn children_lists(&self) -> Vec<Vec<u32>> {
        let mut lists: Vec<Vec<u32>> = vec![Vec::new(); self.nodes.len()];
        for (id, node) in self.nodes.iter().enumerate().skip(1) {
            lists[node.parent as usize].push(id as u32);
        }
        for list in &mut lists {
            list.sort_by(|a, b| {
                self.name(self.nodes[*a as usize].name)
                    .cmp(self.name(self.nodes[*b as usize].name))
            });
        }
        lists
    }

    /// Calls `f(stack, self)` for every node with a self value (stack: name ids, root first).
    pub fn for_each_stack(&self, mut f: impl FnMut(&[u32], u64)) {
        let mut stacks: Vec<Vec<u32>> = Vec::with_capacity(self.nodes.len());
        stacks.push(Vec::new());
        for node in &self.nodes[1..] {
            let mut stack = stacks[node.parent as usize].clone();
            stack.push(node.name);
            stacks.push(stack);
        }
        if self.nodes[0].self_value > 0 {
            f(&[], self.nodes[0].self_value);
        }
        for (node, stack) in self.nodes.iter().zip(&stacks).skip(1) {
            if node.self_value > 0 {
                f(stack, node.self_value);
            }
        }
    }

    /// The compact form for storage.
    pub fn encode(&self) -> Vec<u8> {
        // Only names some node uses, renumbered in first-use order.
        let mut renumber: Vec<u32> = vec![u32::MAX; self.names.len()];
        let mut used: Vec<u32> = Vec::new();
        for node in &self.nodes[1..] {
            let slot = &mut renumber[node.name as usize];
            if *slot == u32::MAX {
                *slot = used.len() as u32;
                used.push(node.name);
            }
        }
        let mut out = Vec::with_capacity(16 + self.nodes.len() * 6);
        out.push(ENCODING_VERSION);
        encode_varint(used.len() as u64, &mut out);
        for id in &used {
            let name = self.names[*id as usize].as_bytes();
            encode_varint(name.len() as u64, &mut out);
            out.extend_from_slice(name);
        }
        encode_varint(self.nodes[0].self_value, &mut out);
        encode_varint((self.nodes.len() - 1) as u64, &mut out);
        for node in &self.nodes[1..] {
            encode_varint(u64::from(node.parent), &mut out);
            encode_varint(u64::from(renumber[node.name as usize]), &mut out);
            encode_varint(node.self_value, &mut out);
        }
        out
    }

    /// Reads [`StackTree::encode`]'s form.
    pub fn decode(bytes: &[u8]) -> Result<StackTree, ProfileError> {
        let corrupt = |what: &str| ProfileError::Corrupt(format!("stack tree: {what}"));
        let mut buf = bytes;
        match buf.first() {
            Some(&ENCODING_VERSION) => buf.advance(1),
            Some(v) => return Err(corrupt(&format!("unknown version {v}"))),
            None => return Err(corrupt("empty")),
        }
        let varint = |buf: &mut &[u8]| decode_varint(buf).map_err(|_| corrupt("bad varint"));
        let name_count = varint(&mut buf)?;
        let mut tree = StackTree::new();
        for _ in 0..name_count {
            let len = usize::try_from(varint(&mut buf)?).map_err(|_| corrupt("name length"))?;
            if buf.len() < len {
                return Err(corrupt("name past the end"));
            }
            let name = std::str::from_utf8(&buf[..len]).map_err(|_| corrupt("name not UTF-8"))?;
            tree.names.push(name.to_string());
            tree.name_ids
                .insert(name.to_string(), (tree.names.len() - 1) as u32);
            buf.advance(len);
        }
        if tree.names.len() != tree.name_ids.len() {
            return Err(corrupt("duplicate name"));
        }
        tree.nodes[0].self_value = varint(&mut buf)?;
        let node_count = varint(&mut buf)?;
        if node_count > buf.len() as u64 {
            return Err(corrupt("node count past the end"));
        }
        tree.nodes.reserve(node_count as usize);
        for _ in 0..node_count {
            let parent = varint(&mut buf)?;
            let name = varint(&mut buf)?;
            let self_value = varint(&mut buf)?;
            let index = tree.nodes.len() as u64;
            if parent >= index || name >= tree.names.len() as u64 {
                return Err(corrupt("node out of order"));
            }
            let (parent, name) = (parent as u32, name as u32);
            if tree.children.insert((parent, name), index as u32).is_some() {
                return Err(corrupt("duplicate node"));
            }
            tree.nodes.push(Node {
                parent,
                name,
                total: 0,
                self_value,
            });
        }
        if buf.has_remaining() {
            return Err(corrupt("trailing bytes"));
        }
        // Totals: each node's self, added to itself and every ancestor (children after parents,
        // so a reverse pass sums bottom-up).
        for i in (0..tree.nodes.len()).rev() {
            let node = tree.nodes[i];
            let total = node.total.saturating_add(node.self_value);
            tree.nodes[i].total = total;
            if i > 0 {
                let parent = &mut tree.nodes[node.parent as usize];
                parent.total = parent.total.saturating_add(total);
            }
        }
        Ok(tree)
    }
}

#[cfg(test)]
impl StackTree {
    /// A tree of `("main;a;b", value)` pairs, for tests across the crate.
    pub(crate) fn from_folded_pairs(stacks: &[(&str, u64)]) -> StackTree {
        let mut tree = StackTree::new();
        for (stack, value) in stacks {
            let frames: Vec<&str> = stack.split(';').collect();
            tree.add_named_stack(&frames, *value);
        }
        tree
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(stacks: &[(&str, u64)]) -> StackTree {
        StackTree::from_folded_pairs(stacks)
    }

    #[test]
    fn totals_and_self_are_exact() {
        let t = tree(&[("main;a;b", 3), ("main;a", 2), ("main;c", 5)]);
        assert_eq!(t.total(), 10);
        let main = t.nodes().iter().find(|n| t.name(n.name) == "main").unwrap();
        assert_eq!((main.total, main.self_value), (10, 0));
        let a = t.nodes().iter().find(|n| t.name(n.name) == "a").unwrap();
        assert_eq!((a.total, a.self_value), (5, 2));
    }

    #[test]
    fn merge_is_order_independent_and_equals_the_sum() {
        let parts = [
            tree(&[("main;a;b", 3), ("main;c", 1)]),
            tree(&[("main;c", 4), ("x;y", 7)]),
            tree(&[("main;a", 2), ("main;a;b", 1)]),
        ];
        let mut forward = StackTree::new();
        for p in &parts {
            forward.merge(p);
        }
        let mut backward = StackTree::new();
        for p in parts.iter().rev() {
            backward.merge(p);
        }
        let all = tree(&[("main;a;b", 4), ("main;c", 5), ("x;y", 7), ("main;a", 2)]);
        assert_eq!(forward, backward);
        assert_eq!(forward, all);
        assert_eq!(forward.total(), 18);
    }

    #[test]
    fn bounded_adds_and_merges_leave_out_only_what_does_not_fit() {
        let mut t = StackTree::new();
        // root + main + a + b = 4 nodes.
        assert!(t.add_named_stack_bounded(&["main", "a", "b"], 3, 4));
        // Needs a new node: refused, nothing interned.
        assert!(!t.add_named_stack_bounded(&["main", "c"], 5, 4));
        assert!(!t.names().iter().any(|n| n == "c"));
        // Existing paths still add.
        assert!(t.add_named_stack_bounded(&["main", "a"], 2, 4));
        assert_eq!(t, tree(&[("main;a;b", 3), ("main;a", 2)]));

        let mut minute = tree(&[("main;a", 1)]);
        let push = tree(&[("main;a", 4), ("main;a;x", 2), ("main;y;z", 7)]);
        // 3 nodes now; room for one more: `x` (first in creation order) fits, `y;z` does not.
        let refused = minute.merge_bounded(&push, 4);
        assert_eq!(refused, 7);
        assert_eq!(minute, tree(&[("main;a", 5), ("main;a;x", 2)]));
        assert_eq!(minute.total(), 7);
        assert_eq!(minute.nodes().len(), 4);
        // Unbounded, it equals merge.
        let mut all = tree(&[("main;a", 1)]);
        assert_eq!(all.merge_bounded(&push, usize::MAX), 0);
        let mut expected = tree(&[("main;a", 1)]);
        expected.merge(&push);
        assert_eq!(all, expected);
    }

    #[test]
    fn encoding_round_trips_and_refuses_garbage() {
        let mut t = tree(&[("main;a;b", 3), ("main;a", 2), ("main;c", 5)]);
        t.intern("unused");
        let bytes = t.encode();
        let back = StackTree::decode(&bytes).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.total(), 10);
        assert!(!back.names().iter().any(|n| n == "unused"));
        assert!(StackTree::decode(&[]).is_err());
        assert!(StackTree::decode(&[9]).is_err());
        assert!(StackTree::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(StackTree::decode(&trailing).is_err());
    }
}
