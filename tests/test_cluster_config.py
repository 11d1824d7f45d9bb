"""cluster.yaml passes the installed Ray's own cluster-config validation, offline; broken copies do not."""

import copy
import re

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from conftest import REPO


@pytest.fixture(scope="module")
def config():
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


def validated(config):
    validate_config(prepare_config(copy.deepcopy(config)))


def test_cluster_yaml_is_a_valid_ray_cluster_config(config):
    validated(config)


def test_cluster_has_a_cpu_head_and_autoscaling_cpu_and_gpu_workers(config):
    nodes = config["available_node_types"]
    assert nodes[config["head_node_type"]]["resources"] == {"CPU": 0}  # the head runs no trials
    workers = {name: node for name, node in nodes.items() if name != config["head_node_type"]}
    assert any("GPU" not in node["resources"] for node in workers.values())
    assert any(node["resources"].get("GPU", 0) >= 1 for node in workers.values())
    assert all(node["min_workers"] == 0 < node["max_workers"] for node in workers.values())


def test_cluster_opens_no_port_to_the_world_and_reports_no_usage(config):
    text = (REPO / "cluster.yaml").read_text()
    assert "0.0.0.0" not in text
    # With security groups given for every node type, Ray creates none (its default admits SSH from anywhere).
    assert all(node["node_config"].get("SecurityGroupIds") for node in config["available_node_types"].values())
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    ray_starts = [c for c in starts if "ray start" in c]
    assert len(ray_starts) == 2 and all("--disable-usage-stats" in c for c in ray_starts)
    assert "--dashboard-host=127.0.0.1" in config["head_start_ray_commands"][-1]


def test_cluster_installs_the_project_and_mounts_shared_storage(config):
    assert config["file_mounts"]["~/sublim"] == "."
    setup = " ".join(config["setup_commands"])
    assert "pip install" in setup and "-e ~/sublim" in setup
    assert re.search(r"mount -t nfs4 .* /mnt/sublim", setup)
    assert ".venv" in config["rsync_exclude"]


@pytest.mark.parametrize("breakage", [
    lambda c: c.update(max_wrokers=4),                                         # unknown top-level key
    lambda c: c.update(max_workers="many"),                                    # wrong type
    lambda c: c["available_node_types"]["cpu_worker"].update(min_worker=1),    # unknown node-type key
    lambda c: c["available_node_types"]["gpu_worker"].update(resources="GPU"),  # wrong type
    lambda c: c.update(head_node_type="no_such_node_type"),
    lambda c: c["available_node_types"]["cpu_worker"].update(min_workers=20),  # min_workers sum over max_workers
    lambda c: c.update(head_start_ray_commands=["ray stop", 2]),              # a command that is not text
    lambda c: c["available_node_types"]["head"].pop("node_config"),            # a required key missing
])
def test_a_broken_copy_is_rejected(config, breakage):
    broken = copy.deepcopy(config)
    breakage(broken)
    with pytest.raises(Exception) as error:
        validated(broken)
    assert type(error.value).__name__ in ("ValidationError", "ValueError"), error.value
