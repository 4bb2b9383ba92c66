"""The local spool: where a client puts what the server could not take yet.

When the server stays unreachable (or the queue fills faster than the server
takes it), the sender appends each batch, already serialised with its
idempotency key, to a spool file of its run instead of holding it in memory or
blocking the trainer. When the server answers again the spool is sent, in
order, and removed; ``trainboard sync`` sends what a finished process left.

File format (one file per run and client): the line ``TBSPOOL1``, then records
of ``length (4 bytes LE) | crc32 (4 bytes LE) | kind (1 byte) | payload``:
``H`` a JSON header (experiment, run, params, the client's id and whether it
resumes: sending the file starts the run as the client would have), ``B`` a serialised
``WriteBatchRequest`` (its run id is filled in when sent), ``G`` a serialised
``Graph``, ``F`` a JSON finish record (status, wall_time). A record cut short
by a crash, or failing its checksum, ends the file: everything before it is
sent. Sending a spool twice stores nothing twice (the server skips batches
whose sequence it has already applied).
"""

from __future__ import annotations

import json
import os
import re
import struct
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from trainboard.transport import RemoteStore
from trainboard.v1 import trainboard_pb2 as pb
from trainboard.wire import graph_from_pb

MAGIC = b"TBSPOOL1\n"
SUFFIX = ".tbspool"
_RECORD = struct.Struct("<II")
HEADER, BATCH, GRAPH, FINISH = b"H", b"B", b"G", b"F"


def default_spool_dir() -> Path:
    """``TRAINBOARD_SPOOL_DIR``, else ``~/.trainboard/spool``."""
    configured = os.environ.get("TRAINBOARD_SPOOL_DIR")
    return Path(configured) if configured else Path.home() / ".trainboard" / "spool"


def spool_path(directory: Path, experiment: str, run: str, client_id: str) -> Path:
    """A file name that identifies the run and cannot escape ``directory``."""

    def safe(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9._=-]+", "_", text)[:80]

    return directory / f"{safe(experiment)}__{safe(run)}__{client_id}{SUFFIX}"


