"""Result tables in the paper's Table 1/2 format (per-class F1 and weighted F1), mean ± std over runs."""

from __future__ import annotations

import numpy as np

from cmer_edge.training.metrics import Scores


def mean_std(values: list[float]) -> str:
    arr = np.asarray(values, np.float64)
    return f"{arr.mean():.2f} ± {arr.std(ddof=1) if len(arr) > 1 else 0.0:.2f}"


def scores_table(rows: dict[str, list[Scores]], metric: str = "weighted_f1") -> str:
    """Markdown table: one row per named run group, per-class F1 columns, then the headline metric."""
    labels = next(iter(rows.values()))[0].labels
    head = "| model | " + " | ".join(label.capitalize() for label in labels) + f" | {metric} |"
    lines = [head, "|" + " --- |" * (len(labels) + 2)]
    for name, runs in rows.items():
        cells = [mean_std([s.per_class_f1[label] for s in runs]) for label in labels]
        cells.append(mean_std([getattr(s, metric) for s in runs]))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_confusion(scores: Scores, path: str, title: str = "") -> None:
    """Row-normalised confusion matrix as a PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = scores.confusion.astype(np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(scores.labels)), scores.labels, rotation=45, ha="right")
    ax.set_yticks(range(len(scores.labels)), scores.labels)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"weighted F1 {scores.weighted_f1:.2f}")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
