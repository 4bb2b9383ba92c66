"""Trainboard side by side with the trackers people use today: tensorboardX/TensorBoard
and MLflow, on identical work, in the same run, interleaved.

Sections (``--only NAME`` runs one; each is skipped, SKIP and the reason, when its
peer is not importable):

* ``write``: the trainer's thread's cost of one scalar: Trainboard ``log_scalar`` vs
  tensorboardX ``SummaryWriter.add_scalar`` vs MLflow ``log_metric`` (synchronous, and
  ``synchronous=False``) into a local MLflow tracking server on SQLite (``mlflow server
  --backend-store-uri sqlite:///...`` as a subprocess). Target: log_scalar at least
  200x cheaper than add_scalar. For scale, a *floor* is timed beside them: a Python
  method that only reads the wall clock and appends a tuple to a deque, the least any
  non-blocking Python ``log_scalar`` does.
* ``ingest``: sustained writes, points/s until committed: Trainboard on SQLite and
  PostgreSQL (``bench.ingest``'s workload: ten tags a step, ``flush()`` at the end) vs
  MLflow ``MlflowClient.log_batch`` of 1,000 metrics a batch into that MLflow server
  (fewer points a round than Trainboard's: a rate is compared). Target: at least 500x.
* ``histogram``: caller's cost of logging a 1M-element float32 tensor: Trainboard
  ``log_histogram`` vs tensorboardX ``add_histogram``. Target: at least 20x.
* ``read``: time until the data for the first chart is available, 10 runs x 5 tags x
  10,000 steps plus 2 histogram tags a run: Trainboard (server restarted before each
  read; a new Reader lists the runs and their tags and reads the first tag of every run
  with ``scalars_many(..., max_points=800)`` as the dashboard does) vs TensorBoard
  (``EventMultiplexer.AddRunsFromDirectory`` + ``Reload`` over event files written with
  tensorboardX, then the first tag's scalars). Target: at least 50x sooner. Also, for
  information, 100 runs on Trainboard alone, and listing the 12,345 tags of one run
  (first call after a restart; target < 0.5 s).
* ``memory``: peak RSS of the server process while it ingests 10M points (1M with
  ``--quick``), and of a client process logging points while its server is down
  (target: its RSS grows by less than 150 MiB between a tenth of the points and all).

Run from the repository root (``make bench`` builds ``.venv-bench`` with the peers)::

    python -m bench.compare              # full sizes, a few minutes
    python -m bench.compare --quick      # a smoke test
    python -m bench.compare --only read
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import (
    REPO_ROOT,
    ServerProcess,
    StolenTime,
    Verdicts,
    fmt_rate,
    fmt_ratio,
    fmt_seconds,
    free_port,
    interleave,
    make_parser,
    median,
    paired_ratio,
    print_header,
    print_rounds,
    print_table,
    process_peak_rss_mib,
    rounds_for,
    timing_rows,
)
from bench.histogram import _calls_timer as histogram_timer
from bench.ingest import (
    DEFAULT_POSTGRES,
    TAGS,
    TrainboardCase,
    Workload,
    postgres_problem,
    scratch_database,
)
from bench.log_scalar import _calls_timer as scalar_timer

SECTIONS = ("write", "ingest", "histogram", "read", "memory")
TARGET_WRITE = 200.0
TARGET_INGEST = 500.0
TARGET_HISTOGRAM = 20.0
TARGET_READ = 50.0
TARGET_LIST_TAGS = 0.5
CLIENT_GROWTH_MIB = 150.0
DASHBOARD_MAX_POINTS = 800  # ui/trainboard_ui/views/scalars.py MAX_POINTS
MLFLOW_BATCH = 1_000


class Summary:
    """The one table printed at the end: a row per comparison."""

    def __init__(self) -> None:
        self.rows: list[list[str]] = []

    def add(self, what: str, peer: str, ours: str, ratio: str, target: str, verdict: str) -> None:
        self.rows.append([what, peer, ours, ratio, target, verdict])

    def print(self) -> None:
        print("== summary")
        print_table(
            ["what", "peer, median", "trainboard, median", "ratio", "target", ""], self.rows
        )


def importable(*modules: str) -> str | None:
    """Why one of ``modules`` cannot be imported (None when all can)."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (make bench installs it into .venv-bench)"
    return None


