"""Credit (probability of default) estimators: logistic baseline, LightGBM, PyTorch MLP.

scikit-learn contract: `__init__` stores hyperparameters only, `fit` returns self, learned state
ends in `_`, `predict_proba` returns an (n, 2) array (column 1 = default). Each estimator also
explains its scores (`contributions`) and turns itself into files in formats that run no code
when loaded (`to_files`) and back (`from_files`): JSON (logistic coefficients, preprocessing),
LightGBM's text model, and for the MLP a numpy `.npz` of its state dict read with
`allow_pickle=False` into a network built from the hyperparameters (no pickle, no `torch.load`).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property, lru_cache
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from tala_ray.features.columns import row_count
from tala_ray.models.preprocessing import FeatureBatch, PreparedFeatures, Preprocessor

# Called during fit with (step, default probabilities on the validation set); lets Tune see progress.
ProgressCallback = Callable[[int, np.ndarray], None]
EvalSet = tuple[pd.DataFrame, np.ndarray]

PREPROCESSING_FILE = "preprocessing.json"
MODEL_FILE = "model.json"


class CreditEstimator:
    """Shared behaviour: hyperparameters, probabilities, contributions summed per feature, files."""

    family: ClassVar[str]
    weights_files: ClassVar[tuple[str, ...]]

    def get_params(self) -> dict[str, Any]:
        """The hyperparameters given to `__init__` (learned state ends in `_` and is left out)."""
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    def predict_proba(self, features: FeatureBatch) -> np.ndarray:
        p_default = self._predict_default(features)
        return np.column_stack([1.0 - p_default, p_default])

    def contributions(self, features: FeatureBatch) -> pd.DataFrame:
        """Per-feature contribution to each row's risk score (log-odds scale; larger = riskier)."""
        return self._contribution_frame(self._prepare(features), _index_of(features))

    def score(self, features: FeatureBatch) -> tuple[np.ndarray, pd.DataFrame]:
        """Default probabilities, shape (n,), and `contributions`, from one pass over the batch.

        Exactly `predict_proba(features)[:, 1]` and `contributions(features)`, cheaper than both.
        """
        batch = self._prepare(features)
        return self._default_probability(batch), self._contribution_frame(batch, _index_of(features))

    def _predict_default(self, features: FeatureBatch) -> np.ndarray:
        return self._default_probability(self._prepare(features))

    def _prepare(self, features: FeatureBatch) -> Batch:
        return Batch(self.preprocessor_, self.preprocessor_.prepare(features))

    def _contribution_frame(self, batch: Batch, index: pd.Index) -> pd.DataFrame:
        sources, values = self._dense_contributions(batch)
        group_sum = _group_sum_plan(tuple(self.preprocessor_.feature_names), sources)
        return pd.DataFrame(
            group_sum(np.asarray(values, dtype=np.float64)), columns=group_sum.names, index=index, copy=False
        )

    def to_files(self) -> dict[str, bytes]:
        header = {"family": self.family, "params": self.get_params()}
        return {
            MODEL_FILE: json.dumps(header, indent=1).encode(),
            PREPROCESSING_FILE: self.preprocessor_.to_json(),
            **self._weights_bytes(),
        }

    @classmethod
    def from_files(cls, files: dict[str, bytes]) -> CreditEstimator:
        header = json.loads(files[MODEL_FILE])
        estimator = cls(**header["params"])
        estimator.preprocessor_ = Preprocessor.from_json(files[PREPROCESSING_FILE])
        estimator._load_weights({name: files[name] for name in cls.weights_files})
        return estimator

    # Implemented by each family.
    preprocessor_: Preprocessor

    def _default_probability(self, batch: Batch) -> np.ndarray:
        raise NotImplementedError

    def _dense_contributions(self, batch: Batch) -> tuple[tuple[str, ...], np.ndarray]:
        """(source feature of each column, contribution columns) before summing per feature."""
        raise NotImplementedError

    def _weights_bytes(self) -> dict[str, bytes]:
        raise NotImplementedError

    def _load_weights(self, files: dict[str, bytes]) -> None:
        raise NotImplementedError


def _index_of(features: FeatureBatch) -> pd.Index:
    """A frame's own index; positions for numpy columns."""
    return features.index if isinstance(features, pd.DataFrame) else pd.RangeIndex(row_count(features))


