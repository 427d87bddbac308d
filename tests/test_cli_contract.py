"""The command-line contract (README, "Command line"): every bad argument or input file gives
one line on stderr naming the argument, exit code 2, no traceback, nothing left behind, and
is refused before any computation starts."""

import zipfile

import numpy as np
import pytest

from symland.cli import main
from symland.cli._options import atomic_file, atomic_output, check_cost, output_file, plot_path


@pytest.fixture
def files(tmp_path, monkeypatch):
    """A folder with good and bad inputs; the tests run inside it."""
    monkeypatch.chdir(tmp_path)
    np.savez("data.npz", x=np.zeros((10, 2)), y=np.zeros(10))
    np.savez("p.npz", W1=np.ones((3, 2)), b1=np.zeros(3), W2=np.ones((1, 3)), b2=np.zeros(1),
             activation=np.array("tanh"))
    raw = (tmp_path / "p.npz").read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "notzip.npz").write_text("hello world")
    np.save("single.npy", np.zeros(3))
    bad = dict(W1=np.ones((3, 2)), b1=np.zeros(3), W2=np.ones((1, 3)), b2=np.zeros(1),
               activation=np.array("tanh"))
    np.savez("nan.npz", **{**bad, "W1": np.full((3, 2), np.nan)})
    np.savez("inf.npz", **{**bad, "b2": np.array([np.inf])})
    np.savez("complex.npz", **{**bad, "W2": np.ones((1, 3)) * 1j})
    np.savez("object.npz", **{**bad, "W1": np.array([None, 1], dtype=object)})
    np.savez("noact.npz", W1=np.ones((3, 2)), W2=np.ones((1, 3)))
    np.savez("badact.npz", **{**bad, "activation": np.array("swish")})
    np.savez("shape.npz", **{**bad, "W2": np.ones((1, 4))})
    np.savez("nandata.npz", x=np.full((10, 2), np.nan), y=np.zeros(10))
    np.savez("widedata.npz", x=np.zeros((10, 5)), y=np.zeros(10))
    np.savez("ydata.npz", x=np.zeros((10, 2)), y=np.zeros(7))
    (tmp_path / "afile").write_text("x")
    (tmp_path / "spec.toml").write_text('experiment = "selftest"\n[grid]\nx = [1, 2]\n')
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "sweep.json").write_text("{not json")
    (tmp_path / "store2").mkdir()
    (tmp_path / "store2" / "sweep.json").write_text('{"version": 1}')
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "sweep.json").write_text('{"experiment": "selftest", "version": 1}')
    return tmp_path


@pytest.fixture
def no_work(monkeypatch):
    """Every command's computation raises: a bad argument must be refused before it starts."""
    import symland.cli.analyze
    import symland.cli.spurious
    import symland.experiments.deep_connectivity
    import symland.experiments.gaussian_extensions
    import symland.experiments.mnist
    import symland.experiments.symmetry_breaking
    import symland.experiments.sweep_report
    import symland.experiments.tensor
    import symland.experiments.toy
    import symland.experiments.valley
    import symland.sweep

    def started(*args, **kwargs):
        raise AssertionError("the computation started before the arguments were refused")

    for mod, name in ((symland.experiments.toy, "run_toy"), (symland.experiments.valley, "run_valley"),
                      (symland.cli.analyze, "analyze"), (symland.cli.spurious, "_compute"),
                      (symland.experiments.gaussian_extensions, "run_extensions"),
                      (symland.experiments.tensor, "run_tensor"),
                      (symland.experiments.symmetry_breaking, "run_symmetry_breaking"),
                      (symland.experiments.deep_connectivity, "run_deep_connectivity"),
                      (symland.experiments.mnist, "run_mnist"), (symland.sweep, "run_sweep"),
                      (symland.experiments.sweep_report, "build_sweep_report")):
        monkeypatch.setattr(mod, name, started)


