"""The quality tests' warehouse: see tests/support/quality_home.py."""

from tests.support.quality_home import corrupted, simulated_home  # noqa: F401 (fixtures)
