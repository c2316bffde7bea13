//! The collapsed-stack ("folded") text format: one `frame;frame;frame COUNT` line per stack, root
//! first (what `py-spy record --format raw`, `stackcollapse-*` and Pyroscope's `folded` push write).

use super::limits::{Limit, Refusals, SampleLimits};
use super::tree::StackTree;
use super::ProfileError;

/// Parses folded text into a tree; each count is multiplied by `scale` (1 for plain sample counts).
/// Empty lines are skipped; a line without a count is refused with its number; a count without
/// a stack counts on the root.
pub fn parse(text: &[u8], scale: u64) -> Result<StackTree, ProfileError> {
    parse_bounded(text, scale, &SampleLimits::UNBOUNDED).map(|(tree, _)| tree)
}

/// [`parse`] within `limits`: a line (sample) over one of them is left out and counted.
pub fn parse_bounded(
    text: &[u8],
    scale: u64,
    limits: &SampleLimits,
) -> Result<(StackTree, Refusals), ProfileError> {
    let text = std::str::from_utf8(text)
        .map_err(|e| ProfileError::Malformed(format!("folded profile is not UTF-8: {e}")))?;
    let mut tree = StackTree::new();
    let mut refused = Refusals::default();
    let mut frames: Vec<&str> = Vec::new();
    let mut samples = 0usize;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| {
            ProfileError::Malformed(format!("folded profile line {}: {why}", number + 1))
        };
        let (stack, count) = line
            .rsplit_once(' ')
            .ok_or_else(|| bad("expected `frame;frame COUNT`"))?;
        let count: u64 = count
            .trim()
            .parse()
            .map_err(|_| bad("the count is not a whole number"))?;
        samples += 1;
        if samples > limits.max_samples {
            refused.add(Limit::Samples, 1);
            continue;
        }
        frames.clear();
        // An empty stack (py-spy writes ` 1` for a sample without Python frames) counts on the
        // root alone: it is in the total, with no frame of its own.
        if !stack.trim().is_empty() {
            frames.extend(
                stack
                    .split(';')
                    .take(limits.max_stack_depth.saturating_add(1)),
            );
        }
        if frames.len() > limits.max_stack_depth {
            refused.add(Limit::StackDepth, 1);
            continue;
        }
        if frames
            .iter()
            .any(|f| f.len() > limits.max_function_name_bytes)
        {
            refused.add(Limit::FunctionNameBytes, 1);
            continue;
        }
        if !tree.add_named_stack_bounded(&frames, count.saturating_mul(scale), limits.max_nodes) {
            refused.add(Limit::PushNodes, 1);
        }
    }
    Ok((tree, refused))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stacks_and_sums_repeated_lines() {
        let t = parse(
            b"main;work;hash 30\nmain;work 10\n\nmain;idle 5\r\nmain;work;hash 2\n",
            1,
        )
        .unwrap();
        assert_eq!(t.total(), 47);
        let hash = t.nodes().iter().find(|n| t.name(n.name) == "hash").unwrap();
        assert_eq!(hash.self_value, 32);
        // Frames may contain spaces (py-spy writes `fn (file.py:12)`): the count is after the last one.
        let t = parse(b"<module> (a.py:1);f (a.py:3) 4\n", 10).unwrap();
        assert_eq!(t.total(), 40);
        assert!(t.names().iter().any(|n| n == "f (a.py:3)"));
    }

    /// `py-spy record --format raw --nolineno` of `tests/fixtures/profiles/py-spy-work.py` (a loop
    /// of `hash_chain` and `fib`): 656 samples, one of them with no Python frame (` 1`).
    #[test]
    fn reads_what_py_spy_writes() {
        let text = include_bytes!("../../tests/fixtures/profiles/py-spy.folded");
        let t = parse(text, 10_000_000).unwrap();
        assert_eq!(t.total(), 656 * 10_000_000);
        let self_of = |name: &str| -> u64 {
            t.nodes()
                .iter()
                .filter(|n| t.name(n.name) == name)
                .map(|n| n.self_value)
                .sum()
        };
        assert_eq!(self_of("hash_chain (work.py)"), 577 * 10_000_000);
        assert!(self_of("fib (work.py)") > 0);
    }

    #[test]
    fn refuses_malformed_lines_with_their_number() {
        let err = parse(b"main;a 1\nmain;b x\n", 1).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(parse(b"nocount\n", 1).is_err());
        let root_only = parse(b" 5\nmain 1\n", 1).unwrap();
        assert_eq!((root_only.total(), root_only.nodes()[0].self_value), (6, 5));
        assert!(parse(&[0xff, 0xfe], 1).is_err());
    }

    #[test]
    fn lines_over_a_limit_are_left_out_and_counted() {
        let limits = SampleLimits {
            max_samples: 4,
            max_stack_depth: 3,
            max_function_name_bytes: 8,
            max_nodes: 5,
        };
        let text = b"main;a 1\nmain;a;b;c 2\nmain;waytoolongname 3\nmain;d 4\nmain;e 5\nmain;a 6\n";
        let (tree, refused) = parse_bounded(text, 1, &limits).unwrap();
        // Kept: main;a (1) and main;d (4); the 5th and 6th lines are past 4 samples.
        assert_eq!(refused.count(Limit::StackDepth), 1);
        assert_eq!(refused.count(Limit::FunctionNameBytes), 1);
        assert_eq!(refused.count(Limit::Samples), 2);
        assert_eq!(refused.count(Limit::PushNodes), 0);
        assert_eq!(tree.total(), 5);
        let (tree, refused) = parse_bounded(
            b"main;a 1\nmain;b 1\nmain;c 1\n",
            1,
            &SampleLimits {
                max_nodes: 4,
                ..SampleLimits::UNBOUNDED
            },
        )
        .unwrap();
        assert_eq!((tree.total(), refused.count(Limit::PushNodes)), (2, 1));
        assert!(refused.message().contains("--max-profile-nodes"));
    }
}
