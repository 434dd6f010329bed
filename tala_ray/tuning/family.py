"""What a model family gives the experiment pipeline (`tala_ray.tuning.runner.run_experiment`).

The pipeline is the same for every family, credit and uplift; it calls the family's hooks in
this order: `prepare` the rows (load, and for uplift: cohort, propensity, overlap trimming) ->
split -> `train_trial` in every Ray Tune trial -> `refit` the best configuration on train + valid
-> `evaluate` it once on the test split (metrics, report figures and plots) -> register the
model's `files` with the report under `registry_kind`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from tala_ray.evaluation.held_out import HeldOutEvaluation
from tala_ray.models.training_data import PreparedData, Splits, TrainingFrame

if TYPE_CHECKING:
    from tala_ray.tuning.spec import ExperimentSpec

Report = Callable[[dict[str, float]], None]


class FamilyBuilder(Protocol):
    """How the pipeline prepares, trains, refits, evaluates and stores one family."""

    registry_kind: str

    def prepare(self, spec: ExperimentSpec, frame: TrainingFrame | None) -> PreparedData:
        """The rows to split and tune on (`frame`, else the spec's data), with what `evaluate` needs of them."""

    def train_trial(
        self, params: dict[str, Any], seed: int, train: TrainingFrame, valid: TrainingFrame, report: Report
    ) -> None:
        """Fit on `train`, calling `report` with validation metrics after every epoch / checkpoint."""

    def refit(self, params: dict[str, Any], seed: int, train: TrainingFrame) -> Any:
        """The final model on the given data."""

    def evaluate(self, spec: ExperimentSpec, model: Any, splits: Splits, prepared: PreparedData) -> HeldOutEvaluation:
        """The refitted model judged once on `splits.test`: its metrics and its report."""

    def files(self, model: Any) -> dict[str, bytes]:
        """The model as files in safe formats, for the registry."""
