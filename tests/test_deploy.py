"""The Kubernetes deployment under ``deploy/`` is valid, and its pieces fit each other and the server.

Three kinds of checks, none of which needs a cluster, an image build or the network:

- every core manifest is validated with kubernetes-validate, strictly (an unknown or misspelt field
  is an error), against every Kubernetes version the installed package ships schemas for. The
  ServiceMonitor is a Prometheus Operator kind the package has no schema for, so its structure is
  checked here by hand;
- the cross-references Kubernetes itself would not catch at apply time: the Deployment mounts the
  ConfigMap that exists and runs the Corefile it mounts, its probes ask the ports the Corefile's
  health and ready use, the Service, the PDB, the anti-affinity and the ServiceMonitor select the
  pods' labels, named ports exist, the Dockerfile exposes what the manifests use;
- the ConfigMap's Corefile is parsed and set up by this project's own ``instance.build``, with its
  upstream replaced by a loopback address, and ``multisocket`` (no argument) is shown to start as
  many workers as the Deployment's CPU limit, by reading a cgroup like the one the kubelet writes.

docs/deployment.md explains the manifests; its HorizontalPodAutoscaler example is hpa.yaml itself.
"""

from __future__ import annotations

import copy
import json
import math
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import kubernetes_validate
import yaml
from kubernetes_validate.utils import all_versions
from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns.corefile import Directive, ServerBlock, parse
from twisted_coredns.instance import build
from twisted_coredns.launcher import cpus
from twisted_coredns.order import PLUGIN_CFG

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
MANIFESTS = DEPLOY / "kubernetes"
DOCKERFILE = DEPLOY / "Dockerfile"
DOC = ROOT / "docs" / "deployment.md"

# Not a Kubernetes object: kustomize's own file, checked in plain Python below.
KUSTOMIZATION = "kustomization.yaml"
# Applied on their own, outside the kustomization: the ServiceMonitor needs the Prometheus
# Operator's CRD, the HorizontalPodAutoscaler is optional.
APPLIED_ON_THEIR_OWN = {"servicemonitor.yaml", "hpa.yaml"}
# Kinds kubernetes-validate has no schema for (CRDs).
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}

# CoreDNS's defaults for the listen addresses of health and ready (plugin/health, plugin/ready).
DEFAULT_ADDRESS = {"health": ":8080", "ready": ":8181"}
# A loopback stand-in for /etc/resolv.conf: set-up never sends a query, and tests never leave
# the machine.
LOOPBACK_UPSTREAM = "127.0.0.1:5301"
# The kubelet's CFS period (cpu.max is "<quota> <period>" in microseconds).
CFS_PERIOD_US = 100_000

Resource = dict[str, Any]


def _documents(path: Path) -> list[Resource]:
    with path.open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def _manifest_files() -> list[Path]:
    return sorted(p for p in MANIFESTS.glob("*.yaml") if p.name != KUSTOMIZATION)


def _resources() -> Iterator[tuple[Path, Resource]]:
    for path in _manifest_files():
        for doc in _documents(path):
            yield path, doc


def _one(kind: str) -> Resource:
    found = [doc for _, doc in _resources() if doc["kind"] == kind]
    if len(found) != 1:
        raise AssertionError(f"expected one {kind} under {MANIFESTS}, found {len(found)}")
    return found[0]


def _container() -> Resource:
    (container,) = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    result: Resource = container
    return result


def _corefile_text() -> str:
    text: str = _one("ConfigMap")["data"]["Corefile"]
    return text


def _corefile() -> ServerBlock:
    """The Corefile parsed with CoreDNS's directive list (plugin.cfg), so that the structure can be
    read whichever plugins this checkout has registered."""
    (block,) = parse(_corefile_text(), "Corefile", directives=set(PLUGIN_CFG))
    return block


def _directive(name: str) -> Directive:
    (directive,) = _corefile().directives_named(name)
    return directive


def _port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _cpu(quantity: str) -> float:
    """A Kubernetes CPU quantity ("2", "500m", "1.5") in CPUs."""
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def _mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * factor
    raise AssertionError(f"use a binary suffix (Ki, Mi, Gi) for memory: {quantity!r}")


def _kubernetes_versions() -> list[str]:
    return sorted(set(all_versions()), key=lambda v: tuple(int(x) for x in v.split(".")))


