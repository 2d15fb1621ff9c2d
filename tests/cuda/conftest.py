"""Offers the launch recorder's fixture to every CUDA test (see launch_recorder.py)."""
from tests.cuda.launch_recorder import recorded_launches  # noqa: F401
