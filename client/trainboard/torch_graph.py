"""Capturing the graph of a ``torch.nn.Module`` as a node list (docs/design.md).

A pure payload builder: ``capture(module, example_input)`` traces the module with
``torch.fx`` symbolic tracing, runs it once on the example input to learn every
output's shape and dtype, and returns ``GraphNode``s:

- each forward argument becomes an ``Input`` node named after the argument;
- each call of a leaf module (``Linear``, ``Conv2d``, ``BatchNorm2d``, ...) becomes
  one node named by the module's qualified name with ``/`` for ``.``
  (``encoder.layer1.linear`` -> ``encoder/layer1/linear``), op the class name,
  and the module's key hyper-parameters as attributes; its parameters and buffers
  become nodes of their own under it (``encoder/layer1/linear/weight``, op
  ``Parameter`` or ``Buffer``) that are inputs of the call;
- each function or method call (``add``, ``relu``, ``flatten``, ``cat``, ...) is
  named by its op inside the scope of the module whose ``forward`` made it
  (``encoder/layer1/add``), or at the top level; its plain (non-tensor)
  arguments become attributes (``arg1``, ``dim``, ...);
- a tensor the forward reads off a module directly becomes a ``Parameter``,
  ``Buffer`` or ``Constant`` node named by its qualified name;
- what the forward returns is the ``output`` node.

A name already taken gets ``_1``, ``_2``, ... (a second ``relu`` in one scope, a
module called twice). Nodes come in execution order, so every input precedes its
users. torch is
imported only when ``capture`` runs: this module imports without it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from trainboard.errors import InvalidArgument
from trainboard.types import GraphNode
from trainboard.validation import MAX_GRAPH_NODES

if TYPE_CHECKING:
    import torch
    from torch import fx

# Hyper-parameters shown as attributes when a leaf module has them (and they are
# plain values): enough to tell one Linear, Conv2d or BatchNorm2d from another.
KEY_ATTRIBUTES: tuple[str, ...] = (
    "in_features",
    "out_features",
    "in_channels",
    "out_channels",
    "kernel_size",
    "stride",
    "padding",
    "dilation",
    "groups",
    "padding_mode",
    "output_padding",
    "num_features",
    "normalized_shape",
    "num_groups",
    "num_channels",
    "eps",
    "momentum",
    "affine",
    "track_running_stats",
    "elementwise_affine",
    "num_embeddings",
    "embedding_dim",
    "padding_idx",
    "input_size",
    "hidden_size",
    "num_layers",
    "bidirectional",
    "batch_first",
    "embed_dim",
    "num_heads",
    "dropout",
    "p",
    "inplace",
    "negative_slope",
    "alpha",
    "beta",
    "threshold",
    "dim",
    "start_dim",
    "end_dim",
    "output_size",
    "scale_factor",
    "mode",
    "ceil_mode",
    "count_include_pad",
    "return_indices",
    "approximate",
)
_MAX_ATTRIBUTE_LENGTH = 200


def capture(module: torch.nn.Module, example_input: Any) -> list[GraphNode]:
    """The graph of ``module`` run on ``example_input``, as ``GraphNode``s.

    ``example_input`` is the forward's one argument (a tensor), or a tuple or
    list of its positional arguments. The module runs once on it, under
    ``torch.no_grad()`` and in eval mode, so running statistics (batch norm) and
    autograd state are left as they were; each submodule's training flag is
    restored afterwards. The result passes ``trainboard.graph.validate_graph``.

    Raises ``TypeError`` when ``module`` is not a ``torch.nn.Module``, and
    ``InvalidArgument("cannot capture the graph of <ClassName>: <why>")`` when the
    module cannot be traced symbolically (data-dependent control flow, calls
    tracing cannot follow), when running it on the example input fails, or when
    the graph would exceed the node limit. ``ImportError`` when torch is missing.
    """
    try:
        import torch
        from torch import fx
    except ImportError as exc:  # pragma: no cover - the tests need torch
        raise ImportError(
            "capturing a torch graph needs torch: pip install 'trainboard[torch]'"
        ) from exc
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    args = tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)
    what = type(module).__name__

    try:
        traced = fx.symbolic_trace(module)
    except Exception as exc:  # tracing raises whatever the forward raises on proxies
        raise InvalidArgument(
            f"cannot capture the graph of {what}: symbolic tracing failed "
            f"({_reason(exc)}); data-dependent control flow and calls on tensor "
            f"values cannot be traced"
        ) from exc
    training = [(m, m.training) for m in module.modules()]
    failed: list[fx.Node] = []
    try:
        module.eval()
        with torch.no_grad():
            outputs = _run(traced, args, failed)
    except Exception as exc:  # whatever the user's forward raises on these inputs
        where = f" at {_fx_path(failed[-1])}" if failed else ""
        raise InvalidArgument(
            f"cannot capture the graph of {what}: running it on the example input "
            f"failed{where} ({_reason(exc)})"
        ) from exc
    finally:
        for m, flag in training:
            m.training = flag

    nodes = _Builder(traced, outputs).build()
    if len(nodes) > MAX_GRAPH_NODES:
        raise InvalidArgument(
            f"cannot capture the graph of {what}: it has {len(nodes)} nodes; "
            f"at most {MAX_GRAPH_NODES} are stored"
        )
    return nodes


_Meta = tuple[tuple[int, ...] | None, str, dict[str, str]]


def _run(
    traced: fx.GraphModule, args: tuple[Any, ...], failed: list[fx.Node]
) -> dict[fx.Node, _Meta]:
    """Runs ``traced`` on ``args`` and returns each node's output shape and dtype.

    Like ``torch.fx.passes.shape_prop.ShapeProp``, without printing tracebacks
    of the user's errors; the node that raised is appended to ``failed``.
    """
    from torch import fx

    outputs: dict[fx.Node, _Meta] = {}

    class Recorder(fx.Interpreter):
        def run_node(self, n: fx.Node) -> Any:
            try:
                result = super().run_node(n)
            except Exception:
                failed.append(n)
                raise
            outputs[n] = _output_meta(result)
            return result

    Recorder(traced).run(*args)
    return outputs


def _fx_path(node: fx.Node) -> str:
    return str(node.target).replace(".", "/") if node.op == "call_module" else node.name


def _reason(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class _Builder:
    """Turns one traced and shape-propagated ``GraphModule`` into nodes."""

    def __init__(self, traced: fx.GraphModule, outputs: Mapping[fx.Node, _Meta]) -> None:
        self._traced = traced
        self._outputs = outputs
        self._nodes: list[GraphNode] = []
        self._used: set[str] = set()
        self._suffixes: dict[str, int] = {}  # name -> last suffix given to a copy of it
        # Leaf-module paths keep their plain name: a function or tensor node that
        # wants one of them gets a suffix instead.
        self._reserved = {
            str(node.target).replace(".", "/")
            for node in traced.graph.nodes
            if node.op == "call_module"
        }
        self._names: dict[fx.Node, str] = {}  # fx node -> our node name
        self._tensors: dict[str, str] = {}  # qualified tensor name -> our node name

    def build(self) -> list[GraphNode]:
        for node in self._traced.graph.nodes:
            if node.op == "placeholder":
                self._add(node, str(node.target).lstrip("*"), "Input", ())
            elif node.op == "get_attr":
                self._names[node] = self._tensor(str(node.target))
            elif node.op == "call_module":
                self._call_module(node)
            elif node.op in ("call_function", "call_method"):
                # Named by op within the scope (encoder/1/add), not by fx's
                # graph-wide name (add_7): names stay put when other blocks change.
                op = _op_name(node)
                scope = _scope_of(node)
                name = f"{scope}/{op}" if scope else op
                self._add(node, name, op, self._inputs(node), _arguments(node))
            elif node.op == "output":
                self._add(node, "output", "Output", self._inputs(node))
        return self._nodes

    def _call_module(self, node: fx.Node) -> None:
        target = str(node.target)
        submodule = self._traced.get_submodule(target)
        parameters = [
            self._tensor(f"{target}.{name}")
            for name, _ in [
                *submodule.named_parameters(recurse=False),
                *submodule.named_buffers(recurse=False),
            ]
        ]
        self._add(
            node,
            target.replace(".", "/"),
            type(submodule).__name__,
            (*self._inputs(node), *parameters),
            {**_module_attributes(submodule), **_arguments(node)},
            claim=True,
        )

    def _tensor(self, qualified: str) -> str:
        """The node of a parameter, buffer or constant tensor, added on first use."""
        if qualified in self._tensors:
            return self._tensors[qualified]
        import torch

        *path, leaf = qualified.split(".")
        owner: Any = self._traced
        for part in path:
            owner = getattr(owner, part)
        value = getattr(owner, leaf)
        if isinstance(value, torch.nn.Parameter):
            op = "Parameter"
        elif isinstance(owner, torch.nn.Module) and leaf in dict(
            owner.named_buffers(recurse=False)
        ):
            op = "Buffer"
        else:
            op = "Constant"
        shape, dtype = (
            (tuple(int(d) for d in value.shape), _dtype_name(value.dtype))
            if isinstance(value, torch.Tensor)
            else (None, "")
        )
        attributes = {"requires_grad": str(value.requires_grad)} if op == "Parameter" else {}
        name = self._unique(qualified.replace(".", "/"))
        self._nodes.append(GraphNode(name, op, (), shape, dtype, attributes))
        self._tensors[qualified] = name
        return name

    def _inputs(self, node: fx.Node) -> tuple[str, ...]:
        return tuple(self._names[n] for n in _flat_nodes((node.args, node.kwargs)))

    def _add(
        self,
        node: fx.Node,
        name: str,
        op: str,
        inputs: tuple[str, ...],
        attributes: Mapping[str, str] | None = None,
        *,
        claim: bool = False,
    ) -> None:
        name = self._unique(name, claim=claim)
        shape, dtype, more = self._outputs.get(node, (None, "", {}))
        self._names[node] = name
        self._nodes.append(
            GraphNode(name, op, inputs, shape, dtype, {**(attributes or {}), **more})
        )

    def _unique(self, name: str, *, claim: bool = False) -> str:
        """``name``, or ``name_1``, ``name_2``, ... when it is taken (a second
        ``relu`` in one scope, a module called twice) or reserved for a module
        (unless ``claim``, which the module's own first call passes)."""
        candidate = name
        suffix = self._suffixes.get(name, 0)
        while candidate in self._used or (candidate in self._reserved and not claim):
            claim = False  # a suffixed name must not take another module's path
            suffix += 1
            candidate = f"{name}_{suffix}"
        self._suffixes[name] = suffix
        self._used.add(candidate)
        return candidate


def _scope_of(node: fx.Node) -> str:
    """The ``/`` path of the module whose forward made this call, or ``""``."""
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return ""
    entry = list(stack.values())[-1]
    path = entry[0] if isinstance(entry, tuple) else entry
    return str(path).replace(".", "/") if isinstance(path, str) else ""


def _op_name(node: fx.Node) -> str:
    if node.op == "call_method":
        return str(node.target)
    # operator.add, torch.flatten and F.relu all carry their plain name.
    return str(getattr(node.target, "__name__", node.target))


def _flat_nodes(value: Any) -> Iterator[fx.Node]:
    """The fx nodes inside nested args and kwargs, in order."""
    from torch import fx

    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, fx.Node):
            yield item
        elif isinstance(item, (tuple, list)):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))


