"""``trainboard runs …`` and ``trainboard experiments …``: a team's housekeeping.

List, delete, rename and tag runs, and delete experiments, on a server, through
``trainboard.Reader`` (so ``TRAINBOARD_TOKEN`` and ``TRAINBOARD_TLS_ROOT_CERT``
apply as everywhere; deleting, renaming and tagging need a write token).

Deleting asks first on the terminal ("delete run 'x' of 'y' with N points?
[y/N]"); without a terminal to ask on (a script, a pipe) it refuses unless given
``--yes``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

from trainboard.errors import NotFound, TrainboardError
from trainboard.reader import Reader
from trainboard.types import Run


class Declined(Exception):
    """The user did not confirm, or could not be asked."""


def confirm(action: str, detail: str, *, yes: bool) -> None:
    """Returns when the user answered yes to "``action`` ``detail``? [y/N]" on the
    terminal, or gave ``--yes``; raises ``Declined`` otherwise."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise Declined(f"not confirmed: stdin is not a terminal; pass --yes to {action}")
    print(f"{action} {detail}? [y/N] ", end="", flush=True)
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise Declined("nothing deleted")


def stored_points(reader: Reader, run_id: int) -> int:
    """Scalar points plus histograms the run holds (distinct steps per series)."""
    tags = reader.tags(run_id)
    scalar = [t.name for t in tags if t.kind == "scalar"]
    histogram = [t.name for t in tags if t.kind == "histogram"]
    total = 0
    if scalar:  # one point per series comes back; .total counts them all
        total += sum(s.total for s in reader.scalars_many([run_id], scalar, 1))
    if histogram:
        total += sum(h.total for h in reader.histograms_many([run_id], histogram, 1))
    return total


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def format_duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, rest = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def runs_table(runs: Sequence[Run]) -> str:
    """The runs as aligned text columns (times in the local time zone)."""
    rows = [("ID", "NAME", "STATUS", "STARTED", "DURATION", "TAGS")]
    for run in runs:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started_at))
        rows.append(
            (
                str(run.id),
                run.name,
                run.status,
                started,
                format_duration(run.duration),
                ", ".join(run.tags),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


# ---------------------------------------------------------------------- commands


def cmd_runs_list(reader: Reader, args: argparse.Namespace) -> str:
    runs = reader.runs(args.experiment)
    if not runs:
        raise NotFound(f"experiment {args.experiment!r} has no runs")
    return runs_table(runs)


def cmd_runs_delete(reader: Reader, args: argparse.Namespace) -> str:
    run = reader.run(args.experiment, args.run)
    points = stored_points(reader, run.id)
    action = f"delete run {run.name!r} of {run.experiment!r}"
    confirm(action, f"with {plural(points, 'point')}", yes=args.yes)
    reader.delete_run(run.id)
    return f"deleted run {run.name!r} of {run.experiment!r} ({plural(points, 'point')})"


def cmd_runs_rename(reader: Reader, args: argparse.Namespace) -> str:
    run = reader.run(args.experiment, args.run)
    reader.rename_run(run.id, args.new_name)
    return f"renamed run {run.name!r} of {run.experiment!r} to {args.new_name!r}"


def cmd_runs_tag(reader: Reader, args: argparse.Namespace) -> str:
    run = reader.run(args.experiment, args.run)
    if args.remove:
        wanted = [t for t in run.tags if t not in set(args.tags)]
    else:
        wanted = [*run.tags, *args.tags]
    stored = reader.set_run_tags(run.id, wanted)
    if not stored:
        return f"run {run.name!r} of {run.experiment!r} has no tags"
    return f"run {run.name!r} of {run.experiment!r} is tagged: {', '.join(stored)}"


def cmd_experiments_list(reader: Reader, args: argparse.Namespace) -> str:
    return "\n".join(reader.experiments())


def cmd_experiments_delete(reader: Reader, args: argparse.Namespace) -> str:
    runs = reader.runs(args.experiment)
    if not runs:
        raise NotFound(f"experiment {args.experiment!r} does not exist")
    action = f"delete experiment {args.experiment!r}"
    confirm(action, f"with {plural(len(runs), 'run')}", yes=args.yes)
    deleted = reader.delete_experiment(args.experiment)
    return f"deleted experiment {args.experiment!r} ({plural(deleted, 'run')})"


Command = Callable[[Reader, argparse.Namespace], str]


def run_command(command: Command, args: argparse.Namespace) -> int:
    """Runs a housekeeping command against ``args.server``: prints what it did
    and returns 0, or prints why not to stderr and returns 1."""
    try:
        with Reader(args.server) as reader:
            output = command(reader, args)
    except (TrainboardError, ValueError, Declined) as exc:
        print(f"trainboard: {exc}", file=sys.stderr)
        return 1
    if output:
        print(output)
    return 0


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], server_default: str
) -> None:
    """Adds ``runs`` and ``experiments`` with their subcommands."""

    def leaf(
        group: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        help_text: str,
        command: Command,
    ) -> argparse.ArgumentParser:
        parser = group.add_parser(name, help=help_text, description=help_text)
        parser.add_argument(
            "--server",
            default=server_default,
            help="HOST:PORT of the server (default: $TRAINBOARD_SERVER or %(default)s)",
        )
        parser.set_defaults(func=lambda args: run_command(command, args))
        return parser

    runs = sub.add_parser("runs", help="list, delete, rename and tag runs")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True)
    listing = leaf(runs_sub, "list", "list an experiment's runs", cmd_runs_list)
    listing.add_argument("experiment")
    delete = leaf(runs_sub, "delete", "delete a run and everything it logged", cmd_runs_delete)
    delete.add_argument("experiment")
    delete.add_argument("run")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    rename = leaf(runs_sub, "rename", "rename a run", cmd_runs_rename)
    rename.add_argument("experiment")
    rename.add_argument("run")
    rename.add_argument("new_name")
    tag = leaf(runs_sub, "tag", "add tags to a run (or remove them with --remove)", cmd_runs_tag)
    tag.add_argument("experiment")
    tag.add_argument("run")
    tag.add_argument("tags", nargs="+", metavar="TAG")
    tag.add_argument("--remove", action="store_true", help="remove these tags instead")

    experiments = sub.add_parser("experiments", help="list and delete experiments")
    experiments_sub = experiments.add_subparsers(dest="experiments_command", required=True)
    leaf(experiments_sub, "list", "list the experiments", cmd_experiments_list)
    delete_experiment = leaf(
        experiments_sub, "delete", "delete an experiment and all its runs", cmd_experiments_delete
    )
    delete_experiment.add_argument("experiment")
    delete_experiment.add_argument("--yes", action="store_true", help="do not ask for confirmation")
