import gzip

import numpy as np
import pytest

from cnnkit.datasets import read_idx, write_idx

DTYPES = ["uint8", "int8", "int16", "int32", "float32", "float64"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7,), (3, 4, 5)])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip(tmp_path, dtype, shape, suffix):
    rng = np.random.default_rng(0)
    array = (rng.uniform(-100, 100, shape) if dtype[0] in "if" and dtype != "uint8" else rng.uniform(0, 255, shape))
    array = array.astype(dtype)
    path = tmp_path / f"data-idx{len(shape)}-{dtype}{suffix}"
    write_idx(path, array)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative and out.shape == shape
    np.testing.assert_array_equal(out, array)
    out[...] = 0  # a writable copy, not a view of the file's bytes


def test_layout_matches_the_specification(tmp_path):
    path = tmp_path / "small"
    write_idx(path, np.array([[1, 2, 3], [4, 5, 258]], dtype=np.int16))
    raw = path.read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0B, 2])
    assert raw[4:12] == bytes([0, 0, 0, 2, 0, 0, 0, 3])
    assert raw[12:] == bytes([0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 1, 2])  # big-endian values


def test_hand_written_uint8_file(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 4, 7, 2, 1, 0]))
    out = read_idx(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [7, 2, 1, 0])


def test_gzip_is_recognised_by_content_not_name(tmp_path):
    path = tmp_path / "compressed-without-suffix"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 2, 9, 9])))
    np.testing.assert_array_equal(read_idx(path), [9, 9])


def _header(code, dims):
    return bytes([0, 0, code, len(dims)]) + np.asarray(dims, ">u4").tobytes()


@pytest.mark.parametrize("content,match", [
    (_header(8, [2, 3]) + bytes(5), r"truncated: shape \(2, 3\) of uint8 needs 6 data bytes .* found 5"),
    (_header(8, [2, 3]) + bytes(7), r"longer than its header says: .*needs 6 data bytes .* found 7"),
    (_header(0x0C, [2]) + bytes(7), r"truncated: shape \(2,\) of int32 needs 8"),
    (bytes([0, 1, 8, 1, 0, 0, 0, 1, 5]), r"magic number must start with two zero bytes, got 0x00010801"),
    (bytes([0, 0, 0x0A, 1, 0, 0, 0, 1, 5]), r"unknown data type code 0x0A \(known: 0x08 uint8"),
    (bytes([0, 0, 8]), "fewer than the 4-byte magic number"),
    (bytes([0, 0, 8, 3, 0, 0, 0, 1]), r"declares 3 dimensions, which need 16 header bytes"),
])
@pytest.mark.parametrize("compress", [False, True])
def test_malformed_files_raise_naming_the_file(tmp_path, content, match, compress):
    path = tmp_path / ("broken-file.gz" if compress else "broken-file")
    path.write_bytes(gzip.compress(content) if compress else content)
    with pytest.raises(ValueError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_corrupt_gzip_raises_naming_the_file(tmp_path):
    path = tmp_path / "corrupt.gz"
    path.write_bytes(gzip.compress(_header(8, [4]) + bytes(4))[:-6])
    with pytest.raises(ValueError, match="cannot be decompressed") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_write_idx_rejects_unsupported_dtypes(tmp_path):
    with pytest.raises(ValueError, match="dtype must be one of uint8, int8, int16, int32, float32, float64, got int64"):
        write_idx(tmp_path / "x", np.zeros(3, np.int64))
