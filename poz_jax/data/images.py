"""ImageNet preprocessing as torchvision's Resize(256), CenterCrop(224), ToTensor, Normalize."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from poz_jax.data.errors import DataError

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def load_image(path: str | Path, resize: int = 256, crop: int = 224) -> np.ndarray:
    """One image as uint8 ``(crop, crop, 3)`` RGB: shorter side to ``resize``, centre crop.

    The shorter side becomes ``resize`` and the longer ``int(resize * long / short)``
    (bilinear, PIL's antialiased resampling as torchvision uses on PIL images);
    the crop offset is ``round((size - crop) / 2)``.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            size = (resize, int(resize * h / w)) if w <= h else (int(resize * w / h), resize)
            im = im.resize(size, Image.BILINEAR)
            left = int(round((size[0] - crop) / 2.0))
            top = int(round((size[1] - crop) / 2.0))
            im = im.crop((left, top, left + crop, top + crop))
            return np.asarray(im, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise DataError(f"cannot read image {path} ({err})") from err


def load_images(paths, resize: int = 256, crop: int = 224) -> np.ndarray:
    """Images at ``paths`` as uint8 ``(n, crop, crop, 3)``; see :func:`load_image`."""
    return np.stack([load_image(p, resize, crop) for p in paths])


@jax.jit
def imagenet_standardise(images: jax.Array) -> jax.Array:
    """uint8 ``(..., H, W, 3)`` -> float32 scaled to [0, 1] and standardised per channel."""
    x = images.astype(jnp.float32) / 255.0
    return (x - jnp.asarray(MEAN)) / jnp.asarray(STD)
