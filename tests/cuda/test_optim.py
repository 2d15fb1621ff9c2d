"""The fused multi-tensor optimizer kernels (kernels/optim.cu): tables on the CPU, updates on the GPU.

CPU: the block map covers every element once, each call is one launch of a kernel of
optim.cu whose pointer table lists every array, the tables are cached, bad lists are
rejected, other dtypes fall back to the reference, and the sm_90 build does not spill.
GPU (``@pytest.mark.gpu``): SGD (plain, momentum, Nesterov) and Adam (plus AMSGrad and
decoupled weight decay) against the NumPy references for three steps over parameters of
sizes 1, 3, 4, 5, 2049 and two matrices, aligned and misaligned, and through the
optimizer classes with one launch per step.
"""
import contextlib

import numpy as np
import pytest

import cnnkit
from cnnkit import backend, registry
from cnnkit.cuda import optim as cuda_optim
from cnnkit.cuda.launcher import Kernel
from cnnkit.optimizers.adam import adam_update_reference
from cnnkit.optimizers.sgd import sgd_update_reference
from tests.cuda.launch_recorder import fake, is_fake, kernel_entries, nvcc_report

SIZES = [(1,), (3,), (4,), (5,), (2049,), (7, 9), (64, 33)]
SGD_CONFIGS = [  # (with velocities, keyword arguments)
    (False, {"lr": 0.1, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0}),
    (False, {"lr": 0.05, "momentum": 0.0, "nesterov": False, "weight_decay": 0.01}),
    (True, {"lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0}),
    (True, {"lr": 0.1, "momentum": 0.8, "nesterov": True, "weight_decay": 0.004}),
]
ADAM_CONFIGS = [  # (AMSGrad, keyword arguments)
    (False, {"lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "weight_decay": 0.0}),
    (False, {"lr": 3e-3, "beta1": 0.8, "beta2": 0.99, "eps": 1e-3, "weight_decay": 0.004}),
    (True, {"lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "weight_decay": 0.0}),
]


@pytest.fixture(autouse=True)
def fresh_tables():
    """Forget cached device tables, so none built from stand-in arrays outlives its test."""
    for cache in (cuda_optim._device_block_map, cuda_optim._device_pointers):
        cache.cache_clear()
    yield
    for cache in (cuda_optim._device_block_map, cuda_optim._device_pointers):
        cache.cache_clear()



def host_lists(rng, count, dtype, shapes=SIZES, positive_from=2):
    """``count`` lists of arrays of ``shapes``; lists from ``positive_from`` on are >= 0 (second moments)."""
    return [[(np.abs(rng.standard_normal(s)) if k >= positive_from else rng.standard_normal(s)).astype(dtype)
             for s in shapes] for k in range(count)]


# ---------------------------------------------------------------- tables and launches (CPU)

@pytest.mark.parametrize("sizes", [[1], [2048], [2049, 0, 5000, 3], [0, 0], [4095, 4096, 4097, 1, 1]])
def test_block_map_covers_every_element_exactly_once(sizes):
    chunk = cuda_optim.CHUNK
    block_tensor, block_start = cuda_optim.block_map(sizes)
    assert block_tensor.dtype == np.int32 and block_start.dtype == np.int64
    assert np.all(block_start % 4 == 0)
    covered = [np.zeros(size, int) for size in sizes]
    for t, start in zip(block_tensor, block_start):
        assert 0 <= start < sizes[t]
        covered[t][start:start + chunk] += 1
    assert all(np.all(c == 1) for c in covered)


def sgd_call(lists, velocities=True, **kw):
    params, grads = lists[0], lists[1]
    args = {"lr": 0.1, "momentum": 0.9 if velocities else 0.0, "nesterov": False, "weight_decay": 0.0} | kw
    return cuda_optim.sgd_update(params, grads, lists[2] if velocities else None, **args)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_launch_per_step_with_every_array_in_the_pointer_table(recorded_launches, rng, dtype):
    entries = kernel_entries("optim.cu")
    lists = [[fake(a) for a in arrays] for arrays in host_lists(rng, 5, dtype)]
    sgd_call(lists[:2], velocities=False)
    sgd_call(lists[:3], nesterov=True)
    cuda_optim.adam_update(*lists[:4], None, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-7, step=3, weight_decay=0.1)
    cuda_optim.adam_update(*lists, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-7, step=1, weight_decay=0.0)
    kind = "f32" if dtype == np.float32 else "f64"
    assert [launch.name for launch in recorded_launches] == [
        f"sgd_update_{kind}", f"sgd_momentum_update_{kind}", f"adam_update_{kind}", f"amsgrad_update_{kind}"]
    assert {launch.name for launch in recorded_launches} <= entries
    for launch, count in zip(recorded_launches, (2, 3, 4, 5)):
        table = np.asarray(launch.arg("pointers"))
        want = [[a.__array_interface__["data"][0] for a in column] for column in zip(*lists[:count])]
        np.testing.assert_array_equal(table, np.array(want, dtype=np.uint64))
        np.testing.assert_array_equal(np.asarray(launch.arg("sizes")), [int(np.prod(s)) for s in SIZES])
        assert launch.grid == (len(np.asarray(launch.arg("block_tensor"))), 1, 1)
        assert launch.block == (256, 1, 1) and launch.arg("chunk") == cuda_optim.CHUNK
    adam = recorded_launches[2]
    lr_t = 0.01 * np.sqrt(1 - 0.999**3) / (1 - 0.9**3)
    assert adam.arg("lr_t") == pytest.approx(lr_t) and adam.arg("decay") == pytest.approx(1 - 0.01 * 0.1)
    assert adam.arg("one_minus_beta2") == pytest.approx(0.001)
    assert recorded_launches[1].arg("nesterov") == 1


def test_tables_are_cached_by_sizes_and_addresses(recorded_launches, rng):
    params, grads = ([fake(a) for a in arrays] for arrays in host_lists(rng, 2, np.float32))
    sgd_call([params, grads], velocities=False)
    sgd_call([params, grads], velocities=False)
    new_grads = [fake(g.copy()) for g in grads]
    sgd_call([params, new_grads], velocities=False)
    first, second, third = recorded_launches
    assert second.arg("pointers") is first.arg("pointers")  # same addresses: no new upload
    assert third.arg("pointers") is not first.arg("pointers")
    assert third.arg("block_tensor") is first.arg("block_tensor") and third.arg("sizes") is first.arg("sizes")


def test_mismatched_lists_are_rejected_with_names_and_shapes(recorded_launches, rng):
    params, grads, velocities = ([fake(a) for a in arrays] for arrays in host_lists(rng, 3, np.float32))
    with pytest.raises(ValueError, match=r"sgd_update: velocities has 6 arrays but params has 7"):
        sgd_call([params, grads, velocities[:-1]])
    with pytest.raises(ValueError, match=r"adam_update: grads\[6\] has shape \(33, 64\), but params\[6\] has shape "
                                         r"\(64, 33\)"):
        cuda_optim.adam_update(params, grads[:-1] + [fake(grads[-1].T.copy())], velocities, velocities, None, lr=0.1,
                               beta1=0.9, beta2=0.99, eps=1e-7, step=1, weight_decay=0.0)
    assert recorded_launches == []


def test_unsupported_arrays_are_left_to_the_reference(recorded_launches, rng):
    params, grads = host_lists(rng, 2, np.float16)
    expected = [p.copy() for p in params]
    sgd_update_reference(expected, grads, None, lr=0.1, momentum=0.0, nesterov=False, weight_decay=0.0)
    fakes = [fake(p) for p in params]
    plain = {"lr": 0.1, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0}
    assert sgd_call([fakes, [fake(g) for g in grads]], velocities=False) is registry.USE_REFERENCE
    strided = fake(np.zeros((4, 6), np.float32))[:, ::2]
    assert sgd_call([[strided], [fake(np.ones((4, 3), np.float32))]], velocities=False) is registry.USE_REFERENCE
    assert cuda_optim.sgd_update([], [], None, **plain) is registry.USE_REFERENCE
    with registry.use_cuda_kernels(True):
        registry.impl("sgd_update", fakes, [fake(g) for g in grads], None, **plain)
        registry.impl("sgd_update", [strided], [fake(np.ones((4, 3), np.float32))], None, **plain)
    for got, want in zip(fakes, expected):
        np.testing.assert_array_equal(np.asarray(got), want)
    np.testing.assert_allclose(np.asarray(strided), -0.1)
    assert recorded_launches == []


def test_kernel_arguments_are_checked_before_launch():
    kernel = cuda_optim.KERNELS["sgd_momentum_update", "f32"]
    table, sizes = fake(np.zeros((1, 3), np.uint64)), fake(np.ones(1, np.int64))
    blocks, starts = fake(np.zeros(1, np.int32)), fake(np.zeros(1, np.int64))
    assert len(kernel.check((table, sizes, blocks, starts, 2048, 0.1, 1.0, 0.9, 1), 0, is_device_array=is_fake)) == 9
    with pytest.raises(ValueError, match=r"sgd_momentum_update_f32: argument 'nesterov' must be an int32 in \[0, 1\], "
                                         r"got 2"):
        kernel.check((table, sizes, blocks, starts, 2048, 0.1, 1.0, 0.9, 2), 0, is_device_array=is_fake)
    with pytest.raises(TypeError, match=r"argument 'pointers' must be a uint64 CuPy array on cuda:0, got a int64"):
        kernel.check((fake(np.zeros((1, 3), np.int64)), sizes, blocks, starts, 2048, 0.1, 1.0, 0.9, 0), 0,
                     is_device_array=is_fake)


def test_optim_cu_compiles_for_sm90_without_spills():
    report = nvcc_report("optim.cu")
    assert report.entries == kernel_entries("optim.cu")
    assert {kernel.name for kernel in cuda_optim.KERNELS.values()} == report.entries
    assert all(spills == (0, 0) for spills in report.spills.values()), report.log


# ---------------------------------------------------------------- the kernels (GPU)

def on_device(arrays, misaligned=False):
    """Host arrays as CuPy arrays; misaligned: each a view one element past 16-byte alignment."""
    cupy = backend.cupy()
    if not misaligned:
        return [cupy.asarray(a) for a in arrays]
    views = []
    for a in arrays:
        view = cupy.empty(a.size + 1, dtype=a.dtype)[1:].reshape(a.shape)
        view[...] = cupy.asarray(a)
        views.append(view)
    return views


def three_steps(update, reference, host, rng, misaligned):
    """Run ``update`` on the device and ``reference`` on host copies for three steps; return both states.

    ``host`` holds the lists in the op's order; list 1, the gradients, is drawn afresh each step.
    """
    device_lists = [on_device(arrays, misaligned) if k != 1 else None for k, arrays in enumerate(host)]
    assert all(bool(a.data.ptr % 16) == misaligned for a in device_lists[0] if a.size > 1)
    host_state = [[a.copy() for a in arrays] for arrays in host]
    for step in range(1, 4):
        grads = [(rng.standard_normal(g.shape) * step).astype(g.dtype) for g in host[1]]
        grads_on_device = on_device(grads, misaligned)
        before = [backend.to_numpy(g) for g in grads_on_device]
        update(device_lists[0], grads_on_device, *device_lists[2:], step=step)
        reference(host_state[0], grads, *host_state[2:], step=step)
        for g, b in zip(grads_on_device, before):
            np.testing.assert_array_equal(backend.to_numpy(g), b)  # gradients are only read
    return [[backend.to_numpy(a) for a in arrays] for k, arrays in enumerate(device_lists) if k != 1], \
        [arrays for k, arrays in enumerate(host_state) if k != 1]


def assert_states_close(got, want, dtype):
    tolerance = {"rtol": 2e-6, "atol": 1e-7} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-14}
    for got_list, want_list in zip(got, want):
        for g, w in zip(got_list, want_list):
            assert g.dtype == dtype
            np.testing.assert_allclose(g, w, **tolerance)


@pytest.mark.gpu
@pytest.mark.parametrize("misaligned", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("velocities,config", SGD_CONFIGS)
def test_sgd_matches_the_reference_for_three_steps(rng, velocities, config, dtype, misaligned):
    host = host_lists(rng, 3 if velocities else 2, dtype)

    def update(params, grads, *slots, step):
        cuda_optim.sgd_update(params, grads, slots[0] if slots else None, **config)

    def reference(params, grads, *slots, step):
        sgd_update_reference(params, grads, slots[0] if slots else None, **config)

    got, want = three_steps(update, reference, host, rng, misaligned=misaligned)
    assert_states_close(got, want, dtype)


@pytest.mark.gpu
@pytest.mark.parametrize("misaligned", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("amsgrad,config", ADAM_CONFIGS)
def test_adam_matches_the_reference_for_three_steps(rng, amsgrad, config, dtype, misaligned):
    host = host_lists(rng, 5 if amsgrad else 4, dtype)
    host[2] = [m * 0.1 for m in host[2]]

    def update(params, grads, ms, vs, *vhats, step):
        cuda_optim.adam_update(params, grads, ms, vs, vhats[0] if vhats else None, step=step, **config)

    def reference(params, grads, ms, vs, *vhats, step):
        adam_update_reference(params, grads, ms, vs, vhats[0] if vhats else None, step=step, **config)

    got, want = three_steps(update, reference, host, rng, misaligned=misaligned)
    assert_states_close(got, want, dtype)


@pytest.mark.gpu
@pytest.mark.parametrize("make", [
    lambda params: cnnkit.optimizers.SGD(params, 0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda params: cnnkit.optimizers.Adam(params, 0.01, amsgrad=True),
    lambda params: cnnkit.optimizers.AdamW(params, 0.01),
])
def test_optimizers_take_one_launch_per_step_and_match_the_cpu(rng, monkeypatch, make):
    launches = []
    launch = Kernel.launch

    def counting(self, *args, **kwargs):
        launches.append(self.name)
        return launch(self, *args, **kwargs)

    monkeypatch.setattr(Kernel, "launch", counting)
    values = [rng.standard_normal(s).astype(np.float32) for s in SIZES]
    steps = [[rng.standard_normal(s).astype(np.float32) for s in SIZES] for _ in range(3)]
    results = {}
    with registry.use_cuda_kernels(True):
        for device in ("cpu", "cuda"):
            # a copy: on the CPU the parameters would be `values` themselves, updated in place
            params = [cnnkit.Parameter(backend.to_device(v.copy(), device)) for v in values]
            optimizer = make(params)
            for grads in steps:
                for p, g in zip(params, grads):
                    p.grad = cnnkit.Tensor(backend.to_device(g, device))
                optimizer.step()
            results[device] = [p.numpy() for p in params]
    assert len(launches) == 3 and len(set(launches)) == 1
    for got, want in zip(results["cuda"], results["cpu"]):
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)


@pytest.mark.gpu
@pytest.mark.parametrize("order", ["forward", "reverse"])
def test_tied_weights_are_updated_in_sequence_like_the_reference(rng, order):
    """The same parameter twice in the list (tied weights): the updates apply one after the other.

    In one launch the blocks of both entries would update it at the same time; the emulator runs
    blocks one after another, and a result that changes with their order exposes that race.
    """
    from cnnkit.cuda import emulator
    if not emulator.is_active() and order == "reverse":
        pytest.skip("the block order is the emulator's to choose")
    shapes = [(5,), (3, 4), (5,)]
    p, q = (rng.standard_normal(s).astype(np.float32) for s in shapes[:2])
    grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    ms = [np.zeros(s, np.float32) for s in shapes]
    vs = [np.zeros(s, np.float32) for s in shapes]
    options = dict(lr=0.1, beta1=0.9, beta2=0.999, eps=1e-7, step=1, weight_decay=0.1)
    cupy = backend.cupy()
    p_device, q_device = cupy.asarray(p), cupy.asarray(q)
    device_ms, device_vs = on_device(ms), on_device(vs)
    with emulator.block_order(order) if emulator.is_active() else contextlib.nullcontext():
        cuda_optim.adam_update([p_device, q_device, p_device], on_device(grads), device_ms, device_vs, None, **options)
    adam_update_reference([p, q, p], grads, ms, vs, None, **options)
    np.testing.assert_allclose(backend.to_numpy(p_device), p, rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(backend.to_numpy(q_device), q, rtol=2e-6, atol=1e-7)
    assert cuda_optim.sequential_rounds([[p_device, q_device, p_device]] + [on_device(grads)] + [device_ms, device_vs]) \
        == [[0, 1], [2]]
