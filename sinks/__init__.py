"""Sinks: ClickHouse schema, stores (chdb, server) and the read-only SQL port."""
