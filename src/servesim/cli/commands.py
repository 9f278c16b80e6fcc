"""Imports every command module so that each registers itself on the app."""

from servesim.cli import latency  # noqa: F401
