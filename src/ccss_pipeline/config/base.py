"""What every parameter model shares: strictness, the seed type, the data/ folder rule and search ranges.

One home for the rules more than one block of parameters applies (a path from parameters stays inside
data/; an Optuna storage is an SQLite file), so the per-stage modules cannot drift apart on them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator


class StrictConfig(BaseModel):
    """Unknown keys are errors (a typo must not be silently ignored); NaN and ±inf are refused everywhere."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


#: A random seed: numpy, torch and Optuna all accept 0 .. 2**32 - 1 (numpy's legacy seeding stops there).
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]

#: File name endings the Optuna SQLite storage may have.
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def inside_data_folder(value: str, field: str) -> str:
    """A path from parameters must stay inside the project's data/ folder (relative, no "..", under data/)."""
    from pathlib import PurePosixPath, PureWindowsPath

    path = PurePosixPath(value.replace("\\", "/"))
    if (
        path.is_absolute()
        or PureWindowsPath(value).drive
        or ".." in path.parts
        or not path.parts
        or path.parts[0] != "data"
    ):
        raise ValueError(
            f"{field} must be a relative path inside the project's data/ folder "
            f"(e.g. 'data/06_models/...'; no '..', not absolute), got {value!r}"
        )
    return value


class SearchRange(StrictConfig):
    """A float search range; ``log`` samples on a log scale."""

    low: float
    high: float
    log: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> SearchRange:
        if not self.low < self.high:
            raise ValueError(f"search range needs low < high, got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale search range needs low > 0, got {self.low}")
        return self


def sqlite_file_inside_data(value: str, field: str) -> str:
    """A study's storage from parameters: an SQLite file inside the project's data/ folder (the search's and
    the comparison's studies both resume from one)."""
    inside_data_folder(value, field)
    if not value.lower().endswith(SQLITE_SUFFIXES):
        raise ValueError(
            f"{field} must name an SQLite file ending in {', '.join(SQLITE_SUFFIXES)} "
            f"(e.g. 'data/06_models/optuna.db'), got {value!r}"
        )
    return value
