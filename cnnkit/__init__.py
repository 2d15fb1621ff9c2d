"""cnnkit: convolutional networks on NumPy and CuPy, with hand-written CUDA kernels.

    import cnnkit
    from cnnkit.layers import Conv2D, MaxPool2D, Flatten, Dense

    model = cnnkit.Sequential([Conv2D(32, 3, activation="relu", input_shape=(1, 8, 8)),
                               MaxPool2D(), Flatten(), Dense(10)])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
"""
from .version import __version__
from . import backend
from .autograd import Function, Parameter, Tensor, as_tensor, enable_grad, is_grad_enabled, no_grad
from .backend import (
    CudaUnavailableError,
    Device,
    default_device,
    get_array_module,
    get_default_device,
    get_default_dtype,
    manual_seed,
    set_default_device,
    set_default_dtype,
    to_numpy,
)
from . import activations, custom_objects, initializers, losses, metrics, ops, optimizers, regularizers
from . import callbacks, data, datasets, layers
from . import applications, explain, image_kernels, transfer, vis
from . import cpu  # registers the CPU variants of the ops
from .cuda import ops as _cuda_ops  # registers the CUDA kernels (imports no CuPy)
from .layers import Input
from .custom_objects import custom_object_scope
from .models import Model, Sequential, load_model
