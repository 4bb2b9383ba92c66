"""The demo trainer: the pure training loop and graph, and the demo end to end."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import trainboard
from trainboard.cli import demo
from trainboard.cli.demo import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_LEARNING_RATES,
    DEFAULT_STEPS,
    StepRecord,
    softmax_graph,
    train,
)

SMALL_LR, GOOD_LR, HIGH_LR = DEFAULT_LEARNING_RATES


@pytest.fixture(scope="module")
def default_runs() -> dict[float, list[StepRecord]]:
    """The three demo runs with the default settings, trained once for this module."""
    return {
        lr: list(train(lr, steps=DEFAULT_STEPS, batch_size=DEFAULT_BATCH_SIZE))
        for lr in DEFAULT_LEARNING_RATES
    }


def _losses(records: list[StepRecord]) -> np.ndarray:
    return np.array([r.loss for r in records])


def _test_accuracies(records: list[StepRecord]) -> np.ndarray:
    return np.array([r.test_accuracy for r in records if r.test_accuracy is not None])


def test_learning_rates_are_ordered_small_good_high() -> None:
    assert SMALL_LR < GOOD_LR < HIGH_LR


def test_good_learning_rate_passes_90_percent_test_accuracy(
    default_runs: dict[float, list[StepRecord]],
) -> None:
    records = default_runs[GOOD_LR]
    final = records[-1]
    assert final.test_accuracy is not None
    assert final.test_accuracy > 0.9
    assert final.test_loss is not None
    assert final.test_loss < 0.5
    losses = _losses(records)
    assert losses[-20:].mean() < 0.25 * losses[:5].mean()


def test_too_small_learning_rate_stays_clearly_below(
    default_runs: dict[float, list[StepRecord]],
) -> None:
    small, good = default_runs[SMALL_LR], default_runs[GOOD_LR]
    final = small[-1]
    assert final.test_accuracy is not None
    assert final.test_accuracy < 0.7
    # The loss does fall, only slowly: after all steps it is still above where the
    # good rate was after a tenth of them.
    small_losses, good_losses = _losses(small), _losses(good)
    assert small_losses[-20:].mean() < small_losses[:20].mean()
    assert (
        small_losses[-20:].mean()
        > good_losses[DEFAULT_STEPS // 10 : DEFAULT_STEPS // 10 + 20].mean()
    )


def test_too_high_learning_rate_bounces_without_diverging(
    default_runs: dict[float, list[StepRecord]],
) -> None:
    high, good = default_runs[HIGH_LR], default_runs[GOOD_LR]
    high_losses, good_losses = _losses(high), _losses(good)
    assert np.isfinite(high_losses).all()
    half = DEFAULT_STEPS // 2
    # Step-to-step jumps of the loss, late in training when the good run has settled.
    assert np.std(np.diff(high_losses[half:])) > 5 * np.std(np.diff(good_losses[half:]))
    assert high_losses[half:].max() > 3 * good_losses[half:].max()
    high_test, good_test = _test_accuracies(high), _test_accuracies(good)
    assert np.ptp(high_test[len(high_test) // 2 :]) > 2 * np.ptp(good_test[len(good_test) // 2 :])
    for record in high:
        for values in record.histograms.values():
            assert np.isfinite(values).all()


def test_softmax_outputs_are_probabilities(
    default_runs: dict[float, list[StepRecord]],
) -> None:
    for records in default_runs.values():
        y = records[-1].histograms["layer/y"]
        assert y.ndim == 2
        assert y.shape[1] == 10
        assert ((y >= 0) & (y <= 1)).all()
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
    # A trained model is confident: most mass near 0, a smaller peak near 1.
    y = default_runs[GOOD_LR][-1].histograms["layer/y"]
    assert np.mean(y < 0.1) > 0.8
    assert np.mean(y > 0.5) > 0.05


def test_softmax_is_stable_for_huge_logits() -> None:
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    y = demo.softmax(logits)
    np.testing.assert_allclose(y, [[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)
    assert np.isfinite(demo.log_softmax(logits)).all()


def test_test_metrics_and_histograms_come_every_log_every_steps_and_at_the_last() -> None:
    records = list(train(GOOD_LR, steps=25, batch_size=32, log_every=10))
    assert [r.step for r in records] == list(range(25))
    logged = [r.step for r in records if r.test_accuracy is not None]
    assert logged == [0, 10, 20, 24]
    for record in records:
        has_test = record.test_accuracy is not None
        assert (record.test_loss is not None) == has_test
        assert set(record.histograms) == ({"layer/W", "layer/b", "layer/y"} if has_test else set())
        assert 0.0 <= record.accuracy <= 1.0
        assert record.loss > 0


def test_weights_start_with_a_visible_spread_and_move() -> None:
    records = [r for r in train(GOOD_LR, steps=51, batch_size=64, log_every=50) if r.histograms]
    first, last = records[0].histograms, records[-1].histograms
    assert first["layer/W"].shape == (64, 10)
    assert first["layer/b"].shape == (10,)
    assert 0.08 < float(np.std(first["layer/W"])) < 0.12
    assert not first["layer/b"].any()
    # Each record holds its own copy: later updates do not reach earlier records.
    assert not np.array_equal(first["layer/W"], last["layer/W"])
    assert last["layer/b"].any()


def test_training_is_deterministic_for_a_seed() -> None:
    def run(seed: int) -> list[StepRecord]:
        return list(train(HIGH_LR, steps=40, batch_size=64, seed=seed))

    first, again, other = run(3), run(3), run(4)
    assert [(r.loss, r.accuracy, r.test_loss) for r in first] == [
        (r.loss, r.accuracy, r.test_loss) for r in again
    ]
    np.testing.assert_array_equal(first[-1].histograms["layer/W"], again[-1].histograms["layer/W"])
    assert [r.loss for r in first] != [r.loss for r in other]


@pytest.mark.parametrize(
    ("lr", "steps", "batch_size", "log_every", "field"),
    [
        (0.0, 10, 8, 1, "lr"),
        (-1.0, 10, 8, 1, "lr"),
        (float("nan"), 10, 8, 1, "lr"),
        (0.1, 0, 8, 1, "steps"),
        (0.1, 10, 0, 1, "batch_size"),
        (0.1, 10, 100_000, 1, "batch_size"),
        (0.1, 10, 8, 0, "log_every"),
    ],
)
def test_invalid_training_arguments_are_rejected_at_the_call(
    lr: float, steps: int, batch_size: int, log_every: int, field: str
) -> None:
    with pytest.raises(ValueError, match=f"^{field} must be"):
        train(lr, steps=steps, batch_size=batch_size, log_every=log_every)


def test_missing_scikit_learn_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    demo._digits.cache_clear()
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    try:
        with pytest.raises(ImportError, match=r"pip install 'trainboard\[demo\]'"):
            train(GOOD_LR, steps=1, batch_size=8)
    finally:
        demo._digits.cache_clear()


# The graph ------------------------------------------------------------------


def test_graph_inputs_name_earlier_nodes_and_names_are_unique() -> None:
    graph = softmax_graph()
    names = [node.name for node in graph]
    assert len(names) == len(set(names))
    seen: set[str] = set()
    for node in graph:  # topological order: every input is defined above its user
        assert set(node.inputs) <= seen, node.name
        seen.add(node.name)


def test_graph_nodes_are_well_formed() -> None:
    for node in softmax_graph():
        assert node.op
        assert node.name
        assert not node.name.startswith("/")
        assert node.dtype in {"float32", "int64", "bool", ""}
        assert node.shape is None or all(isinstance(d, int) and d >= -1 for d in node.shape)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in node.attributes.items())


def test_graph_reads_bottom_up_as_the_model() -> None:
    nodes = {node.name: node for node in softmax_graph()}
    assert nodes["x"].op == "Placeholder"
    assert nodes["x"].shape == (-1, 64)
    assert nodes["y_"].op == "Placeholder"
    assert nodes["y_"].shape == (-1, 10)
    assert nodes["layer/W"].shape == (64, 10)
    assert nodes["layer/b"].shape == (10,)
    assert nodes["layer/matmul"].op == "MatMul"
    assert nodes["layer/matmul"].inputs == ("x", "layer/W")
    assert nodes["layer/add"].inputs == ("layer/matmul", "layer/b")
    assert nodes["layer/softmax"].op == "Softmax"
    assert nodes["layer/softmax"].inputs == ("layer/add",)
    assert nodes["y"].inputs == ("layer/softmax",)
    accuracy_ops = {n.op for name, n in nodes.items() if name.startswith("accuracy/")}
    assert {"ArgMax", "Equal", "Cast", "Mean"} <= accuracy_ops
    entropy_ops = {n.op for name, n in nodes.items() if name.startswith("cross_entropy/")}
    assert {"Log", "Mul", "Sum", "Neg", "Mean"} <= entropy_ops


def test_graph_has_gradients_feeding_the_updates() -> None:
    graph = softmax_graph(learning_rate=0.5)
    nodes = {node.name: node for node in graph}
    gradients = [name for name in nodes if name.startswith("gradients/")]
    assert len(gradients) >= 5
    updates = [n for n in graph if n.op == "ApplyGradientDescent"]
    assert {tuple(n.inputs[:1]) for n in updates} == {("layer/W",), ("layer/b",)}
    for update in updates:
        assert update.name.startswith("train/")
        assert any(i.startswith("gradients/") for i in update.inputs)
    assert nodes["train/learning_rate"].attributes["value"] == "0.5"


# End to end -------------------------------------------------------------------


def test_demo_logs_three_runs_end_to_end(server_address: str) -> None:
    steps = 40
    run_ids = demo.run_demo(server_address, experiment="digits-e2e", steps=steps)
    assert len(run_ids) == 3
    assert len(set(run_ids)) == 3

    with trainboard.Reader(server=server_address) as reader:
        runs = {run.id: run for run in reader.runs("digits-e2e")}
        assert set(runs) == set(run_ids)
        by_lr = {runs[run_id].params["lr"]: run_id for run_id in run_ids}
        assert set(by_lr) == set(DEFAULT_LEARNING_RATES)
        assert {runs[i].name for i in run_ids} == {"lr=0.005", "lr=0.5", "lr=50"}
        for run_id in run_ids:
            assert runs[run_id].params["batch_size"] == DEFAULT_BATCH_SIZE
            assert runs[run_id].params["steps"] == steps
            assert runs[run_id].status == "finished"

        good, small = by_lr[GOOD_LR], by_lr[SMALL_LR]
        loss = reader.scalars(good, "loss")
        accuracy = reader.scalars(good, "accuracy")
        assert loss.total == steps
        assert list(loss.steps) == list(range(steps))
        assert loss.values[-10:].mean() < loss.values[:5].mean() - 0.5
        assert accuracy.values[-10:].mean() > accuracy.values[:5].mean() + 0.3
        test_accuracy = reader.scalars(good, "test/accuracy")
        assert list(test_accuracy.steps) == [0, 10, 20, 30, steps - 1]
        assert test_accuracy.values[-1] > test_accuracy.values[0] + 0.3

        small_loss = reader.scalars(small, "loss")
        small_drop = small_loss.values[:5].mean() - small_loss.values[-10:].mean()
        good_drop = loss.values[:5].mean() - loss.values[-10:].mean()
        assert small_drop < 0.5 * good_drop

        tags = {tag.name: tag.kind for tag in reader.tags(good)}
        assert tags == {
            "loss": "scalar",
            "accuracy": "scalar",
            "test/loss": "scalar",
            "test/accuracy": "scalar",
            "layer/W": "histogram",
            "layer/b": "histogram",
            "layer/y": "histogram",
        }
        for run_id in run_ids:
            weights = reader.histograms(run_id, "layer/W")
            assert list(weights.steps) == [0, 10, 20, 30, steps - 1]
            assert weights[0].count == 64 * 10
            bands = weights[-1].bands()
            assert len(bands) == 9
            assert bands[0] < 0 < bands[-1]

        graph = reader.graph(good)
        assert graph is not None
        assert [node.name for node in graph] == [node.name for node in softmax_graph()]
        stored = {node.name: node for node in graph}
        assert stored["layer/matmul"].inputs == ("x", "layer/W")
        assert stored["layer/W"].shape == (64, 10)
        assert stored["train/learning_rate"].attributes["value"] == "0.5"

    table = demo.summary_table(server_address, "digits-e2e")
    lines = table.splitlines()
    assert len(lines) == 4
    assert lines[0].split() == [
        "run",
        "lr",
        "loss",
        "accuracy",
        "test/loss",
        "test/accuracy",
        "points",
    ]
    good_row = next(line.split() for line in lines if line.startswith("lr=0.5 "))
    assert good_row[1] == "0.5"
    assert float(good_row[2]) == pytest.approx(float(loss.values[-1]), abs=1e-4)
    # loss and accuracy at every step, test/loss and test/accuracy at five
    assert good_row[-1] == str(2 * steps + 2 * 5)


def test_running_the_demo_again_makes_three_new_runs(server_address: str) -> None:
    first = demo.run_demo(server_address, experiment="again", steps=12)
    second = demo.run_demo(server_address, experiment="again", steps=12)
    assert set(second).isdisjoint(first)
    with trainboard.Reader(server=server_address) as reader:
        runs = reader.runs("again")
        assert len(runs) == 6
        assert sorted(r.name for r in runs) == sorted(
            [demo.run_name(lr) for lr in demo.DEFAULT_LEARNING_RATES]
            + [f"{demo.run_name(lr)} (2)" for lr in demo.DEFAULT_LEARNING_RATES]
        )
        for run_id in first + second:
            assert reader.scalars(run_id, "loss").total == 12


def test_summary_table_of_an_empty_experiment_says_so(server_address: str) -> None:
    assert "no runs" in demo.summary_table(server_address, "nothing-here")
