"""The deletion request: what to forget, from which model, how, and what counts as success."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from unlearning.verify import ClassificationThresholds, RestorationThresholds


class RequestError(ValueError):
    """The request file is unreadable or does not match the schema; the message names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelRef(_Strict):
    name: str
    alias: str

    def __str__(self) -> str:
        return f"{self.name}@{self.alias}"


class ForgetData(_Strict):
    path: str = Field(description="DVC-tracked path of the forget set, e.g. data/restoration/train/haze.safetensors")
    rev: str = Field(description="git revision of the data repository the path is read at")
    evaluation: str = Field(description="held-out set of the same kind, used to measure forgetting")


class RetainData(_Strict):
    paths: list[str] = Field(default_factory=list, description="sets the model must keep serving; read at forget.rev")
    evaluation: list[str] = Field(min_length=1, description="held-out sets used to measure retention")


class MethodSpec(_Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


RESTORATION_THRESHOLDS = ("forget_max_gain_db", "retain_max_drop_db")
CLASSIFICATION_THRESHOLDS = ("forget_max_accuracy", "test_max_drop", "mia_max_excess")


class Thresholds(_Strict):
    """Pass criteria; each applies to one kind of model and is left unset (default) for the other.
    Unset thresholds take the defaults of unlearning.verify."""

    forget_max_gain_db: float | None = Field(None, ge=-10.0, le=30.0, description="restoration")
    retain_max_drop_db: float | None = Field(None, ge=-10.0, le=30.0, description="restoration")
    forget_max_accuracy: float | None = Field(None, ge=0.0, le=1.0, description="classification")
    test_max_drop: float | None = Field(None, ge=0.0, le=1.0, description="classification")
    mia_max_excess: float | None = Field(None, ge=0.0, le=0.5, description="classification")

    def for_task(self, task_kind: str, model: "ModelRef") -> RestorationThresholds | ClassificationThresholds:
        """The thresholds for a model of `task_kind`; a threshold meant for the other kind is an error,
        since silently ignoring it would verify the request against criteria nobody asked for."""
        own, other, config = {
            "restoration": (RESTORATION_THRESHOLDS, CLASSIFICATION_THRESHOLDS, RestorationThresholds),
            "classification": (CLASSIFICATION_THRESHOLDS, RESTORATION_THRESHOLDS, ClassificationThresholds),
        }[task_kind]
        misplaced = [name for name in other if getattr(self, name) is not None]
        if misplaced:
            raise RequestError(
                f"thresholds.{misplaced[0]}: applies to {'classification' if task_kind == 'restoration' else 'restoration'} "
                f"models, but {model} is a {task_kind} model; its thresholds are {list(own)}"
            )
        return config(**{name: getattr(self, name) for name in own if getattr(self, name) is not None})


class PrivacyOptions(_Strict):
    hash_file_names: bool = Field(
        False, description="replace the forget set's file name by a hashed id in the audit record and reports"
    )


_MODEL_REF = re.compile(r"^(?P<name>[A-Za-z0-9][\w.-]*)@(?P<alias>[A-Za-z][\w-]*)$")


class DeletionRequest(_Strict):
    request_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$")
    model: ModelRef
    forget: ForgetData
    retain: RetainData
    method: MethodSpec
    thresholds: Thresholds = Thresholds()
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

    @model_validator(mode="after")
    def _forget_is_not_kept(self) -> "DeletionRequest":
        overlap = {self.forget.path, self.forget.evaluation} & set(self.retain.paths + self.retain.evaluation)
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


def raw_request_id(text: str) -> str | None:
    """The request id of a request that failed validation, when one can still be read, for the audit."""
    from pipelines.request_file import load_yaml

    try:
        raw = load_yaml(text)
    except (yaml.YAMLError, RequestError):
        return None
    value = raw.get("request_id") if isinstance(raw, dict) else None
    return str(value) if isinstance(value, (str, int)) else None
