"""A study's settings: one frozen dataclass whose fields carry their flag and help.

A field made with :func:`setting` says how the command line names it
(``--n-null`` for ``n_null`` unless ``flag`` says otherwise), what its help
says and which values it takes; its type comes from its annotation (``int``,
``float``, ``str``, and tuples of them as comma-separated lists). The config's
own ``__post_init__`` checks its values (raising
:class:`~poz_jax.core.validate.FieldError` for one field), so the checks and
the flags live in one place and :func:`flag_error` can name the flag of a
refused field from the metadata alone.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from typing import Any

from poz_jax.core.validate import FieldError

_SCALARS = {"int": int, "float": float, "str": str, "bool": bool}
PRECISION_HELP = (
    "float type of every fit, null and test (float32 is faster, its fits differ by rounding)"
)


class RENAMED(argparse.Action):
    """A flag of an earlier version: refused with one line saying what replaced it (``now=``)."""

    def __init__(self, option_strings, dest, now: str, **kwargs):
        self.now = now
        super().__init__(option_strings, dest, nargs=0, help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} was renamed: {self.now}")


def setting(
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    choices: Sequence | None = None,
    cli: bool = True,
) -> Any:
    """A config field with its command-line flag (``cli=False``: no flag)."""
    meta = {"help": help, "flag": flag, "choices": choices, "cli": cli}
    return dataclasses.field(default=default, metadata=meta)


def dashed(name: str) -> str:
    """The default flag of a config field or input named ``name``: ``n_null`` -> ``--n-null``."""
    return "--" + name.replace("_", "-")


def flag_of(field: dataclasses.Field) -> str:
    """The flag that sets ``field``: its own, else :func:`dashed`."""
    return field.metadata.get("flag") or dashed(field.name)


def flags(config: type) -> dict[str, str]:
    """``{field name: flag}`` of every field of ``config`` the command line sets."""
    return {f.name: flag_of(f) for f in dataclasses.fields(config) if f.metadata.get("cli", True)}


def _kind(field: dataclasses.Field) -> tuple[type, bool]:
    """``(scalar type, is a tuple)`` from the field's annotation."""
    text = str(field.type).replace(" ", "")
    many = text.startswith("tuple[")
    base = text[len("tuple[") :].split(",")[0] if many else text.split("|")[0]
    return _SCALARS.get(base, str), many


def _shown(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(str(x) for x in value)
    return str(value)


def add_flags(parser: argparse.ArgumentParser, config: type) -> None:
    """One flag per field of ``config`` (default ``None``: the field's own default stands).

    ``--precision`` also gets its short form ``--float32``.
    """
    for f in dataclasses.fields(config):
        if not f.metadata.get("cli", True):
            continue
        scalar, many = _kind(f)
        said = "" if f.default is None else f" (default {_shown(f.default)})"
        if scalar is bool:  # --name / --no-name
            parser.add_argument(
                flag_of(f),
                dest=f"cfg_{f.name}",
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"{f.metadata.get('help', '')}{said}",
            )
            continue
        choices = f.metadata.get("choices")
        parser.add_argument(
            flag_of(f),
            dest=f"cfg_{f.name}",
            type=str if many else scalar,
            choices=None if many or choices is None else list(choices),
            metavar=None if choices is not None and not many else f.name.upper(),
            help=f"{f.metadata.get('help', '')}{said}",
        )
        if f.name == "precision":
            parser.add_argument(
                "--float32", action="store_true", help="same as --precision float32"
            )


def _parse_many(text: str, scalar: type, flag: str) -> tuple:
    items = text.split(",")
    try:
        return tuple(scalar(x) for x in items)
    except ValueError:
        kind = {int: "whole numbers", float: "numbers"}.get(scalar, "names")
        raise ValueError(f"{flag} must be comma-separated {kind}, got {text!r}") from None


def values(config: type, args: argparse.Namespace) -> dict[str, Any]:
    """The fields the command line gave (a flag left out is absent: the default stands)."""
    out = {}
    for f in dataclasses.fields(config):
        given = getattr(args, f"cfg_{f.name}", None)
        if given is None:
            continue
        scalar, many = _kind(f)
        out[f.name] = _parse_many(given, scalar, flag_of(f)) if many else given
    if getattr(args, "float32", False):
        if out.get("precision") not in (None, "float32"):
            raise ValueError(f"--float32 and --precision {out['precision']} contradict each other")
        out["precision"] = "float32"
    return out


def flag_error(config: type, err: FieldError) -> ValueError:
    """``err`` said with the flag beside the field (``n_null (--n-null) must be ...``)."""
    named = flags(config)
    if err.field not in named:
        return err
    return ValueError(f"{err.field} ({named[err.field]}) {err.reason}")


def from_saved(config: type, fields: dict, where: str) -> Any:
    """``config`` from the fields a ``config.json`` saved: none missing, none unknown.

    Lists (JSON has no tuples) become tuples.
    """
    names = [f.name for f in dataclasses.fields(config)]
    unknown = sorted(set(fields) - set(names))
    missing = [n for n in names if n not in fields]
    if unknown or missing:
        what = [f"unknown field {n!r}" for n in unknown] + [f"no field {n!r}" for n in missing]
        raise ValueError(
            f"{where} has {', '.join(what)} for {config.__name__}: it was not written by this "
            "version of poz-jax, or was edited"
        )
    return config(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
