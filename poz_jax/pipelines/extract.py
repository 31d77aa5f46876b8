"""``poz-jax extract``: a PyTorch model's layers on every stimulus set, as files a study reads.

Writes ``features_<layer>.npz`` (one ``(n_images, n_nodes)`` matrix per set
name: what ``--embeddings`` takes) and ``extract.json`` (the model, its
weights' digest, the layers, the preprocessing and every input's digest).
"""

from __future__ import annotations

from pathlib import Path

from poz_jax import files, provenance
from poz_jax.core import validate as v
from poz_jax.data import load_stimulus_sets
from poz_jax.data.images import load_images
from poz_jax.data.stimuli import check_have_images
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
        path = out / f"features_{layer.replace('/', '_')}.npz"
        files.save_arrays(path, {"layer": layer, "model": model}, **feats[layer])
        written.append(path)
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
