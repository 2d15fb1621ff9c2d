"""Imports every CUDA kernel wrapper so that each registers itself with :mod:`cnnkit.registry`.

The registry imports this module the first time an op runs on CuPy arrays.
"""
from . import conv  # noqa: F401
from . import elementwise  # noqa: F401
from . import gemm  # noqa: F401
from . import optim  # noqa: F401
from . import pool  # noqa: F401
