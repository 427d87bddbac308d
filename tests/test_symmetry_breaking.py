import numpy as np
import jax
import jax.numpy as jnp
import pytest

from symland import isotropy_subgroup, least_symmetry_breaking
from symland._symmetry_breaking import (SETTINGS, check_distribution, covariance_root, sample_inputs,
                                        setting_loss)
from symland.cli import main


def test_covariance_root():
    S = np.asarray(covariance_root(4))
    assert np.allclose(S @ S, 0.7 * np.eye(4) + 0.3 * np.ones((4, 4)))


def test_correlated_closed_form_against_monte_carlo():
    k = 3
    f, n = setting_loss("correlated-relu", k)
    W = np.random.default_rng(0).normal(size=(k, k))
    x = sample_inputs("correlated", k, 400_000, seed=3)
    r = jnp.sum(jax.nn.relu(x @ W.T), 1) - jnp.sum(jax.nn.relu(x), 1)
    vals = 0.5 * r ** 2
    se = float(jnp.std(vals)) / np.sqrt(vals.size)
    assert abs(float(f(jnp.asarray(W.ravel()))) - float(jnp.mean(vals))) < 4 * se


def test_sampled_losses_vanish_at_teacher():
    for name in ("mixture-relu", "gaussian-softplus", "three-layer-relu"):
        f, n = setting_loss(name, 3, n_samples=500)
        theta = np.concatenate([np.eye(3).ravel()] * (n // 9))
        assert float(f(jnp.asarray(theta))) == 0.0


def test_mixture_is_non_product():
    x = np.asarray(sample_inputs("mixture", 3, 200_000, seed=1))
    c = np.corrcoef(x.T)
    assert c[0, 1] > 0.15  # the shared ±μ makes the coordinates dependent


def test_unknown_names():
    with pytest.raises(ValueError, match="distribution: unknown"):
        check_distribution("laplace")
    with pytest.raises(ValueError, match="distribution: unknown"):
        sample_inputs("laplace", 3, 10)
    with pytest.raises(ValueError, match="setting: unknown"):
        least_symmetry_breaking("gaussian-tanh", 3)
    with pytest.raises(ValueError, match="k:"):
        least_symmetry_breaking("gaussian-erf", 1)


def test_small_run_finds_global_minimum_with_full_isotropy():
    r = least_symmetry_breaking("gaussian-erf", 3, n_runs=6, steps=800, batch=6)
    dist = r.isotropy_distribution()
    glob = [e for e in dist if e["global"]]
    assert glob and glob[0]["order"] == 6 and glob[0]["isotropy"] == "ΔS_3"
    assert sum(r.kinds().values()) == 6
    assert r.to_dict()["least_symmetry_breaking"]["holds"] in (True, False, None)


def test_three_layer_teacher_isotropy():
    g = isotropy_subgroup([np.eye(4), np.eye(4)], tol=3e-2)
    assert g.order == 24


def test_cli_bad_setting(tmp_path, capsys):
    assert main(["symmetry-breaking", "--settings", "gaussian-tanh", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "settings: unknown setting" in err and not (tmp_path / "o").exists()
    assert main(["symmetry-breaking", "--settings", ",", "--out", str(tmp_path / "o")]) == 2


def test_cli_small(tmp_path):
    assert main(["symmetry-breaking", "--settings", "gaussian-erf,mixture-relu", "--k", "3", "--runs", "4",
                 "--steps", "300", "--samples", "500", "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "symmetry_breaking.json").exists()
