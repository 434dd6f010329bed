"""Search-space dimensions as written in YAML, and the one function that turns them into `tune.*` objects."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

Constant = bool | int | float | str | list[int] | list[float] | list[str]


class Choice(BaseModel):
    """`{choice: [a, b, c]}`: one of the listed values."""

    model_config = ConfigDict(extra="forbid")
    choice: list[Any] = Field(min_length=1)


class _Range(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _ordered(self) -> _Range:
        low, high = next(iter(self.model_dump().values()))
        if not low < high:
            raise ValueError(f"range [{low}, {high}]: low must be below high")
        return self


class Uniform(_Range):
    """`{uniform: [low, high]}`: a float drawn uniformly."""

    uniform: tuple[float, float]


class LogUniform(_Range):
    """`{loguniform: [low, high]}`: a positive float drawn uniformly on the log scale."""

    loguniform: tuple[float, float]

    @model_validator(mode="after")
    def _positive(self) -> LogUniform:
        if self.loguniform[0] <= 0:
            raise ValueError("loguniform: low must be positive")
        return self


class RandInt(_Range):
    """`{randint: [low, high]}`: an integer from low to high, both included."""

    randint: tuple[int, int]


Dimension = Choice | Uniform | LogUniform | RandInt | Constant
SearchSpace = dict[str, Dimension]


def to_tune_space(space: SearchSpace) -> dict[str, Any]:
    """The param_space for `tune.Tuner`: the only place YAML dimensions become `tune.*` objects."""
    from ray import tune

    converted: dict[str, Any] = {}
    for name, dimension in space.items():
        if isinstance(dimension, Choice):
            converted[name] = tune.choice(dimension.choice)
        elif isinstance(dimension, Uniform):
            converted[name] = tune.uniform(*dimension.uniform)
        elif isinstance(dimension, LogUniform):
            converted[name] = tune.loguniform(*dimension.loguniform)
        elif isinstance(dimension, RandInt):
            converted[name] = tune.randint(dimension.randint[0], dimension.randint[1] + 1)
        else:
            converted[name] = dimension
    return converted
