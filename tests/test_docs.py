"""Contracts between the code and its documentation."""

from pathlib import Path

from fhir_ccm.cli import build_parser
from fhir_ccm.config import Config, setting_names

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_setting_is_documented():
    for name in setting_names():
        assert f"`{name}`" in README, name


def test_every_command_is_documented():
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for command in commands:
        assert f"fhir-ccm {command}" in README, command


def test_environment_and_options(monkeypatch):
    environ = {"FHIR_CCM_DATABASE": "env.db", "FHIR_CCM_PORT": "9000", "FHIR_CCM_WORKERS": "4"}
    config = Config.from_env(environ)
    assert (config.database, config.port, config.workers) == ("env.db", 9000, 4)
    assert Config.from_env(environ, database="option.db", port=None).database == "option.db"
    assert Config.from_env(environ, database="option.db", port=None).port == 9000
