"""Figure text (issue 13, §6): mathematical labels are mathtext, never raw TeX-like text."""

import ast
import re
from pathlib import Path

import pytest
from matplotlib.mathtext import MathTextParser

import symland
from symland.experiments.figures import FAMILY_LABELS, family_label, isotropy_label

SRC = Path(symland.__file__).parent
LABEL_CALLS = {"set_xlabel", "set_ylabel", "set_title", "suptitle", "text", "annotate"}
LABEL_KEYWORDS = {"label", "xlabel", "ylabel", "title"}


def _label_strings():
    for path in sorted((SRC / "experiments").glob("*.py")) + sorted((SRC / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            args = [node.args[0]] if node.func.attr in LABEL_CALLS and node.args else []
            args += [k.value for k in node.keywords if k.arg in LABEL_KEYWORDS]
            for a in args:
                if isinstance(a, ast.Constant) and isinstance(a.value, str):
                    yield path.name, node.lineno, a.value
                elif isinstance(a, ast.JoinedStr):
                    yield path.name, node.lineno, "".join(
                        v.value if isinstance(v, ast.Constant) else "{}" for v in a.values)


def test_no_raw_subscripts_or_superscripts_in_figure_labels():
    raw = [(f, line, s) for f, line, s in _label_strings()
           if re.search(r"[_^][\w{(]", re.sub(r"\$[^$]*\$", "", s))]
    assert not raw, raw


def _parses(label: str) -> None:
    parser = MathTextParser("path")
    for math in re.findall(r"\$[^$]*\$", label):
        parser.parse(math)


@pytest.mark.parametrize("name", sorted(FAMILY_LABELS))
def test_family_labels_are_mathtext(name):
    label = family_label(name)
    assert "$" in label and "_" not in re.sub(r"\$[^$]*\$", "", label)
    _parses(label)


@pytest.mark.parametrize("name, expected", [
    ("ΔS_9", r"$\Delta S_{9}$"),
    ("global Δ(S_2×S_3)×Z_2^1", r"global $\Delta(S_{2}\times S_{3})\times Z_{2}^{1}$"),
    ("trivial", "trivial"),
    ("order 4 (orbits 2,2;1)", "order 4 (orbits 2,2;1)"),
])
def test_isotropy_labels_are_mathtext(name, expected):
    assert isotropy_label(name) == expected
    _parses(isotropy_label(name))


def test_tensor_figure_legend_and_integer_ticks(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from symland.experiments.tensor import _figure

    runs = [{"d": d, "p": 3, "n_starts": 10, "isotropy_of_minima": [
        {"isotropy": f"ΔS_{d}", "global": True, "count": 6}, {"isotropy": "Δ(S_2×S_3)", "global": False, "count": 4}]}
        for d in (3, 4)]
    captured = {}
    real = plt.Figure.savefig

    def keep(fig, *args, **kwargs):
        captured["fig"] = fig
        return real(fig, *args, **kwargs)

    monkeypatch.setattr(plt.Figure, "savefig", keep)
    _figure(runs, tmp_path / "t.png")
    ax = captured["fig"].axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels and all("$" in t and "_" not in re.sub(r"\$[^$]*\$", "", t) for t in labels), labels
    assert all(float(t).is_integer() for t in ax.get_xticks())
