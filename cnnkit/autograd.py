"""Tensors that remember how they were made, and the reverse pass over that record.

A :class:`Function` turns input arrays into output arrays in ``forward`` and output
gradients into input gradients in ``backward``; calling it on tensors records it as
the ``creator`` of its outputs. :meth:`Tensor.backward` walks those records in
reverse topological order (by ``generation``, as in DeZero), so every function runs
once, after all the gradients of its outputs are summed.

Gradients are raw arrays inside the walk and are never modified in place (two
inputs may share one gradient array); a leaf tensor exposes the sum of what reached
it as ``tensor.grad``, itself a tensor that does not require grad.
"""
from __future__ import annotations

import heapq
import weakref
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

from . import backend

_grad_enabled = True


def is_grad_enabled() -> bool:
    return _grad_enabled


@contextmanager
def _grad_mode(enabled: bool) -> Iterator[None]:
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, enabled
    try:
        yield
    finally:
        _grad_enabled = previous


def no_grad():
    """Context manager (and decorator) under which no graph is recorded: for inference."""
    return _grad_mode(False)


def enable_grad():
    """Re-enable graph recording inside a :func:`no_grad` block."""
    return _grad_mode(True)


def _as_array(data: Any, dtype: Any = None, device: Any = None):
    """Turn user data into a NumPy/CuPy array with cnnkit's dtype rules.

    Arrays keep their dtype unless ``dtype`` is given; Python floats and lists of
    them become the default float dtype (float32), as in PyTorch.
    """
    if isinstance(data, Tensor):
        data = data.data
    elif isinstance(data, np.generic):  # a NumPy scalar, e.g. from a full reduction: keep its dtype
        data = np.asarray(data)
    if not (isinstance(data, np.ndarray) or backend.is_cuda_array(data)):
        data = np.asarray(data)
        if dtype is None and data.dtype == np.float64:
            dtype = backend.get_default_dtype()
    if dtype is not None and data.dtype != np.dtype(dtype):
        data = data.astype(dtype)
    if device is not None:
        data = backend.to_device(data, device)
    return data


