//! Flowscope's expression language: PromQL-flavoured queries over the bucket store ([`parse`] →
//! [`eval`]), with metric and label names mapped as the OpenTelemetry–Prometheus compatibility
//! specification says ([`names`]). Served by `GET /api/query` and the Prometheus read API
//! (`crate::http::promql`); documented in `docs/query-language.md`.

pub mod budget;
pub mod eval;
pub mod names;
pub mod parse;

pub use budget::{DEFAULT_MAX_SAMPLES, SKETCH_SAMPLE_WEIGHT};
pub use eval::{evaluate, EvalError, ExprLimits, QueryResult, QueryTimes, Value};
pub use parse::{parse, ExprError};

use crate::ports::SeriesCatalog;
use names::Labels;

/// Label sets (with `__name__`) of every series matching any of `selectors` (or every series under
/// its canonical names when `selectors` is empty), sorted and without duplicates; at most `limit`
/// (an error names the limit beyond it).
pub async fn series_labels<S: SeriesCatalog + ?Sized>(
    store: &S,
    selectors: &[parse::Selector],
    limit: usize,
) -> Result<Vec<Labels>, EvalError> {
    let mut catalog = eval::Catalog::default();
    let mut out = std::collections::BTreeSet::new();
    let everything = [parse::Selector {
        name: None,
        matchers: Vec::new(),
        offset_s: 0,
        pos: 0,
    }];
    let selectors = if selectors.is_empty() {
        &everything[..]
    } else {
        selectors
    };
    for sel in selectors {
        let all = sel.name.is_none() && sel.matchers.is_empty();
        for (meta, name, _) in eval::select(store, &mut catalog, sel)
            .await
            .map_err(EvalError::Store)?
        {
            let base = names::series_labels(&meta);
            let listed = if all {
                names::listed_names(&meta)
            } else {
                vec![name]
            };
            for name in listed {
                let mut labels = base.clone();
                labels.insert(names::NAME.to_string(), name);
                out.insert(labels);
                if out.len() > limit {
                    return Err(EvalError::BadParam(format!(
                        "more than {limit} series match; narrow the selectors"
                    )));
                }
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// Parses a `match[]` selector: only a plain selector is accepted.
pub fn parse_selector(src: &str) -> Result<parse::Selector, ExprError> {
    match parse::parse(src)? {
        parse::Expr::Selector(sel) => Ok(sel),
        other => Err(ExprError::at(
            src,
            other.pos(),
            "expected a series selector such as `metric{label=\"value\"}`",
        )),
    }
}
