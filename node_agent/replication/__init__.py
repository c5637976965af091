"""One module's replication (DESIGN §5, docs/replication.md), laid out by what the parts are.

- ``module_repl``: ``ModuleReplication``, what the engine drives (roles, mounts, the stream,
  the resync, status); ``ops``: the replicated operations; ``replicator``: the one interface
  between the FUSE layer and the data path.
- ``fuse/``: interception on the primary (the replicating FUSE passthrough, its mount, the
  order of changes, writebacks, what lies under a mountpoint).
- ``stream/``: the data path (wire format, TLS transport and link, sender, receiver).
- ``tracking/``: change records (zones, bitmap, activity log, journal, peer doubt).
- ``local/``: work on a local copy (the secondary's applier, tree scans and zone hashes,
  early writeback, Linux calls the os module lacks).
- ``resync/``: reintegration (plan, tracker, the primary's session, the secondary's server,
  its messages, progress, quarantine).
- ``roles/``: the primary's replicator modes, pairing, the secondary side.

Imports go one way, never in a circle: tracking uses ops; local uses tracking; fuse uses
local and the replicator interface; stream uses local; resync uses stream, local and
tracking; roles use all but fuse; module_repl puts everything together.
"""
