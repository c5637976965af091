"""The data path: one TLS stream per module pair, ordered frames, cumulative ACKs."""
