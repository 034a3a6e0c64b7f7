"""OpenAPI 3.1 description of the public ingest endpoints (served at /openapi.json)."""
from __future__ import annotations

from dealbeacon import contract
from dealbeacon.settings import Settings


def _error(desc: str) -> dict:
    return {"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def openapi_document(settings: Settings) -> dict:
    schema = contract.json_schema(settings.max_events_per_batch)
    event = schema.pop("$defs")["event"]
    schema["properties"]["events"]["items"] = {"$ref": "#/components/schemas/Event"}
    schema.pop("$schema", None)
    schema.pop("$id", None)
    batch_body = {"schema": {"$ref": "#/components/schemas/Batch"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "dealbeacon ingest", "version": f"contract v{contract.VERSION}"},
        "paths": {
            "/v1/events": {"post": {
                "summary": "Send a batch of beacon events",
                "description": "JSON or text/plain (sendBeacon) body, optionally gzip (Content-Encoding or magic "
                               "bytes). 202 only after the events are durably handed to the next stage.",
                "requestBody": {"required": True, "content": {"application/json": batch_body, "text/plain": batch_body}},
                "responses": {
                    "202": {"description": "Handed off; per-event rejections listed",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchResult"}}}},
                    "400": _error("malformed_json, invalid_envelope, missing_field, invalid_type, bad_gzip ..."),
                    "401": _error("unknown_site"),
                    "403": _error("origin_not_allowed"),
                    "413": _error("body_too_large, decompressed_too_large, too_many_events"),
                    "415": _error("unsupported_encoding"),
                    "429": {"description": "rate_limited; honour Retry-After"},
                    "503": {"description": "the next stage cannot take events now; retry after Retry-After"},
                }}},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "Readiness (hand-off available)",
                                "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text format"}}}},
        },
        "components": {"schemas": {
            "Batch": schema,
            "Event": event,
            "BatchResult": {"type": "object", "required": ["accepted", "rejected"], "properties": {
                "accepted": {"type": "integer"},
                "rejected": {"type": "array", "items": {"type": "object", "properties": {
                    "index": {"type": "integer"}, "reason": {"type": "string"},
                    "field": {"type": "string"}, "detail": {"type": "string"}}}},
                "unverified": {"type": "array", "description": "accepted events whose stakeholder token did not "
                               "verify (token_expired, token_invalid, token_room_mismatch); stored as anonymous",
                               "items": {"type": "object", "properties": {
                                   "index": {"type": "integer"}, "reason": {"type": "string"}}}}}},
            "Error": {"type": "object", "properties": {
                "error": {"type": "string"}, "reason": {"type": "string"},
                "field": {"type": "string"}, "detail": {"type": "string"}}},
        }},
    }
