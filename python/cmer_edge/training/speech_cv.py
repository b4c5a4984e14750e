"""`python -m cmer_edge.training.speech_cv`: the audio branch across speakers and corpora.

Protocols (7 MELD classes, UAR):
- `ravdess`: RAVDESS speaker-independent, 5 folds of 4 actors (2 male + 2 female: actors 4k+1..4k+4),
  the next fold's actors as dev (selection), the rest of RAVDESS + SAVEE + EmoDB as training data;
- `loco`: leave one corpus out (RAVDESS / SAVEE / EmoDB), a dev split of two training speakers;
- `savee`: leave one SAVEE speaker out (the other SAVEE speakers in training; dev as `loco`'s SAVEE plan):
  a new speaker of a corpus the model has heard, as a fourth SAVEE speaker would meet the default bundle.
Two settings, each scored on the same test clips: (a) `k0`, a single utterance from a stranger
(normalised with the training population's statistics only) and (b) `k10`, after the live
normaliser heard 10 other clips of the same speaker (random order, the scored clip not among them).
Per fold: the CM head (audio only; `training.edge` without MELD) over `--seeds` (with several, also
their ensemble, probabilities averaged, as the default bundle ships), and a logistic regression on the
same normalised features (the linear baseline). Feature columns of the cached
chain can be picked with `--columns` (e.g. eGeMAPS only) to compare feature sets on the dev folds;
head settings with `--edge-args` (e.g. "--hidden 32"), judged by the head's dev UAR, printed per fold.

    python -m cmer_edge.training.speech_cv --cache runs/edge_cache --protocol ravdess --seeds 0 1 2 \\
        --manifest ../shared/data/ravdess ../shared/data/savee ../shared/data/emodb --out runs/speech_cv
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cmer_edge.bundle import default_bundle_path, load_bundle
from cmer_edge.cli_common import cli_entry
from cmer_edge.data.speech_manifest import load_manifests
from cmer_edge.model.config import EMOTIONS
from cmer_edge.training import edge
from cmer_edge.training.edge_data import clip_cache_file, load_cached_features, manifests_features, online_normalised
from cmer_edge.training.metrics import score

log = logging.getLogger("cmer_edge")
# fitted on (every row normalised at k = 0, the training rows' mask) -> the map applied before the classifier
Transform = Callable[[np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]]


def ravdess_folds() -> list[tuple[list[str], list[str]]]:
    """(test speakers, dev speakers) per fold."""
    groups = [[f"RAVDESS/{a:02d}" for a in range(4 * k + 1, 4 * k + 5)] for k in range(5)]
    return [(groups[k], groups[(k + 1) % 5][:2]) for k in range(5)]


LOCO = {"RAVDESS": ["SAVEE/DC", "EmoDB/03"], "SAVEE": ["RAVDESS/01", "RAVDESS/02"],
        "EmoDB": ["RAVDESS/01", "RAVDESS/02"]}


def protocol_plans(protocol: str, clips, folds: list[int] | None = None) -> list[tuple[str, list[str], list[str]]]:
    """(plan name, test speakers, dev speakers) of a protocol, over these clips' speakers."""
    if protocol == "ravdess":
        return [(f"fold{k}", test, dev) for k, (test, dev) in enumerate(ravdess_folds()) if folds is None or k in folds]
    if protocol == "loco":
        return [(f"without_{c}", sorted({x.speaker_key for x in clips if x.corpus == c}), dev) for c, dev in LOCO.items()]
    if protocol == "savee":
        speakers = sorted({x.speaker_key for x in clips if x.corpus == "SAVEE"})
        return [(f"without_{s}", [s], LOCO["SAVEE"]) for s in speakers]
    raise ValueError(f"unknown protocol {protocol!r}")


def linear_baseline(cache: Path, manifest_paths, test: list[str], dev: list[str], columns: slice | None,
                    seed: int) -> dict[str, float]:
    """Logistic regression on the same live-normalised features (k = 0 and k = 10) as the head."""
    clips = load_manifests(manifest_paths, check_audio=False).clips
    data = load_cached_features(manifest_paths, cache)
    raw = data["x_a"][:, columns] if columns else data["x_a"]
    return linear_scores(raw, data["audio_ok"], [c.speaker_key for c in clips], np.array([c.meld_label for c in clips]),
                         test, dev, np.ones(len(clips), bool), seed)


