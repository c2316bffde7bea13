//! The series-admission contract (active-series limits), run on every adapter. Services carry a
//! random suffix, so runs against a shared table do not see each other.

use flowscope_core::cardinality::{
    LimitKind, MetricSeries, RefusedSeries, SeriesLimits, SeriesRefusal,
};
use flowscope_core::model::{Attributes, SeriesId};
use flowscope_core::ports::SeriesAdmission;

use super::{now_unix_s, unique};

/// Small limits so the contract can fill them: 5 per service, 3 per metric, a 60 s window.
pub const CONTRACT_LIMITS: SeriesLimits = SeriesLimits {
    max_series_per_service: 5,
    max_series_per_metric: 3,
    active_window_seconds: 60,
};

fn ids(range: std::ops::Range<u64>) -> Vec<SeriesId> {
    let base = rand::random::<u64>() & !0xffff;
    range.map(|i| SeriesId(base | i)).collect()
}

fn group(service: &str, metric: &str, ids: &[SeriesId]) -> MetricSeries {
    MetricSeries {
        service: service.to_string(),
        metric: metric.to_string(),
        ids: ids.to_vec(),
    }
}

async fn admit_one(
    admission: &dyn SeriesAdmission,
    now: i64,
    service: &str,
    metric: &str,
    ids: &[SeriesId],
) -> RefusedSeries {
    let mut verdicts = admission
        .admit(now, &[group(service, metric, ids)])
        .await
        .expect("admit");
    assert_eq!(verdicts.len(), 1, "one verdict per group");
    verdicts.remove(0)
}

/// `admission` must enforce [`CONTRACT_LIMITS`].
pub async fn admission_contract(admission: &dyn SeriesAdmission) {
    assert_eq!(admission.limits(), CONTRACT_LIMITS);
    let service = unique("svc");
    // The last second of a window: the checks at `now + 1` fall in the next one, where series of
    // the previous window still count (adapters that cut time into windows must not open a new
    // window with the whole limit free).
    let window = CONTRACT_LIMITS.active_window_seconds;
    let now = now_unix_s().div_euclid(window) * window + window - 1;
    let latency = ids(0..5);

    // New series are admitted in order while the metric has room; the rest are refused by the
    // per-metric limit.
    let verdict = admit_one(admission, now, &service, "latency", &latency).await;
    assert_eq!(
        verdict.ids,
        latency[3..].to_vec(),
        "the 4th and 5th series are refused"
    );
    assert_eq!(verdict.limit, Some(LimitKind::PerMetric));

    // Admitted series keep passing; refused ones stay refused while the metric is full.
    let verdict = admit_one(admission, now + 1, &service, "latency", &latency).await;
    assert_eq!(verdict.ids, latency[3..].to_vec());
    let verdict = admit_one(admission, now + 1, &service, "latency", &latency[..3]).await;
    assert_eq!(
        verdict,
        RefusedSeries::default(),
        "active series always pass"
    );

    // Another metric of the same service has its own room, up to the service limit (5).
    let errors = ids(10..14);
    let verdict = admit_one(admission, now + 2, &service, "errors", &errors).await;
    assert_eq!(
        verdict.ids,
        errors[2..].to_vec(),
        "3 + 2 = the service limit of 5"
    );
    assert_eq!(verdict.limit, Some(LimitKind::PerService));

    // Several groups in one call get one verdict each, in order; another service is unaffected.
    let other = unique("svc");
    let fresh = ids(20..23);
    let verdicts = admission
        .admit(
            now + 3,
            &[
                group(&other, "latency", &fresh),
                group(&service, "latency", &latency[..1]),
            ],
        )
        .await
        .expect("admit");
    assert_eq!(
        verdicts,
        vec![RefusedSeries::default(), RefusedSeries::default()]
    );

    // A series not seen for longer than the window (two windows, for adapters that count per
    // window) stops counting: new series are admitted again.
    let later = now + 3 + 2 * CONTRACT_LIMITS.active_window_seconds + 1;
    let next = ids(30..33);
    let verdict = admit_one(admission, later, &service, "latency", &next).await;
    assert_eq!(verdict, RefusedSeries::default(), "the old series expired");

    // Refusals are counted per service and metric, with a few examples.
    let mut attributes = Attributes::new();
    attributes.insert("user".into(), "u-1".into());
    let refusal = SeriesRefusal {
        service: service.clone(),
        metric: "latency".into(),
        limit: LimitKind::PerMetric,
        points: 7,
        examples: vec![attributes.clone()],
    };
    admission
        .record_refusals(now, std::slice::from_ref(&refusal))
        .await
        .expect("record");
    admission
        .record_refusals(
            now + 1,
            &[SeriesRefusal {
                points: 3,
                ..refusal
            }],
        )
        .await
        .expect("record");
    let report = admission.refusals().await.expect("report");
    assert_eq!(report.limits, CONTRACT_LIMITS);
    let mine: Vec<_> = report
        .refusals
        .iter()
        .filter(|r| r.service == service)
        .collect();
    assert_eq!(mine.len(), 1, "{:?}", report.refusals);
    assert_eq!(mine[0].metric, "latency");
    assert_eq!(mine[0].refused_points, 10);
    assert_eq!(mine[0].limit, LimitKind::PerMetric);
    assert_eq!(
        mine[0].examples,
        vec![attributes],
        "examples are not repeated"
    );
    assert!(mine[0].last_refused_unix_s >= now);
}

/// Two instances of one adapter that share their state (ingest Lambdas on one table) enforce one
/// set of limits: what one admitted counts for the other, and the other admits it again.
pub async fn shared_limits_contract(one: &dyn SeriesAdmission, two: &dyn SeriesAdmission) {
    let service = unique("svc");
    let now = now_unix_s();
    let first = ids(0..2);
    let verdict = admit_one(one, now, &service, "latency", &first).await;
    assert_eq!(verdict, RefusedSeries::default());
    let second = ids(10..13);
    let verdict = admit_one(two, now, &service, "latency", &second).await;
    assert_eq!(
        verdict.ids,
        second[1..].to_vec(),
        "the first instance's 2 series count: room for 1"
    );
    let verdict = admit_one(two, now, &service, "latency", &first).await;
    assert_eq!(
        verdict,
        RefusedSeries::default(),
        "admitted elsewhere, passes here"
    );
}
