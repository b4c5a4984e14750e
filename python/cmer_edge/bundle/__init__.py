"""Bundles: the typed manifest (`Manifest`), safe loading (`load_bundle`), saving, packing.

The one owner of manifest.json: everything else receives a `Bundle` (path + `Manifest`) and never
parses the JSON itself. Torch-free.
"""

from __future__ import annotations

from cmer_edge.bundle.default import default_bundle_path
from cmer_edge.bundle.errors import BundleError, ModelNotInBundle
from cmer_edge.bundle.files import sha256_of
from cmer_edge.bundle.manifest import FORMAT, FORMAT_VERSION, AudioFeatures, AudioPart, Manifest, TextFeatures
from cmer_edge.bundle.store import HEAD_FILE, MANIFEST, Bundle, add_artifacts, load_bundle, read_manifest, save_bundle

__all__ = ["FORMAT", "FORMAT_VERSION", "HEAD_FILE", "MANIFEST", "AudioFeatures", "AudioPart", "Bundle",
           "BundleError", "Manifest", "ModelNotInBundle", "TextFeatures", "add_artifacts", "default_bundle_path", "load_bundle",
           "read_manifest", "save_bundle", "sha256_of"]
