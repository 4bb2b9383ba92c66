"""`trainboard runs …` and `trainboard experiments …` as a user runs them: the
command in a subprocess, against a real server on loopback."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import pytest

import trainboard

FLUSH_TIMEOUT = 30.0


def trainboard_cli(
    server: str, *args: str, stdin: int | None = subprocess.DEVNULL
) -> subprocess.CompletedProcess[str]:
    """``python -m trainboard ARGS`` with ``TRAINBOARD_SERVER`` pointing at ``server``
    and, by default, no terminal on stdin."""
    env = {**os.environ, "TRAINBOARD_SERVER": server}
    env.pop("TRAINBOARD_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "trainboard", *args],
        stdin=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def on_a_terminal(server: str, answer: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The command with a pseudo-terminal on stdin, on which ``answer`` is typed."""
    controller, terminal = pty.openpty()
    try:
        os.write(controller, answer.encode() + b"\n")  # buffered until it reads
        return trainboard_cli(server, *args, stdin=terminal)
    finally:
        os.close(terminal)
        os.close(controller)


def log_run(server: str, experiment: str, run: str, steps: int) -> int:
    with trainboard.Client(experiment, run, server) as client:
        for step in range(steps):
            client.log_scalars({"loss": 1.0 / (step + 1), "accuracy": step / steps}, step=step)
        client.log_histogram("w", [0.0, 1.0, 2.0], step=0)
        assert client.flush(timeout=FLUSH_TIMEOUT)
        return client.run_id


@pytest.fixture
def server(server_address: str) -> str:
    """A server holding experiment "digits" (runs "lr=0.5" with 10 steps and "lr=0.1"
    with 5) and experiment "other" (run "keep")."""
    log_run(server_address, "digits", "lr=0.5", 10)
    log_run(server_address, "digits", "lr=0.1", 5)
    log_run(server_address, "other", "keep", 1)
    return server_address


def runs_of(server: str, experiment: str) -> list[tuple[str, tuple[str, ...]]]:
    with trainboard.Reader(server) as reader:
        return [(r.name, r.tags) for r in reader.runs(experiment)]


def test_runs_list_shows_each_run_with_its_status_and_tags(server: str) -> None:
    with trainboard.Reader(server) as reader:
        reader.set_run_tags(reader.run("digits", "lr=0.1").id, ["baseline", "ünï"])

    done = trainboard_cli(server, "runs", "list", "digits")

    assert done.returncode == 0, done.stderr
    header, first, second = done.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "STATUS", "STARTED", "DURATION", "TAGS"]
    assert first.split()[1:3] == ["lr=0.5", "finished"]
    assert second.split()[1:3] == ["lr=0.1", "finished"]
    assert second.endswith("baseline, ünï")


def test_runs_delete_with_yes_deletes_the_run_and_says_how_much(server: str) -> None:
    done = trainboard_cli(server, "runs", "delete", "digits", "lr=0.1", "--yes")

    assert done.returncode == 0, done.stderr
    # 5 steps of two scalar tags and one histogram.
    assert done.stdout.strip() == "deleted run 'lr=0.1' of 'digits' (11 points)"
    assert runs_of(server, "digits") == [("lr=0.5", ())]
    assert runs_of(server, "other") == [("keep", ())]


def test_runs_delete_refuses_without_a_terminal_to_ask_on(server: str) -> None:
    done = trainboard_cli(server, "runs", "delete", "digits", "lr=0.1")

    assert done.returncode == 1
    assert "not a terminal" in done.stderr
    assert "--yes" in done.stderr
    assert [name for name, _ in runs_of(server, "digits")] == ["lr=0.5", "lr=0.1"]


def test_runs_delete_asks_on_a_terminal_and_takes_only_yes(server: str) -> None:
    declined = on_a_terminal(server, "n", "runs", "delete", "digits", "lr=0.1")

    assert declined.returncode == 1
    assert "delete run 'lr=0.1' of 'digits' with 11 points? [y/N]" in declined.stdout
    assert "nothing deleted" in declined.stderr
    assert len(runs_of(server, "digits")) == 2

    confirmed = on_a_terminal(server, "y", "runs", "delete", "digits", "lr=0.1")

    assert confirmed.returncode == 0, confirmed.stderr
    assert runs_of(server, "digits") == [("lr=0.5", ())]


def test_runs_delete_of_an_unknown_run_says_so(server: str) -> None:
    done = trainboard_cli(server, "runs", "delete", "digits", "ghost", "--yes")

    assert done.returncode == 1
    assert "experiment 'digits' has no run 'ghost'" in done.stderr


def test_runs_rename_renames_and_refuses_a_taken_name(server: str) -> None:
    taken = trainboard_cli(server, "runs", "rename", "digits", "lr=0.1", "lr=0.5")

    assert taken.returncode == 1
    assert "run name 'lr=0.5' is taken in experiment 'digits'" in taken.stderr

    done = trainboard_cli(server, "runs", "rename", "digits", "lr=0.1", "slow 'lr'")

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "renamed run 'lr=0.1' of 'digits' to \"slow 'lr'\""
    assert [name for name, _ in runs_of(server, "digits")] == ["lr=0.5", "slow 'lr'"]


def test_runs_tag_adds_and_removes_tags(server: str) -> None:
    added = trainboard_cli(server, "runs", "tag", "digits", "lr=0.5", "best", 'say "hi"', "ünï")

    assert added.returncode == 0, added.stderr
    assert runs_of(server, "digits")[0] == ("lr=0.5", ("best", 'say "hi"', "ünï"))

    removed = trainboard_cli(server, "runs", "tag", "digits", "lr=0.5", "best", "--remove")

    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.strip() == "run 'lr=0.5' of 'digits' is tagged: say \"hi\", ünï"
    assert runs_of(server, "digits")[0] == ("lr=0.5", ('say "hi"', "ünï"))


def test_runs_tag_refuses_a_bad_tag(server: str) -> None:
    done = trainboard_cli(server, "runs", "tag", "digits", "lr=0.5", "x" * 300)

    assert done.returncode == 1
    assert "tags[0]" in done.stderr
    assert runs_of(server, "digits")[0] == ("lr=0.5", ())


def test_experiments_delete_asks_first_and_deletes_every_run(server: str) -> None:
    refused = trainboard_cli(server, "experiments", "delete", "digits")

    assert refused.returncode == 1
    assert "--yes" in refused.stderr

    done = trainboard_cli(server, "experiments", "delete", "digits", "--yes")

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "deleted experiment 'digits' (2 runs)"
    listed = trainboard_cli(server, "experiments", "list")
    assert listed.stdout.split() == ["other"]
    again = trainboard_cli(server, "experiments", "delete", "digits", "--yes")
    assert again.returncode == 1
    assert "experiment 'digits' does not exist" in again.stderr


def test_housekeeping_commands_take_a_server_flag(server: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "trainboard", "runs", "list", "other", "--server", server],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "TRAINBOARD_SERVER"},
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert "keep" in done.stdout
