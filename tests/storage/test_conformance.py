"""One conformance suite for every NoiseStore backend: same rows in, same rows out, as dense numpy.

Each backend subclass only says how to build a store; every test compares with a plain numpy
computation on the dense matrix.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.sparse as sp

from absint.linear import ColumnSelectOp, linear_op
from absint.network import Affine, AvgPool2d, Conv2d, ElementwiseAffine, Reshape, Transpose
from storage import CSRFormat, DenseFormat, HDF5Format, Scratch


def sparse_rows(rng, m, n, density=0.2):
    g = rng.normal(size=(m, n))
    g[rng.random((m, n)) > density] = 0.0
    return g


OPS = {
    "affine": lambda rng: (Affine(rng.normal(size=(7, 48)), rng.normal(size=7)), (48,)),
    "conv": lambda rng: (Conv2d(rng.normal(size=(4, 3, 3, 3)), rng.normal(size=4), (1, 1), (1, 1, 1, 1)), (3, 4, 4)),
    "conv_strided_grouped": lambda rng: (Conv2d(rng.normal(size=(6, 1, 2, 2)), np.zeros(6), (2, 2), (0, 1, 1, 0),
                                                (1, 1), 3), (3, 4, 4)),
    "elementwise": lambda rng: (ElementwiseAffine(rng.normal(size=(3, 4, 4)), rng.normal(size=(3, 4, 4))), (3, 4, 4)),
    "reshape": lambda rng: (Reshape((48,)), (3, 4, 4)),
    "transpose": lambda rng: (Transpose((2, 0, 1)), (3, 4, 4)),
    "avgpool": lambda rng: (AvgPool2d((2, 2), (2, 2), (0, 0, 0, 0)), (3, 4, 4)),
}


class StoreConformance:
    """Subclasses provide ``fmt()``: the format under test."""

    def fmt(self, tmp_path):
        raise NotImplementedError

    def make(self, tmp_path, g):
        builder = self.fmt(tmp_path).builder(g.shape[1])
        for start in range(0, len(g), 3):  # several blocks (a builder owns what it gets: copies)
            builder.append(g[start:start + 3].copy())
        return builder.finish()

    @pytest.mark.parametrize("m", [0, 1, 10])
    def test_roundtrip_shape_and_abs_sum(self, tmp_path, m):
        rng = np.random.default_rng(m)
        g = sparse_rows(rng, m, 48)
        store = self.make(tmp_path, g)
        assert store.shape == (m, 48)
        np.testing.assert_array_equal(store.to_dense(), g)
        np.testing.assert_allclose(store.abs_row_sum(), np.abs(g).sum(axis=0), rtol=1e-14, atol=0)
        store.close()

    @pytest.mark.parametrize("name", sorted(OPS))
    @pytest.mark.parametrize("out", ["same", "dense", "csr"])
    def test_apply_matches_dense_operator(self, tmp_path, name, out):
        rng = np.random.default_rng(len(name))
        layer, in_shape = OPS[name](rng)
        op = linear_op(layer, in_shape)
        g = sparse_rows(rng, 9, op.n_in)
        store = self.make(tmp_path, g)
        fmt = {"same": None, "dense": DenseFormat(), "csr": CSRFormat()}[out]
        result = store.apply(op, fmt)
        expected = op.apply(g)
        np.testing.assert_allclose(result.to_dense(), expected, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(result.abs_row_sum(), np.abs(expected).sum(axis=0), rtol=1e-12, atol=1e-12)
        assert result.shape == (9, op.n_out)

    def test_column_select(self, tmp_path):
        rng = np.random.default_rng(3)
        g = sparse_rows(rng, 6, 10)
        index = rng.integers(0, 10, size=5)
        scale = (rng.random(5) < 0.6).astype(float)
        op = ColumnSelectOp(index, scale, (10,), (5,))
        result = self.make(tmp_path, g).apply(op)
        np.testing.assert_array_equal(result.to_dense(), g[:, index] * scale)

    def test_scale_append_pad(self, tmp_path):
        rng = np.random.default_rng(4)
        g = sparse_rows(rng, 5, 12)
        store = self.make(tmp_path, g)
        lam = rng.random(12)
        lam[::4] = 0.0
        store.scale_columns(lam)
        expected = g * lam
        np.testing.assert_allclose(store.to_dense(), expected, rtol=1e-15)
        cols, vals = np.array([0, 3, 11]), np.array([0.5, 2.0, 1e-3])
        store.append_symbols(cols, vals)
        new = np.zeros((3, 12))
        new[np.arange(3), cols] = vals
        expected = np.vstack([expected, new])
        store.pad_symbols(10)
        expected = np.vstack([expected, np.zeros((2, 12))])
        np.testing.assert_allclose(store.to_dense(), expected, rtol=1e-15)
        np.testing.assert_allclose(store.abs_row_sum(), np.abs(expected).sum(axis=0), rtol=1e-14)
        assert store.shape == (10, 12)

    @pytest.mark.parametrize("other", ["dense", "csr"])
    def test_add_across_formats(self, tmp_path, other):
        rng = np.random.default_rng(5)
        a, b = sparse_rows(rng, 8, 6), sparse_rows(rng, 8, 6)
        sa = self.make(tmp_path, a)
        sb = (DenseFormat() if other == "dense" else CSRFormat()).builder(6)
        sb.append(b[:5])
        sb.append(b[5:])
        total = sa.add(sb.finish())
        np.testing.assert_allclose(total.to_dense(), a + b, rtol=1e-15)
        with pytest.raises(ValueError, match="shapes"):
            sa.add(self.make(tmp_path, a[:3]))

    def test_identity_operator_does_not_alias(self, tmp_path):
        """A Reshape's store must not share rows with its input: the next ReLU scales in place."""
        g = sparse_rows(np.random.default_rng(8), 5, 48)
        store = self.make(tmp_path, g)
        out = store.apply(linear_op(Reshape((48,)), (3, 4, 4)))
        out.scale_columns(np.zeros(48))
        np.testing.assert_array_equal(store.to_dense(), g)

    def test_convert(self, tmp_path):
        rng = np.random.default_rng(6)
        g = sparse_rows(rng, 7, 9)
        store = self.make(tmp_path, g)
        for fmt in (DenseFormat(), CSRFormat()):
            np.testing.assert_array_equal(store.convert(fmt).to_dense(), g)
        assert store.convert(store.format) is store