class Tensor:
    """An n-dimensional array on a device, with an optional gradient.

    Args:
        data: array-like, NumPy array or CuPy array. Arrays keep their dtype;
            Python floats become float32 (the default dtype).
        requires_grad: record operations on this tensor so that ``backward`` can
            fill ``.grad``. Only floating-point tensors can require grad.
        dtype: convert the data to this dtype.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a :class:`~cnnkit.Device`;
            by default the data stays where it is (host data stays on the CPU).
        name: an optional label, shown in ``repr`` and in error messages.
    """

    __slots__ = ("data", "grad", "requires_grad", "creator", "generation", "name", "retains_grad", "version",
                 "__weakref__")
    # Make `ndarray <op> Tensor` call the Tensor's reflected operator.
    __array_ufunc__ = None

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None, device: Any = None,
                 name: str | None = None):
        self.data = _as_array(data, dtype, device)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(
                f"only floating-point tensors can require grad; got dtype {self.data.dtype}"
                f"{f' for {name!r}' if name else ''} (cast with .astype('float32'))"
            )
        self.requires_grad = requires_grad
        self.grad: Tensor | None = None
        self.creator: Function | None = None
        self.generation = 0
        self.name = name
        self.retains_grad = False
        self.version = 0  # bumped by in-place updates (optimizer steps), so backward can tell stale graphs

    def mark_modified(self) -> None:
        """Record that ``data`` was changed in place: graphs that used the old values can no longer backward."""
        self.version += 1

    # ------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def device(self) -> backend.Device:
        return backend.device_of(self.data)

    @property
    def xp(self):
        """The array module of the data: ``numpy`` or ``cupy``."""
        return backend.get_array_module(self.data)

    @property
    def is_leaf(self) -> bool:
        return self.creator is None

    @property
    def T(self) -> "Tensor":
        return self.transpose()

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        body = np.array2string(backend.to_numpy(self.data), precision=4, threshold=20, prefix="Tensor(")
        extras = [f"dtype={self.dtype}"]
        if self.device.is_cuda:
            extras.append(f"device='{self.device}'")
        if self.requires_grad:
            extras.append("requires_grad=True")
        if self.name:
            extras.append(f"name={self.name!r}")
        return f"Tensor({body}, {', '.join(extras)})"

    # ------------------------------------------------------------ conversion
    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (copied to the host from a GPU)."""
        return backend.to_numpy(self.data)

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number."""
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    def __float__(self) -> float:
        return float(self.item())

    def detach(self) -> "Tensor":
        """The same data, cut from the graph (shares memory; requires_grad=False)."""
        return Tensor(self.data)

    def to(self, device: Any) -> "Tensor":
        """This tensor on ``device``; differentiable, so gradients flow back across devices."""
        device = backend.as_device(device)
        if self.device == device:
            return self
        return _ops.to_device(self, device)

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self, index: int = 0) -> "Tensor":
        return self.to(f"cuda:{index}")

    def astype(self, dtype: Any) -> "Tensor":
        """Differentiable dtype conversion."""
        if np.dtype(dtype) == self.dtype:
            return self
        return _ops.cast(self, dtype)

    def retain_grad(self) -> "Tensor":
        """Keep ``.grad`` on this non-leaf tensor after ``backward`` (for saliency, Grad-CAM)."""
        self.retains_grad = True
        return self

    def zero_grad(self) -> None:
        self.grad = None

    def register_post_accumulate_grad_hook(self, hook) -> "HookHandle":
        """Call ``hook(tensor)`` once per backward pass, when this leaf's ``.grad`` is complete.

        As PyTorch's hook of the same name: data-parallel training uses it to start
        reducing a parameter's gradient while backward still runs for earlier layers.
        Returns a handle whose ``remove()`` unregisters the hook.
        """
        if self.creator is not None:
            raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors (parameters) accumulate "
                               "gradients; this tensor is the result of an operation")
        if id(self) not in _post_accumulate_hooks:
            # Ids are reused after a tensor dies: its hooks must go with it.
            weakref.finalize(self, _post_accumulate_hooks.pop, id(self), None)
        _post_accumulate_hooks.setdefault(id(self), []).append(hook)
        return HookHandle(self, hook)

    # ------------------------------------------------------------ backward
    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into the ``.grad`` of every leaf that requires grad.

        As in PyTorch, the graph is freed as the pass goes: each function drops the values
        it saved for its backward, so their memory is returned at once and a second
        ``backward()`` through the same graph raises instead of silently adding the
        gradients again. Pass ``retain_graph=True`` to go through the graph more than once
        (the gradients then accumulate in ``.grad``, as they do for a new forward pass).

        Args:
            grad: the gradient flowing into this tensor; may be omitted for a
                one-element tensor (a loss), where it is 1.
            retain_graph: keep the graph for another backward.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() was called on a tensor that does not require grad "
                               "(no input of the computation has requires_grad=True, or it ran under no_grad())")
        if grad is None:
            if self.size != 1:
                raise RuntimeError(f"backward() without a gradient needs a one-element tensor, got shape {self.shape}; "
                                   f"pass grad= of the same shape")
            grad = self.xp.ones_like(self.data)
        else:
            grad = _as_array(grad, self.dtype, self.device)  # host data follows a GPU tensor to its device
            if grad.shape != self.shape:
                raise ValueError(f"backward(grad=...) must have the tensor's shape {self.shape}, got {grad.shape}")
        if self.creator is None:
            self._accumulate_grad(grad)
            _run_post_accumulate_hooks(self)
            return
        if self.retains_grad:
            self._accumulate_grad(grad)
        _run_backward(self, grad, retain_graph)

    def _accumulate_grad(self, grad) -> None:
        if self.grad is None:
            # A backward may hand the same array to several inputs (Add does); each leaf owns its copy
            # so that an optimizer updating one gradient in place never changes another.
            self.grad = Tensor(grad.copy())
        else:
            self.grad = Tensor(self.grad.data + grad)

    # ------------------------------------------------------------ operators
    def __add__(self, other):
        return _ops.add(self, other)

    def __radd__(self, other):
        return _ops.add(other, self)

    def __sub__(self, other):
        return _ops.sub(self, other)

    def __rsub__(self, other):
        return _ops.sub(other, self)

    def __mul__(self, other):
        return _ops.mul(self, other)

    def __rmul__(self, other):
        return _ops.mul(other, self)

    def __truediv__(self, other):
        return _ops.div(self, other)

    def __rtruediv__(self, other):
        return _ops.div(other, self)

    def __neg__(self):
        return _ops.neg(self)

    def __pow__(self, exponent):
        return _ops.power(self, exponent)

    def __matmul__(self, other):
        return _ops.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.matmul(other, self)

    def __getitem__(self, index):
        return _ops.get_item(self, index)

    # ------------------------------------------------------------ methods
    def reshape(self, *shape) -> "Tensor":
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _ops.reshape(self, shape)

    def transpose(self, *axes) -> "Tensor":
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _ops.transpose(self, axes or None)

    def flatten(self) -> "Tensor":
        return _ops.reshape(self, (self.size,))

    def sum(self, axis=None, keepdims: bool = False) -> "Tensor":
        return _ops.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims: bool = False) -> "Tensor":
        return _ops.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims: bool = False) -> "Tensor":
        return _ops.max(self, axis, keepdims)

    def min(self, axis=None, keepdims: bool = False) -> "Tensor":
        return _ops.min(self, axis, keepdims)

    def exp(self) -> "Tensor":
        return _ops.exp(self)

    def log(self) -> "Tensor":
        return _ops.log(self)

    def sqrt(self) -> "Tensor":
        return _ops.sqrt(self)

    def abs(self) -> "Tensor":
        return _ops.abs(self)


