"""Certificates and TLS credentials shared by agents, CLI and console (DESIGN §7): the
cluster CA, certificate roles, mTLS channel and server credentials. Part of the contract:
the console uses this, never the agent's internals."""
