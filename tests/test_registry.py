"""The registry picks the implementation by the arguments' device and runs it with that device current."""
import numpy as np
import pytest

from cnnkit import registry
from cnnkit.registry import impl
from tests.fake_gpu import on_device


@pytest.fixture
def probe(monkeypatch, fake_gpu):
    """An op whose reference records the current device and what the op allocates there."""
    seen = []

    def reference(*arrays):
        seen.append(fake_gpu.current)
        return fake_gpu.empty((1,))

    monkeypatch.setitem(registry._implementations, ("device_probe", registry.REFERENCE), reference)
    return seen


def test_an_op_runs_on_the_device_of_its_arguments(probe, fake_gpu):
    out = impl("device_probe", on_device(np.ones(3), 1))
    assert probe == [1] and out.device.id == 1
    assert fake_gpu.current == 0  # restored afterwards
    impl("device_probe", [on_device(np.ones(3), 1), on_device(np.ones(3), 1)])  # multi-tensor ops
    impl("device_probe", 2.0, on_device(np.ones(3), 1))  # the first device array decides
    assert probe == [1, 1, 1]


def test_host_arguments_run_the_cpu_implementation(probe, fake_gpu):
    impl("device_probe", np.ones(3))
    assert probe == [0]


def test_reference_is_the_array_generic_implementation():
    from cnnkit.ops.conv import conv_forward_reference

    assert registry.reference("conv_forward") is conv_forward_reference
    assert registry.lookup("conv_forward", on_gpu=False) is not conv_forward_reference  # the CPU variant
    with pytest.raises(KeyError, match="no implementation registered for op 'no_such_op'"):
        registry.reference("no_such_op")
