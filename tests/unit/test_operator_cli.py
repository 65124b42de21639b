"""`streamtrain-operator --help` answers without reading settings or reaching a cluster."""

from __future__ import annotations

import pytest
from streamtrain_operator.main import main
from streamtrain_operator.settings import PREFIX


def test_it_should_print_its_usage_and_exit(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    assert "usage: streamtrain-operator" in capsys.readouterr().out.replace("\n", " ")

def test_it_should_name_where_its_settings_come_from(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert PREFIX in capsys.readouterr().out.replace("\n", "")


def test_it_should_refuse_an_unknown_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--no-such-option"])
    assert exited.value.code == 2
    assert "--no-such-option" in capsys.readouterr().err