class SpoolWriter:
    """Appends records to one spool file (one thread at a time)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO | None = None
        self.batches = 0
        #: Bytes written so far, every record whole (what a reader may read up to).
        self.size = 0

    def open(
        self,
        experiment: str,
        run: str,
        params: Mapping[str, Any] | None,
        *,
        client_id: str,
        resume: bool,
    ) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab")  # noqa: SIM115 - held open while spilling
        self.size = self._file.tell()
        if self.size == 0:
            self._file.write(MAGIC)
            self.size = len(MAGIC)
            header = {
                "experiment": experiment,
                "run": run,
                "params": params,
                "client_id": client_id,
                "resume": resume,
            }
            self._append(HEADER, json.dumps(header).encode())

    def _append(self, kind: bytes, payload: bytes) -> None:
        assert self._file is not None, "SpoolWriter.open() first"
        body = kind + payload
        self._file.write(_RECORD.pack(len(body), zlib.crc32(body)) + body)
        # Flushed to the OS at once: a killed trainer loses nothing spooled.
        self._file.flush()
        self.size += _RECORD.size + len(body)

    def append_batch(self, request: pb.WriteBatchRequest) -> None:
        self._append(BATCH, request.SerializeToString())
        self.batches += 1

    def append_graph(self, graph: pb.Graph) -> None:
        self._append(GRAPH, graph.SerializeToString())

    def append_finish(self, status: str, wall_time: float) -> None:
        self._append(FINISH, json.dumps({"status": status, "wall_time": wall_time}).encode())

    def close(self) -> None:
        if self._file is not None:
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None


@dataclass
class SpoolContents:
    """What a spool file holds, in order."""

    experiment: str
    run: str
    params: Mapping[str, Any] | None
    records: list[tuple[bytes, bytes]] = field(default_factory=list)
    truncated: bool = False
    client_id: str | None = None
    # Files written before clients had ids resumed the run of their name.
    resume: bool = True


def read_records(
    path: Path, offset: int = 0, end: int | None = None
) -> Iterator[tuple[bytes, bytes, int]]:
    """The records of a spool file after ``offset`` (0: from the start, header
    included) as (kind, payload, offset after the record), up to ``end`` bytes
    (default: all). Stops at the end or at a record cut short or damaged; a file
    being appended to can be read."""
    with open(path, "rb") as file:
        if offset == 0:
            if file.read(len(MAGIC)) != MAGIC:
                raise ValueError(f"{path} is not a Trainboard spool file")
            offset = len(MAGIC)
        file.seek(offset)
        while end is None or offset < end:
            head = file.read(_RECORD.size)
            if len(head) < _RECORD.size:
                return
            length, crc = _RECORD.unpack(head)
            body = file.read(length)
            if len(body) != length or not body or zlib.crc32(body) != crc:
                return
            offset += _RECORD.size + length
            yield body[:1], body[1:], offset


def read_spool(path: Path) -> SpoolContents:
    """Parses a spool file; a damaged tail is dropped (``truncated``)."""
    records: list[tuple[bytes, bytes]] = []
    end = len(MAGIC)
    for kind, payload, offset in read_records(path):
        records.append((kind, payload))
        end = offset
    if not records or records[0][0] != HEADER:
        raise ValueError(f"{path} has no header record")
    header = json.loads(records[0][1])
    return SpoolContents(
        experiment=header["experiment"],
        run=header["run"],
        params=header.get("params"),
        records=records[1:],
        truncated=end != path.stat().st_size,
        client_id=header.get("client_id"),
        resume=bool(header.get("resume", True)),
    )


def send_record(store: RemoteStore, run_id: int, kind: bytes, payload: bytes) -> bool:
    """Sends one spooled record to the run; True for a batch the server had
    already stored (a duplicate)."""
    if kind == BATCH:
        request = pb.WriteBatchRequest.FromString(payload)
        request.run_id = run_id
        return store.write_batch_pb(request).duplicate
    if kind == GRAPH:
        store.set_graph(run_id, graph_from_pb(pb.Graph.FromString(payload)))
    elif kind == FINISH:
        finish = json.loads(payload)
        store.finish_run(run_id, finish["status"], finish["wall_time"])
    return False


@dataclass(frozen=True)
class SyncResult:
    path: Path
    run_id: int
    batches: int
    duplicates: int
    truncated: bool


def send_spool(path: Path, store: RemoteStore, wall_time: float) -> SyncResult:
    """Sends a spool file's records in order (the run started, or resumed,
    from the file's header) and removes the file once all are acknowledged.
    Raises the domain error of a failure (the file then stays)."""
    contents = read_spool(path)
    started = store.start_run(
        contents.experiment,
        contents.run,
        contents.params,
        wall_time,
        resume=contents.resume,
        client_id=contents.client_id,
    )
    run_id = started.run.id
    batches = duplicates = 0
    for kind, payload in contents.records:
        duplicates += send_record(store, run_id, kind, payload)
        batches += kind == BATCH
    path.unlink()
    return SyncResult(path, run_id, batches, duplicates, contents.truncated)


def spool_files(target: Path) -> Iterator[Path]:
    """The spool files at ``target``: the file itself, or those in the folder."""
    if target.is_dir():
        yield from sorted(target.glob(f"*{SUFFIX}"))
    elif target.exists():
        yield target


def sync(
    target: str | Path | None = None,
    *,
    server: str | None = None,
    token: str | None = None,
    tls_root_cert: str | None = None,
) -> list[SyncResult]:
    """Sends the spool files at ``target`` (a file or a folder; default the
    spool folder) to the server, each removed once it is stored. A file that
    fails stays where it is; the error is raised after the others were tried."""
    from trainboard.transport import resolve_server, resolve_tls_root_cert, resolve_token

    folder = Path(target) if target is not None else default_spool_dir()
    store = RemoteStore(
        resolve_server(server),
        token=resolve_token(token),
        tls_root_cert=resolve_tls_root_cert(tls_root_cert),
    )
    results: list[SyncResult] = []
    failure: Exception | None = None
    try:
        for path in spool_files(folder):
            try:
                results.append(send_spool(path, store, time.time()))
            except Exception as exc:  # try the other files, then report
                failure = failure or exc
    finally:
        store.close()
    if failure is not None:
        raise failure
    return results
