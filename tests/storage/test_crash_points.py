"""Crash consistency of create / map / import / cast (issue 8): SIGKILL at named points
and at random times, on both backends (memmap, zarr lz4). ``cast`` also has its own,
deeper suite (tests/ops/cast/test_cast_crash.py: resume after a second crash, torn journal, 1 GiB).

Each command runs through the CLI in a subprocess (tests/_crash.py) that is SIGKILLed

* at a named point of the write path: ``ARRAYSTORE_TEST_KILL_AT=PHASE[:N]`` makes the
  library kill itself the N-th time it reaches ``kill_point(PHASE)``
  (arraystore/storage/killpoints.py lists the phases: work folder made, mid-chunks, metadata
  written, inside the commit's exchange, after the commit before the cleanup, ...);
* or after a delay drawn from a seeded RNG (a fraction of the command's measured duration).

After each kill (``check_after_kill``):

1. the store opens and lists only the arrays it held plus, perhaps, the target; every
   listed array reads fully and equals its old content or (the target) the new one,
   never a mix (numpy truth, computed here);
2. ``verify`` finds no corruption and reports every hidden entry left behind as a leftover;
3. on a copy: ``verify --repair`` removes them all (never an array's data), then
   ``arraystore verify`` exits 0, and re-running the same command succeeds with the right
   result;
4. on the original (not repaired): re-running the same command (with ``--resume`` when it
   asks for it) succeeds, gives the right result and leaves no leftover behind.

A command without ``--overwrite`` whose kill came after its commit is re-run with the
target already in place: it must refuse with "already exists" (and the target is new).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore.ops.verify import verify
from arraystore.testing import LZ4_WARNING, run_cli
from tests._crash import cli_child, crc_tree, hidden, link_tree, run_child

pytestmark = pytest.mark.filterwarnings(LZ4_WARNING)

ROWS = 1_600_000  # the 1-D float64 source "a": 12.8 MB
CH = 200_000  # zarr chunks of "a" and of created arrays: 8 chunks
CSV_ROWS = 200_000
CSV_CH = "25000"  # 8 chunks of the imported tables
ZARR = ["--backend", "zarr", "--codec", "lz4"]
SEED = 20261122

Truth = dict[str, np.ndarray]


# ---------------------------------------------------------------------------- template
@dataclass
class Template:
    """A pristine store (copied for each test), its input files and the numpy truth."""

    root: Path
    zarr: bool
    before: Truth  # every array of the store
    inputs: Truth  # "npy": in.npy, "table": in.csv / in.parquet as records

    @property
    def store(self) -> Path:
        return self.root / "store"

    def copy(self, dst: Path) -> Path:
        shutil.copytree(self.store, dst)
        return dst


def _records(n: int) -> np.ndarray:
    rec = np.empty(n, dtype=[("x", "<f8"), ("k", "<i8")])
    rec["x"] = np.arange(n) * 0.5 - 7.25
    rec["k"] = np.arange(n, dtype=np.int64) * 3 - 1000
    return rec


def build_template(root: Path, zarr: bool) -> Template:
    s = arraystore.open(root / "store", mode="a")
    kw: dict[str, Any] = {"backend": "zarr", "codec": "lz4"} if zarr else {}
    before: Truth = {
        "a": (np.arange(ROWS, dtype=np.int64) % 100_003) * 0.25 - 1000.0,
        "o": np.arange(1000, dtype="<i4"),  # replaced by create --from --overwrite
        "m": np.full((50, 2), 7.0),  # replaced by map --overwrite
        "t": np.arange(10, dtype="<f4"),  # replaced by import --overwrite
    }
    for name, data in before.items():
        s.create(name, data=data, **({"chunks": CH} if zarr and name == "a" else {}), **kw)
    table = _records(CSV_ROWS)
    inputs: Truth = {"npy": before["a"] * 3.0 - 1.0, "table": table}
    np.save(root / "in.npy", inputs["npy"])
    lines = ["x,k", *(f"{float(x)!r},{k}" for x, k in zip(table["x"], table["k"], strict=True))]
    (root / "in.csv").write_text("\n".join(lines) + "\n")
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    tab = pa.table({"x": table["x"], "k": table["k"]})
    pq.write_table(tab, root / "in.parquet", row_group_size=10_000)
    return Template(root, zarr, before, inputs)


@pytest.fixture(scope="module", params=[False, True], ids=["memmap", "zarr-lz4"])
def template(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Template:
    zarr = bool(request.param)
    return build_template(tmp_path_factory.mktemp("crash-" + ("zarr" if zarr else "mm")), zarr)


# --------------------------------------------------------------------------- scenarios
@dataclass
class Scenario:
    id: str
    args: Callable[[Template], list[str]]  # CLI arguments; "{s}" is the store
    target: str
    new: Callable[[Template], np.ndarray]  # the target's content after the command
    phases: tuple[str, ...]

    def argv(self, t: Template, store: Path) -> list[str]:
        return [str(store) if a == "{s}" else a for a in self.args(t)]

    def overwrites(self, t: Template) -> bool:
        return "--overwrite" in self.args(t)


def _cmd(text: str, fmt: bool = False) -> Callable[[Template], list[str]]:
    """The CLI arguments of ``text`` ({w}: the template's folder); ``fmt``: the template's
    backend flags (the map commands write the backend of their input)."""

    def args(t: Template) -> list[str]:
        return [*text.replace("{w}", str(t.root)).split(), "-q", *(ZARR if fmt and t.zarr else [])]

    return args


SCENARIOS = [
    Scenario(
        "create-fill",
        _cmd(f"create {{s}} n --shape {ROWS} --dtype f8 --fill range --chunks {CH}", True),
        "n",
        lambda t: np.arange(ROWS, dtype=np.float64),
        ("mkdir", "chunk:3", "sidecar"),
    ),
    Scenario(
        "create-npy-overwrite",
        _cmd(f"create {{s}} o --from {{w}}/in.npy --overwrite --chunks {CH}", True),
        "o",
        lambda t: t.inputs["npy"],
        ("chunk:2", "sidecar", "swap", "remove-old"),
    ),
    Scenario(
        "map-expr",
        _cmd("map {s} a --expr a*2+1 --out n --memory 16MiB"),
        "n",
        lambda t: t.before["a"] * 2 + 1,
        ("mkdir", "header", "chunk:3", "sidecar", "committed"),
    ),
    Scenario(
        "map-where",
        _cmd("map {s} a --where a>1000 --out n --memory 16MiB"),
        "n",
        lambda t: t.before["a"][t.before["a"] > 1000],
        ("chunk:2", "committed"),
    ),
    Scenario(
        "map-overwrite",
        _cmd("map {s} a --expr sqrt(abs(a)) --out m --overwrite --memory 16MiB"),
        "m",
        lambda t: np.sqrt(np.abs(t.before["a"])),
        ("swap", "remove-old", "committed"),
    ),
    Scenario(
        "import-npy",
        _cmd(f"import {{s}} n {{w}}/in.npy --chunks {CH}", True),
        "n",
        lambda t: t.inputs["npy"],
        ("mkdir", "chunk:2"),
    ),
    Scenario(
        "import-csv",
        _cmd(f"import {{s}} n {{w}}/in.csv --chunks {CSV_CH}", True),
        "n",
        lambda t: t.inputs["table"],
        ("spool", "chunk:2", "sidecar", "committed"),
    ),
    Scenario(
        "import-parquet-overwrite",
        _cmd(f"import {{s}} t {{w}}/in.parquet --overwrite --chunks {CSV_CH}", True),
        "t",
        lambda t: t.inputs["table"],
        ("mkdir", "chunk:2", "swap"),
    ),
    # cast through the same hook (tests/ops/cast/test_cast_crash.py covers it in depth)
    Scenario(
        "cast-inplace",
        _cmd("cast {s} a --to f4 --memory 16MiB"),
        "a",
        lambda t: t.before["a"].astype(np.float32),
        ("header", "chunk:2", "sidecar", "remove-old", "committed"),
    ),
    Scenario(
        "cast-out",
        _cmd("cast {s} a --to f4 --out n --memory 16MiB"),
        "n",
        lambda t: t.before["a"].astype(np.float32),
        ("mkdir", "committed"),
    ),
]
BY_ID = {sc.id: sc for sc in SCENARIOS}


# ------------------------------------------------------------------------------ checks
def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.names:
        return all(np.array_equal(a[f], b[f], equal_nan=True) for f in a.dtype.names)
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


def _describe(a: np.ndarray) -> str:
    return f"{a.dtype}{a.shape}"


def check_store(
    path: Path, t: Template, sc: Scenario, require_new: bool = False, missing_ok: bool = False
) -> str:
    """Every listed array reads fully and equals its old content or (the target) the new
    one; returns the target's state: "old", "new" or "absent"."""
    s = arraystore.open(path, mode="r")
    names = s.names()
    assert set(names) <= {*t.before, sc.target}, f"unexpected arrays: {names}"
    for name in t.before:
        if not (missing_ok and name == sc.target):
            assert name in names, f"array {name!r} vanished: {sorted(path.iterdir())}"
    state = "absent"
    new = sc.new(t)
    for name in names:
        got = s[name][...]
        if name == sc.target and _equal(got, new):
            state = "new"
        elif name in t.before and _equal(got, t.before[name]):
            state = "old" if name == sc.target else state
        else:
            raise AssertionError(
                f"{name!r} holds neither its old nor its new content: "
                f"{_describe(got)} vs new {_describe(new)}"
            )
    if require_new:
        assert state == "new", f"{sc.target!r} is {state}, not the command's result"
    return state


def check_verify_detects(path: Path) -> list[str]:
    """verify reports no corruption, and every hidden entry as a leftover."""
    rep = verify(arraystore.open(path, mode="r"))
    assert not rep.corrupt, rep.findings
    assert {f.kind for f in rep.findings} <= {"leftover", "unchecked"}, rep.findings
    said = " ".join(f.message for f in rep.findings if f.kind == "leftover")
    left = hidden(path, locks=True)
    undetected = [e for e in left if e not in said]
    assert undetected == [], f"leftovers verify does not report: {undetected} ({said!r})"
    return left


def rerun(path: Path, t: Template, sc: Scenario, before_state: str) -> str:
    """Run the command again in this process (``--resume`` when it asks for it)."""
    argv = sc.argv(t, path)
    code, _out, err = run_cli(argv)
    how = "rerun"
    if code and "--resume" in err:
        code, _out, err = run_cli([*argv, "--resume"])
        how = "resume"
    if code:
        assert before_state == "new" and not sc.overwrites(t), err
        assert "already exists" in err and len(err.splitlines()) == 1, err
        how = "exists"
    check_store(path, t, sc, require_new=True)
    if how != "exists":  # a refused command may leave them (to verify --repair, checked)
        assert hidden(path, locks=True) == [], f"{how} left {hidden(path, locks=True)}"
    return how


def check_after_kill(path: Path, t: Template, sc: Scenario, missing_ok: bool = False) -> str:
    state = check_store(path, t, sc, missing_ok=missing_ok)
    check_verify_detects(path)
    # the documented way out: verify --repair, then the same command again
    fixed = path.with_name(path.name + "-repaired")
    link_tree(path, fixed)
    verify(arraystore.open(fixed, mode="r+"), repair=True)
    code, out, err = run_cli(["verify", str(fixed)])
    assert code == 0 and "leftover" not in out, out + err
    assert hidden(fixed, locks=True) == []
    repaired_state = check_store(fixed, t, sc)  # repair never drops an array's data
    # (it may finish a commit whose new array was complete: an interrupted cast's)
    assert repaired_state in (state, "new") or (state == "absent" and missing_ok)
    rerun(fixed, t, sc, repaired_state)
    # or directly: the same command (or its --resume) cleans up after the dead writer
    shutil.rmtree(fixed)
    return f"{state}/{rerun(path, t, sc, state)}"


# ------------------------------------------------------------------ deterministic kills
CASES = [(sc.id, ph) for sc in SCENARIOS for ph in sc.phases]


@pytest.mark.parametrize(("scenario", "phase"), CASES, ids=[f"{s}-{p}" for s, p in CASES])
def test_kill_at_phase(template: Template, tmp_path: Path, scenario: str, phase: str) -> None:
    sc = BY_ID[scenario]
    path = template.copy(tmp_path / "s.store")
    code, _ = run_child(cli_child(sc.argv(template, path)), kill_at=phase)
    assert code == -signal.SIGKILL, f"the command did not reach the kill point {phase}"
    check_after_kill(path, template, sc)


NO_EXCHANGE = [
    ("create-npy-overwrite", "swap"),
    ("create-npy-overwrite", "remove-old"),
    ("map-overwrite", "swap"),
    ("cast-inplace", "swap"),  # the CLI re-run must put the source back, not say "no array"
    ("import-parquet-overwrite", "swap"),
]


@pytest.mark.parametrize(
    ("scenario", "phase"), NO_EXCHANGE, ids=[f"{s}-{p}" for s, p in NO_EXCHANGE]
)
def test_kill_in_two_rename_commit(
    template: Template, tmp_path: Path, scenario: str, phase: str
) -> None:
    """File systems without renameat2(RENAME_EXCHANGE): the commit moves the old array to
    ``.NAME.old-*`` and then the new one in. Killed in between, NAME is missing until a
    writer of NAME or ``verify --repair`` puts the old version back (never deleted)."""
    sc = BY_ID[scenario]
    path = template.copy(tmp_path / "s.store")
    code, _ = run_child(cli_child(sc.argv(template, path), no_exchange=True), kill_at=phase)
    assert code == -signal.SIGKILL
    check_after_kill(path, template, sc, missing_ok=phase == "swap")


# ------------------------------------------------------------------------- random kills
@pytest.mark.slow
def test_random_kills(template: Template, tmp_path: Path) -> None:
    """Each command once uninterrupted (its duration, checked against numpy), then SIGKILLed
    after a seeded random fraction of that duration (most land in the interpreter's start
    on a fast machine: the kill points cover the windows) and checked like them."""
    rng = random.Random(SEED + template.zarr)
    n = len(SCENARIOS)  # delays stratified over [0.05, 1.05) of each run, shuffled
    fractions = [0.05 + (k + rng.random()) / n for k in range(n)]
    rng.shuffle(fractions)
    log = []
    for k, sc in enumerate(SCENARIOS):
        ref = template.copy(tmp_path / f"ref-{k}")
        code, seconds = run_child(cli_child(sc.argv(template, ref)))
        assert code == 0
        check_store(ref, template, sc, require_new=True)
        shutil.rmtree(ref)
        path = template.copy(tmp_path / f"kill-{k}")
        delay = seconds * fractions[k]
        code, _ = run_child(cli_child(sc.argv(template, path)), kill_after=delay)
        log.append((sc.id, round(delay, 2), code, check_after_kill(path, template, sc)))
        shutil.rmtree(path)
    print(f"\nrandom kills ({'zarr' if template.zarr else 'memmap'}): {log}")
    assert len(log) == len(SCENARIOS)


# ---------------------------------------------------- mv --overwrite and rm (issue 15)
# A rename over an existing array and a removal, SIGKILLed at each of their steps and at
# random moments after the writer took its lock (most of a run is the interpreter's
# start), through renameat2 (RENAME_NOREPLACE) and the plain-rename fallback. A reader
# must see the old state or the new one (or, between "destination moved aside" and
# "source renamed in", the destination missing with its hidden copy there to be put
# back), ``ls`` must work, and after ``verify --repair`` -- or directly -- the same
# command again must leave the store byte for byte as an uninterrupted run does (a
# re-run removes what is left and names, one "no array" line each, exit 1, the names the
# killed run had already removed; a re-run of ``mv`` after its commit changes nothing).
MOVES: dict[str, tuple[list[str], dict[str, dict[str, str]]]] = {
    "mv": (
        ["mv", "{s}", "a", "b", "--overwrite"],
        {  # state -> {listed name: the template array it holds}
            "old": {"a": "a", "b": "b", "k": "k"},
            "new": {"b": "a", "k": "k"},
            "gap": {"a": "a", "k": "k"},  # b moved aside to .b.old-*, a not yet renamed
        },
    ),
    "rm": (
        ["rm", "{s}", "b"],
        {"old": {"a": "a", "b": "b", "k": "k"}, "new": {"a": "a", "k": "k"}},
    ),
    # several names (one twice: removed once, no error), removed one after the other
    "rm-many": (
        ["rm", "{s}", "b", "a", "b"],
        {
            "old": {"a": "a", "b": "b", "k": "k"},
            "mid": {"a": "a", "k": "k"},  # b removed, a not yet
            "new": {"k": "k"},
        },
    ),
}
#: op -> {kill point: the state a reader sees after it}
MOVE_POINTS = {
    "mv": {"swap": "gap", "remove-old": "new", "remove-part": "new"},
    "rm": {"remove-old": "new", "remove-part": "new"},
    "rm-many": {
        "remove-old": "mid",
        "remove-part": "mid",
        "remove-old:2": "new",
        "remove-part:2": "new",
    },
}


def _gone(op: str, state: str) -> list[str]:
    """The names a re-run of ``op`` in ``state`` reports missing, in argument order: the
    re-run removes what is left and says which were already gone (exit status 1)."""
    if op == "mv":
        return ["a"] if state == "new" else []
    return [n for n in dict.fromkeys(MOVES[op][0][2:]) if n not in MOVES[op][1][state]]


@dataclass
class Small:
    """A store of three arrays (a: the source, b: replaced / removed, k: a bystander),
    the checksums of their folders, and of the whole store after each uninterrupted op."""

    store: Path
    trees: dict[str, str]
    after: dict[str, str]

    def copy(self, dst: Path) -> Path:
        link_tree(self.store, dst)  # the ops only rename and unlink: links are safe
        return dst


@pytest.fixture(scope="module", params=[False, True], ids=["memmap", "zarr"])
def small(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Small:
    root = tmp_path_factory.mktemp("mvrm")
    s = arraystore.open(root / "store", mode="a")
    kw: dict[str, Any] = {"backend": "zarr", "codec": "lz4"} if request.param else {}
    # zarr: b has 500 chunk files, so that removing it takes a while (random kills land)
    s.create("a", data=np.arange(40_000) * 0.5, chunks=400 if kw else None, **kw)
    s.create("b", data=np.arange(20_000, dtype="<i4"), chunks=40 if kw else None, **kw)
    s.create("k", data=np.ones(7))
    t = Small(root / "store", {n: crc_tree(root / "store" / n) for n in "abk"}, {})
    for op, (argv, _) in MOVES.items():
        ref = t.copy(root / f"ref-{op}")
        assert run_cli(_argv(argv, ref))[0] == 0
        t.after[op] = crc_tree(ref)
    return t


def _argv(argv: list[str], store: Path) -> list[str]:
    return [str(store) if a == "{s}" else a for a in argv]


def _state(path: Path, t: Small, op: str) -> str:
    """What a reader sees: every listed array must hold one of the template's arrays."""
    view = {}
    for name in arraystore.open(path, mode="r").names():
        held = [k for k, crc in t.trees.items() if crc == crc_tree(path / name)]
        assert held, f"{name!r} holds none of the arrays the store had: {sorted(path.iterdir())}"
        view[name] = held[0]
    states = [k for k, v in MOVES[op][1].items() if v == view]
    assert states, f"{op}: neither the old nor the new state: {view} ({hidden(path)})"
    if states[0] == "gap":  # only while the hidden copy of b is there to be put back
        assert any(e.startswith(".b.old-") for e in hidden(path)), hidden(path)
    return states[0]


def _rerun(path: Path, t: Small, op: str, state: str) -> None:
    code, _out, err = run_cli(_argv(MOVES[op][0], path))
    gone = _gone(op, state)  # after the commit: refused, nothing changes
    assert code == (1 if gone else 0), err
    which = ", ".join(repr(n) for n in gone)
    many = "s" if len(gone) > 1 else ""
    assert err.splitlines() == ([f"error: no array{many} {which} in {path}"] if gone else []), err
    assert crc_tree(path) == t.after[op], f"{op} re-run: {sorted(os.listdir(path))}"


def check_move_after_kill(path: Path, t: Small, op: str) -> str:
    for args in (["ls", str(path)], ["ls", str(path), "--json"]):
        code, _out, err = run_cli(args)
        assert code == 0, err
    state = _state(path, t, op)
    check_verify_detects(path)
    fixed = path.with_name(path.name + "-repaired")
    link_tree(path, fixed)
    verify(arraystore.open(fixed, mode="r+"), repair=True)
    code, out, err = run_cli(["verify", str(fixed)])
    assert code == 0 and "leftover" not in out, out + err
    assert hidden(fixed, locks=True) == []
    repaired = _state(fixed, t, op)
    assert repaired == state or (state, repaired) == ("gap", "old"), (state, repaired)
    _rerun(fixed, t, op, repaired)
    shutil.rmtree(fixed)
    _rerun(path, t, op, state)  # or directly: the next writer cleans up
    return state


MOVE_CASES = [
    (op, point, nx) for op, points in MOVE_POINTS.items() for point in points for nx in (0, 1)
]


@pytest.mark.parametrize(
    ("op", "point", "no_exchange"),
    MOVE_CASES,
    ids=[f"{op}-{p}-{'plain' if nx else 'renameat2'}" for op, p, nx in MOVE_CASES],
)
def test_mv_rm_kill_at_phase(
    small: Small, tmp_path: Path, op: str, point: str, no_exchange: int
) -> None:
    path = small.copy(tmp_path / "s.store")
    argv = cli_child(_argv(MOVES[op][0], path), no_exchange=bool(no_exchange))
    code, _ = run_child(argv, kill_at=point)
    assert code == -signal.SIGKILL, f"{op} did not reach the kill point {point}"
    assert check_move_after_kill(path, small, op) == MOVE_POINTS[op][point]


@pytest.mark.slow
@pytest.mark.parametrize("op", list(MOVES))
def test_mv_rm_random_kills(small: Small, tmp_path: Path, op: str) -> None:
    """12 runs per backend (24 per command), SIGKILLed after a seeded random delay: half
    counted from the start (stratified over the time an uninterrupted run takes), half
    from the moment the writer's lock file appears (stratified over 1.3x the time an
    uninterrupted run takes from there: the removal of the replaced array); every other
    run without renameat2."""
    rng = random.Random(SEED + len(op) + 7 * ("zarr" in str(small.store)))
    argv = MOVES[op][0]
    timing = {}
    for anchored in (False, True):
        ref = small.copy(tmp_path / f"ref-{anchored}")
        lock = ref / ".b.lock" if anchored else None
        code, timing[anchored] = run_child(cli_child(_argv(argv, ref)), anchor=lock)
        assert code == 0 and crc_tree(ref) == small.after[op]
    runs = 12
    plan = [
        (k % 2 == 1, (0.05 + (k // 2 + rng.random()) / (runs // 2)) * (1.3 if k % 2 else 1.0))
        for k in range(runs)
    ]
    rng.shuffle(plan)
    log = []
    for k, (anchored, frac) in enumerate(plan):
        path = small.copy(tmp_path / f"kill-{k}")
        child = cli_child(_argv(argv, path), no_exchange=bool(k % 2))
        delay = timing[anchored] * frac
        lock = path / ".b.lock" if anchored else None
        code, _ = run_child(child, kill_after=delay, anchor=lock)
        state = check_move_after_kill(path, small, op)
        log.append((("lock+" if anchored else "") + f"{delay:.3f}", code, state))
        shutil.rmtree(path)
    print(f"\nrandom kills of {op}: {log}")
    assert len(log) == runs


@pytest.mark.parametrize("op", list(MOVES))
def test_crashed_cast_never_revives_a_removed_name(small: Small, tmp_path: Path, op: str) -> None:
    """A cast of b killed after its new array was complete (``verify --repair`` would
    commit it), then ``rm b`` / ``mv a b --overwrite``: the cast must not come back over
    (or in place of) what the command left -- rm/mv settle it first."""
    path = small.copy(tmp_path / "s.store")
    code, _ = run_child(cli_child(["cast", str(path), "b", "--to", "f8"]), kill_at="sidecar")
    assert code == -signal.SIGKILL and (path / ".b.cast").is_dir()
    code, _out, err = run_cli(_argv(MOVES[op][0], path))
    assert code == 0, err
    verify(arraystore.open(path, mode="r+"), repair=True)
    assert _state(path, small, op) == "new"
    assert hidden(path, locks=True) == []
