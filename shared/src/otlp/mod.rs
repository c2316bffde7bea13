//! OTLP decoding, validation and normalization into the domain model.
