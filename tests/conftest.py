"""Shared pytest configuration."""

from __future__ import annotations

import os

from hypothesis import settings

# --- hypothesis profiles (property tests: tests/test_properties.py) ---------------------------
# "charter" is what developers and CI run: sized so the property tests take well under a minute
# on 2 cores, with no deadline (a slow CI machine must not turn into a flaky failure).
# "charter-deep" is for a longer local hunt: CHARTER_HYPOTHESIS_PROFILE=charter-deep pytest ...
settings.register_profile("charter", max_examples=100, deadline=None, print_blob=True)
settings.register_profile("charter-deep", parent=settings.get_profile("charter"), max_examples=2000)
settings.load_profile(os.environ.get("CHARTER_HYPOTHESIS_PROFILE", "charter"))
