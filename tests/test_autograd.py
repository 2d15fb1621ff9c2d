import numpy as np
import pytest

import cnnkit
from cnnkit import Tensor, no_grad
from cnnkit.testing import GradientCheckError, gradcheck
from tests.helpers import randn, tensor


def test_python_floats_become_float32_and_arrays_keep_dtype():
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(np.zeros(3)).dtype == np.float64
    assert Tensor([1, 2]).dtype.kind == "i"


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        Tensor([1, 2, 3], requires_grad=True)


def test_gradients_accumulate_across_uses_and_calls(device):
    x = tensor([1.0, 2.0, 3.0], device, requires_grad=True)
    (x * x + x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.array([1.0, 2.0, 3.0]) + 1)
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.array([1.0, 2.0, 3.0]) + 4)


def test_diamond_graph_runs_each_function_once(device):
    x = tensor([2.0], device, requires_grad=True)
    a = x * x          # 4
    y = a * a + a      # x^4 + x^2
    y.backward()
    assert x.grad.numpy()[0] == pytest.approx(4 * 8 + 2 * 2)


def test_broadcast_gradients_sum_back_to_input_shape(device, rng):
    a = randn(rng, 3, 4, device=device)
    b = randn(rng, 4, device=device)
    c = randn(rng, 3, 1, device=device)
    gradcheck(lambda a, b, c: a * b + c / (b * b + 1.0) - a, [a, b, c])


@pytest.mark.parametrize("op", ["exp", "log", "sqrt", "abs", "neg", "pow"])
def test_unary_gradients(device, rng, op):
    x = tensor(rng.uniform(0.5, 2.0, (2, 3)), device, requires_grad=True)
    fns = {"exp": lambda t: t.exp(), "log": lambda t: t.log(), "sqrt": lambda t: t.sqrt(),
           "abs": lambda t: (t - 1.2).abs(), "neg": lambda t: -t, "pow": lambda t: t ** 3}
    gradcheck(fns[op], [x])


@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, False), (1, True), ((0, 2), False), (-1, True)])
def test_reduction_gradients(device, rng, axis, keepdims):
    x = randn(rng, 2, 3, 4, device=device)
    gradcheck(lambda t: t.sum(axis, keepdims), [x])
    gradcheck(lambda t: t.mean(axis, keepdims), [x])
    gradcheck(lambda t: t.max(axis, keepdims), [x])
    gradcheck(lambda t: t.min(axis, keepdims), [x])


def test_shape_op_gradients(device, rng):
    x = randn(rng, 2, 3, 4, device=device)
    y = randn(rng, 2, 5, 4, device=device)
    gradcheck(lambda t: t.reshape(4, 6).transpose(), [x])
    gradcheck(lambda t: t[:, 1:, ::2], [x])
    gradcheck(lambda t: t[np.array([0, 0, 1])], [x])  # repeated index: gradients add
    gradcheck(lambda a, b: cnnkit.ops.concatenate([a, b], axis=1), [x, y])
    gradcheck(lambda t: cnnkit.ops.pad(t, [(0, 0), (1, 2), (0, 1)], value=3.0), [x])
    gradcheck(lambda t: cnnkit.ops.broadcast_to(t[:, :1], (2, 3, 4)), [x])


def test_matmul_and_linear_gradients(device, rng):
    a, b = randn(rng, 3, 5, device=device), randn(rng, 5, 2, device=device)
    gradcheck(lambda a, b: a @ b, [a, b])
    batched = randn(rng, 4, 3, 5, device=device)
    gradcheck(lambda a, b: a @ b, [batched, b])
    x, W, bias = randn(rng, 2, 3, 5, device=device), randn(rng, 5, 4, device=device), randn(rng, 4, device=device)
    gradcheck(lambda x, W, bias: cnnkit.ops.linear(x, W, bias), [x, W, bias])
    gradcheck(lambda x, W, bias: cnnkit.ops.linear(x, W, bias, activation="relu"), [x, W, bias])
    gradcheck(lambda x, W: cnnkit.ops.linear(x, W, activation="relu"), [x, W])


def test_gradcheck_detects_a_wrong_backward(rng):
    class WrongSquare(cnnkit.Function):
        def forward(self, x):
            self.x = x
            return x * x

        def backward(self, gy):
            return gy * self.x  # should be 2 x gy

    with pytest.raises(GradientCheckError, match="gradient of input 0"):
        gradcheck(lambda t: WrongSquare()(t), [randn(rng, 3)])


def test_no_grad_records_nothing(device):
    x = tensor([1.0], device, requires_grad=True)
    with no_grad():
        y = x * 2.0
    assert not y.requires_grad and y.creator is None


def test_detach_cuts_the_graph(device):
    x = tensor([3.0], device, requires_grad=True)
    y = (x * x).detach() * x
    y.backward()
    assert x.grad.numpy()[0] == pytest.approx(9.0)


def test_retain_grad_keeps_an_intermediate_gradient(device):
    x = tensor([1.0, 2.0], device, requires_grad=True)
    h = (x * 3.0).retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), [6.0, 12.0])


def test_backward_needs_scalar_or_explicit_grad():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="one-element"):
        (x * 2.0).backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).backward()


def test_to_device_roundtrip_on_cpu_is_identity():
    x = Tensor([1.0])
    assert x.to("cpu") is x


