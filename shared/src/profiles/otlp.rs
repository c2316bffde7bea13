//! OTLP profiles (`v1development`, `POST /v1development/profiles`): an `ExportProfilesServiceRequest`
//! (the `profiles` feature of `opentelemetry-proto`: the request's dictionary holds the string,
//! function, location and stack tables the samples point into) read into the same [`Push`]es as the
//! Pyroscope push API, so they merge into the same per-minute trees.
//!
//! - service: the resource's `service.name` (`unknown_service` without one); no labels (resource and
//!   sample attributes would multiply label sets; the service is what the views select by);
//! - type: the profile's `sample_type` as for pprof; `samples`/`count` with a `cpu`/`nanoseconds`
//!   period type (what the OpenTelemetry eBPF profiler sends) is cpu, each sample `period` ns;
//! - minute: of `time_unix_nano` (the receiver's clock when 0);
//! - a sample's value: the sum of its `values`, or the number of its `timestamps_unix_nano` when it has
//!   no values;
//! - a profile whose type Flowscope does not keep is rejected (counted in the partial success).

use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::profiles::v1development::{Profile, ProfilesDictionary};
use sha2::{Digest, Sha256};

use super::limits::{Limit, Refusals};
use super::push::{Push, PushLimits};
use super::tree::StackTree;
use super::{minute_of, ProfileError, ProfileType};

/// What a request read into.
#[derive(Debug, Default)]
pub struct Read {
    pub pushes: Vec<Push>,
    pub refused: Refusals,
    /// Profiles left out whole (type not kept), with the first reason.
    pub rejected_profiles: i64,
    pub reason: Option<String>,
}

/// Reads a request. `body_hash` identifies the request (the same request delivered twice is merged
/// once); `now` (unix seconds) stands in for a missing time.
pub fn read(
    request: &ExportProfilesServiceRequest,
    body_hash: &[u8],
    limits: &PushLimits,
    now: i64,
) -> Result<Read, ProfileError> {
    let empty = ProfilesDictionary::default();
    let dict = request.dictionary.as_ref().unwrap_or(&empty);
    let string = |i: i32| -> Result<&str, ProfileError> {
        usize::try_from(i)
            .ok()
            .and_then(|i| dict.string_table.get(i))
            .map(String::as_str)
            .ok_or_else(|| ProfileError::Malformed(format!("string index {i} out of range")))
    };
    let sample_limits = limits.samples();
    let mut out = Read::default();
    let mut samples_seen = 0usize;
    let mut stack: Vec<String> = Vec::new();
    for (r, resource_profiles) in request.resource_profiles.iter().enumerate() {
        let service = resource_profiles
            .resource
            .as_ref()
            .and_then(|res| res.attributes.iter().find(|kv| kv.key == "service.name"))
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| match &v.value {
                Some(Value::StringValue(s)) if !s.is_empty() => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "unknown_service".to_string());
        if service.len() > 256 {
            return Err(ProfileError::Malformed(
                "`service.name` is longer than 256 bytes".into(),
            ));
        }
        for (s, scope) in resource_profiles.scope_profiles.iter().enumerate() {
            for (p, profile) in scope.profiles.iter().enumerate() {
                let Some((profile_type, scale)) = profile_type(profile, &string)? else {
                    out.rejected_profiles += 1;
                    if out.reason.is_none() {
                        let (name, unit) = profile
                            .sample_type
                            .as_ref()
                            .map(|vt| (vt.type_strindex, vt.unit_strindex))
                            .unwrap_or_default();
                        out.reason = Some(format!(
                            "profile type {}/{} is not kept (cpu, wall, alloc/inuse space and objects, goroutines, samples)",
                            string(name)?,
                            string(unit)?
                        ));
                    }
                    continue;
                };
                let mut tree = StackTree::new();
                for sample in &profile.samples {
                    samples_seen += 1;
                    if samples_seen > sample_limits.max_samples {
                        out.refused.add(Limit::Samples, 1);
                        continue;
                    }
                    let value: u64 = if sample.values.is_empty() {
                        sample.timestamps_unix_nano.len() as u64
                    } else {
                        sample
                            .values
                            .iter()
                            .filter(|v| **v > 0)
                            .fold(0u64, |a, v| a.saturating_add(v.unsigned_abs()))
                    };
                    let value = value.saturating_mul(scale);
                    if value == 0 {
                        continue;
                    }
                    if !frames(
                        dict,
                        sample.stack_index,
                        &string,
                        &mut stack,
                        &sample_limits,
                    )? {
                        out.refused.add(Limit::StackDepth, 1);
                        continue;
                    }
                    if stack
                        .iter()
                        .any(|f| f.len() > sample_limits.max_function_name_bytes)
                    {
                        out.refused.add(Limit::FunctionNameBytes, 1);
                        continue;
                    }
                    if !tree.add_named_stack_bounded(&stack, value, sample_limits.max_nodes) {
                        out.refused.add(Limit::PushNodes, 1);
                    }
                }
                if tree.is_empty() {
                    continue;
                }
                let seconds = i64::try_from(profile.time_unix_nano / 1_000_000_000).unwrap_or(0);
                let minute = minute_of(if seconds > 0 { seconds } else { now });
                let mut hasher = Sha256::new();
                hasher.update(body_hash);
                hasher.update(format!("/{r}/{s}/{p}").as_bytes());
                out.pushes.push(Push {
                    service: service.clone(),
                    labels: Default::default(),
                    profile_type,
                    minute,
                    tree,
                    contribution: format!("otlp-{}", hex::encode(&hasher.finalize()[..16])),
                });
            }
        }
    }
    Ok(out)
}