# (command line, word the one stderr line must contain). Outputs go to 'o' unless named.
BAD = [
    # toy
    ("toy --ratio 2 --out o", "ratio"),
    ("toy --ratio nan --out o", "ratio"),
    ("toy --ratio 0 --out o", "ratio"),
    ("toy --steps 1 --out o", "steps"),
    ("toy --steps -3 --out o", "steps"),
    ("toy --steps 100000000 --out o", "steps"),
    ("toy --steps 2.5 --out o", "steps"),
    ("toy --seed -1 --out o", "seed"),
    ("toy --seed 4294967296 --out o", "seed"),
    ("toy --out afile", "out"),
    ("toy --out ''", "out"),
    ("toy --activation swish --out o", "activation"),
    ("toy --pairs 0,0 --out o", "pairs"),
    ("toy --pairs 0,9 --out o", "pairs"),
    ("toy --pairs 1,2,3 --out o", "pairs"),
    ("toy --pairs zero --out o", "pairs"),
    ("toy --pairs 0,1 0,1 --out o", "pairs"),
    ("toy --max-newton 0 --out o", "max-newton"),
    ("toy --ste 10 --out o", "--ste"),
    ("toy --valley-x --out o", "--valley-x"),
    # analyze: input files
    ("analyze empty.npz --data data.npz", "params"),
    ("analyze notzip.npz --data data.npz", "params"),
    ("analyze trunc.npz --data data.npz", "params"),
    ("analyze single.npy --data data.npz", "params"),
    ("analyze missing.npz --data data.npz", "error: params: no file"),
    ("analyze . --data data.npz", "params"),
    ("analyze nan.npz --data data.npz", "params"),
    ("analyze inf.npz --data data.npz", "params"),
    ("analyze complex.npz --data data.npz", "params"),
    ("analyze object.npz --data data.npz", "params"),
    ("analyze noact.npz --data data.npz", "params"),
    ("analyze badact.npz --data data.npz", "activation"),
    ("analyze shape.npz --data data.npz", "params"),
    ("analyze p.npz --data nandata.npz", "data"),
    ("analyze p.npz --data widedata.npz", "data"),
    ("analyze p.npz --data ydata.npz", "data"),
    ("analyze p.npz --data empty.npz", "data"),
    ("analyze p.npz --data notzip.npz", "data"),
    # analyze: options
    ("analyze p.npz --data data.npz --gtol -1", "gtol"),
    ("analyze p.npz --data data.npz --gtol nan", "gtol"),
    ("analyze p.npz --data data.npz --gtol 0", "gtol"),
    ("analyze p.npz --data data.npz -k 0", "k"),
    ("analyze p.npz --data data.npz --method lanczos -k 50", "k"),
    ("analyze p.npz --data data.npz --method foo", "method"),
    ("analyze p.npz --data data.npz --loss foo", "loss"),
    ("analyze p.npz --data data.npz --out ''", "out"),
    ("analyze p.npz --data data.npz --out .", "out"),
    ("analyze p.npz --data data.npz --gt 1e-3", "--gt"),
    ("analyze p.npz --data data.npz --out p.npz", "out: 'p.npz' is the PARAMS input"),
    ("analyze p.npz --data data.npz --out ./data.npz", "DATA input"),
    # valley
    ("valley --out o --seed -5", "seed"),
    ("valley --out o --samples-per-move 1000000000", "samples-per-move"),
    ("valley --out o --samples-per-move 1", "samples-per-move"),
    ("valley --out o --perm 0,1", "perm"),
    ("valley --out o --perm 0,0,1,2,3", "perm"),
    ("valley --out o --perm 1,2,3,4,5", "perm"),
    ("valley --out o --pair 7", "pair"),
    ("valley --out o --pair 1.5", "pair"),
    ("valley --out afile", "out"),
    ("valley --out o --activation nope", "activation"),
    # count
    ("count T --K 5:2 --n 2:30", "reversed"),
    ("count T --K 1:3 --n 2:10000000", "--n"),
    ("count T --K 0 --n 5", "--K"),
    ("count T --K 3 --n 3", "K=3"),
    ("count minima --r 1:4 --m 1:100000", "m"),
    ("count minima --r 1:3 --m 1:5 --d 0", "d"),
    ("count G --r 1:3 --m 1:5 --plot x.jpg", "plot"),
    ("count G --r 1:3 --m 1:5 --plot noext", "plot"),
    ("count G --r 1:3 --m 1:5 --json ''", "json"),
    ("count G --r 1:3 --m 1:5 --csv .", "csv"),
    ("count G --r 1:3 --m 1:5 --plot x.png/", "plot: "),
    ("count G --r 1:3 --m 1:5 --csv t.out --json ./t.out", "json: 't.out' is also the --csv file"),
    ("count G --r a:b --m 1:5", "--r"),
    ("count G --r 1:3 --m 1:5 --mm 2", "--mm"),
    # spurious
    ("spurious --k 5:2 --out o", "reversed"),
    ("spurious --k 1:3 --out o", "k"),
    ("spurious --k 6:100000 --out o", "k"),
    ("spurious --k 150:200 --out o", "k"),
    ("spurious --d 12 --out o", "--d"),
    ("spurious --seed -1 --out o", "seed"),
    ("spurious --runs -1 --out o", "runs"),
    ("spurious --runs 100000000 --out o", "runs"),
    ("spurious --families foo --out o", "families"),
    ("spurious --families '' --out o", "families"),
    ("spurious --k 6:8 --spectrum-k 12 --out o", "spectrum-k"),
    ("spurious --out ''", "out"),
    # issue 13 audit: --out under a file, negative values written as separate words, sizes
    ("toy --out afile/sub", "out: cannot create"),
    ("toy --ratio -inf --out o", "--ratio"),
    ("toy --pairs --out o", "--pairs"),
    ("analyze p.npz --data data.npz --gtol -1e-3", "written --gtol=VALUE"),
    ("analyze p.npz --data data.npz --gtol=-1e-3", "gtol"),
    ("spurious --k 6:8 --out afile/sub", "out: cannot create"),
    ("spurious --k 6 --d 6:1000000000 --out o", "d: "),
    ("spurious --k 6 --perturb 0.5 --perturb-steps 100000000 --out o", "perturb-steps"),
    ("spurious --k 6 --perturb-steps 5 --out o", "perturb-steps: only used with --perturb"),
    ("spurious --k 6 --d k:2k --runs 500 --out o", "runs: not used"),
    ("spurious --k 6 --perturb 0.5 --decay-kmax 100 --out o", "decay-kmax: not used"),
    ("spurious --k 6 --fractional 5:8 --spectrum-k 6 --out o", "spectrum-k: not used"),
    # tensor
    ("tensor --d 5:2 --out o", "reversed"),
    ("tensor --d 3 --seed 4294967296 --out o", "seed"),
    ("tensor --d 30 --p 12 --starts 1000000 --out o", "starts: "),
    ("tensor --d 3 --p 3 --steps 100000000000 --out o", "steps: "),
    ("tensor --out ''", "out: must"),
    ("tensor --out afile", "out: 'afile'"),
    ("tensor --out afile/sub", "out: cannot create"),
    ("tensor --sta 5 --out o", "--sta"),
    # symmetry-breaking
    ("symmetry-breaking --settings foo --out o", "settings"),
    ("symmetry-breaking --k 2 --runs 100000000 --out o", "runs: "),
    ("symmetry-breaking --samples 1000000000000 --out o", "samples: "),
    ("symmetry-breaking --out ''", "out: must"),
    ("symmetry-breaking --out afile/x", "out: cannot create"),
    # deep-connectivity
    ("deep-connectivity --widths 2-9-9-1 --out o", "widths"),
    ("deep-connectivity --samples-per-move 100000000000 --out o", "samples-per-move: "),
    ("deep-connectivity --out afile", "out: 'afile'"),
    ("deep-connectivity --wid 2-3-1 --out o", "--wid"),
    # mnist (refused before the data are read)
    ("mnist --out afile/sub", "out: cannot create"),
    ("mnist --H 1 --out o", "H"),
    ("mnist --activation swish --out o", "activation"),
    ("mnist --steps 1000000000 --out o", "steps: "),
    ("mnist --seeds 100000000 --out o", "seeds: "),
    ("mnist --epochs 100000000 --out o", "epochs: "),
    ("mnist --H 100000 --out o", "H: "),
    ("mnist --max-newton 1000000000 --out o", "max-newton"),
    ("mnist --max-hvps 0 --out o", "max-hvps"),
    ("mnist --data nowhere --out o", "data: "),
    ("mnist --data afile --out o", "data: "),
    ("mnist --data digits --samples 100000 --out o", "samples: "),
    # sweep and report
    ("sweep nothere.toml --out o", "spec"),
    ("sweep spec.toml --out afile/sub", "out: cannot create"),
    ("sweep spec.toml --out store", "out: "),
    ("sweep spec.toml --out store2", "out: "),
    ("sweep spec.toml --out o --scheduler tcp://127.0.0.1:1", "scheduler: cannot connect"),
    ("report store", "out: "),
    ("report ''", "out: must"),
    ("report good --html afile/x.html", "html"),
]


