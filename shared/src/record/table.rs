//! Per-record string interning with exact size accounting, so records can be split at
//! [`super::MAX_RECORD_BYTES`] without re-encoding.

use prost::encoding::{encoded_len_varint, key_len};

/// Bytes a length-delimited field element (string, bytes or sub-message) of `len` bytes takes.
pub(crate) fn delimited_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// Strings of one record, each stored once and referenced by index.
#[derive(Default)]
pub(crate) struct StringTable<'a> {
    strings: Vec<&'a str>,
    /// foldhash (seeded per map), not SipHash: interning is most of the cost of packing a record.
    index: foldhash::HashMap<&'a str, u32>,
    /// Encoded size of the `strings` field so far (`tag` per element).
    encoded_len: usize,
}

impl<'a> StringTable<'a> {
    /// Index of `s`, adding it if new.
    pub(crate) fn intern(&mut self, s: &'a str, tag: u32) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        // A record never approaches u32::MAX strings: it is capped at MAX_RECORD_BYTES.
        let i = self.strings.len() as u32;
        self.strings.push(s);
        self.index.insert(s, i);
        self.encoded_len += delimited_len(tag, s.len());
        i
    }

    pub(crate) fn len(&self) -> usize {
        self.strings.len()
    }

    pub(crate) fn encoded_len(&self) -> usize {
        self.encoded_len
    }

    /// Forgets strings added after the table had `len` of them (used to undo a point that did not fit).
    pub(crate) fn truncate(&mut self, len: usize, tag: u32) {
        for s in self.strings.drain(len..) {
            self.index.remove(s);
            self.encoded_len -= delimited_len(tag, s.len());
        }
    }

    pub(crate) fn into_owned(self) -> Vec<String> {
        self.strings.into_iter().map(str::to_owned).collect()
    }
}

/// Looks up a string index read from a record.
pub(crate) fn lookup(strings: &[String], index: u32) -> Result<&str, String> {
    strings
        .get(index as usize)
        .map(String::as_str)
        .ok_or_else(|| {
            format!(
                "string index {index} out of range ({} strings)",
                strings.len()
            )
        })
}
