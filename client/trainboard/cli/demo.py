"""The demo trainer: TensorBoard's debugging walkthrough (docs/design.md) on real data.

A softmax classifier ``y = softmax(x @ W + b)`` learns scikit-learn's digits data set
(8x8 images of handwritten digits, shipped inside the package: no download) by
minibatch SGD on the cross-entropy loss, three times: with a learning rate that is too
small, one that is good and one that is too high. Everything is numpy and seeded, so a
run is the same every time.

:func:`train` and :func:`softmax_graph` are pure (no Trainboard calls) and unit-tested;
:func:`run_demo` logs the three runs through :class:`trainboard.Client`, and
:func:`summary_table` reads them back through :class:`trainboard.Reader`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trainboard.types import GraphNode

# Picked by experiment (300 steps of batch 64, seed 0; inputs are pixel intensities
# scaled to [0, 1]; the loss starts near 2.5):
# - 0.005 is too small: the loss crawls down to about 2.07 and the test accuracy creeps
#   from 0.09 to about 0.35.
# - 0.5 is good: the test accuracy passes 0.9 within 20 steps and ends near 0.95, the
#   loss falls smoothly to about 0.2.
# - 50 is too high: every step overshoots, so the minibatch loss spikes (to over 100
#   early on, still to about 2 late, some 8 times the good run's step-to-step jumps)
#   and the test accuracy drops by up to 7 points between evaluations; the final test
#   loss is more than twice the good run's. It never becomes NaN: the loss is computed
#   from the log-softmax and the model is linear, so nothing overflows. The final
#   test accuracy stays high (about 0.96 for rates from 10 to 100 too): the argmax
#   ignores the scale of the logits, so the damage shows in the loss, not the accuracy.
DEFAULT_LEARNING_RATES: tuple[float, float, float] = (0.005, 0.5, 50.0)

DEFAULT_STEPS = 300
DEFAULT_BATCH_SIZE = 64
NUM_FEATURES = 64
NUM_CLASSES = 10
INIT_STDDEV = 0.1
TEST_FRACTION = 0.25
# The train/test split does not depend on a run's seed, so all runs share one test set.
_SPLIT_SEED = 20240501

_INSTALL_HINT = "pip install 'trainboard[demo]'"
# How long run_demo waits for the server to store a run once it has trained.
FLUSH_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class StepRecord:
    """What one training step reports.

    ``loss`` and ``accuracy`` are measured on the step's training minibatch with the
    parameters as they were before the step's update, so step 0 shows the untrained
    model. At every ``log_every``-th step and at the last one, ``test_loss`` and
    ``test_accuracy`` hold the same measures on the held-out split, and ``histograms``
    maps the tags ``layer/W``, ``layer/b`` and ``layer/y`` to copies of the weights,
    the biases and the softmax outputs for the held-out split; otherwise they are
    ``None`` and empty.
    """

    step: int
    loss: float
    accuracy: float
    test_loss: float | None = None
    test_accuracy: float | None = None
    histograms: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Digits:
    """The digits data set split once: inputs in [0, 1], labels one-hot."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@functools.cache
