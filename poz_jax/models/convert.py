"""PyTorch VGG-16 weights -> Flax parameters in a framework-free ``.npz``.

Two sources of the same ImageNet weights are understood:

- torchvision's ``vgg16-397923af.pth`` (a state dict; reading it needs
  ``torch``, the ``[torch]`` extra): ``features.N.*`` and ``classifier.{0,3,6}.*``;
- timm's ``vgg16.tv_in1k`` in ``.safetensors`` form (read with NumPy alone):
  the same ``features.N.*`` and a convolutional head, ``pre_logits.fc1``
  (4096 x 512 x 7 x 7), ``pre_logits.fc2`` (4096 x 4096 x 1 x 1), ``head.fc``.

Layouts: conv kernels go from PyTorch's OIHW to Flax's HWIO; linear weights
are transposed; fc6's input rows are permuted from PyTorch's C x H x W
flattening to the H x W x C order of an NHWC flatten (forgetting this still
runs and gives wrong fc6/fc7 values).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from poz_jax.core.validate import widen_half
from poz_jax.io.files import check_out_dir, load_arrays, save_arrays
from poz_jax.models.vgg import CONV_NAMES, check_params

# Indices of the conv layers in torchvision's ``features`` Sequential.
FEATURE_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
FORMAT = "poz-jax vgg16 flax params v1"


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """Tensors of a ``.safetensors`` file as float32 NumPy arrays (no torch needed).

    Read with the ``safetensors`` package's Flax loader, which also takes
    bfloat16 (NumPy has no bfloat16).
    """
    from safetensors.flax import load_file

    try:
        tensors = load_file(str(path))
    except Exception as err:  # SafetensorError, or a dtype JAX lacks
        raise ValueError(f"{path} is not a readable safetensors file ({err})") from err
    return {k: np.asarray(widen_half(v), np.float32) for k, v in tensors.items()}


def read_torch(path: str | Path) -> dict[str, np.ndarray]:
    """A PyTorch state dict (``.pth``/``.pt``) as NumPy arrays; needs ``torch``."""
    try:
        import torch
    except ImportError as err:
        raise ValueError(
            f"reading {path} needs PyTorch: pip install 'poz-jax[torch]', or convert timm's "
            "vgg16.tv_in1k model.safetensors instead, which needs no torch"
        ) from err
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad file
        raise ValueError(f"{path} is not a readable PyTorch state dict ({err})") from err
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(
            f"{path} holds a {type(state).__name__}, not a state dict (a mapping of parameter "
            "names to tensors)"
        )
    return {k: v.detach().float().numpy() for k, v in state.items() if hasattr(v, "detach")}


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Read torchvision (``.pth``) or timm (``.safetensors``) VGG-16 weights by file suffix."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    return read_torch(path)


def _get(state: dict, key: str, shape: tuple | None = None) -> np.ndarray:
    if key not in state:
        raise ValueError(f"weights lack {key!r}: not a torchvision or timm VGG-16 state dict")
    arr = np.asarray(state[key], np.float32)
    if shape is not None and arr.shape != shape:
        raise ValueError(f"weights {key!r} have shape {arr.shape}, expected {shape}")
    return arr


def _reshaped(key: str, w: np.ndarray, how) -> np.ndarray:
    """``how(w)``, or a ValueError naming the key when ``w`` has no VGG-16 shape."""
    try:
        return how(w)
    except ValueError as err:
        raise ValueError(
            f"weights {key!r} have shape {w.shape}, which no VGG-16 layer has ({err})"
        ) from None


def to_flax(state: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Map a torchvision or timm VGG-16 state dict to :class:`~poz_jax.models.vgg.VGG16` params.

    Returns ``{layer: {"kernel", "bias"}}`` float32 NumPy arrays, kernels HWIO
    for convs and ``(in, out)`` for dense layers.
    """
    params = {}
    for name, index in zip(CONV_NAMES, FEATURE_INDICES, strict=True):
        w = _get(state, f"features.{index}.weight")
        if w.ndim != 4:
            raise ValueError(f"features.{index}.weight should be OIHW, got shape {w.shape}")
        params[name] = {
            "kernel": w.transpose(2, 3, 1, 0),
            "bias": _get(state, f"features.{index}.bias"),
        }
    if "classifier.0.weight" in state:  # torchvision
        w6 = _get(state, "classifier.0.weight")
        w6 = _reshaped("classifier.0.weight", w6, lambda a: a.reshape(a.shape[0], -1, 7, 7))
        heads = [("classifier.0", w6), ("classifier.3", None), ("classifier.6", None)]
    else:  # timm: the same numbers, stored as convolutions
        heads = [("pre_logits.fc1", None), ("pre_logits.fc2", None), ("head.fc", None)]
    for layer, (key, w) in zip(("fc6", "fc7", "fc8"), heads, strict=True):
        w = _get(state, f"{key}.weight") if w is None else w
        if layer == "fc6":
            # (out, C, H, W) -> rows in H, W, C order for an NHWC flatten.
            w = _reshaped(
                f"{key}.weight", w, lambda a: a.transpose(2, 3, 1, 0).reshape(-1, a.shape[0])
            )
        else:
            w = _reshaped(f"{key}.weight", w, lambda a: a.reshape(a.shape[0], -1).T)
        params[layer] = {"kernel": np.ascontiguousarray(w), "bias": _get(state, f"{key}.bias")}
    check_params(params, "the converted weights")
    return params


def save_params(path: str | Path, params: dict, source: str = "") -> None:
    """Write VGG-16 params as an ``.npz`` (keys ``layer/kernel``), loadable without torch."""
    flat = {
        f"{layer}/{kind}": np.asarray(arr, np.float32)
        for layer, weights in params.items()
        for kind, arr in weights.items()
    }
    save_arrays(path, {"format": FORMAT, "source": source}, **flat)


def load_params(path: str | Path) -> dict:
    """Read params written by :func:`save_params` (or :func:`convert`) as JAX arrays."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"weights file {path} does not exist; convert torchvision's vgg16-397923af.pth "
            "or timm's vgg16.tv_in1k model.safetensors with: poz-jax convert-vgg16 SRC DST"
        )
    arrays, meta = load_arrays(path)
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not a converted VGG-16 file; make one with: poz-jax convert-vgg16 SRC DST"
        )
    params: dict = {}
    for key, arr in arrays.items():
        layer, _, kind = key.partition("/")
        params.setdefault(layer, {})[kind] = arr
    check_params(params, str(path))
    return jax.tree_util.tree_map(jnp.asarray, params)


def convert(src: str | Path, dst: str | Path) -> dict:
    """Convert torchvision/timm VGG-16 weights at ``src`` to a poz-jax ``.npz`` at ``dst``."""
    dst = Path(dst)
    if dst.is_dir():
        raise ValueError(f"{dst} is a folder; give the .npz file to write")
    check_out_dir(dst.parent, "the output folder")
    params = to_flax(read_state_dict(src))
    save_params(dst, params, source=Path(src).name)
    return params
