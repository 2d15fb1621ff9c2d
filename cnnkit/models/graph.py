"""The layer graph of a functional model: which layer calls feed which, in running order."""
from __future__ import annotations

from typing import Any, Sequence

from ..layers.base import InputLayer, Layer, SymbolicTensor, _show, layer_class, serialize_layer


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


class Graph:
    """Nodes (layer calls) from ``inputs`` to ``outputs``, topologically sorted.

    Args:
        inputs: the symbolic tensors from :func:`~cnnkit.Input` the model is fed.
        outputs: symbolic tensors computed from them.
    """

    def __init__(self, inputs: Any, outputs: Any, who: str):
        self.inputs: list[SymbolicTensor] = _as_list(inputs)
        self.outputs: list[SymbolicTensor] = _as_list(outputs)
        self.single_input = not isinstance(inputs, (list, tuple))
        self.single_output = not isinstance(outputs, (list, tuple))
        for tensor in self.inputs + self.outputs:
            if not isinstance(tensor, SymbolicTensor):
                raise TypeError(f"{who}: inputs and outputs must be symbolic tensors made from Input(...), "
                                f"got {tensor!r}")
        for tensor in self.inputs:
            if not isinstance(tensor.node.layer, InputLayer):
                raise ValueError(f"{who}: every model input must come straight from Input(...); "
                                 f"{tensor!r} does not")
        self.nodes = self._sorted_nodes(who)
        self.layers: list[Layer] = []
        for node in self.nodes:
            if node.layer not in self.layers:
                self.layers.append(node.layer)
        names = [layer.name for layer in self.layers]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"{who}: layer names must be unique within a model; repeated: {', '.join(duplicates)}")

    def _sorted_nodes(self, who: str) -> list:
        order, done = [], set()
        input_ids = {id(t) for t in self.inputs}

        def visit(tensor: SymbolicTensor) -> None:
            node = tensor.node
            if id(node) in done:
                return
            if isinstance(node.layer, InputLayer) and id(tensor) not in input_ids:
                raise ValueError(f"{who}: the outputs depend on input '{node.layer.name}' "
                                 f"{_show(tensor.shape)}, which is not among the model's inputs")
            for parent in node.inputs:
                visit(parent)
            done.add(id(node))
            order.append(node)

        for tensor in self.inputs + self.outputs:
            visit(tensor)
        return order

    def run(self, inputs: Sequence, training: bool):
        """Compute the outputs from real input tensors, one node at a time."""
        values = {id(symbol): tensor for symbol, tensor in zip(self.inputs, inputs)}
        for node in self.nodes:
            if isinstance(node.layer, InputLayer):
                continue
            arguments = [values[id(t)] for t in node.inputs]
            argument = arguments if node.layer.multi_input else arguments[0]
            values[id(node.outputs[0])] = node.layer(argument, training=training)
        outputs = [values[id(t)] for t in self.outputs]
        return outputs[0] if self.single_output else outputs

    def get_config(self) -> dict:
        """Layers and wiring as plain data (each node refers to its input nodes by index)."""
        node_index = {id(node): i for i, node in enumerate(self.nodes)}
        return {
            "layers": [serialize_layer(layer) for layer in self.layers],
            "nodes": [{"layer": node.layer.name, "inputs": [node_index[id(t.node)] for t in node.inputs]}
                      for node in self.nodes],
            "inputs": [node_index[id(t.node)] for t in self.inputs],
            "outputs": [node_index[id(t.node)] for t in self.outputs],
            "single_input": self.single_input,
            "single_output": self.single_output,
        }

    @staticmethod
    def from_config(config: dict) -> tuple:
        """Rebuild layers and symbolic tensors; returns (inputs, outputs) for ``Model(inputs, outputs)``."""
        layers = {}
        for entry in config["layers"]:
            cls = layer_class(entry["class_name"])
            layer = cls.from_config(dict(entry["config"]))
            layers[layer.name] = layer
        tensors = []
        for node in config["nodes"]:
            layer = layers[node["layer"]]
            if isinstance(layer, InputLayer):
                tensors.append(layer.output)
                continue
            arguments = [tensors[i] for i in node["inputs"]]
            tensors.append(layer(arguments if layer.multi_input else arguments[0]))
        inputs = [tensors[i] for i in config["inputs"]]
        outputs = [tensors[i] for i in config["outputs"]]
        return (inputs[0] if config["single_input"] else inputs,
                outputs[0] if config["single_output"] else outputs)
