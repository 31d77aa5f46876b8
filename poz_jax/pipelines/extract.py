"""Files in and out for other tools: ``poz-jax extract`` and ``poz-jax export-scores``.

``extract`` writes ``features_<layer>.npz`` (one ``(n_images, n_nodes)``
matrix per set name: what ``--embeddings`` takes), ``sweep_<layer>.csv``
(each set's PoZ-ordered fit to its human matrix at every keep count: the
sweep, with no code) and ``extract.json`` (the model, its weights' digest,
the layers, the preprocessing and every input's digest). ``export-scores``
writes a layer's PoZ, keep order and keep mask for pruning libraries
(``scores.npz`` and ``scores.csv``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from poz_jax.core import validate as v
from poz_jax.data import load_stimulus_sets
from poz_jax.data.images import load_images
from poz_jax.data.stimuli import check_have_images
from poz_jax.io import files, provenance
from poz_jax.models.extract import load_torch_model, torch_features


def extract(
    model: str,
    layers: list[str],
    stimuli: str | Path,
    out: str | Path,
    weights: str | Path | None = None,
    size: int = 224,
    resize: int = 256,
    batch: int = 32,
) -> list[Path]:
    """Each of ``layers`` of ``model`` on each set's images into ``out``; returns the files.

    Images as torchvision's ImageNet preprocessing: shorter side to
    ``resize``, centre crop ``size``, standardised.
    """
    v.check_int(size, "size", 8, 4096)
    v.check_int(resize, "resize", size, 8192)
    v.check_int(batch, "batch", 1)
    if len(set(layers)) != len(layers) or not layers:
        raise ValueError(f"--layer must name distinct modules, got {layers}")
    out = files.check_out_dir(out, stimuli=stimuli if Path(stimuli).is_dir() else None)
    sets = load_stimulus_sets(stimuli)
    check_have_images(sets)
    net = load_torch_model(model, weights)
    feats: dict[str, dict] = {layer: {} for layer in layers}
    for name, s in sets.items():
        got = torch_features(net, load_images(s.images, resize, size), layers, batch)
        for layer in layers:
            feats[layer][name] = got[layer]
    written = []
    for layer in layers:
        stem = layer.replace("/", "_")
        files.save_arrays(out / f"features_{stem}.npz", {"layer": layer, "model": model},
                          **feats[layer])  # fmt: skip
        files.write_csv(out / f"sweep_{stem}.csv", _sweep_rows(feats[layer], sets))
        written += [out / f"features_{stem}.npz", out / f"sweep_{stem}.csv"]
    record = {
        "model": model,
        "weights": provenance.input_record(weights) if weights else None,
        "layers": list(layers),
        "preprocessing": {"resize": resize, "crop": size, "standardise": "imagenet"},
        "stimuli": provenance.input_record(stimuli),
        "environment": provenance.environment(),
    }
    files.write_json(out / "extract.json", record)
    return [*written, out / "extract.json"]


def _sweep_rows(feats: dict, sets) -> list[dict]:
    """Each set's PoZ-ordered fit to its human matrix at every keep count (one sweep each)."""
    from poz_jax.analysis.pruning import analyse
    from poz_jax.core.ranking import keep_grid

    rows = []
    for name, x in feats.items():
        counts = keep_grid(x.shape[1], step=1)
        res = analyse(x, sets[name].similarity, counts)
        rows += [
            {"set": name, "keep_count": int(k), "fit": float(f), "max_poz": float(m)}
            for k, f, m in zip(counts, res.fit, res.max_poz, strict=True)
        ]
    return rows


