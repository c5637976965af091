"""The module's roles on this node: the primary's replicator modes, pairing, the secondary."""
