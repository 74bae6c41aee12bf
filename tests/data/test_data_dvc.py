"""The committed data.dvc hash is reproduced by rebuilding the data from params.yaml on this machine."""

from pathlib import Path

import yaml

from pipelines.adapters.settings import PROJECT_ROOT
from pipelines.flow.base_model import data_files, load_params
from tests.conftest import dvc
from unlearning.data.restoration import write_sets


def test_rebuilt_data_has_the_committed_dvc_hash(tmp_path: Path):
    committed = yaml.safe_load((PROJECT_ROOT / "data.dvc").read_text())["outs"][0]
    write_sets(data_files(load_params(PROJECT_ROOT / "params.yaml")), tmp_path / "data")
    dvc(tmp_path, "init", "--no-scm", "-q")
    dvc(tmp_path, "add", "-q", "data")
    rebuilt = yaml.safe_load((tmp_path / "data.dvc").read_text())["outs"][0]
    assert (rebuilt["md5"], rebuilt["nfiles"], rebuilt["size"]) == (committed["md5"], committed["nfiles"], committed["size"])