class Parameter(Tensor):
    """A tensor that a layer owns and an optimizer updates.

    ``trainable=False`` freezes it: it no longer requires grad, so no gradient
    reaches it and optimizers skip it. Batch-norm moving statistics are
    parameters that are never trainable.

    Args:
        data: the initial value.
        trainable: whether optimizers update it.
        name: shown by ``summary()`` and used as its key in saved weights.
        regularizer: an optional callable mapping the parameter to a scalar
            penalty tensor that training adds to the loss.
    """

    __slots__ = ("_trainable", "regularizer")

    def __init__(self, data: Any, trainable: bool = True, name: str | None = None, regularizer: Any = None):
        super().__init__(data, requires_grad=trainable, name=name)
        self._trainable = trainable
        self.regularizer = regularizer

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        self.requires_grad = bool(value)
        if not value:
            self.grad = None

    def __repr__(self) -> str:
        return f"Parameter(name={self.name!r}, shape={self.shape}, dtype={self.dtype}, device='{self.device}', " \
               f"trainable={self.trainable})"


def _check_same_device(arrays: tuple, function_name: str) -> None:
    """Every array input of one op must live on the same device."""
    devices = {backend.device_of(a) for a in arrays}
    if len(devices) > 1:
        listed = ", ".join(sorted(str(d) for d in devices))
        raise RuntimeError(
            f"{function_name}: inputs are on different devices ({listed}); "
            f"move them to one device first with .to(device)"
        )


