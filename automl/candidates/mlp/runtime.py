"""The Keras network's runtime: TensorFlow loading (lazily: it takes seconds to import), the
per-epoch reporter a tuner prunes with, the network as checksummed ``.keras`` bytes, and the
float64 NumPy replica of a trained network that predictions run through (so a row's prediction does
not depend on the rows around it)."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np

from automl.errors import ArtifactCorrupt

NAME = "mlp"
# Below this many rows the tree families and the linear baseline win almost always, and a
# network's validation split leaves too few rows to stop on.
MIN_ROWS = 1_000
# A trial imports TensorFlow (4-6 s) and trains for seconds to minutes: below this budget the tree
# families use the time better (measured in bench/mlp_bench.py: the net never won at 30-60 s).
MIN_BUDGET_S = 600.0
# One-hot categoricals make wide, sparse inputs where trees are the better bet.
MAX_CATEGORICAL_SHARE = 0.5
WARMUP_EPOCHS = 3  # linear warm-up, capped at a tenth of max_epochs
WARMUP_START = 0.1  # warm-up starts at this fraction of the peak learning rate
FINAL_LR_FRACTION = 0.05  # cosine decay ends at this fraction of the peak
PREDICT_CHUNK = 8192

EpochReporter = Callable[[int, dict[str, float]], bool]
"""``fn(epoch, logs) -> stop``: ``epoch`` counts from 1; ``logs`` holds at least ``loss``,
``val_loss`` and ``lr``. Returning True stops training and marks the estimator ``pruned_``."""

_REPORTER: ContextVar[EpochReporter | None] = ContextVar("automl_mlp_epoch_reporter", default=None)


def set_epoch_reporter(fn: EpochReporter | None) -> None:
    """Call ``fn(epoch, logs)`` after every epoch of every MLP fit in this context; None stops.

    The reporter lives in a :class:`~contextvars.ContextVar`, so it applies to fits started from
    the same thread (or asyncio task) and never leaks into fits on other threads. A fit reads it
    once, when it starts. ``logs["val_loss"]`` is the training loss when the data is too small
    for a validation split.
    """
    _REPORTER.set(fn)


@contextlib.contextmanager
def epoch_reporter(fn: EpochReporter | None) -> Iterator[None]:
    """:func:`set_epoch_reporter` for the duration of a ``with`` block, then the previous one."""
    token = _REPORTER.set(fn)
    try:
        yield
    finally:
        _REPORTER.reset(token)


def _keras() -> Any:
    """Import Keras on TensorFlow, quietly; the only place this module imports them."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    # 3 also hides C++ ERROR lines: on CPU-only hosts TensorFlow logs a failed cuInit at that
    # level on every start; real failures still surface as Python exceptions.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"The mlp family needs Keras on the TensorFlow backend; KERAS_BACKEND selects "
            f"'{keras.backend.backend()}'. Unset KERAS_BACKEND or set it to 'tensorflow'."
        )
    return keras


def _tensorflow() -> Any:
    _keras()
    import tensorflow as tf

    return tf


def _configure_tensorflow(n_jobs: int | None) -> None:
    """Cap TensorFlow's thread pools at ``n_jobs`` and let GPU memory grow on demand.

    Both are only possible before TensorFlow starts its runtime: the first fit (or load) in a
    process fixes them, and later calls that find it running leave them as they are. One
    inter-op thread suffices, as an MLP's ops run in sequence. Memory growth keeps one trial
    process from reserving a whole GPU that its neighbours need.
    """
    tf = _tensorflow()
    for gpu in tf.config.list_physical_devices("GPU"):
        with contextlib.suppress(RuntimeError):  # "cannot be modified after initialization"
            tf.config.experimental.set_memory_growth(gpu, True)
    if n_jobs is None or n_jobs < 1:
        return
    threading = tf.config.threading
    with contextlib.suppress(RuntimeError):
        threading.set_intra_op_parallelism_threads(n_jobs)
    with contextlib.suppress(RuntimeError):
        threading.set_inter_op_parallelism_threads(1)


def _problem(owner: str, name: str, rule: str, value: Any) -> ValueError:
    return ValueError(f"The '{name}' parameter of {owner} must be {rule}. Got {value!r} instead.")


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _to_bytes(model: Any) -> bytes:
    with tempfile.TemporaryDirectory(prefix="automl-mlp-") as folder:
        path = Path(folder) / "model.keras"
        with warnings.catch_warnings():
            # Keras 3.15 converts variables with np.array(copy=False) while saving; NumPy 2 warns.
            warnings.filterwarnings("ignore", "__array__ implementation doesn't accept", DeprecationWarning)
            model.save(path)
        return path.read_bytes()


def _from_bytes(data: bytes, sha256: str, owner: str) -> Any:
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise ArtifactCorrupt(
            f"the Keras network inside a pickled {owner} fails its checksum: expected sha256 {sha256}, found {actual}",
            hint="the saved model was changed or damaged after it was written; restore it or retrain",
        )
    keras = _keras()
    with tempfile.TemporaryDirectory(prefix="automl-mlp-") as folder:
        path = Path(folder) / "model.keras"
        path.write_bytes(data)
        return keras.saving.load_model(path, safe_mode=True)


