"""Bounds on reads and writes, against a real server: duplicate ids, answers sized
before they are built (pages or RESOURCE_EXHAUSTED), memory given back after large
reads, tags per batch and per run, ListTags pages, work abandoned after the
client's deadline, and params that JSON cannot hold."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

import trainboard
from trainboard import errors, validation
from trainboard.histogram import summarize
from trainboard.transport import RemoteStore
from trainboard.types import HistogramRecord, ScalarColumns, WriteBatch
from trainboard.v1 import trainboard_pb2 as pb
from trainboard.v1 import trainboard_pb2_grpc as pb_grpc

pytest.importorskip("trainboard_server")

from trainboard_server import servicer
from trainboard_server.server import ServerHandle, make_server
from trainboard_server.sql_store import SqlStore

sys.path.insert(0, str(Path(__file__).parent))
from server_process import ServerProcess


class Server:
    """An in-process server over a SQLite file, with raw stubs and a RemoteStore."""

    def __init__(self, tmp_path: Path, **kwargs: Any) -> None:
        self.store = SqlStore.from_url(f"sqlite:///{tmp_path / 'bounds.db'}")
        self.handle: ServerHandle = make_server(self.store, host="127.0.0.1", port=0, **kwargs)
        self.handle.start()
        self.channel = grpc.insecure_channel(self.handle.address)
        self.write = pb_grpc.WriteServiceStub(self.channel)
        self.read = pb_grpc.ReadServiceStub(self.channel)
        self.remote = RemoteStore(self.handle.address, timeout=60)

    def run(self, name: str = "r") -> int:
        started = self.write.StartRun(pb.StartRunRequest(experiment="e", run=name, wall_time=1.0))
        return int(started.run.id)

    def close(self) -> None:
        self.remote.close()
        self.channel.close()
        self.handle.stop(grace=None)
        self.store.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path)
    yield s
    s.close()


def columns(tag: str, n: int, start: int = 0) -> ScalarColumns:
    steps = np.arange(start, start + n, dtype=np.int64)
    return ScalarColumns(tag, steps, np.full(n, 1.0), steps.astype(np.float64))


def fails(call: Callable[[], object], code: grpc.StatusCode, *words: str) -> str:
    with pytest.raises(grpc.RpcError) as info:
        call()
    error: Any = info.value
    assert error.code() == code, error.details()
    for word in words:
        assert word in error.details()
    return str(error.details())


# ---------------------------------------------------------------- duplicate ids


def test_repeated_run_ids_and_tags_in_a_read_are_read_once(server: Server) -> None:
    run_id = server.run()
    other = server.run("other")
    summary = summarize(np.linspace(0.0, 1.0, 100))
    server.remote.write_batch(
        WriteBatch(
            "c",
            1,
            run_id,
            (columns("a", 10), columns("b", 10)),
            (HistogramRecord("h", 0, 1.0, summary), HistogramRecord("g", 0, 1.0, summary)),
        )
    )
    server.remote.write_batch(WriteBatch("c", 2, other, (columns("a", 5),), ()))
    answer = server.read.ReadScalars(
        pb.ReadScalarsRequest(run_ids=[run_id] * 40 + [other, run_id], tags=["b", "a", "b", "a"])
    )
    keys = [(s.run_id, s.columns.tag, len(s.columns.values) // 8) for s in answer.series]
    assert keys == [(run_id, "b", 10), (run_id, "a", 10), (other, "a", 5)]
    histograms = server.read.ReadHistograms(
        pb.ReadHistogramsRequest(run_ids=[run_id] * 40, tags=["h", "g", "h"])
    )
    assert [(s.run_id, s.columns.tag) for s in histograms.series] == [(run_id, "h"), (run_id, "g")]
    # Repeats do not count against the series limit either.
    many = server.read.ReadScalars(pb.ReadScalarsRequest(run_ids=[run_id] * 200_000, tags=["a"]))
    assert len(many.series) == 1


# ---------------------------------------------------------------- answers sized first


@pytest.fixture
def small_budget(tmp_path: Path) -> Iterator[Server]:
    """A server whose answers hold at most 1,000 points."""
    s = Server(tmp_path, page_points=1000)
    yield s
    s.close()


def test_a_full_resolution_read_over_the_point_budget_comes_in_pages(
    small_budget: Server,
) -> None:
    server = small_budget
    run_id = server.run()
    server.remote.write_batch(
        WriteBatch("c", 1, run_id, tuple(columns(tag, 800) for tag in "abc"), ())
    )
    answer = server.read.ReadScalars(pb.ReadScalarsRequest(run_ids=[run_id], tags=list("abc")))
    points = [len(s.columns.values) // 8 for s in answer.series]
    assert points == [800, 200, 0]  # 1,000 in all; the rest is continued
    assert [s.next_step if s.HasField("next_step") else None for s in answer.series] == [
        None,
        200,
        0,
    ]
    # The SDK follows the pages: every series whole.
    reader = trainboard.Reader(server.handle.address)
    whole = reader.scalars_many([run_id], list("abc"))
    assert [(s.tag, len(s), s.total, s.next_step) for s in whole] == [
        (tag, 800, 800, None) for tag in "abc"
    ]
    np.testing.assert_array_equal(whole[2].values, np.arange(800.0))
    reader.close()


def test_a_downsampled_read_over_the_budget_is_refused_early_and_the_sdk_splits_it(
    small_budget: Server,
) -> None:
    server = small_budget
    run_id = server.run()
    server.remote.write_batch(
        WriteBatch(
            "c", 1, run_id, (*(columns(tag, 800) for tag in "abc"), columns("big", 3000)), ()
        )
    )
    # Three series downsampled to 500 points need 1,500: more than an answer holds.
    fails(
        lambda: server.read.ReadScalars(
            pb.ReadScalarsRequest(run_ids=[run_id], tags=list("abc"), max_points=500)
        ),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "1,000 points (points per read)",
    )
    # The SDK asks for fewer series at a time and gets them all.
    found = list(
        server.remote.read_scalars(run_ids=[run_id], tags=list("abc"), max_points=500).values()
    )
    assert [(s.tag, s.total, s.next_step) for s in found] == [(tag, 800, None) for tag in "abc"]
    assert all(0 < len(s) <= 500 for s in found)
    # A series holding no more than max_points points wants them all: it may come in
    # pages, which the SDK joins (a downsampled read never returns a page).
    found = list(
        server.remote.read_scalars(run_ids=[run_id], tags=list("abc"), max_points=5000).values()
    )
    assert [(s.tag, len(s), s.total, s.next_step) for s in found] == [
        (tag, 800, 800, None) for tag in "abc"
    ]
    # One series downsampled to more than an answer holds cannot be split: refused,
    # naming the limit.
    with pytest.raises(errors.ResourceExhausted, match="points per read"):
        trainboard.Reader(server.handle.address).scalars(run_id, "big", max_points=2000)


def test_a_histogram_read_over_its_byte_budget_is_refused_early_and_the_sdk_splits_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(servicer, "MAX_READ_HISTOGRAM_BYTES", 64 * 1024)
    server = Server(tmp_path)
    try:
        run_id = server.run()
        summary = summarize(np.random.default_rng(0).normal(size=1000))  # about 1.4 KB
        records = tuple(
            HistogramRecord(tag, step, 1.0, summary) for tag in "abc" for step in range(30)
        )
        server.remote.write_batch(WriteBatch("c", 1, run_id, (), records))
        request = pb.ReadHistogramsRequest(run_ids=[run_id], tags=list("abc"))
        fails(
            lambda: server.read.ReadHistograms(request),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "histogram bytes per read",
        )
        found = list(server.remote.read_histograms(run_ids=[run_id], tags=list("abc")).values())
        assert [(s.tag, len(s)) for s in found] == [(tag, 30) for tag in "abc"]
        request.max_steps = 10  # 3 x 10 summaries fit
        assert [len(s.columns.points) for s in server.read.ReadHistograms(request).series] == [
            10,
            10,
            10,
        ]
    finally:
        server.close()


# ---------------------------------------------------------------- server memory


def memory(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak) and RssAnon of a process, in MiB. RssAnon leaves out the
    database file SQLite maps (page cache, once per pooled connection)."""
    found: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon"):
                found[key] = int(value.split()[0]) // 1024
    return found


