"""YAML files read into pydantic models, every problem reported as one line naming the file and the fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from tala_ray.core.errors import UserError

Model = TypeVar("Model", bound=BaseModel)


def validation_problems(error: ValidationError, prefix: str | None = None) -> str:
    """`field.sub: message; ...`, one entry per problem; each path starts at `prefix` when one is given."""
    problems = []
    for problem in error.errors():
        parts = [*([prefix] if prefix else []), *(str(part) for part in problem["loc"])]
        problems.append(f"{'.'.join(parts) or '<root>'}: {problem['msg']}")
    return "; ".join(problems)


def read_yaml_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """The top-level mapping of a YAML file; a missing, unreadable or non-mapping file is a UserError."""
    where = f"{what} {str(path)!r}"
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as error:
        raise UserError(f"{where}: cannot read it (file not found)") from error
    except OSError as error:
        raise UserError(f"{where}: cannot read it ({error.strerror})") from error
    except yaml.YAMLError as error:
        raise UserError(f"{where}: not valid YAML ({error})") from error
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a mapping at the top level, got {type(raw).__name__}")
    return raw


def load_yaml_model(path: str | Path, model_type: type[Model], what: str) -> Model:
    """`model_type` validated from the YAML file at `path`; problems raise one UserError:
    `what 'path': field.sub: message; ...`."""
    raw = read_yaml_mapping(path, what)
    try:
        return model_type.model_validate(raw)
    except ValidationError as error:
        raise UserError(f"{what} {str(path)!r}: {validation_problems(error)}") from None
