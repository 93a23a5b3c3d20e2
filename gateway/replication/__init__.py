"""Replication (issue 11): the edge's outbox and uplink, the hub's ingest, the batch format."""
