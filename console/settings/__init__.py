"""The console's own settings: the list of clusters it watches, and its secrets
(kept in the OS keyring, never in the settings file)."""
