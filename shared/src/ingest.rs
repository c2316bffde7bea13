//! The OTLP/HTTP receiver core, independent of the HTTP server that hosts it (axum locally, lambda_http on AWS).
