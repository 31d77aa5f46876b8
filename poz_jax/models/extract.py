"""Activations of any model's named layers: PyTorch (forward hooks) and Flax (intermediates).

Both return ``{layer: (n_images, n_nodes)}`` float arrays, one row per
image, feature maps flattened to one node per unit, ready for
:func:`poz_jax.analyse`. The torch path needs the optional ``torch`` extra
(and ``torchvision`` for a model given by its torchvision name).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from poz_jax.data.images import MEAN, STD


def imagenet_input(images: np.ndarray) -> np.ndarray:
    """uint8 ``(n, H, W, 3)`` -> float32 ``(n, 3, H, W)`` standardised as torchvision's models
    expect (scaled to [0, 1], then ImageNet's per-channel mean and sd)."""
    x = np.asarray(images, np.float32) / 255.0
    x = (x - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def load_torch_model(spec: str, weights: str | Path | None = None):
    """A PyTorch model in eval mode from ``package.module:factory`` or a torchvision name.

    ``weights``: a state dict file (``torch.save(model.state_dict(), path)``),
    read with ``weights_only=True``; without it the factory's own weights (a
    torchvision name gets random ones: nothing is downloaded).
    """
    try:
        import torch
    except ImportError:
        raise ValueError(
            "extracting from a PyTorch model needs torch: pip install 'poz-jax[torch]'"
        ) from None
    if ":" in spec:
        module, _, name = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as err:
            raise ValueError(
                f"--model {spec}: cannot import {name} from {module} ({err})"
            ) from None
        model = factory()
    else:
        try:
            import torchvision
        except ImportError:
            raise ValueError(
                f"--model {spec}: a model by name needs torchvision; or give package.module:factory"
            ) from None
        try:
            model = torchvision.models.get_model(spec, weights=None)
        except ValueError as err:
            raise ValueError(f"--model {spec}: not a torchvision model ({err})") from None
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"--model {spec} made a {type(model).__name__}, not a torch.nn.Module")
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise ValueError(f"weights file {path} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many kinds for a bad file
            raise ValueError(f"weights file {path} is not a readable state dict ({err})") from None
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"weights file {path} does not fit --model {spec}: {err}") from None
    return model.eval()


def torch_features(
    model, images: np.ndarray, layers: Sequence[str], batch: int = 32
) -> dict[str, np.ndarray]:
    """Outputs of ``model``'s named modules ``layers`` for uint8 ``images`` ``(n, H, W, 3)``.

    Each module's output is copied when it is made (a later in-place ReLU
    would change it otherwise). A module called more than once in one
    forward pass (a block that reuses its ReLU) is refused: its output is
    not one layer's.
    """
    import torch

    modules = dict(model.named_modules())
    unknown = [name for name in layers if name not in modules]
    if unknown or not layers:
        names = [n for n in modules if n][:12]
        raise ValueError(f"layer(s) {unknown} are not modules of the model; it has {names} ...")
    got: dict[str, list] = {name: [] for name in layers}
    calls: dict[str, int] = {}

    def hook(name):
        def keep(_module, _inputs, output):
            calls[name] = calls.get(name, 0) + 1
            if calls[name] > 1:
                raise ValueError(
                    f"module {name!r} runs more than once in one forward pass (a reused module, "
                    "e.g. a block's shared ReLU): its outputs are not one layer's; pick another "
                    "module, such as the block itself"
                )
            got[name].append(output.detach().clone().reshape(output.shape[0], -1).cpu())

        return keep

    handles = [modules[name].register_forward_hook(hook(name)) for name in layers]
    try:
        with torch.no_grad():
            for i in range(0, len(images), batch):
                calls.clear()
                model(torch.from_numpy(imagenet_input(images[i : i + batch])))
    finally:
        for h in handles:
            h.remove()
    return {name: torch.cat(parts).numpy() for name, parts in got.items()}


def flax_features(module, variables, inputs, layers: Sequence[str]) -> dict[str, np.ndarray]:
    """Outputs of a Flax ``module``'s submodules ``layers`` (paths such as ``"Dense_0"`` or
    ``"block/Conv_1"``) for ``inputs``, via ``capture_intermediates``: ``{layer: (n, nodes)}``."""
    from flax import traverse_util

    _, state = module.apply(
        variables, inputs, capture_intermediates=True, mutable=["intermediates"]
    )
    flat = traverse_util.flatten_dict(state["intermediates"], sep="/")
    out = {}
    for layer in layers:
        key = f"{layer}/__call__"
        if key not in flat:
            have = sorted(k[: -len("/__call__")] for k in flat if k.endswith("/__call__"))
            raise ValueError(f"layer {layer!r} is not a submodule of the model; it has {have}")
        a = np.asarray(flat[key][0])
        out[layer] = a.reshape(a.shape[0], -1)
    return out