def _digits() -> _Digits:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError(f"the demo needs scikit-learn for its data set: {_INSTALL_HINT}") from exc
    data = load_digits()
    x = (np.asarray(data.data, dtype=np.float32) / 16.0).astype(np.float32)
    labels = np.asarray(data.target, dtype=np.int64)
    onehot = np.eye(NUM_CLASSES, dtype=np.float32)[labels]
    order = np.random.default_rng(_SPLIT_SEED).permutation(len(x))
    n_test = int(len(x) * TEST_FRACTION)
    test, train = order[:n_test], order[n_test:]
    arrays = (x[train], onehot[train], x[test], onehot[test])
    for array in arrays:
        array.flags.writeable = False  # cached and shared between runs
    return _Digits(*arrays)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    probabilities: np.ndarray = np.exp(log_softmax(logits))
    return probabilities


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log of the softmax, finite where the softmax underflows to 0."""
    shifted: np.ndarray = logits - logits.max(axis=1, keepdims=True)
    log_probabilities: np.ndarray = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return log_probabilities


def _measure(
    x: np.ndarray, labels: np.ndarray, w: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, float, float]:
    """Softmax outputs, mean cross-entropy and accuracy of the model on a batch."""
    log_y = log_softmax(x @ w + b)
    # -sum(y_ * log(y)) with log(y) from the log-softmax: log(softmax) of a large
    # logit gap underflows to log(0) = -inf, and 0 * -inf would make the loss NaN.
    loss = float(-np.mean(np.sum(labels * log_y, axis=1)))
    accuracy = float(np.mean(np.argmax(log_y, axis=1) == np.argmax(labels, axis=1)))
    return np.exp(log_y), loss, accuracy


def train(
    lr: float, *, steps: int, batch_size: int, seed: int = 0, log_every: int = 10
) -> Iterator[StepRecord]:
    """Trains the softmax classifier on the digits data set, one record per step.

    Minibatches are drawn without replacement from a fresh permutation of the training
    split each epoch; the seed fixes that order and the initial weights (normal, std
    0.1; biases zero), so equal arguments give equal records. Test metrics and
    histograms come with steps 0, ``log_every``, ``2 * log_every``, ... and the last.
    Bad arguments raise ``ValueError`` at the call, before the first record.
    """
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if log_every < 1:
        raise ValueError(f"log_every must be >= 1, got {log_every}")
    data = _digits()
    n_train = len(data.x_train)
    if not 1 <= batch_size <= n_train:
        raise ValueError(f"batch_size must be between 1 and {n_train}, got {batch_size}")
    return _train(data, lr, steps=steps, batch_size=batch_size, seed=seed, log_every=log_every)


def _train(
    data: _Digits, lr: float, *, steps: int, batch_size: int, seed: int, log_every: int
) -> Iterator[StepRecord]:
    n_train = len(data.x_train)
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, INIT_STDDEV, size=(NUM_FEATURES, NUM_CLASSES)).astype(np.float32)
    b = np.zeros(NUM_CLASSES, dtype=np.float32)
    rate = np.float32(lr)
    order = rng.permutation(n_train)
    position = 0
    for step in range(steps):
        if position + batch_size > n_train:
            order = rng.permutation(n_train)
            position = 0
        batch = order[position : position + batch_size]
        position += batch_size
        x, labels = data.x_train[batch], data.y_train[batch]

        y, loss, accuracy = _measure(x, labels, w, b)
        record = StepRecord(step=step, loss=loss, accuracy=accuracy)
        if step % log_every == 0 or step == steps - 1:
            test_y, test_loss, test_accuracy = _measure(data.x_test, data.y_test, w, b)
            record = StepRecord(
                step=step,
                loss=loss,
                accuracy=accuracy,
                test_loss=test_loss,
                test_accuracy=test_accuracy,
                histograms={"layer/W": w.copy(), "layer/b": b.copy(), "layer/y": test_y},
            )

        # Gradient of the mean cross-entropy with respect to the logits x @ W + b.
        grad_logits = (y - labels) / np.float32(batch_size)
        w -= rate * (x.T @ grad_logits)
        b -= rate * grad_logits.sum(axis=0)
        yield record


def _node(
    name: str,
    op: str,
    inputs: Sequence[str] = (),
    shape: tuple[int, ...] | None = None,
    dtype: str = "float32",
    **attributes: str,
) -> GraphNode:
    return GraphNode(
        name=name, op=op, inputs=tuple(inputs), shape=shape, dtype=dtype, attributes=attributes
    )


def softmax_graph(learning_rate: float | None = None) -> list[GraphNode]:
    """The graph of the softmax classifier and its training step (docs/design.md, point 6).

    Nodes come in topological order (inputs first). The forward pass is ``x`` and
    ``layer/W`` into ``layer/matmul``, ``+ layer/b``, ``layer/softmax`` into ``y``; the
    ``accuracy/`` and ``cross_entropy/`` scopes measure it; ``gradients/`` holds the
    backward ops and ``train/`` the gradient-descent updates of ``W`` and ``b``. A
    ``learning_rate``, when given, is recorded on ``train/learning_rate``.
    """
    batch = -1
    rate = {"value": repr(learning_rate)} if learning_rate is not None else {}
    return [
        _node("x", "Placeholder", shape=(batch, NUM_FEATURES), description="input pixels"),
        _node("y_", "Placeholder", shape=(batch, NUM_CLASSES), description="one-hot labels"),
        _node(
            "layer/W",
            "VariableV2",
            shape=(NUM_FEATURES, NUM_CLASSES),
            initializer=f"random_normal(stddev={INIT_STDDEV})",
        ),
        _node("layer/b", "VariableV2", shape=(NUM_CLASSES,), initializer="zeros"),
        _node(
            "layer/matmul",
            "MatMul",
            ["x", "layer/W"],
            (batch, NUM_CLASSES),
            transpose_a="false",
            transpose_b="false",
        ),
        _node("layer/add", "Add", ["layer/matmul", "layer/b"], (batch, NUM_CLASSES)),
        _node("layer/softmax", "Softmax", ["layer/add"], (batch, NUM_CLASSES)),
        _node("y", "Identity", ["layer/softmax"], (batch, NUM_CLASSES)),
        # accuracy = mean(argmax(y) == argmax(y_))
        _node("accuracy/ArgMax", "ArgMax", ["y"], (batch,), "int64", axis="1"),
        _node("accuracy/ArgMax_1", "ArgMax", ["y_"], (batch,), "int64", axis="1"),
        _node(
            "accuracy/Equal", "Equal", ["accuracy/ArgMax", "accuracy/ArgMax_1"], (batch,), "bool"
        ),
        _node("accuracy/Cast", "Cast", ["accuracy/Equal"], (batch,), SrcT="bool", DstT="float32"),
        _node("accuracy/Mean", "Mean", ["accuracy/Cast"], (), axis="0"),
        # cross_entropy = mean(-sum(y_ * log(y), axis=1))
        _node("cross_entropy/Log", "Log", ["y"], (batch, NUM_CLASSES)),
        _node("cross_entropy/mul", "Mul", ["y_", "cross_entropy/Log"], (batch, NUM_CLASSES)),
        _node("cross_entropy/Sum", "Sum", ["cross_entropy/mul"], (batch,), axis="1"),
        _node("cross_entropy/Neg", "Neg", ["cross_entropy/Sum"], (batch,)),
        _node("cross_entropy/Mean", "Mean", ["cross_entropy/Neg"], (), axis="0"),
        # Backward pass, from d(loss)/d(loss) = 1 down to the variables.
        _node("gradients/Shape", "Shape", ["cross_entropy/Mean"], (0,), "int64"),
        _node("gradients/Fill", "Fill", ["gradients/Shape"], (), value="1.0"),
        _node(
            "gradients/cross_entropy/Mean_grad",
            "MeanGrad",
            ["gradients/Fill", "cross_entropy/Neg"],
            (batch,),
        ),
        _node(
            "gradients/cross_entropy/Neg_grad",
            "Neg",
            ["gradients/cross_entropy/Mean_grad"],
            (batch,),
        ),
        _node(
            "gradients/cross_entropy/Sum_grad",
            "Tile",
            ["gradients/cross_entropy/Neg_grad"],
            (batch, NUM_CLASSES),
            multiples=f"[1, {NUM_CLASSES}]",
        ),
        _node(
            "gradients/cross_entropy/mul_grad",
            "Mul",
            ["gradients/cross_entropy/Sum_grad", "y_"],
            (batch, NUM_CLASSES),
        ),
        _node(
            "gradients/cross_entropy/Log_grad",
            "Mul",
            ["gradients/cross_entropy/mul_grad", "y"],
            (batch, NUM_CLASSES),
            description="grad * reciprocal(y)",
        ),
        _node(
            "gradients/layer/softmax_grad",
            "SoftmaxGrad",
            ["gradients/cross_entropy/Log_grad", "layer/softmax"],
            (batch, NUM_CLASSES),
        ),
        _node(
            "gradients/layer/add_grad",
            "BiasAddGrad",
            ["gradients/layer/softmax_grad"],
            (NUM_CLASSES,),
            description="gradient with respect to layer/b",
        ),
        _node(
            "gradients/layer/matmul_grad",
            "MatMul",
            ["x", "gradients/layer/softmax_grad"],
            (NUM_FEATURES, NUM_CLASSES),
            transpose_a="true",
            transpose_b="false",
            description="gradient with respect to layer/W",
        ),
        _node("train/learning_rate", "Const", shape=(), **rate),
        _node(
            "train/update_layer/W",
            "ApplyGradientDescent",
            ["layer/W", "train/learning_rate", "gradients/layer/matmul_grad"],
            (NUM_FEATURES, NUM_CLASSES),
            use_locking="false",
        ),
        _node(
            "train/update_layer/b",
            "ApplyGradientDescent",
            ["layer/b", "train/learning_rate", "gradients/layer/add_grad"],
            (NUM_CLASSES,),
            use_locking="false",
        ),
        _node(
            "train/step",
            "NoOp",
            ["train/update_layer/W", "train/update_layer/b"],
            None,
            "",
        ),
    ]


def run_name(lr: float) -> str:
    """The demo's name for the run with this learning rate, e.g. ``lr=0.005``."""
    return f"lr={lr:g}"


