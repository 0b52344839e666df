"""The deployment rendered for 1,000 cameras: every core object validates against Kubernetes' own schemas
(kubernetes-validate, strict), every custom resource against its operator's CRD (../shared/k8s-crds, with unknown
fields refused), and the whole is consistent: no consumer group can outgrow a topic it reads, GPU pods land only on
GPU nodes (and nothing else does), every VIGIL_* setting a component reads is set or has a default valid in a cluster,
and the Flink jobs run at the parallelism they were sized for."""

from __future__ import annotations

import copy
import json
from functools import lru_cache

import jsonschema
import pytest
import yaml

from tests.infra.conftest import CRDS, TF_ROOT, all_manifests

pytestmark = pytest.mark.slow  # runs Terraform (and checkov): about a minute, not for `make test-fast`

K8S_VERSION = "1.33.0"
CRD_DIRS = ("strimzi-1.2.0", "flink-kubernetes-operator-1.15.0", "keda-2.20.2", "altinity-clickhouse-operator-0.25.6")
SETTINGS = json.loads((TF_ROOT / "modules" / "services" / "settings.auto.json").read_text())
JOB_COMPONENT = {"vigil-anomaly": "anomaly-job", "vigil-reid": "reid-job", "vigil-traffic": "traffic-job"}


def strict(schema: dict) -> dict:
    """A CRD schema that refuses unknown fields where the CRD does not preserve them (as `kubectl --validate=strict`)."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for value in schema.get("properties", {}).values():  # the root: apiVersion/kind/metadata are checked apart
        walk(value)
    return schema


@lru_cache(maxsize=1)
def crd_schemas() -> dict[tuple[str, str], dict]:
    schemas = {}
    for folder in CRD_DIRS:
        for path in sorted((CRDS / folder).glob("*.y*ml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
                for version in doc["spec"]["versions"]:
                    if version.get("served"):
                        schemas[(f"{group}/{version['name']}", kind)] = strict(version["schema"]["openAPIV3Schema"])
    return schemas


def validate(manifest: dict) -> None:
    key = (manifest["apiVersion"], manifest["kind"])
    if "/" in manifest["apiVersion"] and key in crd_schemas():
        assert set(manifest) <= {"apiVersion", "kind", "metadata", "spec"}, f"unknown top-level fields {set(manifest)}"
        body = {k: v for k, v in manifest.items() if k != "metadata"}
        jsonschema.validate(body, crd_schemas()[key])
        assert manifest["metadata"]["name"] and manifest["metadata"]["namespace"]
        return
    import kubernetes_validate

    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


@pytest.fixture(scope="module")
def manifests(deployment_1000):
    return all_manifests(deployment_1000)


def test_every_object_validates(manifests):
    problems = []
    kinds = set()
    for m in manifests:
        kinds.add(m["kind"])
        try:
            validate(m)
        except Exception as exc:  # jsonschema.ValidationError, kubernetes_validate.ValidationError
            problems.append(f"{m['kind']} {m['metadata']['name']}: {str(exc).splitlines()[0][:400]}")
    assert not problems, "\n".join(problems)
    assert {"Kafka", "KafkaNodePool", "KafkaTopic", "FlinkDeployment", "ScaledObject", "ClickHouseInstallation",
            "ClickHouseKeeperInstallation", "Deployment", "StatefulSet", "Job", "Service", "ConfigMap",
            "PodDisruptionBudget", "Namespace", "ServiceAccount"} <= kinds


def test_every_custom_resource_kind_has_a_crd(manifests):
    core_groups = ("v1", "apps/v1", "batch/v1", "policy/v1", "networking.k8s.io/v1")
    unchecked = {(m["apiVersion"], m["kind"]) for m in manifests if m["apiVersion"] not in core_groups} - set(crd_schemas())
    assert not unchecked, f"custom resources without a CRD schema in ../shared/k8s-crds: {unchecked}"


@pytest.mark.parametrize("broken, why", [
    ({"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaTopic", "metadata": {"name": "t", "namespace": "k"},
      "spec": {"partitions": "three"}}, "partitions is not an integer"),
    ({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "s", "namespace": "v"},
      "spec": {"triggers": [{"type": "kafka", "metadata": {}}]}}, "no scaleTargetRef"),
    ({"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeployment", "metadata": {"name": "f", "namespace": "v"},
      "spec": {"flinkVersion": "v2_3"}}, "the operator does not know Flink 2.3"),
    ({"apiVersion": "clickhouse.altinity.com/v1", "kind": "ClickHouseInstallation", "metadata": {"name": "c", "namespace": "v"},
      "spec": {"configuration": {"clusters": [{"name": "x", "layuot": {"shardsCount": 1}}]}}}, "a misspelt field"),
    ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
      "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"spec": {"containers": [{"name": "c", "imagee": "x"}]}}}},
     "a misspelt container field"),
    ({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": "http"}]}},
     "a port that is not a number"),
])
def test_broken_objects_are_rejected(broken, why):
    with pytest.raises(Exception):
        validate(broken)


def topic_partitions(manifests) -> dict[str, int]:
    return {m["spec"]["topicName"]: m["spec"]["partitions"] for m in manifests if m["kind"] == "KafkaTopic"}


def test_no_consumer_group_has_more_members_than_partitions(manifests):
    partitions = topic_partitions(manifests)
    scaled = {m["spec"]["scaleTargetRef"]["name"]: m for m in manifests if m["kind"] == "ScaledObject"}
    checked = 0
    for m in manifests:
        annotations = m["metadata"].get("annotations", {})
        if not annotations.get("vigil.io/consumes"):
            continue
        name = m["metadata"]["name"]
        if m["kind"] == "FlinkDeployment":
            most = m["spec"]["job"]["parallelism"]
        elif name in scaled:
            most = scaled[name]["spec"]["maxReplicaCount"]
            assert "replicas" not in m["spec"], f"{name}: KEDA owns the replicas"
        else:
            most = m["spec"]["replicas"]
        assert int(annotations["vigil.io/max-replicas"]) == most, name
        for topic in annotations["vigil.io/consumes"].split(","):
            assert most <= partitions[topic], f"{name} ({annotations['vigil.io/consumer-group']}) can have {most} members, {topic} has {partitions[topic]} partitions"
            checked += 1
    assert checked >= 15
    for so in scaled.values():
        for lag in (t for t in so["spec"]["triggers"] if t["type"] == "kafka"):
            if "topic" in lag["metadata"]:
                assert so["spec"]["maxReplicaCount"] <= partitions[lag["metadata"]["topic"]]


def pod_specs(manifests):
    for m in manifests:
        spec = m.get("spec", {})
        if m["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield m["metadata"]["name"], spec["template"]["spec"]
        elif m["kind"] == "FlinkDeployment":
            yield m["metadata"]["name"], spec["podTemplate"]["spec"]
        elif m["kind"] in ("ClickHouseInstallation", "ClickHouseKeeperInstallation"):
            for template in spec["templates"]["podTemplates"]:
                yield f"{m['metadata']['name']}/{template['name']}", template["spec"]
        elif m["kind"] == "KafkaNodePool":
            pod = spec["template"]["pod"]
            terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            selector = {e["key"]: e["values"][0] for e in terms[0]["matchExpressions"]}
            yield m["metadata"]["name"], {"nodeSelector": selector, "tolerations": pod["tolerations"], "containers": []}


def test_gpu_pods_only_on_gpu_nodes_and_nothing_else_there(deployment_1000, manifests):
    gpu_pool = deployment_1000["node_pools"]["gpu"]
    gpu_taint = gpu_pool["taints"][0]
    gpu_pods = 0
    for name, spec in pod_specs(manifests):
        wants_gpu = any("nvidia.com/gpu" in c.get("resources", {}).get("limits", {}) for c in spec["containers"])
        on_gpu_nodes = spec.get("nodeSelector", {}).get("vigil.io/pool") == "gpu"
        tolerates = any(t["key"] == gpu_taint["key"] and t.get("value") == gpu_taint["value"] and t["effect"] == gpu_taint["effect"]
                        for t in spec.get("tolerations", []))
        assert wants_gpu == on_gpu_nodes == tolerates, f"{name}: GPU requested {wants_gpu}, GPU nodes {on_gpu_nodes}, taint tolerated {tolerates}"
        if not wants_gpu:
            assert spec.get("nodeSelector", {}).get("vigil.io/pool") in deployment_1000["node_pools"], f"{name} has no pool"
        gpu_pods += wants_gpu
    assert gpu_pods == 1  # the Triton Deployment
    triton = next(m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] == "vigil-triton")
    scaler = next(m for m in manifests if m["kind"] == "ScaledObject" and m["metadata"]["name"] == "vigil-triton")
    assert scaler["spec"]["minReplicaCount"] == deployment_1000["sizing"]["triton"]["gpus"]
    assert triton["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def containers_by_component(manifests):
    for m in manifests:
        name = m["metadata"]["name"]
        if m["kind"] in ("Deployment", "StatefulSet") and name.startswith("vigil-") and name != "vigil-triton":
            yield name.removeprefix("vigil-"), m["spec"]["template"]["spec"]["containers"][0]
        elif m["kind"] == "FlinkDeployment":
            yield JOB_COMPONENT[name], m["spec"]["podTemplate"]["spec"]["containers"][0]
        elif m["kind"] == "Job":
            yield "store-migrate", m["spec"]["template"]["spec"]["containers"][0]


def reads(component: str, env: dict) -> dict:
    if component == "sink-feeds" or component == "sink":
        known = dict(SETTINGS["components"]["sink"])
        for output in json.loads(env.get("VIGIL_SINK_OUTPUTS", '["clickhouse"]')):
            known.update(SETTINGS["sink_outputs"][output])
        return known
    return SETTINGS["components"][component]


def test_every_setting_a_component_reads_is_set_or_valid_by_default(manifests):
    seen = set()
    for component, container in containers_by_component(manifests):
        env = {e["name"]: e.get("value") for e in container["env"]}
        known = reads(component, env)
        missing = [k for k, s in known.items() if s["required_in_cluster"] and k not in env]
        assert not missing, f"{component} reads {missing}, whose defaults only work on one machine, and they are not set"
        unknown = [k for k in env if k.startswith("VIGIL_") and k not in known]
        assert not unknown, f"{component} is given settings it does not read: {unknown}"
        assert env.get("VIGIL_KAFKA_EMBEDDED") == "false" and env.get("VIGIL_TRITON_EMBEDDED") == "false"
        assert env.get("VIGIL_FRAME_STORE", "").startswith("s3://")
        seen.add(component)
    assert {"ingest", "infer", "reid-embed", "sink", "sink-feeds", "evidence", "console", "reid-api", "anomaly-job",
            "reid-job", "traffic-job", "store-migrate"} <= seen


def test_the_services_see_the_deployed_partition_counts(manifests):
    partitions = topic_partitions(manifests)
    for component, container in containers_by_component(manifests):
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert json.loads(env["VIGIL_KAFKA_TOPICS"]) == partitions, component


def test_flink_jobs_run_at_their_sized_parallelism(deployment_1000, manifests):
    for m in (m for m in manifests if m["kind"] == "FlinkDeployment"):
        job = m["metadata"]["name"].removeprefix("vigil-")
        env = {e["name"]: e.get("value") for e in m["spec"]["podTemplate"]["spec"]["containers"][0]["env"]}
        sized = deployment_1000["sizing"]["flink"][job]
        assert m["spec"]["job"]["parallelism"] == sized["parallelism"] == int(env["VIGIL_FLINK_PARALLELISM"])
        assert m["spec"]["taskManager"]["replicas"] * int(m["spec"]["flinkConfiguration"]["taskmanager.numberOfTaskSlots"]) >= sized["parallelism"]
        assert m["spec"]["flinkConfiguration"]["execution.checkpointing.dir"].startswith("s3://")
        assert "--checkpoint-dir" in m["spec"]["job"]["args"]


def test_ingest_shards_cover_every_camera_once(manifests):
    shards = [m for m in manifests if m["kind"] == "ConfigMap" and "vigil.io/ingest-shard" in m["metadata"]["labels"]]
    ids = [c["id"] for s in shards for c in yaml.safe_load(s["data"]["cameras.yaml"])["cameras"]]
    assert len(ids) == len(set(ids)) == 1000
    ingest = next(m for m in manifests if m["kind"] == "StatefulSet" and m["metadata"]["name"] == "vigil-ingest")
    assert ingest["spec"]["replicas"] == len(shards)
    sources = ingest["spec"]["template"]["spec"]["volumes"]
    assert len(next(v for v in sources if v["name"] == "cameras")["projected"]["sources"]) == len(shards)


def test_clickhouse_has_a_replica_in_every_zone(deployment_1000, manifests):
    chi = next(m for m in manifests if m["kind"] == "ClickHouseInstallation")
    zones = [t["zone"]["values"][0] for t in chi["spec"]["templates"]["podTemplates"]]
    assert sorted(zones) == ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    assert len(chi["spec"]["configuration"]["clusters"][0]["layout"]["replicas"]) == 3


def test_sizing_for_1000_cameras(deployment_1000):
    sizing = deployment_1000["sizing"]
    assert sizing["cameras"] == 1000 and sizing["load"]["frames_per_s"] == 5000
    assert sizing["ingest"]["pods"] == sizing["replicas"]["ingest"]


def test_rendered_yaml_for_checkov(manifests, tmp_path_factory):
    """Also writes the objects as YAML for test_checkov (one file per object)."""
    folder = tmp_path_factory.getbasetemp() / "rendered-1000"
    folder.mkdir(exist_ok=True)
    for i, m in enumerate(manifests):
        (folder / f"{i:04d}-{m['kind'].lower()}-{m['metadata']['name']}.yaml").write_text(yaml.safe_dump(m, sort_keys=False))
    assert len(list(folder.glob("*.yaml"))) == len(manifests)