class Function:
    """A differentiable operation: ``forward`` on arrays, ``backward`` on gradients.

    Subclasses implement ``forward(*xs)`` returning an array (or a tuple of arrays)
    and ``backward(*gys)`` returning one gradient per input, in order; ``None`` for an
    input that needs none. ``self.needs_grad[i]`` tells backward which inputs need a
    gradient, so expensive ones (such as a convolution's input gradient in the first
    layer) can be skipped. A function instance is used for one call only.

    Inputs that are not tensors (Python numbers, arrays) are passed to ``forward``
    unchanged and treated as constants.
    """

    inputs: tuple
    outputs: tuple
    needs_grad: tuple

    def __call__(self, *inputs: Any):
        xs = tuple(x.data if isinstance(x, Tensor) else x for x in inputs)
        arrays = tuple(x for x in xs if isinstance(x, np.ndarray) or backend.is_cuda_array(x))
        if len(arrays) > 1:
            _check_same_device(arrays, type(self).__name__)
        with backend.device_of_arrays(arrays):
            ys = self.forward(*xs)
        if not isinstance(ys, tuple):
            ys = (ys,)
        outputs = tuple(Tensor(y) for y in ys)
        tensors = [x for x in inputs if isinstance(x, Tensor)]
        if _grad_enabled and any(t.requires_grad for t in tensors):
            self.inputs = inputs
            self.input_versions = tuple(x.version if isinstance(x, Tensor) else None for x in inputs)
            self.needs_grad = tuple(isinstance(x, Tensor) and x.requires_grad for x in inputs)
            self.generation = max(t.generation for t in tensors)
            for output in outputs:
                output.requires_grad = output.dtype.kind == "f"
                output.creator = self
                output.generation = self.generation + 1
            self.outputs = tuple(weakref.ref(o) for o in outputs)
            self.output_specs = tuple((y.shape, y.dtype) for y in ys)
        return outputs if len(outputs) > 1 else outputs[0]

    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, *gys):
        raise NotImplementedError

    def release(self) -> None:
        """Drop everything saved for the backward pass (after it ran, unless the graph is retained)."""
        generation = self.generation
        self.__dict__.clear()
        self.generation = generation  # still ordered in a later pass's queue, which then refuses it
        self.released = True

    def __lt__(self, other: "Function") -> bool:
        # heapq tie-break: later generations first.
        return self.generation > other.generation


class HookHandle:
    """Returned by :meth:`Tensor.register_post_accumulate_grad_hook`; ``remove()`` unregisters the hook."""

    def __init__(self, tensor: Tensor, hook):
        self._key = id(tensor)
        self._hook = hook

    def remove(self) -> None:
        hooks = _post_accumulate_hooks.get(self._key, [])
        if self._hook in hooks:
            hooks.remove(self._hook)
        if not hooks:
            _post_accumulate_hooks.pop(self._key, None)


# Post-accumulate hooks by id of their leaf tensor; kept outside Tensor so that tensors without
# hooks (nearly all) pay nothing for them.
_post_accumulate_hooks: dict[int, list] = {}


def _run_post_accumulate_hooks(leaf: Tensor) -> None:
    for hook in list(_post_accumulate_hooks.get(id(leaf), ())):
        hook(leaf)


def _hooked_leaf_uses(root: Tensor) -> dict[int, list]:
    """For each hooked leaf under ``root``: ``[leaf, number of graph edges that can bring it a gradient]``."""
    uses: dict[int, list] = {}
    seen = {id(root.creator)}
    stack = [root.creator]
    while stack:
        function = stack.pop()
        _refuse_released(function)
        for x, needed in zip(function.inputs, function.needs_grad):
            if not needed:
                continue
            if x.creator is None:
                if id(x) in _post_accumulate_hooks:
                    uses.setdefault(id(x), [x, 0])[1] += 1
            elif id(x.creator) not in seen:
                seen.add(id(x.creator))
                stack.append(x.creator)
    return uses


def _use_done(x: Tensor, uses: dict[int, list]) -> None:
    """One edge into hooked leaf ``x`` has delivered (or skipped) its gradient; run its hooks after the last."""
    entry = uses.get(id(x))
    if entry is not None:
        entry[1] -= 1
        if entry[1] == 0:
            del uses[id(x)]
            _run_post_accumulate_hooks(x)


