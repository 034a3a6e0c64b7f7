"""Shared floor of every stage: the event contract, inter-stage records, tokens, sites, analysts, settings,
the clock and the hand-off seam. Imports no stage (an import-linter contract checks it)."""
