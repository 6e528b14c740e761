"""Markdown tables and PNG charts from the suite's results JSON (``run.py``).

    .venv/bin/python benchmarks/report.py                  # the latest results/suite-*.json
    .venv/bin/python benchmarks/report.py results/suite-8GiB-...json
    .venv/bin/python benchmarks/report.py --scaling        # + scaling-<host>.png/.md
    .venv/bin/python benchmarks/report.py --estimate 8GiB A.json B.json   # suite time
    .venv/bin/python benchmarks/report.py --compare OLD.json NEW.json     # regressions

For ``X.json`` writes ``X.md`` (a summary table: best GB/s of each system per scenario
and format, warm and cold page cache; then every candidate's row) and ``X.png`` (one bar
chart per scenario, warm and cold). ``--scaling`` reads every ``suite-*.json`` of the
host in the directory and plots arraystore's time and peak RSS against the array size
(one line per scenario/format; of several runs of one size the latest is used).
``--compare OLD NEW`` prints, for every (scenario, cache, format, system) in both,
arraystore's median time and its speed ratio to that anchor (and to the best anchor,
``dd`` excluded) in each, flagging the rows where the ratio got more than
``--threshold`` (10 %) worse; it always exits 0 (a report, not a gate).
Nothing here measures anything.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SYSTEMS = (
    "arraystore",
    "numpy",
    "dask",
    "dask-zarrs",
    "tensorstore",
    "cubed",
    "blosc2",
    "dd",
    "pyarrow",
)
LIMITS = ("dd",)  # dd/cat: reading the bytes, not an anchor doing the work
COLORS = {
    "arraystore": "#d62728",
    "numpy": "#1f77b4",
    "dask": "#ff7f0e",
    "dask-zarrs": "#bcbd22",
    "tensorstore": "#17becf",
    "cubed": "#2ca02c",
    "blosc2": "#9467bd",
    "dd": "#7f7f7f",
    "pyarrow": "#8c564b",
}
MiB = 2**20


def _ok(r: dict[str, Any]) -> bool:
    return bool(r.get("runs")) and not r.get("failed")


def _rank(system: str) -> int:
    return SYSTEMS.index(system) if system in SYSTEMS else len(SYSTEMS)


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _group_key(r: dict[str, Any]) -> str:
    """The format part of a result: 'memmap', 'zarr-lz4', 'b2nd', ..."""
    parts = r["key"].split("/")
    return parts[1] if len(parts) > 1 else "-"


def summary(doc: dict[str, Any]) -> list[str]:
    """Scenario x format rows, one column per system: best GB/s warm (cold)."""
    systems = [s for s in SYSTEMS if any(r["system"] == s for r in doc["results"])]
    lines = [
        "| scenario | format | " + " | ".join(systems) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in systems) + " |",
    ]
    order: list[tuple[str, str]] = []
    for r in doc["results"]:
        k = (r["scenario"], _group_key(r))
        if k not in order:
            order.append(k)
    for scenario, fmt in order:
        cells = []
        for s in systems:
            best: dict[str, float] = {}
            for cache in ("warm", "cold"):
                rs = [
                    r
                    for r in doc["results"]
                    if r["scenario"] == scenario
                    and _group_key(r) == fmt
                    and r["system"] == s
                    and r["cache"] == cache
                    and _ok(r)
                ]
                if rs:
                    best[cache] = max(r["gb_per_s"] for r in rs)
            cell = _fmt(best.get("warm"))
            if "cold" in best:
                cell += f" ({best['cold']:.2f})"
            cells.append(cell)
        if any(cells):
            lines.append(f"| {scenario} | {fmt} | " + " | ".join(cells) + " |")
    return lines


def details(doc: dict[str, Any]) -> list[str]:
    lines = [
        "| scenario | candidate | format | warm s | GB/s | cold s | GB/s | peak RSS MiB "
        "| cpu s | bg | check |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    cold = {(r["scenario"], r["key"]): r for r in doc["results"] if r["cache"] == "cold"}
    for r in doc["results"]:
        if r["cache"] != "warm":
            continue
        c = cold.get((r["scenario"], r["key"]))
        if not _ok(r):
            reason = (r.get("failed") or "no runs").strip().splitlines()[-1][:80]
            lines.append(
                f"| {r['scenario']} | {r['label'].strip()} | {_group_key(r)} | failed: "
                f"{reason.replace('|', '/')} | | | | | | | |"
            )
            continue
        cs = _fmt(c["median_s"], ".3f") if c and _ok(c) else ""
        cg = _fmt(c["gb_per_s"]) if c and _ok(c) else ""
        lines.append(
            f"| {r['scenario']} | {r['label'].strip()} | {_group_key(r)} | {r['median_s']:.3f} | "
            f"{r['gb_per_s']:.2f} | {cs} | {cg} | {r['peak_rss_bytes'] / MiB:.0f} | "
            f"{_fmt(r['median_cpu_s'])} | {_fmt(r['max_bg_cores'])} | {r.get('check', '')} |"
        )
    return lines


def markdown(doc: dict[str, Any], name: str) -> str:
    m = doc["machine"]
    v = m.get("versions", {})
    vers = ", ".join(f"{k} {v[k]}" for k in sorted(v) if v[k])
    out = [
        f"# Benchmark suite, {doc['size_label']} (`{name}`)",
        "",
        f"Machine: {m.get('cpu')}, {m.get('cpus')} CPUs, "
        f"{m.get('ram_bytes', 0) / 2**30:.1f} GiB RAM, {m.get('platform')}; Python "
        f"{m.get('python')}; {vers}; arraystore {m.get('git')}.",
        "",
        f"Command: `{doc['command']}` (total {doc['total_seconds'] / 60:.1f} min).",
        "",
        "GB/s = 1e9 bytes per second of the logical input (map: both inputs; field "
        "scenarios: the one column); warm page cache, cold in parentheses (inputs evicted "
        "with `posix_fadvise(DONTNEED)` before the run). Best candidate of each system.",
        "",
        *summary(doc),
        "",
    ]
    if doc.get("skipped"):
        out += [
            "Skipped: "
            + "; ".join(
                f"{'/'.join(s[k] for k in ('system', 'scenario', 'format') if k in s)} "
                f"({s['reason']})"
                for s in doc["skipped"]
            ),
            "",
        ]
    out += ["## Every candidate", "", *details(doc), ""]
    return "\n".join(out)


def chart(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(dict.fromkeys(r["scenario"] for r in doc["results"]))
    bars = [
        max(1, sum(r["scenario"] == s and r["cache"] == "warm" for r in doc["results"]))
        for s in scenarios
    ]
    fig, axes = plt.subplots(
        len(scenarios),
        1,
        figsize=(10, 0.27 * sum(bars) + 0.9 * len(scenarios) + 0.6),
        squeeze=False,
        gridspec_kw={"height_ratios": [b + 2 for b in bars]},
    )
    for ax, scenario in zip(axes.flat, scenarios, strict=False):
        warm = [r for r in doc["results"] if r["scenario"] == scenario and r["cache"] == "warm"]
        fmts = list(dict.fromkeys(_group_key(r) for r in warm))
        warm.sort(key=lambda r: (fmts.index(_group_key(r)), _rank(r["system"])))
        cold = {
            r["key"]: r
            for r in doc["results"]
            if r["scenario"] == scenario and r["cache"] == "cold"
        }
        labels, w, c, colors = [], [], [], []
        for r in warm:
            labels.append(r["key"])
            w.append(r["gb_per_s"] if _ok(r) else 0.0)
            cr = cold.get(r["key"])
            c.append(cr["gb_per_s"] if cr and _ok(cr) else 0.0)
            colors.append(COLORS.get(r["system"], "#333333"))
        y = list(range(len(labels)))
        ax.barh([i - 0.2 for i in y], w, height=0.4, color=colors, label="warm")
        if any(c):
            ax.barh(
                [i + 0.2 for i in y],
                c,
                height=0.4,
                color=colors,
                alpha=0.45,
                hatch="//",
                label="cold",
            )
        pos = [v for v in w + c if v > 0]
        if pos and max(pos) / min(pos) > 20:  # dd/cat dwarf the rest: log scale
            ax.set_xscale("log")
        ax.set_yticks(y, labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(scenario, fontsize=10)
        ax.set_xlabel("GB/s (higher is better; log scale when dd dwarfs the rest)", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.legend(fontsize=7, loc="best")
    m = doc["machine"]
    fig.suptitle(
        f"arraystore suite, {doc['size_label']}: {m.get('cpus')} CPUs, "
        f"{m.get('ram_bytes', 0) / 2**30:.0f} GiB RAM",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(json_path: Path) -> list[Path]:
    doc = json.loads(Path(json_path).read_text())
    md = json_path.with_suffix(".md")
    md.write_text(markdown(doc, json_path.name))
    out = [md]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib not installed: no chart (pip install -e '.[bench]')")
        return out
    png = json_path.with_suffix(".png")
    chart(doc, png)
    return [*out, png]


# ------------------------------------------------------------------- scaling
def scaling_points(docs: Iterable[dict[str, Any]]) -> dict[str, dict[int, tuple[float, int]]]:
    """(scenario/key) -> size -> (median s, peak RSS) of arraystore's warm results;
    later documents replace earlier ones of the same size."""
    out: dict[str, dict[int, tuple[float, int]]] = {}
    for doc in docs:
        for r in doc["results"]:
            if r["system"] == "arraystore" and r["cache"] == "warm" and _ok(r):
                name = f"{r['scenario']} {r['key'].split('/', 1)[-1]}"
                out.setdefault(name, {})[doc["size"]] = (r["median_s"], r["peak_rss_bytes"])
    return out


def scaling(
    directory: Path, host: str | None = None, files: list[Path] | None = None
) -> list[Path]:
    """The scaling plot and table from ``files`` (default: every suite JSON in
    ``directory``, oldest first, so the latest run of each size wins)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not files:
        files = sorted(directory.glob("suite-*.json"), key=lambda p: p.stat().st_mtime)
    docs = [json.loads(p.read_text()) for p in files]
    if host:
        docs = [d for d in docs if d["machine"].get("host") == host]
    pts = scaling_points(docs)
    host = host or (docs[-1]["machine"].get("host") if docs else "none")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 5))
    for name, by in sorted(pts.items()):
        sizes = sorted(by)
        if len(sizes) < 1:
            continue
        gib = [s / 2**30 for s in sizes]
        a1.plot(gib, [by[s][0] for s in sizes], marker="o", label=name)
        a2.plot(gib, [by[s][1] / MiB for s in sizes], marker="o", label=name)
    for ax, what in ((a1, "median time, s"), (a2, "peak RSS, MiB")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("array size, GiB")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
    a1.legend(fontsize=6)
    fig.suptitle(f"arraystore: time and peak memory vs size ({host})")
    fig.tight_layout()
    png = directory / f"scaling-{host}.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    lines = [
        "| scenario | "
        + " | ".join(f"{s / 2**30:g} GiB" for s in sorted({s for by in pts.values() for s in by}))
        + " |"
    ]
    sizes = sorted({s for by in pts.values() for s in by})
    lines.append("| --- | " + " | ".join("---:" for _ in sizes) + " |")
    for name, by in sorted(pts.items()):
        cells = [f"{by[s][0]:.2f} s, {by[s][1] / MiB:.0f} MiB" if s in by else "" for s in sizes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    md = directory / f"scaling-{host}.md"
    md.write_text("# arraystore scaling (warm median time, peak RSS)\n\n" + "\n".join(lines) + "\n")
    return [png, md]


def estimate(docs: list[dict[str, Any]], size: int) -> dict[str, float]:
    """Seconds per scenario of the suite at ``size``, from runs at smaller sizes.

    Per candidate: the timed region as a line through the two largest sizes measured
    (``a + b * size``: fixed start-up costs do not scale; with one size, proportional to
    it, an upper bound), plus the process overhead (wall - timed region), times the number
    of runs the largest run made (its repeats, anchors and cold systems), plus warming the
    page cache (the inputs read at 2 GB/s). Excludes dataset creation and waiting for a
    quiet CPU (``--quiet-wait``)."""
    docs = sorted(docs, key=lambda d: d["size"])
    big = docs[-1]
    small = {
        (r["scenario"], r["key"], r["cache"]): r
        for d in docs[:-1]
        for r in d["results"]
        if _ok(r) and d["size"] < big["size"]
    }
    small_size = docs[-2]["size"] if len(docs) > 1 else 0
    out: dict[str, float] = {}
    for r in big["results"]:
        if not _ok(r):
            continue
        # the import scenario's file is min(--size, 2 GiB) (run.py's default)
        fit = (
            (lambda d: min(d["size"], 2**31)) if r["scenario"] == "import" else lambda d: d["size"]
        )
        b1, b0 = fit(big), fit(docs[-2]) if len(docs) > 1 else 0
        target = min(size, 2**31) if r["scenario"] == "import" else size
        t1 = statistics.median(x["seconds"] for x in r["runs"])
        slope = t1 / b1
        s0 = small.get((r["scenario"], r["key"], r["cache"]))
        if s0 is not None and small_size and b0 < b1:
            t0 = statistics.median(x["seconds"] for x in s0["runs"])
            slope = max((t1 - t0) / (b1 - b0), 0.25 * slope)
        timed = t1 + slope * (target - b1)
        overhead = statistics.median(x["wall"] - x["seconds"] for x in r["runs"])
        t = len(r["runs"]) * (timed + max(overhead, 0.0))
        if r["cache"] == "warm":
            t += (r["read_bytes"] or r["nbytes"]) * target / b1 / 2e9
        out[r["scenario"]] = out.get(r["scenario"], 0.0) + t
    return out


# ------------------------------------------------------------------- compare
def _best_times(doc: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, float]]:
    """(scenario, cache, format) -> system -> its fastest candidate's median seconds.
    arraystore's variants (``arraystore-2nd``, ``arraystore-cli``) are left out: the
    fresh-process call is the one compared."""
    out: dict[tuple[str, str, str], dict[str, float]] = {}
    for r in doc["results"]:
        if not _ok(r) or (r["system"] == "arraystore" and r["key"].split("/")[0] != "arraystore"):
            continue
        d = out.setdefault((r["scenario"], r["cache"], _group_key(r)), {})
        d[r["system"]] = min(d.get(r["system"], math.inf), r["median_s"])
    return out


