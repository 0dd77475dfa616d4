"""Recorded WebSocket sessions: read three capture formats, write our own.

Formats read by ``iter_capture`` (detected from the first non-blank line, gzip detected by magic bytes):

1. cryptofeed recorder ``.log`` (../shared/realdata/*/cryptofeed-*.log, okcoin-*.log)::

       wss://ws.okx.com:8443/ws/v5/public <-> 1652459224.5300605        connection opened
       wss://ws.okx.com:8443/ws/v5/public <- 1652459225.2987883: {...}  frame sent
       1652459225.5037491: {...}                                         frame received, byte for byte
       https://www.okx.com/api/v5/public/instruments?... -> 1652458996.256593: {...}   REST body
       configuration: {...}                                              recorder settings

   A received line carries no URL: it belongs to the connection opened last.

2. ccxt test captures ``.jsonl``: ``{"case": ..., "url": ..., "dir": "sent"|"recv", "msg": <frame>}``
   per line. No timestamps (``ts_us`` is None: the replayer uses its clock). ``text`` is the exact
   text of ``msg`` as it stands in the line.

3. Ours (``cryptolake stream --record DIR``), written by ``CaptureWriter``: JSON lines, one file per
   connection, gzip when the name ends in ``.gz``. The first line is a header, then one line per frame::

       {"format": "cryptolake-capture/1", "url": "wss://...", "opened_ts_us": 1786540435948123}
       {"ts_us": 1786540435950001, "url": "wss://...", "dir": "recv", "text": "{\\"arg\\":...}"}

   ``text`` is the frame exactly as it came off the socket (a JSON string holding it).

Nothing is dropped silently: a line that cannot be read yields a ``CapturedFrame`` with
``direction == "bad"``, ``error`` set and ``text`` holding the raw line, so the caller can reject it.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, cast

import orjson

from pipeline.errors import CryptolakeError

CAPTURE_FORMAT = "cryptolake-capture/1"

Direction = Literal["recv", "sent", "open", "rest", "meta", "bad"]
CaptureFormat = Literal["cryptofeed", "ccxt", "cryptolake"]


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """One line of a capture.

    direction: "recv" (from the venue), "sent" (by the client), "open" (connection opened, text ""),
    "rest" (a REST response body, url = the request), "meta" (recorder configuration / our header),
    "bad" (an unreadable line: ``error`` says why, ``text`` is the raw line).
    """

    url: str | None
    direction: Direction
    ts_us: int | None
    text: str
    line_no: int = 0
    error: str | None = None

    @property
    def bad(self) -> bool:
        return self.direction == "bad"


# --- reading -------------------------------------------------------------------------------------
_TS = r"(\d+(?:\.\d+)?)"
_CF_OPEN = re.compile(r"(\S+) <-> " + _TS)
_CF_SENT = re.compile(r"(\S+) <- " + _TS + ": (.*)", re.S)
_CF_RECV = re.compile(_TS + ": (.*)", re.S)
_CF_REST = re.compile(r"(\S+) -> " + _TS + ": (.*)", re.S)
_CF_CONFIG = "configuration: "


def _ts_us(ts: str) -> int:
    """Exact unix-seconds decimal string -> int microseconds (no float rounding)."""
    seconds, _, frac = ts.partition(".")
    return int(seconds) * 1_000_000 + int((frac + "000000")[:6])


@contextlib.contextmanager
def _open_binary(path: Path) -> Iterator[IO[bytes]]:
    """The file's bytes, gunzipped when it starts with the gzip magic (whatever its name)."""
    if not path.exists():
        raise CryptolakeError(f"capture file not found: {path}")
    if not path.is_file():
        raise CryptolakeError(f"capture path is not a file: {path}")
    with path.open("rb") as raw:
        if raw.read(2) == b"\x1f\x8b":
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                yield gz  # type: ignore[misc]  # GzipFile reads bytes like IO[bytes] but is not declared one
        else:
            raw.seek(0)
            yield raw


@dataclass(frozen=True)
class CaptureSurvey:
    """What a capture is, decided before anything of it is written: its identity (the SHA-256 of its content,
    decompressed, so the same recording gzipped or not is one capture), where it ends early, its URLs."""

    content_sha256: str
    truncated: str | None  # why the compressed stream ended before its end, or None
    urls: frozenset[str]


def survey(path: str | Path) -> CaptureSurvey:
    """Read the capture once for its content hash and truncation, once more for the URLs its frames name."""
    digest = hashlib.sha256()
    truncated = None
    with _open_binary(Path(path)) as fh:
        try:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        except (EOFError, OSError, zlib.error) as exc:
            truncated = f"{TRUNCATED}: {exc}"
    urls = frozenset(f.url for f in iter_capture(path) if f.url)
    return CaptureSurvey(digest.hexdigest(), truncated, urls)


TRUNCATED = "unreadable gzip tail"
_NOT_UTF8 = "line is not UTF-8"
_Line = tuple[int, str | None, bytes, str | None]


