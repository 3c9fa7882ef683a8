//! The API's OpenAPI 3.1 description, served at `GET /api/v1/openapi.json`
//! and committed as `schemas/openapi.json` (a test keeps the two equal, as
//! it does the plan schema).

use serde_json::{Value, json};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

fn id_param() -> Value {
    json!({
        "name": "id", "in": "path", "required": true,
        "description": "An execution's id: its run's id (`r20261203-101500`, `r20261203-101500-2`).",
        "schema": { "type": "string", "pattern": "^r[0-9]{8}-[0-9]{6}(-[0-9]+)?$" }
    })
}

/// The description, as JSON.
pub fn openapi() -> Value {
    let auth = json!([{ "bearer": [] }]);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "pare execution API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Execute reviewed plan files through the same engine, state store and lock as the pare CLI. Errors are {\"error\": {\"code\", \"message\"}}; times are RFC 3339. Scopes: read, plan (dry runs), apply (executions, cancel), rollback."
        },
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "A token made by `pare serve token add`; without a tokens file the server is loopback-only and takes none." }
            },
            "schemas": {
                "Error": {
                    "type": "object", "required": ["error"],
                    "properties": { "error": {
                        "type": "object", "required": ["code", "message"],
                        "properties": {
                            "code": { "type": "string", "examples": ["serve::plan-changed", "state::locked", "plan::invalid"] },
                            "message": { "type": "string" },
                            "diagnostics": { "type": "array", "description": "A plan's located errors (plan::invalid).", "items": { "type": "object" } },
                            "blocked": { "type": "array", "description": "Blocked recommendations and why (apply::blocked).", "items": { "type": "object" } }
                        }
                    } }
                },
                "ExecuteRequest": {
                    "type": "object", "required": ["sha256"], "additionalProperties": false,
                    "description": "One of `plan` and `saved`.",
                    "properties": {
                        "plan": { "type": "string", "description": "A plan file, relative to the server's plans root." },
                        "saved": { "type": "object", "description": "A plan saved by `pare plan --out` (its JSON); its plan file must be under the plans root, as named from the server's working directory. Proven as `pare apply SAVED` proves it, and applied once." },
                        "sha256": { "type": "string", "description": "The sha256 of the plan file as the caller reviewed it." },
                        "dry_run": { "type": "boolean", "default": false, "description": "Answer with the preview; change nothing." }
                    }
                },
                "Execution": {
                    "type": "object", "required": ["id", "kind", "status"],
                    "properties": {
                        "id": { "type": "string" },
                        "kind": { "enum": ["apply", "rollback", "accept"] },
                        "status": { "enum": ["running", "applied", "failed", "cancelling", "cancelled", "rolling_back", "rolled_back", "rollback_incomplete", "interrupted", "completed", "incomplete", "accepted"] },
                        "rolled_back_by": { "type": ["string", "null"], "description": "The rollback execution that undid this apply run." },
                        "plan": { "type": "string" },
                        "plan_sha256": { "type": "string" },
                        "progress": { "type": "object", "properties": {
                            "steps_done": { "type": "integer" },
                            "steps_total": { "type": "integer" },
                            "recommendations": { "type": "array", "items": { "type": "object", "properties": {
                                "id": { "type": "string" }, "steps_done": { "type": "integer" }, "steps_total": { "type": "integer" }
                            } } }
                        } },
                        "current_steps": { "type": "array", "items": { "type": "object", "properties": {
                            "rec": { "type": "string" }, "step": { "type": "integer" }, "op": { "type": "string" }
                        } } },
                        "savings": { "type": "object", "properties": {
                            "planned_monthly_usd": { "type": "number" },
                            "realised_monthly_usd": { "type": ["number", "null"] }
                        } },
                        "started_at": { "type": "string", "format": "date-time" },
                        "finished_at": { "type": ["string", "null"], "format": "date-time" },
                        "duration_s": { "type": ["number", "null"] },
                        "left": { "type": "array", "items": { "type": "string" }, "description": "What is left to do, and the command that does it." }
                    }
                }
            }
        },
        "paths": {
            "/healthz": { "get": {
                "summary": "Liveness.", "security": [],
                "responses": { "200": { "description": "The server answers." } }
            } },
            "/metrics": { "get": {
                "summary": "Prometheus text: runs, steps, run durations, realised savings, lock waits and conflicts, requests.",
                "security": auth,
                "responses": { "200": { "description": "text/plain; version=0.0.4" }, "401": error_response("No valid token."), "403": error_response("The token lacks `read`.") }
            } },
            "/api/v1/openapi.json": { "get": {
                "summary": "This document.", "security": [],
                "responses": { "200": { "description": "OpenAPI 3.1" } }
            } },
            "/api/v1/executions": {
                "post": {
                    "summary": "Preview (dry_run) or start an apply run of a plan under the plans root.",
                    "description": "Scope `plan` for a dry run, `apply` otherwise. An `Idempotency-Key` header makes a retried request answer with the same execution, never a second run. The checks of `pare apply` apply: approvals, blocked recommendations, max_changes, an unresolved run.",
                    "security": auth,
                    "parameters": [ { "name": "Idempotency-Key", "in": "header", "required": false, "schema": { "type": "string" } } ],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ExecuteRequest" } } } },
                    "responses": {
                        "200": { "description": "The preview (dry_run: the JSON of `pare plan --format json`), or `nothing_to_do`." },
                        "202": { "description": "Started; `Location` names the execution.", "content": { "application/json": { "schema": { "type": "object", "properties": { "id": { "type": "string" }, "kind": { "type": "string" }, "status": { "type": "string" } } } } } },
                        "400": error_response("The path is outside the plans root."),
                        "403": error_response("The token lacks the scope; or a request from a web page (serve::cross-origin), or addressed to a name that is not loopback while the server has no tokens (serve::bad-host)."),
                        "415": error_response("The body is not application/json (serve::not-json)."),
                        "401": error_response("No valid token."),
                        "404": error_response("No such plan file."),
                        "409": error_response("The lock is held (state::locked), an earlier run is unresolved, or the plan changed since it was reviewed (serve::plan-changed)."),
                        "413": error_response("The body is over 1 MiB."),
                        "422": error_response("Malformed JSON, an invalid plan (with its diagnostics), a blocked one (with what blocks it), or an Idempotency-Key reused for another request (serve::idempotency-key-reused).")
                    }
                },
                "get": {
                    "summary": "Executions, newest first (those this server started, and every run in the state's history).",
                    "security": auth,
                    "parameters": [
                        { "name": "status", "in": "query", "schema": { "type": "string" } },
                        { "name": "kind", "in": "query", "schema": { "type": "string" } },
                        { "name": "plan", "in": "query", "schema": { "type": "string" } },
                        { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 500, "default": 50 } },
                        { "name": "cursor", "in": "query", "schema": { "type": "string" }, "description": "The `next_cursor` of the page before." }
                    ],
                    "responses": { "200": { "description": "A page.", "content": { "application/json": { "schema": { "type": "object", "properties": {
                        "executions": { "type": "array", "items": { "$ref": "#/components/schemas/Execution" } },
                        "next_cursor": { "type": ["string", "null"] }
                    } } } } }, "400": error_response("A bad filter, limit or cursor.") }
                }
            },
            "/api/v1/executions/{id}": { "get": {
                "summary": "An execution's status, progress, current steps, savings and timings.",
                "security": auth, "parameters": [id_param()],
                "responses": { "200": { "description": "The execution.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Execution" } } } }, "404": error_response("No such execution.") }
            } },
            "/api/v1/executions/{id}/cancel": { "post": {
                "summary": "Ctrl-C: no new steps start, those under way finish, the run is recorded cancelled.",
                "security": auth, "parameters": [id_param()],
                "responses": { "202": { "description": "Cancelling." }, "404": error_response("No such execution."), "409": error_response("It has finished, or it is a rollback (serve::not-cancellable).") }
            } },
            "/api/v1/executions/{id}/rollback": { "post": {
                "summary": "Roll an execution back (a new execution of kind rollback), with the CLI's drift check and six-hour rule.",
                "security": auth, "parameters": [id_param()],
                "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false, "properties": { "dry_run": { "type": "boolean" } } } } } },
                "responses": { "200": { "description": "dry_run: what would be undone." }, "202": { "description": "Started; `Location` names the rollback's execution." }, "404": error_response("No such execution."), "409": error_response("Nothing to undo, or the lock is held.") }
            } },
            "/api/v1/executions/{id}/logs": { "get": {
                "summary": "The run's events (JSON, each with a `seq`) as NDJSON, or followed live with `Accept: text/event-stream`.",
                "security": auth,
                "parameters": [id_param(), { "name": "after", "in": "query", "schema": { "type": "integer", "minimum": 0 }, "description": "The seq of the last event read." }],
                "responses": { "200": { "description": "application/x-ndjson, or text/event-stream." }, "404": error_response("No such execution, or its events are not kept (it was not started by this server process).") }
            } }
        }
    })
}
