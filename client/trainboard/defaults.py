"""Where a server listens and where the SDK, the CLI and the dashboard look for it,
unless told otherwise (``--host``/``--port``, ``server=``, ``TRAINBOARD_SERVER``)."""

from __future__ import annotations

from typing import Final

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 6009
#: ``host:port`` of the server the SDK and the dashboard talk to by default.
DEFAULT_SERVER: Final = f"{DEFAULT_HOST}:{DEFAULT_PORT}"
