import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    command = shlex.split(re.search(r"^TEST_COMMAND=(.*)$", ci, re.M).group(1))[0]
    blocks = re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) >= 2, "README must open with the main-job and test commands"
    assert blocks[1].strip() == command


def test_cli_help_lists_commands(capsys):
    import pytest

    from poz_jax.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "demo" in capsys.readouterr().out


def test_demo_prints_table(capsys):
    from poz_jax.cli import main

    assert main(["demo", "--items", "12", "--nodes", "84"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:2] == ["kept", "%"]
    assert [int(line.split()[0]) for line in lines[2:]] == [84, 75, 67, 58, 50, 42, 33, 25, 16, 8]
    assert float(lines[2].split()[2]) == 1.0


def test_using_the_functions_prints_what_its_comment_says():
    # The README's first Python example, run as a user would (float32, JAX's
    # default): what it prints must be what its last comment promises.
    import subprocess
    import sys

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Using the functions") :]
    code = re.search(r"```python\n(.*?)\n```", section, re.S).group(1)
    promised = re.search(r"print\(.*\)\s*#\s*\[([^\]]*)\]", code).group(1).split()
    env = {k: v for k, v in __import__("os").environ.items() if k != "JAX_ENABLE_X64"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout
    got = re.search(r"\[([^\]]*)\]", out).group(1).split()
    assert len(got) == len(promised)
    # float32 sums of 4096 terms: within 1e-3 of the 3 printed decimals, on any CPU
    # (the sweep's rounding bound for these data is below 1e-4; tests/bounds.py).
    for g, p in zip(got, promised, strict=True):
        assert abs(float(g) - float(p)) <= 1.5e-3, (got, promised)
