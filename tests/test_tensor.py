import itertools
import numpy as np
import pytest

from symland import isotropy_subgroup, tensor_isotropy, tensor_loss, tensor_minima
from symland.cli import main
from symland._tensor import check_order, explicit_tensor_loss, symmetric_tensor
from symland.gaussian import isotropy_group


@pytest.mark.parametrize("p", [3, 4])
def test_closed_form_equals_explicit_tensor(p):
    rng = np.random.default_rng(p)
    for k, d in [(2, 3), (4, 3), (3, 2)]:
        W = rng.normal(size=(k, d))
        V = rng.normal(size=(d + 1, d))
        assert np.isclose(float(tensor_loss(W, p=p)), float(explicit_tensor_loss(W, p=p)), rtol=1e-12)
        assert np.isclose(float(tensor_loss(W, V, p=p)), float(explicit_tensor_loss(W, V, p=p)), rtol=1e-12)


def test_symmetric_tensor_entries():
    W = np.array([[1.0, 2.0], [0.5, -1.0]])
    T = np.asarray(symmetric_tensor(W, 3))
    for a, b, c in itertools.product(range(2), repeat=3):
        assert np.isclose(T[a, b, c], sum(w[a] * w[b] * w[c] for w in W))


@pytest.mark.parametrize("bad", [2, 1, 0, -3, 2.5, "3", True, None])
def test_order_refused(bad):
    with pytest.raises(ValueError, match="p:"):
        check_order(bad)
    with pytest.raises(ValueError, match="p:"):
        tensor_loss(np.eye(3), p=bad)


def test_order_accepts_integral_float():
    assert check_order(4.0) == 4


def _structured(rng, k):
    a, b, c = rng.normal(size=3)
    W = np.full((k, k), b)
    W[np.diag_indices(k)] = a
    W[0, 0] = c
    return np.eye(k)[rng.permutation(k)] @ W @ np.eye(k)[rng.permutation(k)]


def test_isotropy_order_matches_brute_force():
    rng = np.random.default_rng(0)
    for trial in range(60):
        k = int(rng.integers(2, 5))
        W = _structured(rng, k) if trial % 2 else rng.normal(size=3)[rng.integers(0, 3, size=(k, k))]
        assert isotropy_subgroup(W).order == len(isotropy_group(W, max_k=4))


def _signed_brute_force(W, tol=1e-9):
    k, d = W.shape
    n = 0
    for pi in itertools.permutations(range(k)):
        for rho in itertools.permutations(range(d)):
            for s in itertools.product((1, -1), repeat=k):
                for t in itertools.product((1, -1), repeat=d):
                    M = (np.array(s)[:, None] * W[np.argsort(pi)][:, np.argsort(rho)]) * np.array(t)[None]
                    n += np.max(np.abs(M - W)) <= tol
    return n


def test_signed_isotropy_matches_brute_force():
    rng = np.random.default_rng(1)
    for W in [np.eye(2), np.array([[1.0, 0.5], [0.5, 1.0]]), np.array([[1.0, -0.5], [0.5, 1.0]]),
              rng.normal(size=(2, 3)), np.array([[1.0, 0.0, 0.0], [0.0, 0.3, 0.3]])]:
        assert isotropy_subgroup(W, signed=(0, 1)).order == _signed_brute_force(W)


def test_isotropy_names_and_chain():
    W = np.eye(5)
    W[0, 0] = -0.5
    g = isotropy_subgroup(W)
    assert g.name == "ΔS_4" and g.order == 24
    assert g.orbit_sizes(0) == (4, 1) and g.orbit_sizes(1) == (4, 1)
    # three-layer chain: teacher (I, I) has isotropy ΔS_3 acting on inputs and both layers
    g3 = isotropy_subgroup([np.eye(3), np.eye(3)])
    assert g3.order == 6 and all(g3.orbit_sizes(l) == (3,) for l in range(3))
    with pytest.raises(ValueError, match="matrices:"):
        isotropy_subgroup([np.eye(3), np.eye(2)])
    with pytest.raises(ValueError, match="tol:"):
        isotropy_subgroup(np.eye(2), tol=-1.0)


def test_tensor_isotropy_of_global_minimum():
    W = np.eye(3)[[2, 0, 1]]
    odd = tensor_isotropy(W, 3)
    assert odd["isotropy"].order == 6 and odd["signed_order"] is None
    W4 = W * np.array([[1.0], [-1.0], [1.0]])  # a row sign is a gauge for even p
    even = tensor_isotropy(W4, 4)
    assert even["isotropy"].order == 6 and even["signed_order"] == 48


@pytest.mark.parametrize("p", [3, 4])
def test_tensor_minima_small(p):
    r = tensor_minima(3, p=p, n_starts=12, steps=600, batch=6)
    assert sum(r.kinds().values()) == 12
    dist = r.isotropy_distribution()
    assert dist, "some start must end at a minimum"
    glob = [e for e in dist if e["global"]]
    assert glob and all(e["order"] == 6 for e in glob)
    for rep, W in zip(r.reports, r.points):
        if str(rep.kind) == "minimum":
            assert rep.grad_norm <= rep.gtol and np.isclose(rep.loss, float(tensor_loss(W, p=p)), atol=1e-12)
    d = r.to_dict()
    assert d["n_starts"] == 12 and set(d["kinds"]) <= {"minimum", "strict saddle", "degenerate", "not critical"}


@pytest.mark.parametrize("args,msg", [(["--p", "2"], "p: must be ≥ 3"), (["--p", "3.5"], "p: expected an integer"),
                                      (["--d", "5:4"], "reversed"), (["--starts", "0"], "starts")])
def test_cli_bad_input(tmp_path, capsys, args, msg):
    rc = main(["tensor", *args, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_cli_small_run(tmp_path, capsys):
    rc = main(["tensor", "--d", "3", "--p", "3", "--starts", "8", "--steps", "300", "--out", str(tmp_path / "o")])
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "o" / "tensor.json").exists() and (tmp_path / "o" / "report.html").exists()
