"""`python -m cmer_edge.bundle.ensemble MEMBER... --out DIR`: one bundle whose head is an ensemble of
the members' heads (the runtime averages their probabilities, then applies the voice pool).

The members must be the same model apart from their weights: one head config, labels, window,
protocol, feature specs and audio normalisation, and the same other files (encoders, tokenizer,
audio prior: byte for byte). The ensemble keeps member 0's descriptive fields and records every
member (name, head sha256, metrics, recipe) under `ensemble`; its `metrics` are those of whoever
scores it (`training.edge --seeds` writes the ensemble's own), empty here. A member that is itself
an ensemble contributes all its heads. `runtime.voice_weight` and `text_weight` are dropped: fitted for another
model (`training.voice_trust` fits the ensemble's); `runtime.head_precision` is kept where every
member asks for the same.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cmer_edge.bundle.errors import BundleError
from cmer_edge.bundle.manifest import thaw
from cmer_edge.bundle.pack import MANAGED
from cmer_edge.bundle.store import Bundle, load_bundle, save_bundle, strip_absolute_paths

SAME = ("head", "labels", "window_utts", "protocol", "audio_norm", "features")


def _check_alike(members: list[Bundle]) -> None:
    first = members[0]
    ref = first.manifest.to_dict()
    others = {role: first.sha256(role) for role in first.manifest.files if role != "head"}
    for bundle in members[1:]:
        raw = bundle.manifest.to_dict()
        for key in SAME:
            if raw.get(key) != ref.get(key):
                raise BundleError(f"{bundle.path}: manifest field {key} differs from {first.path}'s "
                                  f"({raw.get(key)!r} vs {ref.get(key)!r}); an ensemble needs alike members")
        theirs = {role: bundle.sha256(role) for role in bundle.manifest.files if role != "head"}
        if theirs != others:
            differ = sorted(r for r in set(theirs) | set(others) if theirs.get(r) != others.get(r))
            raise BundleError(f"{bundle.path}: files {differ} differ from {first.path}'s; an ensemble shares "
                              "every file but the head")


def member_record(bundle: Bundle) -> dict[str, Any]:
    provenance = thaw(bundle.manifest.provenance)
    return {"bundle": bundle.manifest.name, "source": str(bundle.path), "heads": bundle.manifest.head_members,
            "head_sha256": bundle.sha256("head"), "metrics": thaw(bundle.manifest.metrics),
            "command": provenance.get("recipe", {}).get("command")}


def ensemble_bundle(members: list[str | Path | Bundle], out: str | Path, *, metrics: dict | None = None,
                    recipe: dict | None = None, local_paths: bool = False) -> Path:
    """Write the ensemble of `members` into `out` (see the module doc); `metrics` its own scores,
    `recipe` what built it (default: member 0's)."""
    bundles = [m if isinstance(m, Bundle) else load_bundle(m) for m in members]
    if not bundles:
        raise BundleError("an ensemble needs at least one member bundle")
    _check_alike(bundles)
    first = bundles[0]
    manifest = {k: v for k, v in first.manifest.to_dict().items() if k not in MANAGED}
    runtime = dict(manifest.pop("runtime", {}))
    runtime.pop("voice_weight", None)
    runtime.pop("text_weight", None)
    if len({b.manifest.runtime.head_precision for b in bundles}) > 1:  # lossless for some members only
        runtime.pop("head_precision", None)
    if runtime:
        manifest["runtime"] = runtime
    training = dict(manifest.get("training", {}))
    training.pop("voice_trust", None)
    manifest["training"] = training
    manifest["metrics"] = metrics or {}
    if recipe is not None:
        manifest["recipe"] = recipe
    record = {"members": [member_record(b) for b in bundles],
              "rule": "mean of the member heads' probabilities, then the voice pool"}
    manifest["ensemble"] = record if local_paths else strip_absolute_paths(record)  # a portable bundle
    heads = [t for b in bundles for t in b.head_members()]
    extra = {role: first.file(role) for role in first.manifest.files if role != "head"}
    return save_bundle(out, head_config=first.head_config, head_tensors=heads, manifest=manifest,
                       extra_files=extra, local_paths=local_paths)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmer_edge.bundle.ensemble", description=__doc__.splitlines()[0],
                                epilog="example: python -m cmer_edge.bundle.ensemble runs/edge/seed0/bundle "
                                       "runs/edge/seed1/bundle runs/edge/seed2/bundle --out runs/edge_ensemble")
    p.add_argument("members", type=Path, nargs="+", help="member bundles (alike but for their heads)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    try:
        out = ensemble_bundle(args.members, args.out, local_paths=True)
    except BundleError as exc:  # bad input: one line, exit 2 (as every cmer_edge command)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"ensemble of {load_bundle(out).manifest.head_members} heads -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
