//! The pprof format (`profile.proto` of github.com/google/pprof, Apache-2.0), written out as prost
//! messages: the file is small and stable, so a build script (and `protoc`) is not worth it. Only
//! the fields Flowscope reads or writes are typed; prost skips the others.
//!
//! [`decode`] symbolizes a profile into root-first stacks per sample type; [`encode`] writes a
//! [`StackTree`] back as a gzip pprof that `go tool pprof` and speedscope open.

use std::collections::HashMap;
use std::io::{Read, Write};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use prost::Message;

use super::limits::{Limit, Refusals, SampleLimits};
use super::tree::StackTree;
use super::{ProfileError, ProfileType};

#[derive(Clone, PartialEq, Message)]
pub struct Profile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    pub period: i64,
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueType {
    /// Index into the string table.
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    /// Leaf first.
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    /// One per sample type.
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Location {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "3")]
    pub address: u64,
    /// Innermost (inlined callee) first, the caller last.
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    #[prost(int64, tag = "2")]
    pub line: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Function {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    #[prost(int64, tag = "4")]
    pub filename: i64,
    #[prost(int64, tag = "5")]
    pub start_line: i64,
}

/// Gunzips `body` when it starts with the gzip magic, reading at most `max_bytes` decompressed
/// bytes (the same bomb guard as OTLP bodies); raw protobuf passes through.
pub fn gunzip_if_needed(
    body: &[u8],
    max_bytes: usize,
) -> Result<std::borrow::Cow<'_, [u8]>, ProfileError> {
    if !body.starts_with(&[0x1f, 0x8b]) {
        return Ok(std::borrow::Cow::Borrowed(body));
    }
    let mut out = Vec::new();
    let limit = u64::try_from(max_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    MultiGzDecoder::new(body)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| ProfileError::Malformed(format!("invalid gzip: {e}")))?;
    if out.len() > max_bytes {
        return Err(ProfileError::TooLarge(format!(
            "the profile decompresses to more than {max_bytes} bytes"
        )));
    }
    Ok(std::borrow::Cow::Owned(out))
}

/// One sample type of a decoded pprof, as a tree.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub profile_type: ProfileType,
    pub tree: StackTree,
}

/// Decodes a pprof (gzip or raw protobuf) into one tree per known sample type. Sample types that
/// map to no Flowscope type are skipped; a profile with none is refused. `period` scaling is not
/// applied: values are what the profiler recorded (nanoseconds for cpu, bytes for space, …).
pub fn decode(body: &[u8], max_bytes: usize) -> Result<Vec<Decoded>, ProfileError> {
    decode_bounded(body, max_bytes, &SampleLimits::UNBOUNDED).map(|(decoded, _)| decoded)
}

