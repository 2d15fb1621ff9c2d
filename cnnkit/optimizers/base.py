"""The optimizer base: parameters, learning rate, gradient clipping, weight decay and state.

A subclass names its per-parameter slots (:meth:`Optimizer._slot_specs`) and turns one
step into ONE registry call over lists of arrays (:meth:`Optimizer._update`), so a fused
CUDA kernel registered under the same op name can replace the NumPy reference. Every
array is updated in place: the model, and CUDA graphs captured over it, hold the
parameter and slot arrays themselves.
"""
from __future__ import annotations

import abc
import math
import numbers
from typing import Any, Callable, Iterable, Union

import numpy as np

from .. import backend
from ..autograd import Parameter
from ..registry import impl
from . import schedules

LearningRate = Union[float, schedules.LearningRateSchedule, Callable[[int], float]]

_INTERVALS: dict[str, Callable[[float], bool]] = {
    "[0, 1)": lambda v: 0.0 <= v < 1.0,
    "[0, 1]": lambda v: 0.0 <= v <= 1.0,
    "[0, inf)": lambda v: v >= 0.0,
    "(0, inf)": lambda v: v > 0.0,
}


def check_float(owner: str, name: str, value: Any, interval: str) -> float:
    """``value`` as a Python float, or a clear error if it is not a finite number in ``interval``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise TypeError(f"{owner}: {name} must be a finite number in {interval}, got {value!r}")
    if not _INTERVALS[interval](value):
        raise ValueError(f"{owner}: {name} must be in {interval}, got {value!r}")
    return float(value)


def resolve_alias(owner: str, name: str, value: Any, default: Any, alias: str, alias_value: Any) -> Any:
    """Accept PyTorch's spelling (``lr``, ``eps``, ``betas``) for a Keras argument; both at once is an error."""
    if alias_value is None:
        return value
    if value != default and value != alias_value:
        raise TypeError(f"{owner}: got both {name}={value!r} and its alias {alias}={alias_value!r}; give one")
    return alias_value


def _check_learning_rate(owner: str, value: Any) -> Any:
    if callable(value):
        return value
    return check_float(owner, "learning_rate", value, "[0, inf)")


def _host_copy(array) -> np.ndarray:
    return array.copy() if isinstance(array, np.ndarray) else backend.to_numpy(array)


