"""Interception on the primary: the replicating FUSE passthrough and its mount (DESIGN §5)."""