def run_demo(
    server: str,
    *,
    experiment: str = "digits",
    steps: int = DEFAULT_STEPS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    learning_rates: Sequence[float] = DEFAULT_LEARNING_RATES,
) -> list[int]:
    """Trains and logs one run per learning rate, one after another; returns the run ids.

    Each run (named like ``lr=0.5``, with params ``lr``, ``batch_size`` and ``steps``)
    gets its graph, the minibatch ``loss`` and ``accuracy`` at every step, and at
    every tenth step and the last ``test/loss``, ``test/accuracy`` and histograms of
    ``layer/W``, ``layer/b`` and ``layer/y``. Running the demo again makes three new
    runs (``lr=0.5 (2)`` and so on), as running any training script again does. Raises
    ``RuntimeError`` when the server has not stored a run's data within
    ``FLUSH_TIMEOUT`` seconds of its last step (the run is then marked failed).
    """
    from trainboard import Client

    run_ids: list[int] = []
    for lr in learning_rates:
        params: dict[str, Any] = {"lr": lr, "batch_size": batch_size, "steps": steps}
        records = train(lr, steps=steps, batch_size=batch_size)  # bad arguments fail here
        with Client(experiment, run_name(lr), server, params) as client:
            client.log_graph(softmax_graph(learning_rate=lr))
            for record in records:
                client.log_scalars(
                    {"loss": record.loss, "accuracy": record.accuracy}, step=record.step
                )
                if record.test_loss is not None and record.test_accuracy is not None:
                    client.log_scalars(
                        {"test/loss": record.test_loss, "test/accuracy": record.test_accuracy},
                        step=record.step,
                    )
                for tag, values in record.histograms.items():
                    client.log_histogram(tag, values, step=record.step)
            if not client.flush(timeout=FLUSH_TIMEOUT):
                raise RuntimeError(
                    f"the server at {server} did not store run {client.run!r} "
                    f"within {FLUSH_TIMEOUT:g} s"
                )
            run_ids.append(client.run_id)
    return run_ids


