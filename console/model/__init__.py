"""The console's cluster model: pure Python (no Qt, no gRPC calls).

It turns the agents' latest snapshots (or the reason a node does not answer) into
what the operator sees: a state, readiness and colour per module per node, badges,
where the VIP is, whether a migration can work, and alerts from successive snapshots.
"""