def _run_backward(root: Tensor, root_grad, retain_graph: bool) -> None:
    """Reverse pass from ``root``: each function runs once, after all its output grads arrived.

    Hooked leaves (see :meth:`Tensor.register_post_accumulate_grad_hook`) are counted first,
    so each one's hooks run as soon as the last function that feeds it has run.
    """
    uses = _hooked_leaf_uses(root) if _post_accumulate_hooks else {}
    # Summed gradients of non-leaf tensors, by tensor id, with the tensor itself: once a function is
    # released, this is what keeps its input alive until the input's own creator has run.
    pending = {id(root): (root, root_grad)}
    queue: list = []
    queued: set = set()

    def enqueue(function: Function) -> None:
        if id(function) not in queued:
            queued.add(id(function))
            heapq.heappush(queue, function)

    enqueue(root.creator)
    while queue:
        function = heapq.heappop(queue)
        _refuse_released(function)
        gys = []
        for index, ref in enumerate(function.outputs):
            output = ref()
            _, gy = pending.pop(id(output), (None, None)) if output is not None else (None, None)
            if gy is None:
                gy = _zeros_for_output(function, index)
            gys.append(gy)
        _check_unmodified(function)
        with backend.device_of_arrays(gys):
            gxs = function.backward(*gys)
        if not isinstance(gxs, tuple):
            gxs = (gxs,)
        if len(gxs) != len(function.inputs):
            raise RuntimeError(f"{type(function).__name__}.backward returned {len(gxs)} gradients "
                               f"for {len(function.inputs)} inputs")
        for x, gx, needed in zip(function.inputs, gxs, function.needs_grad):
            if needed and gx is None and x.creator is None:
                _use_done(x, uses)
            if not needed or gx is None:
                continue
            if gx.shape != x.shape:
                raise RuntimeError(f"{type(function).__name__}.backward gave a gradient of shape {gx.shape} "
                                   f"for an input of shape {x.shape}")
            if gx.dtype != x.dtype:
                # The forward promoted (float32 weights - float64 targets is float64): the gradient
                # of an input has the input's dtype, as in PyTorch.
                gx = gx.astype(x.dtype)
            if x.creator is None:
                x._accumulate_grad(gx)
                _use_done(x, uses)
                continue
            if x.retains_grad:
                x._accumulate_grad(gx)
            _, previous = pending.get(id(x), (None, None))
            pending[id(x)] = (x, gx if previous is None else previous + gx)
            enqueue(x.creator)
        if not retain_graph:
            function.release()
    # Leaves under a branch that produced no gradient were not reached through all their uses.
    for leaf, _ in list(uses.values()):
        _run_post_accumulate_hooks(leaf)


def _refuse_released(function: Function) -> None:
    if getattr(function, "released", False):
        raise RuntimeError(f"backward() went through a {type(function).__name__} whose graph an earlier "
                           f"backward() already freed; pass retain_graph=True to the first backward() to go "
                           f"through the graph again, or compute the loss again")


def _check_unmodified(function: Function) -> None:
    """Refuse a backward through values changed in place since the forward pass (PyTorch does the same)."""
    for x, version in zip(function.inputs, function.input_versions):
        if isinstance(x, Tensor) and x.version != version:
            raise RuntimeError(f"{type(function).__name__}.backward: its input {x.name or tuple(x.shape)} was changed "
                               f"in place (e.g. by optimizer.step()) after the forward pass; compute the loss "
                               f"again before calling backward()")


def _zeros_for_output(function: Function, index: int):
    """Gradient for an output nothing used (one output of a multi-output function)."""
    shape, dtype = function.output_specs[index]
    first_tensor = next(x for x in function.inputs if isinstance(x, Tensor))
    return first_tensor.xp.zeros(shape, dtype)


def constant_like(value: Any, like: Tensor):
    """``value`` (a tensor, NumPy/CuPy array or array-like) as an array on ``like``'s device.

    Its dtype is kept; targets and labels enter ops this way, as constants outside the graph.
    """
    if isinstance(value, Tensor):
        value = value.data
    elif not (isinstance(value, np.ndarray) or backend.is_cuda_array(value)):
        value = np.asarray(value)
    return backend.to_device(value, like.device)


def as_tensor(x: Any, like: Tensor | None = None) -> Tensor:
    """``x`` as a tensor; non-tensors take ``like``'s dtype and device when given."""
    if isinstance(x, Tensor):
        return x
    if like is None:
        return Tensor(x)
    return Tensor(x, dtype=like.dtype, device=like.device)


# Tensor's operators are the functions of cnnkit.ops; those modules need Function and
# Tensor from here, so it is imported after both are defined.
from . import ops as _ops  # noqa: E402
