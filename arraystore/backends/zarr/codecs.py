"""zarr v3 codecs, data types and fill values, as the zarr backend reads and writes them.

Two halves:

* our codec specs (``none``, ``zstd[:L]``, ``gzip[:L]``, ``blosc-lz4``, ``blosc-zstd``,
  ``lz4``; see :mod:`arraystore.backends.zarr`): :func:`parse_codec` validates one,
  :func:`make_compressors` builds zarr-python's codec objects for it and
  :func:`codec_from_json` names the codecs of a stored ``zarr.json`` (for ``info``);
* what the direct chunk path (:mod:`.chunks`) accepts from a ``zarr.json``: the data
  types (:data:`DATA_TYPES`), fill values (:func:`parse_fill_value`) and codec chains
  (:func:`parse_codecs`: the numcodecs object zarr-python itself would use), and the
  decoded size a compressed chunk's header declares (:func:`declared_size`). Anything
  else raises :class:`Unsupported`: the caller then falls back to zarr-python.
"""

from __future__ import annotations

import contextlib
import math
import threading
import warnings
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np

from arraystore.errors import UnknownCodec

__all__ = [
    "CODECS",
    "DATA_TYPES",
    "Compressor",
    "Unsupported",
    "codec_from_json",
    "declared_size",
    "json_int",
    "make_compressors",
    "named",
    "parse_codec",
    "parse_codecs",
    "parse_fill_value",
    "quiet",
    "single_threaded_blosc",
    "u32",
]

CODECS = ("none", "zstd", "gzip", "blosc-lz4", "blosc-zstd", "lz4")

DATA_TYPES = frozenset(
    ["bool"]
    + [f"{k}int{b}" for k in ("", "u") for b in (8, 16, 32, 64)]
    + ["float16", "float32", "float64", "complex64", "complex128"]
)
_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}

#: "pipeline": a foreign zarr v2 chain (compressor, then filters) decoded by numcodecs
Compressor = Literal["none", "blosc", "zstd", "gzip", "lz4", "pipeline"]

_QUIET = threading.RLock()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence zarr's warnings about non-spec codecs/dtypes we chose knowingly.

    ``warnings.catch_warnings`` swaps process-global state, so every use is serialised.
    """
    from zarr.errors import UnstableSpecificationWarning, ZarrUserWarning

    with _QUIET, warnings.catch_warnings():
        warnings.simplefilter("ignore", UnstableSpecificationWarning)
        warnings.simplefilter("ignore", ZarrUserWarning)
        yield


def parse_codec(spec: str | None) -> tuple[str, int | None]:
    """``"zstd:5"`` -> ``("zstd", 5)``; validates the name and level."""
    if spec is not None and not isinstance(spec, str):
        raise UnknownCodec(f"codec must be a string like 'zstd:3', got {spec!r}")
    text = (spec or "none").strip().lower()
    name, _, level = text.partition(":")
    if name not in CODECS:
        raise UnknownCodec(f"unknown codec {spec!r} (choose from: {', '.join(CODECS)})")
    if not level:
        return name, None
    digits = level.lstrip("-")
    if name in ("none", "lz4") or not (digits.isascii() and digits.isdecimal()):  # not '²'
        raise UnknownCodec(f"bad codec level in {spec!r}")
    lv = int(level)
    limits = {"zstd": (-131072, 22), "gzip": (0, 9), "blosc-lz4": (0, 9), "blosc-zstd": (0, 9)}
    lo, hi = limits[name]
    if not lo <= lv <= hi:
        raise UnknownCodec(f"codec level {lv} out of range {lo}..{hi} for {name}")
    return name, lv


def make_compressors(spec: str | None) -> list[Any]:
    """zarr-python's codec objects for a codec spec (``[]`` for ``none``)."""
    name, level = parse_codec(spec)
    if name == "none":
        return []
    from zarr import codecs as zc

    if name == "zstd":
        return [zc.ZstdCodec(level=3 if level is None else level)]
    if name == "gzip":
        return [zc.GzipCodec(level=5 if level is None else level)]
    if name.startswith("blosc-"):
        return [
            zc.BloscCodec(
                cname=name[6:],  # type: ignore[arg-type]
                clevel=5 if level is None else level,
                shuffle="shuffle",
            )
        ]
    # lz4 (format 2): the spec's blosc with cname lz4 and no shuffle, which every zarr
    # reader decodes (numcodecs' own LZ4 codec is not in the zarr v3 spec)
    return [zc.BloscCodec(cname="lz4", clevel=5 if level is None else level, shuffle="noshuffle")]