def _outputs(model: Any, X: np.ndarray, dtype: type[np.floating[Any]]) -> np.ndarray:
    """The network's float32 outputs for ``X`` in inference mode, computed in chunks by Keras.

    Calling the model eagerly, rather than ``Model.predict``, avoids tracing a predict function
    for every fitted model (most of a second per cross-validation fold). Training uses this for
    its held-out loss. A row's float32 output can still differ by a few ulps (~5e-8) with its
    position in a batch, as the matmul kernels block rows differently; predictions therefore go
    through :func:`_outputs_float64`.
    """
    parts = [model(X[i : i + PREDICT_CHUNK], training=False).numpy() for i in range(0, len(X), PREDICT_CHUNK)]
    return np.concatenate(parts).astype(dtype, copy=False)


_Step = Callable[[np.ndarray], np.ndarray]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.exp(-np.logaddexp(0.0, -x)))  # no overflow warning for large |x|


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


def _affine(kernel: np.ndarray | None, scale: np.ndarray | None, shift: np.ndarray | None) -> _Step:
    """``x @ kernel * scale + shift``, each part optional."""

    def step(x: np.ndarray) -> np.ndarray:
        if kernel is not None:
            x = x @ kernel
        if scale is not None:
            x = x * scale
        return x if shift is None else x + shift

    return step


def _float64_steps(model: Any) -> list[_Step] | None:
    """The inference pass of ``model`` as NumPy float64 steps, or None for a network it cannot mirror.

    It mirrors exactly the layers :meth:`_KerasMLP._network` builds, as a single chain: ``Dense``
    (linear, ReLU, sigmoid or softmax), ``BatchNormalization`` on its moving statistics,
    ``Activation`` and ``Dropout`` (the identity at inference). Anything else (another layer, a
    quantised or LoRA ``Dense``, batch renormalisation, a branching graph) gives None.
    """
    keras = _keras()
    activations: dict[Any, _Step] = {
        keras.activations.linear: lambda x: x,
        keras.activations.relu: lambda x: np.maximum(x, 0.0),
        keras.activations.sigmoid: _sigmoid,
        keras.activations.softmax: _softmax,
    }

    def weights(variable: Any) -> np.ndarray:
        # Variable.numpy(), not keras.ops.convert_to_numpy, which warns under NumPy 2 (copy=False).
        return np.asarray(variable.numpy(), dtype=np.float64)

    layers = list(getattr(model, "layers", []))
    if (
        not layers
        or type(layers[0]) is not keras.layers.InputLayer
        or len(model.inputs) != 1
        or len(model.outputs) != 1
        or model.outputs[0] is not layers[-1].output
        or any(layer.input is not before.output for before, layer in itertools.pairwise(layers))
    ):
        return None
    steps: list[_Step] = []
    for layer in layers[1:]:
        kind = type(layer)
        if kind is keras.layers.Dropout:
            continue
        if kind is keras.layers.Activation:
            if layer.activation not in activations:
                return None
            steps.append(activations[layer.activation])
        elif kind is keras.layers.Dense:
            if getattr(layer, "quantization_mode", None) or getattr(layer, "lora_enabled", False):
                return None
            if layer.activation not in activations:
                return None
            bias = None if layer.bias is None else weights(layer.bias)
            steps += [_affine(weights(layer.kernel), None, bias), activations[layer.activation]]
        elif kind is keras.layers.BatchNormalization:
            if layer.axis not in (-1, 1) or getattr(layer, "renorm", False):
                return None
            # As tf.nn.batch_normalization: x * inv + (beta - mean * inv), inv = gamma / sqrt(var + eps).
            inv = 1.0 / np.sqrt(weights(layer.moving_variance) + float(layer.epsilon))
            if layer.scale:
                inv = inv * weights(layer.gamma)
            shift = -weights(layer.moving_mean) * inv
            if layer.center:
                shift = shift + weights(layer.beta)
            steps.append(_affine(None, inv, shift))
        else:
            return None
    return steps


def _outputs_float64(model: Any, X: np.ndarray) -> np.ndarray:
    """The network's outputs for ``X``, computed in float64 with NumPy from its float32 weights.

    Float64 keeps the rounding of each row's result ~1e-16 relative, so a row's prediction does
    not depend, at any tolerance that matters, on the rows beside it or on its position in the
    input (scikit-learn's sample-order and subset invariance checks; float32 differs by ~5e-8),
    and softmax and sigmoid are computed at that precision too. A network
    :func:`_float64_steps` cannot mirror falls back to Keras's float32 outputs.
    """
    steps = _float64_steps(model)
    if steps is None:
        return _outputs(model, X, np.float64)
    parts = []
    for i in range(0, len(X), PREDICT_CHUNK):
        x = np.asarray(X[i : i + PREDICT_CHUNK], dtype=np.float64)
        for step in steps:
            x = step(x)
        parts.append(x)
    return np.concatenate(parts)


# Loss objects (not the bare functions, which broadcast an (n,) target against (n, 1) outputs).
LOSSES: dict[str, Callable[[Any], Any]] = {
    "binary": lambda keras: keras.losses.BinaryCrossentropy(),
    "multiclass": lambda keras: keras.losses.SparseCategoricalCrossentropy(),
    "regression": lambda keras: keras.losses.MeanSquaredError(),
}
