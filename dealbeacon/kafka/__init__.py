"""Kafka plumbing shared by the distributed stages (topic names and creation, lag) and the local broker."""
