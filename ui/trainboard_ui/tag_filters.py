"""Which tags a page shows: a regular-expression filter and TensorBoard's grouping
by the first ``/`` scope. The filter's parsing also serves the run-name filter."""

from __future__ import annotations

import re
from collections.abc import Iterable


def compile_pattern(text: str) -> tuple[re.Pattern[str] | None, str | None]:
    """A filter (of tags, of run names) as a compiled regular expression, or
    ``(None, message)`` when ``text`` is not a valid one. An empty filter gives
    ``(None, None)``: no filter."""
    if not text.strip():
        return None, None
    try:
        return re.compile(text), None
    except re.error as exc:
        return None, f"Not a valid regular expression: {exc}"


def filter_tags(tags: Iterable[str], pattern: re.Pattern[str] | None) -> list[str]:
    """Sorted unique tags that the pattern finds anywhere in (``re.search``)."""
    return sorted({t for t in tags if pattern is None or pattern.search(t)})


def group_tags(tags: Iterable[str]) -> list[tuple[str, list[str]]]:
    """Tags grouped by their first ``/`` scope, as TensorBoard does: ``test/loss``
    goes to ``test``; tags without a scope go to the group ``""``, which comes first."""
    groups: dict[str, list[str]] = {}
    for tag in sorted(set(tags)):
        scope, sep, _ = tag.partition("/")
        groups.setdefault(scope if sep else "", []).append(tag)
    return sorted(groups.items(), key=lambda item: (item[0] != "", item[0]))
