"""A torch.fx tracer for one known input: leaf modules stay single calls, checks run concretely.

:mod:`cnnkit.inspect.tracing` walks the graph it records; :mod:`cnnkit.inspect.measured_field`
runs it to catch the output of a functional call.
"""
from __future__ import annotations

import torch
import torch.fx as fx
from torch import nn

from cnnkit.layers.base import Layer

__all__ = ["LeafTracer", "graph_module"]


# fx's own context manager that lifts its Module.__call__/__getattr__ patches during a trace
_revert_patches = getattr(fx._symbolic_trace, "_maybe_revert_all_patches", None)


class LeafTracer(fx.Tracer):
    """fx tracer for one known input: leaf modules stay single calls, checks run concretely.

    Every module without children (and torch.nn's own) is one call. Python control flow on a
    traced value (an input check such as ``if x.ndim != 4`` or ``tuple(x.shape[2:])``) is
    decided by running the graph built so far on ``example``: the trace is specialised to
    that input, which is all a summary of that input needs.
    """

    def __init__(self, example: torch.Tensor):
        super().__init__()
        self.example = example

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        # cnnkit layers are leaves even when they hold a child activation (Conv(activation=...)),
        # so the summary shows one 'Conv' row rather than the functional calls inside it.
        return (super().is_leaf_module(m, module_qualified_name) or isinstance(m, Layer)
                or next(m.children(), None) is None)

    def _evaluate(self, proxy: fx.Proxy):
        if _revert_patches is None:  # a torch without the helper: refuse as fx does
            raise fx.proxy.TraceError(f"control flow on the traced value {proxy.node.name!r}")
        graph = fx.Graph()
        copies: dict = {}
        graph.graph_copy(self.graph, copies)
        graph.output(copies[proxy.node])
        with _revert_patches():  # run real modules, not the tracer's patched __call__
            return graph_module(self.root, graph)(self.example)

    def call_module(self, m: nn.Module, forward, args, kwargs):
        try:
            self.path_of_module(m)
        except NameError:  # a container made on the fly, e.g. ``self.classifier[:-1]``
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _ConcreteProxy(node, self)

    def to_bool(self, obj: fx.Proxy) -> bool:
        return bool(self._evaluate(obj))

    def iter(self, obj: fx.Proxy):
        value = self._evaluate(obj)
        if isinstance(value, torch.Tensor) or any(isinstance(v, torch.Tensor) for v in value):
            return super().iter(obj)  # iterating tensors must stay symbolic: fx refuses
        return iter(value)


class _ConcreteProxy(fx.Proxy):
    """fx Proxy whose ``len()`` is taken from the example input (fx refuses it otherwise)."""

    def __len__(self) -> int:
        return len(self.tracer._evaluate(self))


def graph_module(model: nn.Module, graph: fx.Graph) -> fx.GraphModule:
    """GraphModule over ``model``'s own modules and tensors, looked up by qualified name.

    (By name rather than ``getattr``: a model may hide a sub-module behind a method of the same
    name, as zoo models do with ``features``.)
    """
    named = {**dict(model.named_modules()), **dict(model.named_parameters()),
             **dict(model.named_buffers())}
    targets = {n.target for n in graph.nodes if n.op in ("call_module", "get_attr")}
    return fx.GraphModule({t: named[t] for t in targets if t in named}, graph)
