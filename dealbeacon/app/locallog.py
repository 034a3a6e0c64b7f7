"""Embedded mode's local log: what ingest accepted, appended and fsync'd before the 202, applied to chdb behind it.

Files in ``<data_dir>/locallog/``:
- ``<first position, 20 digits>.seg``: entries, each a ``<u32 length><u32 crc32>`` header and its payload (one
  request's records). Positions count entries from 0 across segments. The segment being written is rotated at
  ``segment_bytes``; a segment is deleted once every entry in it is applied.
- ``cursor.json``: ``{"log_id", "applied", "applying"}``, replaced atomically (write, fsync, rename, fsync the
  directory). ``applied``: the last position whose rows are in the store. ``applying``: the range being written
  now; after a crash it is written again as the same range, so its insert tokens repeat and the store drops the
  copy. ``log_id``: random per log, so a new log never passes for an old one's positions.

A crash can leave a torn entry at the end of the last segment: it was never fsync'd, so never acknowledged; it
is cut off when the log is opened. A bad entry anywhere else is corruption and stops the process.

Blocking file I/O throughout: callers on an event loop run these methods in a thread, one at a time.
"""
from __future__ import annotations

import os
import secrets
import shutil
import struct
import zlib
from typing import Any

import orjson

_HEADER = struct.Struct("<II")
_SUFFIX = ".seg"
CURSOR = "cursor.json"


class LogCorrupt(RuntimeError):
    """An entry that is not the torn tail of the last segment failed its length or checksum."""


class LogFull(RuntimeError):
    """The disk the log lives on has less free space than the log's reserve."""


class LocalLog:
    def __init__(self, directory: str, *, segment_bytes: int = 64 << 20, min_free_bytes: int = 0):
        self.dir, self.segment_bytes, self.min_free_bytes = directory, segment_bytes, min_free_bytes
        self.log_id = 0
        self.applied = -1  # last position applied to the store
        self.applying: tuple[int, int] | None = None
        self.next_position = 0
        self._segments: list[int] = []  # first position of each segment on disk, ascending
        self._fh: Any = None  # the last segment, open for appending (a BufferedWriter)
        self._size = 0

    # -- opening and recovery

    def open(self) -> list[tuple[int, bytes]]:
        """Read the cursor and the segments; cut a torn tail; return the entries not applied yet, in order."""
        os.makedirs(self.dir, exist_ok=True)
        cursor_path = os.path.join(self.dir, CURSOR)
        if os.path.exists(cursor_path):
            with open(cursor_path, "rb") as fh:
                c = orjson.loads(fh.read())
            self.log_id, self.applied = int(c["log_id"]), int(c["applied"])
            self.applying = tuple(c["applying"]) if c.get("applying") else None
        else:
            self.log_id = secrets.randbelow(2**31 - 1) + 1
            self._write_cursor()
        self._segments = sorted(int(n[:-len(_SUFFIX)]) for n in os.listdir(self.dir) if n.endswith(_SUFFIX))
        pending: list[tuple[int, bytes]] = []
        self.next_position = self.applied + 1
        for i, first in enumerate(self._segments):
            last_segment = i == len(self._segments) - 1
            pos, good_bytes = first, 0
            for payload, end in self._read(first, torn_ok=last_segment):
                if pos > self.applied:
                    pending.append((pos, payload))
                pos, good_bytes = pos + 1, end
            if last_segment and good_bytes < os.path.getsize(self._path(first)):
                with open(self._path(first), "r+b") as fh:  # the torn tail of an append that never returned
                    fh.truncate(good_bytes)
                    os.fsync(fh.fileno())
            self.next_position = max(self.next_position, pos)
        if self._segments:
            self._fh = open(self._path(self._segments[-1]), "ab")  # noqa: SIM115 (open for appends until close)
            self._size = self._fh.tell()
        self._drop_applied_segments()
        return pending

    def _path(self, first: int) -> str:
        return os.path.join(self.dir, f"{first:020d}{_SUFFIX}")

    def _read(self, first: int, torn_ok: bool):
        with open(self._path(first), "rb") as fh:
            data = fh.read()
        at = 0
        while at < len(data):
            if at + _HEADER.size > len(data):
                if torn_ok:
                    return
                raise LogCorrupt(f"{self._path(first)}: truncated header at byte {at}")
            length, crc = _HEADER.unpack_from(data, at)
            end = at + _HEADER.size + length
            payload = data[at + _HEADER.size:end]
            if end > len(data) or zlib.crc32(payload) != crc:
                if torn_ok:
                    return
                raise LogCorrupt(f"{self._path(first)}: bad entry at byte {at}")
            yield payload, end
            at = end

    # -- appending

    def append(self, payloads: list[bytes]) -> int:
        """Append entries and fsync them; returns the first one's position. On any failure nothing of this
        call stays in the log (the file is cut back), and the error is raised."""
        if self.min_free_bytes and shutil.disk_usage(self.dir).free < self.min_free_bytes:
            raise LogFull(f"less than {self.min_free_bytes} bytes free for the local log in {self.dir}")
        if self._fh is None or self._size >= self.segment_bytes:
            self._rotate()
        first = self.next_position
        buf = bytearray()
        for p in payloads:
            buf += _HEADER.pack(len(p), zlib.crc32(p))
            buf += p
        try:
            self._fh.write(buf)
            self._fh.flush()
            os.fdatasync(self._fh.fileno())
        except BaseException:
            self._cut_back(self._size)
            raise
        self._size += len(buf)
        self.next_position += len(payloads)
        return first

    def _cut_back(self, size: int) -> None:
        try:
            self._fh.close()
        finally:
            path = self._path(self._segments[-1])
            with open(path, "r+b") as fh:
                fh.truncate(size)
                os.fsync(fh.fileno())
            self._fh = open(path, "ab")  # noqa: SIM115 (open for appends until close)

    def _rotate(self) -> None:
        if self._fh is not None:
            self._fh.close()
        self._segments.append(self.next_position)
        self._fh = open(self._path(self.next_position), "ab")  # noqa: SIM115 (open for appends until close)
        self._size = 0
        self._fsync_dir()

    # -- the writer's cursor

    def begin(self, first: int, last: int) -> None:
        """Record the range about to be written to the store (replayed as this same range after a crash)."""
        self.applying = (first, last)
        self._write_cursor()

    def applied_through(self, last: int) -> None:
        """The store holds every position up to ``last``: advance the cursor, delete whole applied segments."""
        self.applied, self.applying = last, None
        self._write_cursor()
        self._drop_applied_segments()

    def _write_cursor(self) -> None:
        tmp = os.path.join(self.dir, CURSOR + ".tmp")
        with open(tmp, "wb") as fh:
            fh.write(orjson.dumps({"log_id": self.log_id, "applied": self.applied,
                                   "applying": list(self.applying) if self.applying else None}))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, os.path.join(self.dir, CURSOR))
        self._fsync_dir()

    def _drop_applied_segments(self) -> None:
        # a segment is done when the next one starts at or before the first unapplied position; the last stays
        while len(self._segments) > 1 and self._segments[1] <= self.applied + 1:
            os.remove(self._path(self._segments.pop(0)))

    def _fsync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def segments(self) -> list[str]:
        return [self._path(f) for f in self._segments]

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