@pytest.mark.no_gpu
def test_asking_for_missing_gpu_says_how_to_fix():
    with pytest.raises(cnnkit.CudaUnavailableError, match=r"cnnkit\[gpu\]|no NVIDIA GPU"):
        Tensor([1.0]).to("cuda")


def test_bad_device_string():
    with pytest.raises(ValueError, match="'cpu', 'cuda' or 'cuda:N'"):
        cnnkit.Device("tpu")


def test_manual_seed_makes_draws_repeat():
    cnnkit.manual_seed(7)
    first = cnnkit.backend.rng().random(), cnnkit.backend.next_random_stream()
    cnnkit.manual_seed(7)
    assert (cnnkit.backend.rng().random(), cnnkit.backend.next_random_stream()) == first
    assert first[1] == (7, 1) and cnnkit.backend.next_random_stream() == (7, 2)


@pytest.mark.gpu
def test_an_op_on_tensors_from_two_devices_is_refused():
    with pytest.raises(RuntimeError, match=r"inputs are on different devices \(cpu, cuda:0\)"):
        Tensor([1.0, 2.0]) + Tensor([1.0, 2.0], device="cuda")


def test_the_device_check_names_the_op_and_the_fix(monkeypatch):
    from cnnkit import autograd, backend

    gpu = backend.Device.__new__(backend.Device)  # a GPU device object without needing a GPU
    gpu.kind, gpu.index = "cuda", 0
    monkeypatch.setattr(backend, "device_of", lambda array: gpu if array[0] == 2 else backend.CPU)
    with pytest.raises(RuntimeError, match=r"Add: inputs are on different devices \(cpu, cuda:0\); move them "
                                           r"to one device first with .to\(device\)"):
        autograd._check_same_device((np.array([1.0]), np.array([2.0])), "Add")


def test_max_with_ties_keeps_float32_gradients(device):
    x = tensor(np.array([[1.0, 3.0, 3.0]], dtype=np.float32), device, requires_grad=True)
    x.max(axis=1).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), [[0.0, 0.5, 0.5]])


def test_comparing_a_device_with_a_string_never_raises():
    cpu = cnnkit.Device("cpu")
    assert cpu == "cpu" and cpu == " CPU "
    assert not cpu == "cuda:0" and not cpu == "tpu" and cpu != "cuda:x"


def test_two_leaves_never_share_one_gradient_array(device):
    a = tensor([1.0, 2.0], device, requires_grad=True)
    b = tensor([3.0, 4.0], device, requires_grad=True)
    (a + b).sum().backward()
    a.grad.data[...] = 0  # an optimizer may update a gradient in place
    np.testing.assert_allclose(b.grad.numpy(), [1.0, 1.0])


def test_pad_and_reductions_check_their_arguments(device):
    x = tensor(np.ones((2, 3), np.float32), device)
    with pytest.raises(ValueError, match="one non-negative"):
        cnnkit.ops.pad(x, ((1, 1),))
    with pytest.raises(ValueError, match="one non-negative"):
        cnnkit.ops.pad(x, ((0, 0), (-1, 0)))
    assert x.sum(axis=np.int64(1)).shape == (2,)
    with pytest.raises(TypeError):
        x.sum(axis=1.0)


def test_backward_after_an_optimizer_step_changed_an_input_is_refused():
    w = cnnkit.Parameter(np.array([1.0, 2.0], np.float32), name="w")
    optimizer = cnnkit.optimizers.SGD(learning_rate=0.1)
    (w * w).sum().backward()
    loss = (w * w).sum()
    optimizer.step([w])
    with pytest.raises(RuntimeError, match="changed in place"):
        loss.backward()


def test_gradients_take_the_dtype_of_their_input_after_promotion(device):
    w = tensor(np.array([1.0, 2.0], np.float32), device, requires_grad=True)
    target = tensor(np.array([0.5, 0.5]), device)  # float64, NumPy's default
    ((w - target) ** 2).sum().backward()
    assert w.grad.dtype == np.float32
    np.testing.assert_allclose(w.grad.numpy(), [1.0, 3.0])


def test_a_second_backward_through_a_freed_graph_is_refused():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    loss = (w * w).sum()
    loss.backward()
    np.testing.assert_array_equal(w.grad.data, [2.0, 4.0])
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        loss.backward()
    np.testing.assert_array_equal(w.grad.data, [2.0, 4.0])  # nothing was added


def test_backward_frees_what_the_forward_saved():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    product = w * w
    function = product.creator
    product.sum().backward()
    assert not hasattr(function, "inputs")


def test_retain_graph_allows_a_second_backward_that_accumulates():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_array_equal(w.grad.data, [4.0, 8.0])
    with pytest.raises(RuntimeError, match="freed"):
        loss.backward()


def test_forward_and_backward_run_with_their_arrays_device_current(fake_gpu):
    """Array arithmetic inside a function (not only registry ops) runs on the arrays' GPU, cuda:1 here."""
    from cnnkit.autograd import Function
    from tests.fake_gpu import on_device

    seen = []

    class Double(Function):
        def forward(self, x):
            seen.append(("forward", fake_gpu.current))
            return x * 2

        def backward(self, gy):
            seen.append(("backward", fake_gpu.current))
            return gy * 2

    x = cnnkit.Tensor(on_device(np.ones(3), 1), requires_grad=True)
    Double()(x).backward(on_device(np.ones(3), 1))
    assert seen == [("forward", 1), ("backward", 1)] and fake_gpu.current == 0
    np.testing.assert_array_equal(np.asarray(x.grad.data), [2, 2, 2])