/// [`decode`] within `limits`: a sample over one of them is left out of its tree and counted.
/// Frame names are interned only for samples that are kept.
pub fn decode_bounded(
    body: &[u8],
    max_bytes: usize,
    limits: &SampleLimits,
) -> Result<(Vec<Decoded>, Refusals), ProfileError> {
    let raw = gunzip_if_needed(body, max_bytes)?;
    let profile = Profile::decode(&raw[..])
        .map_err(|e| ProfileError::Malformed(format!("not a pprof profile: {e}")))?;
    let strings = &profile.string_table;
    let string = |i: i64| -> Result<&str, ProfileError> {
        usize::try_from(i)
            .ok()
            .and_then(|i| strings.get(i))
            .map(String::as_str)
            .ok_or_else(|| ProfileError::Malformed(format!("string index {i} out of range")))
    };
    let mut types = Vec::new();
    for (index, vt) in profile.sample_type.iter().enumerate() {
        let name = string(vt.r#type)?;
        let unit = string(vt.unit)?;
        if let Some(t) = ProfileType::from_pprof(name, unit) {
            if !types.iter().any(|(_, seen)| *seen == t) {
                types.push((index, t));
            }
        }
    }
    if types.is_empty() {
        let names: Vec<String> = profile
            .sample_type
            .iter()
            .map(|vt| {
                format!(
                    "{}/{}",
                    string(vt.r#type).unwrap_or("?"),
                    string(vt.unit).unwrap_or("?")
                )
            })
            .collect();
        return Err(ProfileError::Malformed(format!(
            "no known sample type in the profile (has {names:?})"
        )));
    }
    let functions: HashMap<u64, &Function> = profile.function.iter().map(|f| (f.id, f)).collect();
    // Each location's frames, caller first (inlined callees after their caller).
    let mut frames: HashMap<u64, Vec<String>> = HashMap::with_capacity(profile.location.len());
    for location in &profile.location {
        let mut names = Vec::with_capacity(location.line.len().max(1));
        for line in location.line.iter().rev() {
            let name = match functions.get(&line.function_id) {
                Some(f) => {
                    let name = string(f.name)?;
                    if name.is_empty() {
                        let file = string(f.filename)?;
                        if file.is_empty() {
                            format!("0x{:x}", location.address)
                        } else {
                            format!("{file}:{}", line.line)
                        }
                    } else {
                        name.to_string()
                    }
                }
                None => {
                    return Err(ProfileError::Malformed(format!(
                        "location {} names unknown function {}",
                        location.id, line.function_id
                    )))
                }
            };
            names.push(name);
        }
        if names.is_empty() {
            names.push(format!("0x{:x}", location.address));
        }
        frames.insert(location.id, names);
    }
    let mut trees: Vec<StackTree> = types.iter().map(|_| StackTree::new()).collect();
    let mut refused = Refusals::default();
    let mut stack: Vec<&str> = Vec::new();
    for (n, sample) in profile.sample.iter().enumerate() {
        if n >= limits.max_samples {
            refused.add(Limit::Samples, (profile.sample.len() - n) as u64);
            break;
        }
        stack.clear();
        let mut too_deep = false;
        for id in sample.location_id.iter().rev() {
            let names = frames.get(id).ok_or_else(|| {
                ProfileError::Malformed(format!("sample names unknown location {id}"))
            })?;
            if stack.len() + names.len() > limits.max_stack_depth {
                too_deep = true;
                break;
            }
            stack.extend(names.iter().map(String::as_str));
        }
        if too_deep {
            refused.add(Limit::StackDepth, 1);
            continue;
        }
        if stack
            .iter()
            .any(|f| f.len() > limits.max_function_name_bytes)
        {
            refused.add(Limit::FunctionNameBytes, 1);
            continue;
        }
        let mut over_nodes = false;
        for (tree, (index, _)) in trees.iter_mut().zip(&types) {
            let value = sample.value.get(*index).copied().unwrap_or(0);
            // Negative values (a delta heap profile's frees) are not samples of this tree.
            if value > 0
                && !tree.add_named_stack_bounded(&stack, value.unsigned_abs(), limits.max_nodes)
            {
                over_nodes = true;
            }
        }
        if over_nodes {
            refused.add(Limit::PushNodes, 1);
        }
    }
    Ok((
        types
            .into_iter()
            .zip(trees)
            .map(|((_, profile_type), tree)| Decoded { profile_type, tree })
            .collect(),
        refused,
    ))
}

/// Writes `tree` as a gzip pprof: one sample per stack with self value, one function and one
/// location per distinct frame name.
pub fn encode(
    tree: &StackTree,
    profile_type: ProfileType,
    time_nanos: i64,
    duration_nanos: i64,
) -> Result<Vec<u8>, ProfileError> {
    let mut strings: Vec<String> = vec![String::new()];
    let mut string_ids: HashMap<String, i64> = HashMap::new();
    let mut intern = |s: &str, strings: &mut Vec<String>| -> i64 {
        if let Some(id) = string_ids.get(s) {
            return *id;
        }
        let id = strings.len() as i64;
        strings.push(s.to_string());
        string_ids.insert(s.to_string(), id);
        id
    };
    let sample_type = ValueType {
        r#type: intern(profile_type.as_str(), &mut strings),
        unit: intern(profile_type.unit(), &mut strings),
    };
    // Location id = name id + 1 (one location per frame name).
    let mut function = Vec::with_capacity(tree.names_len());
    let mut location = Vec::with_capacity(tree.names_len());
    for (id, name) in tree.names().iter().enumerate() {
        let fid = id as u64 + 1;
        function.push(Function {
            id: fid,
            name: intern(name, &mut strings),
            system_name: 0,
            filename: 0,
            start_line: 0,
        });
        location.push(Location {
            id: fid,
            address: 0,
            line: vec![Line {
                function_id: fid,
                line: 0,
            }],
        });
    }
    let mut sample = Vec::new();
    tree.for_each_stack(|stack, self_value| {
        sample.push(Sample {
            location_id: stack.iter().rev().map(|n| u64::from(*n) + 1).collect(),
            value: vec![i64::try_from(self_value).unwrap_or(i64::MAX)],
        });
    });
    let profile = Profile {
        sample_type: vec![sample_type.clone()],
        sample,
        location,
        function,
        string_table: strings,
        time_nanos,
        duration_nanos,
        period_type: Some(sample_type),
        period: 1,
        default_sample_type: 0,
    };
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&profile.encode_to_vec())
        .map_err(|e| ProfileError::Malformed(format!("gzip: {e}")))?;
    gz.finish()
        .map_err(|e| ProfileError::Malformed(format!("gzip: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by `@datadog/pprof` 5.20.0 (a wall profile of a Node program busy in `hashLoop` and
    /// `fib`; `tests/fixtures/profiles/generate-node-wall.js`). Totals checked with npm
    /// `pprof-format`: 468 samples, 936000000 ns; `hashLoop` 448 samples.
    const NODE_WALL: &[u8] = include_bytes!("../../tests/fixtures/profiles/node-wall.pb.gz");

    fn self_of(tree: &StackTree, name: &str) -> u64 {
        tree.nodes()
            .iter()
            .filter(|n| tree.name(n.name) == name)
            .map(|n| n.self_value)
            .sum()
    }

    #[test]
    fn decodes_a_profile_written_by_a_real_profiler() {
        let decoded = decode(NODE_WALL, 1 << 20).unwrap();
        let types: Vec<ProfileType> = decoded.iter().map(|d| d.profile_type).collect();
        assert_eq!(types, vec![ProfileType::Samples, ProfileType::Wall]);
        let wall = &decoded[1].tree;
        assert_eq!(wall.total(), 936_000_000);
        assert_eq!(decoded[0].tree.total(), 468);
        assert_eq!(self_of(wall, "hashLoop"), 896_000_000);
        // Root first: `main` is an ancestor of `hashLoop`.
        let hash = wall
            .nodes()
            .iter()
            .find(|n| wall.name(n.name) == "hashLoop")
            .unwrap();
        assert_eq!(wall.name(wall.nodes()[hash.parent as usize].name), "main");
    }

    #[test]
    fn samples_over_a_limit_are_left_out_of_a_real_profile_and_counted() {
        // One frame less than the deepest stack: only the deepest samples go.
        let mut deepest = 0;
        decode(NODE_WALL, 1 << 20).unwrap()[0]
            .tree
            .for_each_stack(|stack, _| deepest = deepest.max(stack.len()));
        let limits = SampleLimits {
            max_stack_depth: deepest - 1,
            ..SampleLimits::UNBOUNDED
        };
        let (decoded, refused) = decode_bounded(NODE_WALL, 1 << 20, &limits).unwrap();
        let deep = refused.count(Limit::StackDepth);
        assert!(deep > 0, "{refused:?}");
        // Only the deep samples are gone.
        let total = decoded[0].tree.total();
        assert!(total > 0 && total < 468, "{total}");
        let (decoded, refused) = decode_bounded(
            NODE_WALL,
            1 << 20,
            &SampleLimits {
                max_samples: 1,
                ..SampleLimits::UNBOUNDED
            },
        )
        .unwrap();
        let kept: u64 = decoded.iter().map(|d| d.tree.total()).sum();
        assert!(kept < 468 + 936_000_000, "{kept}");
        assert!(refused.count(Limit::Samples) > 0);
        let (decoded, refused) = decode_bounded(
            NODE_WALL,
            1 << 20,
            &SampleLimits {
                max_nodes: 8,
                ..SampleLimits::UNBOUNDED
            },
        )
        .unwrap();
        assert!(decoded.iter().all(|d| d.tree.nodes().len() <= 8));
        assert!(refused.count(Limit::PushNodes) > 0);
    }

    #[test]
    fn encoded_pprof_decodes_to_the_same_tree() {
        let wall = decode(NODE_WALL, 1 << 20).unwrap().remove(1).tree;
        let bytes = encode(
            &wall,
            ProfileType::Wall,
            1_700_000_000_000_000_000,
            60_000_000_000,
        )
        .unwrap();
        let back = decode(&bytes, 1 << 20).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].profile_type, ProfileType::Wall);
        assert_eq!(back[0].tree, wall);
    }

    #[test]
    fn inlined_lines_expand_to_frames_and_bombs_are_refused() {
        let strings = ["", "cpu", "nanoseconds", "caller", "inlined", "leaf"];
        let f = |id: u64, name: i64| Function {
            id,
            name,
            system_name: 0,
            filename: 0,
            start_line: 0,
        };
        let profile = Profile {
            sample_type: vec![ValueType { r#type: 1, unit: 2 }],
            sample: vec![Sample {
                location_id: vec![2, 1],
                value: vec![7],
            }],
            location: vec![
                // Innermost first: `inlined` was inlined into `caller`.
                Location {
                    id: 1,
                    address: 0,
                    line: vec![
                        Line {
                            function_id: 2,
                            line: 3,
                        },
                        Line {
                            function_id: 1,
                            line: 9,
                        },
                    ],
                },
                Location {
                    id: 2,
                    address: 0,
                    line: vec![Line {
                        function_id: 3,
                        line: 1,
                    }],
                },
            ],
            function: vec![f(1, 3), f(2, 4), f(3, 5)],
            string_table: strings.iter().map(|s| s.to_string()).collect(),
            time_nanos: 0,
            duration_nanos: 0,
            period_type: None,
            period: 0,
            default_sample_type: 0,
        };
        let tree = decode(&profile.encode_to_vec(), 1 << 20)
            .unwrap()
            .remove(0)
            .tree;
        let mut stacks = Vec::new();
        tree.for_each_stack(|s, v| {
            stacks.push((
                s.iter()
                    .map(|n| tree.name(*n))
                    .collect::<Vec<_>>()
                    .join(";"),
                v,
            ))
        });
        assert_eq!(stacks, vec![("caller;inlined;leaf".to_string(), 7)]);

        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![0u8; 4 << 20]).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(matches!(
            decode(&bomb, 1 << 20),
            Err(ProfileError::TooLarge(_))
        ));
        assert!(matches!(
            decode(b"\x0a\xff", 1 << 20),
            Err(ProfileError::Malformed(_))
        ));
    }
}
