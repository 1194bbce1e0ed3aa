"""The base of every scenario section: strict pydantic models, and the bounds they share.

Each section of the scenario schema is a `StrictModel`, declared beside the code it configures
(`nmoe_sim/config.py` gathers them): unknown keys, booleans for numbers and NaN or infinity are
refused everywhere, and `_set_off_default` tells a choice from a default.
"""

from __future__ import annotations

from typing import Any, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

# Link numbers beyond these are certainly mistakes (units: Mbit/s, ms); topology files share them.
MIN_MBPS = 1e-3  # 1 kbit/s
MAX_MBPS = 1e7  # 10 Tbit/s
MAX_LATENCY_MS = 60_000.0  # one minute per link


def _number_kind(annotation: Any) -> str | None:
    """ "number" for an int/float field (optional or not), "numbers" for dict[str, float]."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if annotation in (int, float) or (args and all(a in (int, float) for a in args)):
        return "number"
    if get_origin(annotation) is dict and get_args(annotation)[1:] in ((int,), (float,)):
        return "numbers"
    if annotation is bool:
        return "bool"
    return None


def _refuse_bool(value: Any) -> None:
    if isinstance(value, bool):
        raise PydanticCustomError("bool_for_number", "a number is expected here, not true/false")


class StrictModel(BaseModel):
    """Unknown keys, booleans for numbers and NaN/inf are refused in every section."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_not_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic's lax mode reads `true` as 1 for int and float fields; YAML users mean a
        # switch, never a number.
        field = cls.model_fields.get(info.field_name or "")
        kind = _number_kind(field.annotation) if field is not None else None
        if kind == "number":
            _refuse_bool(value)
        elif kind == "numbers" and isinstance(value, dict):
            for item in value.values():
                _refuse_bool(item)
        elif kind == "bool" and not isinstance(value, bool):
            raise PydanticCustomError("bool_expected", "true or false is expected here")
        return value

    def _set_off_default(self, *keys: str) -> list[str]:
        """Those of `keys` the user set (model_fields_set) to something other than the default:
        a default written out (a resolved config.yaml) is not a choice."""
        out = []
        for key in keys:
            if key not in self.model_fields_set:
                continue
            value, default = (
                getattr(self, key),
                type(self).model_fields[key].get_default(call_default_factory=True),
            )
            if isinstance(value, BaseModel):
                if value.model_dump() != default.model_dump():
                    out.append(key)
            elif value != default:
                out.append(key)
        return out
