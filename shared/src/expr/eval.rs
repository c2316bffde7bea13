//! Evaluation of a parsed expression over the bucket store, in two phases: every selector's series and
//! buckets are read first (async, one `query_buckets` per selected series), then the expression is
//! computed step by step without further I/O.
//!
//! Time: a query has evaluation times `t` (one for an instant query; `from, from+step, …, to` for a
//! range query) and a bucket resolution `r`. The sample of a selector at `t` is the bucket that *ends*
//! at `floor((t − offset) / r) · r` (the last closed bucket), and `x[d]` at `t` is every bucket that
//! starts in `[end − d, end)`.
//!
//! Samples carry the bucket's statistics beside their number while they still describe a distribution
//! (histograms, gauges, `_bucket`), so `sum` merges sketches and `quantile`/`histogram_quantile` read
//! percentiles of the merged sketch: exact merging across series and time, never an average of
//! percentiles.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::domain::stats::BucketStats;
use crate::model::{MetricKind, Resolution, SeriesMeta};
use crate::ports::{BucketStore, SeriesCatalog, StoreError};
use crate::sketch::Sketch;

use super::budget::{SampleBudget, SKETCH_SAMPLE_WEIGHT};
use super::names::{self, Labels, Variant, NAME};
use super::parse::{AggOp, BinOp, Expr, ExprError, Grouping, Matching, Selector};

/// Functions the language knows.
pub const FUNCTIONS: [&str; 17] = [
    "rate",
    "increase",
    "sum_over_time",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "count_over_time",
    "quantile_over_time",
    "histogram_quantile",
    "abs",
    "ceil",
    "floor",
    "sqrt",
    "exp",
    "ln",
    "vector",
    "time",
];

/// Limits of one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExprLimits {
    /// Most evaluation times of a range query (Prometheus's own limit is 11,000).
    pub max_steps: usize,
    /// Most series all selectors of one expression may select together.
    pub max_series: usize,
    /// Most samples (loaded buckets and held points) one evaluation holds at once
    /// ([`super::budget`]).
    pub max_samples: usize,
}

