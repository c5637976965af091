"""First-time setup and later configuration changes (issue 12): the Qt-free wizard flow,
the backend it talks to the agents through, and the cluster configuration it writes."""
