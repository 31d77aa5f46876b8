"""Console tables and the closing lists of written files."""

import numpy as np
import pytest

from poz_jax import cli
from poz_jax.io import files
from poz_jax.report.console import HEADERS, number, summary_table, text, text_table


def test_headers_stand_over_their_columns():
    rows = [{"set": "animals", "fit": 0.51234, "p": np.nan}, {"set": "a", "fit": 1.0, "p": 0.01}]
    out = text_table(rows, [("set", text("set")), ("fit (R^2)", number("fit")), ("p", number("p"))])
    head, *body = out.splitlines()
    assert body[0].split() == ["animals", "0.5123", "NaN"]
    end = head.index("fit (R^2)") + len("fit (R^2)")
    assert body[0][:end].endswith("0.5123") and body[1][:end].endswith("1.0000")
    assert all(len(line) == len(head) for line in body)  # the last column is right-aligned
    assert body[1].startswith("a ")  # text is left-aligned


def test_describe_writes_lists_exactly_the_files_written(tmp_path):
    with files.recording() as log:
        files.write_json(tmp_path / "config.json", {"a": 1})
        files.save_arrays(tmp_path / "sub" / "x.npz", None, x=np.zeros(3))
        files.save_arrays(tmp_path / "sub" / "y.npz", None, y=np.zeros(3))
        files.write_json(tmp_path / "config.json", {"a": 2})  # twice: listed once
    (tmp_path / "untouched.csv").write_text("not written through poz-jax\n")
    msg = files.describe_writes(tmp_path, log)
    assert msg.startswith(f"wrote {tmp_path}/: config.json (")
    assert "sub/: 2 files" in msg and "untouched" not in msg
    assert msg.count("config.json") == 1


@pytest.mark.slow
def test_exp2_names_what_it_wrote_and_nothing_else(tmp_path, capsys):
    from poz_jax.data.synthetic import write_stimulus_sets

    write_stimulus_sets(tmp_path / "stim", n_items=6, n_nodes=40)
    args = ["exp2", "--stimuli", str(tmp_path / "stim"), "--n-null", "5", "--no-progress"]
    emb = ["--embeddings", str(tmp_path / "stim" / "embeddings.npz")]
    assert cli.main([*args, *emb, "--out", str(tmp_path / "a")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"wrote {tmp_path / 'a'}/: ")
    assert "embeddings.npz" not in last  # read, not written, with --embeddings
    written = {p.name for p in (tmp_path / "a").iterdir()}
    for name in written:
        assert f" {name} (" in last or f": {name} (" in last, name
    # A re-run reuses the nulls: they are no longer listed.
    assert cli.main([*args, *emb, "--out", str(tmp_path / "a")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "null_discs.npz" not in last and "summary.csv" in last


def test_a_summary_names_csv_columns_and_each_prints_under_its_one_header():
    rows = [
        {"set": "hues", "keep_fraction": 0.75, "p_improvement": 0.0123, "best_percent_kept": 12.34}
    ]
    out = summary_table(rows, "set keep_fraction p_improvement best_percent_kept")
    head, body = out.splitlines()
    at = [head.index(h) for h in ("set", "% kept", "p (gain)", "best at % kept")]
    assert at == sorted(at)
    assert body.split() == ["hues", "75%", "0.0123", "12.3%"]
    with pytest.raises(KeyError, match="no header for column 'fit_of_nothing'"):
        summary_table(rows, ["set", "fit_of_nothing"])
    assert len({h for h, *_ in HEADERS.values()}) == len(HEADERS)  # one header, one column