@pytest.mark.parametrize("line, word", BAD, ids=[b[0] for b in BAD])
def test_bad_command_line_exits_2(files, no_work, capsys, line, word):
    import shlex

    before = sorted(str(p.relative_to(files)) for p in files.rglob("*"))
    rc = main(shlex.split(line))
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, (line, err)
    assert len(lines) == 1, err
    assert word in lines[0], lines[0]
    assert "Traceback" not in err and "pickle" not in err.lower()
    assert sorted(str(p.relative_to(files)) for p in files.rglob("*")) == before  # nothing left behind


def test_npz_message_does_not_suggest_pickle(files, capsys):
    for name in ("trunc.npz", "notzip.npz", "object.npz"):
        assert main(["analyze", name, "--data", "data.npz"]) == 2
        err = capsys.readouterr().err
        assert "allow_pickle" not in err and "pickle=True" not in err


def test_help_lists_full_option_names_only(capsys):
    with pytest.raises(SystemExit):
        from symland.cli import build_parser
        build_parser().parse_args(["spurious", "--decay", "12", "--out", "x"])  # not --decay-kmax
    assert "unrecognized arguments: --decay" in capsys.readouterr().err


def test_output_checks(tmp_path):
    with pytest.raises(ValueError, match="out: .*folder"):
        output_file(tmp_path, "out")
    with pytest.raises(ValueError, match="plot: cannot write format 'jpg'"):
        plot_path(tmp_path / "a.jpg")
    assert plot_path(tmp_path / "a.SVG").suffix == ".SVG"