def export_scores(features: str | Path, out: str | Path, keep_fraction: float = 0.5) -> list[Path]:
    """PoZ of every node of one layer's ``features`` and the mask keeping the lowest-PoZ
    ``int(n_nodes * keep_fraction)`` nodes, into the folder ``out``.

    ``features``: any layout :func:`~poz_jax.data.features.load_features`
    reads, or an ``.npz`` of one matrix per set (their images pooled). PoZ
    is the share of exact zeros of each node over all images (METHOD.md).
    Writes ``scores.npz`` (``poz``, ``order``, ``mask``) and ``scores.csv``
    (node, poz, rank, kept).
    """
    from poz_jax.core.ranking import keep_order, poz
    from poz_jax.data.errors import DataError
    from poz_jax.data.features import load_features

    if not 0 < keep_fraction <= 1:
        raise ValueError(f"--keep-fraction must be in (0, 1], got {keep_fraction}")
    path = Path(features)
    out = files.check_out_dir(out)
    try:
        x = load_features(path).array
    except DataError:
        if files.not_npz(path):
            raise
        # One matrix per set (extract's features_<layer>.npz): their images pooled.
        arrays = files.load_arrays(path)[0]
        x = np.concatenate([np.asarray(a).reshape(len(a), -1) for a in arrays.values()])
    node_poz = np.asarray(poz(x))
    order = np.asarray(keep_order(node_poz))
    k = max(1, int(len(node_poz) * keep_fraction))
    mask = np.zeros(len(node_poz), bool)
    mask[order[:k]] = True
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    meta = {"features": provenance.input_record(path), "keep_fraction": keep_fraction}
    files.save_arrays(out / "scores.npz", meta, poz=node_poz, order=order, mask=mask)
    files.write_csv(
        out / "scores.csv",
        [{"node": i, "poz": float(node_poz[i]), "rank": int(rank[i]), "kept": bool(mask[i])}
         for i in range(len(node_poz))],
    )  # fmt: skip
    return [out / "scores.npz", out / "scores.csv"]


def add_extract_args(parser: argparse.ArgumentParser) -> None:
    """``poz-jax extract``'s flags."""
    parser.add_argument(
        "--model", required=True, help="package.module:factory or a torchvision name"
    )
    parser.add_argument("--weights", help="a state dict file (default: the factory's own weights)")
    parser.add_argument("--layer", action="append", required=True, help="a module; repeatable")
    parser.add_argument("--stimuli", required=True, help="a set folder or a folder of set folders")
    parser.add_argument("--out", default="results/features", help="(default results/features)")
    parser.add_argument("--size", type=int, default=224, help="centre crop (default 224)")
    parser.add_argument("--resize", type=int, default=256, help="shorter side first (default 256)")
    parser.add_argument("--batch", type=int, default=32, help="images per pass (default 32)")


def add_export_args(parser: argparse.ArgumentParser) -> None:
    """``poz-jax export-scores``' flags."""
    parser.add_argument("features", help="one layer's features (any layout extract or exp2 reads)")
    parser.add_argument("--out", default="results/scores", help="(default results/scores)")
    parser.add_argument(
        "--keep-fraction", type=float, default=0.5, help="share of nodes the mask keeps (0.5)"
    )


def run_extract(args: argparse.Namespace) -> list[Path]:
    return extract(args.model, args.layer, args.stimuli, args.out, args.weights, args.size,
                   args.resize, args.batch)  # fmt: skip


def run_export(args: argparse.Namespace) -> list[Path]:
    return export_scores(args.features, args.out, args.keep_fraction)


# (name, help, description, flags, run): the command line adds one sub-command each.
TOOLS = (
    ("extract", "a PyTorch model's layers on every stimulus set (files --embeddings reads)",
     "Run each set's images (ImageNet preprocessing) through a PyTorch model and keep the "
     "outputs of the named modules (forward hooks; a module run twice in one pass is "
     "refused). Writes features_<layer>.npz (one matrix per set), sweep_<layer>.csv (each "
     "set's PoZ-ordered fit at every keep count) and extract.json (model, weights digest, "
     "layers, preprocessing). Needs the torch extra.",
     add_extract_args, run_extract),
    ("export-scores", "a layer's PoZ, keep order and keep mask for pruning libraries",
     "PoZ of every node of one layer's features over all images, the keep order (lowest "
     "PoZ first) and the mask keeping --keep-fraction of the nodes: scores.npz and "
     "scores.csv, for torch.nn.utils.prune.custom_from_mask or a Torch-Pruning importance.",
     add_export_args, run_export),
)  # fmt: skip
