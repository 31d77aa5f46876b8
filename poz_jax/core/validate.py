"""Input checks: the validation API every layer of poz-jax uses (the core, the
models, training, the pipelines and the command line).

Each check raises a ``ValueError`` that names the argument or config field.

Shape checks always run (shapes are static, even under ``jit``). Checks on
*values* (NaN, symmetry, keep-count range, label range) need concrete arrays:
they run when a function is called eagerly and are skipped when its inputs are
tracers inside ``jit``/``vmap``, where NaN inputs simply propagate to NaN
outputs and out-of-range indices are clamped by JAX's gather rules.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(*arrays) -> bool:
    """True when no argument is a JAX tracer (so its values can be inspected)."""
    return not any(isinstance(a, jax.core.Tracer) for a in arrays)


def readable(a):
    """``(values, xp)``: concrete ``a``'s values and the array module to read them with.

    Values in host memory (a NumPy array; a JAX array on the CPU, viewed
    without a copy) are read with NumPy: op by op in JAX, each check would
    compile a small program for every new shape (tens of ms each on a CPU,
    paid again by every call on a new shape). Values on an accelerator are
    read there with ``jax.numpy``, so they never cross to the host.
    """
    if (
        isinstance(a, jax.Array)
        and a.is_fully_addressable
        and all(d.platform == "cpu" for d in a.devices())
    ):
        return np.asarray(a), np
    return (a, np) if isinstance(a, np.ndarray) else (a, jnp)


def as_array(x, name: str) -> jax.Array:
    """``x`` as a JAX array of real numbers (bool, int or float), or a ``ValueError`` naming it.

    Refuses ``None``, strings, ragged lists, objects and complex numbers
    (whose imaginary part a cast would silently drop).
    """
    if isinstance(x, jax.Array):
        arr = x
    else:
        try:
            host = np.asarray(x)
        except (TypeError, ValueError, OverflowError) as err:
            raise ValueError(f"{name} must be a numeric array, got {_kind(x)}") from err
        if host.dtype.kind not in "biuf":
            what = "complex numbers" if host.dtype.kind == "c" else _kind(x)
            raise ValueError(f"{name} must be a real numeric array, got {what}")
        if not host.dtype.isnative:  # big-endian data (some .npy and .mat files)
            host = host.astype(host.dtype.newbyteorder("="))
        # device_put copies without a compiled program (jnp.asarray compiles one per shape).
        arr = jax.device_put(host)
        # Without x64, JAX narrows int64 to int32: refuse rather than wrap.
        if host.dtype.kind in "iu" and arr.dtype != host.dtype and host.size:
            info = np.iinfo(arr.dtype)
            if host.max() > info.max or host.min() < info.min:
                raise ValueError(f"{name} holds integers beyond the {arr.dtype} range")
    if jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise ValueError(f"{name} must be a real numeric array, got complex numbers")
    return arr


def _kind(x) -> str:
    if isinstance(x, np.ndarray):
        return f"an array of dtype {x.dtype}"
    if isinstance(x, (list, tuple)):
        return f"a {type(x).__name__} that is not a rectangular array of numbers"
    return type(x).__name__


def as_float(x, name: str) -> jax.Array:
    """``x`` as a JAX array with a floating dtype (integers become the default float)."""
    arr = as_array(x, name)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    return arr


def unit_scale(m, name: str):
    """``m`` (``(..., n, n)``) times a power of two per matrix that brings its largest |entry|
    into [0.5, 1), computed on the host before any cast or arithmetic.

    Fits are scale-invariant, and a power of two scales every sum and
    product of the fit exactly, so normal-range inputs give bit-identical
    fits; inputs near the ends of their float range (float32 at 1e-37 or
    1e37, a float64 matrix at 1e-300 bound for float32) would otherwise
    underflow, be flushed to zero or overflow inside the fit. A traced ``m``
    is returned as it is (its values cannot be read).
    """
    if not is_concrete(m):
        return m
    host = np.asarray(m)
    if host.dtype.kind != "f" or host.ndim < 2 or host.size == 0:
        return m
    with np.errstate(all="ignore"):
        peak = np.max(np.where(np.isfinite(host), np.abs(host), 0), axis=(-2, -1), keepdims=True)
        exponent = np.where(peak > 0, np.frexp(peak)[1], 0)
        if not np.any(exponent):
            return m
        return np.ldexp(host, -exponent).astype(host.dtype)


def check_broadcast(**shapes: tuple) -> None:
    """Raise unless the named leading-axis shapes broadcast together."""
    try:
        np.broadcast_shapes(*shapes.values())
    except ValueError as err:
        listed = ", ".join(f"{k} {tuple(v)}" for k, v in shapes.items())
        raise ValueError(f"leading axes do not broadcast: {listed}") from err


def check_min_rank(x, rank: int, name: str, layout: str) -> None:
    """Raise unless ``x.ndim >= rank``; ``layout`` names the expected trailing axes."""
    if x.ndim < rank:
        raise ValueError(f"{name} must have shape {layout}, got shape {tuple(x.shape)}")


def check_finite(x, name: str) -> None:
    """Raise if a concrete ``x`` holds NaN or infinity."""
    if not is_concrete(x):
        return
    vals, xp = readable(x)
    n_bad = int(xp.sum(~xp.isfinite(vals)))
    if n_bad:
        raise ValueError(f"{name} holds {n_bad} NaN or infinite value(s); clean the input first")


def check_square(m, name: str) -> None:
    """Raise unless the last two axes of ``m`` are equal."""
    if m.ndim < 2 or m.shape[-1] != m.shape[-2]:
        raise ValueError(f"{name} must be square (..., n, n), got shape {tuple(m.shape)}")


# The one symmetry rule (inputs of the core and files read by poz_jax.data):
# |m[i, j] - m[j, i]| <= SYMMETRY_RTOL * max |m|, per matrix. Relative to the
# matrix's own scale, so a matrix in [0, 1] and the same one in [0, 10] are
# judged alike; 1e-5 passes a matrix symmetrised in float32 and then
# rounded (gaps near 1e-7 of its scale) and refuses a real asymmetry.
SYMMETRY_RTOL = 1e-5


def check_symmetric(m, name: str, rtol: float = SYMMETRY_RTOL) -> None:
    """Raise unless concrete square ``m`` ``(..., n, n)`` is symmetric (NaN faces NaN).

    The rule: ``|m[i, j] - m[j, i]| <= rtol * max |m|`` per matrix (:data:`SYMMETRY_RTOL`).
    """
    if not is_concrete(m):
        return
    a = np.asarray(m)
    scale = np.max(np.where(np.isnan(a), 0.0, np.abs(a)), axis=(-2, -1), keepdims=True)
    # In blocks of rows, so a 10,000-item matrix needs no full-size temporaries.
    values_per_row = a.shape[-1] * int(np.prod(a.shape[:-2]))
    step = max(1, 2**22 // max(1, values_per_row))
    worst = None  # (excess over the tolerance, i, j, index of the matrix)
    for i in range(0, a.shape[-1], step):
        rows = a[..., i : i + step, :]
        cols = np.swapaxes(a[..., :, i : i + step], -1, -2)
        gap = np.abs(rows - cols)
        # A NaN facing a number is asymmetric; NaN facing NaN is not.
        gap = np.where(np.isnan(rows) & np.isnan(cols), 0.0, np.where(np.isnan(gap), np.inf, gap))
        excess = gap - rtol * scale
        if np.any(excess > 0):
            flat = int(np.argmax(excess))
            *lead, r, c = np.unravel_index(flat, excess.shape)
            if worst is None or excess.flat[flat] > worst[0]:
                worst = (float(excess.flat[flat]), i + r, c, tuple(lead))
    if worst is not None:
        _, r, c, lead = worst
        mat = a[lead] if lead else a
        raise ValueError(
            f"{name} must be symmetric: m[{r}, {c}] = {mat[r, c]:g} but m[{c}, {r}] = "
            f"{mat[c, r]:g} (tolerance {rtol:g} x the largest |m|)"
        )


def check_same_items(n_x: int, n_target: int, x_name: str, target_name: str) -> None:
    """Raise if the item counts of a representation and a target RSM differ."""
    if n_x != n_target:
        raise ValueError(
            f"{x_name} has {n_x} items but {target_name} is {n_target} x {n_target}; "
            "they must describe the same items in the same order"
        )


def as_keep_counts(keep_counts, n_nodes: int) -> jax.Array:
    """Keep counts as a 1-D int array, range-checked against ``n_nodes`` when concrete."""
    if keep_counts is None or isinstance(keep_counts, (str, bytes)):
        raise ValueError(f"keep_counts must be a 1-D array of node counts, got {keep_counts!r}")
    k = as_array(keep_counts, "keep_counts")
    if k.dtype == jnp.bool_:
        raise ValueError(
            "keep_counts must be node counts, got booleans (use sweep_masks for masks)"
        )
    if k.ndim != 1 or k.shape[0] == 0:
        raise ValueError(f"keep_counts must be a non-empty 1-D array, got shape {tuple(k.shape)}")
    if not jnp.issubdtype(k.dtype, jnp.integer):
        # Whole floats (np.array([40., 30.])) are counts; checked on the host,
        # where comparing with 2**31 cannot overflow an int32.
        if is_concrete(k):
            h = np.asarray(k)
            if not np.all(h == np.round(h)):
                raise ValueError("keep_counts must be whole numbers of nodes")
            if not np.all((h >= 1) & (h <= n_nodes)):
                raise ValueError(
                    f"keep_counts must lie in 1..{n_nodes} (the number of nodes), "
                    f"got {np.nanmin(h):g}..{np.nanmax(h):g}"
                )
        # The default int type (int64 under x64), as integer counts get.
        k = k.astype(jax.dtypes.canonicalize_dtype(np.int64))
    if is_concrete(k):
        vals, xp = readable(k)
        lo, hi = int(xp.min(vals)), int(xp.max(vals))
        if lo < 1 or hi > n_nodes:
            raise ValueError(
                f"keep_counts must lie in 1..{n_nodes} (the number of nodes), got {lo}..{hi}"
            )
    return k


def check_order(order, n_nodes: int) -> jax.Array:
    """The keep order as an int array whose last axis has ``n_nodes`` entries."""
    o = as_array(order, "order")
    if o.ndim < 1 or o.shape[-1] != n_nodes:
        raise ValueError(
            f"order must have shape (..., {n_nodes}) to match the {n_nodes} nodes, "
            f"got shape {tuple(o.shape)}"
        )
    if not jnp.issubdtype(o.dtype, jnp.integer):
        raise ValueError(f"order must hold integer node indices, got dtype {o.dtype}")
    if is_concrete(o):
        vals, xp = readable(o)
        if not bool(xp.all(xp.sort(vals, axis=-1) == xp.arange(n_nodes))):
            raise ValueError(f"order must be a permutation of 0..{n_nodes - 1} along its last axis")
        if xp is np and o.dtype != np.int32:
            # A permutation fits int32 exactly: cast where the values are.
            return jax.device_put(vals.astype(np.int32))
    # One index dtype whatever the caller's (keep_order's int32, NumPy's int64):
    # the kernels then compile once per shape, not once per shape and dtype.
    return o.astype(jnp.int32)


MAX_SEED = 2**31 - 1


class FieldError(ValueError):
    """A refused setting: ``field`` names it and ``reason`` says why (``"must be at least 1"``).

    The message is ``"<field> <reason>"``; a command line re-says it with the
    flag beside the field from the field's own metadata, never by reading
    the message.
    """

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field} {reason}")
        self.field, self.reason = field, reason


def check_int(value, name: str, lo: int, hi: int | None = None) -> int:
    """``value`` as a Python int after checking it is a whole number in ``lo..hi``.

    Bools, floats with a fraction, strings and ``None`` are refused (a bool is
    an int to Python, but never a count); the message names ``name``.
    """
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and value == int(value):
        ok = True
    if not ok:
        raise FieldError(name, f"must be a whole number, got {value!r}")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        span = f"at least {lo}" if hi is None else f"in {lo}..{hi}"
        raise FieldError(name, f"must be {span}, got {value}")
    return value


def check_choice(value, name: str, choices) -> str:
    """``value`` if it is one of ``choices``; else a ``ValueError`` naming them."""
    if value not in tuple(choices):
        names = ", ".join(repr(c) for c in choices)
        raise FieldError(name, f"must be one of {names}, got {value!r}")
    return value


PRECISIONS = ("float64", "float32")  # a config's precision: float64 exact, float32 fast


# A set's name becomes part of file names (null_<set>.npz): letters, digits
# and ._+- only, not starting with a dot, so it can never name a folder,
# a hidden file or a path outside the output folder.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")


def check_safe_name(value: str, what: str) -> str:
    """``value`` if it may be part of a file name; else ``ValueError`` naming ``what``."""
    if not isinstance(value, str) or not _SAFE_NAME.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} cannot name files: use letters, digits and . _ + - only "
            "(at most 100, not starting with a dot)"
        )
    return value


def check_set_names(names, name: str = "sets") -> None:
    """A config's stimulus-set selection: ``None`` (every set) or distinct, safe names."""
    if names is None:
        return
    if isinstance(names, str) or not names or not all(isinstance(n, str) and n for n in names):
        raise FieldError(name, f"must be a tuple of non-empty set names, got {names!r}")
    for n in names:
        check_safe_name(n, f"{name}: the set name")
    twice = sorted({n for n in names if list(names).count(n) > 1})
    if twice:
        raise FieldError(name, f"lists {', '.join(twice)} more than once")


