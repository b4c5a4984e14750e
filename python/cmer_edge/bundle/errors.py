"""The one error type of the bundle layer."""

from __future__ import annotations


class BundleError(ValueError):
    """A bundle that is missing, corrupt, unsafe, or does not match what loads it."""


class ModelNotInBundle(ValueError):
    """The bundle has no such model (e.g. a text-only head has no audio encoder); the message says why."""
