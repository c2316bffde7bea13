//! The Pyroscope push API (`POST /ingest?name=APP.TYPE{k=v}&from&until&format&sampleRate&spyName`),
//! read into [`Push`]es: the service, its labels, the minute, and one tree per profile type.
//! Bodies are pprof (gzip or raw), folded text, or multipart/form-data with a `profile` part (what
//! `@pyroscope/nodejs` sends; parsed with `multer`, the parser axum's own multipart uses).

use std::collections::BTreeMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::limits::{Refusals, SampleLimits};
use super::tree::StackTree;
use super::{folded, minute_of, pprof, ProfileError, ProfileType};

/// Limits of one push. Every one has a CLI flag in local mode (`flowscope local --help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushLimits {
    /// Request body, compressed as sent (413 above).
    pub max_body_bytes: usize,
    /// A gzip pprof, decompressed (the gzip-bomb guard; 413 above).
    pub max_decompressed_bytes: usize,
    /// Labels in `name`'s `{…}` (400 above).
    pub max_labels: usize,
    /// Nodes (distinct call paths) of one pushed profile: bounds the work and the stored tree per
    /// push; samples needing more are refused.
    pub max_nodes: usize,
    /// Samples (pprof samples, folded lines) per push; those past it are refused.
    pub max_samples: usize,
    /// Frames of one sample; deeper samples are refused.
    pub max_stack_depth: usize,
    /// Bytes of one frame name; samples through a longer one are refused.
    pub max_function_name_bytes: usize,
    /// Nodes of one stored per-minute tree (service, type, label set, minute); samples needing
    /// more are refused.
    pub max_minute_nodes: usize,
    /// Distinct label sets per service, profile type and minute; a further one is refused.
    pub max_label_sets: usize,
}

impl PushLimits {
    /// The bounds applied while a push is read.
    pub fn samples(&self) -> SampleLimits {
        SampleLimits {
            max_samples: self.max_samples,
            max_stack_depth: self.max_stack_depth,
            max_function_name_bytes: self.max_function_name_bytes,
            max_nodes: self.max_nodes,
        }
    }
}

impl Default for PushLimits {
    fn default() -> Self {
        PushLimits {
            max_body_bytes: 8 * 1024 * 1024,
            max_decompressed_bytes: 64 * 1024 * 1024,
            max_labels: 16,
            max_nodes: 200_000,
            max_samples: 1_000_000,
            max_stack_depth: 1024,
            max_function_name_bytes: 4096,
            max_minute_nodes: 1_000_000,
            max_label_sets: 256,
        }
    }
}

/// The push parameters, as sent (text, so a malformed one is answered with a 400 naming it).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PushParams {
    pub name: Option<String>,
    pub from: Option<String>,
    pub until: Option<String>,
    pub format: Option<String>,
    #[serde(rename = "sampleRate")]
    pub sample_rate: Option<String>,
    #[serde(rename = "spyName")]
    pub spy_name: Option<String>,
}

/// One profile type of one push, ready to merge into its minute.
#[derive(Debug, Clone)]
pub struct Push {
    pub service: String,
    /// Sorted by key.
    pub labels: BTreeMap<String, String>,
    pub profile_type: ProfileType,
    /// Unix seconds, start of the minute the profile is merged into (the minute of `from`).
    pub minute: i64,
    pub tree: StackTree,
    /// Identifies the push (a hash of its parameters and body): the same push delivered twice is
    /// merged once.
    pub contribution: String,
}

/// Pyroscope type suffixes that are not part of the application name (`app.cpu{…}`).
const TYPE_SUFFIXES: &[&str] = &[
    "cpu",
    "wall",
    "itimer",
    "alloc_space",
    "alloc_objects",
    "inuse_space",
    "inuse_objects",
    "goroutines",
    "goroutine",
    "samples",
    "mutex_count",
    "mutex_duration",
    "block_count",
    "block_duration",
    "contentions",
    "delay",
    "lock_count",
    "lock_duration",
];

/// A parsed `name`: the application, its type suffix, its labels.
pub type ParsedName = (String, Option<String>, BTreeMap<String, String>);

