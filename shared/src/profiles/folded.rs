//! The collapsed-stack ("folded") text format: one `frame;frame;frame COUNT` line per stack, root
//! first (what `py-spy record --format raw`, `stackcollapse-*` and Pyroscope's `folded` push write).

use super::tree::StackTree;
use super::ProfileError;

/// Parses folded text into a tree; each count is multiplied by `scale` (1 for plain sample counts).
/// Empty lines are skipped; a line without a count is refused with its number; a count without
/// a stack counts on the root.
pub fn parse(text: &[u8], scale: u64) -> Result<StackTree, ProfileError> {
    let text = std::str::from_utf8(text)
        .map_err(|e| ProfileError::Malformed(format!("folded profile is not UTF-8: {e}")))?;
    let mut tree = StackTree::new();
    let mut ids: Vec<u32> = Vec::new();
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
        ids.clear();
        // An empty stack (py-spy writes ` 1` for a sample without Python frames) counts on the
        // root alone: it is in the total, with no frame of its own.
        if !stack.trim().is_empty() {
            for frame in stack.split(';') {
                ids.push(tree.intern(frame));
            }
        }
        tree.add_stack(&ids, count.saturating_mul(scale));
    }
    Ok(tree)
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
}