def ratio_verdict(
    verdicts: Verdicts,
    summary: Summary,
    what: str,
    peer: tuple[str, Sequence[float]],
    ours: tuple[str, Sequence[float]],
    fmt: Callable[[float], str],
    target: float | None,
    *,
    higher_is_better: bool = False,
) -> None:
    """A ratio line (peer/ours for durations, ours/peer for rates) and a summary row."""
    (peer_name, peer_values), (our_name, our_values) = peer, ours
    if higher_is_better:
        by_round = paired_ratio(our_values, peer_values)
        of_medians = median(our_values) / median(peer_values)
        label = f"{our_name} / {peer_name}"
    else:
        by_round = paired_ratio(peer_values, our_values)
        of_medians = median(peer_values) / median(our_values)
        label = f"{peer_name} / {our_name}"
    if target is None:
        verdicts.info_ratio(label, by_round, of_medians=of_medians)
        verdict, target_text = "", "(info)"
    else:
        ok = verdicts.ratio(label, by_round, target, of_medians=of_medians)
        verdict, target_text = ("PASS" if ok else "FAIL"), f">= {fmt_ratio(target)}"
    summary.add(
        what,
        f"{peer_name} {fmt(median(peer_values))}",
        f"{our_name} {fmt(median(our_values))}",
        fmt_ratio(by_round),
        target_text,
        verdict,
    )


# ---------------------------------------------------------------------- MLflow


class MlflowServer:
    """``mlflow server --backend-store-uri sqlite:///...`` on a free loopback port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = root / "mlflow-server.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MlflowServer:
        mlflow_cli = Path(sys.executable).with_name("mlflow")
        command = [str(mlflow_cli)] if mlflow_cli.exists() else [sys.executable, "-m", "mlflow"]
        command += [
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.root / 'mlflow.db'}",
            "--default-artifact-root",
            str(self.root / "mlartifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        with open(self.log_path, "ab") as log:
            # A session of its own: the server's workers (uvicorn, job consumers) are
            # stopped with it, as one process group.
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                env=_quiet_env(),
                start_new_session=True,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"mlflow server exited; log:\n{self._log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"mlflow server did not answer in 120 s; log:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-20:])

    @property
    def peak_rss_mib(self) -> float | None:
        return None if self._process is None else process_peak_rss_mib(self._process.pid)

    def __exit__(self, *_: object) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass


def _quiet_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    return env


@contextmanager
def mlflow_run(url: str, name: str) -> Iterator[Any]:
    """The mlflow module, pointed at ``url``, with an active run named ``name``."""
    os.environ.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    mlflow: Any = importlib.import_module("mlflow")
    mlflow.set_tracking_uri(url)
    mlflow.set_experiment("bench-compare")
    with mlflow.start_run(run_name=name):
        yield mlflow


class MlflowWorker:
    """A ``python -m bench.compare --mlflow-worker URL`` process that times rounds of
    ``mlflow.log_metric`` calls on request (``sync N`` or ``async N``, one a line) and
    answers each with the seconds per call."""

    def __init__(self, url: str) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.compare", "--mlflow-worker", url],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=_quiet_env(),
        )

    def timer(self, mode: str, calls: int) -> Callable[[], float]:
        def measure() -> float:
            stdin, stdout = self._process.stdin, self._process.stdout
            if stdin is None or stdout is None:
                raise RuntimeError("the MLflow worker has no pipes")
            stdin.write(f"{mode} {calls}\n")
            stdin.flush()
            answer = stdout.readline()
            if not answer:
                raise RuntimeError("the MLflow worker process exited")
            return float(answer)

        return measure

    def __enter__(self) -> MlflowWorker:
        return self

    def __exit__(self, *_: object) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def mlflow_worker(url: str) -> int:
    """The MLflow worker process's loop (see ``MlflowWorker``)."""
    with mlflow_run(url, "write") as mlflow:

        def sync_metric(tag: str, value: float, step: int) -> None:
            mlflow.log_metric(tag, value, step=step)

        def async_metric(tag: str, value: float, step: int) -> None:
            mlflow.log_metric(tag, value, step=step, synchronous=False)

        timers: dict[tuple[str, int], Callable[[], float]] = {}
        for line in sys.stdin:
            mode, calls = line.split()
            key = (mode, int(calls))
            if key not in timers:
                timers[key] = (
                    scalar_timer(sync_metric, key[1], lambda: None)
                    if mode == "sync"
                    else scalar_timer(async_metric, key[1], mlflow.flush_async_logging)
                )
            print(repr(timers[key]()), flush=True)
    return 0


