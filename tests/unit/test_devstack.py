"""The local stack's pieces that need no running server."""

import pytest
import yaml

from devstack import prometheus
from devstack.config import StackConfig, given_scorer_ports
from devstack.kafka import new_cluster_id


def test_cluster_ids_are_22_url_safe_characters() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(
        len(i) == 22
        and set(i) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        for i in ids
    )


def test_make_up_runs_the_scorer_instances_asked_for_and_scrapes_each() -> None:
    config = StackConfig(
        ports={"ingest": 8081, "scorer": 8082, "notifier": 8083}, scorers=3, scorer_ports={}
    )
    assert config.instances() == {
        "ingest": ("ingest", 8081),
        "scorer": ("scorer", 8082),
        "notifier": ("notifier", 8083),
        "scorer-2": ("scorer", 8085),
        "scorer-3": ("scorer", 8086),
    }
    jobs = yaml.safe_load(prometheus.config(config.targets()))["scrape_configs"]
    assert {job["job_name"]: job["static_configs"][0]["targets"] for job in jobs} == {
        "ingest": ["127.0.0.1:8081"],
        "scorer": ["127.0.0.1:8082", "127.0.0.1:8085", "127.0.0.1:8086"],
        "notifier": ["127.0.0.1:8083"],
    }


def test_make_up_refuses_to_run_without_a_scorer() -> None:
    with pytest.raises(SystemExit, match="TIERSTREAM_SCORERS is 0: at least one scorer runs"):
        StackConfig(scorers=0)


def test_a_scorer_instance_listens_on_the_port_given_for_it() -> None:
    given = given_scorer_ports(
        {"TIERSTREAM_SCORER_3_PORT": "9003", "TIERSTREAM_SCORER_PORT": "9000", "HOME": "/root"}
    )
    assert given == {3: 9003}
    config = StackConfig(ports={"scorer": 8082}, scorers=3, scorer_ports=given)
    assert config.instances() == {
        "scorer": ("scorer", 8082),
        "scorer-2": ("scorer", 8085),
        "scorer-3": ("scorer", 9003),
    }