POINTS = 1_500_000


@pytest.fixture(scope="module")
def big_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, int]]:
    """A server subprocess holding one series of 1.5 M points (written as three
    columnar batches, about a second)."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc to measure a process's memory")
    if not servicer.TRIMMER.available:
        pytest.skip("the C library is not glibc: no malloc_trim")
    tmp = tmp_path_factory.mktemp("memory")
    process = ServerProcess(f"sqlite:///{tmp / 'big.db'}", tmp)
    process.start()
    store = RemoteStore(process.address, timeout=120)
    try:
        run_id = store.start_run("e", "big", None, 1.0).run.id
        for sequence, start in enumerate(range(0, POINTS, 500_000), start=1):
            batch = WriteBatch("c", sequence, run_id, (columns("loss", 500_000, start),), ())
            store.write_batch(batch)
        yield process, run_id
    finally:
        store.close()
        process.stop()


def pid_of(process: ServerProcess) -> int:
    assert process._process is not None
    return int(process._process.pid)


def steady(pid: int) -> dict[str, int]:
    """The process's memory once two looks half a second apart agree."""
    last = memory(pid)
    for _ in range(20):
        time.sleep(0.5)
        now = memory(pid)
        if abs(now["RssAnon"] - last["RssAnon"]) <= 2:
            return now
        last = now
    return last