# ---------------------------------------------------------------------- write


def section_write(
    args: argparse.Namespace, root: Path, mlflow_url: str | None, out: tuple[Verdicts, Summary]
) -> None:
    verdicts, summary = out
    rounds = rounds_for(args, 7)
    calls = 2_000 if args.quick else 20_000
    tbx_calls = 200 if args.quick else 2_000
    sync_calls = 20 if args.quick else 50
    async_calls = 200 if args.quick else 2_000
    print_header(
        "write: caller's cost of one scalar, in the trainer's thread",
        rounds=rounds,
        quick=args.quick,
        sizes=f"calls a round: trainboard {calls:,}, tensorboardX {tbx_calls:,}, "
        f"MLflow synchronous {sync_calls:,}, MLflow synchronous=False {async_calls:,}",
    )
    import trainboard

    problem = importable("tensorboardX")
    with ExitStack() as stack:
        server = stack.enter_context(
            ServerProcess(f"sqlite:///{root / 'write.db'}", root / "write-server.log")
        )
        client = stack.enter_context(trainboard.Client("bench-compare", "write", server.address))
        client.run_id  # noqa: B018 - the run exists before the clock starts
        floor = FloorLogger()
        cases: list[tuple[str, Callable[[], float]]] = [
            ("trainboard log_scalar", scalar_timer(client.log_scalar, calls, client.flush)),
            (FLOOR, scalar_timer(floor.log_scalar, calls, floor.clear)),
        ]
        if problem is None:
            tbx: Any = importlib.import_module("tensorboardX")
            writer = tbx.SummaryWriter(logdir=str(root / "write-tbx"))
            stack.callback(writer.close)
            cases.append(
                (
                    "tensorboardX add_scalar",
                    scalar_timer(writer.add_scalar, tbx_calls, writer.flush),
                )
            )
        if mlflow_url is not None:
            # In a process of its own: MLflow's background threads (async logging) would
            # otherwise take the GIL from the other cases' loops.
            worker = stack.enter_context(MlflowWorker(mlflow_url))
            cases += [
                ("MLflow log_metric", worker.timer("sync", sync_calls)),
                ("MLflow log_metric synchronous=False", worker.timer("async", async_calls)),
            ]
        interleave(1, cases)  # warm-up
        results = interleave(rounds, cases)
    print_table(["case", "median per call", "min", "max"], timing_rows(results, fmt_seconds))
    if args.verbose:
        print_rounds(results, fmt_seconds)
    ours = ("trainboard log_scalar", results["trainboard log_scalar"])
    what = "caller's cost of one scalar"
    if problem is None:
        peer = ("tensorboardX add_scalar", results["tensorboardX add_scalar"])
        ratio_verdict(verdicts, summary, what, peer, ours, fmt_seconds, TARGET_WRITE)
    else:
        verdicts.skip("tensorboardX add_scalar / trainboard log_scalar", problem)
        summary.add(what, "tensorboardX: SKIP", "", "", f">= {TARGET_WRITE:.0f}x", "SKIP")
    if mlflow_url is not None:
        for name in ("MLflow log_metric", "MLflow log_metric synchronous=False"):
            ratio_verdict(verdicts, summary, what, (name, results[name]), ours, fmt_seconds, None)
    if problem is None:
        # What the target asks of Python itself: the peer against a method that does
        # nothing but read the clock and append a tuple.
        peer = ("tensorboardX add_scalar", results["tensorboardX add_scalar"])
        floor_case = (FLOOR, results[FLOOR])
        ratio_verdict(verdicts, summary, what, peer, floor_case, fmt_seconds, None)