def check_seed(value, name: str = "seed") -> int:
    """A random seed: a whole number in ``0..2**31 - 1``."""
    return check_int(value, name, 0, MAX_SEED)


def widen_half(x) -> jax.Array:
    """float16 and bfloat16 as float32 (other dtypes unchanged).

    Their sums would overflow at 65,504 or keep 3 digits. Known values are
    widened on the host: XLA's CPU conversion of half floats needs the F16C
    instructions, which some CPUs (and ``--xla_cpu_max_isa=SSE4_2``) lack.
    """
    if not jnp.issubdtype(x.dtype, jnp.floating) or jnp.finfo(x.dtype).bits >= 32:
        return x
    if is_concrete(x):
        return jnp.asarray(np.asarray(x).astype(np.float32))
    return x.astype(jnp.float32)


def prepare_acts(x):
    """Activations ``(..., n_items, n_nodes)`` as a finite float array (float32 at least)."""
    x = widen_half(as_float(x, "x"))
    check_min_rank(x, 2, "x", "(..., n_items, n_nodes)")
    check_finite(x, "x")
    return x


def prepare_one_set(x, hint: str = ""):
    """One set's activations ``(n_items, n_nodes)`` as a finite float array."""
    x = prepare_acts(x)
    if x.ndim != 2:
        raise ValueError(
            f"x must be one set's activations (n_items, n_nodes), got shape {tuple(x.shape)}{hint}"
        )
    return x


