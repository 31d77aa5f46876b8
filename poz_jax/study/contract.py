"""What a study is (its name, config, inputs and run) and what a run returns (a Result).

Each study module defines one :class:`Study` named ``STUDY``; the registry
(:mod:`poz_jax.study.registry`) lists them. The command line builds one
subcommand per study from it (a flag per config field and per input) and
``poz-jax reproduce`` re-runs any study's folder from it, with no branch
written for any one study.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from poz_jax.study.options import dashed, from_saved


@dataclasses.dataclass(frozen=True)
class Input:
    """A file or folder a study reads.

    ``name``: the keyword of the study's ``run`` and the entry of
    ``config.json``'s ``inputs`` (``record``, when that differs). ``flag``:
    the command line's (default ``--`` and the name with dashes).
    ``default``: the path used when the flag is not given. ``digest``:
    whether ``reproduce`` refuses a path whose sha256 is not the recorded one
    (off for inputs recorded by the arrays read from them). ``committed``:
    the file of the results folder that ``reproduce`` reads instead (an input
    the study itself wrote there).
    """

    name: str
    help: str
    required: bool = False
    default: str | None = None
    flag: str | None = None
    record: str | None = None
    digest: bool = True
    committed: str | None = None

    @property
    def option(self) -> str:
        return self.flag or dashed(self.name)

    @property
    def recorded_as(self) -> str:
        return self.record or self.name


# Experiment 1's committed networks: the input of every study of its LeNet5s.
LENET_NETWORKS = Input(
    "networks",
    "stacked LeNet5s (Experiment 1's networks.npz)",
    default="experiments/results/exp1/networks.npz",
)


@dataclasses.dataclass(frozen=True)
class Result:
    """What every study's run returns, the same for every study.

    ``rows``: the headline rows (the ones the console summary shows, as in
    the study's main CSV table); ``figures``: the figure files written;
    ``text``: the console summary the command prints; ``extra``: anything
    else a caller may want by name (Experiment 1's test accuracies, the
    trimming study's iterative path).
    """

    rows: list[dict]
    figures: list[Path] = dataclasses.field(default_factory=list)
    text: str = ""
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)


RunFn = Callable[..., Result]


@dataclasses.dataclass(frozen=True)
class Study:
    """One study: everything the command line and ``reproduce`` need to run it.

    ``run(cfg, out, <input name>=path or None, ..., progress=..., **options)``
    writes the study's folder (each input is the keyword of its name;
    ``options``: the values of ``extra_flags`` and ``verify``, passed when
    ``run`` takes them) and returns its :class:`Result`, whose ``text`` the
    command prints (:meth:`Study.execute` calls it so). ``make_config``
    builds the config from the fields the command line gave (default: the
    config class itself). ``out``: the default output folder, or a function of
    the given flags that makes it (``out_help`` then says it in words).
    ``carried``: files of a results folder that a re-derivation starts from
    (Experiment 1's trained networks).
    """

    name: str
    help: str
    description: str
    config: type
    inputs: tuple[Input, ...]
    run: RunFn
    out: str | Callable[[dict], str] = ""
    out_help: str = ""
    make_config: Callable[..., Any] | None = None
    saved_names: Callable[[dict], dict] | None = None
    extra_flags: Callable[[Any], None] | None = None
    carried: tuple[str, ...] = ()

    def execute(self, cfg: Any, out: str | Path, inputs: Mapping[str, Any], **options) -> Result:
        """``run`` with each input as the keyword of its name and the options it takes."""
        params = inspect.signature(self.run).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        given = {k: v for k, v in options.items() if takes_any or k in params}
        return self.run(cfg, out, **inputs, **given)

    def default_out(self, options: dict) -> str:
        """The output folder when ``--out`` is not given."""
        if callable(self.out):
            return self.out(options)
        return self.out or f"results/{self.name}"

    def build_config(self, fields: dict, options: dict) -> Any:
        """The config from the given fields (and the extra flags' values)."""
        if self.make_config is not None:
            return self.make_config(fields, options)
        return self.config(**fields)

    def config_from_saved(self, fields: dict, where: str) -> Any:
        """The config a results folder's ``config.json`` saved, checked field by field."""
        if self.saved_names is not None:
            fields = self.saved_names(fields)
        return from_saved(self.config, fields, where)


def input_paths(study: Study, given: dict[str, Any]) -> dict[str, Path | None]:
    """``{input name: path}``: the given ones, else each input's default (or ``None``)."""
    out = {}
    for spec in study.inputs:
        value = given.get(spec.name)
        value = spec.default if value is None else value
        out[spec.name] = None if value is None else Path(value)
    return out
