"""Reintegration: bringing a returning secondary's copy up to date (docs/replication.md)."""