def test_check_cost_refuses_with_estimate_and_warns():
    with pytest.raises(ValueError, match=r"steps: .*would take about .* \(limit 12 h\)"):
        check_cost("steps", seconds=1e7)
    with pytest.raises(ValueError, match=r"k: .*memory"):
        check_cost("k", nbytes=1e18)
    assert "warning" in check_cost("steps", seconds=600)


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "a" / "b"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            (tmp / "f.txt").write_text("x")
            raise RuntimeError
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError):
        with atomic_file(tmp_path / "c" / "x.png") as tmp:
            tmp.write_text("x")
            raise RuntimeError
    assert list(tmp_path.iterdir()) == []
    with atomic_output(target) as tmp:
        (tmp / "f.txt").write_text("x")
    assert (target / "f.txt").read_text() == "x"
    assert sorted(p.name for p in target.parent.iterdir()) == ["b"]


@pytest.mark.parametrize("ext", ["png", "pdf", "svg"])
def test_count_plot_writes_the_format_of_its_extension(tmp_path, ext, capsys):
    path = tmp_path / f"g.{ext}"
    assert main(["count", "G", "--r", "1:3", "--m", "1:6", "--plot", str(path),
                 "--json", str(tmp_path / "g.json"), "--csv", str(tmp_path / "g.csv")]) == 0
    head = path.read_bytes()[:5]
    assert head == {"png": b"\x89PNG\r", "pdf": b"%PDF-", "svg": b"<?xml"}[ext]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"g.{ext}", "g.json", "g.csv"])


@pytest.mark.parametrize("line", [
    "toy --out o", "valley --out o", "spurious --out o", "spurious --k 6:20 --d k:4k --out o",
    "spurious --k 6:20 --perturb 0.5 --out o", "tensor --out o", "symmetry-breaking --out o",
    "deep-connectivity --out o", "mnist --data digits --samples 1000 --out o",
])
def test_default_requests_pass_the_checks(files, no_work, line, capsys):
    """The cost checks refuse absurd sizes only: the documented runs reach the computation."""
    import shlex

    with pytest.raises(AssertionError, match="computation started"):
        main(shlex.split(line))
    assert "error" not in capsys.readouterr().err


def test_paper_sized_mnist_run_is_accepted_with_a_warning():
    from symland.cli.mnist import estimate_cost

    seconds, nbytes = estimate_cost([10, 15, 20, 25], 6, 60_000, 100, 20, "auto")  # Brea et al. 2019, Fig. 3
    assert "at least" in check_cost("steps", seconds=seconds, nbytes=nbytes, bound="at least")


def test_argparse_messages_keep_the_option_name(capsys):
    assert main(["toy", "--pairs", "--out", "o"]) == 2
    assert "argument --pairs: expected at least one argument" in capsys.readouterr().err
    assert main(["toy", "--ratio", "-5e-1", "--out", "o"]) == 2  # not a "negative number" to argparse
    assert "written --ratio=VALUE" in capsys.readouterr().err


def test_python_dash_m_runs_the_command_line(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-m", "symland.cli", "toy", "--steps", "1", "--out", "o"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == ["symland toy: error: steps: must be ≥ 2, got 1"]


def test_write_report_is_atomic(tmp_path, monkeypatch):
    import os

    from symland.experiments.report import write_report

    target = tmp_path / "report.html"
    write_report(target, "old", [])
    old = target.read_text()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        write_report(target, "new", [("a", "<p>b</p>")])
    assert target.read_text() == old and sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
