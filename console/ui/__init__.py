"""Thin PySide6 views over the Qt-free model (``console.model``). Widgets never touch the
transport: they read the session's model and ask the session to send commands."""
