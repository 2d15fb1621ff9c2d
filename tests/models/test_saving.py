"""model.save / load_model / save_weights / load_weights."""
import json
import os
import time

import numpy as np
import pytest
from safetensors.numpy import save_file

import cnnkit
from cnnkit import Input, Model, Sequential
from cnnkit.layers import Add, BatchNormalization, Conv2D, Dense, Dropout, Flatten, MaxPool2D
from cnnkit.models import saving


def cnn():
    return Sequential([Input((1, 6, 6)), Conv2D(4, 3, padding="same", activation="relu"), BatchNormalization(),
                       MaxPool2D(), Flatten(), Dropout(0.2), Dense(3)])


def data(n=48):
    rng = np.random.default_rng(0)
    return rng.random((n, 1, 6, 6)).astype(np.float32), rng.integers(0, 3, n)


def compiled(model):
    model.compile(cnnkit.optimizers.Adam(learning_rate=0.01),
                  cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def test_save_and_load_keep_architecture_weights_and_predictions(tmp_path):
    x, y = data()
    model = compiled(cnn())
    model.fit(x, y, epochs=2, verbose=0)
    path = model.save(tmp_path / "model.safetensors")
    loaded = cnnkit.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.epoch == 2 and loaded.compiled
    assert type(loaded.optimizer) is cnnkit.optimizers.Adam and loaded.optimizer.iterations == model.optimizer.iterations
    assert [m.name for m in loaded.metrics] == ["accuracy"]


def test_functional_model_round_trip(tmp_path):
    inputs = Input((4,))
    hidden = Dense(4, activation="relu")(inputs)
    outputs = Dense(2)(Add()([hidden, Dense(4)(inputs)]))
    model = Model(inputs, outputs)
    model.save(tmp_path / "f.safetensors")
    loaded = cnnkit.load_model(tmp_path / "f.safetensors")
    x = np.random.default_rng(1).random((5, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_weights_are_keyed_by_place_so_fresh_models_accept_them(tmp_path):
    first = cnn()
    first.save_weights(tmp_path / "w.safetensors")
    second = cnn()  # its layers get other automatic names (conv2d_1, ...)
    second.load_weights(tmp_path / "w.safetensors")
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert "layers.0.kernel" in saving.named_weights(first)


def test_strict_loading_names_missing_unexpected_and_misshapen_weights(tmp_path):
    cnn().save_weights(tmp_path / "w.safetensors")
    other = Sequential([Input((1, 6, 6)), Conv2D(5, 3), Flatten()])
    with pytest.raises(ValueError) as raised:
        other.load_weights(tmp_path / "w.safetensors")
    message = str(raised.value)
    assert "unexpected in the file:" in message and "layers.1.gamma" in message and "layers.5.kernel" in message
    assert "wrong shape: layers.0.kernel (model (5, 1, 3, 3), file (4, 1, 3, 3))" in message


def test_non_strict_loading_takes_what_fits(tmp_path):
    source = cnn()
    source.save_weights(tmp_path / "w.safetensors")
    target = Sequential([Input((1, 6, 6)), Conv2D(4, 3, padding="same", activation="relu"), BatchNormalization(),
                         MaxPool2D(), Flatten(), Dropout(0.2), Dense(7)])
    with pytest.raises(ValueError, match=r"wrong shape: layers.5.kernel \(model \(36, 7\), file \(36, 3\)\)"):
        target.load_weights(tmp_path / "w.safetensors", strict=False)
    base = Sequential([Input((1, 6, 6)), Conv2D(4, 3, padding="same")])
    base.load_weights(tmp_path / "w.safetensors", strict=False)
    np.testing.assert_array_equal(base.layers[0].kernel.numpy(), source.layers[0].kernel.numpy())


def test_a_failed_save_leaves_the_old_file_intact_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "model.safetensors"
    model = cnn()
    model.save(target)
    original = target.read_bytes()

    def crash(filename):
        with open(filename, "wb") as stream:
            stream.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(saving, "_write_safetensors", lambda tensors, metadata: crash)
    with pytest.raises(OSError, match="disk full"):
        model.save(target)
    assert target.read_bytes() == original
    assert os.listdir(tmp_path) == ["model.safetensors"]


def test_loading_garbage_or_missing_files_explains(tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        cnnkit.load_model(tmp_path / "junk.safetensors")
    with pytest.raises(FileNotFoundError, match="no saved model"):
        cnnkit.load_model(tmp_path / "absent.safetensors")
    cnn().save_weights(tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="holds only weights"):
        cnnkit.load_model(tmp_path / "w.safetensors")


def test_resuming_from_a_checkpoint_matches_an_uninterrupted_run(tmp_path):
    x, y = data()
    cnnkit.manual_seed(11)
    straight = compiled(cnn())
    straight.fit(x, y, batch_size=8, epochs=4, verbose=0)

    cnnkit.manual_seed(11)
    first_half = compiled(cnn())
    first_half.fit(x, y, batch_size=8, epochs=2, verbose=0)
    first_half.save(tmp_path / "ckpt.safetensors")
    cnnkit.manual_seed(999)  # whatever happens in between
    resumed = cnnkit.load_model(tmp_path / "ckpt.safetensors", restore_rng_state=True)
    resumed.fit(x, y, batch_size=8, epochs=4, initial_epoch=resumed.epoch, verbose=0)

    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.gpu
def test_a_model_trained_on_the_gpu_loads_on_the_cpu(tmp_path):
    x, y = data()
    model = compiled(cnn())
    model.fit(x, y, epochs=1, verbose=0, device="cuda")
    model.save(tmp_path / "gpu.safetensors")
    loaded = cnnkit.load_model(tmp_path / "gpu.safetensors", device="cpu")
    assert all(w.device == cnnkit.Device("cpu") for w in loaded.weights)
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-4, atol=1e-5)


def test_a_model_saved_after_pop_keeps_only_its_own_optimizer_slots(tmp_path):
    x, y = data()
    model = cnn()
    model.compile("adam", cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, verbose=0)
    model.pop()
    model.add(Dense(3, name="new_head"))
    model.compile(model.optimizer, cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.save(tmp_path / "popped.safetensors")
    loaded = cnnkit.load_model(tmp_path / "popped.safetensors")
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-6)


def test_saved_files_get_the_usual_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        path = cnn().save(tmp_path / "mode.safetensors")
    finally:
        os.umask(previous)
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)


class TwoLayers(Model):
    def __init__(self):
        super().__init__()
        self.first, self.second = Dense(3), Dense(2)

    def call(self, x, training=False):
        return self.second(self.first(x))


def test_subclassed_models_key_weights_by_attribute_name():
    model = TwoLayers()
    model(np.zeros((1, 4), np.float32))
    assert sorted(saving.named_weights(model)) == ["first.bias", "first.kernel", "second.bias", "second.kernel"]


def scaled_tanh(x):
    return cnnkit.ops.tanh(x) * 2.0


def squared_error(y_true, y_pred):
    return ((y_pred - y_true) ** 2).mean()


def prediction_mean(y_true, y_pred):
    return float(y_pred.numpy().mean())


class Halve(cnnkit.initializers.Initializer):
    def __init__(self, value=0.5):
        self.value = value

    def __call__(self, shape, dtype=np.float32, layout="dense"):
        return np.full(shape, self.value, dtype)

    def get_config(self):
        return {"value": self.value}


def test_user_functions_and_classes_save_by_name_and_load_with_custom_objects(tmp_path):
    x = np.random.default_rng(0).standard_normal((16, 3)).astype(np.float32)
    y = x[:, :1] * 0.5
    model = Sequential([Input((3,)), Dense(4, activation=scaled_tanh, kernel_initializer=Halve(0.25)), Dense(1)])
    model.compile("sgd", loss=squared_error, metrics=[prediction_mean])
    model.fit(x, y, epochs=1, verbose=0)
    path = model.save(tmp_path / "custom.safetensors")
    with pytest.raises(ValueError, match=r"custom_objects=\{'scaled_tanh'"):
        cnnkit.load_model(path)
    custom = {"scaled_tanh": scaled_tanh, "Halve": Halve, "squared_error": squared_error, "prediction_mean": prediction_mean}
    loaded = cnnkit.load_model(path, custom_objects=custom)
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-6)
    assert loaded.layers[0].kernel_initializer.value == 0.25
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-6)


