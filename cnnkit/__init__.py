"""cnnkit: convolutional networks on NumPy and CuPy, with hand-written CUDA kernels.

    import cnnkit
    from cnnkit.layers import Conv2D, MaxPool2D, Flatten, Dense

    model = cnnkit.Sequential([Conv2D(32, 3, activation="relu", input_shape=(1, 8, 8)),
                               MaxPool2D(), Flatten(), Dense(10)])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
"""
__version__ = "0.1.0"

from . import backend  # noqa: E402  (the version must exist before submodules import it)
from .autograd import Function, Parameter, Tensor, as_tensor, enable_grad, is_grad_enabled, no_grad  # noqa: E402
from .backend import (  # noqa: E402
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
from . import activations, custom_objects, initializers, losses, metrics, ops, optimizers, regularizers  # noqa: E402
from . import callbacks, data, datasets, layers  # noqa: E402
from . import applications, explain, filters, transfer, vis  # noqa: E402
from .layers import Input  # noqa: E402
from .custom_objects import custom_object_scope  # noqa: E402
from .models import Model, Sequential, load_model  # noqa: E402
