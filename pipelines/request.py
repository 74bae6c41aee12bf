"""The deletion request: what to forget, from which model, how, and what counts as success."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator, model_validator

from pipelines.kinds import ForgetTarget
from pipelines.kinds.base import check_threshold_values, parse_forget
from pipelines.kinds.files import RetainFiles
from pipelines.request_file import RequestError, raw_request_id  # noqa: F401 - re-exported: the request's errors


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelRef(_Strict):
    name: str
    alias: str

    def __str__(self) -> str:
        return f"{self.name}@{self.alias}"


class MethodSpec(_Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class PrivacyOptions(_Strict):
    hash_file_names: bool = Field(
        False, description="replace the forget set's file name by a hashed id in the audit record and reports"
    )


_MODEL_REF = re.compile(r"^(?P<name>[A-Za-z0-9][\w.-]*)@(?P<alias>[A-Za-z][\w-]*)$")


class DeletionRequest(_Strict):
    """The kind-specific parts (`forget`'s form, `retain`, `thresholds`) are checked here for shape and
    range, and against the kind of the model once it is pulled (pipelines/kinds/)."""

    request_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$")
    model: ModelRef
    forget: SerializeAsAny[ForgetTarget]  # the form's own fields, also when serialised (cache keys)
    retain: RetainFiles | None = None
    method: MethodSpec
    thresholds: dict[str, float] = Field(default_factory=dict, description="pass criteria by name; unset ones take the defaults")
    requested_by: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    privacy: PrivacyOptions = PrivacyOptions()

    @field_validator("model", mode="before")
    @classmethod
    def _parse_model_ref(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = _MODEL_REF.match(value)
            if not match:
                raise ValueError(f"expected 'name@alias' (e.g. restorer@champion), got {value!r}")
            return match.groupdict()
        return value

    @field_validator("forget", mode="before")
    @classmethod
    def _parse_forget(cls, value: Any) -> ForgetTarget:
        return parse_forget(value)

    @field_validator("thresholds", mode="after")
    @classmethod
    def _known_thresholds(cls, value: dict[str, float]) -> dict[str, float]:
        return check_threshold_values(value)

    @model_validator(mode="after")
    def _forget_is_not_kept(self) -> "DeletionRequest":
        if self.retain is None:
            return self
        overlap = self.forget.named_paths() & set(self.retain.paths + self.retain.evaluation)
        if overlap:
            raise ValueError(f"retain sets also listed as forget data: {sorted(overlap)}")
        return self


def parse_request(text: str, source: str = "request") -> DeletionRequest:
    """Validate YAML text; every problem is reported with the field it concerns."""
    from pipelines.request_file import bounded, load_yaml

    try:
        raw = load_yaml(text, source)
    except yaml.YAMLError as error:
        raise RequestError(f"{source}: not valid YAML ({error})") from error
    if not isinstance(raw, dict):
        raise RequestError(f"{source}: expected a mapping of request fields, got {type(raw).__name__}")
    try:
        return DeletionRequest.model_validate(raw)
    except ValidationError as error:
        errors = error.errors()
        problems = "; ".join(
            f"{'.'.join(str(part)[:40] for part in e['loc']) or '(request)'}: "
            f"{e['msg'][:200]}"
            + (f" (got {bounded(e['input'])})" if e["type"] != "missing" and not isinstance(e["input"], dict) else "")
            for e in errors[:10]
        ) + (f"; and {len(errors) - 10} more" if len(errors) > 10 else "")
        raise RequestError(f"{source}: invalid deletion request: {problems}") from error


def load_request(path: Path) -> DeletionRequest:
    from pipelines.request_file import read_request_text

    return parse_request(read_request_text(Path(path)), source=str(path))