def test_a_read_naming_one_series_forty_times_is_answered_with_one_bounded_page(
    big_server: tuple[ServerProcess, int],
) -> None:
    process, run_id = big_server
    pid = pid_of(process)
    before = steady(pid)
    with grpc.insecure_channel(
        process.address, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    ) as channel:
        read = pb_grpc.ReadServiceStub(channel)
        answer = read.ReadScalars(
            pb.ReadScalarsRequest(run_ids=[run_id] * 40, tags=["loss"]), timeout=120
        )
    assert len(answer.series) == 1
    page = answer.series[0]
    assert len(page.columns.values) // 8 == validation.MAX_READ_POINTS
    assert page.next_step == validation.MAX_READ_POINTS
    assert answer.ByteSize() < 64 * 1024 * 1024
    # One page of 1 M points is 24 MB on the wire; the server's peak grew by a few
    # times that at most, not by 40 series' worth (which was gigabytes).
    peak = memory(pid)["VmHWM"]
    assert peak <= max(before["VmHWM"], before["VmRSS"] + 300), (before, peak)


def test_the_server_gives_memory_back_after_large_reads(
    big_server: tuple[ServerProcess, int],
) -> None:
    process, run_id = big_server
    pid = pid_of(process)
    reader = trainboard.Reader(process.address, timeout=120)
    try:
        reader.scalars(run_id, "loss")  # warm: the first read also loads code and caches
        idle = steady(pid)
        with ThreadPoolExecutor(6) as pool:
            sizes = list(pool.map(lambda _: len(reader.scalars(run_id, "loss")), range(12)))
        assert sizes == [POINTS] * 12
        busy = memory(pid)
        deadline = time.monotonic() + 15
        after = memory(pid)
        while after["RssAnon"] - idle["RssAnon"] >= 100 and time.monotonic() < deadline:
            time.sleep(0.25)
            after = memory(pid)
    finally:
        reader.close()
    # Six 1.5 M-point reads at a time took hundreds of MiB; within seconds of going
    # idle, the server's own (anonymous) memory is back near where it was.
    assert busy["VmHWM"] - idle["RssAnon"] > 100, (idle, busy)  # the reads did take memory
    assert after["RssAnon"] - idle["RssAnon"] < 100, (idle, busy, after)