class Batch:
    """One feature frame read once; its dense and LightGBM-coded matrices are built on first use."""

    def __init__(self, preprocessor: Preprocessor, prepared: PreparedFeatures) -> None:
        self._preprocessor = preprocessor
        self._prepared = prepared

    @cached_property
    def dense(self) -> np.ndarray:
        return self._preprocessor.dense(self._prepared)

    @cached_property
    def coded(self) -> np.ndarray:
        return self._preprocessor.coded(self._prepared)


class _GroupSum:
    """Row-wise sums of the columns of each group, exactly as a pandas group sum adds them (in column
    order, with Kahan compensation, missing values skipped), vectorised over the groups.

    The k-th member of every group is added in the k-th step; a group with fewer members reads a
    NaN column (skipped) there.
    """

    def __init__(self, names: tuple[str, ...], groups: list[int]) -> None:
        self.names = pd.Index(names)  # the groups' names (immutable, shared by every result frame)
        n_groups = len(names)
        members: list[list[int]] = [[] for _ in range(n_groups)]
        for column, group in enumerate(groups):
            members[group].append(column)
        steps = max((len(m) for m in members), default=0)
        self._skip = len(groups)  # the NaN column appended to the values
        self._take = np.array(
            [[m[k] if k < len(m) else self._skip for m in members] for k in range(steps)], dtype=np.intp
        )
        self._n_groups = n_groups

    def __call__(self, values: np.ndarray) -> np.ndarray:
        padded = np.concatenate([values, np.full((values.shape[0], 1), np.nan)], axis=1)
        total = np.zeros((values.shape[0], self._n_groups))
        compensation = np.zeros_like(total)
        for take in self._take:
            value = padded[:, take]
            present = ~np.isnan(value)
            with np.errstate(invalid="ignore"):  # inf - inf: the compensation is reset, as pandas does
                y = value - compensation
                t = total + y
                error = t - total - y
            compensation = np.where(present, np.where(np.isfinite(error), error, 0.0), compensation)
            total = np.where(present, t, total)
        return total


@lru_cache(maxsize=64)
def _group_sum_plan(names: tuple[str, ...], sources: tuple[str, ...]) -> _GroupSum:
    """The per-feature sum of contribution columns whose source features are `sources` (cached per model)."""
    position = {name: i for i, name in enumerate(names)}
    return _GroupSum(names, [position[source] for source in sources])


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class LogisticCreditModel(CreditEstimator):
    """L2-regularised logistic regression on standardised features (the baseline)."""

    family = "logistic"
    weights_files = ("coefficients.json",)

    def __init__(self, C: float = 1.0, max_iter: int = 1000, seed: int = 0) -> None:
        self.C = C
        self.max_iter = max_iter
        self.seed = seed

    def fit(
        self,
        features: pd.DataFrame,
        y: np.ndarray,
        eval_set: EvalSet | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> LogisticCreditModel:
        from sklearn.linear_model import LogisticRegression

        self.preprocessor_ = Preprocessor.fit(features)
        model = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.seed)
        model.fit(self.preprocessor_.transform_dense(features), np.asarray(y))
        self.coef_ = model.coef_[0].astype(np.float64)
        self.intercept_ = float(model.intercept_[0])
        if eval_set is not None and on_progress is not None:
            on_progress(1, self._predict_default(eval_set[0]))
        return self

    def _logit(self, batch: Batch) -> np.ndarray:
        return batch.dense.astype(np.float64) @ self.coef_ + self.intercept_

    def _default_probability(self, batch: Batch) -> np.ndarray:
        return _sigmoid(self._logit(batch))

    def _dense_contributions(self, batch: Batch) -> tuple[tuple[str, ...], np.ndarray]:
        """Coefficient x standardised value."""
        return self.preprocessor_.layout_.dense_sources, batch.dense * self.coef_

    def _weights_bytes(self) -> dict[str, bytes]:
        return {"coefficients.json": json.dumps({"coef": self.coef_.tolist(), "intercept": self.intercept_}).encode()}

    def _load_weights(self, files: dict[str, bytes]) -> None:
        weights = json.loads(files["coefficients.json"])
        self.coef_ = np.asarray(weights["coef"], dtype=np.float64)
        self.intercept_ = float(weights["intercept"])


