"""cnnkit: convolutional networks on NumPy and CuPy, with hand-written CUDA kernels."""
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

__version__ = "0.1.0"
