import json

import numpy as np
import pytest

import symland.cli as cli
from symland._embedding import embed_in_wider
from symland._io import save_params

from microscope_points import toy_narrow_critical_point


@pytest.fixture
def main(monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", ("analyze", "valley"))
    return cli.main


def test_analyze_saved_permutation_point(tmp_path, main, capsys):
    toy, model4, p4, r = toy_narrow_critical_point("tanh", 0)
    big = embed_in_wider(p4, 1, [0, 1, 2, 3, 2])  # duplicate neuron 2: index 2
    save_params(tmp_path / "theta.npz", toy.model, big)
    np.savez(tmp_path / "data.npz", x=np.asarray(toy.x), y=np.asarray(toy.y))
    assert main(["analyze", str(tmp_path / "theta.npz"), "--data", str(tmp_path / "data.npz")]) == 0
    rep = json.loads((tmp_path / "theta.report.json").read_text())
    assert rep["kind"] == "strict saddle" and rep["index"] == 2 and rep["nullity"] >= 1
    assert rep["grad_norm"] <= 1e-13
    assert "kind: strict saddle" in capsys.readouterr().out
    out = tmp_path / "lz.json"
    assert main(["analyze", str(tmp_path / "theta.npz"), "--data", str(tmp_path / "data.npz"),
                 "--method", "lanczos", "-k", "4", "--out", str(out)]) == 0
    rep_l = json.loads(out.read_text())
    assert rep_l["index"] == 2 and rep_l["kind"] == "strict saddle" and rep_l["part"] == "smallest"
    assert rep_l["index_is_exact"]  # 2 negatives among the 4 smallest: all of them
    np.testing.assert_allclose(rep_l["smallest_eigenvalues"], rep["smallest_eigenvalues"][:4],
                               atol=1e-10 * abs(rep["max_eigenvalue"]))


def test_analyze_bad_input(tmp_path, main, capsys):
    assert main(["analyze", str(tmp_path / "none.npz"), "--data", str(tmp_path / "d.npz")]) == 2
    assert "symland analyze: error: params: no file" in capsys.readouterr().err


def test_valley_command(tmp_path, main, capsys):
    assert main(["valley", "--out", str(tmp_path), "--perm", "4,0,1,3,2", "--samples-per-move", "80"]) == 0
    s = json.loads((tmp_path / "valley.json").read_text())
    assert (tmp_path / "valley.png").stat().st_size > 10_000
    assert s["perm"] == [4, 0, 1, 3, 2] and s["n_samples"] >= 800
    assert s["max_rel_loss_change"] <= 1e-12
    assert main(["valley", "--out", str(tmp_path), "--perm", "0,0,1,2,3"]) == 2
    assert "perm" in capsys.readouterr().err