# ---------------------------------------------------------------- tags per batch and run


def test_a_batch_over_the_tags_per_batch_limit_is_refused_naming_it(server: Server) -> None:
    run_id = server.run()
    tags = [f"t{i}" for i in range(validation.MAX_TAGS_PER_BATCH + 1)]
    rows = pb.ScalarRows(
        tags=tags,
        steps=np.zeros(1, dtype="<i8").tobytes(),
        wall_times=np.ones(1, dtype="<f8").tobytes(),
        values=np.zeros(len(tags), dtype="<f8").tobytes(),
    )
    request = pb.WriteBatchRequest(client_id="c", sequence=1, run_id=run_id, rows=[rows])
    fails(
        lambda: server.write.WriteBatch(request),
        grpc.StatusCode.INVALID_ARGUMENT,
        "10,001 tags",
        "10,000 (tags per write batch)",
    )
    assert list(server.read.ListTags(pb.ListTagsRequest(run_id=run_id)).tags) == []
    # The same check at the SDK's call sites and in the store.
    with pytest.raises(ValueError, match="tags per write batch"):
        validation.check_tags_per_batch(validation.MAX_TAGS_PER_BATCH + 1)
    many = tuple(columns(tag, 1) for tag in tags)
    with pytest.raises(errors.InvalidArgument, match="tags per write batch"):
        server.store.write_batch(WriteBatch("c", 1, run_id, many, ()))


def test_a_run_over_the_tags_per_run_limit_refuses_new_tags_naming_it(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validation, "MAX_TAGS_PER_RUN", 50)
    run_id = server.run()
    first = tuple(columns(f"a{i}", 3) for i in range(40))
    server.remote.write_batch(WriteBatch("c", 1, run_id, first, ()))
    more = tuple(columns(f"b{i}", 3) for i in range(11))
    with pytest.raises(
        errors.ResourceExhausted, match=r"would hold 51 tags; at most 50 \(tags per run\)"
    ):
        server.remote.write_batch(WriteBatch("c", 2, run_id, more, ()))
    # Nothing of the refused batch was stored; tags the run has still take points,
    # and new ones up to the limit are taken.
    assert len(server.remote.list_tags(run_id)) == 40
    result = server.remote.write_batch(WriteBatch("c", 3, run_id, (*first, *more[:10]), ()))
    assert not result.duplicate
    assert len(server.remote.list_tags(run_id)) == 50
    with pytest.raises(errors.ResourceExhausted, match="tags per run"):
        server.remote.write_batch(WriteBatch("c", 4, run_id, more[10:], ()))
    with pytest.raises(ValueError, match="tags per run"):
        validation.check_tags_per_run(51)


# ---------------------------------------------------------------- ListTags pages


