"""Project-wide test settings: every simulation in the suite checks its invariants."""

from __future__ import annotations

import os

# Read by servesim.engine.simulate: conservation and KV capacity are checked in every run.
os.environ["SERVESIM_CHECK_INVARIANTS"] = "1"
