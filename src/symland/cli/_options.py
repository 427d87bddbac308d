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

from .._io import atomic_write_bytes, atomic_write_text  # noqa: F401  (the CLI's writers)

SEED_MAX = 2 ** 32


class ArgumentValueError(argparse.ArgumentTypeError):
    """A bad value; its message already names the argument."""


def typed_arg(name, fn):
    """An argparse type that runs `fn(text)` and reports its ValueError as `name: …` (exit 2)."""

    def parse(text):
        try:
            return fn(text)
        except ValueError as err:
            msg = str(err).removeprefix("--")
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
    return typed_arg(name, lambda t: parse_int(t, name, lo=lo, hi=hi))


def float_arg(name: str, **bounds):
    """argparse type: a finite real number (see `parse_float` for the bounds)."""
    return typed_arg(name, lambda t: parse_float(t, name, **bounds))


def range_arg(name: str, *, lo: int | None = None, hi: int | None = None):
    """argparse type: `a:b` or an integer, as a list of integers."""
    return typed_arg(name, lambda t: parse_range(t, name, lo=lo, hi=hi))


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

    return typed_arg(name, check)


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
    if not parent.is_dir():  # e.g. --out afile/sub
        raise ValueError(f"{name}: cannot create {str(p)!r}: {str(parent)!r} is a file, not a folder")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"{name}: cannot write under {str(parent)!r}")
    return p


def output_file(path, name: str = "out") -> Path:
    """`ValueError` unless `path` is a non-empty file path (not a folder) in a writable place."""
    if path is None or str(path).strip() == "":
        raise ValueError(f"{name}: must be a file path, got an empty string")
    p = Path(path)
    if p.is_dir() or str(path).endswith(os.sep):
        raise ValueError(f"{name}: {str(p)!r} is a folder; give a file name")
    parent = p.resolve().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ValueError(f"{name}: cannot write under {str(parent)!r}")
    return p


def input_file(path, name: str) -> Path:
    """`ValueError` unless `path` names an existing, readable, non-empty file."""
    if path is None or str(path).strip() == "":
        raise ValueError(f"{name}: must be a file path, got an empty string")
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{name}: no file at {str(p)!r}")
    if not p.is_file():
        raise ValueError(f"{name}: {str(p)!r} is not a file")
    if not os.access(p, os.R_OK):
        raise ValueError(f"{name}: {str(p)!r} is not readable")
    if p.stat().st_size == 0:
        raise ValueError(f"{name}: {str(p)!r} is empty")
    return p


def output_dir_arg(name: str = "out"):
    """argparse type: a folder path for `--out` (see `output_dir`)."""
    return typed_arg(name, lambda t: output_dir(t, name))


def output_file_arg(name: str):
    """argparse type: a file path to write (see `output_file`)."""
    return typed_arg(name, lambda t: output_file(t, name))


def input_file_arg(name: str):
    """argparse type: an existing, readable, non-empty file (see `input_file`)."""
    return typed_arg(name, lambda t: input_file(t, name))


def plot_path_arg(name: str = "plot"):
    """argparse type: a figure path whose extension is a format we write (see `plot_path`)."""
    return typed_arg(name, lambda t: plot_path(output_file(t, name), name))  # output_file sees 'x.png/'


TIME_LIMIT_S = 12 * 3600     # estimated run time above which a request is refused
WARN_TIME_S = 60.0           # above this, a warning line (the run shows a progress bar)


def memory_limit_bytes() -> float:
    """Half of this machine's physical memory (8 GiB where it cannot be read)."""
    try:
        return 0.5 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 8 * 2 ** 30