impl Default for ExprLimits {
    fn default() -> Self {
        ExprLimits {
            max_steps: 11_000,
            max_series: 10_000,
            max_samples: super::budget::DEFAULT_MAX_SAMPLES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The expression is wrong (parse error, type error, limit): a 400.
    #[error("{0}")]
    Expr(#[from] ExprError),
    /// A bad parameter beside the expression (times, step): a 400.
    #[error("{0}")]
    BadParam(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The query needs more memory than `--query-max-samples` allows: a 422.
    #[error("{0}")]
    TooManySamples(ExprError),
}

/// One sample: a number, and the bucket statistics it came from while it still is a distribution.
#[derive(Debug, Clone)]
pub struct Sample {
    pub value: f64,
    pub stats: Option<Arc<BucketStats>>,
}

impl Sample {
    fn num(value: f64) -> Self {
        Sample { value, stats: None }
    }
}

#[derive(Debug, Clone)]
pub struct Series {
    pub labels: Labels,
    /// One per evaluation time.
    pub points: Vec<Option<Sample>>,
}

#[derive(Debug, Clone)]
pub enum Value {
    Scalar(Vec<f64>),
    Vector(Vec<Series>),
}

/// What a query asks for.
#[derive(Debug, Clone, Copy)]
pub struct QueryTimes {
    pub start: i64,
    pub end: i64,
    /// Seconds between evaluation times (any positive value for an instant query).
    pub step: i64,
    /// Bucket resolution; chosen from the step and the expression's durations when `None`.
    pub resolution: Option<Resolution>,
}

/// An evaluated expression.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub resolution: Resolution,
    pub times: Vec<i64>,
    pub value: Value,
}

impl QueryResult {
    /// Series with their points as numbers (a scalar is one series without labels).
    pub fn series(&self) -> Vec<(Labels, Vec<Option<f64>>)> {
        match &self.value {
            Value::Scalar(v) => vec![(Labels::new(), v.iter().map(|x| Some(*x)).collect())],
            Value::Vector(series) => series
                .iter()
                .map(|s| {
                    (
                        s.labels.clone(),
                        s.points
                            .iter()
                            .map(|p| p.as_ref().map(|p| p.value))
                            .collect(),
                    )
                })
                .collect(),
        }
    }
}

struct Fetched {
    /// Labels with `__name__`.
    labels: Labels,
    kind: MetricKind,
    variant: Variant,
    /// Shared with the samples that carry them (no copy of a sketch per sample).
    buckets: HashMap<i64, Arc<BucketStats>>,
}

/// Most buckets per range window an instant query reads before it moves to a coarser resolution.
const INSTANT_WINDOW_BUCKETS: i64 = 1440;

/// Largest resolution that divides the step (for range queries) and every range and offset.
fn choose_resolution(src: &str, expr: &Expr, step: Option<i64>) -> Result<Resolution, EvalError> {
    let mut durations = Vec::new();
    expr.durations(&mut durations);
    for (d, pos) in &durations {
        if d % 60 != 0 {
            return Err(ExprError::at(
                src,
                *pos,
                format!("{d}s is not a whole number of minutes (the finest resolution is 1m)"),
            )
            .into());
        }
    }
    let divides = |r: &Resolution| {
        let s = r.seconds();
        step.is_none_or(|st| st % s == 0) && durations.iter().all(|(d, _)| d % s == 0)
    };
    match step {
        // A range query: the coarsest resolution that fits, so each point summarises its step.
        Some(_) => {
            if let Some(r) = Resolution::ALL.iter().rev().find(|r| divides(r)) {
                return Ok(*r);
            }
        }
        // An instant query: the finest that fits with at most `INSTANT_WINDOW_BUCKETS` buckets per
        // window, so the answer is as recent as the store allows (1m when there is no range).
        None => {
            let longest = durations.iter().map(|(d, _)| *d).max().unwrap_or(0);
            if let Some(r) = Resolution::ALL
                .iter()
                .find(|r| divides(r) && longest / r.seconds() <= INSTANT_WINDOW_BUCKETS)
            {
                return Ok(*r);
            }
            if let Some(r) = Resolution::ALL.iter().rev().find(|r| divides(r)) {
                return Ok(*r);
            }
        }
    }
    Err(EvalError::BadParam(format!(
        "step {}s is not a whole number of minutes (the finest resolution is 1m)",
        step.unwrap_or(0)
    )))
}

fn check_resolution(src: &str, expr: &Expr, r: Resolution) -> Result<(), EvalError> {
    let mut durations = Vec::new();
    expr.durations(&mut durations);
    for (d, pos) in durations {
        if d % r.seconds() != 0 {
            return Err(ExprError::at(
                src,
                pos,
                format!("{d}s is not a multiple of the {r} resolution"),
            )
            .into());
        }
    }
    Ok(())
}

/// Evaluates `src` over `store`.
pub async fn evaluate<S: SeriesCatalog + BucketStore + ?Sized>(
    store: &S,
    src: &str,
    times: QueryTimes,
    instant: bool,
    limits: ExprLimits,
) -> Result<QueryResult, EvalError> {
    let expr = super::parse::parse(src)?;
    if times.step <= 0 {
        return Err(EvalError::BadParam("`step` must be positive".into()));
    }
    if times.end < times.start {
        return Err(EvalError::BadParam(
            "`end` must not be before `start`".into(),
        ));
    }
    let resolution = match times.resolution {
        Some(r) => {
            check_resolution(src, &expr, r)?;
            r
        }
        None => choose_resolution(src, &expr, (!instant).then_some(times.step))?,
    };
    let count = (times.end - times.start) / times.step + 1;
    if count as u128 > limits.max_steps as u128 {
        return Err(EvalError::BadParam(format!(
            "{count} evaluation times; at most {}: use a larger step or a shorter range",
            limits.max_steps
        )));
    }
    let steps: Vec<i64> = (0..count).map(|i| times.start + i * times.step).collect();
    let mut ctx = Ctx {
        src,
        steps,
        res: resolution.seconds(),
        data: HashMap::new(),
    };
    let mut catalog = Catalog::default();
    let mut selected = Counts {
        series: 0,
        samples: SampleBudget::new(limits.max_samples),
    };
    fetch(
        store,
        &expr,
        &mut ctx,
        &mut catalog,
        resolution,
        &mut selected,
        limits,
        false,
    )
    .await?;
    let value = ctx.eval(&expr)?;
    Ok(QueryResult {
        resolution,
        times: ctx.steps,
        value,
    })
}

/// Services and their series, each listed once per evaluation.
#[derive(Default)]
pub struct Catalog {
    services: Option<Vec<String>>,
    series: HashMap<String, Vec<SeriesMeta>>,
}

/// Series matching a selector, as (meta, name, variant).
pub async fn select<S: SeriesCatalog + ?Sized>(
    store: &S,
    catalog: &mut Catalog,
    sel: &Selector,
) -> Result<Vec<(SeriesMeta, String, Variant)>, StoreError> {
    if catalog.services.is_none() {
        catalog.services = Some(store.list_services().await?);
    }
    let services = catalog.services.clone().unwrap_or_default();
    let job_matchers: Vec<_> = sel
        .matchers
        .iter()
        .filter(|m| names::label_name(&m.name) == "job")
        .collect();
    let mut out = Vec::new();
    for service in services {
        if !job_matchers.iter().all(|m| m.matches(&service)) {
            continue;
        }
        if !catalog.series.contains_key(&service) {
            let list = store.list_series(&service).await?;
            catalog.series.insert(service.clone(), list);
        }
        let Some(list) = catalog.series.get(&service) else {
            // Listed just above.
            continue;
        };
        for meta in list {
            let labels = names::series_labels(meta);
            let label_ok = sel.matchers.iter().all(|m| {
                let name = names::label_name(&m.name);
                name == NAME || m.matches(labels.get(&name).map(String::as_str).unwrap_or(""))
            });
            if !label_ok {
                continue;
            }
            let name_matchers: Vec<_> = sel.matchers.iter().filter(|m| m.name == NAME).collect();
            let all_names = names::names(meta);
            let candidates: Vec<(String, Variant)> = match &sel.name {
                Some(n) => all_names
                    .into_iter()
                    .filter(|(x, _)| x == n)
                    .take(1)
                    .collect(),
                None if name_matchers.is_empty() => all_names.into_iter().take(1).collect(),
                None => {
                    let listed = names::listed_names(meta);
                    all_names
                        .into_iter()
                        .filter(|(x, _)| listed.contains(x))
                        .collect()
                }
            };
            for (name, variant) in candidates {
                if name_matchers.iter().all(|m| m.matches(&name)) {
                    out.push((meta.clone(), name, variant));
                }
            }
        }
    }
    Ok(out)
}

/// Reads every selector's series and buckets. `sketches`: whether the samples of the selectors under
/// `expr` may be read as distributions (they are under `quantile`, `quantile_over_time` and
/// `histogram_quantile`, the only readers of a sketch); elsewhere only count/sum/min/max are read, so
/// each loaded bucket drops its sketch and counts 1 against the budget instead of
/// [`super::budget::SKETCH_SAMPLE_WEIGHT`].
#[allow(clippy::too_many_arguments)]
fn fetch<'a, S: SeriesCatalog + BucketStore + ?Sized>(
    store: &'a S,
    expr: &'a Expr,
    ctx: &'a mut Ctx<'_>,
    catalog: &'a mut Catalog,
    resolution: Resolution,
    selected: &'a mut Counts,
    limits: ExprLimits,
    sketches: bool,
) -> futures::future::BoxFuture<'a, Result<(), EvalError>> {
    Box::pin(async move {
        let (sel, range) = match expr {
            Expr::Number(_) => return Ok(()),
            Expr::Selector(sel) => (sel, ctx.res),
            Expr::Range { sel, range_s, .. } => (sel, *range_s),
            Expr::Call { func, args, .. } => {
                // The last argument of these is read as distributions; φ is a number.
                let reads = matches!(func.as_str(), "histogram_quantile" | "quantile_over_time");
                for (i, a) in args.iter().enumerate() {
                    let keep = sketches || (reads && i + 1 == args.len());
                    fetch(store, a, ctx, catalog, resolution, selected, limits, keep).await?;
                }
                return Ok(());
            }
            Expr::Aggregate {
                op, param, expr, ..
            } => {
                if let Some(p) = param {
                    fetch(
                        store, p, ctx, catalog, resolution, selected, limits, sketches,
                    )
                    .await?;
                }
                let keep = sketches || *op == AggOp::Quantile;
                return fetch(
                    store, expr, ctx, catalog, resolution, selected, limits, keep,
                )
                .await;
            }
            Expr::Binary { lhs, rhs, .. } => {
                fetch(
                    store, lhs, ctx, catalog, resolution, selected, limits, sketches,
                )
                .await?;
                return fetch(
                    store, rhs, ctx, catalog, resolution, selected, limits, sketches,
                )
                .await;
            }
            Expr::Neg(e, _) => {
                return fetch(
                    store, e, ctx, catalog, resolution, selected, limits, sketches,
                )
                .await
            }
        };
        let matches = select(store, catalog, sel).await?;
        selected.series += matches.len();
        if selected.series > limits.max_series {
            return Err(ExprError::at(
                ctx.src,
                sel.pos,
                format!(
                    "the expression selects more than {} series; narrow the selectors",
                    limits.max_series
                ),
            )
            .into());
        }
        let (Some(first), Some(last)) = (ctx.steps.first(), ctx.steps.last()) else {
            return Ok(());
        };
        let from = ctx.window_end(*first, sel.offset_s) - range;
        let to = ctx.window_end(*last, sel.offset_s);
        // Each selected series holds a point per evaluation time: refused before anything loads. A
        // point of a distribution series whose sketches are kept may hold a merged sketch.
        let weight = |kind: MetricKind, variant: Variant| {
            if sketches && distribution(kind, variant) {
                SKETCH_SAMPLE_WEIGHT
            } else {
                1
            }
        };
        let points = matches.iter().fold(0usize, |n, (meta, _, variant)| {
            n.saturating_add(ctx.steps.len().saturating_mul(weight(meta.kind, *variant)))
        });
        selected
            .samples
            .reserve(
                points,
                ctx.src,
                sel.pos,
                &format!(
                    "{} series × {} evaluation times",
                    matches.len(),
                    ctx.steps.len()
                ),
            )
            .map_err(EvalError::TooManySamples)?;
        let mut fetched = Vec::with_capacity(matches.len());
        for (meta, name, variant) in matches {
            let keep = sketches && distribution(meta.kind, variant);
            let buckets = store.query_buckets(meta.id, resolution, from, to).await?;
            selected
                .samples
                .reserve(
                    buckets.len().saturating_mul(weight(meta.kind, variant)),
                    ctx.src,
                    sel.pos,
                    &format!("{resolution} buckets loaded from the store"),
                )
                .map_err(EvalError::TooManySamples)?;
            let mut labels = names::series_labels(&meta);
            labels.insert(NAME.to_string(), name);
            fetched.push(Fetched {
                labels,
                kind: meta.kind,
                variant,
                buckets: buckets
                    .into_iter()
                    .map(|(t, mut b)| {
                        if !keep {
                            // Never read: a bucket without it costs ≈100 bytes instead of KBs.
                            b.sketch = Sketch::new();
                        }
                        (t, Arc::new(b))
                    })
                    .collect(),
            });
        }
        ctx.data.insert(sel.pos, fetched);
        Ok(())
    })
}

/// What the selectors of one evaluation have selected and loaded so far.
struct Counts {
    series: usize,
    samples: SampleBudget,
}

struct Ctx<'a> {
    src: &'a str,
    steps: Vec<i64>,
    res: i64,
    /// Selected series by the selector's position in the source.
    data: HashMap<usize, Vec<Fetched>>,
}