def linear_scores(raw: np.ndarray, usable: np.ndarray, speakers: list[str], y: np.ndarray, test: list[str],
                  dev: list[str], trainable: np.ndarray, seed: int,
                  extra: list[tuple[np.ndarray, np.ndarray]] = (),
                  groups: tuple[np.ndarray, np.ndarray] | None = None,
                  prior_weights: np.ndarray | None = None, transform: Transform | None = None) -> dict[str, float]:
    """UAR of the logistic regression of `linear_predictions` on the test and dev speakers, k = 0 and 10."""
    held, dv = np.isin(speakers, test) & usable, np.isin(speakers, dev) & usable
    out = {}
    for k, pred in linear_predictions(raw, usable, speakers, y, test, dev, trainable, seed, extra, groups,
                                      prior_weights, transform).items():
        out[f"k{k}"] = score(y[held], pred[held], EMOTIONS).uar
        out[f"dev_k{k}"] = score(y[dv], pred[dv], EMOTIONS).uar
    return out


def linear_predictions(raw: np.ndarray, usable: np.ndarray, speakers: list[str], y: np.ndarray, test: list[str],
                       dev: list[str], trainable: np.ndarray, seed: int,
                       extra: list[tuple[np.ndarray, np.ndarray]] = (),
                       groups: tuple[np.ndarray, np.ndarray] | None = None,
                       prior_weights: np.ndarray | None = None,
                       transform: Transform | None = None) -> dict[int, np.ndarray]:
    """Every row's class by a logistic regression after k = 0 and 10 clips of its speaker ({k: [N]}; rows
    that are not usable get -1), trained on the usable rows of the `trainable` speakers outside `test` and
    `dev` after k = 0, 3 and 10 clips, plus the same rows of each `extra` (features, usable) copy of the
    clips (e.g. perturbed audio; each copy its own speaker).
    `groups` = (each row's true group, the group it is scored as; e.g. gender, known / predicted): the
    normaliser's prior comes from the training rows of that group instead of all of them.
    `prior_weights`: each row's weight in the prior's statistics (default: equal; e.g. 1 / its corpus's size).
    `transform(x, train)`: fitted on every row normalised at k = 0 and the training rows' mask, it returns
    the map applied to every normalised row before the classifier (e.g. a nuisance projection)."""
    from sklearn.linear_model import LogisticRegression

    held, dv = np.isin(speakers, test), np.isin(speakers, dev)
    train = ~held & ~dv & trainable & usable
    rng = np.random.default_rng(seed)
    true_group, scored_group = groups if groups is not None else (np.zeros(len(y)), np.zeros(len(y)))

    def normalised(x_raw, names, k, ok, group):
        out = np.zeros_like(x_raw)
        for g in np.unique(true_group[train]):
            rows = train & (true_group == g)
            these = ok & (group == g)
            w = None if prior_weights is None else prior_weights[rows]
            mean = np.average(raw[rows], axis=0, weights=w)
            var = np.average((raw[rows] - mean) ** 2, axis=0, weights=w)
            out[these] = online_normalised(x_raw, names, mean, var, k, rng, these)[these]
        return out

    xs, ys, mapped = [], [], None
    for k in (0, 3, 10):
        x = normalised(raw, speakers, k, usable, true_group)
        if mapped is None:  # fitted once, at k = 0
            mapped = transform(x, train) if transform is not None else (lambda rows: rows)
        xs.append(mapped(x[train]))
        ys.append(y[train])
        for j, (x_copy, ok_copy) in enumerate(extra):
            copies = [f"{s}@{j}" for s in speakers]
            xs.append(mapped(normalised(x_copy, copies, k, ok_copy, true_group)[train & ok_copy]))
            ys.append(y[train & ok_copy])
    clf = LogisticRegression(C=0.05, max_iter=3000, class_weight="balanced").fit(np.concatenate(xs), np.concatenate(ys))
    out = {}
    for k in (0, 10):
        x = normalised(raw, speakers, k, usable, scored_group)
        out[k] = np.where(usable, clf.predict(mapped(x)), -1)
    return out