def codec_from_json(codecs: list[dict[str, Any]]) -> str:
    """Our codec spec from a zarr.json ``codecs`` list (for ``info``)."""
    names = []
    for c in codecs:
        name, conf = c.get("name"), c.get("configuration") or {}
        if name in ("bytes", "crc32c"):
            continue
        if name == "blosc" and conf.get("cname") == "lz4" and conf.get("shuffle") == "noshuffle":
            names.append("lz4")
        elif name == "blosc":
            names.append(f"blosc-{conf.get('cname', '?')}")
        elif name == "numcodecs.lz4":
            names.append("lz4")
        elif name in ("zstd", "gzip"):
            names.append(f"{name}:{conf.get('level')}")
        else:
            names.append(str(name))
    return "+".join(names) or "none"


# ------------------------------------------------- zarr.json, for the direct chunk path
class Unsupported(Exception):
    """Raised while parsing metadata: the fast path does not apply."""


def named(entry: Any) -> tuple[str, dict[str, Any]]:
    """``{"name": n, "configuration": {...}}`` (or a bare name) -> ``(n, config)``."""
    if isinstance(entry, str):
        return entry, {}
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise Unsupported(f"bad named configuration {entry!r}")
    conf = entry.get("configuration", {})
    if not isinstance(conf, dict) or set(entry) - {"name", "configuration", "must_understand"}:
        raise Unsupported(f"bad named configuration {entry!r}")
    return entry["name"], conf