def _lines(fh: IO[bytes]) -> Iterator[_Line]:
    """(line_no, decoded line without its newline or None if unreadable, raw bytes, why unreadable)."""
    line_no = 0
    while True:
        try:
            raw = fh.readline()
        except (EOFError, OSError, zlib.error) as exc:
            # A collector killed mid-write leaves a truncated gzip stream: report it, keep what was read.
            # (zlib.error is no OSError: a corrupt deflate block escaped as a traceback from `cryptolake import`.)
            yield line_no + 1, None, b"", f"{TRUNCATED}: {exc}"
            return
        if not raw:
            return
        line_no += 1
        body = raw[:-1] if raw.endswith(b"\n") else raw
        if body.endswith(b"\r"):
            body = body[:-1]
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            yield line_no, None, body, _NOT_UTF8
        else:
            yield line_no, text, body, None


def detect_format(first_line: str) -> CaptureFormat | None:
    if first_line.startswith("{"):
        try:
            obj = orjson.loads(first_line)
        except orjson.JSONDecodeError:
            return None
        if isinstance(obj, dict):
            if obj.get("format") == CAPTURE_FORMAT or {"ts_us", "dir", "text"} <= obj.keys():
                return "cryptolake"
            if {"url", "dir", "msg"} <= obj.keys():
                return "ccxt"
        return None
    if (
        _CF_OPEN.fullmatch(first_line)
        or _CF_SENT.fullmatch(first_line)
        or _CF_REST.fullmatch(first_line)
        or _CF_RECV.fullmatch(first_line)
        or first_line.startswith(_CF_CONFIG)
    ):
        return "cryptofeed"
    return None


def capture_format(path: str | Path) -> CaptureFormat:
    """The format of a capture file; CryptolakeError naming the file if missing or unknown."""
    path = Path(path)
    with _open_binary(path) as fh:
        for _, line, _, _ in _lines(fh):
            if line is None:
                break
            if line.strip():
                fmt = detect_format(line)
                if fmt is None:
                    break
                return fmt
        else:
            return "cryptolake"  # empty file: nothing to read, any reader yields nothing
    raise CryptolakeError(
        f"unknown capture format in {path}: expected a cryptofeed .log, a ccxt .jsonl or a {CAPTURE_FORMAT} file"
    )


def iter_capture(path: str | Path) -> Iterator[CapturedFrame]:
    """Every line of a capture as a ``CapturedFrame``, in file order (format detected)."""
    path = Path(path)
    fmt = capture_format(path)
    reader = {"cryptofeed": _read_cryptofeed, "ccxt": _read_ccxt, "cryptolake": _read_cryptolake}[fmt]
    with _open_binary(path) as fh:
        yield from reader(_lines(fh))


def _bad(line_no: int, line: str | None, raw: bytes, error: str | None, url: str | None = None) -> CapturedFrame:
    text = line if line is not None else raw.decode("utf-8", "replace")
    return CapturedFrame(url, "bad", None, text, line_no, error or "unreadable line")


def _read_cryptofeed(lines: Iterator[_Line]) -> Iterator[CapturedFrame]:
    url: str | None = None  # the connection the next received line belongs to
    for line_no, line, raw, unreadable in lines:
        if line is None:
            yield _bad(line_no, line, raw, unreadable, url)
            continue
        if not line.strip():
            continue  # the recorder writes blank separator lines
        # Received frames are by far the most lines: try them first.
        m = _CF_RECV.fullmatch(line)
        if m:
            yield CapturedFrame(url, "recv", _ts_us(m.group(1)), m.group(2), line_no)
            continue
        m = _CF_SENT.fullmatch(line)
        if m:
            yield CapturedFrame(m.group(1), "sent", _ts_us(m.group(2)), m.group(3), line_no)
            continue
        m = _CF_OPEN.fullmatch(line)
        if m:
            url = m.group(1)
            yield CapturedFrame(url, "open", _ts_us(m.group(2)), "", line_no)
            continue
        m = _CF_REST.fullmatch(line)
        if m:
            yield CapturedFrame(m.group(1), "rest", _ts_us(m.group(2)), m.group(3), line_no)
            continue
        if line.startswith(_CF_CONFIG):
            yield CapturedFrame(None, "meta", None, line[len(_CF_CONFIG) :], line_no)
            continue
        yield _bad(line_no, line, raw, "not a cryptofeed recorder line", url)


_MSG_KEY = '"msg":'


def _raw_msg(line: str, msg: object) -> str:
    """The text of ``msg`` exactly as it stands in the line (it is the last key in ccxt captures)."""
    if isinstance(msg, str):
        return msg  # a text frame such as "pong" was recorded as a JSON string
    at = line.rfind(_MSG_KEY)
    if at >= 0 and line.endswith("}"):
        candidate = line[at + len(_MSG_KEY) : -1].strip()
        try:
            if orjson.loads(candidate) == msg:
                return candidate
        except orjson.JSONDecodeError:
            pass
    return orjson.dumps(msg).decode()