@cli_entry
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmer_edge.training.speech_cv", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", type=Path, nargs="+", required=True)
    p.add_argument("--cache", type=Path, required=True, help="feature cache of training.edge (one file per manifest; computed first if missing)")
    p.add_argument("--protocol", choices=("ravdess", "loco", "savee"), default="ravdess")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--folds", type=int, nargs="*", default=None, help="ravdess: which folds (default all)")
    p.add_argument("--audio", nargs="+", default=list(edge.DEFAULT_AUDIO),
                   help="the clip feature chain (training.edge --audio), e.g. opensmile.eGeMAPSv02 whisper.tiny.en "
                        "whisper.tiny.en.l2")
    p.add_argument("--columns", default=None, help="feature columns START:STOP of the cached chain")
    p.add_argument("--linear-only", action="store_true", help="only the logistic-regression baseline")
    p.add_argument("--edge-args", default="",
                   help="more training.edge options for the head, e.g. '--hidden 32'; a lone flag needs the = form: "
                        "--edge-args=--class-weighting")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.columns and not args.linear_only:
        raise SystemExit("--columns is for the linear baseline only (add --linear-only)")
    encoders = edge.open_clip_encoders(args.audio, load_bundle(default_bundle_path()), 1)  # a bad --audio fails first
    clips = load_manifests(args.manifest, check_audio=False).clips  # then a bad manifest, before any work
    # every fold and the linear baseline read the same cached clip features: computed once, first
    # (a cache of another feature chain is recomputed: its key names the chain)
    if not all(clip_cache_file(args.cache, m).is_file() for m in args.manifest):
        log.warning("computing the clip features into %s (once)", args.cache)
    manifests_features(*encoders, args.manifest, args.cache)
    columns = slice(*[int(v) for v in args.columns.split(":")]) if args.columns else None
    rows = []
    for name, test, dev in protocol_plans(args.protocol, clips, args.folds):
        row = {"plan": name, "linear": linear_baseline(args.cache, args.manifest, test, dev, columns, 0)}
        if not args.linear_only:
            out = args.out / name
            code = edge.main(["--manifest", *map(str, args.manifest), "--cache", str(args.cache), "--audio",
                              *args.audio, "--holdout", *test, "--dev-speakers", *dev,
                              "--seeds", *map(str, args.seeds), "--out", str(out), *shlex.split(args.edge_args)])
            if code:
                return code
            several = len(args.seeds) > 1
            members = [out / f"seed{seed}" / "bundle" for seed in args.seeds] if several else [out / "bundle"]
            head = {"k0": [], "k10": [], "dev": []}
            for member in members:
                metrics = load_bundle(member).manifest.metrics
                for k in ("k0", "k10"):
                    head[k].append(metrics[f"holdout_{k}_audio"]["uar"])
                head["dev"].append(metrics["clips_dev_audio"]["uar"])  # the dev speakers, k = 0 and 10
            row["head"] = head
            if several:  # the seeds' ensemble (probabilities averaged), as the default ships
                metrics = load_bundle(out / "bundle").manifest.metrics
                row["ensemble"] = {"k0": metrics["holdout_k0_audio"]["uar"], "k10": metrics["holdout_k10_audio"]["uar"],
                                   "dev": metrics["clips_dev_audio"]["uar"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    ensembles = bool(rows) and "ensemble" in rows[0]
    table = ["| plan | linear dev (a) | linear dev (b) | linear (a) | linear (b) | CM head dev (a+b) | CM head (a) "
             "| CM head (b) |" + (" ensemble dev | ensemble (a) | ensemble (b) |" if ensembles else ""),
             "| --- " * (8 + 3 * ensembles) + "|"]
    for r in rows:
        h = r.get("head")
        cells = [f"{r['linear'][k]:.1f}" for k in ("dev_k0", "dev_k10", "k0", "k10")]
        cells += [f"{np.mean(h[k]):.1f} ± {np.std(h[k], ddof=1) if len(h[k]) > 1 else 0:.1f}"
                  for k in ("dev", "k0", "k10")] if h else ["-", "-", "-"]
        cells += [f"{r['ensemble'][k]:.1f}" for k in ("dev", "k0", "k10")] if ensembles else []
        table.append(f"| {r['plan']} | " + " | ".join(cells) + " |")
    if len(rows) > 1:
        mean = lambda key, k: np.mean([np.mean(r[key][k]) for r in rows])  # noqa: E731
        cells = [f"{mean('linear', k):.1f}" for k in ("dev_k0", "dev_k10", "k0", "k10")]
        cells += [f"{mean('head', k):.1f}" for k in ("dev", "k0", "k10")] if rows[0].get("head") else ["-", "-", "-"]
        cells += [f"{mean('ensemble', k):.1f}" for k in ("dev", "k0", "k10")] if ensembles else []
        table.append("| mean | " + " | ".join(cells) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps({"args": vars(args) | {"manifest": [str(m) for m in args.manifest],
                                                                           "cache": str(args.cache), "out": str(args.out)},
                                                       "rows": rows}, indent=2, default=str) + "\n")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
