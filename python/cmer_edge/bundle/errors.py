"""The one error type of the bundle layer."""

from __future__ import annotations


class BundleError(ValueError):
    """A bundle that is missing, corrupt, unsafe, or does not match what loads it."""
