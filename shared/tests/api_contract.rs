//! The pinned contract: `docs/openapi.json` and the WebSocket JSON Schemas are what the code
//! generates (`flowscope_core::http::contract`). A handler or type changed without regenerating
//! them fails here, with the command that regenerates them (`scripts/contract.sh`, which also
//! regenerates the dashboard's types from the new document).

use std::path::PathBuf;

use flowscope_core::http::contract::{openapi_json, websocket_schemas};

const REGENERATE: &str = "scripts/contract.sh";

fn repo_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
}

/// With `FLOWSCOPE_UPDATE_CONTRACT=1` (what `scripts/contract.sh` sets) writes the file; otherwise
/// fails when the committed one differs, naming the first differing line.
fn check(name: &str, generated: &str) {
    let path = repo_file(name);
    if std::env::var_os("FLOWSCOPE_UPDATE_CONTRACT").is_some_and(|v| v == "1") {
        std::fs::write(&path, generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed == generated {
        return;
    }
    let line = committed
        .lines()
        .zip(generated.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
    panic!(
        "{name} differs from what the code generates (first difference at line {}):\n  committed: {}\n  generated: {}\n\
         The API or WebSocket contract changed. If that is intended, regenerate the contract and the \
         dashboard's types with:\n\n    {REGENERATE}\n\nand commit the result (the dashboard must still build).",
        line + 1,
        committed.lines().nth(line).unwrap_or("<end of file>"),
        generated.lines().nth(line).unwrap_or("<end of file>"),
    );
}

#[test]
fn openapi_document_is_what_the_handlers_generate() {
    check("docs/openapi.json", &openapi_json());
}

#[test]
fn websocket_schemas_are_what_the_message_types_generate() {
    let (client, server) = websocket_schemas();
    check("docs/websocket.client.schema.json", &client);
    check("docs/websocket.server.schema.json", &server);
}
