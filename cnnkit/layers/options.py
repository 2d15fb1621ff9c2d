"""What Dense and the convolution layers share: an activation, an optional bias, and an
initializer and a regularizer per weight, stored and serialised in one place."""
from __future__ import annotations

from typing import Any

from .. import activations, initializers, regularizers


class WeightOptions:
    """Mixin storing ``activation``, ``use_bias`` and ``<weight>_initializer`` / ``<weight>_regularizer``.

    The attribute names are those of the layer's constructor arguments, so
    ``get_config`` can hand them back unchanged.
    """

    def _set_weight_options(self, activation: Any, use_bias: bool, initializer_args: dict,
                            regularizer_args: dict) -> None:
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self._option_weights = (tuple(initializer_args), tuple(regularizer_args))
        for weight, initializer in initializer_args.items():
            setattr(self, f"{weight}_initializer", initializers.get(initializer))
        for weight, regularizer in regularizer_args.items():
            setattr(self, f"{weight}_regularizer", regularizers.get(regularizer))

    def _weight_options_config(self) -> dict:
        with_initializer, with_regularizer = self._option_weights
        config = {"activation": activations.serialize(self.activation), "use_bias": self.use_bias}
        for weight in with_initializer:
            config[f"{weight}_initializer"] = initializers.serialize(getattr(self, f"{weight}_initializer"))
        for weight in with_regularizer:
            config[f"{weight}_regularizer"] = regularizers.serialize(getattr(self, f"{weight}_regularizer"))
        return config
