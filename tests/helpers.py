"""Small helpers shared by the test modules."""
import subprocess
import sys
from pathlib import Path

import numpy as np

import cnnkit

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def tensor(array, device="cpu", requires_grad=False):
    """A tensor on ``device`` holding ``array`` (its dtype kept)."""
    return cnnkit.Tensor(np.asarray(array), requires_grad=requires_grad, device=device)


def randn(rng, *shape, device="cpu", requires_grad=True):
    """A float64 tensor of standard-normal values, for gradient checks."""
    return tensor(rng.standard_normal(shape), device, requires_grad)


def run_example(name: str, *arguments: str, cwd=None) -> str:
    """Run ``examples/<name> --quick`` as a user would, assert it succeeded, and return what it printed."""
    result = subprocess.run([sys.executable, str(EXAMPLES / name), "--quick", *arguments], capture_output=True,
                            text=True, timeout=300, cwd=cwd)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout
