import json

import pytest

from symland.cli import main


def test_mnist_on_digits(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["mnist", "--data", "digits", "--H", "4", "--seeds", "1", "--samples", "300",
               "--steps", "6", "--epochs", "5", "--method", "matrix-free", "--max-hvps", "30",
               "--no-progress", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    result = json.loads((out / "mnist.json").read_text())
    assert result["data"]["source"].startswith("scikit-learn digits")
    (run,) = result["runs"]
    assert run["path"]["method"] == "matrix-free" and run["path"]["solver"] == "trust-ncg"
    assert result["setting"]["solver"] == "trust-ncg" and run["path"]["factorisations"] == 0
    assert run["H"] == 4 and run["path"]["layer"] == 2 and len(run["accuracy"]) == 8
    assert run["barrier"] >= max(run["path"]["loss"])
    # the HVP budget per δ step is kept, and a step that ran out says so
    assert result["setting"]["max_hvps"] == 30
    path = run["path"]
    assert max(path["hessians"]) <= 30
    for L, g, status in zip(path["loss"], path["grad_norm"], path["status"]):
        assert (status == "converged") == (g <= path["gtol"] * max(1.0, L)), (status, g)
    report = (out / "report.html").read_text()
    assert "at most 30 Hessian-vector products per step" in report
    if not path["all_converged"]:  # the barrier of such a path is an upper bound, and the report says so
        assert "upper bounds" in report
    assert run["path"]["permutation_point"]["n"] == 64 * 4 + 4 + 4 * 4 + 4 + 4 * 10 + 10
    assert (out / "mnist.png").stat().st_size > 0
    assert "digits" in (out / "report.html").read_text()
    # inputs projected off their near-null directions (digits: border pixels that stay dark), said in the report
    d = result["data"]
    assert d["input_rtol"] == 1e-3 and d["dropped_directions"] >= 1
    assert 0 <= d["dropped_energy"] < d["dropped_directions"] * 1e-3 ** 2  # each σ² < rtol²·σ_max² ≤ rtol²·Σσ²
    assert f"projected off the {d['dropped_directions']} input directions" in report
    # the dark input directions' exactly flat first-layer directions are counted beside the near-zero eigenvalues
    assert run["input_flat"] == 4 * d["dropped_directions"] > 0
    assert f"{run['input_flat']} flat along dark inputs" in report and "not from the permutation symmetry" in report
    assert "matrix-free, trust-ncg" in report
    # how far a hidden-layer-1 neuron rescaled along the path (the Fig. 3 run-off), per path in the table
    up = path["upstream_scale"]
    assert len(up) == len(path["loss"]) and up[0] == pytest.approx(1.0) and min(up) > 0
    assert f"{max(up):.2f}×" in report and "Layer below rescaled" in report
    pp = path["permutation_point"]  # 330 parameters: a dense spectrum, exact index
    assert pp["part"] == "all" and f">{pp['index']}<" in report and f"{pp['nullity']} of {pp['n']} computed" in report
    # Above DENSE_THRESHOLD a Lanczos run may stop at its budget: the table says what was found.
    from symland.experiments.mnist import mnist_report_sections

    assert pp["index_exact"] is True and pp["even_block"] is None
    pp.update(part="partial", index=1, index_exact=False, nullity=0, n_eigenvalues=1)
    html = "".join(body for _, body in mnist_report_sections(result, out / "mnist.png"))
    assert "≥ 1" in html and "0 of 1 found (the σ-odd block exactly, Lanczos within its budget)" in html
    # The even block's smallest by LOBPCG (as on Fig. 3): an exact index, and the table says how.
    pp.update(part="smallest", index=9, index_exact=True, nullity=219, n_eigenvalues=247,
              even_block={"eigenvalues": [1e-9, 2e-9], "residuals": [1e-10, 1e-10], "status": "converged",
                          "hvps": 40, "n_flat": 210})
    html = "".join(body for _, body in mnist_report_sections(result, out / "mnist.png"))
    assert ">9<" in html and "≥ 9" not in html
    assert ("219 of 247 found (the σ-odd block exactly; the even block&#x27;s 2 smallest by preconditioned "
            "LOBPCG, converged, and its 210 exactly flat directions)") in html


@pytest.mark.parametrize("argv, match", [
    (["--H", "1"], "H: must be ≥ 2"),
    (["--H", "4,x"], "H: expected an integer"),
    (["--layer", "3"], "layer: must be ≤ 2"),
    (["--layer", "0"], "layer: must be ≥ 1"),
    (["--samples", "5000"], "samples: asked for 5000 samples, the data set has 1797"),
    (["--pair", "1,1"], "pair: l and m must differ"),
    (["--max-hvps", "0"], "max-hvps: must be ≥ 1"),
    (["--solver", "lbfgs"], "solver: unknown value 'lbfgs'"),
    (["--pair", "0,7", "--H", "4"], "pair: neuron 7 does not exist"),
    (["--input-rtol", "1"], "input-rtol: must be < 1"),
    (["--input-rtol", "-0.1"], "input-rtol: must be ≥ 0"),
    (["--input-rtol", "nan"], "input-rtol: must be finite"),
    (["--gauge", "unit"], "gauge: unknown value 'unit'"),
])
def test_bad_arguments(tmp_path, capsys, argv, match):
    out = tmp_path / "run"
    rc = main(["mnist", "--data", "digits", "--out", str(out), *argv])
    err = capsys.readouterr().err
    assert rc == 2 and match in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_bad_data_folder(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    rc = main(["mnist", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2 and "lacks train-images-idx3-ubyte" in err
    assert not (tmp_path / "run").exists()


def test_mnist_with_the_gauss_newton_solver(tmp_path, capsys):
    """--solver trust-gn reaches the path, is recorded, and the report names it with its factorisations."""
    out = tmp_path / "run"
    rc = main(["mnist", "--data", "digits", "--H", "3", "--seeds", "1", "--samples", "200", "--steps", "2",
               "--epochs", "2", "--method", "matrix-free", "--solver", "trust-gn", "--max-hvps", "20",
               "--input-rtol", "0", "--no-progress", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    result = json.loads((out / "mnist.json").read_text())
    path = result["runs"][0]["path"]
    assert result["setting"]["solver"] == path["solver"] == "trust-gn" and path["factorisations"] >= 1
    assert max(path["hessians"]) <= 20 + 2  # trust-pcg's loop: plus the initial radius's HVP and one pᵀHp
    report = (out / "report.html").read_text()
    assert f"matrix-free, trust-gn ({path['factorisations']} fact.)" in report
    # --input-rtol 0: the raw inputs, and the report does not claim a projection
    assert result["data"]["dropped_directions"] == 0 and "projected off" not in report
    # the default gauge (softplus): the paper's δ, said in the report
    assert result["setting"]["gauge"] == "auto" and path["gauge"] is None and "the paper's δ" in report


def test_mnist_in_the_upstream_gauge(tmp_path, capsys):
    """--gauge upstream reaches the path: δ₀ is the pair's distance in that gauge, and the JSON and the
    report say which distance was used."""
    import numpy as np

    import symland as s
    from symland.experiments.mnist import fig3_data
    from symland._teacher import train_teacher

    out = tmp_path / "run"
    argv = ["--data", "digits", "--H", "3", "--seeds", "1", "--samples", "200", "--steps", "2", "--epochs", "2",
            "--method", "matrix-free", "--max-hvps", "10", "--no-progress"]
    rc = main(["mnist", *argv, "--gauge", "upstream", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    result = json.loads((out / "mnist.json").read_text())
    run = result["runs"][0]
    path = run["path"]
    assert result["setting"]["gauge"] == path["gauge"] == "upstream"
    x, labels, _, _ = fig3_data("digits", 200)
    teacher = train_teacher(x, labels, 3, activation="softplus", seed=0, epochs=2)
    l, m = run["pair"]
    assert path["distance"][0] == pytest.approx(float(s.pair_distance(teacher.params, 2, l, m, "upstream",
                                                                      model=teacher.model, x=x)),
                                                rel=1e-10)
    assert not np.isclose(path["distance"][0], float(s.neuron_distance(teacher.params, 2, l, m)))
    report = (out / "report.html").read_text()
    assert "--gauge upstream</code>: ‖d ⊙" in report and "does not change under this rescaling" in report
