"""Domain errors shared by the SDK and the server.

The server turns these into gRPC status codes in one place
(``trainboard_server.servicer``); the client turns status codes back into them in
one place (``trainboard.transport``). Everything in between raises and catches these.
"""

from __future__ import annotations


class TrainboardError(Exception):
    """Base class of every error Trainboard raises on purpose."""


class InvalidArgument(TrainboardError, ValueError):
    """A request or a call had a bad field; the message names it."""


class NotFound(TrainboardError, LookupError):
    """The named run, experiment or series does not exist."""


class Unauthenticated(TrainboardError):
    """No valid credential was given."""


class PermissionDenied(TrainboardError):
    """The credential may not do this (a read-only token writing)."""


class ResourceExhausted(TrainboardError):
    """A message or request exceeded a limit."""


class Unavailable(TrainboardError, ConnectionError):
    """The server could not be reached."""
