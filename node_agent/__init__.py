"""MirrorPair node agent."""

VERSION = "0.1.0"  # of this build: the agent and its data planes report it