def _arguments(node: fx.Node) -> dict[str, str]:
    """Plain (non-tensor) arguments of a call, as attributes: ``arg1``, ``dim``, ..."""

    def plain(value: Any) -> bool:
        return next(_flat_nodes(value), None) is None

    attributes = {f"arg{i}": _text(value) for i, value in enumerate(node.args) if plain(value)}
    attributes.update({str(k): _text(v) for k, v in node.kwargs.items() if plain(v)})
    return attributes


def _module_attributes(module: torch.nn.Module) -> dict[str, str]:
    """The module's ``KEY_ATTRIBUTES`` that are plain values, and whether it has
    a bias. Hyper-parameters live in the instance ``__dict__``; reading it there
    skips ``Module.__getattr__``, slow on a miss."""
    own = vars(module)
    attributes = {key: _text(own[key]) for key in KEY_ATTRIBUTES if _is_plain(own.get(key))}
    if "bias" in module._parameters:  # Linear(bias=False) registers bias as None
        attributes["bias"] = str(module._parameters["bias"] is not None)
    return attributes


def _is_plain(value: Any) -> bool:
    if isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (tuple, list)):
        return all(_is_plain(v) for v in value)
    return False


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    if len(text) > _MAX_ATTRIBUTE_LENGTH:
        text = text[: _MAX_ATTRIBUTE_LENGTH - 3] + "..."
    return text


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def _output_meta(value: Any) -> _Meta:
    """Shape, dtype and extra attributes of what a node returned.

    A call returning several tensors has no one shape: their shapes go into the
    ``output_shapes`` attribute instead. A call returning no tensor (``size``)
    has neither.
    """
    import torch

    if isinstance(value, torch.Tensor):
        return tuple(int(d) for d in value.shape), _dtype_name(value.dtype), {}
    if isinstance(value, (tuple, list)):
        shapes = [list(v.shape) for v in value if isinstance(v, torch.Tensor)]
        if shapes:
            return None, "", {"output_shapes": _text(shapes)}
    return None, "", {}