/// `APP.TYPE{k=v,…}` → (app, type suffix, labels).
pub fn parse_name(name: &str, max_labels: usize) -> Result<ParsedName, ProfileError> {
    let bad = |why: String| ProfileError::Malformed(format!("`name`: {why}"));
    let (head, labels_text) = match name.find('{') {
        Some(open) => {
            let rest = &name[open + 1..];
            let inner = rest
                .strip_suffix('}')
                .ok_or_else(|| bad(format!("labels must end with `}}`: {name:?}")))?;
            (&name[..open], Some(inner))
        }
        None => (name, None),
    };
    let mut labels = BTreeMap::new();
    if let Some(text) = labels_text {
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| bad(format!("label {pair:?} is not key=value")))?;
            let k = k.trim();
            if k.is_empty()
                || !k
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            {
                return Err(bad(format!(
                    "label key {k:?} must be letters, digits, `_` or `.`"
                )));
            }
            labels.insert(k.to_string(), v.trim().to_string());
        }
    }
    if labels.len() > max_labels {
        return Err(bad(format!(
            "{} labels, at most {max_labels}",
            labels.len()
        )));
    }
    // `__name__` and `service_name` are Pyroscope's own: the service comes from the app name.
    labels.remove("__name__");
    labels.remove("service_name");
    let head = head.trim();
    let (app, suffix) = match head.rsplit_once('.') {
        Some((app, suffix)) if TYPE_SUFFIXES.contains(&suffix) && !app.is_empty() => {
            (app, Some(suffix.to_string()))
        }
        _ => (head, None),
    };
    if app.is_empty() {
        return Err(bad("the application name is empty".into()));
    }
    if app.len() > 256 {
        return Err(bad("the application name is longer than 256 bytes".into()));
    }
    Ok((app.to_string(), suffix, labels))
}

/// Unix seconds from Pyroscope's `from`/`until`: seconds, or milliseconds / nanoseconds when the
/// number is that large (as Pyroscope's own server reads them).
fn unix_seconds(text: &str, param: &str) -> Result<i64, ProfileError> {
    let n: i64 = text.trim().parse().map_err(|_| {
        ProfileError::Malformed(format!("`{param}` must be unix seconds, got {text:?}"))
    })?;
    Ok(if n >= 1_000_000_000_000_000 {
        n / 1_000_000_000
    } else if n >= 100_000_000_000 {
        n / 1000
    } else {
        n
    })
}

/// Reads one push. `content_type` decides multipart; `now` (unix seconds) stands in for a missing
/// `from`. Samples over a limit are left out of the pushes and counted in the [`Refusals`].
pub async fn read(
    params: &PushParams,
    content_type: Option<&str>,
    body: bytes::Bytes,
    limits: &PushLimits,
    now: i64,
) -> Result<(Vec<Push>, Refusals), ProfileError> {
    let name = params
        .name
        .as_deref()
        .ok_or_else(|| ProfileError::Malformed("`name` is required (APP.TYPE{k=v,…})".into()))?;
    let (service, suffix, labels) = parse_name(name, limits.max_labels)?;
    let from = params
        .from
        .as_deref()
        .map(|t| unix_seconds(t, "from"))
        .transpose()?;
    if let Some(until) = params.until.as_deref() {
        unix_seconds(until, "until")?;
    }
    let mut hasher = Sha256::new();
    for part in [
        &params.name,
        &params.from,
        &params.until,
        &params.format,
        &params.sample_rate,
    ] {
        hasher.update(part.as_deref().unwrap_or("").as_bytes());
        hasher.update([0]);
    }
    hasher.update(&body);
    let contribution = hex::encode(&hasher.finalize()[..16]);

    let multipart = content_type
        .map(|c| {
            c.trim()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        })
        .unwrap_or(false);
    let (body, format) = if multipart {
        (
            profile_part(content_type.unwrap_or(""), body).await?,
            "pprof".to_string(),
        )
    } else {
        let format = params.format.clone().unwrap_or_else(|| {
            if body.starts_with(&[0x1f, 0x8b]) {
                "pprof".into()
            } else {
                "folded".into()
            }
        });
        (body, format)
    };
    let sample_limits = limits.samples();
    let (trees, refused): (Vec<(ProfileType, StackTree)>, Refusals) = match format.as_str() {
        "pprof" => {
            let (decoded, refused) =
                pprof::decode_bounded(&body, limits.max_decompressed_bytes, &sample_limits)?;
            (
                decoded
                    .into_iter()
                    .map(|d| (d.profile_type, d.tree))
                    .collect(),
                refused,
            )
        }
        "folded" | "lines" | "" => {
            let profile_type = match suffix.as_deref() {
                Some("cpu" | "itimer") => ProfileType::Cpu,
                Some(other) => ProfileType::parse(other).unwrap_or(ProfileType::Samples),
                None => ProfileType::Samples,
            };
            // A folded cpu profile counts samples taken `sampleRate` times per second: each one
            // stands for 1e9 / sampleRate nanoseconds.
            let scale = if matches!(profile_type, ProfileType::Cpu | ProfileType::Wall) {
                let rate: u64 = match params.sample_rate.as_deref() {
                    Some(text) => text.trim().parse().ok().filter(|r| *r > 0).ok_or_else(|| {
                        ProfileError::Malformed(format!(
                            "`sampleRate` must be a positive whole number, got {text:?}"
                        ))
                    })?,
                    None => 100,
                };
                1_000_000_000 / rate.min(1_000_000_000)
            } else {
                1
            };
            let body = pprof::gunzip_if_needed(&body, limits.max_decompressed_bytes)?;
            let (tree, refused) = folded::parse_bounded(&body, scale, &sample_limits)?;
            (vec![(profile_type, tree)], refused)
        }
        other => {
            return Err(ProfileError::Malformed(format!(
                "`format` {other:?} is not supported: use pprof or folded"
            )))
        }
    };
    let minute = minute_of(from.unwrap_or(now));
    let mut pushes = Vec::with_capacity(trees.len());
    for (profile_type, tree) in trees {
        if tree.is_empty() {
            continue;
        }
        pushes.push(Push {
            service: service.clone(),
            labels: labels.clone(),
            profile_type,
            minute,
            tree,
            contribution: contribution.clone(),
        });
    }
    Ok((pushes, refused))
}

