"""The ``poz-jax`` command line: one sub-command per registered study, and the tools.

A study's sub-command is built from its :class:`~poz_jax.study.contract.Study`:
a flag per input and per config field (from the field's metadata), the
study's own extra flags, ``--out`` and ``--no-progress``.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import sys

_SEED = (0, 2**31 - 1)
_COMMON = ("func", "command", "out", "no_progress", "float32")


def _check_args(args: argparse.Namespace, rules: dict[str, tuple[int, int | None]]) -> None:
    """Each ``--flag`` value in its ``(lo, hi)`` range, or one line naming the flag."""
    from poz_jax.core.validate import check_int

    for name, (lo, hi) in rules.items():
        value = getattr(args, name)
        if value is not None:
            check_int(value, f"--{name.replace('_', '-')}", lo, hi)


@contextlib.contextmanager
def _writes(folder):
    """Run a command's block, then list every file it wrote (from the writes themselves)."""
    from poz_jax.io import files

    with files.recording() as written:
        yield
    print(files.describe_writes(folder, written))


def _study_parser(sub, study) -> None:
    """The sub-command of ``study``: its inputs, its config's fields, its extra flags."""
    from poz_jax.study.options import add_flags

    cmd = sub.add_parser(study.name, help=study.help, description=study.description)
    for spec in study.inputs:
        said = f" (default {spec.default})" if spec.default else ""
        cmd.add_argument(
            spec.option,
            dest=f"in_{spec.name}",
            metavar=spec.name.upper(),
            required=spec.required,
            help=spec.help + said,
        )
    add_flags(cmd, study.config)
    if study.extra_flags is not None:
        study.extra_flags(cmd)
    where = study.out_help or study.default_out({})
    cmd.add_argument("--out", help=f"output folder (default {where})")
    cmd.add_argument("--no-progress", action="store_true", help="no progress bars")
    cmd.set_defaults(func=lambda args: _run_study(study, args))


def _run_study(study, args: argparse.Namespace) -> int:
    from poz_jax.core.validate import FieldError
    from poz_jax.study import options
    from poz_jax.study.contract import input_paths

    fields = options.values(study.config, args)
    extra = {
        k: v
        for k, v in vars(args).items()
        if not k.startswith(("cfg_", "in_")) and k not in _COMMON
    }
    try:
        cfg = study.build_config(fields, extra)
    except FieldError as err:
        raise options.flag_error(study.config, err) from None
    given = {spec.name: getattr(args, f"in_{spec.name}") for spec in study.inputs}
    out = args.out or study.default_out({**fields, **extra})
    with _writes(out):
        res = study.execute(
            cfg, out, input_paths(study, given), progress=not args.no_progress, **extra
        )
        print(res.text)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from poz_jax.pipelines.demo import run_demo

    # A fit needs 3 items (2 pairs); keep_grid's ten levels need 10 nodes.
    _check_args(args, {"items": (3, None), "nodes": (10, None), "seed": _SEED})
    print(run_demo(args.items, args.nodes, args.seed))
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from poz_jax.study.reproduce import format_report, reproduce

    if not args.tolerance >= 0:
        raise ValueError(f"--tolerance must be a number >= 0, got {args.tolerance}")
    given = {k[3:]: v for k, v in vars(args).items() if k.startswith("in_")}
    report = reproduce(
        args.folder, tolerance=args.tolerance, progress=not args.no_progress, **given
    )
    print(format_report(report, args.folder))
    return 0 if report.ok else 1


def _convert(args: argparse.Namespace) -> int:
    from pathlib import Path

    from poz_jax.models.convert import convert

    with _writes(Path(args.dst).parent):
        convert(args.src, args.dst)
    return 0


def _make_stimuli(args: argparse.Namespace) -> int:
    from poz_jax.data.synthetic import check_stimuli_folder_free, write_stimulus_sets
    from poz_jax.io.files import check_out_dir

    # Experiment 2's fits need at least 3 items (2 pairs).
    _check_args(args, {"items": (3, None), "seed": _SEED})
    check_out_dir(args.folder, "folder")
    check_stimuli_folder_free(args.folder)
    with _writes(args.folder):
        write_stimulus_sets(args.folder, n_items=args.items, seed=args.seed)
    return 0


