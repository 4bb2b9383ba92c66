"""Model graphs: one JSON node list per run, replaced when set again."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select

from trainboard.types import GraphNode
from trainboard_server.storage.dialect import upsert
from trainboard_server.storage.models import graphs


def store_graph(
    connection: Connection, run_id: int, nodes: Sequence[GraphNode], now: float
) -> None:
    connection.execute(
        upsert(connection.dialect.name, graphs, ("run_id",)),
        {
            "run_id": run_id,
            "node_count": len(nodes),
            "nodes": json.dumps([_node_to_json(n) for n in nodes], ensure_ascii=False),
            "updated_at": now,
        },
    )


def load_graph(connection: Connection, run_id: int) -> list[GraphNode] | None:
    text = connection.execute(
        select(graphs.c.nodes).where(graphs.c.run_id == run_id)
    ).scalar_one_or_none()
    if text is None:
        return None
    return [_node_from_json(item) for item in json.loads(text)]


def _node_to_json(node: GraphNode) -> dict[str, Any]:
    return {
        "name": node.name,
        "op": node.op,
        "inputs": list(node.inputs),
        "shape": None if node.shape is None else list(node.shape),
        "dtype": node.dtype,
        "attributes": dict(node.attributes),
    }


def _node_from_json(item: dict[str, Any]) -> GraphNode:
    shape = item["shape"]
    return GraphNode(
        name=item["name"],
        op=item["op"],
        inputs=tuple(item["inputs"]),
        shape=None if shape is None else tuple(shape),
        dtype=item["dtype"],
        attributes=dict(item["attributes"]),
    )