/// The `profile` part of a multipart/form-data body.
async fn profile_part(
    content_type: &str,
    body: bytes::Bytes,
) -> Result<bytes::Bytes, ProfileError> {
    let bad = |why: String| ProfileError::Malformed(format!("multipart body: {why}"));
    let boundary = multer::parse_boundary(content_type).map_err(|e| bad(e.to_string()))?;
    let stream = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| bad(e.to_string()))?
    {
        if field.name() == Some("profile") {
            return field.bytes().await.map_err(|e| bad(e.to_string()));
        }
    }
    Err(bad("no `profile` part".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_app_type_and_labels() {
        let (app, t, labels) = parse_name("shop.cpu{env=prod, region=eu}", 16).unwrap();
        assert_eq!((app.as_str(), t.as_deref()), ("shop", Some("cpu")));
        assert_eq!(labels.get("env").map(String::as_str), Some("prod"));
        assert_eq!(labels.len(), 2);
        let (app, t, labels) = parse_name("my.app", 16).unwrap();
        assert_eq!((app.as_str(), t, labels.len()), ("my.app", None, 0));
        assert!(parse_name("x{a=1", 16).is_err());
        assert!(parse_name("x{a}", 16).is_err());
        assert!(parse_name("{a=1}", 16).is_err());
        assert!(parse_name("x{a=1,b=2}", 1).is_err());
    }

    #[tokio::test]
    async fn folded_cpu_is_scaled_by_the_sample_rate_and_identical_pushes_share_an_id() {
        let params = PushParams {
            name: Some("api.cpu{pod=a}".into()),
            from: Some("1700000030".into()),
            format: Some("folded".into()),
            sample_rate: Some("100".into()),
            ..Default::default()
        };
        let body = bytes::Bytes::from_static(b"main;work 3\n");
        let (a, refused) = read(&params, None, body.clone(), &PushLimits::default(), 0)
            .await
            .unwrap();
        assert!(refused.is_empty());
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].profile_type, ProfileType::Cpu);
        assert_eq!(a[0].tree.total(), 30_000_000);
        assert_eq!(a[0].minute, 1_699_999_980);
        let (b, _) = read(&params, None, body, &PushLimits::default(), 0)
            .await
            .unwrap();
        assert_eq!(a[0].contribution, b[0].contribution);
        let (other, _) = read(
            &params,
            None,
            bytes::Bytes::from_static(b"main;work 4\n"),
            &PushLimits::default(),
            0,
        )
        .await
        .unwrap();
        assert_ne!(a[0].contribution, other[0].contribution);
    }
}
