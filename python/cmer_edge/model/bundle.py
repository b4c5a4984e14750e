"""Moved to `cmer_edge.bundle` (the one owner of the manifest); kept so older imports still work."""

from __future__ import annotations

from cmer_edge.bundle import (FORMAT, FORMAT_VERSION, HEAD_FILE, MANIFEST, Bundle, BundleError,  # noqa: F401
                              load_bundle, save_bundle, sha256_of)
