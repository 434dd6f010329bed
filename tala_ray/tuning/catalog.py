"""Every model family, credit and uplift: its spec in `ModelFamily` (the `model:` block of an experiment
spec, chosen by `kind`) and its builder in `FAMILY_BUILDERS`. To add a family, write its spec class and
its builder (`tala_ray.tuning.family.FamilyBuilder`) and list both here."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from tala_ray.tuning.families import CREDIT_BUILDERS, GBMFamily, LogisticFamily, MLPFamily
from tala_ray.tuning.family import FamilyBuilder
from tala_ray.tuning.uplift_families import (
    UPLIFT_BUILDERS,
    CausalForestFamily,
    DRLearnerFamily,
    LinearDMLFamily,
    TLearnerFamily,
    XLearnerFamily,
)

ModelFamily = Annotated[
    LogisticFamily
    | GBMFamily
    | MLPFamily
    | DRLearnerFamily
    | XLearnerFamily
    | TLearnerFamily
    | CausalForestFamily
    | LinearDMLFamily,
    Field(discriminator="kind"),
]

FAMILY_BUILDERS: dict[str, FamilyBuilder] = {**CREDIT_BUILDERS, **UPLIFT_BUILDERS}
