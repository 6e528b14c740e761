"""Start-up of the command line (issue 21 item 3): fresh ``arraystore`` processes.

Creates a 64 MiB float64 memmap array (``--size``; one dimension, ``--fill random``) in a
temporary store, then times ``--runs`` fresh processes each of

* ``arraystore stats STORE small --json`` (goal: median <= 0.5 s), and
* ``arraystore --help`` (goal: median <= 0.3 s),

taken in turn (stats, help, stats, ...) after one discarded warm-up run of each (it
writes the byte-code and numba caches, and warms the page cache). A run is the
console script's own code, ``from arraystore.cli import main; main()``, run by this
Python on this checkout (``PYTHONPATH``), timed from ``fork`` to ``wait`` (wall) with
the child's user + system CPU and peak RSS from ``os.wait4`` (the RSS counts this
script's own ~10 MiB shared at the fork). The children run with byte-code caching
on (``PYTHONDONTWRITEBYTECODE`` is dropped from their environment), as an installed
package has its ``.pyc`` files. ``--numba`` adds stats runs with
``ARRAYSTORE_NUMBA_MIN_BYTES=0`` (numba loaded whatever the size: the start-up before
the threshold existed).

Prints the result as JSON and writes it to
``benchmarks/results/startup-<date>-<host>.json`` (``--json PATH`` elsewhere,
``--no-json`` not at all). Nothing here asserts a timing: the goals are printed beside
the medians. Wall times on a shared machine vary with the load; the CPU seconds less so
(the load average is recorded before and after).

    .venv/bin/python benchmarks/startup.py
    .venv/bin/python benchmarks/startup.py --runs 3 --no-json   # quick look
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
if str(REPO) not in sys.path:  # measure the arraystore of this checkout, not an installed one
    sys.path.insert(1, str(REPO))
CLI = "import sys; from arraystore.cli import main; sys.argv[0] = 'arraystore'; sys.exit(main())"
GOALS = {"stats": 0.5, "help": 0.3}


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    )
    env.update(extra or {})
    return env


def run_once(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """One fresh process: wall seconds, CPU seconds (user + sys), exit status, stdout."""
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", CLI, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,  # "-c" puts the working directory first on sys.path
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "exit": proc.returncode,
        "output": text,
    }


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [r["wall_s"] for r in runs]
    cpus = [r["cpu_s"] for r in runs]
    return {
        "median_s": statistics.median(walls),
        "min_s": min(walls),
        "max_s": max(walls),
        "median_cpu_s": statistics.median(cpus),
        "median_peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in runs),
        "wall_s": walls,
        "cpu_s": cpus,
    }


def create_array(store: Path, size: str) -> tuple[int, str]:
    """The array, made by a child process: this one stays small (a child's peak RSS
    counts the pages it shares with its parent at the fork)."""
    code = (
        "import sys, arraystore\n"
        "from arraystore.engine.memory import parse_size\n"
        "n = parse_size(sys.argv[2]) // 8\n"
        "s = arraystore.open(sys.argv[1], mode='a')\n"
        "s.create('small', shape=(n,), dtype='f8', fill='random')\n"
        "print(n, arraystore.__version__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(store), size],
        env=child_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[0]), out[1]


def check_stats(output: str, count: int) -> None:
    doc = json.loads(output)
    got = doc["fields"]["small"]["count"]
    if got != count:
        raise SystemExit(f"stats counted {got} values, expected {count}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10, help="fresh processes of each (10)")
    ap.add_argument("--size", default="64MiB", help="bytes of the float64 array (64MiB)")
    ap.add_argument("--dir", default=None, help="where the temporary store goes (system temp)")
    ap.add_argument("--numba", action="store_true", help="also stats with numba forced on")
    ap.add_argument("--json", type=Path, default=None, help="result file")
    ap.add_argument("--no-json", action="store_true", help="write no result file")
    args = ap.parse_args()

    kinds: dict[str, tuple[list[str], dict[str, str]]] = {}
    with tempfile.TemporaryDirectory(prefix="arraystore-startup-", dir=args.dir) as tmp:
        store = Path(tmp) / "startup.store"
        n, version = create_array(store, args.size)
        kinds["stats"] = (["stats", str(store), "small", "--json"], child_env())
        kinds["help"] = (["--help"], child_env())
        if args.numba:
            forced = child_env({"ARRAYSTORE_NUMBA_MIN_BYTES": "0"})
            kinds["stats_numba"] = (["stats", str(store), "small", "--json"], forced)
        load_before = os.getloadavg()
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
        for i in range(args.runs + 1):  # the first round is the warm-up
            for kind, (cli_args, env) in kinds.items():
                r = run_once(cli_args, env)
                if r["exit"] != 0:
                    raise SystemExit(f"{kind} failed ({r['exit']}):\n{r['output']}")
                if kind.startswith("stats"):
                    check_stats(r["output"], n)
                if i:
                    runs[kind].append(r)
        load_after = os.getloadavg()
    doc: dict[str, Any] = {
        "benchmark": "startup",
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "array": {"shape": [n], "dtype": "f8", "backend": "memmap", "bytes": n * 8},
        "runs": args.runs,
        "goals_s": GOALS,
        "machine": {
            "host": socket.gethostname(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        },
        "arraystore": version,
        "git": subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
        "env": {k: v for k, v in os.environ.items() if k.startswith("ARRAYSTORE_")},
        "results": {kind: summary(rs) for kind, rs in runs.items()},
    }
    text = json.dumps(doc, indent=2)
    print(text)
    if not args.no_json:
        stamp = _dt.date.today().strftime("%Y%m%d")
        path = args.json or RESULTS / f"startup-{stamp}-{socket.gethostname()}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