def json_int(value: Any, lo: int | None = None, hi: int | None = None) -> int:
    """A JSON integer (not a bool) within ``lo..hi``, else :class:`Unsupported`."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise Unsupported(f"expected an int, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise Unsupported(f"{value} out of range")
    return value


def _float(value: Any, dtype: np.dtype) -> np.generic:
    """A zarr v3 JSON float (number, "NaN", "Infinity", "-Infinity", "0x<hex>")."""
    if isinstance(value, bool):
        raise Unsupported("bool is not a float fill value")
    if isinstance(value, int | float):
        with np.errstate(over="ignore"):
            out: np.generic = dtype.type(value)
        if math.isfinite(value) and not np.isfinite(out):
            raise Unsupported(f"fill value {value!r} overflows {dtype}")
        return out
    if isinstance(value, str):
        special = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
        if value in special:
            return dtype.type(special[value])
        if value.startswith("0x") and len(value) == 2 + 2 * dtype.itemsize:
            raw = bytes.fromhex(value[2:])
            big_endian = np.frombuffer(raw, dtype=dtype.newbyteorder(">"))
            return dtype.type(big_endian[0])
    raise Unsupported(f"fill value {value!r} is not a float")


def parse_fill_value(value: Any, dtype: np.dtype) -> np.generic:
    """A zarr v3 JSON fill value as a numpy scalar of ``dtype``."""
    kind = dtype.kind
    if kind == "b":
        if not isinstance(value, bool):
            raise Unsupported(f"fill value {value!r} is not a bool")
        return np.bool_(value)
    if kind in "iu":
        info = np.iinfo(dtype)
        return dtype.type(json_int(value, int(info.min), int(info.max)))
    if kind == "f":
        return _float(value, dtype)
    if kind == "c" and isinstance(value, list) and len(value) == 2:
        part = np.dtype(f"f{dtype.itemsize // 2}")
        re, im = (float(_float(v, part)) for v in value)
        return dtype.type(complex(re, im))
    raise Unsupported(f"fill value {value!r} not representable as {dtype}")


def parse_codecs(codecs: Any, dtype: np.dtype) -> tuple[Compressor, Any, bool]:
    """A zarr.json ``codecs`` chain: ``(compressor, numcodecs codec or None, crc32c?)``."""
    if not isinstance(codecs, list) or not codecs:
        raise Unsupported("no codecs")
    chain = [named(c) for c in codecs]
    name, conf = chain[0]
    if name != "bytes":  # transpose, sharding_indexed, vlen-*, numcodecs filters ...
        raise Unsupported(f"array codec {name!r}")
    endian = conf.get("endian")
    if set(conf) - {"endian"} or endian not in (None, "little", "big"):
        raise Unsupported("bytes codec configuration")
    if dtype.itemsize > 1 and endian != "little":
        raise Unsupported("not little endian")
    rest = chain[1:]
    checksum = bool(rest) and rest[-1][0] == "crc32c"
    if checksum:
        if rest[-1][1]:
            raise Unsupported("crc32c configuration")
        try:
            import google_crc32c  # noqa: F401  (what zarr-python's crc32c codec uses)
        except ImportError as exc:
            raise Unsupported("google_crc32c is not installed") from exc
        rest = rest[:-1]
    if not rest:
        return "none", None, checksum
    if len(rest) > 1:
        raise Unsupported("more than one compressor")
    name, conf = rest[0]
    if name == "blosc":
        return "blosc", _blosc(conf, dtype), checksum
    if name == "zstd":
        if set(conf) - {"level", "checksum"} or not isinstance(conf.get("checksum", False), bool):
            raise Unsupported("zstd configuration")
        from numcodecs import Zstd

        level = json_int(conf.get("level", 0), hi=22)
        return "zstd", Zstd(level=level, checksum=conf.get("checksum", False)), checksum
    if name == "gzip":
        if set(conf) - {"level"}:
            raise Unsupported("gzip configuration")
        from numcodecs import GZip

        return "gzip", GZip(json_int(conf.get("level", 5), 0, 9)), checksum
    if name == "numcodecs.lz4":
        if set(conf) - {"acceleration", "id"} or conf.get("id", "lz4") != "lz4":
            raise Unsupported("lz4 configuration")
        from numcodecs import LZ4

        return "lz4", LZ4(acceleration=json_int(conf.get("acceleration", 1))), checksum
    raise Unsupported(f"codec {name!r}")


def _blosc(conf: dict[str, Any], dtype: np.dtype) -> Any:
    """numcodecs.Blosc exactly as zarr.codecs.BloscCodec builds it."""
    import numcodecs
    import numcodecs.blosc

    if set(conf) - {"cname", "clevel", "shuffle", "typesize", "blocksize"}:
        raise Unsupported("blosc configuration")
    cname = conf.get("cname", "zstd")
    if cname not in numcodecs.blosc.list_compressors():
        raise Unsupported(f"blosc cname {cname!r}")
    typesize = json_int(conf.get("typesize", dtype.itemsize), 1)
    shuffle = conf.get("shuffle", "bitshuffle" if dtype.itemsize == 1 else "shuffle")
    if shuffle not in _SHUFFLE:
        raise Unsupported(f"blosc shuffle {shuffle!r}")
    single_threaded_blosc()
    config = {
        "cname": cname,
        "clevel": json_int(conf.get("clevel", 5), 0, 9),
        "shuffle": _SHUFFLE[shuffle],
        "blocksize": json_int(conf.get("blocksize", 0), 0),
    }
    try:
        return numcodecs.Blosc(**config, typesize=typesize)
    except TypeError:  # numcodecs < 0.16 has no typesize; zarr then omits it too
        return numcodecs.Blosc(**config)


def single_threaded_blosc() -> None:
    """What zarr.codecs.blosc does on import: one blosc thread per call, through blosc's
    thread-safe contextual API. Multi-threaded blosc output depends on thread timing, so
    this is also what makes the bytes reproducible (and identical to zarr-python's)."""
    import numcodecs.blosc

    numcodecs.blosc.use_threads = False


def declared_size(compressor: str, data: np.ndarray, chunk_bytes: int) -> int | None:
    """Decoded size stated in the compressed stream's header (None: not stated)."""
    n = data.size
    if compressor == "pipeline":
        return None
    if compressor == "blosc":
        if n < 16 or u32(data, 12) != n:  # header: version, flags, nbytes, bsize, cbytes
            raise ValueError("bad blosc header")
        return u32(data, 4)
    if compressor == "lz4":  # numcodecs' LZ4 prefixes the decoded size
        if n < 4:
            raise ValueError("truncated lz4 data")
        return u32(data, 0)
    if compressor == "zstd":
        return _zstd_content_size(data)
    # gzip: the ISIZE trailer is the decoded size mod 2**32 (GzipFile checks it)
    if n < 18:
        raise ValueError("truncated gzip data")
    isize = u32(data, n - 4)
    return chunk_bytes if isize == chunk_bytes % (1 << 32) else isize


def _zstd_content_size(buf: np.ndarray) -> int | None:
    """The decoded size a zstd frame header declares (RFC 8878 §3.1.1.1), if any."""
    if buf.size < 6 or bytes(buf[:4]) != b"\x28\xb5\x2f\xfd":
        return None
    descriptor = int(buf[4])
    single_segment = (descriptor >> 5) & 1
    fcs_size = (single_segment, 2, 4, 8)[descriptor >> 6]
    if fcs_size == 0:
        return None
    pos = 5 + (1 - single_segment) + (0, 1, 2, 4)[descriptor & 3]
    if buf.size < pos + fcs_size:
        return None
    size = int.from_bytes(bytes(buf[pos : pos + fcs_size]), "little")
    return size + 256 if fcs_size == 2 else size


def u32(buf: np.ndarray, at: int) -> int:
    """The little-endian uint32 at byte ``at`` of ``buf``."""
    return int.from_bytes(bytes(buf[at : at + 4]), "little")