def pow2_normalised(a):
    """``a`` times the power of two that brings its largest magnitude into [0.5, 1).

    Exact (a power-of-two scaling changes no digit, short of under/overflow),
    so a method whose answer does not depend on the scale of its input gets
    the same numbers for ``a`` and ``c * a`` with ``c`` any power of two,
    and neither tiny nor huge inputs under- or overflow its sums of squares.
    All-zero (or non-finite) ``a`` is returned as it is.
    """
    vals, xp = readable(a)
    top = float(xp.max(xp.abs(vals))) if a.size else 0.0
    if not (top > 0 and np.isfinite(top)):
        return a
    e = -int(np.frexp(top)[1])
    # In two halves: 2**e alone may not be representable in a's dtype.
    half = e // 2
    return a * np.asarray(2.0**half, a.dtype) * np.asarray(2.0 ** (e - half), a.dtype)


def prepare_sweep(x, keep_counts, order):
    """Checked ``(x, keep_counts, order)`` of a nested sweep."""
    x = prepare_acts(x)
    k = as_keep_counts(keep_counts, x.shape[-1])
    o = check_order(order, x.shape[-1])
    check_broadcast(x=x.shape[:-2], order=o.shape[:-1])
    return x, k, o


def prepare_target(target, n_items: int, lead: tuple = (), dtype=None, fits_only: bool = False):
    """A symmetric ``(..., n_items, n_items)`` target whose leading axes broadcast with ``lead``.

    ``dtype``: the activations' dtype, which the target is cast to (the
    activations set the precision; a float64 human matrix against float32
    activations is computed in float32). ``fits_only``: the target only
    enters fits (scale-invariant), so it is brought to unit scale first
    (:func:`unit_scale`); a target whose values matter (reweighting) is not.
    """
    t = as_float(unit_scale(target, "target") if fits_only else target, "target")
    if dtype is not None:
        t = t.astype(dtype)
    check_square(t, "target")
    check_same_items(n_items, t.shape[-1], "x", "target")
    check_broadcast(x=lead, target=t.shape[:-2])
    if n_items < 3:
        raise ValueError(f"a fit needs at least 3 items (2 pairs), got {n_items}")
    check_symmetric(t, "target")
    return t
