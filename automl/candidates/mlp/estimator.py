"""The Keras MLP as scikit-learn estimators: parameters, the training loop (warm-up and cosine
decay, early stopping, a wall-clock limit, the epoch reporter), prediction and pickling."""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from automl.candidates.mlp.runtime import (
    _REPORTER,
    FINAL_LR_FRACTION,
    LOSSES,
    WARMUP_EPOCHS,
    WARMUP_START,
    _configure_tensorflow,
    _from_bytes,
    _is_int,
    _is_real,
    _keras,
    _outputs,
    _outputs_float64,
    _problem,
    _tensorflow,
    _to_bytes,
)
from automl.errors import ArtifactCorrupt


def _as_target(y: np.ndarray, kind: str) -> np.ndarray:
    return y.astype(np.int64) if kind == "multiclass" else y.astype(np.float32).reshape(-1, 1)


_STATE_BYTES = "_keras_model_bytes"
_STATE_SHA256 = "_keras_model_sha256"


class _KerasMLP(BaseEstimator):  # type: ignore[misc]
    """Shared parameters, training loop, prediction and pickling of the two MLP estimators.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int
        Units of each hidden ``Dense`` + ReLU layer, 1 to 3 layers.
    dropout : float in [0, 1)
        Dropout rate after each hidden layer.
    batch_norm : bool
        Batch normalisation before each ReLU.
    l2 : float >= 0
        L2 weight decay on the kernels.
    learning_rate : float > 0
        Peak Adam learning rate, reached after the warm-up and decayed by a cosine.
    batch_size : int >= 1
    max_epochs : int >= 1
    validation_fraction : float in [0, 1)
        Rows held out for early stopping; 0 (or too few rows) stops on the training loss.
    patience : int >= 1
        Epochs without improvement of the validation loss before training stops.
    max_time_s : float > 0 or None
        Stop training once this many seconds have passed (checked after every batch).
    random_state : int, RandomState or None
        Seeds Keras (``keras.utils.set_random_seed``, which also seeds Python's and NumPy's
        global generators) and the validation split.
    n_jobs : int or None
        TensorFlow's intra-op threads; fixed by the first fit in the process.
    verbose : int
        Keras's ``fit`` verbosity.

    Attributes
    ----------
    model_ : keras.Model
    history_ : list of dict
        One ``{"epoch", "loss", "val_loss", "lr"}`` per epoch run, ``epoch`` counting from 1.
    n_epochs_ : int
    best_epoch_ : int
        The epoch whose weights were kept.
    pruned_ : bool
        True when the epoch reporter stopped training.
    stop_reason_ : str
        ``"early_stopping"``, ``"max_epochs"``, ``"max_time"``, ``"pruned"`` or ``"diverged"``
        (a non-finite loss).
    n_features_in_ : int
    """

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (64, 32),
        dropout: float = 0.1,
        batch_norm: bool = False,
        l2: float = 1e-5,
        learning_rate: float = 1e-3,
        batch_size: int = 128,
        max_epochs: int = 100,
        validation_fraction: float = 0.1,
        patience: int = 10,
        max_time_s: float | None = None,
        random_state: Any = None,
        n_jobs: int | None = None,
        verbose: int = 0,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.l2 = l2
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.max_time_s = max_time_s
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    # -- parameters ---------------------------------------------------------------------------

    def _check_params(self) -> None:
        owner = type(self).__name__
        sizes = self.hidden_layer_sizes
        if (
            not isinstance(sizes, tuple | list)
            or not 1 <= len(sizes) <= 3
            or not all(_is_int(u) and u >= 1 for u in sizes)
        ):
            raise _problem(owner, "hidden_layer_sizes", "a tuple of 1 to 3 positive ints", sizes)
        if not _is_real(self.dropout) or not 0.0 <= self.dropout < 1.0:
            raise _problem(owner, "dropout", "a float in the range [0.0, 1.0)", self.dropout)
        if not isinstance(self.batch_norm, bool | np.bool_):
            raise _problem(owner, "batch_norm", "a bool", self.batch_norm)
        if not _is_real(self.l2) or self.l2 < 0:
            raise _problem(owner, "l2", "a float >= 0", self.l2)
        if not _is_real(self.learning_rate) or self.learning_rate <= 0:
            raise _problem(owner, "learning_rate", "a float > 0", self.learning_rate)
        for name in ("batch_size", "max_epochs", "patience"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise _problem(owner, name, "an int >= 1", value)
        if not _is_real(self.validation_fraction) or not 0.0 <= self.validation_fraction < 1.0:
            raise _problem(owner, "validation_fraction", "a float in the range [0.0, 1.0)", self.validation_fraction)
        if self.max_time_s is not None and (not _is_real(self.max_time_s) or self.max_time_s <= 0):
            raise _problem(owner, "max_time_s", "a float > 0 or None", self.max_time_s)
        if self.n_jobs is not None and not _is_int(self.n_jobs):
            raise _problem(owner, "n_jobs", "an int or None", self.n_jobs)

    # -- training -----------------------------------------------------------------------------

    def _split(
        self, X: np.ndarray, y: np.ndarray, stratify: bool, rng: np.random.RandomState
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        n_val = round(float(self.validation_fraction) * len(X))
        if n_val < 1 or len(X) - n_val < 1:
            return X, y, None, None
        strata = None
        if stratify:
            counts = np.bincount(y)
            if counts.min() >= 2 and n_val >= len(counts) and len(X) - n_val >= len(counts):
                strata = y
        X_fit, X_val, y_fit, y_val = train_test_split(
            X, y, test_size=n_val, stratify=strata, random_state=rng.randint(np.iinfo(np.int32).max)
        )
        return X_fit, y_fit, X_val, y_val

    def _network(self, keras: Any, n_features: int, n_outputs: int, activation: str | None) -> Any:
        layers = keras.layers
        regularizer = keras.regularizers.L2(float(self.l2)) if self.l2 > 0 else None
        inputs = keras.Input(shape=(n_features,), name="features")
        x = inputs
        for i, units in enumerate(self.hidden_layer_sizes, start=1):
            # With batch normalisation the Dense bias is redundant: BN's beta takes its place.
            x = layers.Dense(
                int(units), use_bias=not self.batch_norm, kernel_regularizer=regularizer, name=f"dense_{i}"
            )(x)
            if self.batch_norm:
                x = layers.BatchNormalization(name=f"batch_norm_{i}")(x)
            x = layers.Activation("relu", name=f"relu_{i}")(x)
            if self.dropout > 0:
                x = layers.Dropout(float(self.dropout), name=f"dropout_{i}")(x)
        outputs = layers.Dense(n_outputs, activation=activation, name="output")(x)
        return keras.Model(inputs, outputs, name="automl_mlp")

    def _fit_network(self, X: np.ndarray, y: np.ndarray, n_outputs: int, activation: str | None, kind: str) -> None:
        """Train ``model_`` on ``X`` and encoded ``y`` (class codes, or the standardised target).

        ``kind`` is ``"binary"``, ``"multiclass"`` or ``"regression"`` and picks the loss. Sets
        every fitted attribute except the task's own (``classes_``, the target scaling).
        """
        self._check_params()
        reporter = _REPORTER.get()
        keras = _keras()
        _configure_tensorflow(self.n_jobs)
        rng = check_random_state(self.random_state)
        if _is_int(self.random_state):
            keras.utils.set_random_seed(int(self.random_state))
        elif self.random_state is not None:  # a RandomState: draw the Keras seed from it
            keras.utils.set_random_seed(int(rng.randint(np.iinfo(np.int32).max)))
        X_fit, y_fit, X_val, y_val = self._split(X, y, kind != "regression", rng)
        # Class codes for the softmax; an (n, 1) float column to match a single output.
        y_fit = _as_target(y_fit, kind)
        y_val = None if y_val is None else _as_target(y_val, kind)

        batch_size = min(int(self.batch_size), len(X_fit))
        steps_per_epoch = math.ceil(len(X_fit) / batch_size)
        max_epochs = int(self.max_epochs)
        warmup_steps = min(WARMUP_EPOCHS, max_epochs // 10) * steps_per_epoch
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=float(self.learning_rate) * (WARMUP_START if warmup_steps else 1.0),
            decay_steps=max(1, max_epochs * steps_per_epoch - warmup_steps),
            alpha=FINAL_LR_FRACTION,
            warmup_target=float(self.learning_rate) if warmup_steps else None,
            warmup_steps=warmup_steps,
        )
        model = self._network(keras, X.shape[1], n_outputs, activation)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=schedule), loss=LOSSES[kind](keras))

        history: list[dict[str, float]] = []
        state = {"pruned": False, "timed_out": False, "diverged": False}
        stopper = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=int(self.patience), restore_best_weights=True
        )
        stopper.set_model(model)
        data_loss = LOSSES[kind](keras)
        started = time.monotonic()

        def out_of_time() -> bool:
            if self.max_time_s is not None and time.monotonic() - started > self.max_time_s:
                state["timed_out"] = True
                return True
            return False

        def on_epoch_end(epoch: int, logs: dict[str, Any] | None) -> None:
            logs = dict(logs or {})
            train_loss = float(logs["loss"])
            # The held-out loss is computed here, eagerly, rather than by Keras's validation pass:
            # that pass traces an evaluation function per model and rebuilds its iterator every
            # epoch, which costs more than a small epoch of training. It is the data loss alone;
            # the training loss also carries the L2 penalty.
            if X_val is not None and y_val is not None:
                val_loss = float(data_loss(y_val, _outputs(model, X_val, np.float32)).numpy())
            else:
                val_loss = train_loss
            row = {
                "epoch": epoch + 1,
                "loss": train_loss,
                "val_loss": val_loss,
                "lr": float(model.optimizer.learning_rate.numpy()),
            }
            history.append(row)
            stopper.on_epoch_end(epoch, {**logs, **row})
            if reporter is not None and reporter(epoch + 1, {**logs, **row}):
                state["pruned"] = True
            # A non-finite loss never recovers; stop, and the stopper restores the last good weights.
            state["diverged"] = not (math.isfinite(train_loss) and math.isfinite(val_loss))
            if state["pruned"] or state["diverged"] or out_of_time():
                model.stop_training = True

        def on_batch_end(batch: int, logs: dict[str, Any] | None) -> None:
            if out_of_time():
                model.stop_training = True

        callbacks: list[Any] = [
            keras.callbacks.LambdaCallback(
                on_train_begin=stopper.on_train_begin,
                on_epoch_end=on_epoch_end,
                on_train_end=stopper.on_train_end,  # restores the best weights, however training stopped
            )
        ]
        if self.max_time_s is not None:
            timer = keras.callbacks.LambdaCallback(on_train_batch_end=on_batch_end)
            timer.async_safe = True  # Keras may run it off the training loop, which never waits on it
            callbacks.append(timer)
        # A repeated dataset with fixed steps per epoch lets Keras keep one iterator for the whole
        # fit; NumPy inputs get a fresh one per epoch, at ~30 ms each.
        tf = _tensorflow()
        seed = None if self.random_state is None else int(rng.randint(np.iinfo(np.int32).max))
        train = (
            tf.data.Dataset.from_tensor_slices((X_fit, y_fit))
            .shuffle(len(X_fit), seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size)
            .repeat()
        )
        model.fit(
            train,
            epochs=max_epochs,
            steps_per_epoch=steps_per_epoch,
            shuffle=False,
            callbacks=callbacks,
            verbose=self.verbose,
        )

        self.model_ = model
        self.history_ = history
        self.n_epochs_ = len(history)
        self.best_epoch_ = int(stopper.best_epoch) + 1 if history else 0
        self.pruned_ = state["pruned"]
        if state["pruned"]:
            self.stop_reason_ = "pruned"
        elif state["diverged"]:
            self.stop_reason_ = "diverged"
        elif state["timed_out"]:
            self.stop_reason_ = "max_time"
        elif stopper.stopped_epoch > 0:
            self.stop_reason_ = "early_stopping"
        else:
            self.stop_reason_ = "max_epochs"

    # -- prediction ---------------------------------------------------------------------------

    def _forward(self, X: Any) -> np.ndarray:
        """The network's outputs for ``X``, computed in float64 (see :func:`_outputs_float64`).

        ``X`` is first rounded to float32, the precision the network was trained on.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float32)
        return _outputs_float64(self.model_, X)

    # -- pickling -----------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        model = state.pop("model_", None)
        if model is not None:
            data = _to_bytes(model)
            state[_STATE_BYTES] = data
            state[_STATE_SHA256] = hashlib.sha256(data).hexdigest()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        data = state.pop(_STATE_BYTES, None)
        sha256 = state.pop(_STATE_SHA256, None)
        super().__setstate__(state)
        if data is not None:
            if not isinstance(sha256, str):
                raise ArtifactCorrupt(
                    f"a pickled {type(self).__name__} holds Keras model bytes without their sha256",
                    hint="the saved model was changed or damaged after it was written; restore it or retrain",
                )
            _configure_tensorflow(getattr(self, "n_jobs", None))
            self.model_ = _from_bytes(data, sha256, type(self).__name__)


class KerasMLPClassifier(ClassifierMixin, _KerasMLP):  # type: ignore[misc]
    """Multi-layer perceptron classifier: sigmoid output for two classes, softmax for more.

    Parameters and attributes are those of the shared base (see ``_KerasMLP``), plus
    ``classes_``.
    """

    def fit(self, X: Any, y: Any) -> KerasMLPClassifier:
        """Fit the network; stops early on the validation loss."""
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        classes, codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes to fit; got 1 class ({classes[0]!r}).")
        if len(classes) == 2:
            self._fit_network(X, codes, 1, "sigmoid", "binary")
        else:
            self._fit_network(X, codes, len(classes), "softmax", "multiclass")
        self.classes_ = classes
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, one column per class in ``classes_``; rows sum to 1."""
        out = self._forward(X)
        if len(self.classes_) == 2:
            p = np.clip(out[:, 0], 0.0, 1.0)
            return np.column_stack([1.0 - p, p])
        out = np.clip(out, 0.0, None)
        # Renormalise in float64: a no-op bar rounding for the float64 softmax, and needed when
        # the outputs come from Keras's float32 softmax (which sums to 1 only within ~1e-7).
        return np.asarray(out / out.sum(axis=1, keepdims=True))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class."""
        proba = self.predict_proba(X)
        return np.asarray(self.classes_[np.argmax(proba, axis=1)])


class KerasMLPRegressor(RegressorMixin, _KerasMLP):  # type: ignore[misc]
    """Multi-layer perceptron regressor with a linear output, trained on a standardised target.

    Parameters and attributes are those of the shared base (see ``_KerasMLP``), plus ``y_mean_``
    and ``y_scale_``, the target's standardisation.
    """

    def fit(self, X: Any, y: Any) -> KerasMLPRegressor:
        """Fit the network; stops early on the validation loss."""
        X, y = validate_data(self, X, y, dtype=np.float32, y_numeric=True)
        y = np.asarray(y, dtype=np.float64)
        mean, scale = float(y.mean()), float(y.std())
        scale = scale if scale > 0 and np.isfinite(scale) else 1.0
        # Standardising the target keeps the learning rate and weight decay meaningful on any scale.
        self._fit_network(X, (y - mean) / scale, 1, None, "regression")
        self.y_mean_, self.y_scale_ = mean, scale
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets."""
        return np.asarray(self._forward(X)[:, 0] * self.y_scale_ + self.y_mean_)