class GBMCreditModel(CreditEstimator):
    """LightGBM gradient-boosted trees; categoricals as native categorical splits.

    With `boost_from_logistic`, a logistic regression is fitted first and the trees learn what its
    log-odds miss (its score is LightGBM's `init_score`): the trees add non-linear structure to a
    strong linear start instead of rebuilding the linear part from splits.
    """

    family = "gbm"
    weights_files = ("model.txt", "init_logistic.json")

    def __init__(
        self,
        n_estimators: int = 300,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_child_samples: int = 20,
        subsample: float = 1.0,
        colsample_bytree: float = 1.0,
        reg_lambda: float = 0.0,
        boost_from_logistic: bool = False,
        report_every: int = 25,
        seed: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.boost_from_logistic = boost_from_logistic
        self.report_every = report_every
        self.seed = seed

    def _lgb_params(self) -> dict[str, Any]:
        return {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "bagging_fraction": self.subsample,
            "bagging_freq": 1 if self.subsample < 1.0 else 0,
            "feature_fraction": self.colsample_bytree,
            "lambda_l2": self.reg_lambda,
            "seed": self.seed,
            "num_threads": 1,
            "verbosity": -1,
        }

    def _init_logit(self, features: pd.DataFrame) -> np.ndarray:
        """The logistic start's log-odds (training: through its own preprocessing)."""
        if self.init_logistic_ is None:
            return np.zeros(len(features))
        return self.init_logistic_._logit(self.init_logistic_._prepare(features))

    def _init_logit_of(self, batch: Batch) -> np.ndarray:
        if self.init_logistic_ is None:
            return np.zeros(batch.coded.shape[0])
        return self.init_logistic_._logit(batch)

    def fit(
        self,
        features: pd.DataFrame,
        y: np.ndarray,
        eval_set: EvalSet | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> GBMCreditModel:
        import lightgbm as lgb

        self.preprocessor_ = Preprocessor.fit(features)
        self.init_logistic_ = LogisticCreditModel(seed=self.seed).fit(features, y) if self.boost_from_logistic else None
        train = lgb.Dataset(
            self.preprocessor_.transform_coded(features),
            label=np.asarray(y),
            init_score=self._init_logit(features),
            categorical_feature=self.preprocessor_.coded_categoricals or "auto",
            free_raw_data=False,
        )
        callbacks = []
        if eval_set is not None and on_progress is not None:
            coded_valid = self.preprocessor_.transform_coded(eval_set[0])
            init_valid = self._init_logit(eval_set[0])

            def report(env: Any) -> None:
                step = env.iteration + 1
                if step % self.report_every == 0 or step == env.end_iteration:
                    raw = env.model.predict(coded_valid, num_iteration=step, raw_score=True)
                    on_progress(step, _sigmoid(raw + init_valid))

            callbacks.append(report)
        self.booster_ = lgb.train(self._lgb_params(), train, num_boost_round=self.n_estimators, callbacks=callbacks)
        return self

    def _default_probability(self, batch: Batch) -> np.ndarray:
        raw = self.booster_.predict(batch.coded, raw_score=True, num_threads=1)
        return _sigmoid(raw + self._init_logit_of(batch))

    def _dense_contributions(self, batch: Batch) -> tuple[tuple[str, ...], np.ndarray]:
        """TreeSHAP (`pred_contrib=True`) without the bias column, plus the logistic start's contributions.

        The booster is given the coded matrix with its columns in training order (`coded_names`).
        """
        values = self.booster_.predict(batch.coded, pred_contrib=True, num_threads=1)
        sources = self.preprocessor_.layout_.coded_names
        contributions = values[:, : len(sources)]
        if self.init_logistic_ is not None:
            linear_sources, linear = self.init_logistic_._dense_contributions(batch)
            sources, contributions = sources + linear_sources, np.hstack([contributions, linear])
        return sources, contributions

    def _weights_bytes(self) -> dict[str, bytes]:
        init = (
            None
            if self.init_logistic_ is None
            else json.loads(self.init_logistic_._weights_bytes()["coefficients.json"])
        )
        return {"model.txt": self.booster_.model_to_string().encode(), "init_logistic.json": json.dumps(init).encode()}

    def _load_weights(self, files: dict[str, bytes]) -> None:
        import lightgbm as lgb

        self.booster_ = lgb.Booster(model_str=files["model.txt"].decode())
        init = json.loads(files["init_logistic.json"])
        self.init_logistic_ = None
        if init is not None:
            self.init_logistic_ = LogisticCreditModel(seed=self.seed)
            self.init_logistic_.preprocessor_ = self.preprocessor_
            self.init_logistic_._load_weights({"coefficients.json": json.dumps(init).encode()})


class MLPCreditModel(CreditEstimator):
    """A PyTorch multilayer perceptron on standardised features; reports after every epoch."""

    family = "mlp"
    weights_files = ("weights.npz",)

    def __init__(
        self,
        hidden_sizes: list[int] | tuple[int, ...] = (64, 32),
        dropout: float = 0.1,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-5,
        batch_size: int = 256,
        epochs: int = 20,
        seed: int = 0,
    ) -> None:
        self.hidden_sizes = list(hidden_sizes)
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.seed = seed

    def _network(self, inputs: int) -> Any:
        import torch.nn as nn

        layers: list[nn.Module] = []
        for width in self.hidden_sizes:
            layers += [nn.Linear(inputs, width), nn.ReLU(), nn.Dropout(self.dropout)]
            inputs = width
        layers.append(nn.Linear(inputs, 1))
        return nn.Sequential(*layers)

    def fit(
        self,
        features: pd.DataFrame,
        y: np.ndarray,
        eval_set: EvalSet | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> MLPCreditModel:
        import torch

        torch.manual_seed(self.seed)
        torch.set_num_threads(1)
        self.preprocessor_ = Preprocessor.fit(features)
        x = torch.from_numpy(self.preprocessor_.transform_dense(features))
        target = torch.from_numpy(np.asarray(y, dtype=np.float32))
        self.network_ = self._network(x.shape[1])
        optimiser = torch.optim.AdamW(self.network_.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        generator = torch.Generator().manual_seed(self.seed)
        for epoch in range(1, self.epochs + 1):
            self.network_.train()
            for batch in torch.randperm(len(x), generator=generator).split(self.batch_size):
                optimiser.zero_grad()
                loss_fn(self.network_(x[batch]).squeeze(1), target[batch]).backward()
                optimiser.step()
            if eval_set is not None and on_progress is not None:
                on_progress(epoch, self._predict_default(eval_set[0]))
        self.network_.eval()
        return self

    def _logits(self, dense: np.ndarray) -> np.ndarray:
        import torch

        self.network_.eval()
        with torch.no_grad(), _one_torch_thread():
            return self.network_(torch.from_numpy(dense)).squeeze(1).double().numpy()

    def _default_probability(self, batch: Batch) -> np.ndarray:
        return _sigmoid(self._logits(batch.dense))

    def _dense_contributions(self, batch: Batch) -> tuple[tuple[str, ...], np.ndarray]:
        """Gradient x input of the logit, against the all-zero (training mean / absent level) input."""
        import torch

        self.network_.eval()
        x = torch.from_numpy(batch.dense).requires_grad_(True)
        with _one_torch_thread():
            self.network_(x).sum().backward()
        return self.preprocessor_.layout_.dense_sources, (x.grad * x).detach().double().numpy()

    def _weights_bytes(self) -> dict[str, bytes]:
        buffer = io.BytesIO()
        state = {name: tensor.detach().numpy() for name, tensor in self.network_.state_dict().items()}
        np.savez(buffer, **state)
        return {"weights.npz": buffer.getvalue()}

    def _load_weights(self, files: dict[str, bytes]) -> None:
        import torch

        with np.load(io.BytesIO(files["weights.npz"]), allow_pickle=False) as arrays:
            state = {name: torch.from_numpy(arrays[name].copy()) for name in arrays.files}
        self.network_ = self._network(len(self.preprocessor_.dense_columns()))
        self.network_.load_state_dict(state)
        self.network_.eval()


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run torch on one thread meanwhile: a small batch gains nothing from more, and waiting
    threads burn CPU (most of all on a busy machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


ESTIMATORS: dict[str, type[CreditEstimator]] = {
    cls.family: cls for cls in (LogisticCreditModel, GBMCreditModel, MLPCreditModel)
}


def estimator_from_files(files: dict[str, bytes]) -> CreditEstimator:
    """Rebuild a fitted estimator from its (already verified) files."""
    family = json.loads(files[MODEL_FILE])["family"]
    if family not in ESTIMATORS:
        raise ValueError(f"unknown credit model family {family!r}")
    return ESTIMATORS[family].from_files(files)


def model_files(family: str) -> list[str]:
    """The files an estimator of `family` is rebuilt from (the rest of an artifact is its report)."""
    if family not in ESTIMATORS:
        raise ValueError(f"unknown credit model family {family!r}")
    return [MODEL_FILE, PREPROCESSING_FILE, *ESTIMATORS[family].weights_files]
