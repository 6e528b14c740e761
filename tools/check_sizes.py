"""Size limits of ARCHITECTURE.md R8: modules <= 600 lines, functions <= 80 lines.

Run by ``make lint``. The offenders that existed when the check was added are listed in
``tools/size_baseline.txt`` with their size then: they may shrink (and leave the list when
they fit), never grow, and no new offender may appear. ``--update`` rewrites the baseline
(only ever to shorten it).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_MODULE = 600
MAX_FUNCTION = 80
ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "tools" / "size_baseline.txt"


def offenders(package: Path) -> dict[str, int]:
    """``{"path": lines}`` for modules and ``{"path:qualname": lines}`` for functions."""
    found: dict[str, int] = {}
    for path in sorted(package.rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        text = path.read_text()
        n = len(text.splitlines())
        if n > MAX_MODULE:
            found[rel] = n
        tree = ast.parse(text)
        stack: list[tuple[ast.AST, str]] = [(tree, "")]
        while stack:
            node, prefix = stack.pop()
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    name = f"{prefix}{child.name}"
                    if not isinstance(child, ast.ClassDef):
                        start = min([d.lineno for d in child.decorator_list] + [child.lineno])
                        size = (child.end_lineno or child.lineno) - start + 1
                        if size > MAX_FUNCTION:
                            found[f"{rel}:{name}"] = size
                    stack.append((child, name + "."))
    return found


def read_baseline() -> dict[str, int]:
    out: dict[str, int] = {}
    if BASELINE.exists():
        for line in BASELINE.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                key, _, size = line.rpartition(" ")
                out[key] = int(size)
    return out


def main() -> int:
    now = offenders(ROOT / "arraystore")
    if "--update" in sys.argv:
        lines = [f"{k} {v}" for k, v in sorted(now.items())]
        header = "# over the limits when the check came in (module / path:function lines)\n"
        BASELINE.write_text(header + "\n".join(lines) + "\n")
        return 0
    base = read_baseline()
    bad = [
        f"{k}: {v} lines (limit {MAX_FUNCTION if ':' in k else MAX_MODULE}"
        + (f", baseline {base[k]})" if k in base else ")")
        for k, v in sorted(now.items())
        if v > base.get(k, 0)
    ]
    for line in bad:
        print(f"too long: {line}")
    print(f"sizes: {len(now)} over the limits ({len(base)} in the baseline), {len(bad)} grown")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
