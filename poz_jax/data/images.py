"""ImageNet preprocessing as torchvision's Resize(256), CenterCrop(224), ToTensor, Normalize."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from poz_jax.data.errors import DataError

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def to_rgb(im):
    """A PIL image as 8-bit RGB, as it looks on a white page.

    Transparency (an alpha channel, or a palette or colour marked
    transparent) is composited on white: the images were shown to people on
    a white page, and a fully transparent pixel's hidden colour is not part
    of the picture. 16-bit images are scaled to 8 bits (``v / 257``); float
    images must lie in [0, 1] and are scaled by 255; other modes go through
    PIL's own conversion. Raises ``ValueError`` for values it cannot place.
    """
    from PIL import Image

    mode = im.mode
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        a = np.asarray(im, dtype=np.float64)
        if mode == "F":
            if not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 1:
                raise ValueError("a float image must hold values in [0, 1]")
            a = a * 255.0
        else:
            if a.min() < 0 or a.max() > 65535:
                raise ValueError("an integer image must hold 8- or 16-bit values")
            a = a / 257.0  # 65535 -> 255
        grey = np.clip(np.round(a), 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(grey[..., None], 3, axis=-1), "RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float64)
        alpha = rgba[..., 3:4] / 255.0
        rgb = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
        return Image.fromarray(np.clip(np.round(rgb), 0, 255).astype(np.uint8), "RGB")
    return im.convert("RGB")


def load_image(path: str | Path, resize: int = 256, crop: int = 224) -> np.ndarray:
    """One image as uint8 ``(crop, crop, 3)`` RGB: shorter side to ``resize``, centre crop.

    The shorter side becomes ``resize`` and the longer ``int(resize * long / short)``
    (bilinear, PIL's antialiased resampling as torchvision uses on PIL images);
    the crop offset is ``round((size - crop) / 2)``.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return _resize_crop(to_rgb(im), resize, crop)
    except Image.DecompressionBombError as err:
        raise DataError(
            f"image {path} claims more pixels than PIL will decode safely ({err}); "
            "check the file, or resize it first"
        ) from None
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise DataError(f"cannot read image {path} ({err})") from err


def _resize_crop(im, resize: int, crop: int) -> np.ndarray:
    from PIL import Image

    w, h = im.size
    size = (resize, int(resize * h / w)) if w <= h else (int(resize * w / h), resize)
    im = im.resize(size, Image.BILINEAR)
    left = int(round((size[0] - crop) / 2.0))
    top = int(round((size[1] - crop) / 2.0))
    return np.asarray(im.crop((left, top, left + crop, top + crop)), dtype=np.uint8)


def resize_images(images, resize: int, crop: int) -> np.ndarray:
    """uint8 RGB arrays ``(n, H, W, 3)`` treated as :func:`load_image` treats files:
    ``(n, crop, crop, 3)``."""
    from PIL import Image

    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise DataError(f"images must be uint8 (n, H, W, 3), got {images.dtype} {images.shape}")
    return np.stack([_resize_crop(Image.fromarray(a, "RGB"), resize, crop) for a in images])


def load_images(paths, resize: int = 256, crop: int = 224) -> np.ndarray:
    """Images at ``paths`` as uint8 ``(n, crop, crop, 3)``; see :func:`load_image`."""
    return np.stack([load_image(p, resize, crop) for p in paths])


@jax.jit
def imagenet_standardise(images: jax.Array) -> jax.Array:
    """uint8 ``(..., H, W, 3)`` -> float32 scaled to [0, 1] and standardised per channel."""
    x = images.astype(jnp.float32) / 255.0
    return (x - jnp.asarray(MEAN)) / jnp.asarray(STD)
