"""MkDocs hook: the command-line reference page, generated from the parsers themselves."""

from __future__ import annotations

import argparse


def _help(parser: argparse.ArgumentParser) -> str:
    return parser.format_help().replace("```", "'''")


def cli_reference() -> str:
    """Markdown of ``poz-jax --help`` and every sub-command's ``--help``."""
    from poz_jax.cli import build_parser

    parser = build_parser()
    parts = [
        "# Command line\n",
        "Generated from the parsers when the site is built: what `--help` prints.\n",
        f"```text\n{_help(parser)}```\n",
    ]
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        parts.append(f"## `poz-jax {name}`\n\n```text\n{_help(command)}```\n")
    return "\n".join(parts)


def on_page_read_source(page, config):
    if page.file.src_uri == "reference/cli.md":
        return cli_reference()
    return None