class _BadLine(ValueError):
    """A capture line that is JSON but not a frame of its format: the reason, and the URL when it names one."""

    def __init__(self, reason: str, url: Any = None) -> None:
        super().__init__(reason)
        self.url = url if isinstance(url, str) else None


def _read_json_lines(
    lines: Iterator[_Line], what: str, frame_of: Callable[[Any, str, int], CapturedFrame]
) -> Iterator[CapturedFrame]:
    """The line loop of the one-JSON-object-a-line formats: unreadable lines and lines that are not ``what``
    become bad frames with the reason, blank lines are skipped, ``frame_of(obj, line, line_no)`` reads the rest."""
    for line_no, line, raw, unreadable in lines:
        if line is None:
            yield _bad(line_no, line, raw, unreadable)
            continue
        if not line.strip():
            continue
        try:
            frame = frame_of(orjson.loads(line), line, line_no)
        except _BadLine as exc:
            frame = _bad(line_no, line, raw, str(exc), exc.url)
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            frame = _bad(line_no, line, raw, f"not a {what} line ({exc})")
        yield frame


def _ccxt_frame(obj: Any, line: str, line_no: int) -> CapturedFrame:
    direction, url, msg = obj["dir"], obj["url"], obj["msg"]
    if direction not in ("recv", "sent"):
        raise _BadLine(f"unknown dir {direction!r}", url)
    return CapturedFrame(url, direction, None, _raw_msg(line, msg), line_no)


def _cryptolake_frame(obj: Any, line: str, line_no: int) -> CapturedFrame:
    if obj.get("format") == CAPTURE_FORMAT:
        return CapturedFrame(obj.get("url"), "meta", obj.get("opened_ts_us"), line, line_no)
    direction, url, text, ts_us = obj["dir"], obj["url"], obj["text"], obj["ts_us"]
    if direction not in ("recv", "sent") or not isinstance(text, str) or ts_us.__class__ is not int:
        raise _BadLine("bad dir, text or ts_us", url)
    return CapturedFrame(url, direction, ts_us, text, line_no)


def _read_ccxt(lines: Iterator[_Line]) -> Iterator[CapturedFrame]:
    return _read_json_lines(lines, "ccxt capture", _ccxt_frame)


def _read_cryptolake(lines: Iterator[_Line]) -> Iterator[CapturedFrame]:
    return _read_json_lines(lines, CAPTURE_FORMAT, _cryptolake_frame)


# --- writing -------------------------------------------------------------------------------------
class CaptureWriter:
    """Writes one connection's frames in the ``cryptolake-capture/1`` format (gzip if path ends .gz).

    Use one writer per connection (``connection_capture_path`` names the file). Writes are buffered;
    ``close()`` (or leaving the ``with`` block) flushes. A process killed mid-write leaves a readable
    prefix: ``iter_capture`` reports the torn tail as a "bad" frame.
    """

    def __init__(self, path: str | Path, url: str | None = None, opened_ts_us: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Append, never truncate: reopening an existing name adds a second header, which readers skip.
        raw: IO[bytes] = self.path.open("ab")
        self._fh: IO[bytes] = (
            cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=5))
            if self.path.suffix == ".gz"
            else raw
        )
        self._raw = raw
        self.frames_written = 0
        header = {"format": CAPTURE_FORMAT, "url": url, "opened_ts_us": opened_ts_us}
        self._fh.write(orjson.dumps(header) + b"\n")

    def write(self, url: str, direction: Literal["recv", "sent"], text: str | bytes, ts_us: int) -> None:
        if direction not in ("recv", "sent"):
            raise CryptolakeError(f"capture direction must be 'recv' or 'sent', not {direction!r}")
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        self._fh.write(orjson.dumps({"ts_us": ts_us, "url": url, "dir": direction, "text": text}) + b"\n")
        self.frames_written += 1

    def flush(self) -> None:
        self._fh.flush()
        if self._fh is not self._raw:
            self._raw.flush()

    def close(self) -> None:
        if self._fh.closed:
            return
        self._fh.close()
        if self._fh is not self._raw:
            self._raw.close()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connection_capture_path(
    directory: str | Path, venue: str, opened_ts_us: int, connection_no: int, compress: bool = True
) -> Path:
    """``DIR/<venue>-<opened_ts_us>-<n>.jsonl[.gz]``: one file per connection, sorted by open time."""
    if not re.fullmatch(r"[a-z0-9_]+", venue):
        raise CryptolakeError(f"venue name not usable in a file name: {venue!r}")
    suffix = ".jsonl.gz" if compress else ".jsonl"
    return Path(directory) / f"{venue}-{opened_ts_us:016d}-{connection_no:04d}{suffix}"


__all__ = [
    "CAPTURE_FORMAT",
    "CaptureWriter",
    "CapturedFrame",
    "capture_format",
    "connection_capture_path",
    "detect_format",
    "iter_capture",
]
