import sys
from pathlib import Path

import pytest

from pytest_qrel.session import QrelConfig, QrelSession

sys.path.insert(0, str(Path(__file__).parent))  # helpers.py


@pytest.fixture(scope="session")
def zoo_session(tmp_path_factory):
    """A QrelSession over the whole zoo with HQQ at every bit-width, shared by e2e tests so
    each base model and its held-out outputs are computed once."""
    values = {
        "qrel_models": "",
        "qrel_methods": "hqq,bnb",
        "qrel_bits": "2,3,4,8",
        "qrel_group_size": "64",
        "qrel_report_dir": str(tmp_path_factory.mktemp("report")),
        "qrel_kl_threshold": "2:1,3:1,4:1,8:1",
        "qrel_allow_pickle": False,
        "qrel_no_cache": True,  # these tests are about the quantizers: always quantize afresh
    }
    return QrelSession(QrelConfig.from_values(values, tmp_path_factory.getbasetemp()), active=True, is_worker=False)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A random tiny Llama: for tests about mechanics, not signal."""
    from helpers import make_llama

    return make_llama(tmp_path_factory.mktemp("models") / "tiny")
