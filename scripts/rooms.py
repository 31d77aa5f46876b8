"""Follow each study's config as a parameter: which rooms of ``poz_jax/`` it enters.

From a study's ``run(cfg, ...)``, every call that passes the config itself
(``cfg`` as an argument, not one of its fields) is followed into the called
function and on from the parameter that receives it, through the whole
package. A *room* is the first part of a module's name under ``poz_jax``
(``core``, ``data``, ``models``, ``training``, ``analysis``, ``io``,
``report``, ``study``, ``pipelines``, ``cli``). A *climb back up* is a call
that hands the config to a room higher in the flow than the caller's
(:data:`RANKS`: the command line, the studies, what they share, tables and
figures, analysis and training, models and data, files, the array core).
Issue 35 asks for at most 6 rooms and 4 climbs per study.

Usage: ``python scripts/rooms.py`` (prints one line per study, and each
call that carries the config with ``--calls``).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "poz_jax"
# Higher in the flow first: a call to a smaller rank than the caller's climbs back up.
RANKS = {
    "cli": 0,
    "pipelines": 1,
    "study": 2,
    "report": 3,
    "analysis": 4,
    "training": 4,
    "models": 5,
    "data": 5,
    "io": 6,
    "core": 7,
}


def room(module: str) -> str:
    """``"poz_jax.analysis.stats"`` -> ``"analysis"``."""
    return module.split(".")[1]


def _path(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    return Path(spec.origin) if spec is not None and spec.origin else None


class _Module:
    """One parsed module: its top-level functions and what its names import."""

    def __init__(self, name: str):
        self.name = name
        tree = ast.parse(_path(name).read_text())
        self.functions = {
            n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        self.imports: dict[str, str] = {}  # local name -> dotted target (module or module.attr)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    self.imports[alias.asname or alias.name.split(".")[0]] = alias.name


_MODULES: dict[str, _Module] = {}


def _module(name: str) -> _Module | None:
    if not name.startswith(PACKAGE + ".") or _path(name) is None:
        return None
    if name not in _MODULES:
        _MODULES[name] = _Module(name)
    return _MODULES[name]


def _is_module(dotted: str) -> bool:
    try:
        return importlib.util.find_spec(dotted) is not None
    except (ModuleNotFoundError, ValueError):
        return False


def _callee(mod: _Module, func: ast.expr) -> tuple[str, str] | None:
    """``(module, function)`` a call goes to, when it is in the package."""
    if isinstance(func, ast.Name):
        if func.id in mod.functions:
            return mod.name, func.id
        target = mod.imports.get(func.id)
        if target and target.startswith(PACKAGE + "."):
            owner, _, attr = target.rpartition(".")
            return owner, attr
    elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        target = mod.imports.get(func.value.id)
        if target and target.startswith(PACKAGE + ".") and _is_module(target):
            return target, func.attr
    return None


def _receiving(fn: ast.FunctionDef, call: ast.Call, param: str) -> list[str]:
    """The callee's parameters that receive ``param`` in ``call``."""
    names = [a.arg for a in fn.args.posonlyargs + fn.args.args]
    got = []
    for i, arg in enumerate(call.args):
        if isinstance(arg, ast.Name) and arg.id == param and i < len(names):
            got.append(names[i])
    for kw in call.keywords:
        if isinstance(kw.value, ast.Name) and kw.value.id == param and kw.arg:
            got.append(kw.arg)
    return got


def _passes(call: ast.Call, param: str) -> bool:
    values = list(call.args) + [kw.value for kw in call.keywords]
    return any(isinstance(v, ast.Name) and v.id == param for v in values)


@dataclass
class Path_:
    """Where one study's config goes: the rooms entered and each call carrying it."""

    study: str
    rooms: list[str] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (caller, callee) dotted

    @property
    def climbs(self) -> list[tuple[str, str]]:
        return [
            (a, b)
            for a, b in self.calls
            if RANKS[room(b.rsplit(".", 1)[0])] < RANKS[room(a.rsplit(".", 1)[0])]
        ]


def follow(study_module: str, start: str = "run", param: str = "cfg") -> Path_:
    """The config's path from ``study_module.start``'s parameter ``param``."""
    found = Path_(study_module.rsplit(".", 1)[-1], rooms=[room(study_module)])
    seen: set[tuple[str, str, str]] = set()
    todo = [(study_module, start, param)]
    while todo:
        mname, fname, p = todo.pop()
        if (mname, fname, p) in seen:
            continue
        seen.add((mname, fname, p))
        mod = _module(mname)
        fn = mod.functions.get(fname) if mod else None
        if fn is None:
            continue
        for node in ast.walk(fn):
            if not (isinstance(node, ast.Call) and _passes(node, p)):
                continue
            target = _callee(mod, node.func)
            if target is None:
                continue
            owner, attr = target
            found.calls.append((f"{mname}.{fname}", f"{owner}.{attr}"))
            if room(owner) not in found.rooms:
                found.rooms.append(room(owner))
            callee_mod = _module(owner)
            callee = callee_mod.functions.get(attr) if callee_mod else None
            if callee is not None:
                todo += [(owner, attr, q) for q in _receiving(callee, node, p)]
    found.calls = sorted(set(found.calls))
    return found


def studies() -> dict[str, str]:
    """Every registered study's module (the registry's own list)."""
    from poz_jax.study.registry import STUDIES

    return dict(STUDIES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", action="store_true", help="print every call carrying the config")
    args = parser.parse_args()
    print(f"{'study':<10} {'rooms':>5} {'climbs':>6}  rooms entered")
    for name, module in studies().items():
        p = follow(module)
        print(f"{name:<10} {len(p.rooms):>5} {len(p.climbs):>6}  {' -> '.join(p.rooms)}")
        if args.calls:
            for a, b in p.calls:
                mark = "  (climbs)" if (a, b) in p.climbs else ""
                print(f"    {a} -> {b}{mark}")


if __name__ == "__main__":
    main()