class Optimizer(abc.ABC):
    """Base class of every optimizer.

    Args:
        params: the :class:`~cnnkit.Parameter` objects to update (any iterable). May be
            omitted and given later to :meth:`build` or :meth:`step`, as when Keras'
            ``compile`` creates the optimizer before the model has weights.
        learning_rate: a non-negative float, or a schedule (a callable mapping the
            number of steps taken to a rate, see :mod:`cnnkit.optimizers.schedules`).
        clipvalue: clip every gradient element to [−clipvalue, clipvalue].
        clipnorm: rescale each parameter's gradient g to g · min(1, clipnorm / ‖g‖₂).
        global_clipnorm: rescale all gradients together by min(1, global_clipnorm / ‖(g₁, g₂, …)‖₂).
            Only one of ``clipnorm`` and ``global_clipnorm`` may be given; ``clipvalue``
            combines with either and is applied first.
        weight_decay: decoupled weight decay (Loshchilov & Hutter 2019): before each
            update, p ← p − lr · weight_decay · p. Not an L2 term in the gradient.
        name: a label for messages and configs; the lower-case class name by default.

    Clipping works on copies: ``p.grad`` is never modified.
    """

    def __init__(self, params: Iterable[Parameter] | None = None, learning_rate: LearningRate = 0.001, *,
                 clipvalue: float | None = None, clipnorm: float | None = None,
                 global_clipnorm: float | None = None, weight_decay: float | None = None, name: str | None = None):
        owner = type(self).__name__
        if isinstance(params, (numbers.Real, schedules.LearningRateSchedule)):
            raise TypeError(f"{owner}: the first argument is params (an iterable of Parameters), got {params!r}; "
                            f"pass the rate by keyword: {owner}(learning_rate={params!r})")
        if clipnorm is not None and global_clipnorm is not None:
            raise ValueError(f"{owner}: give clipnorm or global_clipnorm, not both "
                             f"(got clipnorm={clipnorm!r}, global_clipnorm={global_clipnorm!r})")
        self.learning_rate = learning_rate
        self.clipvalue = None if clipvalue is None else check_float(owner, "clipvalue", clipvalue, "(0, inf)")
        self.clipnorm = None if clipnorm is None else check_float(owner, "clipnorm", clipnorm, "(0, inf)")
        self.global_clipnorm = (None if global_clipnorm is None
                                else check_float(owner, "global_clipnorm", global_clipnorm, "(0, inf)"))
        self.weight_decay = (None if weight_decay is None
                             else check_float(owner, "weight_decay", weight_decay, "[0, inf)"))
        self.name = name or owner.lower()
        self.iterations = 0
        self._params: list[Parameter] | None = None
        self._slots: list[dict[str, Any]] = []
        if params is not None:
            self.build(params)

    # ------------------------------------------------------------ subclass interface
    def _slot_specs(self) -> dict[str, float]:
        """Slot name → initial fill value, for the slots these hyperparameters need."""
        return {}

    @abc.abstractmethod
    def _update(self, params: list, grads: list, slots: dict[str, list], lr: float) -> None:
        """Update ``params`` in place with ONE registry call.

        ``params`` and ``grads`` hold the arrays of the parameters updated this step,
        ``slots`` maps each name of :meth:`_slot_specs` to their slot arrays, in order.
        """

    def _hyperparameters(self) -> dict:
        """The subclass's own constructor arguments, for :meth:`get_config`."""
        return {}

    # ------------------------------------------------------------ parameters
    @property
    def params(self) -> tuple[Parameter, ...] | None:
        """The parameters this optimizer updates; None before :meth:`build`."""
        return None if self._params is None else tuple(self._params)

    @property
    def built(self) -> bool:
        return self._params is not None

    def build(self, params: Iterable[Parameter]) -> None:
        """Attach the parameters to update.

        Calling it again (or :meth:`step` with a parameter list) with the same
        parameters does nothing. With a different list, as when ``fit`` passes
        ``trainable_weights`` after a layer was frozen or unfrozen, parameters
        already known keep their slots, new ones start fresh, and the slots of
        those left out are dropped. Passing every weight, frozen ones included,
        keeps the state of frozen layers for when they are unfrozen.
        """
        params = list(params)
        if self._params is not None and len(params) == len(self._params) and all(
                a is b for a, b in zip(params, self._params)):
            return
        for index, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(f"{self.name}: params[{index}] must be a cnnkit.Parameter, got {type(p).__name__}")
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{self.name}: params lists a parameter more than once; it would be updated twice")
        known = {} if self._params is None else {id(p): slots for p, slots in zip(self._params, self._slots)}
        self._slots = [known.get(id(p), {}) for p in params]
        self._params = params

    def _require_params(self, params: Iterable[Parameter] | None, caller: str) -> list[Parameter]:
        if params is not None:
            self.build(params)
        if self._params is None:
            raise RuntimeError(f"{self.name}: {caller} has no parameters; pass them to the constructor, "
                               f"to build(params) or to {caller}(params)")
        return self._params

    def zero_grad(self, params: Iterable[Parameter] | None = None) -> None:
        """Set ``.grad`` of every parameter to None."""
        for p in self._require_params(params, "zero_grad"):
            p.grad = None

    # ------------------------------------------------------------ learning rate
    @property
    def learning_rate(self) -> float:
        """The rate of the next step: the float, or the schedule evaluated at :attr:`iterations`.

        Assigning a float (as ReduceLROnPlateau does) replaces a schedule.
        """
        if callable(self._learning_rate):
            return float(self._learning_rate(self.iterations))
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: LearningRate) -> None:
        self._learning_rate = _check_learning_rate(type(self).__name__, value)

    # ------------------------------------------------------------ the update
    def step(self, params: Iterable[Parameter] | None = None, apply_if: Any = None) -> None:
        """Update every trainable parameter that has a gradient, in place; then count the step.

        Args:
            params: the parameters; builds the optimizer the first time (see :meth:`build`
                for a list that differs from the last one).
            apply_if: a boolean on the parameters' device (a 0-d array), or None. When
                given, the parameters and slots keep their new values only where it is
                True, decided on the device without a host read: ``fit`` gates each step
                on its checks (a finite loss) this way on a GPU, as PyTorch AMP skips a step
                with ``found_inf``. It costs one copy of the parameters and slots.
        """
        params = self._require_params(params, "step")
        active = [i for i, p in enumerate(params) if p.trainable and p.grad is not None]
        if active:
            grads = []
            for i in active:
                g = params[i].grad.data
                if g.shape != params[i].shape:
                    raise ValueError(f"{self.name}: the gradient of parameter {i} ({params[i].name!r}) has shape "
                                     f"{g.shape}, but the parameter has shape {params[i].shape}")
                grads.append(g)
            slot_lists: dict[str, list] = {name: [] for name in self._slot_specs()}
            for i in active:
                for name, array in self._slots_of(i).items():
                    slot_lists[name].append(array)
            arrays = [params[i].data for i in active]
            before = None if apply_if is None else [a.copy() for a in arrays + _flat(slot_lists)]
            self._update(arrays, self._clip(grads), slot_lists, self.learning_rate)
            if before is not None:
                _undo_unless(apply_if, arrays + _flat(slot_lists), before)
            for i in active:
                params[i].mark_modified()
        self.iterations += 1

    def _slots_of(self, index: int) -> dict[str, Any]:
        """The slots of parameter ``index``, created on its device with its dtype on first use.

        Slots follow a parameter that was moved since (``layer.to(...)`` on one layer
        moves its weights but cannot reach the optimizer).
        """
        slots = self._slots[index]
        data = self._params[index].data
        device = backend.device_of(data)
        if not slots:
            xp = backend.get_array_module(data)
            with device.activate():
                for name, initial in self._slot_specs().items():
                    slots[name] = xp.full_like(data, initial)
        for name, array in slots.items():
            if backend.device_of(array) != device:
                slots[name] = backend.to_device(array, device)
        return slots

    def _clip(self, grads: list) -> list:
        """Clipped copies of ``grads`` (the originals are left alone); no host synchronisation."""
        if self.clipvalue is not None:
            grads = [backend.get_array_module(g).clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        if self.clipnorm is not None:
            grads = [g * _shrink_factor(_squared_norm(g), self.clipnorm) for g in grads]
        if self.global_clipnorm is not None:
            factor = _shrink_factor(sum(_squared_norm(g) for g in grads), self.global_clipnorm)
            grads = [g * factor for g in grads]
        return grads

    def _launch(self, op: str, params: list, *arrays: Any, **scalars: Any) -> None:
        """Run ``op`` once over all parameters (a fused multi-tensor kernel on the GPU)."""
        impl(op, params, *arrays, **scalars)

    @property
    def _decay(self) -> float:
        return self.weight_decay or 0.0

    def to(self, device: "str | backend.Device") -> "Optimizer":
        """Move the slots to ``device``, after the parameters were moved there (``Model.to`` does both)."""
        device = backend.as_device(device)
        for slots in self._slots:
            for name, array in slots.items():
                slots[name] = backend.to_device(array, device)
        return self

    # ------------------------------------------------------------ config and state
    def get_config(self) -> dict:
        """The hyperparameters as JSON-able data; a schedule as ``{"class_name", "config"}``."""
        rate = self._learning_rate
        config = {
            "name": self.name,
            "learning_rate": schedules.serialize(rate) if callable(rate) else rate,
            "clipvalue": self.clipvalue,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "weight_decay": self.weight_decay,
        }
        config.update(self._hyperparameters())
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Optimizer":
        """A new, unbuilt optimizer from :meth:`get_config`'s output."""
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)

    def state_dict(self) -> dict:
        """Everything needed to resume training, as plain data (NumPy arrays on the host).

        Returns:
            ``{"class", "config", "iterations", "slots"}``, ``slots`` holding one
            ``{slot_name: ndarray}`` per parameter in params order (empty for a
            parameter that was never updated, such as a frozen one).
        """
        return {
            "class": type(self).__name__,
            "config": self.get_config(),
            "iterations": self.iterations,
            "slots": [{name: _host_copy(array) for name, array in slots.items()} for slots in self._slots],
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output onto the parameters' devices.

        Restores the slots, :attr:`iterations` and the learning rate (or schedule),
        which callbacks may have changed during training. The other hyperparameters
        stay the constructor's; rebuild with :meth:`from_config` to restore those too.
        Existing slot arrays are overwritten in place.

        Raises:
            ValueError: the state is another optimizer's, or its slots do not match
                the parameters in number, names or shapes (nothing is changed then).
        """
        params = self._require_params(None, "load_state_dict")
        owner = type(self).__name__
        if state.get("class") != owner:
            raise ValueError(f"{self.name}: cannot load the state of a {state.get('class')!r} into a {owner}")
        saved = state["slots"]
        if len(saved) != len(params):
            raise ValueError(f"{self.name}: the state holds slots for {len(saved)} parameters, "
                             f"but this optimizer has {len(params)}")
        expected = set(self._slot_specs())
        for index, (p, slots) in enumerate(zip(params, saved)):
            if slots and set(slots) != expected:
                raise ValueError(f"{self.name}: parameter {index} ({p.name!r}) has slots {sorted(slots)} in the state, "
                                 f"but this optimizer's settings use {sorted(expected)}")
            for slot_name, array in slots.items():
                if tuple(array.shape) != p.shape:
                    raise ValueError(f"{self.name}: slot {slot_name!r} of parameter {index} ({p.name!r}) has shape "
                                     f"{tuple(array.shape)} in the state, but the parameter has shape {p.shape}")
        for index, (p, slots) in enumerate(zip(params, saved)):
            current = self._slots[index]
            if not slots:
                current.clear()
                continue
            device = backend.device_of(p.data)
            for slot_name, array in slots.items():
                # A copy, so that the optimizer never shares memory with the state it was given.
                array = backend.to_device(np.array(array, dtype=p.dtype), device)
                if slot_name in current:
                    current[slot_name][...] = array
                else:
                    current[slot_name] = array
        self.iterations = int(state["iterations"])
        rate = state["config"]["learning_rate"]
        self.learning_rate = schedules.deserialize(rate) if isinstance(rate, dict) else rate

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items()
                              if value is not None and key != "name")
        return f"{type(self).__name__}({arguments})"


def _flat(slot_lists: dict[str, list]) -> list:
    return [array for arrays in slot_lists.values() for array in arrays if array is not None]


def _undo_unless(apply_if: Any, arrays: list, before: list) -> None:
    """Put the values of ``before`` back into ``arrays`` unless ``apply_if`` holds; no host read."""
    xp = backend.get_array_module(arrays[0])
    rejected = xp.logical_not(apply_if)
    for array, saved in zip(arrays, before):
        xp.copyto(array, saved, where=rejected)


def _squared_norm(g):
    xp = backend.get_array_module(g)
    return xp.sum(xp.square(g))


def _shrink_factor(squared_norm, limit: float):
    """limit / max(‖g‖, limit): 1 when the norm is within the limit; stays on the device."""
    xp = backend.get_array_module(squared_norm)
    return limit / xp.maximum(xp.sqrt(squared_norm), limit)