/// The profile's type and the factor of its values; `None` for a type Flowscope does not keep.
fn profile_type<'a>(
    profile: &Profile,
    string: &impl Fn(i32) -> Result<&'a str, ProfileError>,
) -> Result<Option<(ProfileType, u64)>, ProfileError> {
    let Some(vt) = profile.sample_type.as_ref() else {
        return Ok(None);
    };
    let (name, unit) = (string(vt.type_strindex)?, string(vt.unit_strindex)?);
    let Some(t) = ProfileType::from_pprof(name, unit) else {
        return Ok(None);
    };
    if t == ProfileType::Samples {
        if let Some(period_type) = profile.period_type.as_ref() {
            let (pname, punit) = (
                string(period_type.type_strindex)?,
                string(period_type.unit_strindex)?,
            );
            if pname == "cpu" && punit == "nanoseconds" && profile.period > 0 {
                return Ok(Some((ProfileType::Cpu, profile.period.unsigned_abs())));
            }
        }
    }
    Ok(Some((t, 1)))
}

/// The frames of a stack, root first, into `out`; false when deeper than the limit.
fn frames<'a>(
    dict: &ProfilesDictionary,
    stack_index: i32,
    string: &impl Fn(i32) -> Result<&'a str, ProfileError>,
    out: &mut Vec<String>,
    limits: &super::limits::SampleLimits,
) -> Result<bool, ProfileError> {
    out.clear();
    let bad =
        |what: &str, i: i32| ProfileError::Malformed(format!("{what} index {i} out of range"));
    let stack = usize::try_from(stack_index)
        .ok()
        .and_then(|i| dict.stack_table.get(i))
        .ok_or_else(|| bad("stack", stack_index))?;
    // Leaf first in the stack; the caller last among a location's lines.
    for &l in stack.location_indices.iter().rev() {
        let location = usize::try_from(l)
            .ok()
            .and_then(|i| dict.location_table.get(i))
            .ok_or_else(|| bad("location", l))?;
        if out.len() + location.lines.len().max(1) > limits.max_stack_depth {
            return Ok(false);
        }
        if location.lines.is_empty() {
            out.push(format!("0x{:x}", location.address));
            continue;
        }
        for line in location.lines.iter().rev() {
            let function = usize::try_from(line.function_index)
                .ok()
                .and_then(|i| dict.function_table.get(i))
                .ok_or_else(|| bad("function", line.function_index))?;
            let name = string(function.name_strindex)?;
            out.push(if !name.is_empty() {
                name.to_string()
            } else {
                let file = string(function.filename_strindex)?;
                if file.is_empty() {
                    format!("0x{:x}", location.address)
                } else {
                    format!("{file}:{}", line.line)
                }
            });
        }
    }
    Ok(true)
}