fn is_additive(kind: MetricKind) -> bool {
    matches!(kind, MetricKind::Counter | MetricKind::UpDownCounter)
}

/// Whether samples of this series keep their distribution.
fn is_distribution(f: &Fetched) -> bool {
    distribution(f.kind, f.variant)
}

fn distribution(kind: MetricKind, variant: Variant) -> bool {
    match variant {
        Variant::Bucket => true,
        Variant::Plain => !is_additive(kind),
        Variant::Count | Variant::Sum => false,
    }
}

/// The number one bucket (or a merged window) stands for.
fn bucket_value(f: &Fetched, stats: &BucketStats) -> Option<f64> {
    match f.variant {
        Variant::Count | Variant::Bucket => Some(stats.count as f64),
        Variant::Sum => Some(stats.finite_sum()),
        Variant::Plain if is_additive(f.kind) => Some(stats.finite_sum()),
        Variant::Plain => stats.avg(),
    }
}

/// The additive amount (for `rate`, `increase`, `sum_over_time`).
fn additive_value(f: &Fetched, stats: &BucketStats) -> f64 {
    match f.variant {
        Variant::Count | Variant::Bucket => stats.count as f64,
        Variant::Sum => stats.finite_sum(),
        Variant::Plain if is_additive(f.kind) => stats.finite_sum(),
        Variant::Plain => stats.count as f64,
    }
}