class SchemaTests(SynchronousTestCase):
    """kubernetes-validate, strict, for every core kind; the ServiceMonitor by hand."""

    def test_every_file_is_a_manifest_or_the_kustomization(self) -> None:
        names = {p.name for p in MANIFESTS.iterdir()}
        self.assertEqual({n for n in names if not n.endswith(".yaml")}, set())
        for path, doc in _resources():
            for key in ("apiVersion", "kind", "metadata"):
                self.assertIn(key, doc, path.name)

    def test_core_kinds_validate_strictly(self) -> None:
        versions = _kubernetes_versions()
        self.assertGreaterEqual(len(versions), 2, versions)
        checked = set()
        for path, doc in _resources():
            if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
                continue
            for version in versions:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    where = ".".join(str(p) for p in exc.path)
                    self.fail(f"{path.name}: {doc['kind']} invalid for Kubernetes {version} at {where}: "
                              f"{exc.message}")
                except kubernetes_validate.SchemaNotFoundError as exc:
                    self.fail(f"{path.name}: {exc.message}")
            checked.add(doc["kind"])
        self.assertEqual(checked, {"ServiceAccount", "ConfigMap", "Deployment", "Service",
                                   "PodDisruptionBudget", "HorizontalPodAutoscaler"})

    def test_strict_mode_catches_a_misspelt_field(self) -> None:
        # The guard for the test above: strict validation really rejects what a cluster would.
        deployment = copy.deepcopy(_one("Deployment"))
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        container["readinesProbe"] = container.pop("readinessProbe")
        with self.assertRaises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(deployment, _kubernetes_versions()[-1], strict=True)

    def test_service_monitor(self) -> None:
        monitor = _one("ServiceMonitor")
        service = _one("Service")
        self.assertEqual(monitor["apiVersion"], "monitoring.coreos.com/v1")
        self.assertEqual(set(monitor), {"apiVersion", "kind", "metadata", "spec"})
        self.assertEqual(set(monitor["spec"]), {"selector", "endpoints"})
        # Without a namespaceSelector, a ServiceMonitor selects Services of its own namespace.
        self.assertEqual(monitor["metadata"]["namespace"], service["metadata"]["namespace"])
        self.assertTrue(_matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"]))
        service_ports = {p["name"]: p for p in service["spec"]["ports"]}
        (endpoint,) = monitor["spec"]["endpoints"]
        self.assertLessEqual(set(endpoint), {"port", "path", "interval", "scrapeTimeout", "scheme"})
        self.assertIn(endpoint["port"], service_ports)
        prometheus_port = _port_of(_directive("prometheus").values[0])
        self.assertEqual(service_ports[endpoint["port"]]["port"], prometheus_port)
        self.assertEqual(endpoint.get("path", "/metrics"), "/metrics")
        self.assertRegex(endpoint["interval"], r"^\d+s$")


class CrossReferenceTests(SynchronousTestCase):
    """What the API server accepts but would not run: names, ports and labels that must agree."""

    def setUp(self) -> None:
        self.deployment = _one("Deployment")
        self.pod = self.deployment["spec"]["template"]
        self.container = _container()
        self.labels = self.pod["metadata"]["labels"]

    def test_one_namespace(self) -> None:
        namespaces = {doc["metadata"].get("namespace") for _, doc in _resources()}
        self.assertEqual(namespaces, {"kube-system"})

    def test_deployment_mounts_the_configmap(self) -> None:
        configmap = _one("ConfigMap")
        volumes = {v["name"]: v for v in self.pod["spec"]["volumes"]}
        (mount,) = [m for m in self.container["volumeMounts"] if "configMap" in volumes[m["name"]]]
        source = volumes[mount["name"]]["configMap"]
        self.assertEqual(source["name"], configmap["metadata"]["name"])
        for item in source.get("items", []):
            self.assertIn(item["key"], configmap["data"])
        self.assertTrue(mount.get("readOnly"))
        # No subPath: a subPath mount never sees later edits of the ConfigMap, and reload would not.
        self.assertNotIn("subPath", mount)

    def test_args_point_at_the_mounted_corefile(self) -> None:
        args = self.container["args"]
        self.assertEqual(args[:1], ["-conf"])
        conf = Path(args[1])
        volumes = {v["name"]: v for v in self.pod["spec"]["volumes"]}
        mounts = [m for m in self.container["volumeMounts"] if Path(m["mountPath"]) == conf.parent]
        self.assertEqual(len(mounts), 1, mounts)
        items = volumes[mounts[0]["name"]]["configMap"].get("items")
        paths = [i["path"] for i in items] if items else list(_one("ConfigMap")["data"])
        self.assertIn(conf.name, paths)

    def test_probes_ask_the_ports_of_health_and_ready(self) -> None:
        liveness, readiness = self.container["livenessProbe"], self.container["readinessProbe"]
        health, ready = _directive("health"), _directive("ready")
        self.assertEqual(liveness["httpGet"]["path"], "/health")
        self.assertEqual(readiness["httpGet"]["path"], "/ready")
        health_address = (health.values or [DEFAULT_ADDRESS["health"]])[0]
        ready_address = (ready.values or [DEFAULT_ADDRESS["ready"]])[0]
        self.assertEqual(liveness["httpGet"]["port"], _port_of(health_address))
        self.assertEqual(readiness["httpGet"]["port"], _port_of(ready_address))
        self.assertEqual((liveness["httpGet"]["port"], readiness["httpGet"]["port"]), (8080, 8181))
        # CoreDNS's deployment's liveness settings.
        self.assertEqual({k: liveness[k] for k in ("initialDelaySeconds", "timeoutSeconds",
                                                   "successThreshold", "failureThreshold")},
                         {"initialDelaySeconds": 60, "timeoutSeconds": 5, "successThreshold": 1,
                          "failureThreshold": 5})

    def test_lameduck_fits_the_grace_period(self) -> None:
        (lameduck,) = [p for p in _directive("health").block or [] if p.name == "lameduck"]
        self.assertEqual(lameduck.values, ["5s"])
        # lameduck, then up to 5 s for the workers' queries in flight, well within the grace period.
        self.assertGreater(self.pod["spec"].get("terminationGracePeriodSeconds", 30), 5 + 5)

    def test_container_ports(self) -> None:
        ports = {(p["containerPort"], p["protocol"]): p["name"] for p in self.container["ports"]}
        prometheus_port = _port_of(_directive("prometheus").values[0])
        self.assertEqual(ports, {(53, "UDP"): "dns", (53, "TCP"): "dns-tcp",
                                 (prometheus_port, "TCP"): "metrics"})
        self.assertEqual(_corefile().key_texts, [".:53"])

    def test_service_selects_the_pods_and_their_ports(self) -> None:
        service = _one("Service")
        self.assertTrue(_matches(service["spec"]["selector"], self.labels))
        container_ports = {p["name"]: p for p in self.container["ports"]}
        seen = set()
        for port in service["spec"]["ports"]:
            target = container_ports[port["targetPort"]]
            self.assertEqual(target["protocol"], port["protocol"], port)
            seen.add((port["port"], port["protocol"]))
        self.assertEqual(seen, {(53, "UDP"), (53, "TCP"), (9153, "TCP")})

    def test_prometheus_annotations(self) -> None:
        annotations = _one("Service")["metadata"]["annotations"]
        self.assertEqual(annotations["prometheus.io/scrape"], "true")
        self.assertEqual(annotations["prometheus.io/port"], "9153")
        self.assertEqual(_directive("prometheus").values, [":9153"])

    def test_deployment_selector_matches_its_pods(self) -> None:
        self.assertTrue(_matches(self.deployment["spec"]["selector"]["matchLabels"], self.labels))

    def test_pdb_selects_the_pods(self) -> None:
        pdb = _one("PodDisruptionBudget")
        self.assertTrue(_matches(pdb["spec"]["selector"]["matchLabels"], self.labels))
        replicas = self.deployment["spec"]["replicas"]
        # A budget that lets a drain proceed: at least one pod may go, and one stays.
        self.assertEqual(pdb["spec"].get("maxUnavailable"), 1)
        self.assertGreaterEqual(replicas, 2)

    def test_anti_affinity_spreads_over_nodes(self) -> None:
        anti_affinity = self.pod["spec"]["affinity"]["podAntiAffinity"]
        (term,) = anti_affinity["preferredDuringSchedulingIgnoredDuringExecution"]
        self.assertEqual(term["podAffinityTerm"]["topologyKey"], "kubernetes.io/hostname")
        self.assertTrue(_matches(term["podAffinityTerm"]["labelSelector"]["matchLabels"], self.labels))

    def test_service_account_and_priority(self) -> None:
        spec = self.pod["spec"]
        self.assertEqual(spec["serviceAccountName"], _one("ServiceAccount")["metadata"]["name"])
        self.assertEqual(spec["priorityClassName"], "system-cluster-critical")
        # forward . /etc/resolv.conf must read the node's resolvers, not the cluster DNS.
        self.assertEqual(spec["dnsPolicy"], "Default")
        self.assertEqual(_directive("forward").values, [".", "/etc/resolv.conf"])

    def test_security_context(self) -> None:
        context = self.container["securityContext"]
        self.assertIs(context["allowPrivilegeEscalation"], False)
        self.assertIs(context["readOnlyRootFilesystem"], True)
        self.assertEqual(context["capabilities"], {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]})
        self.assertIs(self.pod["spec"]["securityContext"]["runAsNonRoot"], True)

    def test_a_writable_tmp_beside_the_read_only_root(self) -> None:
        # The multisocket master makes a temporary directory for its workers' metrics; with a
        # read-only root filesystem it fails to start ("No usable temporary directory found")
        # unless /tmp is a volume.
        volumes = {v["name"]: v for v in self.pod["spec"]["volumes"]}
        (tmp,) = [m for m in self.container["volumeMounts"] if m["mountPath"] == "/tmp"]
        self.assertIn("emptyDir", volumes[tmp["name"]])
        self.assertFalse(tmp.get("readOnly", False))

    def test_resources(self) -> None:
        resources = self.container["resources"]
        for kind in ("requests", "limits"):
            self.assertEqual(set(resources[kind]), {"cpu", "memory"}, kind)
        limit = _cpu(resources["limits"]["cpu"])
        # A whole number: multisocket floors the quota, so a fraction would be paid for, not used
        # by a worker.
        self.assertEqual(limit, math.floor(limit))
        self.assertEqual(limit, 2)
        self.assertLessEqual(_cpu(resources["requests"]["cpu"]), limit)
        self.assertLessEqual(_mebibytes(resources["requests"]["memory"]),
                             _mebibytes(resources["limits"]["memory"]))

    def test_multisocket_follows_the_cpu_limit(self) -> None:
        """``multisocket`` without a number starts one worker per CPU of the limit: the kubelet
        writes the limit as the cgroup's ``cpu.max``, which is what multisocket reads."""
        self.assertEqual(_directive("multisocket").values, [])
        limit = _cpu(self.container["resources"]["limits"]["cpu"])
        with tempfile.TemporaryDirectory(prefix="cgroup-") as tmp:
            root = Path(tmp)
            (root / "fs").mkdir()
            (root / "fs" / "cpu.max").write_text(f"{round(limit * CFS_PERIOD_US)} {CFS_PERIOD_US}\n")
            (root / "cgroup").write_text("0::/\n")
            # A 64-CPU node: the limit, not the node, decides.
            workers = cpus.usable_cpus(str(root / "fs"), str(root / "cgroup"), env={}, affinity=64)
        self.assertEqual(workers, 2)

    def test_kustomization_lists_the_core_manifests(self) -> None:
        (kustomization,) = _documents(MANIFESTS / KUSTOMIZATION)
        self.assertEqual(kustomization["kind"], "Kustomization")
        listed = kustomization["resources"]
        self.assertEqual(len(listed), len(set(listed)))
        expected = {p.name for p in _manifest_files()} - APPLIED_ON_THEIR_OWN
        self.assertEqual(set(listed), expected)

    def test_hpa_scales_the_deployment(self) -> None:
        hpa = _one("HorizontalPodAutoscaler")
        target = hpa["spec"]["scaleTargetRef"]
        self.assertEqual((target["apiVersion"], target["kind"], target["name"]),
                         (self.deployment["apiVersion"], "Deployment", self.deployment["metadata"]["name"]))
        self.assertGreaterEqual(hpa["spec"]["minReplicas"], self.deployment["spec"]["replicas"])
        (metric,) = hpa["spec"]["metrics"]
        self.assertEqual(metric["resource"]["name"], "cpu")
        average = _cpu(metric["resource"]["target"]["averageValue"])
        self.assertLess(average, _cpu(self.container["resources"]["limits"]["cpu"]))

    def test_the_docs_show_hpa_yaml_as_it_is(self) -> None:
        hpa = (MANIFESTS / "hpa.yaml").read_text(encoding="utf-8")
        body = "\n".join(line for line in hpa.splitlines() if not line.startswith("#"))
        self.assertIn(body.strip(), DOC.read_text(encoding="utf-8"))


