"""Trainboard's dashboard: ``streamlit run ui/trainboard_ui/app.py -- --server HOST:PORT``.

The server address comes from ``--server``, else the ``TRAINBOARD_SERVER``
environment variable, else ``127.0.0.1:6009``. Everything else lives in
:mod:`trainboard_ui.dashboard`.
"""

from __future__ import annotations

import argparse
import os
import sys

import streamlit as st

from trainboard.defaults import DEFAULT_SERVER
from trainboard_ui.dashboard import main


def server_address(argv: list[str]) -> str:
    parser = argparse.ArgumentParser(prog="trainboard-ui", add_help=False, allow_abbrev=False)
    parser.add_argument("--server", default=None)
    # Streamlit hands the script whatever follows "--"; ignore anything else.
    args, _ = parser.parse_known_args(argv)
    return str(args.server or os.environ.get("TRAINBOARD_SERVER") or DEFAULT_SERVER)


st.set_page_config(page_title="Trainboard", page_icon=":material/monitoring:", layout="wide")
main(server_address(sys.argv[1:]))