/// Prometheus's `quantile` over plain numbers: linear interpolation between closest ranks.
fn numeric_quantile(q: f64, values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    if q.is_nan() {
        return Some(f64::NAN);
    }
    if q < 0.0 {
        return Some(f64::NEG_INFINITY);
    }
    if q > 1.0 {
        return Some(f64::INFINITY);
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = q * (values.len() - 1) as f64;
    let lower = rank.floor() as usize;
    let upper = (lower + 1).min(values.len() - 1);
    let weight = rank - rank.floor();
    Some(values[lower] * (1.0 - weight) + values[upper] * weight)
}

fn sketch_quantile(q: f64, stats: &BucketStats) -> Option<f64> {
    if q.is_nan() {
        return Some(f64::NAN);
    }
    if q < 0.0 {
        return Some(f64::NEG_INFINITY);
    }
    if q > 1.0 {
        return Some(f64::INFINITY);
    }
    stats.quantile(q)
}

fn drop_name(mut labels: Labels) -> Labels {
    labels.remove(NAME);
    labels
}

fn label_key(labels: &Labels, names: &[String]) -> Labels {
    names
        .iter()
        .filter_map(|n| labels.get(n).map(|v| (n.clone(), v.clone())))
        .collect()
}

impl Ctx<'_> {
    fn err(&self, pos: usize, msg: impl Into<String>) -> EvalError {
        ExprError::at(self.src, pos, msg).into()
    }

    /// End of the last closed bucket at or before `t − offset`.
    fn window_end(&self, t: i64, offset: i64) -> i64 {
        (t - offset).div_euclid(self.res) * self.res
    }

    fn eval(&self, expr: &Expr) -> Result<Value, EvalError> {
        match expr {
            Expr::Number(n) => Ok(Value::Scalar(vec![*n; self.steps.len()])),
            Expr::Selector(sel) => Ok(Value::Vector(self.instant(sel))),
            Expr::Range { pos, .. } => Err(self.err(
                *pos,
                "a range vector `x[d]` is only an argument of a function such as rate() or *_over_time()",
            )),
            Expr::Neg(inner, _) => match self.eval(inner)? {
                Value::Scalar(v) => Ok(Value::Scalar(v.into_iter().map(|x| -x).collect())),
                Value::Vector(series) => Ok(Value::Vector(map_vector(series, |x| -x))),
            },
            Expr::Call { func, args, pos } => self.call(func, args, *pos),
            Expr::Aggregate {
                op,
                param,
                expr,
                grouping,
                pos,
            } => self.aggregate(*op, param.as_deref(), expr, grouping.as_ref(), *pos),
            Expr::Binary {
                op,
                lhs,
                rhs,
                return_bool,
                matching,
                pos,
            } => {
                let l = self.eval(lhs)?;
                let r = self.eval(rhs)?;
                self.binary(*op, l, r, *return_bool, matching.as_ref(), *pos)
            }
        }
    }

    fn fetched(&self, sel: &Selector) -> &[Fetched] {
        self.data.get(&sel.pos).map(Vec::as_slice).unwrap_or(&[])
    }

    fn instant(&self, sel: &Selector) -> Vec<Series> {
        self.fetched(sel)
            .iter()
            .map(|f| Series {
                labels: f.labels.clone(),
                points: self
                    .steps
                    .iter()
                    .map(|t| {
                        let start = self.window_end(*t, sel.offset_s) - self.res;
                        let stats = f.buckets.get(&start)?;
                        let value = bucket_value(f, stats)?;
                        Some(Sample {
                            value,
                            stats: is_distribution(f).then(|| stats.clone()),
                        })
                    })
                    .collect(),
            })
            .collect()
    }

    fn scalar_arg(&self, expr: &Expr, what: &str) -> Result<Vec<f64>, EvalError> {
        match self.eval(expr)? {
            Value::Scalar(v) => Ok(v),
            Value::Vector(_) => Err(self.err(expr.pos(), format!("{what} must be a number"))),
        }
    }

    fn vector_arg(&self, expr: &Expr, func: &str) -> Result<Vec<Series>, EvalError> {
        match self.eval(expr)? {
            Value::Vector(v) => Ok(v),
            Value::Scalar(_) => Err(self.err(
                expr.pos(),
                format!(
                    "`{func}` takes a vector (a selector or an expression over one), not a number"
                ),
            )),
        }
    }

    fn arity(&self, func: &str, args: &[Expr], n: usize, pos: usize) -> Result<(), EvalError> {
        if args.len() != n {
            return Err(self.err(
                pos,
                format!("`{func}` takes {n} argument(s), got {}", args.len()),
            ));
        }
        Ok(())
    }

    fn call(&self, func: &str, args: &[Expr], pos: usize) -> Result<Value, EvalError> {
        match func {
            "time" => {
                self.arity(func, args, 0, pos)?;
                Ok(Value::Scalar(
                    self.steps.iter().map(|t| *t as f64).collect(),
                ))
            }
            "vector" => {
                self.arity(func, args, 1, pos)?;
                let v = self.scalar_arg(&args[0], "the argument of `vector`")?;
                Ok(Value::Vector(vec![Series {
                    labels: Labels::new(),
                    points: v.into_iter().map(|x| Some(Sample::num(x))).collect(),
                }]))
            }
            "abs" | "ceil" | "floor" | "sqrt" | "exp" | "ln" => {
                self.arity(func, args, 1, pos)?;
                let f: fn(f64) -> f64 = match func {
                    "abs" => f64::abs,
                    "ceil" => f64::ceil,
                    "floor" => f64::floor,
                    "sqrt" => f64::sqrt,
                    "exp" => f64::exp,
                    _ => f64::ln,
                };
                let v = self.vector_arg(&args[0], func)?;
                Ok(Value::Vector(map_vector(v, f)))
            }
            "histogram_quantile" => {
                self.arity(func, args, 2, pos)?;
                let q = self.scalar_arg(&args[0], "φ")?;
                let v = self.vector_arg(&args[1], func)?;
                let mut out = Vec::with_capacity(v.len());
                for s in v {
                    let mut points = Vec::with_capacity(s.points.len());
                    for (i, p) in s.points.into_iter().enumerate() {
                        points.push(match p {
                            None => None,
                            Some(Sample { stats: Some(st), .. }) => {
                                sketch_quantile(q[i], &st).map(Sample::num)
                            }
                            Some(Sample { stats: None, .. }) => {
                                return Err(self.err(
                                    args[1].pos(),
                                    "`histogram_quantile` needs distributions (a histogram or gauge, `<name>_bucket`, or `sum`/`rate` of them); this argument holds plain numbers",
                                ))
                            }
                        });
                    }
                    out.push(Series {
                        labels: drop_name(s.labels),
                        points,
                    });
                }
                Ok(Value::Vector(out))
            }
            _ => self.range_function(func, args, pos),
        }
    }

    fn range_function(&self, func: &str, args: &[Expr], pos: usize) -> Result<Value, EvalError> {
        let (q, arg) = if func == "quantile_over_time" {
            self.arity(func, args, 2, pos)?;
            (Some(self.scalar_arg(&args[0], "φ")?), &args[1])
        } else {
            self.arity(func, args, 1, pos)?;
            (None, &args[0])
        };
        let Expr::Range { sel, range_s, .. } = arg else {
            return Err(self.err(
                arg.pos(),
                format!("`{func}` takes a range vector such as `metric[5m]`"),
            ));
        };
        let mut out = Vec::new();
        for f in self.fetched(sel) {
            let distribution = is_distribution(f);
            let mut points = Vec::with_capacity(self.steps.len());
            for (i, t) in self.steps.iter().enumerate() {
                let end = self.window_end(*t, sel.offset_s);
                let mut merged = BucketStats::new();
                let mut values = Vec::new();
                let mut start = end - range_s;
                while start < end {
                    if let Some(b) = f.buckets.get(&start) {
                        // Plain numbers need no sketch merge (the costly part).
                        if distribution {
                            merged.merge(b);
                        }
                        if let Some(v) = bucket_value(f, b) {
                            values.push(v);
                        }
                    }
                    start += self.res;
                }
                if merged.count == 0 && values.is_empty() {
                    points.push(None);
                    continue;
                }
                let keep = |value: Option<f64>, stats: &BucketStats| {
                    value.map(|value| Sample {
                        value,
                        stats: distribution.then(|| Arc::new(stats.clone())),
                    })
                };
                // Without a distribution, the additive amount is the sum of the bucket values.
                let additive = if distribution {
                    additive_value(f, &merged)
                } else {
                    values.iter().sum()
                };
                let sample = match func {
                    "rate" => keep(Some(additive / *range_s as f64), &merged),
                    "increase" => keep(Some(additive), &merged),
                    "sum_over_time" => keep(
                        Some(if distribution {
                            merged.finite_sum()
                        } else {
                            values.iter().sum()
                        }),
                        &merged,
                    ),
                    "count_over_time" => Some(Sample::num(if distribution {
                        merged.count as f64
                    } else {
                        values.len() as f64
                    })),
                    "avg_over_time" => (if distribution {
                        merged.avg()
                    } else {
                        (!values.is_empty())
                            .then(|| values.iter().sum::<f64>() / values.len() as f64)
                    })
                    .map(Sample::num),
                    "min_over_time" => (if distribution {
                        merged.finite_min()
                    } else {
                        values.iter().copied().reduce(f64::min)
                    })
                    .map(Sample::num),
                    "max_over_time" => (if distribution {
                        merged.finite_max()
                    } else {
                        values.iter().copied().reduce(f64::max)
                    })
                    .map(Sample::num),
                    "quantile_over_time" => {
                        let q = q.as_ref().map_or(f64::NAN, |q| q[i]);
                        (if distribution {
                            sketch_quantile(q, &merged)
                        } else {
                            numeric_quantile(q, &mut values)
                        })
                        .map(Sample::num)
                    }
                    other => {
                        return Err(self.err(pos, format!("unknown function `{other}`")));
                    }
                };
                points.push(sample);
            }
            out.push(Series {
                labels: drop_name(f.labels.clone()),
                points,
            });
        }
        Ok(Value::Vector(out))
    }

    fn aggregate(
        &self,
        op: AggOp,
        param: Option<&Expr>,
        expr: &Expr,
        grouping: Option<&Grouping>,
        pos: usize,
    ) -> Result<Value, EvalError> {
        let q = match param {
            Some(p) => Some(self.scalar_arg(p, "the quantile's φ")?),
            None => None,
        };
        let name = match op {
            AggOp::Sum => "sum",
            AggOp::Avg => "avg",
            AggOp::Min => "min",
            AggOp::Max => "max",
            AggOp::Count => "count",
            AggOp::Quantile => "quantile",
        };
        let input = match self.eval(expr)? {
            Value::Vector(v) => v,
            Value::Scalar(_) => {
                return Err(self.err(pos, format!("`{name}` aggregates a vector, not a number")))
            }
        };
        let key = |labels: &Labels| -> Labels {
            match grouping {
                None => Labels::new(),
                Some(Grouping::By(names)) => {
                    let names: Vec<String> = names.iter().map(|n| names::label_name(n)).collect();
                    label_key(labels, &names)
                }
                Some(Grouping::Without(names)) => {
                    let mut l = drop_name(labels.clone());
                    for n in names {
                        l.remove(&names::label_name(n));
                    }
                    l
                }
            }
        };
        let mut groups: BTreeMap<Labels, Vec<&Series>> = BTreeMap::new();
        for s in &input {
            groups.entry(key(&s.labels)).or_default().push(s);
        }
        let mut out = Vec::with_capacity(groups.len());
        for (labels, members) in groups {
            let mut points = Vec::with_capacity(self.steps.len());
            for i in 0..self.steps.len() {
                let samples: Vec<&Sample> = members
                    .iter()
                    .filter_map(|s| s.points[i].as_ref())
                    .collect();
                if samples.is_empty() {
                    points.push(None);
                    continue;
                }
                let all_stats = samples.iter().all(|s| s.stats.is_some());
                let merged = || {
                    let mut m = BucketStats::new();
                    for s in &samples {
                        if let Some(st) = &s.stats {
                            m.merge(st);
                        }
                    }
                    m
                };
                let n = samples.len() as f64;
                let sample = match op {
                    AggOp::Sum => Some(Sample {
                        value: samples.iter().map(|s| s.value).sum(),
                        stats: all_stats.then(|| Arc::new(merged())),
                    }),
                    AggOp::Avg => Some(Sample::num(
                        samples.iter().map(|s| s.value).sum::<f64>() / n,
                    )),
                    AggOp::Min => samples
                        .iter()
                        .map(|s| s.value)
                        .reduce(f64::min)
                        .map(Sample::num),
                    AggOp::Max => samples
                        .iter()
                        .map(|s| s.value)
                        .reduce(f64::max)
                        .map(Sample::num),
                    AggOp::Count => Some(Sample::num(n)),
                    AggOp::Quantile => {
                        let q = q.as_ref().map_or(f64::NAN, |q| q[i]);
                        if all_stats {
                            sketch_quantile(q, &merged()).map(Sample::num)
                        } else {
                            let mut values: Vec<f64> = samples.iter().map(|s| s.value).collect();
                            numeric_quantile(q, &mut values).map(Sample::num)
                        }
                    }
                };
                points.push(sample);
            }
            out.push(Series { labels, points });
        }
        Ok(Value::Vector(out))
    }

    fn binary(
        &self,
        op: BinOp,
        lhs: Value,
        rhs: Value,
        return_bool: bool,
        matching: Option<&Matching>,
        pos: usize,
    ) -> Result<Value, EvalError> {
        let keep_name = op.is_comparison() && !return_bool;
        match (lhs, rhs) {
            (Value::Scalar(a), Value::Scalar(b)) => {
                if op.is_comparison() && !return_bool {
                    return Err(self.err(pos, "comparisons between numbers need `bool`"));
                }
                Ok(Value::Scalar(
                    a.iter()
                        .zip(&b)
                        .map(|(x, y)| apply(op, *x, *y).unwrap_or(0.0))
                        .collect(),
                ))
            }
            (Value::Vector(v), Value::Scalar(s)) => {
                Ok(Value::Vector(vector_scalar(op, return_bool, v, &s, true)))
            }
            (Value::Scalar(s), Value::Vector(v)) => {
                Ok(Value::Vector(vector_scalar(op, return_bool, v, &s, false)))
            }
            (Value::Vector(l), Value::Vector(r)) => {
                let signature = |labels: &Labels| -> Labels {
                    match matching {
                        Some(Matching::On(names)) => {
                            let names: Vec<String> =
                                names.iter().map(|n| names::label_name(n)).collect();
                            label_key(labels, &names)
                        }
                        Some(Matching::Ignoring(names)) => {
                            let mut l = drop_name(labels.clone());
                            for n in names {
                                l.remove(&names::label_name(n));
                            }
                            l
                        }
                        None => drop_name(labels.clone()),
                    }
                };
                let mut right: HashMap<Labels, &Series> = HashMap::new();
                for s in r.iter().filter(|s| s.points.iter().any(Option::is_some)) {
                    let sig = signature(&s.labels);
                    if right.insert(sig.clone(), s).is_some() {
                        return Err(self.err(
                            pos,
                            format!("several series on the right side match {sig:?}: only one-to-one matching is supported (use `on`/`ignoring` or aggregate first)"),
                        ));
                    }
                }
                let mut seen: HashMap<Labels, ()> = HashMap::new();
                let mut out = Vec::new();
                for s in l
                    .into_iter()
                    .filter(|s| s.points.iter().any(Option::is_some))
                {
                    let sig = signature(&s.labels);
                    let Some(other) = right.get(&sig) else {
                        continue;
                    };
                    if seen.insert(sig.clone(), ()).is_some() {
                        return Err(self.err(
                            pos,
                            format!("several series on the left side match {sig:?}: only one-to-one matching is supported (use `on`/`ignoring` or aggregate first)"),
                        ));
                    }
                    let mut labels = if keep_name {
                        s.labels.clone()
                    } else {
                        drop_name(s.labels.clone())
                    };
                    match matching {
                        Some(Matching::On(names)) => {
                            let names: Vec<String> =
                                names.iter().map(|n| names::label_name(n)).collect();
                            labels.retain(|k, _| names.contains(k) || (keep_name && k == NAME));
                        }
                        Some(Matching::Ignoring(names)) => {
                            for n in names {
                                labels.remove(&names::label_name(n));
                            }
                        }
                        None => {}
                    }
                    let points = s
                        .points
                        .iter()
                        .zip(&other.points)
                        .map(|(a, b)| {
                            let (a, b) = (a.as_ref()?, b.as_ref()?);
                            combine(op, return_bool, a, b.value, true)
                        })
                        .collect();
                    out.push(Series { labels, points });
                }
                Ok(Value::Vector(out))
            }
        }
    }
}

