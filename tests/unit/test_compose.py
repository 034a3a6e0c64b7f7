"""Docker does not run here, so the compose file is checked against the code instead."""
import pathlib

import click
import yaml

from dealbeacon.app.cli import cli
from dealbeacon.core.settings import Settings, env_names

ROOT = pathlib.Path(__file__).parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP = [n for n, s in SERVICES.items() if s.get("image", "").startswith("dealbeacon:")]


def _env(service):
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def test_every_dealbeacon_variable_is_a_real_setting():
    for name, svc in SERVICES.items():
        for key in _env(svc):
            if key.startswith("DEALBEACON_"):
                assert key in env_names(), f"{name}: {key} is not a setting"


def test_every_value_parses_as_that_setting():
    for name in APP:
        Settings.from_env(_env(SERVICES[name]))  # raises on a value of the wrong type


def test_images_are_pinned():
    for name, svc in SERVICES.items():
        image = svc["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: {image} is not pinned"


def test_app_commands_are_real_subcommands():
    assert {"ingest", "worker", "sink"} <= {SERVICES[n]["command"][0] for n in APP}
    for name in APP:
        args = [str(a) for a in SERVICES[name]["command"]]
        command = cli.get_command(click.Context(cli), args[0])
        assert command is not None, f"{name}: {args[0]} is not a dealbeacon command"
        command.make_context(args[0], args[1:])  # raises on an unknown flag or a bad value


def test_the_check_above_bites():
    import pytest

    with pytest.raises(click.UsageError):
        cli.get_command(click.Context(cli), "sink").make_context("sink", ["--no-such-flag"])


def test_two_faust_workers_and_healthchecked_dependencies():
    workers = [n for n in APP if SERVICES[n]["command"] == ["worker"]]
    assert len(workers) == 2
    for name in APP:
        for dep, cond in SERVICES[name].get("depends_on", {}).items():
            assert cond == {"condition": "service_healthy"} and "healthcheck" in SERVICES[dep], (name, dep)


def test_ports_and_bootstrap_agree():
    kafka = _env(SERVICES["kafka"])
    advertised = kafka["KAFKA_ADVERTISED_LISTENERS"].split("//", 1)[1]
    for name in APP:
        env = _env(SERVICES[name])
        assert env["DEALBEACON_KAFKA_BOOTSTRAP"] == advertised, name
    ingest = _env(SERVICES["ingest"])
    assert f"{ingest['DEALBEACON_PORT']}:{ingest['DEALBEACON_PORT']}" in SERVICES["ingest"]["ports"]
    sink = _env(SERVICES["sink"])
    assert f"{sink['DEALBEACON_SINK_METRICS_PORT']}:{sink['DEALBEACON_SINK_METRICS_PORT']}" in SERVICES["sink"]["ports"]
    ch = _env(SERVICES["clickhouse"])
    assert sink["DEALBEACON_CLICKHOUSE_URL"] == (f"clickhouse://{ch['CLICKHOUSE_USER']}:{ch['CLICKHOUSE_PASSWORD']}"
                                                 f"@clickhouse:9000/{ch['CLICKHOUSE_DB']}")


def test_topic_settings_agree_across_services():
    for key in (k for k in env_names() if k.startswith("DEALBEACON_TOPIC")):
        values = {_env(SERVICES[n]).get(key) for n in APP}
        assert len(values) == 1, f"{key} differs between services: {values}"