def summary_table(server: str, experiment: str = "digits") -> str:
    """A plain-text table of the experiment's runs, read back from the server: name,
    ``lr`` param, final minibatch loss and accuracy, final test loss and accuracy, and
    the number of scalar points stored across the run's scalar tags.

    The test loss is there because accuracy alone flatters the too-high learning rate:
    its argmax is mostly right while its probabilities swing far too confident.
    """
    from trainboard import Reader

    header = ("run", "lr", "loss", "accuracy", "test/loss", "test/accuracy", "points")
    rows: list[tuple[str, ...]] = []
    with Reader(server) as reader:
        for run in reader.runs(experiment):
            last: dict[str, float] = {}
            points = 0
            for tag in reader.tags(run.id, kind="scalar"):
                series = reader.scalars(run.id, tag.name)
                points += series.total
                if len(series):
                    last[tag.name] = float(series.values[-1])
            rows.append(
                (
                    run.name,
                    _format_param(run.params.get("lr")),
                    _format_value(last.get("loss")),
                    _format_value(last.get("accuracy")),
                    _format_value(last.get("test/loss")),
                    _format_value(last.get("test/accuracy")),
                    str(points),
                )
            )
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in (header, *rows)
    ]
    if not rows:
        lines.append(f"(no runs in experiment {experiment!r})")
    return "\n".join(lines)


def _format_value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _format_param(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
