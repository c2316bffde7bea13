//! Request framing: content type and content encoding (OTLP/HTTP), with a decompression bomb guard.

use std::borrow::Cow;
use std::io::Read;

use flate2::read::MultiGzDecoder;

use super::OtlpError;

/// The two encodings OTLP/HTTP defines. Responses use the request's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Protobuf,
    Json,
}

impl Format {
    /// Parses a `Content-Type` header, ignoring parameters such as `charset` and letter case.
    pub fn from_content_type(content_type: Option<&str>) -> Result<Format, OtlpError> {
        let raw = content_type.unwrap_or("");
        let essence = raw.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/x-protobuf") {
            Ok(Format::Protobuf)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Ok(Format::Json)
        } else {
            Err(OtlpError::UnsupportedContentType(raw.to_string()))
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        }
    }
}

/// Undoes `Content-Encoding`. Decompression stops as soon as the output would exceed
/// `max_decompressed_bytes`, so a small gzip bomb never allocates more than the limit.
pub fn decompress<'a>(
    content_encoding: Option<&str>,
    body: &'a [u8],
    max_decompressed_bytes: usize,
) -> Result<Cow<'a, [u8]>, OtlpError> {
    let encoding = content_encoding.unwrap_or("").trim();
    if encoding.is_empty() || encoding.eq_ignore_ascii_case("identity") {
        return Ok(Cow::Borrowed(body));
    }
    if !(encoding.eq_ignore_ascii_case("gzip") || encoding.eq_ignore_ascii_case("x-gzip")) {
        return Err(OtlpError::UnsupportedContentEncoding(encoding.to_string()));
    }
    if body.is_empty() {
        return Ok(Cow::Borrowed(body));
    }
    let mut out = Vec::new();
    // One byte past the limit tells "exactly at the limit" from "over it".
    let limit = u64::try_from(max_decompressed_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    MultiGzDecoder::new(body)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| OtlpError::Malformed(format!("invalid gzip body: {e}")))?;
    if out.len() > max_decompressed_bytes {
        return Err(OtlpError::DecompressedTooLarge {
            limit: max_decompressed_bytes,
        });
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;
    use flate2::Compression;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn decompressed_limit_is_inclusive() {
        let data = vec![7u8; 1000];
        let body = gzip(&data);
        let out = decompress(Some("gzip"), &body, 1000).unwrap();
        assert_eq!(&out[..], &data[..]);
        assert!(matches!(
            decompress(Some("gzip"), &body, 999),
            Err(OtlpError::DecompressedTooLarge { limit: 999 })
        ));
    }

    #[test]
    fn concatenated_gzip_members_are_one_body() {
        let mut body = gzip(b"hello ");
        body.extend(gzip(b"world"));
        assert_eq!(
            &decompress(Some("gzip"), &body, 100).unwrap()[..],
            b"hello world"
        );
    }

    #[test]
    fn identity_passes_the_body_through_and_unknown_encodings_are_refused() {
        assert_eq!(&decompress(None, b"abc", 1).unwrap()[..], b"abc");
        assert_eq!(
            &decompress(Some("identity"), b"abc", 1).unwrap()[..],
            b"abc"
        );
        assert!(matches!(
            decompress(Some("deflate"), b"abc", 10),
            Err(OtlpError::UnsupportedContentEncoding(e)) if e == "deflate"
        ));
    }

    #[test]
    fn content_type_ignores_parameters_and_case() {
        assert_eq!(
            Format::from_content_type(Some("application/json; charset=utf-8")).unwrap(),
            Format::Json
        );
        assert_eq!(
            Format::from_content_type(Some("APPLICATION/X-PROTOBUF")).unwrap(),
            Format::Protobuf
        );
        assert!(Format::from_content_type(Some("application/protobuf")).is_err());
        assert!(Format::from_content_type(None).is_err());
    }
}