class DockerfileTests(SynchronousTestCase):
    def setUp(self) -> None:
        # Continuation lines joined, comments dropped: one instruction per line.
        text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
        self.lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]

    def instructions(self, name: str) -> list[str]:
        return [line.split(None, 1)[1] for line in self.lines if line.split(None, 1)[0] == name]

    def test_base_image_and_user(self) -> None:
        self.assertEqual(self.instructions("FROM"), ["python:3.11-slim"])
        (user,) = self.instructions("USER")
        uid = user.split(":")[0]
        self.assertTrue(uid.isdigit() and int(uid) != 0, user)
        # The Deployment's runAsUser is the image's user.
        pod_security = _one("Deployment")["spec"]["template"]["spec"]["securityContext"]
        self.assertEqual(pod_security["runAsUser"], int(uid))

    def test_exposes_what_the_manifests_use(self) -> None:
        exposed = {p if "/" in p else f"{p}/tcp" for e in self.instructions("EXPOSE") for p in e.split()}
        container = _container()
        used = {f"{p['containerPort']}/{p['protocol'].lower()}" for p in container["ports"]}
        probes = ("livenessProbe", "readinessProbe")
        used |= {f"{container[probe]['httpGet']['port']}/tcp" for probe in probes}
        self.assertEqual(exposed, used)
        self.assertEqual(exposed, {"53/udp", "53/tcp", "8080/tcp", "8181/tcp", "9153/tcp"})

    def test_runs_twisted_coredns_with_the_mounted_corefile(self) -> None:
        (entrypoint,) = self.instructions("ENTRYPOINT")
        (cmd,) = self.instructions("CMD")
        self.assertEqual(json.loads(entrypoint), ["twisted-coredns"])
        self.assertEqual(json.loads(cmd), _container()["args"])

    def test_installs_the_project_and_the_capability(self) -> None:
        (run,) = [r for r in self.instructions("RUN") if "pip install" in r]
        self.assertIn("pip install .", run)
        self.assertIn("getPlugins", run)
        self.assertIn("setcap cap_net_bind_service=+ep", run)


