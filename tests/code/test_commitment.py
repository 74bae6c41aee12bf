"""Keyed commitments of record ids: checkable with the deployment key and the list, unlinkable without."""

from __future__ import annotations

import stat

import pytest

from pipelines.adapters.settings import Settings
from pipelines.erasure.commitment import IdListError, commit_ids, commitment_key, ids_match, parse_id_list


def test_the_deployment_key_is_generated_once_and_readable_only_by_its_owner(tmp_path):
    settings = Settings(home=tmp_path)
    key = commitment_key(settings)
    assert commitment_key(Settings(home=tmp_path)) == key and len(key) == 64
    assert stat.S_IMODE(settings.commitment_key_file.stat().st_mode) == 0o600


def test_the_commitment_binds_the_set_of_ids_not_their_order(tmp_path):
    settings = Settings(home=tmp_path)
    commitment = commit_ids(settings, [1042, 7, 1503], "salt")
    assert ids_match(settings, [1503, 1042, 7], "salt", commitment)
    assert not ids_match(settings, [1042, 7], "salt", commitment)
    assert not ids_match(settings, [1042, 7, 1504], "salt", commitment)


def test_another_salt_or_another_key_gives_an_unrelated_commitment(tmp_path):
    settings = Settings(home=tmp_path)
    ids = [1042, 7, 1503]
    assert commit_ids(settings, ids, "a") != commit_ids(settings, ids, "b")
    other = Settings(home=tmp_path / "other", commitment_key="a configured deployment secret")
    assert commit_ids(other, ids, "a") != commit_ids(settings, ids, "a")
    assert not (tmp_path / "other" / "commitment.key").exists()


def test_an_id_list_names_a_bad_line_by_number_not_by_content():
    assert parse_id_list("# subject 4711\n1042\n\n7  # second\n", "ids") == [1042, 7]
    with pytest.raises(IdListError, match="line 2 is not an integer") as error:
        parse_id_list("1042\njane.doe@example.org\n", "ids")
    assert "jane" not in str(error.value)
