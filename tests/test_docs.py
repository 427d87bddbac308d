"""The documentation runs: README.md's Python API section, docs/*.md and every `>>>` in src.

The doc sessions that compile solvers take tens of seconds of CPU each and
are marked slow, as are the module docstrings in `SLOW_MODULES`; every session
and every module is also checked cheaply without the mark: each example
compiles and every symland name it imports or reads exists.
"""

import ast
import doctest
import importlib
import io
import pkgutil
import types
from pathlib import Path

import pytest

import symland

ROOT = Path(__file__).resolve().parents[1]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
CHEAP = {"docs/counting.md", "docs/sweeps.md"}  # exact integer arithmetic; no-JAX selftest jobs
# Module docstrings whose example runs a whole pipeline: `permutation_saddle` on the tanh toy took 52–62 s
# of a cold CI-sized run (fixed-δ path, band, refinement; BENCHMARKS.md, "Test-suite time", thirty-first
# session). tests/test_saddle.py checks the same call on the same toy and pair without the mark.
SLOW_MODULES = {"symland._saddle"}


def _readme_api() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Python API")
    return text[start:text.index("\n## ", start + 1)]


SESSIONS = {"README.md": _readme_api,
            **{f"docs/{p.name}": p.read_text for p in sorted((ROOT / "docs").glob("*.md"))}}
MODULES = sorted(m.name for m in pkgutil.walk_packages(symland.__path__, "symland."))


def _run(test: doctest.DocTest):
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    runner.run(test, out=out.write)
    assert runner.failures == 0, out.getvalue()
    return runner


def _session(name: str) -> doctest.DocTest:
    return doctest.DocTestParser().get_doctest(SESSIONS[name](), {"__name__": "docs"}, name, name, 0)


def test_every_doc_file_has_a_session():
    assert {"README.md", "docs/counting.md", "docs/gaussian.md", "docs/microscope.md"} <= set(SESSIONS)
    for name in SESSIONS:
        assert _session(name).examples, f"{name}: no >>> examples"


def _check_examples(examples, label):
    """Each example parses, and every symland name it imports or reads as an attribute exists."""
    aliases = {}
    for ex in examples:
        tree = ast.parse(ex.source)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("symland"):
                mod = importlib.import_module(node.module)
                for a in node.names:
                    assert hasattr(mod, a.name), f"{label}: {node.module} has no {a.name}"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("symland"):
                        aliases[a.asname or a.name] = importlib.import_module(a.name)
            elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                  and node.value.id in aliases):
                assert hasattr(aliases[node.value.id], node.attr), f"{label}: no symland.{node.attr}"


@pytest.mark.parametrize("name", sorted(SESSIONS))
def test_doc_examples_compile_and_name_real_api(name):
    _check_examples(_session(name).examples, name)


@pytest.mark.parametrize("module", MODULES)
def test_module_examples_compile_and_name_real_api(module):
    mod = importlib.import_module(module)
    for test in doctest.DocTestFinder().find(mod, module):
        _check_examples(test.examples, test.name)


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in CHEAP else pytest.mark.slow)
                                  for n in sorted(SESSIONS)])
def test_doc_session_runs(name):
    assert _run(_session(name)).tries > 0


@pytest.mark.parametrize("module", [pytest.param(m, marks=pytest.mark.slow if m in SLOW_MODULES else ())
                                    for m in MODULES])
def test_module_docstring_examples(module):
    mod = importlib.import_module(module)
    for test in doctest.DocTestFinder().find(mod, module):
        _run(test)


def test_public_surface():
    # subpackages a test imported (symland.cli, symland.experiments) become attributes too
    public = {n for n in dir(symland) if not n.startswith("_")
              and not (isinstance(getattr(symland, n), types.ModuleType) and n not in ("counting", "gaussian"))}
    assert set(symland.__all__) == public
    for name in symland.__all__:
        assert getattr(symland, name) is not None
    for leak in ("jax", "T", "WHICH", "count_signs", "np", "minimum_subspace_dimension"):
        assert leak not in dir(symland) and leak not in symland.__all__
    assert symland.counting.T(2, 4) == symland.counting.T(2, 4)
    assert "T" in symland.counting.__all__ and "jax" not in dir(symland.gaussian)
    for sub in (symland.counting, symland.gaussian):
        assert all(hasattr(sub, n) for n in sub.__all__)
    from importlib.metadata import version

    assert symland.__version__ == version("symland")
