"""AppConfig: plain values in the ConfigMap, secret values only in the Secret and only as Pulumi secrets."""

from __future__ import annotations

import pytest

from tests.pulumi_helpers import only, run_components, unwrap
from tools.mocks import ProgramRun, is_secret_wrapper
from webapp_platform.components.app_config import AppConfig, AppConfigArgs

LABELS = {"app.kubernetes.io/name": "shop"}


@pytest.fixture(scope="module")
def run() -> ProgramRun:
    """An AppConfig with one plain and one secret value."""
    return run_components(
        lambda: AppConfig(
            "shop",
            AppConfigArgs(
                namespace="apps",
                labels=LABELS,
                data={"GREETING": "hi"},
                secret_data={"DATABASE_PASSWORD": "hunter2"},
            ),
        )
    )


def test_configmap_holds_the_plain_values(run: ProgramRun) -> None:
    config_map = only(run, "ConfigMap").inputs
    assert config_map["data"] == {"GREETING": "hi"}
    assert config_map["metadata"] == {"namespace": "apps", "labels": LABELS}


def test_secret_values_are_pulumi_secrets(run: ProgramRun) -> None:
    secret = only(run, "Secret").inputs
    assert is_secret_wrapper(secret["stringData"]), "stringData must be marked secret"
    assert unwrap(secret["stringData"]) == {"DATABASE_PASSWORD": "hunter2"}
    assert secret["type"] == "Opaque"


def test_no_secret_value_reaches_the_configmap(run: ProgramRun) -> None:
    assert "hunter2" not in repr(only(run, "ConfigMap").inputs)


def test_objects_are_auto_named_so_changes_roll_the_pods(run: ProgramRun) -> None:
    assert "name" not in only(run, "ConfigMap").inputs["metadata"]
    assert "name" not in only(run, "Secret").inputs["metadata"]
    assert only(run, "ConfigMap").object_name.startswith("shop-cm-")
    assert only(run, "Secret").object_name.startswith("shop-secret-")


def test_type_token_and_parenting(run: ProgramRun) -> None:
    assert [(r.type, r.name) for r in run.resources if not r.custom] == [("webapp:index:AppConfig", "shop")]


def test_secret_looking_plain_key_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\['API_TOKEN'\] look like secrets"):
        run_components(lambda: AppConfig("shop", AppConfigArgs(namespace="apps", labels={}, data={"API_TOKEN": "t"})))


def test_both_objects_are_immutable(run: ProgramRun) -> None:
    # Replaced on change (a new name rolls the pods), never edited in place by hand.
    assert only(run, "ConfigMap").inputs["immutable"] is True
    assert only(run, "Secret").inputs["immutable"] is True


def test_an_existing_secret_is_read_instead_of_made() -> None:
    names: list[str] = []

    def build() -> object:
        config = AppConfig(
            "shop", AppConfigArgs(namespace="apps", labels={}, data={"GREETING": "hi"}, existing_secret="shop-env")
        )
        return config.secret_name.apply(names.append)

    run = run_components(build)
    assert [r.kind for r in run.resources if r.is_kubernetes] == ["ConfigMap"]
    assert names == ["shop-env"]


def test_an_existing_secret_and_secret_values_together_are_refused() -> None:
    args = AppConfigArgs(namespace="apps", labels={}, secret_data={"DATABASE_PASSWORD": "x"}, existing_secret="env")
    with pytest.raises(ValueError, match=r"secret_data \['DATABASE_PASSWORD'\] and existing_secret 'env'"):
        run_components(lambda: AppConfig("shop", args))
