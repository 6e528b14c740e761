"""The :class:`arraystore.Store` methods twinning the command line's verbs that run an
operation: ``ls``, ``rm`` (:meth:`~StoreVerbs.remove`), ``verify``, ``stats``, ``cast`` and
``map``, ``append`` (``create``, ``info``, ``mv``/``rename``, ``import_file`` are in ``store.py``,
``export`` on the Array).

A mixin of the façade, kept apart from ``store.py`` as :mod:`arraystore.reductions` is
from ``array.py``: thin, typed, documented methods over the ops. ``arraystore VERB`` parses
its options, calls the method of the same name and prints what it returns.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from arraystore.core.dtypes import check_array_name, dtype_to_spec
from arraystore.engine import Executor, get_executor
from arraystore.errors import (
    ArrayExists,
    ArrayNotFound,
    ArrayStoreError,
    DTypeError,
    InvalidArgument,
)
from arraystore.fs import remove_tree
from arraystore.fs.remote import split_url
from arraystore.ops.grow import append as _append
from arraystore.ops.grow import append_file
from arraystore.ops.map.blocks import map_expr, reduce_expr
from arraystore.ops.map.blocks import where as _where
from arraystore.ops.reduce import summarize
from arraystore.ops.verify import VerifyReport
from arraystore.ops.verify import verify as _verify
from arraystore.storage.root import StoreRoot

if TYPE_CHECKING:
    from arraystore.array import Array
    from arraystore.ops.cast import CastResult
    from arraystore.storage import ArrayView


class StoreVerbs(StoreRoot):
    """The command line's verbs as methods of :class:`arraystore.Store` (which mixes
    this in)."""

    def ls(self) -> list[dict[str, Any]]:
        """One row per array (``arraystore ls --json``); reads metadata only.

        Returns
        -------
        list of dict
            ``name``, ``shape``, ``dtype``, ``backend``, ``codec``, ``nbytes`` (and
            ``foreign``: an array arraystore did not write); a broken array's row holds
            only ``name`` and ``error`` (one line), and ``unsupported`` for a foreign
            array of a data type arraystore cannot read.
        """
        rows: list[dict[str, Any]] = []
        for name in self.names():
            try:
                arr = self[name]
                row = {
                    "name": name,
                    "shape": list(arr.shape),
                    "dtype": dtype_to_spec(arr.dtype),
                    "backend": arr.meta.backend,
                    "codec": arr.meta.codec,
                    "nbytes": arr.meta.nbytes,
                }
                if arr.meta.foreign:  # not written by arraystore: read-only, in place
                    row["foreign"] = True
            except (ArrayStoreError, OSError) as exc:
                row = {"name": name, "error": " ".join(str(exc).split()) or type(exc).__name__}
                if self.foreign is not None and isinstance(exc, DTypeError):
                    row["unsupported"] = True  # a data type arraystore cannot read
            rows.append(row)
        return rows

    def remove(
        self,
        names: str | Sequence[str],
        *,
        missing_ok: bool = False,
        removed: Callable[[str], None] | None = None,
    ) -> list[str]:
        """Remove arrays like POSIX ``rm`` (``arraystore rm``): every named array that
        exists goes, each atomically (:meth:`delete`), then the missing names are reported.

        Bad names are refused before anything is removed; a name given twice goes once;
        a folder without metadata goes too. Run again after an interruption, it removes
        the rest.

        Parameters
        ----------
        names : str or sequence of str
            The arrays.
        missing_ok : bool, default False
            Names not in the store are no error (else one :class:`ArrayNotFound` naming
            them all, raised after the others are removed).
        removed : callable, optional
            ``removed(name)`` after each array removed.

        Returns
        -------
        list of str
            The names removed.
        """
        unique = list(dict.fromkeys([names] if isinstance(names, str) else names))
        for name in unique:
            check_array_name(name)
        done: list[str] = []
        missing: list[str] = []
        for name in unique:
            if name not in self:  # an interrupted replacement may have moved it aside
                self.settle(name)
            if name not in self and not self.is_folder(name):
                missing.append(name)
                continue
            try:
                self.delete(name)
            except ArrayNotFound:  # removed meanwhile by another writer
                missing.append(name)
                continue
            done.append(name)
            if removed is not None:
                removed(name)
        if missing and not missing_ok:
            which = ", ".join(repr(n) for n in missing)
            plural = "s" if len(missing) > 1 else ""
            raise ArrayNotFound(f"no array{plural} {which} in {self.path}")
        return done

    def append(
        self,
        name: str,
        data: Any,
        *,
        axis: int = 0,
        casting: str = "value",
        rtol: float = 0.0,
        format: str | None = None,
        delimiter: str | None = None,
        header: bool | None = None,
        skip_rows: int | None = None,
        null_values: Sequence[str] | None = None,
        batch_rows: int | None = None,
    ) -> tuple[int, ...]:
        """Append rows to array ``name`` in place, atomically (``arraystore append``); see
        :mod:`arraystore.ops.grow`. Returns the new shape.

        Parameters
        ----------
        name : str
            The array (either backend; a memmap array grows along axis 0 only).
        data : array-like, Array, str or os.PathLike
            A block (of the array's shape except along ``axis``), a stored array, or a
            ``.npy``, CSV, Parquet or Arrow file (streamed; a table's columns are the
            array's fields, its one column, or the columns of a plain 2-d array).
        axis : int, default 0
            The axis to grow (files and stored arrays: 0).
        casting, rtol : optional
            The cast policy of data of another dtype (``"value"``: refused, and nothing
            changed, if a value would not survive) and its relative tolerance.
        format : {"npy", "csv", "parquet", "arrow"}, optional
            The file's format (default: from its extension).
        delimiter, header, skip_rows, null_values, batch_rows : optional
            As in :meth:`import_file` (``None``: its default).
        """
        if isinstance(data, (str, os.PathLike)):
            given = {
                "delimiter": delimiter,
                "header": header,
                "skip_rows": skip_rows,
                "null_values": null_values,
                "batch_rows": batch_rows,
            }
            options = {k: v for k, v in given.items() if v is not None}
            return append_file(
                self, name, data, format=format, casting=casting, rtol=rtol, **options
            )
        return _append(self, name, data, axis, casting, rtol)

    def verify(
        self, names: str | Sequence[str] | None = None, *, repair: bool = False
    ) -> VerifyReport:
        """Check metadata, file sizes, that every chunk exists and decodes, and checksums
        (``arraystore verify``); see :mod:`arraystore.ops.verify`.

        Parameters
        ----------
        names : str or sequence of str, optional
            The arrays to check (default: the whole store, with its leftovers of
            interrupted writes and entries that are no array).
        repair : bool, default False
            Remove leftovers of interrupted writes (whole-store checks only; never an
            array the store lists).

        Returns
        -------
        VerifyReport
            ``checked`` (names), ``findings`` (``kind``, ``name``, ``message``,
            ``repaired``), ``corrupt`` (bool) and ``to_dict()``.
        """
        if names is None or isinstance(names, str):
            return _verify(self, names, repair=repair)
        report = VerifyReport()
        for name in dict.fromkeys(names):
            part = _verify(self, name, repair=repair)
            report.checked += part.checked
            report.findings += part.findings
        return report

    def stats(
        self,
        name: str | None = None,
        *,
        expr: str | None = None,
        fields: Sequence[str] | None = None,
        axis: int | Sequence[int] | None = None,
        quantiles: Sequence[float] | None = None,
        bins: int | str | None = None,
        skipna: bool = True,
        ddof: int = 0,
        memory: int | str | None = None,
        executor: str | Executor | None = None,
        workers: int | None = None,
        progress: Callable[[Any, Any], None] | None = None,
        where: Any = None,
    ) -> dict[str, Any]:
        """The summary ``arraystore stats --json`` prints: count, nan_count, sum, mean,
        std, min, max per field in one pass, with exact quantiles and a histogram.

        Parameters
        ----------
        name : str, optional
            The array (with ``expr``: whose fields the bare names are; else required).
        expr : str, optional
            Summarise this expression instead (names bound as in :meth:`map`; nothing
            stored; not with ``fields``, ``quantiles`` or ``bins``).
        fields : sequence of str, optional
            Fields of a structured array (default: its numeric fields).
        axis : int or tuple of int, optional
            Axes to reduce (default: all; quantiles need all).
        quantiles : sequence of float, optional
            Exact quantiles in [0, 1] (numpy's ``method="linear"``).
        bins : int or "auto", optional
            Add a histogram with this many bins.
        skipna : bool, default True
            Skip NaN (``False``: propagate it like numpy).
        ddof : int, default 0
            Delta degrees of freedom of ``std``.
        memory, executor, workers, progress : optional
            As in :meth:`create`; ``progress(task, nbytes)`` after each task.
        where : str or Array or numpy.ndarray, optional
            Reduce only where this holds (an expression or a mask: :meth:`Array.stats`).

        Returns
        -------
        dict
            ``StatsResult.to_dict()`` with each field's ``quantiles`` and ``histogram``.
        """
        if expr is not None:
            if quantiles is not None or bins is not None or fields or where is not None:
                raise InvalidArgument("expr cannot go with fields, where, quantiles or bins")
            res = reduce_expr(
                self,
                expr,
                name,
                axis=axis,
                skipna=skipna,
                ddof=ddof,
                memory=memory,
                executor=executor,
                workers=workers,
                progress=progress,
            )
            return res.to_dict()
        if name is None:
            raise InvalidArgument("stats needs an array name (or expr)")
        return summarize(
            self[name],
            fields=list(fields) if fields else None,
            axis=axis,
            quantiles=quantiles,
            bins=bins,
            skipna=skipna,
            ddof=ddof,
            memory=memory,
            executor=get_executor(executor, workers=workers),
            progress=progress,
            where=where,
        )

    def cast(
        self,
        name: str,
        to: Any = None,
        *,
        out: str | None = None,
        casting: str = "value",
        rtol: float = 0.0,
        nan_to: float | None = None,
        errors: str = "raise",
        fill: float | None = None,
        allow_half: bool = False,
        allow_float_to_int: bool = False,
        dry_run: bool = False,
        resume: bool = False,
        checksum: bool | None = None,
        memory: int | str | None = None,
        executor: str | Executor | None = None,
        workers: int | None = None,
        progress: Callable[[Any, Any], None] | None = None,
        shards: Any = None,
        out_store: StoreRoot | str | os.PathLike[str] | None = None,
    ) -> CastResult:
        """Cast array ``name`` chunk by chunk with a value audit (``arraystore cast``):
        atomic; a policy violation writes nothing and raises :class:`CastError`.

        Parameters
        ----------
        name : str
            The array.
        to : dtype, str or dict
            The target: a dtype (``"f4"``), per field (``"price:f4,qty:auto"`` or
            ``{"price": "f4"}``) or ``"auto"`` (the smallest lossless dtype per field);
            ``None`` only with ``resume`` (taken from the interrupted cast).
        out : str, optional
            Write a new array ``out`` (which must not exist) instead of replacing ``name``.
        casting : {"value", "clip", "safe", "same_kind", "unsafe"}, default "value"
            ``value``: every value survives; ``clip``: saturate; the others: numpy's rules.
        rtol : float, default 0.0
            Relative tolerance of ``value`` for float targets.
        nan_to, fill, errors : optional
            ``clip``: what NaN becomes in an integer; ``errors="coerce"`` (default
            ``"raise"``): ``fill`` is an integer target's value for unparsable strings.
        allow_half, allow_float_to_int : bool, default False
            ``auto`` may pick float16/bfloat16; may turn integral floats into integers.
        dry_run, resume : bool, default False
            Plan and audit only, writing nothing; finish an interrupted cast.
        checksum, shards : optional
            Checksums, zarr shard shape of the output (default: the source's).
        memory, executor, workers, progress : optional
            As in :meth:`create`; ``progress(task, nbytes)`` gets the bytes read.
        out_store : Store or path, optional
            Write ``out`` (default: ``name``) into this other store (a path is opened with
            mode ``"a"``); this store is only read, so it may be read-only (a foreign
            zarr group). Same policies and audit; no ``resume`` (run it again).

        Returns
        -------
        CastResult
            The audit ``arraystore cast`` prints: ``plan``, per-field ``reports``,
            ``nbytes_before`` / ``nbytes_after``, ``to_dict()``.
        """
        kw = {k: v for k, v in locals().items() if k not in ("self", "name", "to", "out")}
        dst, fresh = self._out_store(None if dry_run else kw.pop("out_store"))
        kw.pop("out_store", None)
        if dst is not None:
            with undo_new_store(dst, fresh):
                return _cast_to_store(self[name], dst, to, out or name, **kw)
        return self._cast_into(name, to, out=out, **kw)

    def _out_store(self, out_store: Any) -> tuple[StoreRoot | None, bool]:
        """The store ``out_store`` names (opened with mode ``"a"``; None for this one), and
        whether it was created here (a local path that did not exist)."""
        if out_store is None:
            return None, False
        if isinstance(out_store, StoreRoot):
            dst, fresh = out_store, False
        else:
            text = os.fspath(out_store)
            fresh = split_url(text) is None and not os.path.exists(text)
            dst = type(self)(out_store, "a")
        same = dst.path == self.path
        if isinstance(dst.path, Path) and isinstance(self.path, Path) and not same:
            same = os.path.realpath(dst.path) == os.path.realpath(self.path)
        if same and self.foreign is not None and self.foreign.only is not None:
            raise InvalidArgument(
                f"out_store {out_store} is the folder of the bare array {self.foreign.only}: "
                "give another store"
            )
        return (None, False) if same else (dst, fresh)

    def _cast_into(self, name: str, to: Any, out: str | None, **kw: Any) -> CastResult:
        """:meth:`cast`; a bare array (a .npy or zarr array on its own, read in place) is
        cast into a new .npy file ``out`` beside it, through a temporary array there."""
        from arraystore.ops.cast import cast as _cast  # lazy: start-up (casting modules)

        if self.foreign is None or self.foreign.only is None or kw["dry_run"]:
            return _cast(self, name, to, out=out, **kw)
        if out is None or not out.endswith(".npy") or "/" in out:
            raise InvalidArgument(
                f"{name} is read in place: cast it into a new .npy file beside it (out='NEW.npy')"
            )
        if (self.path / out).exists():
            raise ArrayExists(f"{self.path / out} already exists")
        tmp = f"{out[:-4]}.cast-{os.getpid()}"
        result = _cast(self, name, to, out=tmp, **kw)
        try:
            cast(Any, self[tmp]).export(self.path / out)
        finally:
            self.remove(tmp)
        result.out = out
        return result

    def map(
        self,
        expr: str | None = None,
        name: str | None = None,
        *,
        out: str,
        where: str | None = None,
        dtype: Any = None,
        backend: str | None = None,
        codec: str | None = None,
        chunks: Any = None,
        attrs: dict[str, Any] | None = None,
        memory: int | str | None = None,
        executor: str | Executor | None = None,
        workers: int | None = None,
        progress: Callable[[Any, Any], None] | None = None,
        overwrite: bool = False,
        resume: bool = False,
        checksum: bool = False,
        shards: Any = None,
        out_store: StoreRoot | str | os.PathLike[str] | None = None,
    ) -> Array:
        """Evaluate ``expr`` chunk by chunk into a new array ``out`` (``arraystore map``);
        ``where`` keeps the rows where a condition holds. A safe expression language,
        never Python ``eval`` (see :mod:`arraystore.core.expr`).

        Parameters
        ----------
        expr : str, optional
            The expression (``"sqrt(price) * qty"``); bare names are the fields of array
            ``name`` (or ``name`` itself for a plain dtype), without ``name`` whole arrays
            of this store, broadcast like numpy. Default with ``where``: the rows of
            ``name``, every field.
        name : str, optional
            The array whose fields the names are.
        out : str
            The new array.
        where : str, optional
            Keep the rows (axis 0) where this boolean expression is true.
        dtype : optional
            The output dtype (default: the expression's).
        backend, codec, chunks, attrs, overwrite, checksum, memory, executor, progress
            As in :meth:`create`; backend and codec default to the input's; ``chunks``
            and ``attrs`` only without ``where``; ``progress(task, nbytes)`` gets the
            bytes read.
        workers : int, optional
            Workers of an executor given by name.
        resume : bool, default False
            Finish an interrupted run of the same job, skipping its finished blocks.
        shards : optional
            zarr: the output's shard shape (see :meth:`create`; not with ``where``).
        out_store : Store or path, optional
            Write ``out`` into this other store (a path is opened with mode ``"a"``);
            this store is only read (it may be a read-only foreign zarr group).

        Returns
        -------
        Array
        """
        args = dict(locals())
        options = {k: args[k] for k in _MAP_OPTIONS}
        if where is not None and (chunks is not None or attrs is not None or shards is not None):
            raise InvalidArgument("map with where= takes no shards, chunks or attrs")
        if expr is None and where is None:
            raise InvalidArgument("map needs expr and/or where")
        options["out_store"], fresh = self._out_store(out_store)
        with undo_new_store(options["out_store"], fresh):
            if where is not None:
                return cast("Array", _where(self, name, where, out, expr=expr, **options))
            assert expr is not None
            kw = {"chunks": chunks, "attrs": attrs, "shards": shards}
            return cast("Array", map_expr(self, expr, name, out=out, **kw, **options))


#: the options :meth:`StoreVerbs.map` passes on as they are
_MAP_OPTIONS = (
    "dtype",
    "backend",
    "codec",
    "memory",
    "executor",
    "workers",
    "progress",
    "overwrite",
    "resume",
    "checksum",
)


def _cast_to_store(src: ArrayView, dst: StoreRoot, to: Any, out: str, **kw: Any) -> CastResult:
    """``Store.cast(..., out_store=dst)``: ``src`` cast into the new array ``out`` of
    ``dst`` (:func:`arraystore.ops.cast.into.cast_to_store`); ``kw``: cast's options."""
    from arraystore.ops.cast.into import CastOnWrite, cast_to_store  # lazy: start-up

    if kw.pop("resume") or to is None:
        raise InvalidArgument(
            "a cast into another store takes --to and no --resume (it is atomic: run it again)"
        )
    kw.pop("dry_run")
    names = ("casting", "rtol", "nan_to", "errors", "fill", "allow_half", "allow_float_to_int")
    how = CastOnWrite(to, **{k: kw.pop(k) for k in names})
    return cast_to_store(src, dst, out, how, **kw)


@contextlib.contextmanager
def undo_new_store(dst: StoreRoot | None, fresh: bool) -> Iterator[None]:
    """Remove the store ``dst`` again when the block fails, if it was created for it
    (``fresh``) and still holds nothing but its ``zarr.json`` (an interrupted map's
    resumable work folder keeps it): a failed ``--out-store`` command leaves nothing."""
    try:
        yield
    except BaseException:
        if fresh and dst is not None and isinstance(dst.path, Path):
            with contextlib.suppress(OSError):
                if [p.name for p in dst.path.iterdir()] == ["zarr.json"]:
                    remove_tree(dst.path)
        raise
