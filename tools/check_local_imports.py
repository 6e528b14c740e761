"""Rule R5 of ARCHITECTURE.md: no function-local imports of arraystore's own modules.

An import of ``arraystore`` (or ``arraystore.x``) inside a function hides a dependency
from import-linter and usually papers over an import cycle. Imports of optional
third-party packages inside functions are fine (start-up speed of ``arraystore --help``).
An import of our own module may stay inside a function only when it says why on its
line with a ``# lazy: REASON`` comment (start-up of the CLI, a registry that loads a
backend or executor on first use); those are listed with ``--list``.

Run by ``make lint``. ``tools/local_import_baseline.txt`` lists, per module, how many
such imports it had when the check came in: the counts may only shrink (and a module
leaves the list at zero); ``--update`` rewrites the baseline (only ever to shorten it).
An import under ``if TYPE_CHECKING:`` at module level is not function-local.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "tools" / "local_import_baseline.txt"


def _ours(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").split(".")[0] == "arraystore"
    return any(a.name.split(".")[0] == "arraystore" for a in node.names)


def local_imports(package: Path, lazy: bool = False) -> dict[str, list[int]]:
    """``{"path": [line, ...]}`` of imports of our own modules inside functions without
    (or, with ``lazy``, with) a ``# lazy:`` reason on their line."""
    found: dict[str, list[int]] = {}
    for path in sorted(package.rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        text = path.read_text()
        lines = text.splitlines()
        tree = ast.parse(text)
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import | ast.ImportFrom) and _ours(node):
                    marked = "# lazy:" in lines[node.lineno - 1]
                    if marked == lazy:
                        found.setdefault(rel, []).append(node.lineno)
    return {k: sorted(set(v)) for k, v in found.items()}


def read_baseline() -> dict[str, int]:
    out: dict[str, int] = {}
    if BASELINE.exists():
        for line in BASELINE.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                key, _, count = line.rpartition(" ")
                out[key] = int(count)
    return out


def main() -> int:
    now = local_imports(ROOT / "arraystore")
    if "--list" in sys.argv:
        for k, v in sorted(local_imports(ROOT / "arraystore", lazy=True).items()):
            print(f"lazy (with a reason): {k}: lines {', '.join(map(str, v))}")
    if "--update" in sys.argv:
        lines = [f"{k} {len(v)}" for k, v in sorted(now.items())]
        header = "# function-local imports of arraystore modules per module (may only shrink)\n"
        BASELINE.write_text(header + "\n".join(lines) + "\n")
        return 0
    base = read_baseline()
    bad = [(k, v) for k, v in sorted(now.items()) if len(v) > base.get(k, 0)]
    for k, v in bad:
        where = ", ".join(map(str, v))
        print(f"function-local import of arraystore in {k}: lines {where}")
    total, allowed = sum(len(v) for v in now.values()), sum(base.values())
    print(f"local imports: {total} ({allowed} in the baseline), {len(bad)} modules grown")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
