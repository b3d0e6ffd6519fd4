"""Confusion matrix of the most confused departments, as numbers (metrics.json) and as a PNG.

The labels shown are the ``top`` labels involved in the most errors (as gold or as prediction), so a
39-department roster still gives a readable picture. Department names are drawn in a CJK font when one
is installed (e.g. Debian's ``fonts-wqy-microhei``); without one the roster codes are drawn instead
(Chinese text in a Latin font would show empty boxes).
"""
from __future__ import annotations

from collections import Counter
from functools import lru_cache
from pathlib import Path

# Families that cover simplified Chinese, most preferred first.
CJK_FAMILIES = ("WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC",
                "Source Han Sans CN", "Sarasa Gothic SC", "Droid Sans Fallback", "Microsoft YaHei", "SimHei", "PingFang SC",
                "Heiti SC", "AR PL UMing CN", "AR PL UKai CN", "Noto Serif CJK SC")
# File-name hints for CJK fonts installed after matplotlib built its font cache.
CJK_FILE_HINTS = ("wqy", "notosanscjk", "notoserifcjk", "notosanssc", "sourcehansans", "sarasa", "droidsansfallback",
                  "msyh", "simhei", "pingfang", "uming", "ukai")


@lru_cache(maxsize=1)
def find_cjk_font() -> str | None:
    """The family name of an installed font that draws Chinese, or None.

    Looks in matplotlib's font list first, then among the system's font files (a font installed after
    matplotlib cached its list is registered on the fly)."""
    from matplotlib import font_manager as fm

    known = {f.name for f in fm.fontManager.ttflist}
    for fam in CJK_FAMILIES:
        if fam in known:
            return fam
    for path in sorted(fm.findSystemFonts()):
        if not any(h in Path(path).name.lower() for h in CJK_FILE_HINTS):
            continue
        try:
            fm.fontManager.addfont(path)
            name = fm.FontProperties(fname=path).get_name()
        except Exception:  # an unreadable font file: try the next one
            continue
        if name:
            return name
    return None


def confusion_matrix(gold: list[str], pred: list[str], top: int = 12) -> dict:
    """Counts (rows: gold label, columns: predicted label) over the ``top`` labels with the most errors.

    Returns ``labels``, ``matrix``, ``errors_shown`` (off-diagonal errors inside the matrix) and
    ``errors_total``. Labels are ordered by their number of errors, then by name."""
    involved: Counter = Counter()
    errors_total = 0
    for g, p in zip(gold, pred):
        if g != p:
            errors_total += 1
            involved[g] += 1
            involved[p] += 1
    labels = [lab for lab, _ in sorted(involved.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
    pos = {lab: i for i, lab in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, pred):
        if g in pos and p in pos:
            matrix[pos[g]][pos[p]] += 1
    shown = sum(matrix[i][j] for i in range(len(labels)) for j in range(len(labels)) if i != j)
    return {"labels": labels, "matrix": matrix, "errors_shown": shown, "errors_total": errors_total}


def tick_labels(labels: list[str], names: dict[str, str] | None, font: str | None) -> list[str]:
    """Department names (shortened) when a CJK font can draw them, else the codes."""
    if not font or not names:
        return list(labels)
    out = []
    for lab in labels:
        name = (names.get(lab) or lab).split("（")[0]  # 区城市管理委员会（区城管综合执法局） -> 区城市管理委员会
        out.append(name if len(name) <= 12 else name[:11] + "…")
    return out


def plot_confusion(cm: dict, path: Path, names: dict[str, str] | None = None, font: str | None = "auto") -> list[str]:
    """Draw ``cm`` (from :func:`confusion_matrix`) to ``path``; returns the tick labels drawn.

    ``font="auto"`` looks for a CJK font (:func:`find_cjk_font`); ``None`` forces roster codes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    if font == "auto":
        font = find_cjk_font()
    labels = cm["labels"]
    ticks = tick_labels(labels, names, font)
    m = np.array(cm["matrix"], dtype=float).reshape(len(labels), len(labels))
    rc = {"font.family": "sans-serif", "font.sans-serif": [font, "DejaVu Sans"]} if font else {}
    size = max(4.5, 0.55 * len(labels) + 2.5)
    with plt.rc_context(rc):
        fig, ax = plt.subplots(figsize=(size + 1.0, size))
        if len(labels):
            im = ax.imshow(m, cmap="Blues", vmin=0, vmax=max(1.0, m.max()))
            for i in range(len(labels)):
                for j in range(len(labels)):
                    if m[i, j]:
                        dark = m[i, j] > 0.6 * m.max()
                        ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=8,
                                color="white" if dark else ("#b22222" if i != j else "#1a1a1a"))
            ax.set_xticks(range(len(labels)), ticks, rotation=55, ha="right", fontsize=8)
            ax.set_yticks(range(len(labels)), ticks, fontsize=8)
            fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
        else:
            ax.text(0.5, 0.5, "no errors", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_xlabel("predicted lead")
        ax.set_ylabel("gold lead")
        ax.set_title(f"Most confused departments ({cm['errors_shown']} of {cm['errors_total']} errors shown)", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return ticks
