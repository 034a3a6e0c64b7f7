"""Composition roots: the CLI, embedded mode (one process) and the distributed processes. The only place
where ingest, streams and sinks meet."""