def check_cost(name: str, *, seconds: float = 0.0, nbytes: float = 0.0, what: str = "",
               bound: str = "about") -> str | None:
    """Refuse a request whose estimated time or memory is too large; warn about a long one.

    **Arguments:** `name` (the argument to blame), `seconds` and `nbytes`
    (estimates), `what` (what was estimated, for the message), `bound`
    (`about` for a worst-case estimate, `at least` for a lower bound).

    **Returns:** a warning line when the run will take more than `WARN_TIME_S`
    (the caller prints it; the command shows a progress bar), else `None`.
    `ValueError` naming `name`, with the estimate, above `TIME_LIMIT_S` or
    half the physical memory.

    Example:
        >>> check_cost("steps", seconds=1.0, nbytes=1e3) is None
        True
        >>> check_cost("steps", seconds=1e9, what="10 paths")
        Traceback (most recent call last):
        ...
        ValueError: steps: 10 paths would take about 31.7 years (limit 12 h); ask for less
    """
    limit = memory_limit_bytes()
    label = f"{what} " if what else ""
    if nbytes > limit:
        raise ValueError(f"{name}: {label}would need {bound} {human_bytes(nbytes)} of memory "
                         f"(limit {human_bytes(limit)}, half of this machine's); ask for less")
    if seconds > TIME_LIMIT_S:
        raise ValueError(f"{name}: {label}would take {bound} {human_seconds(seconds)} "
                         f"(limit {human_seconds(TIME_LIMIT_S)}); ask for less")
    if seconds > WARN_TIME_S:
        return f"warning: {label}will take {bound} {human_seconds(seconds)} ({name})"
    return None


def most_raised(**requests) -> str:
    """The argument furthest above its default, to blame in `check_cost`.

    **Arguments:** `name=(value, default)` for each argument the cost grows with
    (underscores stand for hyphens).

    **Returns:** the name with the largest value/default.

    Example:
        >>> most_raised(steps=(100, 100), samples_per_move=(10 ** 6, 10))
        'samples-per-move'
    """
    return max(requests, key=lambda n: requests[n][0] / requests[n][1]).replace("_", "-")


def human_bytes(n: float) -> str:
    """`n` bytes as text with a binary prefix, e.g. '1.5 GiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"  # pragma: no cover


def human_seconds(s: float) -> str:
    """`s` seconds as text in s, min, h or days."""
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.3g} {unit}"
    return f"{s:.3g} s"


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


def plot_format(path) -> str:
    """The matplotlib format named by `path`'s extension (already checked by `plot_path`)."""
    return Path(path).suffix.lower().lstrip(".")


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary folder next to `path`; on success its files replace those in `path`.

    Files already in `path` that the run did not write are kept (a second
    run into the same folder updates it). On any exception the temporary
    folder is removed and `path` is left as it was (not created if it did
    not exist).
    """
    target = Path(path)
    made = _missing_parents(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(made)
        raise
    target.mkdir(exist_ok=True)
    for item in sorted(tmp.rglob("*")):
        dest = target / item.relative_to(tmp)
        if item.is_dir():
            dest.mkdir(exist_ok=True)
        else:
            os.replace(item, dest)
    shutil.rmtree(tmp, ignore_errors=True)


def _missing_parents(target: Path) -> list[Path]:
    """The ancestors of `target` that do not exist yet, innermost first."""
    out, p = [], target.parent
    while not p.exists():
        out.append(p)
        p = p.parent
    return out


def _remove_empty(folders) -> None:
    for f in folders:
        with contextlib.suppress(OSError):
            f.rmdir()


@contextlib.contextmanager
def atomic_file(path):
    """Yield a temporary file name next to `path`; moved onto `path` when the block succeeds.

    For writers that need a file name (matplotlib's `savefig`, `np.savez`).
    On any exception the temporary file (and any parent folder this call
    created) is removed.
    """
    p = Path(path)
    made = _missing_parents(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.stem}.", suffix=p.suffix, dir=p.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        _remove_empty(made)
        raise


class SymlandParser(argparse.ArgumentParser):
    """argparse with full-name options only and one-line errors (exit code 2)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        import sys

        # argparse prefixes type errors with "argument --x: "; our messages already name it
        # ("x: …"), argparse's own ("expected one argument", "invalid choice") do not.
        if message.startswith("argument "):
            head, _, rest = message.partition(": ")
            option = head.removeprefix("argument ").split("/")[-1].lstrip("-").lower()  # PARAMS → params
            if rest.lower().startswith(option + ":"):
                message = rest
            elif rest == "expected one argument" and head.startswith("argument --"):
                opt = head.split("/")[-1].removeprefix("argument ")
                message += f" (a value that starts with '-' is written {opt}=VALUE)"
        print(f"{self.prog}: error: {message.splitlines()[0]}", file=sys.stderr)
        raise SystemExit(2)
