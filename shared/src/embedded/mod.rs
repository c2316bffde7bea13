//! Embedded adapters for local mode and tests: an on-disk stream log, a redb store, in-memory connections.