def test_a_lambda_cannot_be_saved_and_the_error_names_the_layer(tmp_path):
    model = Sequential([Input((3,)), Dense(2, activation=lambda t: t, name="odd")])
    with pytest.raises(TypeError, match="Dense 'odd': cannot save activation"):
        model.save(tmp_path / "lambda.safetensors")
    assert not (tmp_path / "lambda.safetensors").exists()


def test_a_cnnkit_loss_function_used_as_a_metric_loads_back(tmp_path):
    model = Sequential([Input((3,)), Dense(1)])
    model.compile("sgd", "mse", metrics=[cnnkit.losses.hinge])
    path = model.save(tmp_path / "loss_metric.safetensors")
    loaded = cnnkit.load_model(path)
    assert [m.name for m in loaded.metrics] == [m.name for m in model.metrics]


def _tensor_bytes(path, key):
    """Where tensor ``key``'s bytes lie in a safetensors file: (start, end) offsets."""
    raw = path.read_bytes()
    header_size = int.from_bytes(raw[:8], "little")
    start, end = json.loads(raw[8:8 + header_size])[key]["data_offsets"]
    return 8 + header_size + start, 8 + header_size + end


def test_a_corrupted_tensor_is_refused_naming_it(tmp_path):
    target = tmp_path / "model.safetensors"
    model = compiled(cnn())
    model.fit(*data(), epochs=1, verbose=0)
    model.save(target)
    start, _ = _tensor_bytes(target, "layers.0.kernel")
    raw = bytearray(target.read_bytes())
    raw[start + 5] ^= 0x10  # one flipped bit
    target.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="tensor 'layers.0.kernel' do not match the checksum"):
        cnnkit.load_model(target)
    with pytest.raises(ValueError, match="layers.0.kernel"):
        cnn().load_weights(target)


