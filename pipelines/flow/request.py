"""The deletion request: what to forget, from which model, how, and what counts as success.

The kind-specific parts (the `forget:` form, the thresholds) are declared by the installed kinds of model
(pipelines/kinds/); this module defines their bases and reads the forms from the installed kinds, so the
kinds import the request, never the other way round.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator, model_validator

from pipelines.flow.request_file import RequestError, bounded, raw_request_id  # noqa: F401 - re-exported: the request's errors
from unlearning import plugins


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ForgetTarget(Strict):
    """Base of every `forget:` form. A form is recognised by its `form_key`, a field only it has."""

    form_key: ClassVar[str]
    form_summary: ClassVar[str]

    def named_paths(self) -> set[str]:
        """DVC paths this form names (to refuse the same path also listed as retain data)."""
        return set()

    @classmethod
    def recognises(cls, value: dict) -> bool:
        """Whether a raw `forget:` mapping is meant as this form: by default, it has the form's key field."""
        return cls.form_key in value


class KindThresholds(Strict):
    """Base of a kind's thresholds: every field optional (None = the verification default)."""

    def verify_thresholds(self) -> Any:
        """The `unlearning.verify` thresholds dataclass, defaults filled in."""
        raise NotImplementedError


class RetainFiles(Strict):
    paths: list[str] = Field(default_factory=list, description="sets the model must keep serving; read at forget.rev")
    evaluation: list[str] = Field(min_length=1, description="held-out sets used to measure retention")


def installed_kind_classes() -> dict[str, Any]:
    """name -> class of every installed kind of model (entry point group `erasure.kinds`)."""
    return plugins.objects(plugins.KIND_GROUP)


def forget_forms() -> list[type[ForgetTarget]]:
    """The `forget:` forms the installed kinds declare, each once."""
    forms: list[type[ForgetTarget]] = []
    for kind_class in installed_kind_classes().values():
        if kind_class.forget_form not in forms:
            forms.append(kind_class.forget_form)
    return forms


def threshold_owner(name: str) -> str | None:
    return next((kind_name for kind_name, kind_class in installed_kind_classes().items()
                 if name in kind_class.Thresholds.model_fields), None)


def check_threshold_values(values: dict[str, Any]) -> dict[str, float]:
    """Load-time check of a request's thresholds: each name known to some kind, each value in its range."""
    kinds = installed_kind_classes()
    for name, value in values.items():
        owner = threshold_owner(name)
        if owner is None:
            known = sorted(n for kind_class in kinds.values() for n in kind_class.Thresholds.model_fields)
            raise ValueError(f"thresholds.{name}: unknown threshold; known thresholds: {known}")
        try:
            kinds[owner].Thresholds(**{name: value})
        except ValidationError as error:
            problem = error.errors()[0]
            raise ValueError(f"thresholds.{name}: {problem['msg']} (got {bounded(value)})") from None
    return values


def parse_forget(value: Any) -> ForgetTarget:
    """The request's `forget:` section as the form it names (recognised by each form's key field)."""
    if isinstance(value, ForgetTarget):
        return value
    installed = forget_forms()
    forms = {form.form_key: form for form in installed}
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping; one of: {_form_list(forms)}")
    matching = [form for form in installed if form.recognises(value)]
    if len(matching) != 1:
        raise ValueError(f"cannot tell which kind of forget target this is (keys {sorted(value)}); one of: {_form_list(forms)}")
    try:
        return matching[0].model_validate(value)
    except ValidationError as error:
        problems = "; ".join(
            f"forget.{'.'.join(map(str, e['loc']))}: {e['msg']}" + ("" if e["type"] == "missing" else f" (got {bounded(e['input'])})")
            for e in error.errors()
        )
        raise ValueError(problems) from None


def _form_list(forms: dict[str, type[ForgetTarget]]) -> str:
    return "; ".join(f"`{key}:` for {form.form_summary}" for key, form in forms.items())


class ModelRef(Strict):
    name: str
    alias: str

    def __str__(self) -> str:
        return f"{self.name}@{self.alias}"


class MethodSpec(Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class PrivacyOptions(Strict):
    hash_file_names: bool = Field(
        False, description="replace the forget set's file name by a hashed id in the audit record and reports"
    )


_MODEL_REF = re.compile(r"^(?P<name>[A-Za-z0-9][\w.-]*)@(?P<alias>[A-Za-z][\w-]*)$")


class DeletionRequest(Strict):
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
    from pipelines.flow.request_file import load_yaml

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
    from pipelines.flow.request_file import read_request_text

    return parse_request(read_request_text(Path(path)), source=str(path))

