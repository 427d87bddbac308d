"""The command-line contract, in one place: argument types that check before any work,
and outputs that appear whole or not at all.

Every check raises `ValueError("<argument>: <what is wrong>")`; `symland.cli.main`
turns it into one line on stderr and exit code 2. Argument types are used as
argparse `type=` callables (argparse reports their errors the same way, see
`SymlandParser`), so bad values are refused while parsing, before anything is
computed or written.

Outputs: `output_dir(path)` checks `--out` up front; `atomic_output(path)`
yields a temporary sibling folder and moves it into place only when the
block finishes, so a failed or interrupted run leaves nothing behind.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import tempfile
from pathlib import Path

SEED_MAX = 2 ** 32


class ArgumentValueError(argparse.ArgumentTypeError):
    """A bad value; its message already names the argument."""


def _typed(name, fn):
    """An argparse type that runs `fn(text)` and reports ValueError as `name: …`."""

    def parse(text):
        try:
            return fn(text)
        except ValueError as err:
            msg = str(err)
            raise ArgumentValueError(msg if msg.startswith(name + ":") else f"{name}: {msg}") from None

    parse.__name__ = name
    return parse


def parse_int(text: str, name: str, *, lo: int | None = None, hi: int | None = None) -> int:
    """An integer in [lo, hi]; `ValueError` naming `name` otherwise."""
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ValueError(f"{name}: expected an integer, got {text!r}") from None
    if lo is not None and value < lo:
        raise ValueError(f"{name}: must be ≥ {lo}, got {value}")
    if hi is not None and value > hi:
        raise ValueError(f"{name}: must be ≤ {hi}, got {value}")
    return value


def parse_float(text: str, name: str, *, positive: bool = False, lo: float | None = None,
                hi: float | None = None, open_lo: bool = False, open_hi: bool = False) -> float:
    """A finite real number, optionally > 0 or within [lo, hi] (open ends with `open_lo`/`open_hi`)."""
    try:
        value = float(str(text).strip())
    except ValueError:
        raise ValueError(f"{name}: expected a real number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {text!r}")
    if positive and not value > 0:
        raise ValueError(f"{name}: must be positive, got {value:g}")
    if lo is not None and (value < lo or (open_lo and value == lo)):
        raise ValueError(f"{name}: must be {'>' if open_lo else '≥'} {lo:g}, got {value:g}")
    if hi is not None and (value > hi or (open_hi and value == hi)):
        raise ValueError(f"{name}: must be {'<' if open_hi else '≤'} {hi:g}, got {value:g}")
    return value


def parse_range(text: str, name: str, *, lo: int | None = None, hi: int | None = None) -> list[int]:
    """`a:b` (inclusive) or a single integer; reversed or out-of-bounds ranges are refused."""
    parts = str(text).split(":")
    if len(parts) == 1:
        a = b = parse_int(parts[0], name, lo=lo, hi=hi)
    elif len(parts) == 2:
        a = parse_int(parts[0], name, lo=lo, hi=hi)
        b = parse_int(parts[1], name, lo=lo, hi=hi)
        if b < a:
            raise ValueError(f"{name}: range {text!r} is reversed; write {b}:{a}")
    else:
        raise ValueError(f"{name}: expected a:b or an integer, got {text!r}")
    return list(range(a, b + 1))


def int_arg(name: str, *, lo: int | None = None, hi: int | None = None):
    """argparse type: an integer in [lo, hi]."""
    return _typed(name, lambda t: parse_int(t, name, lo=lo, hi=hi))


def float_arg(name: str, **bounds):
    """argparse type: a finite real number (see `parse_float` for the bounds)."""
    return _typed(name, lambda t: parse_float(t, name, **bounds))


def range_arg(name: str, *, lo: int | None = None, hi: int | None = None):
    """argparse type: `a:b` or an integer, as a list of integers."""
    return _typed(name, lambda t: parse_range(t, name, lo=lo, hi=hi))


def seed_arg(name: str = "seed"):
    """argparse type: a seed in [0, 2³²)."""
    return int_arg(name, lo=0, hi=SEED_MAX - 1)


def choice_arg(name: str, choices):
    """argparse type: one of `choices`, named in the error."""
    choices = tuple(choices)

    def check(text):
        if text not in choices:
            raise ValueError(f"{name}: unknown value {text!r}; choose one of {', '.join(choices)}")
        return text

    return _typed(name, check)


def output_dir(path, name: str = "out") -> Path:
    """`ValueError` unless `path` is non-empty and not an existing file; returns it as a Path."""
    if path is None or str(path).strip() == "":
        raise ValueError(f"{name}: must be a folder path, got an empty string")
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{name}: {str(p)!r} exists and is not a folder")
    parent = p.resolve().parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise ValueError(f"{name}: cannot write under {str(parent)!r}")
    return p


PLOT_FORMATS = ("png", "pdf", "svg")


def plot_path(path, name: str = "plot") -> Path:
    """`ValueError` unless `path`'s extension is a format we write (png, pdf, svg)."""
    p = Path(path)
    ext = p.suffix.lower().lstrip(".")
    if ext not in PLOT_FORMATS:
        raise ValueError(f"{name}: cannot write format {ext or '(none)'!r}; use .png, .pdf or .svg")
    if p.exists() and p.is_dir():
        raise ValueError(f"{name}: {str(p)!r} is a folder")
    return p


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary folder next to `path`; on success its files replace those in `path`.

    Files already in `path` that the run did not write are kept (a second
    run into the same folder updates it). On any exception the temporary
    folder is removed and `path` is left as it was (not created if it did
    not exist).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    target.mkdir(exist_ok=True)
    for item in sorted(tmp.rglob("*")):
        dest = target / item.relative_to(tmp)
        if item.is_dir():
            dest.mkdir(exist_ok=True)
        else:
            os.replace(item, dest)
    shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(path, text: str) -> Path:
    """Write `text` to `path` through a temporary name and a rename."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return p


class SymlandParser(argparse.ArgumentParser):
    """argparse with full-name options only and one-line errors (exit code 2)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        import sys

        # argparse prefixes type errors with "argument --x: "; our messages already name it.
        if ": " in message and message.startswith("argument "):
            head, _, rest = message.partition(": ")
            if rest.split(":")[0].strip() and not rest.startswith("invalid"):
                message = rest
        print(f"{self.prog}: error: {message.splitlines()[0]}", file=sys.stderr)
        raise SystemExit(2)
