"""Ingest: the HTTP front door (Starlette). Depends on dealbeacon (contract, records, settings), never on
streams/ or sinks/; what happens after a durable hand-off is behind dealbeacon.core.handoff.Handoff."""
