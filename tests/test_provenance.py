"""config.json: one layout, inputs with digests, one study per folder, earlier layouts read."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from poz_jax.io import provenance


@dataclasses.dataclass(frozen=True)
class _Cfg:
    seed: int = 3
    sets: tuple[str, ...] = ("a", "b")


def test_config_json_has_one_layout_with_digests_and_environment(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "x.npy").write_bytes(b"abc")
    (data / "sub" / "y.txt").write_bytes(b"de")
    inputs = {
        "file": provenance.input_record(data / "x.npy"),
        "folder": provenance.input_record(data),
    }
    inputs["none"] = provenance.input_record(None)
    provenance.write_config(tmp_path / "out", "exp2", _Cfg(), inputs)
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert set(saved) == {"study", "config", "inputs", "environment"}
    assert saved["study"] == "exp2" and saved["config"] == {"seed": 3, "sets": ["a", "b"]}
    assert saved["inputs"]["file"]["sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert saved["inputs"]["file"]["digest_of"] == "file bytes"
    assert saved["inputs"]["none"] == {"path": None, "sha256": None, "digest_of": ""}
    env = saved["environment"]
    for name in ("poz_jax", "jax", "jaxlib", "flax", "optax", "numpy", "backend", "device_kind"):
        assert env[name], name
    assert "git_commit" in env and "git_clean" in env
    # In a checkout the commit is the checkout's own (the package's folder moved once
    # and the lookup silently found no repository: null in every config.json).
    import subprocess

    root = Path(provenance.__file__).resolve().parents[2]
    if (root / ".git").exists():
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True).stdout.strip()  # fmt: skip
        assert env["git_commit"] == head
    # A folder's digest follows its files' names and bytes.
    before = saved["inputs"]["folder"]["sha256"]
    (data / "sub" / "y.txt").write_bytes(b"dE")
    assert provenance.input_record(data)["sha256"] != before
    (data / "sub" / "y.txt").write_bytes(b"de")
    assert provenance.input_record(data)["sha256"] == before
    (data / "sub" / "y.txt").rename(data / "sub" / "z.txt")
    assert provenance.input_record(data)["sha256"] != before


def test_a_folder_holds_one_study(tmp_path):
    provenance.write_config(tmp_path, "exp1", _Cfg(), {})
    provenance.check_study(tmp_path, "exp1")
    with pytest.raises(ValueError, match="holds the results of poz-jax exp1; give poz-jax exp3"):
        provenance.check_study(tmp_path, "exp3")
    (tmp_path / "config.json").write_text('{"something": 1}')
    with pytest.raises(ValueError, match="a config.json poz-jax did not write"):
        provenance.check_study(tmp_path, "exp2")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not readable JSON"):
        provenance.check_study(tmp_path, "exp2")
    provenance.check_study(tmp_path / "new", "exp2")  # nothing there yet: fine


@pytest.mark.parametrize(
    ("layout", "study", "fields"),
    [
        (
            {"train": {"seeds": 2, "base_seed": 1}, "data_dir": "d"},
            "exp1",
            {"seeds": 2, "base_seed": 1},
        ),
        (
            {"exp3": {"null_seed": 0, "set_seed": 0}, "inputs": "x"},
            "exp3",
            {"null_seed": 0, "set_seed": 0},
        ),
        ({"study": "compare", "config": {"seed": 4}}, "compare", {"seed": 4}),
    ],
)
def test_earlier_layouts_still_read(tmp_path, layout, study, fields):
    (tmp_path / "config.json").write_text(json.dumps(layout))
    assert provenance.saved_config(tmp_path) == (study, fields)


def test_earlier_configs_take_their_new_names():
    from poz_jax.pipelines.exp3 import Exp3Config
    from poz_jax.training.train import TrainConfig

    assert TrainConfig.from_dict({"seeds": 2, "base_seed": 5, "conv": "rows"}).seed == 5
    assert Exp3Config.from_dict({"null_seed": 2, "set_seed": 2}).seed == 2
    with pytest.raises(ValueError, match="different seeds"):
        Exp3Config.from_dict({"null_seed": 1, "set_seed": 2})
