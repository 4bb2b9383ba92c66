"""The scalar chart cards: a Streamlit component (``st.components.v2``) that draws a
page's charts in the browser, and what Python hands it.

The browser side lives in ``ui/frontend/`` (uPlot on 2D canvases, smoothing, hover
table, lazy loading; built by ``make frontend`` into ``static/``, which ships in the
wheel). This module:

- loads the built files and registers the component (:func:`component`);
- packs a payload (:func:`pack`): a little-endian ``uint32`` header length, the
  header as JSON, then float64 columns (steps, wall times, values of each update);
- keeps, per board in the browser, what it was sent (:class:`Feed`), so that a
  refresh sends only new tags and appended points, never the whole history again.

The protocol: every payload has the feed's id and a sequence number ``seq``;
``base`` is the ``seq`` it builds on (``None``: start from nothing). A board that
holds a different ``seq`` than ``base`` asks for a resend (the ``resync`` trigger),
which :meth:`Feed.reset` answers with a whole payload. Boards ask for the data of
cards that come near the screen with the ``want`` trigger.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

STATIC = Path(__file__).resolve().parent / "static"
#: The front-end's sources, where a checkout has them (not in an installed wheel).
FRONTEND_SOURCE = Path(__file__).resolve().parents[1] / "frontend"
HASH_LINE = "// trainboard-frontend-source: "
COMPONENT_NAME = "trainboard.cards"


class SeriesLike(Protocol):
    """A scalar series as the session caches it (``live.CachedScalars``)."""

    @property
    def steps(self) -> np.ndarray: ...
    @property
    def wall_times(self) -> np.ndarray: ...
    @property
    def values(self) -> np.ndarray: ...
    @property
    def generation(self) -> int: ...
    def __len__(self) -> int: ...


# ---------------------------------------------------------------------- build


def source_hash(root: Path = FRONTEND_SOURCE) -> str:
    """The hash ``ui/frontend/build.mjs`` writes into the build: every input file's
    path and bytes (the build script, the lock file pinning uPlot, ``src/*``)."""
    sources = sorted(f"src/{p.name}" for p in (root / "src").iterdir() if p.is_file())
    files = ["build.mjs", "package-lock.json", *sources]
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode() + b"\0")
        digest.update((root / name).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def built_hash(static: Path = STATIC) -> str:
    """The source hash recorded in the shipped build."""
    first = (static / "cards.js").read_text(encoding="utf-8").split("\n", 1)[0]
    if not first.startswith(HASH_LINE):
        raise ValueError(f"{static / 'cards.js'} has no source hash line; rebuild it")
    return first[len(HASH_LINE) :].strip()


@cache
def component() -> Callable[..., Any]:
    """The registered component (registered once per process)."""
    import streamlit as st

    return st.components.v2.component(
        COMPONENT_NAME,
        js=(STATIC / "cards.js").read_text(encoding="utf-8"),
        css=(STATIC / "cards.css").read_text(encoding="utf-8"),
    )


def preload() -> None:
    """Mounts the component with nothing to draw. Called first thing on the pages
    that use it, so that the browser fetches Streamlit's component loader and this
    module while the page's script still reads data (it would start only once the
    script drew the cards, about half a second before the first chart)."""
    component()(key="trainboard-cards-preload", data=None)


# ---------------------------------------------------------------------- payload


def pack(header: Mapping[str, Any], columns: Iterable[np.ndarray]) -> bytes:
    """``header`` as JSON after its length, then each column as float64 (NaN and
    ±Inf travel as they are)."""
    text = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    parts = [struct.pack("<I", len(text)), text]
    parts.extend(np.ascontiguousarray(c, dtype="<f8").tobytes() for c in columns)
    return b"".join(parts)


def unpack(payload: bytes) -> tuple[dict[str, Any], np.ndarray]:
    """The inverse of :func:`pack`: the header and every column, concatenated."""
    (length,) = struct.unpack_from("<I", payload)
    header = json.loads(payload[4 : 4 + length])
    return header, np.frombuffer(payload[4 + length :], dtype="<f8")


@dataclass(frozen=True, slots=True)
class RunInfo:
    id: int
    name: str
    colour: str
    started_at: float


@dataclass(slots=True)
class _Sent:
    generation: int
    length: int


@dataclass
class Feed:
    """What one board in the browser was sent: which tags, and how much of each
    (run, tag) series. Lives in the session as long as the board does."""

    feed_id: str = field(default_factory=lambda: secrets.token_hex(4))
    seq: int = 0
    base: int | None = None
    wanted: list[str] = field(default_factory=list)
    _sent: dict[tuple[int, str], _Sent] = field(default_factory=dict)
    _loaded: list[str] = field(default_factory=list)
    _last: tuple[str, bytes] | None = None

    def want(self, tags: Iterable[str]) -> None:
        """Tags whose cards came near the screen: loaded from the next payload on."""
        for tag in tags:
            if isinstance(tag, str) and tag not in self.wanted:
                self.wanted.append(tag)

    def reset(self) -> None:
        """The board lost track (or was rebuilt): the next payload starts afresh
        under a new feed id, with everything wanted."""
        self.feed_id = secrets.token_hex(4)
        self.base = None
        self._sent.clear()
        self._loaded.clear()
        self._last = None

    def to_load(self, tags: Sequence[str], first: int) -> list[str]:
        """Of ``tags`` (in page order), those whose data the board gets: the first
        ``first`` and every one it asked for."""
        wanted = set(self.wanted)
        return [t for i, t in enumerate(tags) if i < first or t in wanted]

    def payload(
        self,
        *,
        settings: Mapping[str, Any],
        runs: Sequence[RunInfo],
        groups: Sequence[tuple[str, Sequence[str]]],
        pinned: Sequence[str],
        focus: str | None,
        loaded: Sequence[str],
        series: Mapping[tuple[int, str], SeriesLike],
    ) -> bytes:
        """The next payload: the page's layout and settings, and for the loaded
        tags the series (or the points appended to them) the board lacks. The same
        bytes again when nothing changed, so the browser has nothing to redo."""
        updates: list[dict[str, Any]] = []
        columns: list[np.ndarray] = []
        for (run_id, tag), s in series.items():
            length = len(s)
            sent = self._sent.get((run_id, tag))
            if sent is not None and sent.generation == s.generation and length >= sent.length:
                if length == sent.length:
                    continue
                start, mode = sent.length, "append"
            else:
                start, mode = 0, "full"
            updates.append({"run": run_id, "tag": tag, "mode": mode, "n": length - start})
            columns += [s.steps[start:], s.wall_times[start:], s.values[start:]]
            self._sent[(run_id, tag)] = _Sent(s.generation, length)
        for tag in loaded:
            if tag not in self._loaded:
                self._loaded.append(tag)
        header: dict[str, Any] = {
            "feed": self.feed_id,
            "settings": dict(settings),
            "runs": [
                {"id": r.id, "name": r.name, "colour": r.colour, "started_at": r.started_at}
                for r in runs
            ],
            "groups": [[g, list(t)] for g, t in groups],
            "pinned": list(pinned),
            "focus": focus,
            "loaded": list(self._loaded),
        }
        layout = json.dumps(header, sort_keys=True)
        if not updates and self._last is not None and self._last[0] == layout:
            return self._last[1]
        self.seq += 1
        header.update(seq=self.seq, base=self.base, updates=updates)
        data = pack(header, columns)
        self.base = self.seq
        self._last = (layout, data)
        return data
