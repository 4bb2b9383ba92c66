"""Trainboard: a small, fast experiment tracker for people who train neural networks.

import trainboard
with trainboard.Client(experiment="digits", run="lr=0.5", params={"lr": 0.5}) as client:
    client.log_scalar("loss", 0.31, step=100)
reader = trainboard.Reader()
"""

from trainboard.client import Client
from trainboard.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    TrainboardError,
    Unauthenticated,
    Unavailable,
)
from trainboard.histogram import summarize
from trainboard.reader import Reader
from trainboard.smoothing import smooth
from trainboard.spool import sync
from trainboard.types import (
    GraphNode,
    Histogram,
    HistogramSeries,
    HistogramSummary,
    Run,
    ScalarSeries,
    Tag,
)

__version__ = "0.1.0"

__all__ = [
    "Client",
    "GraphNode",
    "Histogram",
    "HistogramSeries",
    "HistogramSummary",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "Reader",
    "ResourceExhausted",
    "Run",
    "ScalarSeries",
    "Tag",
    "TrainboardError",
    "Unauthenticated",
    "Unavailable",
    "__version__",
    "smooth",
    "summarize",
    "sync",
]
