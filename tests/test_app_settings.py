"""The app's environment parsing: defaults, and errors that name the variable."""

from __future__ import annotations

import dataclasses

import pytest

from app import __version__
from app.errors import SettingsError
from app.settings import AppSettings
from webapp_platform.config import rules


def test_defaults() -> None:
    settings = AppSettings.from_env({})
    assert settings.port == 8080
    assert settings.workers == 2
    assert settings.drain_seconds == 5
    assert settings.graceful_timeout_seconds == 20
    assert settings.version == __version__
    assert settings.greeting == "Hello"
    assert settings.enable_test_routes is False


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "http"}, "PORT='http' is not a whole number"),
        ({"PORT": "70000"}, "PORT=70000 is out of range"),
        ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY=0 is out of range"),
        ({"DRAIN_SECONDS": "-1"}, "DRAIN_SECONDS=-1 is out of range"),
        ({"GRACEFUL_TIMEOUT_SECONDS": "1.5"}, "GRACEFUL_TIMEOUT_SECONDS='1.5' is not a whole number"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL='loud' is not a level"),
        ({"ENABLE_TEST_ROUTES": "maybe"}, "ENABLE_TEST_ROUTES='maybe' is not allowed; expected exactly true or false"),
        ({"ENABLE_TEST_ROUTES": "1"}, "ENABLE_TEST_ROUTES='1' is not allowed"),
        ({"ENABLE_TEST_ROUTES": "TRUE"}, "ENABLE_TEST_ROUTES='TRUE' is not allowed"),
        ({"ENABLE_TEST_ROUTES": "yes"}, "ENABLE_TEST_ROUTES='yes' is not allowed"),
        ({"HEAD_TIMEOUT_SECONDS": "0"}, "HEAD_TIMEOUT_SECONDS=0 is out of range"),
        ({"MANAGEMENT_PORT": "8080"}, "MANAGEMENT_PORT=8080 is the same as PORT"),
        ({"KEEPALIVE_SECONDS": "0"}, "KEEPALIVE_SECONDS=0 is out of range"),
        ({"STALL_SECONDS": "soon"}, "STALL_SECONDS='soon' is not a whole number"),
        ({"MAX_REQUESTS": "-5"}, "MAX_REQUESTS=-5 is out of range"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as exc:
        AppSettings.from_env(env)
    assert message in str(exc.value)


def test_the_apps_defaults_are_the_stacks() -> None:
    # The image does not ship config/, so the app keeps its own defaults; they must be the ones the stacks use.
    from app.management import METRICS_PATH
    from app.probes import LIVENESS_PATH, READINESS_PATH
    from app.settings import AppSettings
    from webapp_platform.config import rules

    defaults = AppSettings.from_env({})
    assert (defaults.drain_seconds, defaults.graceful_timeout_seconds) == (
        rules.DRAIN_SECONDS,
        rules.GRACEFUL_TIMEOUT_SECONDS,
    )
    assert (defaults.management_port, defaults.keepalive_seconds, defaults.stall_seconds) == (
        rules.MANAGEMENT_PORT,
        rules.KEEPALIVE_SECONDS,
        rules.STALL_SECONDS,
    )
    assert defaults.trusted_proxies == rules.TRUSTED_PROXIES
    assert (LIVENESS_PATH, READINESS_PATH, METRICS_PATH) == (
        rules.LIVENESS_PATH,
        rules.READINESS_PATH,
        rules.METRICS_PATH,
    )


_NUMBERS = [variable for variable in rules.APP_ENVIRONMENT if variable.default is not None]


@pytest.mark.parametrize("variable", _NUMBERS, ids=lambda variable: variable.name)
def test_the_app_parses_each_variable_of_the_contract_as_the_stacks_set_it(variable: rules.AppVariable) -> None:
    # config.rules.APP_ENVIRONMENT is the contract: its default and range are the app's, whose image has no config/.
    assert variable.minimum is not None
    assert variable.maximum is not None
    field = variable.name.lower()
    assert getattr(AppSettings.from_env({}), field) == variable.default
    for accepted in (variable.minimum, variable.maximum):
        assert getattr(AppSettings.from_env({variable.name: str(accepted)}), field) == accepted
    for refused in (variable.minimum - 1, variable.maximum + 1):
        with pytest.raises(SettingsError, match=f"{variable.name}={refused} is out of range"):
            AppSettings.from_env({variable.name: str(refused)})


def test_every_variable_of_the_contract_is_set_by_the_deployment_and_read_by_the_app() -> None:
    fields = {field.name for field in dataclasses.fields(AppSettings)}
    read = {variable.name for variable in rules.APP_ENVIRONMENT if variable.name.lower() in fields}
    assert read == {variable.name for variable in rules.APP_ENVIRONMENT} - {"APP_VERSION"}, "APP_VERSION is .version"
