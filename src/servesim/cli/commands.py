"""Imports every command module so that each registers itself on the app."""

from servesim.cli import (  # noqa: F401
    calibrate,
    latency,
    queueing,
    report,
    search,
    simulate,
    validate,
)
