"""Hostile request files: bounded before parsing, refused by name, never echoed at length."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from pipelines.flow import request_file
from pipelines.flow.request import RequestError, load_request, parse_request, raw_request_id
from pipelines.flow.request_file import MAX_REQUEST_BYTES, RequestFileTooLargeError, RequestStructureError

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
request_id: [*i]
"""

# Under the alias limit, but each alias repeats a wide anchor: 16 x 1000 values once constructed.
WIDE_ANCHOR = "a: &a [" + ", ".join(["x"] * 1000) + "]\nrequest_id: [" + ", ".join(["*a"] * 15) + "]\n"


def _no_parser(*args, **kwargs):
    raise AssertionError("the YAML parser ran on an oversized file")


def test_oversized_file_is_refused_before_the_yaml_parser_runs(tmp_path: Path, monkeypatch):
    path = tmp_path / "huge.yaml"
    path.write_text("request_id: req-huge\nreason: " + "x" * (50 * 1024 * 1024) + "\n")
    monkeypatch.setattr(request_file._BoundedLoader, "__init__", _no_parser)
    with pytest.raises(RequestFileTooLargeError, match=f"larger than {MAX_REQUEST_BYTES} bytes") as error:
        load_request(path)
    assert len(str(error.value)) < 300 and "xxxx" not in str(error.value)
    assert raw_request_id(path.read_text()) is None


def test_a_file_just_under_the_cap_is_still_parsed(tmp_path: Path):
    path = tmp_path / "big.yaml"
    path.write_text("reason: " + "x" * (MAX_REQUEST_BYTES - 100) + "\n")
    with pytest.raises(RequestError, match="invalid deletion request") as error:
        load_request(path)
    assert len(str(error.value)) < 2000


@pytest.mark.parametrize("bomb", [BILLION_LAUGHS, WIDE_ANCHOR], ids=["billion-laughs", "wide-anchor"])
def test_alias_bomb_is_refused_before_any_object_is_constructed(bomb, monkeypatch):
    monkeypatch.setattr(request_file._BoundedLoader, "construct_document", _no_parser)
    with pytest.raises(RequestStructureError, match="aliases|expands to more than"):
        parse_request(bomb)
    assert raw_request_id(bomb) is None


def test_alias_bomb_is_refused_in_well_under_two_seconds():
    # Measured idle: ~1 ms. The mechanism is the test above; this bounds the whole call with a wide margin.
    started = time.perf_counter()
    with pytest.raises(RequestStructureError):
        parse_request(BILLION_LAUGHS)
    assert time.perf_counter() - started < 0.5


def test_deep_nesting_is_refused():
    with pytest.raises(RequestStructureError, match="nested deeper than"):
        parse_request("request_id: " + "[" * 5000 + "]" * 5000)


def test_a_few_aliases_are_still_fine():
    assert raw_request_id("x: &id req-alias-ok\nrequest_id: *id\n") == "req-alias-ok"


@pytest.mark.parametrize(
    "field", ["request_id", "model", "thresholds.forget_max_gain_db", "y" * 100],
    ids=["request_id", "model", "threshold", "long-unknown-key"],
)
def test_an_invalid_long_value_is_not_echoed_in_full(field):
    example = yaml.safe_load((Path(__file__).parents[2] / "requests/examples/forget-haze.yaml").read_text())
    *parents, name = field.split(".")
    section = example
    for parent in parents:
        section = section[parent]
    section[name] = "y" * 500_000 + "@"
    field = field[:40]
    with pytest.raises(RequestError) as error:
        parse_request(yaml.safe_dump(example))
    message = str(error.value)
    assert field in message and len(message) < 1000, message[:300]


def test_many_invalid_values_are_summarised():
    example = yaml.safe_load((Path(__file__).parents[2] / "requests/examples/forget-haze.yaml").read_text())
    example["retain"]["paths"] = [[n] for n in range(2000)]
    with pytest.raises(RequestError, match="more") as error:
        parse_request(yaml.safe_dump(example))
    assert len(str(error.value)) < 3000
