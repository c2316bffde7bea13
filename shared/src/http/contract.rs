//! The pinned contract, generated from the code: the OpenAPI document of the `/api/*` routes
//! ([`openapi_json`], committed as `docs/openapi.json`) and the JSON Schemas of the WebSocket
//! messages ([`websocket_schemas`], committed as `docs/websocket.client.schema.json` and
//! `docs/websocket.server.schema.json`). `shared/tests/api_contract.rs` fails when a committed file
//! differs from what the code generates; `scripts/contract.sh` regenerates them (and the dashboard's
//! types). How to add a route or a message: `docs/contract.md`.
//!
//! The schemas come from utoipa's `ToSchema` derives on the types where they are defined (the
//! routes' annotations live in [`super::api`]); utoipa writes OpenAPI 3.1, whose schema objects are
//! JSON Schema 2020-12, so the WebSocket schemas are the same components with their references
//! pointed at `$defs`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi};

use crate::alerts::AlertEvent;
use crate::live::wire::{ClientMessage, ServerMessage};
use crate::profiling::events::ProfileEvent;
use crate::registry::score::HealthEvent;
use crate::registry::RegistryEvent;

/// The document's fixed parts; [`super::api`] adds the paths.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Flowscope query API",
        version = "0.1.0",
        description = "Read side of Flowscope and its alerting API. Served by `flowscope local` on http://127.0.0.1:8080 and by the `query` Lambda behind the HTTP API on AWS. Times are unix seconds; buckets are half-open [start, start+width). Every route needs a credential on AWS, and in local mode started with `--token`: `Authorization: Bearer <token>` or `x-api-key: <token>` (never a query parameter). Missing or wrong: 401 `{\"error\": \"missing credential: …\"}` / `{\"error\": \"invalid credential\"}` with `WWW-Authenticate: Bearer`. Every error is `{\"error\": \"<reason>\"}`. Generated from the code (`scripts/contract.sh`); the WebSocket messages are in `components.schemas` (`ClientMessage`, `ServerMessage`, `AlertEvent`, `RegistryEvent`, `HealthEvent`, `ProfileEvent`) and in `docs/websocket.*.schema.json`."
    ),
    security((), ("bearer" = []), ("apiKey" = [])),
    modifiers(&Extras),
    components(schemas(ClientMessage, ServerMessage, AlertEvent, RegistryEvent, HealthEvent, ProfileEvent))
)]
pub struct ApiDoc;

/// The security schemes, and what the derives cannot say.
struct Extras;

impl Modify for Extras {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The API key (AWS) or local mode's --token"))
                    .build(),
            ),
        );
        components.responses.insert(
            "Unauthorized".to_string(),
            RefOr::T(
                ResponseBuilder::new()
                    .description(
                        "Missing or wrong credential (with `WWW-Authenticate: Bearer`): `{\"error\": \"missing credential: …\"}` or `{\"error\": \"invalid credential\"}`",
                    )
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            ),
        );
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))),
        );
        // `AlertEvent` is tagged by serde (`#[serde(tag = "type", rename = "alert")]` on a struct),
        // which the derive does not see.
        if let Some(RefOr::T(Schema::Object(event))) = components.schemas.get_mut("AlertEvent") {
            event.properties.insert(
                "type".to_string(),
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["alert"]))
                    .into(),
            );
            event.required.push("type".to_string());
        }
        // A live flush's `metrics_update` carries `flushed_at_us`, written into the envelope by
        // `live::wire::encode_flush_update` rather than by serde.
        if let Some(RefOr::T(Schema::OneOf(messages))) = components.schemas.get_mut("ServerMessage")
        {
            for message in &mut messages.items {
                let RefOr::T(Schema::Object(object)) = message else {
                    continue;
                };
                let is_update = matches!(
                    object.properties.get("type"),
                    Some(RefOr::T(Schema::Object(tag)))
                        if tag.enum_values.as_deref() == Some(&[json!("metrics_update")][..])
                );
                if is_update {
                    object.properties.insert(
                        "flushed_at_us".to_string(),
                        ObjectBuilder::new()
                            .schema_type(Type::Integer)
                            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                            .minimum(Some(0))
                            .description(Some(
                                "Unix microseconds (server clock) when the flush started; only on live flushes, not on a catch-up.",
                            ))
                            .into(),
                    );
                }
            }
        }
    }
}

/// What every route shares, added once the routes are in: the 401 of the credential check (the
/// middleware in front of every route, [`super::auth`]).
pub(super) fn finish(openapi: &mut utoipa::openapi::OpenApi) {
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            operation.responses.responses.insert(
                "401".to_string(),
                RefOr::Ref(Ref::new("#/components/responses/Unauthorized")),
            );
        }
    }
}

/// The OpenAPI document as committed: pretty JSON with a final newline.
pub fn openapi_json() -> String {
    let mut text = super::api::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot encode the document: {e}\"}}"));
    text.push('\n');
    text
}

/// The WebSocket messages' JSON Schemas (client → server, server → client) as committed.
pub fn websocket_schemas() -> (String, String) {
    let document = serde_json::to_value(super::api::openapi()).unwrap_or(Value::Null);
    let schemas = document
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let schemas: BTreeMap<String, Value> = schemas.into_iter().collect();
    let client = message_schema(
        &schemas,
        "flowscope-websocket-client",
        "A message a client sends to Flowscope's WebSocket (docs/websocket.md).",
        &["ClientMessage"],
    );
    let server = message_schema(
        &schemas,
        "flowscope-websocket-server",
        "A message Flowscope's WebSocket sends to a client (docs/websocket.md): a ServerMessage, an alert event, a registry event, a health event or a profile event.",
        &["ServerMessage", "AlertEvent", "RegistryEvent", "HealthEvent", "ProfileEvent"],
    );
    (pretty(&client), pretty(&server))
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

const COMPONENT_REF: &str = "#/components/schemas/";

/// A standalone JSON Schema: one of `roots`, with every component they reach under `$defs`.
fn message_schema(
    schemas: &BTreeMap<String, Value>,
    id: &str,
    description: &str,
    roots: &[&str],
) -> Value {
    let mut reached = BTreeSet::new();
    let mut pending: Vec<String> = roots.iter().map(|r| r.to_string()).collect();
    while let Some(name) = pending.pop() {
        if !reached.insert(name.clone()) {
            continue;
        }
        if let Some(schema) = schemas.get(&name) {
            collect_refs(schema, &mut pending);
        }
    }
    let defs: serde_json::Map<String, Value> = reached
        .iter()
        .filter_map(|name| {
            schemas
                .get(name)
                .map(|schema| (name.clone(), point_refs_at_defs(schema.clone())))
        })
        .collect();
    let one_of: Vec<Value> = roots
        .iter()
        .map(|root| json!({ "$ref": format!("#/$defs/{root}") }))
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": id,
        "description": description,
        "oneOf": one_of,
        "$defs": defs,
    })
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(target)) => {
                        if let Some(name) = target.strip_prefix(COMPONENT_REF) {
                            out.push(name.to_string());
                        }
                    }
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

fn point_refs_at_defs(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, v)| match (key.as_str(), v) {
                    ("$ref", Value::String(target)) => {
                        let target = match target.strip_prefix(COMPONENT_REF) {
                            Some(name) => format!("#/$defs/{name}"),
                            None => target,
                        };
                        (key, Value::String(target))
                    }
                    (_, v) => (key, point_refs_at_defs(v)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(point_refs_at_defs).collect()),
        other => other,
    }
}