class CorefileBuildTests(SynchronousTestCase):
    def test_the_kubernetes_default_corefile_without_kubernetes(self) -> None:
        names = [d.name for d in _corefile().directives]
        self.assertEqual(names, ["errors", "health", "ready", "prometheus", "forward", "cache", "loop",
                                 "reload", "multisocket"])
        self.assertEqual(_directive("cache").values, ["30"])
        (option,) = _directive("forward").block or []
        self.assertEqual((option.name, option.values), ("max_concurrent", ["1000"]))
        self.assertIn("loadbalance", _corefile_text())  # the comment saying why it is left out

    def _build(self, text: str) -> Any:
        limit = _cpu(_container()["resources"]["limits"]["cpu"])
        # multisocket, as under the Deployment's CPU limit, whatever this machine has.
        with mock.patch.object(cpus, "usable_cpus", return_value=math.floor(limit)):
            return build(text, "Corefile", dns_port=0, default_host="127.0.0.1")

    def test_builds_with_this_project(self) -> None:
        text = _corefile_text()
        self.assertEqual(text.count("/etc/resolv.conf"), 1)
        text = text.replace("/etc/resolv.conf", LOOPBACK_UPSTREAM)
        instance = self._build(text)
        self.assertEqual(len(instance.blocks), 1)
        self.assertEqual(set(instance.blocks[0].plugins), {d.name for d in _corefile().directives})
        self.assertEqual({g.num_sockets for g in instance.groups}, {2})
        self.assertEqual({(g.transport, g.port) for g in instance.groups}, {("dns", 53)})
