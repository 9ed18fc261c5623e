"""Figures of the job report: matplotlib drawings rendered to PNG data URIs (no file, no network),
each with its text alternative."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_CURVE_CLASSES = 10  # one-vs-rest ROC/PR curves drawn for at most this many classes
MAX_BARS = 20


@dataclass(frozen=True)
class Plot:
    """A rendered figure: a ``data:image/png;base64,...`` URI and its text alternative."""

    uri: str
    alt: str


def short_text(value: Any, limit: int = 40) -> str:
    """A label for matplotlib: short, and with ``$`` escaped so it is never parsed as mathtext."""
    text = str(value)
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def new_figure(width: float = 6.4, height: float = 4.0, ncols: int = 1) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)  # render with Agg whatever the process's default backend is
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def png(fig: Any, alt: str) -> Plot:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return Plot("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"), alt)


def bars(labels: list[str], values: list[float], xlabel: str, alt: str, errors: list[float] | None = None) -> Plot:
    fig, (ax,) = new_figure(6.4, 0.6 + 0.3 * len(labels))
    positions = np.arange(len(labels))[::-1]
    ax.barh(positions, values, xerr=errors, color="#4c72b0", ecolor="#333333", capsize=2)
    ax.set_yticks(positions, [short_text(label) for label in labels])
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    return png(fig, alt)


def confusion(classes: list[Any], y: np.ndarray, proba: np.ndarray) -> tuple[list[list[int]], Plot]:
    from sklearn.metrics import confusion_matrix

    cm = confusion_matrix(y, proba.argmax(axis=1), labels=list(range(len(classes))))
    size = min(3.0 + 0.45 * len(classes), 12.0)
    fig, (ax,) = new_figure(size, size * 0.85)
    ax.imshow(cm, cmap="Blues")
    labels = [short_text(c, 20) for c in classes]
    ax.set_xticks(range(len(classes)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = cm.max() / 2 if cm.size else 0
    for (i, j), value in np.ndenumerate(cm):
        ax.text(j, i, str(value), ha="center", va="center", color="white" if value > threshold else "black")
    return [[int(v) for v in row] for row in cm], png(fig, "confusion matrix of the holdout rows")


def curves(classes: list[Any], y: np.ndarray, proba: np.ndarray) -> tuple[Plot | None, Plot | None, list[str]]:
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    if len(classes) == 2:
        wanted, notes = [1], [f"positive class: {classes[1]}"]
    else:
        wanted, notes = list(range(len(classes)))[:MAX_CURVE_CLASSES], ["one curve per class, one-vs-rest"]
        if len(classes) > MAX_CURVE_CLASSES:
            notes.append(f"only the first {MAX_CURVE_CLASSES} of {len(classes)} classes are drawn")
    shown = [k for k in wanted if 0 < int(np.sum(y == k)) < len(y)]  # a curve needs both outcomes
    if not shown:
        return None, None, ["the holdout rows hold a single class: ROC and precision–recall are undefined"]
    roc_fig, (roc_ax,) = new_figure(5.2, 4.4)
    pr_fig, (pr_ax,) = new_figure(5.2, 4.4)
    for k in shown:
        truth = (y == k).astype(int)
        fpr, tpr, _ = roc_curve(truth, proba[:, k])
        precision, recall, _ = precision_recall_curve(truth, proba[:, k])
        roc_ax.plot(fpr, tpr, lw=1.5, label=f"{short_text(classes[k], 20)} (AUC {auc(fpr, tpr):.3f})")
        ap = average_precision_score(truth, proba[:, k])
        pr_ax.plot(recall, precision, lw=1.5, label=f"{short_text(classes[k], 20)} (AP {ap:.3f})")
    roc_ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.02))
    pr_ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    for ax in (roc_ax, pr_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    return png(roc_fig, "ROC curves on the holdout"), png(pr_fig, "precision–recall curves on the holdout"), notes


def regression_plots(y: np.ndarray, pred: np.ndarray, target: str) -> tuple[Plot, Plot]:
    residuals = y - pred
    fig, (ax,) = new_figure(5.0, 4.0)
    ax.scatter(pred, residuals, s=12, alpha=0.6, color="#4c72b0")
    ax.axhline(0.0, color="black", lw=1)
    ax.set(xlabel=f"predicted {short_text(target)}", ylabel="residual (actual − predicted)")
    ax.grid(alpha=0.3)
    residual_plot = png(fig, "residuals against predictions on the holdout")
    fig, (ax,) = new_figure(4.6, 4.0)
    ax.scatter(y, pred, s=12, alpha=0.6, color="#4c72b0")
    low, high = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
    ax.plot([low, high], [low, high], ls="--", color="black", lw=1, label="perfect prediction")
    ax.set(xlabel=f"actual {short_text(target)}", ylabel=f"predicted {short_text(target)}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return residual_plot, png(fig, "predicted against actual values on the holdout")
