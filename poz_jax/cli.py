"""The ``poz-jax`` command line."""

from __future__ import annotations

import argparse
import sys


def _demo(args: argparse.Namespace) -> int:
    from poz_jax.demo import run_demo

    print(run_demo(args.items, args.nodes, args.seed))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="poz-jax",
        description="Rarely-firing nodes (PoZ) and representational similarity, in JAX.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="sweep a generated layer and print a table")
    demo.add_argument("--items", type=int, default=120, help="number of items (default 120)")
    demo.add_argument("--nodes", type=int, default=4096, help="number of nodes (default 4096)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``poz-jax`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"poz-jax: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
