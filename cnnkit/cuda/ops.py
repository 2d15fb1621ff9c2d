"""Imports every CUDA kernel wrapper so that each registers itself with :mod:`cnnkit.registry`.

The registry imports this module the first time an op runs on CuPy arrays.
"""
from . import gemm  # noqa: F401