def compare(old: dict[str, Any], new: dict[str, Any], threshold: float = 0.10) -> list[dict]:
    """Rows of arraystore's speed relative to each anchor (and to the best anchor, dd
    excluded) in two suite documents, for every (scenario, cache, format, system) in both.

    ratio = anchor's median s / arraystore's (2.0: arraystore twice as fast). A row is
    flagged when ``old ratio / new ratio - 1 > threshold``: arraystore lost more than
    ``threshold`` against that anchor."""
    o, n = _best_times(old), _best_times(new)
    rows = []
    for key in [k for k in n if k in o]:
        a0, a1 = o[key].get("arraystore"), n[key].get("arraystore")
        if a0 is None or a1 is None:
            continue
        both = [s for s in n[key] if s in o[key] and s != "arraystore"]
        anchors = [(s, o[key][s], n[key][s]) for s in sorted(both, key=_rank)]
        real = [(o[key][s], n[key][s]) for s in both if s not in LIMITS]
        if real:
            anchors.append(("best anchor", min(t for t, _ in real), min(t for _, t in real)))
        for system, t0, t1 in anchors:
            r0, r1 = t0 / a0, t1 / a1
            worse = r0 / r1 - 1
            rows.append(
                dict(
                    scenario=key[0],
                    cache=key[1],
                    format=key[2],
                    system=system,
                    old_s=a0,
                    new_s=a1,
                    old_ratio=r0,
                    new_ratio=r1,
                    worse=worse,
                    flag=worse > threshold,
                )
            )
    return rows