FLOOR = "floor: a method that reads the clock and appends"


class FloorLogger:
    """The least a Python ``log_scalar`` can do: a bound method that reads the wall
    clock and appends one tuple to a deque (no checks, no sender)."""

    def __init__(self) -> None:
        self._queue: deque[tuple[Any, ...]] = deque()

    def log_scalar(self, tag: str, value: float, step: int) -> None:
        self._queue.append((0, tag, value, step, time.time()))

    def clear(self) -> None:
        self._queue.clear()


# ---------------------------------------------------------------------- ingest


def mlflow_batch_case(mlflow_url: str, points: int) -> Callable[[], float]:
    """A round: ``points`` metrics (ten tags a step) into a new MLflow run with
    ``MlflowClient.log_batch``, 1,000 metrics a batch; returns metrics/s."""
    os.environ.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    mlflow: Any = importlib.import_module("mlflow")
    entities: Any = importlib.import_module("mlflow.entities")
    client = mlflow.MlflowClient(tracking_uri=mlflow_url)
    experiment_id = client.create_experiment(f"bench-ingest-{time.time_ns()}")
    workload = Workload(max(1, points // len(TAGS)))
    now = int(time.time() * 1000)
    metrics = [
        entities.Metric(tag, value, now + step, step)
        for step, values in enumerate(workload.matrix.tolist())
        for tag, value in zip(TAGS, values, strict=True)
    ]
    batches = [metrics[i : i + MLFLOW_BATCH] for i in range(0, len(metrics), MLFLOW_BATCH)]

    def measure() -> float:
        run_id = client.create_run(experiment_id).info.run_id  # untimed
        start = time.perf_counter()
        for batch in batches:
            client.log_batch(run_id, metrics=batch)
        return len(metrics) / (time.perf_counter() - start)

    return measure


def section_ingest(
    args: argparse.Namespace, root: Path, mlflow_url: str | None, out: tuple[Verdicts, Summary]
) -> None:
    verdicts, summary = out
    rounds = rounds_for(args, 5)
    steps = 2_000 if args.quick else 100_000
    mlflow_points = 2_000 if args.quick else 20_000
    workload = Workload(steps)
    print_header(
        "ingest: sustained writes, points/s until committed",
        rounds=rounds,
        quick=args.quick,
        sizes=f"trainboard {workload.points:,} points a round ({steps:,} steps x {len(TAGS)} "
        f"tags, flush() at the end); MLflow log_batch {mlflow_points:,} metrics a round, "
        f"{MLFLOW_BATCH:,} a batch",
    )
    pg_problem = "--no-postgres" if args.no_postgres else postgres_problem(args.postgres)
    with ExitStack() as stack:
        sqlite_server = stack.enter_context(
            ServerProcess(f"sqlite:///{root / 'ingest.db'}", root / "ingest-server.log")
        )
        sqlite_case = TrainboardCase(sqlite_server, workload, "compare-sqlite")
        cases: list[tuple[str, Callable[[], float]]] = [
            ("trainboard on SQLite", sqlite_case.measure)
        ]
        if pg_problem is None:
            db = stack.enter_context(scratch_database(args.postgres, "compare"))
            pg_server = stack.enter_context(
                ServerProcess(
                    db.replace("postgresql://", "postgresql+psycopg://", 1),
                    root / "ingest-server-pg.log",
                )
            )
            cases.append(
                (
                    "trainboard on PostgreSQL",
                    TrainboardCase(pg_server, workload, "compare-pg").measure,
                )
            )
        if mlflow_url is not None:
            cases.append(("MLflow log_batch", mlflow_batch_case(mlflow_url, mlflow_points)))
        results = interleave(rounds, cases)

    def rate(value: float) -> str:
        return fmt_rate(value, "points")

    print_table(["case", "median", "min", "max"], timing_rows(results, rate))
    if args.verbose:
        print_rounds(results, rate)
    if sqlite_case.failures:
        verdicts.check("trainboard points stored", False, "; ".join(sqlite_case.failures))
    products = [name for name in results if name.startswith("trainboard")]
    if mlflow_url is None:
        verdicts.skip("trainboard / MLflow log_batch", importable("mlflow") or "no MLflow server")
        summary.add("sustained writes", "MLflow: SKIP", "", "", f">= {TARGET_INGEST:.0f}x", "SKIP")
        for name in products:
            summary.add("sustained writes", "", f"{name} {rate(median(results[name]))}", "", "", "")
    else:
        peer = ("MLflow log_batch", results["MLflow log_batch"])
        for name in products:
            ratio_verdict(
                verdicts,
                summary,
                "sustained writes",
                peer,
                (name, results[name]),
                rate,
                TARGET_INGEST,
                higher_is_better=True,
            )
    if pg_problem is not None:
        verdicts.skip("trainboard on PostgreSQL", pg_problem)


# ---------------------------------------------------------------------- histogram


def section_histogram(args: argparse.Namespace, root: Path, out: tuple[Verdicts, Summary]) -> None:
    verdicts, summary = out
    what = "caller's cost of a 1M-element histogram"
    problem = importable("tensorboardX")
    if problem is not None:
        verdicts.skip("tensorboardX add_histogram / trainboard log_histogram", problem)
        summary.add(what, "tensorboardX: SKIP", "", "", f">= {TARGET_HISTOGRAM:.0f}x", "SKIP")
        return
    rounds = rounds_for(args, 7)
    size = 1_000_000
    calls = 3 if args.quick else 10
    print_header(
        "histogram: caller's cost of logging a float32 tensor",
        rounds=rounds,
        quick=args.quick,
        sizes=f"{size:,} elements; {calls} calls per case a round, each timed alone",
    )
    import trainboard

    tbx: Any = importlib.import_module("tensorboardX")
    values = np.random.default_rng(7).standard_normal(size, dtype=np.float32)
    with ExitStack() as stack:
        server = stack.enter_context(
            ServerProcess(f"sqlite:///{root / 'histogram.db'}", root / "histogram-server.log")
        )
        client = stack.enter_context(
            trainboard.Client("bench-compare", "histogram", server.address)
        )
        client.run_id  # noqa: B018
        writer = tbx.SummaryWriter(logdir=str(root / "histogram-tbx"))
        stack.callback(writer.close)
        cases = [
            (
                "tensorboardX add_histogram",
                histogram_timer(writer.add_histogram, values, calls, writer.flush),
            ),
            (
                "trainboard log_histogram",
                histogram_timer(client.log_histogram, values, calls, client.flush),
            ),
        ]
        interleave(1, cases)
        results = interleave(rounds, cases)
    print_table(["case", "median per call", "min", "max"], timing_rows(results, fmt_seconds))
    if args.verbose:
        print_rounds(results, fmt_seconds)
    peer = ("tensorboardX add_histogram", results["tensorboardX add_histogram"])
    ours = ("trainboard log_histogram", results["trainboard log_histogram"])
    ratio_verdict(verdicts, summary, what, peer, ours, fmt_seconds, TARGET_HISTOGRAM)


# ---------------------------------------------------------------------- read


def load_runs(
    address: str, experiment: str, runs: int, steps: int, *, histograms: bool
) -> list[np.ndarray]:
    """Logs ``runs`` runs of five tags x ``steps`` steps (and, with ``histograms``, two
    histogram tags every 100 steps) through Clients; returns the histogram arrays."""
    import trainboard

    tags = TAGS[:5]
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(1_000).astype(np.float32) for _ in range(2)]
    curve = np.exp(-np.arange(steps) / max(1, steps / 5))
    for number in range(runs):
        with trainboard.Client(experiment, f"run-{number:03d}", address) as client:
            for step, base in enumerate(curve.tolist()):
                client.log_scalars({tag: base * (k + 1) for k, tag in enumerate(tags)}, step=step)
                if histograms and step % 100 == 0:
                    client.log_histogram("weights/0", arrays[0], step)
                    client.log_histogram("weights/1", arrays[1], step)
            if not client.flush(timeout=600):
                raise RuntimeError("the server did not store the runs")
    return arrays


def write_event_files(logdir: Path, runs: int, steps: int, arrays: list[np.ndarray]) -> None:
    """The same data as ``load_runs`` as tensorboardX event files, a directory a run."""
    tbx: Any = importlib.import_module("tensorboardX")
    tags = TAGS[:5]
    curve = np.exp(-np.arange(steps) / max(1, steps / 5))
    for number in range(runs):
        writer = tbx.SummaryWriter(logdir=str(logdir / f"run-{number:03d}"))
        for step, base in enumerate(curve.tolist()):
            for k, tag in enumerate(tags):
                writer.add_scalar(tag, base * (k + 1), step)
            if step % 100 == 0:
                writer.add_histogram("weights/0", arrays[0], step)
                writer.add_histogram("weights/1", arrays[1], step)
        writer.close()


def first_chart_trainboard(server: ServerProcess, experiment: str) -> Callable[[], float]:
    """A round: restart the server (untimed), then time a new Reader listing the runs and
    their tags and reading the first tag of every run, downsampled as the dashboard does."""
    import trainboard

    def measure() -> float:
        server.restart()
        start = time.perf_counter()
        with trainboard.Reader(server.address) as reader:
            run_ids = [run.id for run in reader.runs(experiment)]
            names = sorted({t.name for r in run_ids for t in reader.tags(r, kind="scalar")})
            series = reader.scalars_many(run_ids, names[:1], DASHBOARD_MAX_POINTS)
            elapsed = time.perf_counter() - start
        if len(series) != len(run_ids) or not all(len(s) for s in series):
            raise RuntimeError("the first chart's series are missing")
        return elapsed

    return measure


def first_chart_tensorboard(logdir: Path, runs: int) -> Callable[[], float]:
    """A round: a new EventMultiplexer loads the event files, then the first tag's
    scalars of every run are read."""
    multiplexer_module: Any = importlib.import_module(
        "tensorboard.backend.event_processing.plugin_event_multiplexer"
    )

    def measure() -> float:
        start = time.perf_counter()
        multiplexer = multiplexer_module.EventMultiplexer()
        multiplexer.AddRunsFromDirectory(str(logdir))
        multiplexer.Reload()
        first = sorted(multiplexer.Runs())
        tag = sorted(multiplexer.Runs()[first[0]]["tensors"])[0]
        found = [multiplexer.Tensors(run, tag) for run in first]
        elapsed = time.perf_counter() - start
        if len(found) != runs or not all(found):
            raise RuntimeError(f"TensorBoard found {len(found)} runs, not {runs}")
        return elapsed

    return measure


def section_read(args: argparse.Namespace, root: Path, out: tuple[Verdicts, Summary]) -> None:
    verdicts, summary = out
    rounds = rounds_for(args, 3)
    steps = 500 if args.quick else 10_000
    many_steps = 200 if args.quick else 10_000
    tag_count = 12_345
    print_header(
        "read: time until the data for the first chart is available",
        rounds=rounds,
        quick=args.quick,
        sizes=f"10 runs x 5 tags x {steps:,} steps + 2 histogram tags a run (every 100 "
        f"steps); 100 runs x 5 tags x {many_steps:,} steps (trainboard alone); one run with "
        f"{tag_count:,} tags; server restarted before each timed read",
    )
    what = "first chart, 10 runs x 5 tags"
    problem = importable("tensorboardX", "tensorboard")
    with ServerProcess(f"sqlite:///{root / 'read.db'}", root / "read-server.log") as server:
        started = time.perf_counter()
        arrays = load_runs(server.address, "ten-runs", 10, steps, histograms=True)
        print(f"loaded 10 runs into trainboard in {fmt_seconds(time.perf_counter() - started)}")
        cases = [("trainboard Reader, 10 runs", first_chart_trainboard(server, "ten-runs"))]
        if problem is None:
            started = time.perf_counter()
            write_event_files(root / "read-tbx", 10, steps, arrays)
            print(f"wrote 10 runs of event files in {fmt_seconds(time.perf_counter() - started)}")
            cases.append(
                (
                    "TensorBoard EventMultiplexer, 10 runs",
                    first_chart_tensorboard(root / "read-tbx", 10),
                )
            )
        results = interleave(rounds, cases)

        load_runs(server.address, "hundred-runs", 100, many_steps, histograms=False)
        hundred = first_chart_trainboard(server, "hundred-runs")
        results["trainboard Reader, 100 runs"] = [hundred() for _ in range(rounds)]

        import trainboard

        with trainboard.Client("many-tags", "run", server.address) as client:
            client.log_scalars({f"tag/{i:05d}": float(i) for i in range(tag_count)}, step=0)
            if not client.flush(timeout=600):
                raise RuntimeError("the server did not store the tags")
            run_id = client.run_id
        listed: list[float] = []
        counts: set[int] = set()
        for _ in range(rounds):
            server.restart()
            with trainboard.Reader(server.address) as reader:
                reader.healthy(timeout=10.0)  # connects, untimed
                start = time.perf_counter()
                counts.add(len(reader.tags(run_id)))
                listed.append(time.perf_counter() - start)
        results[f"trainboard ListTags, {tag_count:,} tags"] = listed
    print_table(["case", "median", "min", "max"], timing_rows(results, fmt_seconds))
    if args.verbose:
        print_rounds(results, fmt_seconds)
    ours = ("trainboard Reader, 10 runs", results["trainboard Reader, 10 runs"])
    if problem is None:
        peer = ("TensorBoard EventMultiplexer, 10 runs", results[cases[1][0]])
        ratio_verdict(verdicts, summary, what, peer, ours, fmt_seconds, TARGET_READ)
    else:
        verdicts.skip("TensorBoard / trainboard first chart", problem)
        summary.add(
            what, "TensorBoard: SKIP", f"{ours[0]} {fmt_seconds(median(ours[1]))}", "", "", "SKIP"
        )
    hundred_median = median(results["trainboard Reader, 100 runs"])
    summary.add(
        "first chart, 100 runs x 5 tags",
        "",
        f"trainboard {fmt_seconds(hundred_median)}",
        "",
        "(info)",
        "",
    )
    listed_median = median(listed)
    ok = verdicts.check(
        "list 12,345 tags",
        listed_median < TARGET_LIST_TAGS and counts == {tag_count},
        f"median {fmt_seconds(listed_median)}, {sorted(counts)} tags "
        f"(target < {fmt_seconds(TARGET_LIST_TAGS)})",
    )
    summary.add(
        f"list {tag_count:,} tags of a run",
        "",
        f"trainboard {fmt_seconds(listed_median)}",
        "",
        f"< {fmt_seconds(TARGET_LIST_TAGS)}",
        "PASS" if ok else "FAIL",
    )


# ---------------------------------------------------------------------- memory


def client_worker(points: int, spool: str) -> int:
    """Logs ``points`` points (ten tags a step) with the server down; prints the peak RSS
    (MiB) before the Client exists, after a tenth of the points and after all of them."""
    import trainboard

    def peak_rss_mib() -> float:
        # VmHWM, not getrusage: ru_maxrss keeps the parent's peak across fork + exec.
        return process_peak_rss_mib(os.getpid()) or float("nan")

    workload = Workload(1_000)
    marks = [peak_rss_mib()]
    client = trainboard.Client(
        "bench-compare", "offline", f"127.0.0.1:{free_port()}", spool_dir=spool, spill_after=1.0
    )
    steps = points // len(TAGS)
    for step in range(steps):
        client.log_scalars(workload.dicts[step % 1_000], step=step)
        if step + 1 == steps // 10:
            marks.append(peak_rss_mib())
    marks.append(peak_rss_mib())
    print(" ".join(f"{mark:.1f}" for mark in marks), flush=True)
    client.close(timeout=1.0)
    return 0


def section_memory(args: argparse.Namespace, root: Path, out: tuple[Verdicts, Summary]) -> None:
    verdicts, summary = out
    points = 1_000_000 if args.quick else 10_000_000
    client_points = 500_000 if args.quick else 5_000_000
    print_header(
        "memory: peak RSS of the server while ingesting, and of a client while it is down",
        rounds=1,
        quick=args.quick,
        sizes=f"server ingests {points:,} points from one client; a client logs "
        f"{client_points:,} points with the server unreachable",
    )
    import trainboard

    dicts = Workload(1_000).dicts  # reused: the benchmark's own memory stays small
    with ServerProcess(f"sqlite:///{root / 'memory.db'}", root / "memory-server.log") as server:
        start = time.perf_counter()
        with trainboard.Client("bench-compare", "memory", server.address) as client:
            for step in range(points // len(TAGS)):
                client.log_scalars(dicts[step % 1_000], step=step)
            stored = client.flush(timeout=600)
        elapsed = time.perf_counter() - start
        server_rss = server.peak_rss_mib or float("nan")
    print(
        f"server: {points:,} points in {fmt_seconds(elapsed)}, stored {stored}, "
        f"peak RSS {server_rss:.0f} MiB"
    )
    summary.add(
        f"server peak RSS, ingesting {points:,} points",
        "",
        f"{server_rss:.0f} MiB",
        "",
        "(info)",
        "",
    )
    done = subprocess.run(
        [sys.executable, "-m", "bench.compare", "--client-worker", str(client_points), str(root)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        before, tenth, full = (float(x) for x in done.stdout.split()[-3:])
    except ValueError:
        verdicts.check("client RSS while the server is down", False, done.stdout + done.stderr)
        summary.add("client RSS, server down", "", "worker failed", "", "", "FAIL")
        return
    growth = full - tenth
    ok = verdicts.check(
        "client RSS while the server is down",
        growth < CLIENT_GROWTH_MIB,
        f"peak {before:.0f} MiB before the Client, {tenth:.0f} MiB after "
        f"{client_points // 10:,} points, {full:.0f} MiB after {client_points:,} "
        f"(growth {growth:.0f} MiB, target < {CLIENT_GROWTH_MIB:.0f} MiB)",
    )
    summary.add(
        f"client peak RSS, server down, {client_points:,} points",
        "",
        f"{full:.0f} MiB (+{growth:.0f} MiB after the first tenth)",
        "",
        f"growth < {CLIENT_GROWTH_MIB:.0f} MiB",
        "PASS" if ok else "FAIL",
    )


# ---------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--client-worker"]:
        return client_worker(int(argv[1]), argv[2])
    if argv[:1] == ["--mlflow-worker"]:
        return mlflow_worker(argv[1])
    parser = make_parser(__doc__, default_rounds=5)
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run this section")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("TRAINBOARD_TEST_POSTGRES", DEFAULT_POSTGRES),
        help="libpq URL of a PostgreSQL database allowed to CREATE DATABASE",
    )
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    args = parser.parse_args(argv)
    sections = args.only or list(SECTIONS)
    verdicts, summary = Verdicts(), Summary()
    out = (verdicts, summary)
    sections = [section for section in SECTIONS if section in sections]
    stolen = StolenTime().start()
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="trainboard-compare-")))
        mlflow_stack = stack.enter_context(ExitStack())
        mlflow_url: str | None = None
        if {"write", "ingest"} & set(sections):
            mlflow_problem = importable("mlflow")
            if mlflow_problem is None:
                mlflow_url = mlflow_stack.enter_context(MlflowServer(root)).url
            else:
                verdicts.skip("MLflow", mlflow_problem)
        for section in sections:
            if section in ("histogram", "read", "memory"):
                mlflow_stack.close()  # its workers would compete for the CPU
            if section == "write":
                section_write(args, root, mlflow_url, out)
            elif section == "ingest":
                section_ingest(args, root, mlflow_url, out)
            elif section == "histogram":
                section_histogram(args, root, out)
            elif section == "read":
                section_read(args, root, out)
            elif section == "memory":
                section_memory(args, root, out)
    summary.print()
    print(stolen.describe())
    return verdicts.exit_code(args.strict)


if __name__ == "__main__":
    sys.exit(main())