def test_files_saved_before_checksums_still_load(tmp_path):
    from safetensors import safe_open

    target = tmp_path / "model.safetensors"
    model = cnn()
    model.save(target)
    with safe_open(str(target), framework="numpy") as stream:
        metadata = stream.metadata()
        tensors = {key: stream.get_tensor(key) for key in stream.keys()}
    del metadata["checksums"]
    save_file(tensors, str(target), metadata=metadata)
    x, _ = data(4)
    np.testing.assert_array_equal(cnnkit.load_model(target).predict(x), model.predict(x))


def test_a_full_disk_is_an_oserror_naming_the_file_and_leaves_no_temporary(tmp_path):
    import resource
    import signal

    target = tmp_path / "model.safetensors"
    model = cnn()
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (512, hard))  # writes past 512 bytes fail as on a full disk
    try:
        with pytest.raises(OSError) as caught:
            model.save(target)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
    assert str(target) in str(caught.value) and ".tmp" not in str(caught.value)
    assert caught.value.filename == str(target)
    assert os.listdir(tmp_path) == []


def test_a_read_only_location_is_an_oserror_naming_the_file(tmp_path, monkeypatch):
    target = tmp_path / "model.safetensors"

    def refuse(prefix, suffix, dir):
        name = os.path.join(dir, f"{prefix}abcd1234{suffix}")
        raise PermissionError(13, "Permission denied", name)

    monkeypatch.setattr(saving.tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionError) as caught:
        cnn().save_weights(target)
    assert caught.value.filename == str(target) and ".tmp" not in str(caught.value)


def test_stale_temporaries_of_interrupted_saves_are_removed_by_the_next_save(tmp_path):
    target = tmp_path / "model.safetensors"
    stale = tmp_path / ".model.safetensors.k3x_9q0z.tmp"
    fresh = tmp_path / ".model.safetensors.a1b2c3d4.tmp"  # perhaps another process's save in progress
    unrelated = tmp_path / ".model.safetensors.notes.tmp"
    other_file = tmp_path / ".other.safetensors.k3x_9q0z.tmp"
    long_ago = time.time() - 2 * saving.STALE_TEMPORARY_SECONDS
    for path in (stale, fresh, unrelated, other_file):
        path.write_bytes(b"half a file")
    for path in (stale, unrelated, other_file):
        os.utime(path, (long_ago, long_ago))
    cnn().save(target)
    assert sorted(os.listdir(tmp_path)) == sorted([target.name, fresh.name, unrelated.name, other_file.name])


def test_batch_norm_update_counts_are_saved_and_old_checkpoints_still_load(tmp_path):
    x, y = data()
    model = compiled(cnn())
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert model.layers[1].updates_seen == 3
    loaded = cnnkit.load_model(model.save(tmp_path / "new.safetensors"))
    assert loaded.layers[1].updates_seen == 3
    model.save_weights(tmp_path / "weights.safetensors")
    fresh = compiled(cnn())
    fresh.load_weights(tmp_path / "weights.safetensors")
    assert fresh.layers[1].updates_seen == 3

    # a file written before the count existed: its statistics stand for many batches (plain Keras update)
    tensors, metadata = saving._read(tmp_path / "new.safetensors")
    del metadata["layer_states"]
    save_file(tensors, str(tmp_path / "old.safetensors"), metadata=metadata)
    old = cnnkit.load_model(tmp_path / "old.safetensors")
    np.testing.assert_array_equal(old.predict(x), model.predict(x))
    assert old.layers[1].updates_seen is None
    assert old.layers[1]._update_momentum() == old.layers[1].momentum


@pytest.mark.parametrize("name", ["m.h5", "m.keras", "model", "m.pt"])
def test_saving_under_another_format_s_name_or_into_a_folder_is_refused(tmp_path, name):
    model = cnn()
    with pytest.raises(ValueError, match=r"must end in \.safetensors"):
        model.save(tmp_path / name)
    with pytest.raises(ValueError, match=r"must end in \.safetensors"):
        model.save_weights(tmp_path / name)
    with pytest.raises(ValueError, match=r"ModelCheckpoint: .* must end in \.safetensors"):
        cnnkit.callbacks.ModelCheckpoint(str(tmp_path / name))
    with pytest.raises(ValueError, match="is a folder"):
        model.save(tmp_path)
    assert not any(tmp_path.iterdir())
    assert model.save(tmp_path / "M.SafeTensors").exists()
