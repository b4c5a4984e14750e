"""The embedded default ("edge") bundle shipped inside the package."""

from __future__ import annotations

from pathlib import Path

from cmer_edge.bundle.errors import BundleError

EDGE_BUNDLE_DIR = Path(__file__).resolve().parent.parent / "bundles" / "edge"


def default_bundle_path() -> Path:
    if not (EDGE_BUNDLE_DIR / "manifest.json").is_file():
        raise BundleError(f"the embedded default bundle is missing from this installation ({EDGE_BUNDLE_DIR}); "
                          "reinstall cmer_edge or pass --bundle DIR")
    return EDGE_BUNDLE_DIR
