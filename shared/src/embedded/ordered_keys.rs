//! Key parts for the redb stores, built so that redb's byte order is the order reads need, and the
//! time-first expiry indexes built from them (`expires_at | item key` → ()), which let a purge read
//! only what has expired.

use redb::ReadableTable;

use super::redb_file::Unavailable;

/// Big-endian with the sign bit flipped: byte order equals numeric order, negatives included.
pub(super) fn ordered_i64(value: i64) -> [u8; 8] {
    ((value as u64) ^ (1 << 63)).to_be_bytes()
}

pub(super) fn from_ordered_i64(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

/// `at (order-preserving i64 BE) | suffix`: time first, so a time range is one contiguous scan.
pub(super) fn time_key(at: i64, suffix: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + suffix.len());
    out.extend_from_slice(&ordered_i64(at));
    out.extend_from_slice(suffix);
    out
}

/// Length-prefixed so that no service's prefix is a prefix of another's.
pub(super) fn service_prefix(service: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + service.len());
    out.extend_from_slice(&(service.len() as u32).to_be_bytes());
    out.extend_from_slice(service.as_bytes());
    out
}

/// Removes the entries of the time-first `index` below `before` and returns the item keys they
/// pointed at.
pub(super) fn take_expired<E: Unavailable>(
    index: &mut redb::Table<&'static [u8], ()>,
    before: i64,
) -> Result<Vec<Vec<u8>>, E> {
    let unavailable = |e: redb::StorageError| E::unavailable(e.to_string());
    let upper = ordered_i64(before);
    let mut expired = Vec::new();
    for entry in index.range::<&[u8]>(..&upper[..]).map_err(unavailable)? {
        let (key, _) = entry.map_err(unavailable)?;
        expired.push(key.value().to_vec());
    }
    for key in &expired {
        index.remove(&key[..]).map_err(unavailable)?;
    }
    Ok(expired.into_iter().map(|k| k[8..].to_vec()).collect())
}
