"""OpenAPI 3.1 description of every route of the ingest app (served at /openapi.json); a test compares it with
the app's routes and schemathesis exercises it."""
from __future__ import annotations

from dealbeacon.core import contract
from dealbeacon.core.settings import Settings

from . import bodies


def _error(desc: str) -> dict:
    return {"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _path(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1, "maxLength": 128}}


def _ok(schema: str) -> dict:
    return {"description": "accepted", "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _json_body(schema: str) -> dict:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


_token = {"name": "token", "in": "query", "required": False, "schema": {"type": "string", "maxLength": 512},
          "description": "the seller's page token (or Authorization: Bearer <token>)"}
_unavailable = {"description": "the next stage cannot take records now; retry after Retry-After. `kept` says how many "
                               "events of the request were stored all the same (0 unless a write had started)",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Unavailable"}}}}
_STR = {"type": "string"}


def _schemas(settings: Settings) -> dict:
    return {
        **bodies.schemas(settings.stage_list, settings.content_kind_list),
        "RoomAccepted": {"type": "object", "properties": {"accepted": {"type": "boolean"}, "room": {"type": "object"}}},
        "ClockAccepted": {"type": "object", "properties": {"accepted": {"type": "boolean"}, "now": {"type": "integer"}}},
        "ConfigAccepted": {"type": "object", "properties": {"accepted": {"type": "boolean"}, "page": _STR,
                                                            "token": _STR, "signing_secret": _STR}},
        "EraseAccepted": {"type": "object", "properties": {"accepted": {"type": "boolean"}, "erasure_id": _STR}},
        "SellerRooms": {"type": "object", "properties": {"rooms": {"type": "array", "items": {"type": "object"}},
                                                         "closed": {"type": "array", "items": {"type": "object"}}}},
        "SellerDeal": {"type": "object", "properties": {k: {"type": "array", "items": {"type": "object"}} for k in (
            "committee", "candidates", "matrix", "shares", "visits", "history", "alerts")}},
        "SellerAlerts": {"type": "object", "properties": {"alerts": {"type": "array", "items": {"type": "object"}}}},
        "Unavailable": {"type": "object", "properties": {"error": _STR, "detail": _STR, "kept": {"type": "integer"}}},
    }


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
                               "bytes). 202 only after the events are durably handed to the next stage. With "
                               "`Authorization: Bearer <site secret>` a server-side sender keeps its own timestamps "
                               f"(within the last {settings.max_backfill_days} days).",
                "security": [{}, {"siteSecret": []}],
                "requestBody": {"required": True, "content": {"application/json": batch_body, "text/plain": batch_body}},
                "responses": {
                    "202": {"description": "Handed off; per-event rejections listed",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchResult"}}}},
                    "400": _error("malformed_json, invalid_envelope, missing_field, invalid_type, bad_gzip ..."),
                    "401": _error("unknown_site"),
                    "403": _error("origin_not_allowed"),
                    "413": _error("body_too_large, decompressed_too_large, too_many_events"),
                    "415": _error("unsupported_encoding"),
                    "429": _error("rate_limited; honour Retry-After"),
                    "503": _unavailable,
                }},
                "options": {"summary": "CORS preflight", "responses": {"204": {"description": "allowed methods"}}}},
            "/v1/sites/{site}/rooms/{room_id}": {"put": {
                "summary": "Create or update a room (deal); fields left out keep their value",
                "security": [{"siteSecret": []}], "parameters": [_path("site"), _path("room_id")],
                "requestBody": _json_body("RoomUpdate"),
                "responses": {"202": _ok("RoomAccepted"), "400": _error("invalid_value, invalid_type, out_of_range ..."),
                              "401": _error("unauthorized"), "413": _error("body_too_large"),
                              "422": _error("store_rejected"), "503": _unavailable}}},
            "/v1/sites/{site}/clock": {"post": {
                "summary": "Run the time rules at `now` (servers started with DEALBEACON_CLOCK=external)",
                "security": [{"siteSecret": []}], "parameters": [_path("site")],
                "requestBody": _json_body("Clock"),
                "responses": {"202": _ok("ClockAccepted"), "400": _error("invalid_value, out_of_range"),
                              "401": _error("unauthorized"), "409": _error("clock_not_external"),
                              "413": _error("body_too_large"), "503": _unavailable}}},
            "/v1/sites/{site}/channels/{id}": {"put": {
                "summary": "Configure an alert channel (webhook, Slack, email)",
                "security": [{"siteSecret": []}], "parameters": [_path("site"), _path("id")],
                "requestBody": _json_body("Channel"),
                "responses": {"202": _ok("ConfigAccepted"), "400": _error("invalid_value, invalid_type, invalid_json"),
                              "401": _error("unauthorized"), "413": _error("body_too_large"), "503": _unavailable}}},
            "/v1/sites/{site}/sellers/{id}": {"put": {
                "summary": "Configure a seller's delivery preferences; answers the seller's page link",
                "security": [{"siteSecret": []}], "parameters": [_path("site"), _path("id")],
                "requestBody": _json_body("Seller"),
                "responses": {"202": _ok("ConfigAccepted"), "400": _error("invalid_value, invalid_type, invalid_json"),
                              "401": _error("unauthorized"), "413": _error("body_too_large"), "503": _unavailable}}},
            "/v1/sites/{site}/erase": {"post": {
                "summary": "Erase a person: their events, scores and alerts are removed or anonymised (audited)",
                "security": [{"siteSecret": []}], "parameters": [_path("site")],
                "requestBody": _json_body("Erase"),
                "responses": {"202": _ok("EraseAccepted"), "400": _error("invalid_value"),
                              "401": _error("unauthorized"), "413": _error("body_too_large"), "503": _unavailable}}},
            "/seller": {"get": {"summary": "The seller page (HTML); site, seller and token in the query",
                                "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}}}},
            "/v1/sites/{site}/sellers/{seller}/rooms": {"get": {
                "summary": "The seller's deals: open ones ordered by what needs attention (open alerts by severity, "
                           "then score trend), closed ones apart; band, trend, last buyer activity, stakeholders",
                "security": [{"sellerToken": []}, {"sellerBearer": []}],
                "parameters": [_path("site"), _path("seller"), _token],
                "responses": {"200": _ok("SellerRooms"), "403": _error("forbidden")}}},
            "/v1/sites/{site}/sellers/{seller}/rooms/{room_id}": {"get": {
                "summary": "One deal: committee and candidates, who x content (minutes, visits, completion, time per "
                           "page, where each reader stopped), shares, visits, score history, alerts",
                "security": [{"sellerToken": []}, {"sellerBearer": []}],
                "parameters": [_path("site"), _path("seller"), _path("room_id"), _token],
                "responses": {"200": _ok("SellerDeal"), "403": _error("forbidden"), "404": _error("not_found")}}},
            "/v1/sites/{site}/sellers/{seller}/alerts": {"get": {
                "summary": "The seller's open alerts (not acknowledged, not snoozed), newest first",
                "security": [{"sellerToken": []}, {"sellerBearer": []}],
                "parameters": [_path("site"), _path("seller"), _token],
                "responses": {"200": _ok("SellerAlerts"), "403": _error("forbidden")}}},
            "/v1/sites/{site}/sellers/{seller}/stream": {"get": {
                "summary": "Server-sent events: each new alert of the seller as it is raised",
                "security": [{"sellerToken": []}, {"sellerBearer": []}],
                "parameters": [_path("site"), _path("seller"), _token],
                "responses": {"200": {"description": "text/event-stream", "content": {"text/event-stream": {}}},
                              "403": _error("forbidden")}}},
            "/v1/sites/{site}/sellers/{seller}/alerts/{alert_id}/ack": {"post": {
                "summary": "Acknowledge one of the seller's own alerts",
                "security": [{"sellerToken": []}, {"sellerBearer": []}],
                "parameters": [_path("site"), _path("seller"), _path("alert_id"), _token],
                "responses": {"202": _ok("ConfigAccepted"), "403": _error("forbidden"),
                              "404": _error("not_found: no such alert among the seller's"), "503": _unavailable}}},
            "/v1/sites/{site}/sellers/{seller}/alerts/{alert_id}/snooze": {"post": {
                "summary": "Snooze one of the seller's own alerts for `hours` (default 24, at most 2160)",
                "security": [{"sellerToken": []}, {"sellerBearer": []}],
                "parameters": [_path("site"), _path("seller"), _path("alert_id"), _token],
                "requestBody": {"required": False, "content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/Snooze"}}}},
                "responses": {"202": _ok("ConfigAccepted"), "400": _error("invalid_value (hours)"),
                              "403": _error("forbidden"), "404": _error("not_found"), "503": _unavailable}}},
            "/v1/sites/{site}/quotas/{owner}": {"put": {
                "summary": "Set an owner's whole quota plan (a PUT replaces it): periods by label (2026, 2026-Q3, "
                           "2026-07) or start and end days; periods may not overlap; the owner must be a configured "
                           "seller or own a room",
                "security": [{"siteSecret": []}], "parameters": [_path("site"), _path("owner")],
                "requestBody": _json_body("Quotas"),
                "responses": {"202": _ok("ConfigAccepted"), "400": _error("out_of_range (amount), overlap, invalid_value"),
                              "401": _error("unauthorized"), "413": _error("body_too_large"),
                              "422": _error("unknown_owner"), "503": _unavailable}}},
            "/v1/sites/{site}/quotas": {"get": {
                "summary": "The current quota plans of the site's owners", "security": [{"siteSecret": []}],
                "parameters": [_path("site")],
                "responses": {"200": {"description": "quotas"}, "401": _error("unauthorized")}}},
            "/analytics": {"get": {"summary": "The KPI dashboard (HTML); ?site=KEY; HTTP Basic as an analyst of that site",
                                   "security": [{"analyst": []}],
                                   "responses": {"200": {"description": "HTML", "content": {"text/html": {}}},
                                                 "401": _error("unauthorized"), "403": _error("forbidden")}}},
            "/static/chart.umd.min.js": {"get": {"summary": "Chart.js 4.6.1 (MIT), for the dashboard",
                                                 "responses": {"200": {"description": "JavaScript"}}}},
            "/v1/sites/{site}/analytics": {"get": {
                "summary": "The dashboard's filter choices (owners, months) and chart list", "security": [{"analyst": []}],
                "parameters": [_path("site")],
                "responses": {"200": {"description": "index"}, "401": _error("unauthorized"), "403": _error("forbidden")}}},
            "/v1/sites/{site}/analytics/{chart}": {"get": {
                "summary": "One chart's data from the KPI views (funnel, cycle, outcomes, win_by_band, slippage, "
                           "coverage, content, dropoff); ?from=YYYY-MM&to=YYYY-MM&owner=O&format=json|csv",
                "security": [{"analyst": []}], "parameters": [_path("site"), _path("chart")] + [
                    {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                    for n in ("from", "to", "owner", "format")],
                "responses": {"200": {"description": "columns and rows, or CSV"}, "400": _error("invalid_value"),
                              "401": _error("unauthorized"), "403": _error("forbidden"), "404": _error("unknown_chart")}}},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "Readiness (hand-off available)",
                                "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text format"}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/snippet/v1/dealbeacon.js": {"get": {"summary": "The beacon (brotli or gzip when accepted, ETag, cacheable for a day)",
                                                  "responses": {"200": {"description": "JavaScript"},
                                                                "404": {"description": "beacon not built"}}}},
            "/demo": {"get": {"summary": "A demo sales room (embedded demo mode only)",
                              "responses": {"200": {"description": "HTML"}, "404": {"description": "not in demo mode"}}}},
        },
        "components": {"securitySchemes": {
            "siteSecret": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <site secret>"},
            "sellerBearer": {"type": "http", "scheme": "bearer", "description": "the seller's page token"},
            "sellerToken": {"type": "apiKey", "in": "query", "name": "token"},
            "analyst": {"type": "http", "scheme": "basic", "description": "an analyst of the SQL port"},
        }, "schemas": {
            **_schemas(settings),
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
