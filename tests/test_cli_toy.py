import json

import pytest

from symland.cli import main


def test_toy_end_to_end(tmp_path, capsys):
    out = tmp_path / "toy"
    rc = main(["toy", "--activation", "softplus", "--pairs", "0,1", "1,2", "--steps", "10",
               "--seed", "3", "--out", str(out), "--no-progress"])
    assert rc == 0
    data = json.loads((out / "toy.json").read_text())
    assert [p["pair"] for p in data["paths"]] == [[0, 1], [1, 2]]
    for p in data["paths"]:
        assert len(p["distance"]) == len(p["loss"]) == len(p["grad_norm"]) == len(p["converged"]) == 11
        assert set(p["permutation_point"]) >= {"loss", "grad_norm", "index", "nullity", "checks"}
    assert (out / "toy.png").stat().st_size > 10_000
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "grouped by loss" in html
    assert "Equal-loss valley" in html and data["valley"]["max_rel_loss_change"] <= 1e-12
    assert "report:" in capsys.readouterr().out


@pytest.mark.parametrize("args, word", [
    (["--activation", "swish"], "activation"),
    (["--steps", "1"], "steps"),
    (["--ratio", "1.5"], "ratio"),
    (["--ratio", "0"], "ratio"),
    (["--pairs", "0,0"], "l, m"),
    (["--pairs", "0,9"], "out of range"),
    (["--pairs", "zero"], "pairs"),
])
def test_toy_bad_input_exits_2(tmp_path, capsys, args, word):
    rc = main(["toy", "--out", str(tmp_path / "x"), "--no-progress", *args])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert word in err and len(err.splitlines()) == 1