def _tool(run, args: argparse.Namespace) -> int:
    with _writes(args.out):
        run(args)
    return 0


def _int_args(parser, func, flags) -> None:
    """``--flag`` ints whose defaults are ``func``'s parameters': ``(flag, parameter, what)``."""
    for flag, param, what in flags:
        default = inspect.signature(func).parameters[param].default
        parser.add_argument(flag, type=int, default=default, help=f"{what} (default {default})")


def _tool_parsers(sub) -> None:
    from poz_jax.data.synthetic import write_stimulus_sets
    from poz_jax.pipelines.demo import run_demo
    from poz_jax.study import registry

    demo = sub.add_parser("demo", help="sweep a generated layer and print a table")
    _int_args(
        demo,
        run_demo,
        [("--items", "n_items", "number of items"), ("--nodes", "n_nodes", "number of nodes")]
        + [("--seed", "seed", "random seed")],
    )
    demo.set_defaults(func=_demo)

    rep = sub.add_parser(
        "reproduce",
        help="re-derive a results folder's tables from its committed inputs and compare them",
        description="Re-run the study of a results folder (its settings and inputs from its "
        "config.json) into a temporary folder and compare every CSV table cell by cell, and "
        "check every other result file is there. Exit 0: every cell reproduced; 1: some "
        "differ or are missing (each is printed); 2: an input is missing or not the recorded one.",
    )
    rep.add_argument("folder", help="a results folder (e.g. experiments/results/exp1)")
    seen = set()
    for study in registry.all_studies():
        for spec in study.inputs:
            if spec.committed or spec.option in seen:
                continue
            seen.add(spec.option)
            what = f"{spec.name.replace('_', ' ')} (default: the path config.json records)"
            rep.add_argument(
                spec.option, dest=f"in_{spec.name}", metavar=spec.name.upper(), help=what
            )
    rep.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        help="largest absolute difference of a number to accept (default 0: every digit; "
        "another XLA release or backend may move float32 results by rounding)",
    )
    rep.add_argument("--no-progress", action="store_true", help="no progress bars")
    rep.set_defaults(func=_reproduce)

    conv = sub.add_parser(
        "convert-vgg16",
        help="convert torchvision/timm VGG-16 weights to a poz-jax .npz",
        description="Convert torchvision's vgg16-397923af.pth (needs torch) or timm's "
        "vgg16.tv_in1k model.safetensors (NumPy only) to Flax parameters in an .npz that "
        "loads without torch.",
    )
    conv.add_argument("src", help="vgg16-397923af.pth or model.safetensors")
    conv.add_argument("dst", help="output .npz")
    conv.set_defaults(func=_convert)

    from poz_jax.pipelines.extract import TOOLS

    for name, short, long, add_args, run in TOOLS:
        tool = sub.add_parser(name, help=short, description=long)
        add_args(tool)
        tool.set_defaults(func=lambda args, run=run: _tool(run, args))

    make = sub.add_parser(
        "make-stimuli", help="write generated stimulus sets (images, matrices, planted embeddings)"
    )
    make.add_argument("folder", help="output folder")
    _int_args(
        make,
        write_stimulus_sets,
        [("--items", "n_items", "images per set"), ("--seed", "seed", "random seed")],
    )
    make.set_defaults(func=_make_stimuli)


def build_parser() -> argparse.ArgumentParser:
    """The ``poz-jax`` parser: a sub-command per registered study, then the tools."""
    from poz_jax.study import registry

    parser = argparse.ArgumentParser(
        prog="poz-jax",
        description="Rarely-firing nodes (PoZ) and representational similarity, in JAX.",
    )
    from poz_jax import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for study in registry.all_studies():
        _study_parser(sub, study)
    _tool_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``poz-jax`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:  # DataError is a ValueError
        print(f"poz-jax: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the disk, permissions, a folder that cannot be made
        where = f" {err.filename}" if err.filename else ""
        print(f"poz-jax: error: cannot write{where}: {err.strerror or err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
