"""The dashboard's pages, in the order of its navigation; the first is the default."""

from __future__ import annotations

from trainboard_ui.views import distributions, graph, histograms, runs, scalars
from trainboard_ui.views.base import View, ViewContext

VIEWS: tuple[View, ...] = (
    scalars.VIEW,
    distributions.VIEW,
    histograms.VIEW,
    graph.VIEW,
    runs.VIEW,
)

__all__ = ["VIEWS", "View", "ViewContext"]