class TestDense(StoreConformance):
    def fmt(self, tmp_path):
        return DenseFormat()


class TestCSR(StoreConformance):
    def fmt(self, tmp_path):
        return CSRFormat()

    def test_holds_only_nonzeros(self, tmp_path):
        g = np.zeros((100, 1000))
        g[np.arange(100), np.arange(100) * 7] = 1.0
        store = self.make(tmp_path, g)
        assert store.nnz == 100
        assert store.nbytes < 100 * 1000 * 8 / 20


class TestHDF5(StoreConformance):
    def fmt(self, tmp_path):
        if not hasattr(self, "_scratch"):
            self._scratch = Scratch(tmp_path)
        return HDF5Format(self._scratch, block_bytes=8 * 48 * 4)  # a few rows per block

    def test_files_removed_on_close_and_scratch_close(self, tmp_path):
        g = sparse_rows(np.random.default_rng(7), 20, 48)
        store = self.make(tmp_path, g)
        assert os.path.exists(store.path) and store.disk_bytes > 0
        assert store.nbytes <= 48 * 8  # rows live on disk
        store.close()
        assert not os.path.exists(store.path)
        other = self.make(tmp_path, g)
        scratch_dir = self._scratch.path
        self._scratch.close()
        assert not os.path.exists(scratch_dir)
        assert not os.path.exists(other.path)

    def test_disk_full_is_a_clear_error(self, tmp_path, monkeypatch):
        import shutil

        from storage import DiskSpaceError

        fmt = self.fmt(tmp_path)
        usage = shutil.disk_usage(tmp_path)
        monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=1000))
        builder = fmt.builder(48)
        with pytest.raises(DiskSpaceError, match="free"):
            builder.append(np.ones((4, 48)))
        builder.abort()
        monkeypatch.undo()
        assert os.listdir(self._scratch.path) == []

    def test_missing_scratch_directory(self, tmp_path):
        from storage import StorageError

        with pytest.raises(StorageError, match="does not exist"):
            Scratch(tmp_path / "nope")


def test_csr_blocks_accept_sparse_and_dense():
    builder = CSRFormat().builder(4)
    builder.append(sp.csr_matrix(np.eye(4)[:2]))
    builder.append(np.eye(4)[2:])
    np.testing.assert_array_equal(builder.finish().to_dense(), np.eye(4))
