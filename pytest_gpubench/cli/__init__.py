"""The ``pytest-gpubench`` console commands (devices, fit, compare); ``main`` is the script."""

from pytest_gpubench.cli.main import main

__all__ = ["main"]