def test_list_tags_comes_in_pages_that_the_sdk_joins(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = server.run()
    names = [f"tag/{i:03d}" for i in range(250)]
    server.remote.write_batch(WriteBatch("c", 1, run_id, tuple(columns(n, 2) for n in names), ()))
    summary = summarize(np.arange(10.0))
    records = tuple(HistogramRecord(n, 0, 1.0, summary) for n in names[:30])
    server.remote.write_batch(WriteBatch("c", 2, run_id, (), records))
    expected = sorted([("histogram", n) for n in names[:30]] + [("scalar", n) for n in names])

    seen: list[tuple[str, str]] = []
    request = pb.ListTagsRequest(run_id=run_id, page_size=100)
    pages = 0
    while True:
        answer = server.read.ListTags(request)
        page = [(t.kind, t.name) for t in answer.tags]
        assert len(page) <= 100
        assert page == sorted(page)
        seen += page
        pages += 1
        if not answer.next_page_token:
            break
        request.page_token = answer.next_page_token
    assert pages == 3
    assert sorted(seen) == expected
    assert len(seen) == len(set(seen))

    # A request without a page size (as older clients send) gets the server's page,
    # which holds every tag of this run.
    whole = server.read.ListTags(pb.ListTagsRequest(run_id=run_id))
    assert len(whole.tags) == 280
    assert whole.next_page_token == ""

    # With pages smaller than the run, Reader.tags() still returns every tag, sorted.
    monkeypatch.setattr(servicer, "MAX_TAGS_PAGE", 64)
    reader = trainboard.Reader(server.handle.address)
    assert [(t.kind, t.name) for t in reader.tags(run_id)] == expected
    assert len(reader.tags(run_id, "histogram")) == 30
    reader.close()

    fails(
        lambda: server.read.ListTags(pb.ListTagsRequest(run_id=run_id, page_token="bogus")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "page_token",
    )


# ---------------------------------------------------------------- deadlines


def test_a_batch_whose_deadline_passed_is_rolled_back_and_its_retry_stored_once(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainboard_server.storage import batches
    from trainboard_server.storage.scalars import write_scalars as original

    run_id = server.run()
    finished = threading.Event()

    def slow(*args: Any, **kwargs: Any) -> None:
        time.sleep(1.0)  # the client gives up after 0.3 s
        original(*args, **kwargs)
        finished.set()

    monkeypatch.setattr(batches, "write_scalars", slow)
    impatient = RemoteStore(server.handle.address, timeout=0.3)
    batch = WriteBatch("client-1", 1, run_id, (columns("loss", 100),), ())
    with pytest.raises(errors.Unavailable, match="DEADLINE_EXCEEDED"):
        impatient.write_batch(batch)  # the SDK retries an Unavailable batch
    impatient.close()
    assert finished.wait(10)
    time.sleep(0.3)  # the server's check runs right after the work, then it rolls back
    assert server.remote.list_tags(run_id) == []
    assert server.remote.read_scalars(run_ids=[run_id], tags=["loss"]) == {}

    monkeypatch.setattr(batches, "write_scalars", original)
    retried = server.remote.write_batch(batch)  # same client id and sequence
    assert (retried.scalar_points, retried.duplicate) == (100, False)
    again = server.remote.write_batch(batch)
    assert (again.scalar_points, again.duplicate) == (0, True)
    stored = server.remote.read_scalars(run_ids=[run_id], tags=["loss"]).get((run_id, "loss"))
    assert stored is not None
    assert stored.total == 100


def test_a_start_run_whose_deadline_passed_is_rolled_back(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainboard_server.storage import runs

    original = runs.start_run
    finished = threading.Event()

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(1.0)
        try:
            return original(*args, **kwargs)
        finally:
            finished.set()

    monkeypatch.setattr(runs, "start_run", slow)
    impatient = RemoteStore(server.handle.address, timeout=0.3)
    with pytest.raises(errors.Unavailable, match="DEADLINE_EXCEEDED"):
        impatient.start_run("late", "r", {"lr": 0.1}, 1.0)
    impatient.close()
    assert finished.wait(10)
    time.sleep(0.3)
    assert server.remote.list_runs("late") == []


# ---------------------------------------------------------------- params


DEEP_JSON = '{"a":' * 20_000 + "1" + "}" * 20_000


@pytest.mark.parametrize(
    ("params_json", "words"),
    [
        (DEEP_JSON[:60_000], "depth limit"),  # deep and cut off: the depth is found first
        ('{"a":' * 10_000 + "1" + "}" * 10_000, "depth limit"),
        ("[" * 30_000 + "]" * 30_000, "depth limit"),
        ('{"lr": NaN}', "NaN"),
        ('{"lr": Infinity}', "Infinity"),
        ('{"lr": -Infinity}', "Infinity"),
        ('{"lr": 1e400}', "1e400"),
        ('{"x": "' + "y" * 70_000 + '"}', "size limit"),
    ],
)
def test_params_json_the_server_cannot_store_faithfully_is_invalid_argument(
    server: Server, params_json: str, words: str
) -> None:
    request = pb.StartRunRequest(experiment="e", run="p", wall_time=1.0, params_json=params_json)
    fails(
        lambda: server.write.StartRun(request),
        grpc.StatusCode.INVALID_ARGUMENT,
        "params_json",
        words,
    )
    assert server.remote.list_runs("e") == []


def nested(depth: int) -> dict[str, Any]:
    top: dict[str, Any] = {}
    inner = top
    for _ in range(depth - 1):
        inner["a"] = {}
        inner = inner["a"]
    return top


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"lr": float("nan")}, "finite"),
        ({"lr": [1.0, float("inf")]}, "finite"),
        ({"lr": np.float32("-inf")}, "finite"),
        ({"lr": float("1e400")}, "finite"),
        (nested(20_000), "depth limit"),
        (nested(validation.MAX_PARAMS_DEPTH + 1), "depth limit"),
        ({"notes": "x" * (validation.MAX_PARAMS_JSON + 1)}, "size limit"),
    ],
)
def test_params_the_sdk_cannot_send_raise_value_error_at_the_call_site(
    server: Server, params: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        trainboard.Client("e", "p", server=server.handle.address, params=params)
    with pytest.raises(ValueError, match=words):
        validation.params_to_json(params)


def test_params_at_the_limits_are_stored(server: Server) -> None:
    params = {"deep": nested(validation.MAX_PARAMS_DEPTH - 1), "lr": 1e308, "n": 10**30}
    with trainboard.Client("e", "ok", server=server.handle.address, params=params) as client:
        run_id = client.run_id
    (run,) = [r for r in server.remote.list_runs("e") if r.id == run_id]
    assert run.params == params
    request = pb.StartRunRequest(
        experiment="e", run="ok2", wall_time=1.0, params_json=json.dumps(params)
    )
    assert server.write.StartRun(request).run.id > 0


# ---------------------------------------------------------------- the store, on both databases


def test_the_store_pages_tags_sizes_reads_and_abandons_unwanted_writes(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainboard_server.storage.batches import DeadlineExceeded

    store = SqlStore.from_url(db_url)
    try:
        run_id = store.start_run("e", "r", None, 1.0).run.id
        names = [f"Tag_{i}" for i in range(60)] + ["a b", "a-b", "ab", "Ä", "z", "_x", "B"]
        batch = WriteBatch("c", 1, run_id, tuple(columns(n, 50) for n in names), ())
        # A writer that stopped waiting: rolled back, the sequence left unclaimed.
        with pytest.raises(DeadlineExceeded):
            store.write_batch(batch, still_wanted=lambda: False)
        assert store.list_tags(run_id) == []
        assert not store.write_batch(batch, still_wanted=lambda: True).duplicate
        assert store.write_batch(batch).duplicate
        with pytest.raises(DeadlineExceeded):
            store.start_run("e", "gone", None, 1.0, still_wanted=lambda: False)
        assert [r.name for r in store.list_runs("e")] == ["r"]

        seen: list[tuple[str, str]] = []
        token = ""
        while True:
            page, token = store.list_tags_page(run_id, token, 7, 1 << 20)
            seen += [(t.kind, t.name) for t in page]
            if not token:
                break
        assert sorted(seen) == sorted(("scalar", n) for n in names)
        assert len(seen) == len(names)

        sizes = store.scalar_sizes([run_id], ["ab", "nope", "Ä"], 10, 20)
        assert sizes == {(run_id, "ab"): 50, (run_id, "Ä"): 50}  # whole chunks: an upper bound
        with pytest.raises(errors.NotFound):
            store.scalar_sizes([run_id, run_id + 1000], ["ab"])

        monkeypatch.setattr(validation, "MAX_TAGS_PER_RUN", len(names))
        with pytest.raises(errors.ResourceExhausted, match="tags per run"):
            store.write_batch(WriteBatch("c", 2, run_id, (columns("one more", 1),), ()))
    finally:
        store.close()
