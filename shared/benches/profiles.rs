//! Profile benchmark (issue 14): samples merged per second on one core, and bytes stored per
//! service-minute. Prints numbers; asserts nothing about time.
//! Run: `cargo bench -p flowscope-core --bench profiles`.
//!
//! The workload: a service whose profiler pushes every 10 s (6 pushes per minute), each a folded CPU
//! profile of the same 2,000 distinct stacks (counts vary), 8–40 frames deep over 600 function names (a mid-sized Go or
//! Node service), 100 Hz on 4 cores = 4,000 samples per push. "Merged" = folded text parsed into a
//! tree and merged into the minute's tree; the pprof row decodes a gzip pprof of the same profile
//! instead. "Stored" = the minute's tree as the embedded store keeps it (compact varint encoding,
//! deflated), the same form the redb item holds.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::time::Instant;

use flowscope_core::profiles::tree::StackTree;
use flowscope_core::profiles::{folded, pprof, ProfileType};

const STACKS: usize = 2_000;
const FUNCTIONS: usize = 600;
const SAMPLES_PER_PUSH: u64 = 4_000;
const PUSHES_PER_MINUTE: usize = 6;

/// A deterministic pseudo-random generator (xorshift), so runs compare.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn function_name(i: usize) -> String {
    format!(
        "github.com/acme/shop/internal/pkg{}.(*Handler{}).method{}",
        i % 37,
        i % 11,
        i
    )
}

/// One push's folded text: the program's same 2,000 stacks every push (only their counts vary),
/// sharing trunks like a real program (a few entry points, fan-out deeper down).
fn push_text(seed: u64) -> String {
    let mut counts = Rng(0x9e37_79b9_7f4a_7c15 ^ (seed + 1));
    let mut out = String::new();
    let mut left = SAMPLES_PER_PUSH;
    for s in 0..STACKS {
        let mut shape = Rng(0x2545_f491_4f6c_dd1d ^ (s as u64 + 1));
        let depth = 8 + (shape.next() % 33) as usize;
        let mut frames = vec!["runtime.main".to_string(), function_name(s % 7)];
        for d in 2..depth {
            // Deeper frames vary more: shared trunks, distinct leaves.
            let spread = (d * d).min(FUNCTIONS) as u64;
            frames.push(function_name(
                ((s as u64 / 64 * 31 + shape.next() % spread) % FUNCTIONS as u64) as usize,
            ));
        }
        let count = if s + 1 == STACKS {
            left
        } else {
            (1 + counts.next() % 3).min(left)
        };
        left -= count;
        if count > 0 {
            out.push_str(&frames.join(";"));
            out.push_str(&format!(" {count}\n"));
        }
    }
    out
}

fn stored_bytes(tree: &StackTree) -> usize {
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&tree.encode()).unwrap();
    z.finish().unwrap().len()
}

fn main() {
    let pushes: Vec<String> = (0..PUSHES_PER_MINUTE as u64).map(push_text).collect();
    let text_bytes: usize = pushes.iter().map(String::len).sum();
    let pprofs: Vec<Vec<u8>> = pushes
        .iter()
        .map(|t| {
            pprof::encode(
                &folded::parse(t.as_bytes(), 1).unwrap(),
                ProfileType::Cpu,
                0,
                10_000_000_000,
            )
            .unwrap()
        })
        .collect();

    // Folded: parse + merge, one minute at a time, repeated.
    let rounds = 20;
    let start = Instant::now();
    let mut minute = StackTree::new();
    for _ in 0..rounds {
        minute = StackTree::new();
        for text in &pushes {
            let tree = folded::parse(text.as_bytes(), 1).unwrap();
            minute.merge(&tree);
        }
    }
    let folded_s = start.elapsed().as_secs_f64();
    let samples = (rounds * PUSHES_PER_MINUTE) as f64 * SAMPLES_PER_PUSH as f64;
    assert_eq!(minute.total(), SAMPLES_PER_PUSH * PUSHES_PER_MINUTE as u64);

    // pprof (gzip): decode + merge.
    let start = Instant::now();
    for _ in 0..rounds {
        let mut m = StackTree::new();
        for bytes in &pprofs {
            let tree = pprof::decode(bytes, 64 << 20).unwrap().remove(0).tree;
            m.merge(&tree);
        }
    }
    let pprof_s = start.elapsed().as_secs_f64();

    // Tree merge alone (the aggregation step: stored minute ← decoded push).
    let trees: Vec<StackTree> = pushes
        .iter()
        .map(|t| folded::parse(t.as_bytes(), 1).unwrap())
        .collect();
    let start = Instant::now();
    for _ in 0..rounds {
        let mut m = StackTree::new();
        for t in &trees {
            m.merge(t);
        }
    }
    let merge_s = start.elapsed().as_secs_f64();

    // A stored minute's read-merge-write cycle as the embedded store does it per push.
    let start = Instant::now();
    let mut stored = Vec::new();
    for _ in 0..rounds {
        stored.clear();
        for t in &trees {
            let mut m = if stored.is_empty() {
                StackTree::new()
            } else {
                StackTree::decode(&stored).unwrap()
            };
            m.merge(t);
            stored = m.encode();
        }
    }
    let cycle_s = start.elapsed().as_secs_f64();

    let nodes = minute.nodes().len();
    println!("profiles: one service-minute = {PUSHES_PER_MINUTE} pushes x {SAMPLES_PER_PUSH} samples, {STACKS} stacks each, {nodes} tree nodes, {} names", minute.names_len());
    let lines = (rounds * PUSHES_PER_MINUTE * STACKS) as f64;
    println!("  stacks (folded lines / pprof samples) per second: folded {:.0}, pprof {:.0}, merge alone {:.0}", lines / folded_s, lines / pprof_s, lines / merge_s);
    println!("  folded parse + merge      {:>10.0} samples/s  ({:.2} ms per push, {:.1} MB/s of folded text)", samples / folded_s, folded_s * 1e3 / (rounds * PUSHES_PER_MINUTE) as f64, (text_bytes * rounds) as f64 / folded_s / 1e6);
    println!(
        "  pprof (gzip) decode + merge {:>8.0} samples/s  ({:.2} ms per push, {} bytes per push)",
        samples / pprof_s,
        pprof_s * 1e3 / (rounds * PUSHES_PER_MINUTE) as f64,
        pprofs[0].len()
    );
    println!(
        "  tree merge alone          {:>10.0} samples/s  ({:.3} ms per push)",
        samples / merge_s,
        merge_s * 1e3 / (rounds * PUSHES_PER_MINUTE) as f64
    );
    println!(
        "  store cycle (decode, merge, encode the minute per push) {:.2} ms per push",
        cycle_s * 1e3 / (rounds * PUSHES_PER_MINUTE) as f64
    );
    println!(
        "  bytes per service-minute: {} encoded, {} stored (deflated)",
        minute.encode().len(),
        stored_bytes(&minute)
    );
}
