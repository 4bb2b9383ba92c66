"""``python -m trainboard_ui ARGS`` runs ``streamlit ARGS`` (what ``trainboard ui`` and
``trainboard up`` start), with the dashboard's own modules (pandas, grpc, the SDK,
every page) imported in a background thread meanwhile.

A first page view otherwise pays those imports, about a second on two cores, after
the browser has connected; imported here they overlap with Streamlit's own start and
with the browser loading the page. (Starting them only once Streamlit listens was
measured too: no faster, as they then slow Streamlit serving its own page.)
"""

from __future__ import annotations

import sys
import threading


def _import_dashboard() -> None:
    import trainboard_ui.dashboard  # noqa: F401


def main() -> None:
    threading.Thread(target=_import_dashboard, name="trainboard-import", daemon=True).start()
    from streamlit.web import cli

    sys.argv = ["streamlit", *sys.argv[1:]]
    cli.main()


if __name__ == "__main__":
    main()
