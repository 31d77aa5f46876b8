"""Figures in the paper's layouts, written as PNG and PDF."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: experiments run on servers and Colab alike
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from poz_jax.analysis import stats  # noqa: E402
from poz_jax.core.nulls import null_band  # noqa: E402
from poz_jax.io.files import atomic_save  # noqa: E402


def save_figure(fig, stem: str | Path) -> list[Path]:
    """Write ``fig`` to ``stem.png`` (150 dpi) and ``stem.pdf`` atomically; returns the paths."""
    paths = [Path(f"{stem}.png"), Path(f"{stem}.pdf")]
    for p in paths:
        atomic_save(p, lambda tmp: fig.savefig(tmp, dpi=150, bbox_inches="tight"))
    plt.close(fig)
    return paths


def figure1(
    percent_kept: np.ndarray,
    fit_mean: np.ndarray,
    fit_sd: np.ndarray,
    max_poz_mean: np.ndarray,
    max_poz_sd: np.ndarray,
    title: str = "",
    n_networks: int | None = None,
):
    """Figure 1: fit R^2 (left axis, blue) and the kept nodes' max PoZ in % (right axis, orange).

    All arrays are ``(n_levels,)``; ``percent_kept`` in % (100 .. about 10),
    the levels' actual ``100 k / n_nodes``, which also label the x ticks;
    PoZ as fractions. Lines are means over networks, bands +-1 sd.
    """
    percent_kept = np.asarray(percent_kept, float)
    over = f" over {n_networks} networks" if n_networks else ""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(percent_kept, fit_mean, "o-", color="tab:blue", label="fit to the unpruned RSM")
    ax.fill_between(
        percent_kept,
        np.clip(fit_mean - fit_sd, 0, 1),
        np.clip(fit_mean + fit_sd, 0, 1),
        color="tab:blue",
        alpha=0.2,
        linewidth=0,
    )
    ax.set_xlabel("% of nodes kept")
    ax.set_ylabel("fit (R$^2$)", color="tab:blue")
    ax.tick_params(axis="y", colors="tab:blue")
    ax.set_xlim(max(percent_kept) + 2, min(percent_kept) - 2)
    ax.set_xticks(percent_kept)
    ax.set_xticklabels([f"{p:.0f}" for p in percent_kept])
    ax.set_ylim(0, 1.04)  # R^2 lies in [0, 1], and its sd band is clipped to it
    right = ax.twinx()
    poz_m, poz_s = 100 * np.asarray(max_poz_mean), 100 * np.asarray(max_poz_sd)
    right.plot(percent_kept, poz_m, "s-", color="tab:orange", label="max PoZ of the kept nodes")
    right.fill_between(
        percent_kept, poz_m - poz_s, poz_m + poz_s, color="tab:orange", alpha=0.2, linewidth=0
    )
    right.set_ylabel("max PoZ of the kept nodes (%)", color="tab:orange")
    right.tick_params(axis="y", colors="tab:orange")
    right.set_ylim(0, 104)
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    handles.append(plt.Rectangle((0, 0), 1, 1, color="0.5", alpha=0.3, linewidth=0))
    labels = [h.get_label() for h in handles[:-1]] + [f"band: mean ± 1 sd{over}"]
    ax.legend(handles, labels, loc="lower left", frameon=False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


POZ_TICKS = (0.9, 0.8, 0.7, 0.6, 0.5)  # Figure 3's ticks: where the kept PoZ falls below these


def poz_ticks(poz_values, levels: tuple[float, ...] = POZ_TICKS) -> np.ndarray:
    """% of nodes kept when the highest kept PoZ first drops to each of ``levels``.

    ``poz_values``: PoZ fractions of any shape (several networks' nodes pooled).
    """
    p = np.asarray(poz_values).ravel()
    return np.array([100.0 * np.mean(p <= q) for q in levels])


def figure2(poz_by_set: dict[str, np.ndarray], title: str = ""):
    """Figure 2: cumulative PoZ histogram per set: % of nodes with PoZ at or below x.

    ``poz_by_set`` maps set names to ``(n_nodes,)`` PoZ fractions, or to
    ``(S, n_nodes)`` for ``S`` networks: then the line is the networks' mean
    and the band their mean +- 1 sd.
    """
    fig, ax = plt.subplots(figsize=(6.0, 4.5))
    grid = np.linspace(0.0, 1.0, 101)
    colors = plt.get_cmap("tab10").colors
    banded = False
    for i, (name, p) in enumerate(poz_by_set.items()):
        p = np.sort(np.atleast_2d(np.asarray(p)), axis=-1)
        cum = np.stack([100 * np.searchsorted(row, grid, side="right") / p.shape[1] for row in p])
        mean = cum.mean(0)
        ax.plot(100 * grid, mean, color=colors[i % 10], label=name)
        if len(cum) > 1:
            sd = stats.sd(cum, axis=0)
            ax.fill_between(
                100 * grid, mean - sd, mean + sd, color=colors[i % 10], alpha=0.2, linewidth=0
            )
            banded = True
    if banded:
        n = len(np.atleast_2d(next(iter(poz_by_set.values()))))
        ax.fill_between([], [], [], color="0.5", alpha=0.3, label=f"+- 1 sd over {n} networks")
    ax.set_xlabel("PoZ (% of the set's images on which the node is silent)")
    ax.set_ylabel("% of nodes with PoZ at or below")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 101)
    ax.legend(frameon=False)
    ax.set_title(title or "Cumulative PoZ per stimulus set")
    fig.tight_layout()
    return fig


def figure3(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    ticks: dict[str, np.ndarray] | None = None,
    title: str = "",
    null_bands: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    tick_labels: tuple[float, ...] = (),
    lines: dict[str, dict[str, float]] | None = None,
):
    """Figure 3: fit vs % of nodes kept, a line per set, a dot at each set's maximum.

    ``curves`` maps set names to ``(percent_kept, fit)``, each ``(n_levels,)``
    with ``percent_kept`` decreasing; ``null_bands`` optionally maps set
    names to ``(low, high)`` ``(n_levels,)``: the band holding 95% of the
    random-pruning null, drawn in the set's colour. ``ticks`` optionally maps
    set names to the % kept at which the kept nodes' max PoZ falls to each
    of ``tick_labels`` (fractions), marked on the curve and labelled.
    ``lines`` optionally maps set names to ``{label: fit}``: horizontal
    reference lines in the set's colour (a noise ceiling, a pixel floor), one
    line style per label; when one lies far above every curve, the y axis is
    logarithmic so the curves stay readable beside it. The x axis is
    logarithmic, so levels below 1% kept stay apart.
    """
    fig, ax = plt.subplots(figsize=(10.0, 5.5))
    colors = plt.get_cmap("tab10").colors
    for i, (name, (kept, fit)) in enumerate(curves.items()):
        kept, fit = np.asarray(kept, float), np.asarray(fit, float)
        color = colors[i % 10]
        if null_bands and name in null_bands:
            lo, hi = (np.asarray(b, float) for b in null_bands[name])
            ax.fill_between(kept, lo, hi, color=color, alpha=0.15, linewidth=0)
        ax.plot(kept, fit, lw=2, color=color, label=name)
        best = stats.best(fit)
        if best is not None:
            ax.plot(kept[best], fit[best], "o", color=color, mec="black", ms=8, zorder=5)
        marks = np.asarray((ticks or {}).get(name, []), float)
        ok = np.isfinite(fit)
        if marks.size and ok.sum() > 1:
            # Markers are sized in points, so the ticks look the same on any y scale.
            ys = np.interp(marks, kept[ok][::-1], fit[ok][::-1])
            ax.plot(marks, ys, "|", color=color, mec="black", ms=10, mew=1.2, zorder=4)
            last = None
            for q, xm, ym in zip(tick_labels, marks, ys, strict=False):
                # Label a tick only where it stands apart from the last label (log x).
                if last is None or abs(np.log10(xm) - np.log10(last)) > 0.06:
                    ax.annotate(
                        f"{100 * q:.0f}",
                        (xm, ym),
                        xytext=(0, 7),
                        textcoords="offset points",
                        ha="center",
                        fontsize=7,
                    )
                    last = xm
    # A reference far above every curve (a noise ceiling) would flatten them
    # on a linear axis: the y axis is then logarithmic, so both can be read.
    top = max(
        [float(np.nanmax(np.asarray(f, float), initial=0.0)) for _, f in curves.values()]
        + [
            float(np.nanmax(np.asarray(b[1], float), initial=0.0))
            for b in (null_bands or {}).values()
        ]
    )
    refs = [y for d in (lines or {}).values() for y in d.values()]
    log_y = bool(refs) and max(refs) > 3 * top > 0
    styles = {}
    for i, name in enumerate(curves):
        for label, y in (lines or {}).get(name, {}).items():
            style = styles.setdefault(label, ("--", ":", "-.", (0, (5, 1)))[len(styles) % 4])
            ax.axhline(y, color=colors[i % 10], ls=style, lw=1.2)
    for label, style in styles.items():
        ax.plot([], [], ls=style, color="black", lw=1.2, label=label)
    ax.plot([], [], "o", color="white", mec="black", ms=8, label="each set's maximum")
    if tick_labels:
        qs = ", ".join(f"{100 * q:.0f}" for q in tick_labels)
        ax.plot([], [], "|", color="black", ms=10, mew=1.2, label=f"max PoZ kept falls to {qs}%")
    if null_bands:
        ax.fill_between([], [], [], color="0.5", alpha=0.3, label="random pruning, 95% of the null")
    ax.set_xscale("log")
    lo_x = min(float(np.nanmin(np.asarray(k, float))) for k, _ in curves.values())
    ax.set_xlim(110, lo_x / 1.3)
    marks = [m for m in (100, 50, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1) if m >= lo_x / 1.3]
    ax.set_xticks(marks)
    ax.set_xticklabels([f"{m:g}" for m in marks])
    ax.set_xlabel("% of nodes kept (log scale)")
    ax.set_ylabel("fit to human similarity (R$^2$)")
    if log_y:
        ax.set_yscale("log")
        ax.set_ylabel("fit to human similarity (R$^2$, log scale)")
        low = [np.nanmin(np.where(np.asarray(f, float) > 0, f, np.nan)) for _, f in curves.values()]
        ax.set_ylim(min(min(low), min(refs)) / 1.5, 1.5 * max(refs))
    else:
        ax.set_ylim(0, None)
    # Outside the axes: inside, the legend hid parts of the curves.
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def compare_figure(rows: list[dict], title: str = ""):
    """Out-of-sample fit per method, a group of bars per stimulus set, with intervals.

    ``rows`` are :meth:`poz_jax.analysis.comparison.Comparison.summary_rows` (with an
    ``interval_low``/``interval_high`` pair each); bars show the mean
    out-of-sample fit over splits, whiskers the corrected 95% interval of
    that mean (Nadeau & Bengio's variance, as the paired test) clipped to
    [0, 1], and a diamond beside each bar the in-sample fit (each method
    fitted and scored on all items).
    """
    sets = list(dict.fromkeys(r["set"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(sets) * len(methods) * 0.35 + 3), 4.5))
    colors = plt.get_cmap("tab10").colors
    for m_i, m in enumerate(methods):
        xs, mean, lo, hi, ins = [], [], [], [], []
        for s_i, s in enumerate(sets):
            r = next(r for r in rows if r["set"] == s and r["method"] == m)
            xs.append(s_i - 0.4 + (m_i + 0.5) * width)
            mean.append(r["fit_out_of_sample_mean"])
            lo.append(r["interval_low"])
            hi.append(r["interval_high"])
            ins.append(r["fit_in_sample"])
        mean = np.array(mean)
        # A fit lies in [0, 1]: the interval is drawn clipped to that range.
        lo, hi = np.clip(lo, 0, 1), np.clip(hi, 0, 1)
        err = np.vstack([np.clip(mean - lo, 0, None), np.clip(hi - mean, 0, None)])
        ax.bar(xs, mean, width, color=colors[m_i % 10], label=m)
        ax.errorbar(xs, mean, yerr=np.nan_to_num(err), fmt="none", ecolor="0.2", capsize=2, lw=1)
        # Beside the whisker, not on its cap.
        ax.plot(np.array(xs) + width / 4, ins, "D", color="white", mec="black", ms=3.5, zorder=3)
    ax.plot([], [], "D", color="white", mec="black", ms=3.5, label="in-sample fit")
    ax.plot([], [], "|", color="0.2", ms=8, label="95% interval (corrected), clipped to [0, 1]")
    ax.set_xticks(range(len(sets)))
    ax.set_xticklabels(sets)
    ax.set_ylabel("out-of-sample fit (R$^2$)")
    ax.set_ylim(0, 1.04)
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def exp3_figure(result, null: np.ndarray, reference=None, title: str = "classes"):
    """Experiment 3: fit to human similarity vs % of nodes kept, over networks.

    ``result`` is an :class:`poz_jax.analysis.pruning.Analysis` of ``S`` networks and
    ``null`` their nulls ``(S, n_null, L)``: the mean fit with a +-1 sd band,
    and the band that holds 95% of the networks' mean curve under random
    pruning. ``reference``: optional ``(L,)`` mean fit to the unpruned
    network's own RSM (Experiment 1's curve), drawn dashed.
    """
    pct = 100.0 * np.asarray(result.keep_counts) / result.n_nodes
    fit = np.asarray(result.fit)
    # Levels where every fit is NaN (1 and 2 nodes kept) are NaN here: not drawn.
    mean, sd = stats.mean(fit, axis=0), stats.sd(fit, axis=0)
    lo, hi = null_band(stats.mean(null, axis=0))
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.plot(pct, mean, color="tab:blue", lw=2, label=f"PoZ pruning, {len(fit)} networks")
    ax.fill_between(pct, mean - sd, mean + sd, color="tab:blue", alpha=0.2, linewidth=0)
    ax.fill_between(pct, lo, hi, color="0.6", alpha=0.35, linewidth=0, label="random pruning, 95%")
    if reference is not None:
        ax.plot(pct, reference, "--", color="tab:orange", label="fit to the unpruned network")
    ax.set_xlim(101, 0)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("% of fc2 nodes kept")
    ax.set_ylabel("fit to human similarity (R$^2$)")
    ax.set_title(f"CIFAR-10H, {title}")
    ax.legend(frameon=False, loc="lower left")
    fig.tight_layout()
    return fig


def trim_figure(summary: list[dict], path: list[dict] | None = None):
    """Test accuracy against parameters kept: a panel per trimmed layer, a line per method.

    ``summary``: :func:`poz_jax.pipelines.trim.summarise`'s rows. Solid lines
    and whiskers (one sd over networks and draws): after fine-tuning;
    dashed: trimmed, before it. The grey band is the untrimmed networks
    fine-tuned alike (method ``none``, mean +- sd), the dotted line the
    untrimmed networks as trained (its mean before fine-tuning); ``path`` (the iterative
    APoZ rounds) adds a panel of its own when it has a round past the start.
    """
    layers = [r["layer"] for r in summary if r["method"] != "none"]
    layers = list(dict.fromkeys(layers))
    control = next((r for r in summary if r["method"] == "none"), None)
    path = path if path and len(path) > 1 else None  # round 0 alone is the untrimmed start
    n_panels = len(layers) + (1 if path else 0)
    fig, axes = plt.subplots(1, n_panels, figsize=(3.2 * n_panels, 3.4), sharey=True, squeeze=False)
    colors = plt.get_cmap("tab10").colors
    methods = list(dict.fromkeys(r["method"] for r in summary if r["method"] != "none"))
    for ax, layer in zip(axes[0], layers, strict=False):
        for i, m in enumerate(methods):
            rows = sorted(
                (r for r in summary if r["layer"] == layer and r["method"] == m),
                key=lambda r: r["parameters_kept"],
            )
            x = [r["parameters_kept"] for r in rows]
            ax.errorbar(
                x,
                [r["accuracy_after_mean"] for r in rows],
                yerr=[r["accuracy_after_sd"] for r in rows],
                color=colors[i % 10],
                marker="o",
                ms=3,
                capsize=2,
                label=m,
            )
            ax.plot(x, [r["accuracy_before_mean"] for r in rows], "--", color=colors[i % 10], lw=1)
        ax.set_title(f"{layer} trimmed")
        ax.set_xlabel("parameters kept (fraction)")
    if path:
        ax = axes[0][-1]
        x = [r["parameters_kept_mean"] for r in path]
        ax.errorbar(
            x,
            [r["accuracy_after_mean"] for r in path],
            yerr=[r["accuracy_after_sd"] for r in path],
            color="black",
            marker="o",
            ms=3,
            capsize=2,
            label="APoZ, iterative",
        )
        for r in path:
            ax.annotate(str(r["round"]), (r["parameters_kept_mean"], r["accuracy_after_mean"]),
                        textcoords="offset points", xytext=(3, 3), fontsize=7)  # fmt: skip
        ax.set_title("iterative APoZ (rounds)")
        ax.set_xlabel("parameters kept (fraction)")
    if control is not None:
        m, s = control["accuracy_after_mean"], control["accuracy_after_sd"]
        for ax in axes[0]:
            ax.axhspan(m - s, m + s, color="0.85", zorder=0)
            # Hu et al.'s reference: the untrimmed networks as they were trained.
            ax.axhline(control["accuracy_before_mean"], color="0.4", ls=":", lw=1, zorder=0)
    axes[0][0].set_ylabel("test accuracy")
    axes[0][0].plot([], [], "--", color="0.3", lw=1, label="before fine-tuning")
    if control is not None:
        axes[0][0].fill_between([], [], color="0.85", label="untrimmed, fine-tuned alike")
        axes[0][0].plot([], [], ":", color="0.4", lw=1, label="untrimmed, as trained")
    # Below the panels: inside one, the legend hides the points of the low levels.
    handles, labels = axes[0][0].get_legend_handles_labels()
    legend_rows = -(-len(handles) // (3 * n_panels))
    fig.legend(handles, labels, frameon=False, fontsize=7, loc="lower center",
               ncol=-(-len(handles) // legend_rows))  # fmt: skip
    fig.tight_layout(rect=(0, 0.045 + 0.05 * legend_rows, 1, 1))
    return fig


def ceiling_figure(rows: list[dict], ceiling, target: str = ""):
    """Models' mean r across participants (95% t interval) against the noise ceiling's band.

    ``rows``: ``group.csv``'s rows of one target with ``quantity == "r"``
    (others are left out); ``ceiling``: its :class:`~poz_jax.core.reliability.NoiseCeiling`.
    Drawn as the field draws it: the grey band from the lower to the upper bound.
    """
    rows = [r for r in rows if r["quantity"] == "r"]
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(rows) + 1.6))
    y = np.arange(len(rows))[::-1]
    means = np.array([r["mean"] for r in rows])
    err = np.array([[r["mean"] - r["interval_low"], r["interval_high"] - r["mean"]] for r in rows])
    ax.axvspan(float(ceiling.lower), float(ceiling.upper), color="0.85", label="noise ceiling")
    colors = ["C0" if r["model"].startswith("LeNet5") else "C7" for r in rows]
    ax.barh(y, means, xerr=err.T, color=colors, height=0.7, capsize=2)
    ax.set_yticks(y, [r["model"] for r in rows], fontsize=8)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("Pearson r with each participant's matrix (mean, 95% t interval)")
    ax.set_title(f"{target}: models against {rows[0]['n'] if rows else 0} participants")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def participant_curves(rows: list[dict], ceiling, target: str = ""):
    """The participants' mean r at every keep level, one line per layer and scale, each with
    its random-pruning null's 95% band, and the noise ceiling's band (``levels.csv`` rows)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.axhspan(float(ceiling.lower), float(ceiling.upper), color="0.88", label="noise ceiling")
    series = dict.fromkeys((r["layer"], r["scale"]) for r in rows)
    for i, (layer, scale) in enumerate(series):
        sel = [r for r in rows if (r["layer"], r["scale"]) == (layer, scale)]
        x = np.array([r["percent_kept"] for r in sel])
        ax.fill_between(x, [r["null_low"] for r in sel], [r["null_high"] for r in sel],
                        color=f"C{i}", alpha=0.2, lw=0)  # fmt: skip
        ax.plot(x, [r["r_mean"] for r in sel], color=f"C{i}", label=f"{layer}, {scale}px")
    ax.invert_xaxis()
    ax.set_xlabel("% of nodes kept (lowest PoZ first)")
    ax.set_ylabel("mean Pearson r across participants")
    ax.set_title(f"{target}: PoZ-ordered pruning, networks' mean (band: random pruning)")
    ax.legend(fontsize=8)
    return fig
