import json

import pytest

from symland.cli import main


def test_toy_end_to_end(tmp_path, capsys):
    out = tmp_path / "toy"
    rc = main(["toy", "--activation", "softplus", "--pairs", "0,1", "1,2", "--steps", "10", "--method", "fixed-delta",
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
    # the table shows the gradient norm and the §4.2 checks; 1-based labels only
    assert "‖∇L‖∞" in html and "≤ 1 negative eigenvalue" in html
    assert "1 &amp; 2" in html and "2 &amp; 3" in html and "0 &amp; 1" not in html
    # no valley unless asked for (it would come from another toy otherwise)
    assert "Equal-loss valley" not in html and "valley" not in data
    # the tolerances recorded are those the paths were solved with
    assert data["problem"]["gtol"] == data["paths"][0]["gtol"]
    assert data["problem"]["max_newton_steps"] == data["paths"][0]["max_newton_steps"] == 50
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "toy.json", "toy.png"]
    assert "report:" in capsys.readouterr().out


def test_permutation_point_rows_say_not_critical():
    from types import SimpleNamespace

    import numpy as np

    from symland._results import CriticalPointReport
    from symland.experiments.toy import permutation_point_rows

    rep = CriticalPointReport.from_spectrum(1.0, 1e-3, np.array([-1.0, -2.0, 3.0]), gtol=1e-8)
    crit = CriticalPointReport.from_spectrum(2.0, 1e-12, np.array([-1.0, -2.0, 3.0]), gtol=1e-8)

    def path(r, l, m):
        ok = {"critical": r.is_critical, "at_most_one_negative": r.index <= 1 if r.is_critical else None,
              "at_least_n_next_zero": r.nullity >= 1 if r.is_critical else None}
        return SimpleNamespace(permutation_point_report=r, l=l, m=m, checks=lambda: ok,
                               all_converged=True, converged=np.ones(3, bool), status=("converged",) * 3)

    rows = permutation_point_rows([path(rep, 0, 1), path(crit, 2, 4)], 1)
    assert rows[0][1] == "1 & 2" and rows[0][4] == "not critical" and rows[0][5] == "not critical"
    assert rows[0][7] == "—"
    assert rows[1][1] == "3 & 5" and rows[1][5] == "2" and rows[1][7] == "NO (2 negative)"
    assert rows[1][8] == "NO (0 zero < 1)"


@pytest.mark.slow
def test_toy_valley_uses_the_same_activation_and_seed(tmp_path):
    out = tmp_path / "toy"
    assert main(["toy", "--activation", "tanh", "--pairs", "0,1", "--steps", "5", "--seed", "0",
                 "--method", "fixed-delta", "--valley", "--out", str(out), "--no-progress"]) == 0
    data = json.loads((out / "toy.json").read_text())
    assert data["valley"]["activation"] == "tanh" and data["valley"]["seed"] == 0
    assert data["valley"]["max_rel_loss_change"] <= 1e-12
    assert "Equal-loss valley" in (out / "report.html").read_text()


@pytest.mark.slow
def test_toy_mep_beside_fixed_delta(tmp_path, capsys):
    """--method both: the tanh seed-2 pair 2&3 (complete fixed-δ path) gets a certified saddle."""
    out = tmp_path / "toy"
    assert main(["toy", "--activation", "tanh", "--seed", "2", "--pairs", "2,3", "--steps", "50",
                 "--out", str(out), "--no-progress"]) == 0
    data = json.loads((out / "toy.json").read_text())
    (rec,) = data["saddles"]
    assert rec["certified"] and "Minimum-energy paths" in (out / "report.html").read_text()
    assert "1 of 1 pairs with a certified saddle" in capsys.readouterr().out


@pytest.mark.parametrize("args, word", [
    (["--activation", "swish"], "activation"),
    (["--method", "neb"], "method"),
    (["--steps", "1"], "steps"),
    (["--ratio", "1.5"], "ratio"),
    (["--ratio", "0"], "ratio"),
    (["--pairs", "0,0"], "pairs"),
    (["--pairs", "0,9"], "out of range"),
    (["--pairs", "zero"], "pairs"),
])
def test_toy_bad_input_exits_2(tmp_path, capsys, args, word):
    rc = main(["toy", "--out", str(tmp_path / "x"), "--no-progress", *args])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert word in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
