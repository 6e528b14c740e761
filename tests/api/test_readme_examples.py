"""Every ```python block of README.md runs (issue 19 item 6c).

Each block runs on its own, in a fresh namespace and an empty temporary directory (the
current directory while it runs), so it shares no state with other blocks or with the
developer's machine: blocks create the small stores they use. A block that cannot run
standalone (it needs a cluster, an object store...) starts with the line
``# not run: REASON``: it is only compiled, and reported as skipped with that reason.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
NOT_RUN = "# not run:"
_BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _blocks() -> list[tuple[int, str]]:
    """``(line of the fence, code)`` of each ```python block of the README."""
    text = README.read_text()
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in _BLOCK.finditer(text)]


def _params() -> list[object]:
    out = []
    for line, code in _blocks():
        first = code.lstrip().splitlines()[0] if code.strip() else ""
        marks = []
        if first.startswith(NOT_RUN):
            marks.append(pytest.mark.skip(reason=f"README.md:{line}: {first[2:].strip()}"))
        out.append(pytest.param(line, code, id=f"README.md:{line}", marks=marks))
    return out


def test_the_readme_shows_every_verb_in_python() -> None:
    runnable = "\n".join(c for _, c in _blocks() if not c.lstrip().startswith(NOT_RUN))
    calls = [
        "store.create(",
        "store.ls(",
        "store.info(",
        "store.rename(",
        "store.remove(",
        "store.import_file(",
        ".export(",
        "store.stats(",
        "store.cast(",
        ".astype(",
        "store.map(",
        "store.verify(",
        "store.append(",
        ".resize(",
    ]
    assert [c for c in calls if c not in runnable] == []


@pytest.mark.parametrize("line", [line for line, _ in _blocks()])
def test_every_block_compiles(line: int) -> None:
    code = dict(_blocks())[line]
    compile(code, f"README.md:{line}", "exec")


@pytest.mark.parametrize(("line", "code"), _params())
def test_readme_example_runs(
    line: int, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "__readme__"})