/// `op` on two numbers; `None` for a comparison that is false (filter) — callers with `bool` map it.
fn apply(op: BinOp, a: f64, b: f64) -> Option<f64> {
    let cmp = |c: bool| Some(if c { 1.0 } else { 0.0 });
    match op {
        BinOp::Add => Some(a + b),
        BinOp::Sub => Some(a - b),
        BinOp::Mul => Some(a * b),
        BinOp::Div => Some(a / b),
        BinOp::Mod => Some(a % b),
        BinOp::Pow => Some(a.powf(b)),
        BinOp::Eq => cmp(a == b),
        BinOp::Ne => cmp(a != b),
        BinOp::Gt => cmp(a > b),
        BinOp::Lt => cmp(a < b),
        BinOp::Ge => cmp(a >= b),
        BinOp::Le => cmp(a <= b),
    }
}

/// One sample `a op b` (`vector_left`: `a` is the vector side, whose value a filter keeps).
fn combine(op: BinOp, return_bool: bool, a: &Sample, b: f64, vector_left: bool) -> Option<Sample> {
    let (x, y) = if vector_left {
        (a.value, b)
    } else {
        (b, a.value)
    };
    let r = apply(op, x, y)?;
    if op.is_comparison() {
        if return_bool {
            return Some(Sample::num(r));
        }
        return (r == 1.0).then(|| a.clone());
    }
    Some(Sample::num(r))
}

fn map_vector(series: Vec<Series>, f: impl Fn(f64) -> f64) -> Vec<Series> {
    series
        .into_iter()
        .map(|s| Series {
            labels: drop_name(s.labels),
            points: s
                .points
                .into_iter()
                .map(|p| p.map(|p| Sample::num(f(p.value))))
                .collect(),
        })
        .collect()
}

/// `vector op scalar` or `scalar op vector`.
fn vector_scalar(
    op: BinOp,
    return_bool: bool,
    v: Vec<Series>,
    s: &[f64],
    vector_left: bool,
) -> Vec<Series> {
    let keep_name = op.is_comparison() && !return_bool;
    v.into_iter()
        .map(|series| Series {
            labels: if keep_name {
                series.labels
            } else {
                drop_name(series.labels)
            },
            points: series
                .points
                .iter()
                .enumerate()
                .map(|(i, p)| combine(op, return_bool, p.as_ref()?, s[i], vector_left))
                .collect(),
        })
        .collect()
}