def compare_table(rows: list[dict], threshold: float) -> list[str]:
    lines = [
        "| scenario | cache | format | vs | arraystore s old | new | ratio old | new | "
        "slowdown vs it | |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['cache']} | {r['format']} | {r['system']} | "
            f"{r['old_s']:.3f} | {r['new_s']:.3f} | {r['old_ratio']:.2f}x | "
            f"{r['new_ratio']:.2f}x | {r['worse']:+.0%} | {'REGRESSION' if r['flag'] else ''} |"
        )
    flagged = sum(r["flag"] for r in rows)
    if not rows:
        lines.append("(no scenario, cache and format with arraystore and an anchor in both)")
    lines += [
        "",
        f"{flagged} regression(s): arraystore more than {threshold:.0%} slower relative to "
        "an anchor (ratio = anchor's median time / arraystore's, > 1: arraystore faster; "
        "slowdown = old ratio / new ratio - 1). Timings on a shared machine are noisy: "
        "check the runs' bg column before believing one.",
    ]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("json", nargs="*", type=Path, help="suite results (default: the latest)")
    ap.add_argument("--scaling", action="store_true", help="also the scaling plot")
    ap.add_argument("--dir", type=Path, default=RESULTS)
    ap.add_argument("--estimate", default="", help="print the suite's time at this size, e.g. 8GiB")
    ap.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("OLD", "NEW"),
        help="compare two suite JSONs: arraystore's ratio to each anchor, regressions flagged",
    )
    ap.add_argument("--threshold", type=float, default=0.10, help="--compare: flag above this")
    args = ap.parse_args()
    if args.compare:
        old, new = (json.loads(p.read_text()) for p in args.compare)
        print(f"old: {args.compare[0]}\nnew: {args.compare[1]}\n")
        print("\n".join(compare_table(compare(old, new, args.threshold), args.threshold)))
        return
    paths = args.json or sorted(args.dir.glob("suite-*.json"), key=lambda p: p.stat().st_mtime)[-1:]
    if not paths and not args.scaling:
        sys.exit(f"error: no suite-*.json in {args.dir}")
    if args.estimate:
        sys.path.insert(0, str(HERE))
        import common

        est = estimate([json.loads(p.read_text()) for p in paths], common.parse_size(args.estimate))
        for k, v in est.items():
            print(f"  {k:<12} {v / 60:6.1f} min")
        print(f"at {args.estimate}: {sum(est.values()) / 60:.1f} min + datasets + quiet-CPU waits")
        return
    for p in paths if not (args.scaling and args.json) else []:
        for out in write_report(p):
            print(f"wrote {out}")
    if args.scaling:  # from the JSON files given (all sizes), else every suite JSON
        for out in scaling(args.dir, files=args.json):
            print(f"wrote {out}")


if __name__ == "__main__":
    main()
