//! Hostile profile pushes (issue 14): over a limit only the excess is refused, the answer names the
//! limit, and what a push makes Flowscope hold stays bounded — a push of 1M distinct frames keeps
//! at most `max_nodes` call paths, interns no frame it refuses, and the process's peak RSS is
//! printed (run with `--nocapture`).

use std::io::Write;
use std::sync::Arc;

use flowscope_core::embedded::RedbProfileStore;
use flowscope_core::profiles::limits::Limit;
use flowscope_core::profiles::push::{PushLimits, PushParams};
use flowscope_core::profiles::ProfileType;
use flowscope_core::profiling::service::ProfileService;
use flowscope_core::testing::process::proc_status_kib;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn params(name: &str) -> PushParams {
    PushParams {
        name: Some(name.into()),
        from: Some("1700000000".into()),
        format: Some("folded".into()),
        ..Default::default()
    }
}

fn service(dir: &std::path::Path, limits: PushLimits) -> ProfileService {
    let store = RedbProfileStore::open(&dir.join("profiles.redb")).unwrap();
    ProfileService::new(Arc::new(store), limits, 7 * 86_400)
}

#[tokio::test]
async fn a_push_of_a_million_distinct_frames_keeps_at_most_the_node_limit() {
    let dir = tempfile::tempdir().unwrap();
    let limits = PushLimits::default();
    let service = service(dir.path(), limits);
    let frames = 1_000_000usize;
    let mut text = String::with_capacity(frames * 16);
    for i in 0..frames {
        text.push_str(&format!("main;f{i} 1\n"));
    }
    let body = gzip(text.as_bytes());
    assert!(body.len() <= limits.max_body_bytes, "{} bytes", body.len());
    let (rss_before, hwm_before) = (proc_status_kib("VmRSS:"), proc_status_kib("VmHWM:"));
    let report = service
        .ingest(&params("hostile.cpu"), None, body.into(), 1_700_000_000)
        .await
        .unwrap();
    let (rss_after, hwm_after) = (proc_status_kib("VmRSS:"), proc_status_kib("VmHWM:"));
    println!(
        "hostile push of {frames} distinct frames: VmRSS {rss_before} -> {rss_after} KiB, \
         VmHWM {hwm_before} -> {hwm_after} KiB"
    );
    // For comparison: the same text read without bounds (what a push cost before the limits:
    // every frame interned and a node each, then the whole push refused).
    let unbounded = flowscope_core::profiles::folded::parse(text.as_bytes(), 1).unwrap();
    println!(
        "the same frames read unbounded: {} nodes, VmHWM {} KiB",
        unbounded.nodes().len(),
        proc_status_kib("VmHWM:")
    );
    drop((unbounded, text));
    // root + main + 199,998 frames.
    let kept = limits.max_nodes as u64 - 2;
    assert!(report.kept);
    assert_eq!(report.refused.count(Limit::PushNodes), frames as u64 - kept);
    assert_eq!(report.refused.by_limit.len(), 1, "{:?}", report.refused);
    assert!(report.refused.message().contains("--max-profile-nodes"));
    let minutes = service
        .store()
        .minutes(
            "hostile",
            ProfileType::Cpu,
            1_699_999_980,
            1_700_000_040,
            true,
        )
        .await
        .unwrap();
    assert_eq!(minutes.len(), 1);
    let tree = minutes[0].tree.as_ref().unwrap();
    assert_eq!(tree.nodes().len(), limits.max_nodes);
    assert_eq!(tree.names_len(), limits.max_nodes - 1);
    // Folded cpu at the default 100 Hz: 10 ms per sample kept.
    assert_eq!(tree.total(), kept * 10_000_000);
}

#[tokio::test]
async fn limits_refuse_only_the_excess_and_name_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let limits = PushLimits {
        max_samples: 5,
        max_stack_depth: 4,
        max_function_name_bytes: 32,
        max_minute_nodes: 6,
        max_label_sets: 2,
        ..PushLimits::default()
    };
    let service = service(dir.path(), limits);
    let long = "x".repeat(33);
    let body = format!("main;a 1\nmain;a;b;c;d 1\nmain;{long} 1\nmain;b 1\nmain;c 1\nmain;d 1\n");
    let report = service
        .ingest(&params("app.samples{pod=a}"), None, body.into(), 0)
        .await
        .unwrap();
    assert!(report.kept);
    assert_eq!(report.refused.count(Limit::StackDepth), 1);
    assert_eq!(report.refused.count(Limit::FunctionNameBytes), 1);
    assert_eq!(report.refused.count(Limit::Samples), 1);
    assert_eq!(report.merged[0].minute_total, 3);
    let message = report.refused.message();
    for flag in [
        "--max-profile-stack-depth",
        "--max-profile-function-name-bytes",
        "--max-profile-samples",
    ] {
        assert!(message.contains(flag), "{message}");
    }

    // The minute's tree holds root, main, a, b, c = 5 nodes: one more fits.
    let report = service
        .ingest(
            &params("app.samples{pod=a}"),
            None,
            "main;a 2\nmain;e 1\nmain;f 4\n".into(),
            0,
        )
        .await
        .unwrap();
    assert!(report.kept);
    assert_eq!(report.refused.count(Limit::MinuteNodes), 4);
    assert_eq!(report.merged[0].added, 3);
    assert_eq!(report.merged[0].minute_total, 6);

    // Label sets: the second fits, the third is refused whole; the next minute has room again.
    let next = service
        .ingest(&params("app.samples{pod=b}"), None, "main 1\n".into(), 0)
        .await
        .unwrap();
    assert!(next.kept && next.refused.is_empty());
    let third = service
        .ingest(&params("app.samples{pod=c}"), None, "main 7\n".into(), 0)
        .await
        .unwrap();
    assert!(!third.kept);
    assert_eq!(third.refused.count(Limit::LabelSets), 7);
    assert!(third.refused.message().contains("--max-profile-label-sets"));
    let mut later = params("app.samples{pod=c}");
    later.from = Some("1700000060".into());
    let later = service
        .ingest(&later, None, "main 7\n".into(), 0)
        .await
        .unwrap();
    assert!(later.kept && later.refused.is_empty());
}
