"""Programs the distributed tests start on several MPI ranks (``python workers.py NAME OUT_DIR``).

Rank 0 writes what the ranks saw to OUT_DIR for the test to check; the single-process
reference runs in the test itself, from the same functions.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import cnnkit
from cnnkit import distributed
from cnnkit.callbacks import BackupAndRestore, Callback, CSVLogger, ModelCheckpoint
from cnnkit.data import DataLoader
from cnnkit.layers import BatchNormalization, Conv2D, Dense, Flatten, Input, ReLU

SAMPLES = 38  # 19 per rank: batches of 4, 4, 4, 4, 3 on each of two ranks
SEED = 100


def dataset() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.normal(size=(SAMPLES, 1, 6, 6)).astype(np.float32), rng.integers(0, 3, size=SAMPLES)


def small_model(seed: int, units: int = 3, batch_norm: bool = False):
    cnnkit.manual_seed(seed)
    # Before batch norm a bias gets only rounding noise as gradient, which Adam would blow up to full steps.
    normalise = [BatchNormalization(momentum=0.9)] if batch_norm else []
    model = cnnkit.Sequential([Input((1, 6, 6)), Conv2D(4, 3, use_bias=not batch_norm), *normalise, ReLU(),
                               Flatten(), Dense(units)])
    model.compile(cnnkit.optimizers.Adam(learning_rate=1e-2),
                  cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def flat_weights(model) -> np.ndarray:
    return np.concatenate([w.numpy().ravel() for w in model.weights])


def train(out: Path, device: str = "cpu") -> None:
    """Two epochs data-parallel from different initial weights per rank; what every rank ended with."""
    distributed.init()
    rank = distributed.rank()
    collectives = _check_collectives(device)
    x, y = dataset()
    model = small_model(SEED + rank)  # different on each rank: the broadcast from rank 0 must fix it
    own = out / f"rank{rank}"
    callbacks = [CSVLogger(own / "log.csv"), ModelCheckpoint(own / "model.safetensors", monitor="loss")]
    history = model.fit(x, y, batch_size=4, epochs=2, distributed=True, callbacks=callbacks, verbose=2,
                        device=device)
    weights = distributed.allgather(flat_weights(model)[None])
    evaluated = model.evaluate(x, y, batch_size=5, verbose=0, return_dict=True, distributed=True)
    predicted = model.predict(x, batch_size=5, distributed=True)
    seen = _indices_seen()
    resumed, uninterrupted = _resume(x, y, own, device)
    normalised = {}
    for name, sync in (("local_bn", False), ("sync_bn", True)):
        bn_model = small_model(SEED + rank, batch_norm=True)
        bn_model.fit(x, y, batch_size=4, epochs=2, verbose=0, device=device,
                     distributed=distributed.DataParallel(sync_batch_norm=sync))
        normalised[name] = np.concatenate(distributed.allgather(flat_weights(bn_model)[None]))
    everyone = distributed.allgather_object({"history": history.history, "evaluate": evaluated,
                                             "collectives": collectives, "device": str(model.device)})
    if rank == 0:
        np.savez(out / "result.npz", weights=np.concatenate(weights), predicted=predicted, **normalised,
                 resumed=resumed, uninterrupted=uninterrupted,
                 **{f"seen_{name}_{r}": part for name, parts in seen.items() for r, part in enumerate(parts)})
        (out / "result.json").write_text(json.dumps(everyone))


class _Interrupt(Callback):
    """Stops every rank after the first epoch, as a crash would (after the epoch's backup)."""

    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt


def _resume(x, y, own: Path, device: str) -> tuple[np.ndarray, np.ndarray]:
    """Every rank's weights after 2 epochs interrupted after the first and resumed, and after 2 uninterrupted."""
    fit = dict(batch_size=4, epochs=2, verbose=0, device=device, distributed=True)
    try:
        small_model(SEED).fit(x, y, callbacks=[BackupAndRestore(own / "backup"), _Interrupt()], **fit)
    except KeyboardInterrupt:
        pass
    resumed = small_model(SEED + 7 + distributed.rank())  # the backup on rank 0 must replace these weights
    resumed.fit(x, y, callbacks=[BackupAndRestore(own / "backup")], **fit)
    uninterrupted = small_model(SEED)
    uninterrupted.fit(x, y, **fit)
    return (np.concatenate(distributed.allgather(flat_weights(resumed)[None])),
            np.concatenate(distributed.allgather(flat_weights(uninterrupted)[None])))


def _check_collectives(device: str) -> list[str]:
    """Each public collective on arrays of ``device`` (NCCL for CuPy); the names of those that gave wrong values."""
    xp = np if device == "cpu" else distributed.local_device().xp
    rank, size = distributed.rank(), distributed.size()
    with distributed.local_device().activate():
        wrong = []
        total = distributed.allreduce(xp.full(3, rank + 1.0, dtype=xp.float32))
        if not bool((total == size * (size + 1) / 2).all()):
            wrong.append("allreduce sum")
        mean = distributed.allreduce(xp.full(2, float(rank), dtype=xp.float64), op="mean")
        if not bool((mean == (size - 1) / 2).all()):
            wrong.append("allreduce mean")
        shared = distributed.broadcast(xp.arange(4, dtype=xp.int64) * (rank + 1), root=0)
        if not bool((shared == xp.arange(4)).all()):
            wrong.append("broadcast")
        parts = distributed.allgather(xp.full((rank + 1, 2), rank, dtype=xp.int32))
        if [tuple(p.shape) for p in parts] != [(r + 1, 2) for r in range(size)] or any(
                not bool((p == r).all()) for r, p in enumerate(parts)):
            wrong.append("allgather")
    return wrong


def _indices_seen() -> dict:
    """The sample indices each rank's loader yields in one epoch, for 37 samples shuffled with and without padding."""
    seen = {}
    for name, pad in (("exact", False), ("padded", True)):
        sampler = distributed.DistributedSampler(37, shuffle=True, seed=3, pad=pad)
        loader = DataLoader(np.arange(37), batch_size=4, shuffle=False, sampler=sampler)
        mine = np.concatenate([batch[0].numpy() for batch in loader])
        seen[name] = distributed.allgather(mine)
    return seen


def fail(out: Path) -> None:
    """Rank 1 raises while rank 0 waits in a collective that rank 1 never joins."""
    distributed.init()
    distributed.barrier()
    if distributed.rank() == 1:
        raise RuntimeError("rank one breaks on purpose")
    distributed.barrier()


def mismatch(out: Path) -> None:
    """Rank 1 builds a different last layer; fit must refuse before the first step."""
    distributed.init()
    x, y = dataset()
    model = small_model(SEED, units=3 + distributed.rank())
    model.fit(x, y, batch_size=4, epochs=1, distributed=True, verbose=0)


if __name__ == "__main__":
    if sys.argv[1] == "cli":  # the command line, as `mpirun -n 2 cnnkit ...` starts it
        from cnnkit.cli import main
        sys.exit(main(sys.argv[2:]))
    name, out_dir, *options = sys.argv[1:]
    {"train": train, "fail": fail, "mismatch": mismatch}[name](Path(out_dir), *options)
