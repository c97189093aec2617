#!/usr/bin/env python3
"""Offline checks of the deploy kit (deploy/), run by `make deploy-test`:

  parse        every JSON and YAML file under deploy/ (and tests/deploy/) parses;
  placeholders the <PLACEHOLDERS> used in deploy/ are exactly those that
               deploy/README.md lists, and filling them in leaves none;
  kubernetes   every Kubernetes manifest validates, strictly (unknown fields
               are errors), against the schemas of each Kubernetes version in
               KUBERNETES_VERSIONS (kubernetes-validate, which ships them);
  kustomize    each kustomization's resources exist, its patches apply, and
               what it renders validates; rendered by the small renderer
               below and, where kubectl is installed, by `kubectl kustomize`
               too, and the two renderings must be equal;
  hardening    what deploy/ declares agrees everywhere: uid 65532, read-only
               root, no privilege escalation, no capabilities, RuntimeDefault
               seccomp, probes on /ready and /health, port 8103, no volumes,
               names that the trust policies admit, the ECS task definition,
               and the image (Dockerfile.scratch);
  parliament   every IAM document passes parliament, or each finding is
               listed with its justification in tests/deploy/parliament-accepted.json
               (and every listed finding still occurs).

Nothing here uses the network: `make deploy-test` runs it in a network
namespace with no interfaces but loopback where it can, to prove that.

    python tests/deploy/check_deploy.py
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import kubernetes_validate.utils as kv_utils
import yaml
from parliament import analyze_policy_string

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
IAM = DEPLOY / "iam"
ACCEPTED = ROOT / "tests" / "deploy" / "parliament-accepted.json"

# EKS's supported versions and the newest the schemas know.
KUBERNETES_VERSIONS = ["1.29", "1.30", "1.31", "1.32", "1.33", "1.34", "1.35", "1.36", "1.37"]

# Values that stand in for an operator's own, to check filled-in files.
SAMPLE_VALUES = {
    "<ACCOUNT_ID>": "123456789012",
    "<REGION>": "eu-west-1",
    "<IMAGE_TAG>": "0.1.0-abc1234",
    "<OIDC_PROVIDER>": "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
    "<CLUSTER_NAME>": "prod",
    "<APP_IMAGE>": "registry.example.com/example-app:1.0.0",
}
PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*>")
UID = 65532

# The names that tie the pieces together.
NAMESPACE = "compliance"
SERVICE_ACCOUNT = "dspm-audit"
ROLE_ARN = "arn:aws:iam::<ACCOUNT_ID>:role/dspm-audit"
PORT = 8103

# kubernetes-validate reads and parses a schema file on every call; the same
# few files serve hundreds of validations here.
kv_utils.schema_contents = functools.lru_cache(maxsize=None)(kv_utils.schema_contents)

passed = 0
failures: list[str] = []


def ok(message: str) -> None:
    global passed
    passed += 1
    print(f"  ok  {message}")


def fail(message: str) -> None:
    failures.append(message)
    print(f"  FAIL {message}")


def check(message: str, condition: bool, detail: str = "") -> None:
    if condition:
        ok(message)
    else:
        fail(f"{message}{': ' + detail if detail else ''}")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def fill(text: str) -> str:
    for placeholder, value in SAMPLE_VALUES.items():
        text = text.replace(placeholder, value)
    return text


def deploy_files(*suffixes: str) -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix in suffixes)


def load_yaml_docs(text: str) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


# --------------------------------------------------------------------------
# parse
# --------------------------------------------------------------------------


def check_parse() -> None:
    print("parse:")
    files = deploy_files(".json", ".yaml", ".yml") + sorted(
        p for p in (ROOT / "tests" / "deploy").iterdir() if p.suffix in (".json", ".yaml", ".yml")
    )
    for path in files:
        text = path.read_text()
        try:
            if path.suffix == ".json":
                json.loads(text)
                json.loads(fill(text))
                what = "JSON"
            else:
                docs = load_yaml_docs(text)
                load_yaml_docs(fill(text))
                what = f"YAML, {len(docs)} document{'s' if len(docs) != 1 else ''}"
            ok(f"{rel(path)} parses ({what}), as shipped and filled in")
        except (ValueError, yaml.YAMLError) as err:
            fail(f"{rel(path)} does not parse: {err}")


# --------------------------------------------------------------------------
# placeholders
# --------------------------------------------------------------------------


def check_placeholders() -> None:
    print("placeholders:")
    used: dict[str, set[str]] = {}
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.name != "README.md"):
        for match in PLACEHOLDER.findall(path.read_text()):
            used.setdefault(match, set()).add(rel(path))
    readme = (DEPLOY / "README.md").read_text() if (DEPLOY / "README.md").is_file() else ""
    documented = set(re.findall(r"^\| `(<[A-Z][A-Z0-9_]*>)` \|", readme, flags=re.M))
    check(
        f"placeholders used in deploy/ ({', '.join(sorted(used))}) are the ones deploy/README.md lists",
        set(used) == documented,
        f"used but not listed: {sorted(set(used) - documented)}; listed but unused: {sorted(documented - set(used))}",
    )
    check(
        "every placeholder has a sample value in this check",
        set(used) <= set(SAMPLE_VALUES),
        f"no sample for {sorted(set(used) - set(SAMPLE_VALUES))}",
    )
    left = {
        rel(p): PLACEHOLDER.findall(fill(p.read_text()))
        for p in deploy_files(".json", ".yaml", ".yml", ".sh")
        if PLACEHOLDER.findall(fill(p.read_text()))
    }
    check("filling in the placeholders leaves none in any deploy file", not left, str(left))


# --------------------------------------------------------------------------
# kubernetes schemas
# --------------------------------------------------------------------------


def validate_resource(resource: dict[str, Any], where: str) -> list[str]:
    """Errors of one resource against every version in KUBERNETES_VERSIONS."""
    errors = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            path = ".".join(str(p) for p in err.path)
            errors.append(f"{where}: Kubernetes {version}: {path}: {err.message}")
        except kv_utils.SchemaNotFoundError as err:
            # kubernetes-validate's CLI only warns here; an unknown kind or
            # apiVersion is an error for us.
            errors.append(f"{where}: {err.message}")
    return errors


def kind_name(resource: dict[str, Any]) -> str:
    meta = resource.get("metadata", {})
    ns = meta.get("namespace")
    return f"{resource.get('kind')}/{(ns + '/') if ns else ''}{meta.get('name')}"


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def check_kubernetes_schemas() -> None:
    print(f"kubernetes (strict schemas of Kubernetes {KUBERNETES_VERSIONS[0]} to {KUBERNETES_VERSIONS[-1]}):")
    for path in manifest_files():
        for label, text in (("as shipped", path.read_text()), ("filled in", fill(path.read_text()))):
            for resource in load_yaml_docs(text):
                errors = validate_resource(resource, f"{rel(path)} {kind_name(resource)}")
                check(f"{rel(path)} {kind_name(resource)} validates ({label})", not errors, "; ".join(errors[:3]))


# --------------------------------------------------------------------------
# kustomize
# --------------------------------------------------------------------------

SUPPORTED_KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "patches"}


class RenderError(Exception):
    pass


def render(directory: Path) -> list[dict[str, Any]]:
    """What `kustomize build` gives for the features deploy/ uses (resources,
    and patches with a target and an inline JSON 6902 patch); anything else
    is refused, so this cannot silently diverge from kustomize."""
    path = directory / "kustomization.yaml"
    if not path.is_file():
        raise RenderError(f"{rel(directory)} has no kustomization.yaml")
    spec = yaml.safe_load(path.read_text())
    unsupported = set(spec) - SUPPORTED_KUSTOMIZATION_KEYS
    if unsupported:
        raise RenderError(f"{rel(path)}: {sorted(unsupported)} not supported by the offline renderer")
    if spec.get("kind") != "Kustomization" or spec.get("apiVersion") != "kustomize.config.k8s.io/v1beta1":
        raise RenderError(f"{rel(path)}: not a kustomize.config.k8s.io/v1beta1 Kustomization")
    resources: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            if target in directory.resolve().parents:
                # kustomize refuses a base that contains the overlay.
                raise RenderError(f"{rel(path)}: resource {entry} contains this kustomization (a cycle)")
            resources.extend(render(target))
        elif target.is_file():
            resources.extend(load_yaml_docs(target.read_text()))
        else:
            raise RenderError(f"{rel(path)}: resource {entry} does not exist")
    for patch in spec.get("patches", []):
        target = patch.get("target", {})
        matches = [
            r
            for r in resources
            if r.get("kind") == target.get("kind")
            and r.get("metadata", {}).get("name") == target.get("name")
            and r.get("apiVersion", "").split("/")[-1] == target.get("version", r.get("apiVersion", "").split("/")[-1])
            and (r.get("apiVersion", "").split("/")[0] if "/" in r.get("apiVersion", "") else "")
            == target.get("group", "")
        ]
        if len(matches) != 1:
            raise RenderError(f"{rel(path)}: patch target {target} matches {len(matches)} resources, not 1")
        ops = yaml.safe_load(patch["patch"])
        try:
            patched = jsonpatch.JsonPatch(ops).apply(matches[0])
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as err:
            raise RenderError(f"{rel(path)}: patch on {target} does not apply: {err}") from err
        resources[resources.index(matches[0])] = patched
    return resources


def normalise(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """Resources by kind/namespace/name, with empty label and annotation maps
    dropped (kustomize drops them)."""
    out = {}
    for r in copy.deepcopy(resources):
        meta = r.get("metadata", {})
        for key in ("labels", "annotations"):
            if key in meta and not meta[key]:
                del meta[key]
        out[kind_name(r)] = r
    return out


def kubectl_render(directory: Path) -> list[dict[str, Any]] | None:
    if not shutil.which("kubectl"):
        return None
    proc = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=False, timeout=60
    )
    if proc.returncode != 0:
        raise RenderError(f"kubectl kustomize {rel(directory)}: {proc.stderr.strip()}")
    return load_yaml_docs(proc.stdout)


def kustomization_dirs() -> list[Path]:
    return sorted(p.parent for p in K8S.rglob("kustomization.yaml"))


def check_kustomize() -> dict[str, dict[str, Any]]:
    """Returns each kustomization's rendering (filled in), by directory."""
    kubectl = shutil.which("kubectl")
    print(f"kustomize ({'offline renderer, and kubectl kustomize: ' + kubectl if kubectl else 'offline renderer only: kubectl is not installed'}):")
    rendered: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # A filled-in copy of deploy/kubernetes, as an operator would have it.
        filled_root = Path(tmp) / "kubernetes"
        shutil.copytree(K8S, filled_root)
        for path in filled_root.rglob("*.yaml"):
            path.write_text(fill(path.read_text()))
        for directory in kustomization_dirs():
            name = rel(directory)
            filled_dir = filled_root / directory.relative_to(K8S)
            try:
                ours = render(directory)
                ok(f"{name}: every resource exists, every patch applies ({len(ours)} resources)")
                filled = render(filled_dir)
            except RenderError as err:
                fail(str(err))
                continue
            errors = [e for r in filled for e in validate_resource(r, f"{name} {kind_name(r)}")]
            check(f"{name}: rendering validates ({', '.join(kind_name(r) for r in filled)})", not errors,
                  "; ".join(errors[:3]))
            rendered[name] = normalise(filled)
            try:
                theirs = kubectl_render(filled_dir)
            except RenderError as err:
                fail(str(err))
                continue
            if theirs is not None:
                errors = [e for r in theirs for e in validate_resource(r, f"{name} (kubectl) {kind_name(r)}")]
                check(f"{name}: kubectl kustomize renders it and the rendering validates", not errors,
                      "; ".join(errors[:3]))
                same = normalise(theirs) == normalise(filled)
                check(f"{name}: kubectl kustomize and the offline renderer agree", same,
                      f"kubectl: {sorted(normalise(theirs))}, offline: {sorted(normalise(filled))}")
    return rendered


# --------------------------------------------------------------------------
# hardening and consistency
# --------------------------------------------------------------------------


def get(obj: Any, *path: Any, default: Any = None) -> Any:
    for key in path:
        try:
            obj = obj[key]
        except (KeyError, IndexError, TypeError):
            return default
    return obj


def audit_containers(resources: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for key, r in resources.items():
        if r.get("kind") == "Deployment":
            pod = get(r, "spec", "template", "spec")
            for c in pod.get("containers", []):
                if c["name"] == "dspm-audit":
                    yield key, pod, c


def check_container_hardening(where: str, pod: dict[str, Any], c: dict[str, Any]) -> None:
    sc = c.get("securityContext", {})
    psc = pod.get("securityContext", {})
    checks: list[tuple[str, bool]] = [
        ("runAsNonRoot", sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True),
        (f"runAsUser {UID}", sc.get("runAsUser", psc.get("runAsUser")) == UID),
        (f"runAsGroup {UID}", sc.get("runAsGroup", psc.get("runAsGroup")) == UID),
        ("readOnlyRootFilesystem", sc.get("readOnlyRootFilesystem") is True),
        ("allowPrivilegeEscalation false", sc.get("allowPrivilegeEscalation") is False),
        ("capabilities drop ALL, add none", get(sc, "capabilities", "drop") == ["ALL"] and not get(sc, "capabilities", "add")),
        ("seccomp RuntimeDefault", get(sc, "seccompProfile", "type", default=get(psc, "seccompProfile", "type")) == "RuntimeDefault"),
        ("not privileged", not sc.get("privileged")),
        ("no volume mounts (nothing writable, nothing needed)", not c.get("volumeMounts")),
        ("memory request and limit", bool(get(c, "resources", "requests", "memory")) and bool(get(c, "resources", "limits", "memory"))),
        ("cpu request and limit", bool(get(c, "resources", "requests", "cpu")) and bool(get(c, "resources", "limits", "cpu"))),
        ("AWS_REGION set", any(e.get("name") == "AWS_REGION" for e in c.get("env", []))),
        ("no AWS keys in env", not any(e.get("name", "").startswith(("AWS_ACCESS_KEY", "AWS_SECRET", "AWS_SESSION")) for e in c.get("env", []))),
        ("image from ECR, tagged (never latest)", re.fullmatch(r"\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/dspm-audit:\d+\.\d+\.\d+(-[0-9a-f]{7})?", c.get("image", "")) is not None),
    ]
    bad = [name for name, good in checks if not good]
    check(f"{where}: container dspm-audit: {', '.join(name for name, _ in checks)}", not bad, f"not met: {bad}")


def check_hardening(rendered: dict[str, dict[str, Any]]) -> None:
    print("hardening and consistency:")
    sidecar = {kind_name(r): r for p in (K8S / "sidecar").glob("*.yaml") for r in load_yaml_docs(fill(p.read_text()))}
    for name, resources in list(rendered.items()) + [("deploy/kubernetes/sidecar", sidecar)]:
        containers = list(audit_containers(resources))
        check(f"{name}: one dspm-audit container", len(containers) == 1, str(len(containers)))
        for where, pod, c in containers:
            check_container_hardening(f"{name} {where}", pod, c)

    base = rendered.get("deploy/kubernetes/base", {})
    top = rendered.get("deploy/kubernetes", {})
    check("deploy/kubernetes renders exactly deploy/kubernetes/base", top == base)
    deployment = base.get(f"Deployment/{NAMESPACE}/dspm-audit", {})
    pod = get(deployment, "spec", "template", "spec", default={})
    c = get(pod, "containers", 0, default={})
    port_of = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    check(f"Deployment: port http = {PORT}", port_of.get("http") == PORT, str(port_of))
    check("Deployment: readiness GET /ready on http",
          get(c, "readinessProbe", "httpGet") == {"path": "/ready", "port": "http"}, str(c.get("readinessProbe")))
    check("Deployment: liveness GET /health on http",
          get(c, "livenessProbe", "httpGet") == {"path": "/health", "port": "http"}, str(c.get("livenessProbe")))
    check("Deployment: listens on 0.0.0.0:8103 (DSPM_LISTEN)",
          {"name": "DSPM_LISTEN", "value": f"0.0.0.0:{PORT}"} in c.get("env", []))
    check(f"Deployment: service account {SERVICE_ACCOUNT}, no volumes",
          pod.get("serviceAccountName") == SERVICE_ACCOUNT and not pod.get("volumes"))
    labels = get(deployment, "spec", "template", "metadata", "labels", default={})
    service = base.get(f"Service/{NAMESPACE}/dspm-audit", {})
    check("Service: selects the pods, port 8103 -> http, ClusterIP",
          get(service, "spec", "selector") == {k: v for k, v in labels.items() if k in get(service, "spec", "selector", default={})}
          and bool(get(service, "spec", "selector"))
          and get(service, "spec", "ports", 0, "port") == PORT and get(service, "spec", "ports", 0, "targetPort") == "http"
          and get(service, "spec", "type") == "ClusterIP", str(get(service, "spec")))
    policy = base.get(f"NetworkPolicy/{NAMESPACE}/dspm-audit", {})
    selector = get(policy, "spec", "podSelector", "matchLabels", default={})
    froms = [f for rule in get(policy, "spec", "ingress", default=[]) for f in rule.get("from", [])]
    check("NetworkPolicy: selects the pods; ingress only from labelled clients on 8103; egress restricted",
          bool(selector) and all(labels.get(k) == v for k, v in selector.items())
          and bool(froms) and all(get(f, "podSelector", "matchLabels", "dspm-audit.io/client") == "true" for f in froms)
          and all(p.get("port") == PORT for rule in get(policy, "spec", "ingress", default=[]) for p in rule.get("ports", []))
          and set(get(policy, "spec", "policyTypes", default=[])) == {"Ingress", "Egress"},
          json.dumps(get(policy, "spec")))
    egress_cidrs = [b["ipBlock"] for rule in get(policy, "spec", "egress", default=[]) for b in rule.get("to", []) if "ipBlock" in b]
    check("NetworkPolicy: the instance metadata service is excluded from egress",
          all("169.254.169.254/32" in b.get("except", []) or "fd00:ec2::254/128" in b.get("except", []) or b["cidr"].startswith(("169.254.170.23", "fd00:ec2::23"))
              for b in egress_cidrs) and bool(egress_cidrs), str(egress_cidrs))
    namespace = base.get(f"Namespace/{NAMESPACE}", {})
    check("Namespace: enforces the restricted Pod Security Standard",
          get(namespace, "metadata", "labels", "pod-security.kubernetes.io/enforce") == "restricted")

    sa = base.get(f"ServiceAccount/{NAMESPACE}/{SERVICE_ACCOUNT}", {})
    irsa = json.loads(fill((IAM / "trust-irsa.json").read_text()))
    stmt = irsa["Statement"][0]
    provider = SAMPLE_VALUES["<OIDC_PROVIDER>"]
    check("IRSA: the service account's role-arn annotation names the audit role",
          get(sa, "metadata", "annotations", "eks.amazonaws.com/role-arn") == fill(ROLE_ARN))
    check("IRSA: the trust policy admits exactly this service account (sub) for STS (aud), by web identity",
          stmt["Action"] == "sts:AssumeRoleWithWebIdentity"
          and stmt["Principal"] == {"Federated": f"arn:aws:iam::{SAMPLE_VALUES['<ACCOUNT_ID>']}:oidc-provider/{provider}"}
          and stmt["Condition"] == {"StringEquals": {f"{provider}:aud": "sts.amazonaws.com",
                                                     f"{provider}:sub": f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"}},
          json.dumps(stmt))
    pod_identity = rendered.get("deploy/kubernetes/pod-identity", {})
    pi_sa = pod_identity.get(f"ServiceAccount/{NAMESPACE}/{SERVICE_ACCOUNT}", {})
    check("Pod Identity: the variant's service account has no IRSA annotation",
          bool(pi_sa) and "eks.amazonaws.com/role-arn" not in get(pi_sa, "metadata", "annotations", default={}))
    pi_policy = pod_identity.get(f"NetworkPolicy/{NAMESPACE}/dspm-audit", {})
    check("Pod Identity: the variant's NetworkPolicy lets the pod reach the agent on 169.254.170.23:80",
          any(any(get(t, "ipBlock", "cidr") == "169.254.170.23/32" for t in rule.get("to", []))
              and any(p.get("port") == 80 for p in rule.get("ports", []))
              for rule in get(pi_policy, "spec", "egress", default=[])))
    pi_trust = json.loads(fill((IAM / "trust-pod-identity.json").read_text()))["Statement"][0]
    check("Pod Identity: the trust policy admits pods.eks.amazonaws.com with AssumeRole and TagSession, "
          "for this namespace and service account only",
          pi_trust["Principal"] == {"Service": "pods.eks.amazonaws.com"}
          and sorted(pi_trust["Action"]) == ["sts:AssumeRole", "sts:TagSession"]
          and get(pi_trust, "Condition", "StringEquals", "aws:RequestTag/kubernetes-namespace") == NAMESPACE
          and get(pi_trust, "Condition", "StringEquals", "aws:RequestTag/kubernetes-service-account") == SERVICE_ACCOUNT,
          json.dumps(pi_trust))

    # ECS
    td = json.loads(fill((DEPLOY / "ecs" / "task-definition.json").read_text()))
    cd = td["containerDefinitions"][0]
    ecs_checks = [
        ("awsvpc", td.get("networkMode") == "awsvpc"),
        ("FARGATE", td.get("requiresCompatibilities") == ["FARGATE"]),
        ("task role is the audit role", td.get("taskRoleArn") == fill(ROLE_ARN)),
        ("execution role is another role", td.get("executionRoleArn", "").startswith(f"arn:aws:iam::{SAMPLE_VALUES['<ACCOUNT_ID>']}:role/")
         and td.get("executionRoleArn") != td.get("taskRoleArn")),
        (f"user {UID}:{UID}", cd.get("user") == f"{UID}:{UID}"),
        ("readonlyRootFilesystem", cd.get("readonlyRootFilesystem") is True),
        ("not privileged", not cd.get("privileged")),
        ("capabilities drop ALL", get(cd, "linuxParameters", "capabilities", "drop") == ["ALL"]),
        ("health check runs `dspm-audit healthcheck`", get(cd, "healthCheck", "command") == ["CMD", "/dspm-audit", "healthcheck"]),
        (f"port {PORT}", get(cd, "portMappings", 0, "containerPort") == PORT),
        ("AWS_REGION set, no AWS keys", any(e["name"] == "AWS_REGION" for e in cd.get("environment", []))
         and not any(e["name"].startswith(("AWS_ACCESS_KEY", "AWS_SECRET", "AWS_SESSION")) for e in cd.get("environment", []))),
        ("awslogs", get(cd, "logConfiguration", "logDriver") == "awslogs"),
        ("no volumes or mount points", not td.get("volumes") and not cd.get("mountPoints")),
        ("image from ECR, tagged", re.fullmatch(r"\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/dspm-audit:\d+\.\d+\.\d+(-[0-9a-f]{7})?", cd.get("image", "")) is not None),
    ]
    bad = [n for n, good in ecs_checks if not good]
    check(f"ECS task definition: {', '.join(n for n, _ in ecs_checks)}", not bad, f"not met: {bad}")
    execution = json.loads(fill((IAM / "ecs-execution-policy.json").read_text()))
    log_group = get(cd, "logConfiguration", "options", "awslogs-group")
    log_resources = [s["Resource"] for s in execution["Statement"] if any(a.startswith("logs:") for a in [s["Action"]] if isinstance(s["Action"], str)) or any(str(a).startswith("logs:") for a in (s["Action"] if isinstance(s["Action"], list) else []))]
    check("ECS: the execution role may write to the task's log group and pull only the dspm-audit repository",
          any(f":log-group:{log_group}:" in str(r) for r in log_resources)
          and any(str(s["Resource"]).endswith(":repository/dspm-audit") for s in execution["Statement"]),
          str(log_resources))
    audit_actions = {a for s in json.loads((IAM / "dspm-audit-policy.json").read_text())["Statement"] for a in s["Action"]}
    exec_actions = {a for s in execution["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    check("ECS: the execution role has no audit permission, the audit role none of the execution role's",
          not (audit_actions & exec_actions))
    trust_task = json.loads(fill((IAM / "trust-ecs-task.json").read_text()))["Statement"][0]
    check("ECS: the task role trusts ecs-tasks.amazonaws.com for this account only (aws:SourceAccount, aws:SourceArn)",
          trust_task["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
          and get(trust_task, "Condition", "StringEquals", "aws:SourceAccount") == SAMPLE_VALUES["<ACCOUNT_ID>"]
          and get(trust_task, "Condition", "ArnLike", "aws:SourceArn", default="").startswith(f"arn:aws:ecs:{SAMPLE_VALUES['<REGION>']}:{SAMPLE_VALUES['<ACCOUNT_ID>']}:"))

    dockerfile = (ROOT / "Dockerfile.scratch").read_text()
    check(f"image (Dockerfile.scratch): USER {UID}:{UID}, EXPOSE {PORT}, HEALTHCHECK dspm-audit healthcheck, as deploy/ assumes",
          f"USER {UID}:{UID}" in dockerfile and f"EXPOSE {PORT}" in dockerfile
          and 'CMD ["/dspm-audit", "healthcheck"]' in dockerfile)

    secrets = []
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            text = path.read_text()
            if re.search(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b", text) or re.search(r"(?i)aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+]{40}", text):
                secrets.append(rel(path))
    check("no AWS access key or secret in deploy/", not secrets, str(secrets))


# --------------------------------------------------------------------------
# parliament
# --------------------------------------------------------------------------


def parliament_views(path: Path) -> Iterator[tuple[str, str]]:
    """(view, policy text) pairs to analyse. parliament is written for
    identity policies: on a trust policy (which has a Principal and no
    Resource) it reports the missing Resource and stops before checking
    actions and conditions. So a trust policy is analysed twice: as it is,
    and as the same statements with the role it belongs to as Resource, which
    lets parliament check the actions and condition keys too."""
    text = fill(path.read_text())
    yield "as is", text
    doc = json.loads(text)
    if any("Principal" in s for s in doc["Statement"]):
        for s in doc["Statement"]:
            s["Resource"] = f"arn:aws:iam::{SAMPLE_VALUES['<ACCOUNT_ID>']}:role/dspm-audit"
        yield "with the role as Resource", json.dumps(doc, indent=2)


def check_parliament() -> None:
    print("parliament (community auditors included):")
    accepted = json.loads(ACCEPTED.read_text())["accepted"]
    used = [False] * len(accepted)
    for path in sorted(IAM.glob("*.json")):
        for view, text in parliament_views(path):
            policy = analyze_policy_string(text, filepath=rel(path), include_community_auditors=True)
            findings = [(f.issue, str(f.detail)) for f in policy.findings]
            unexplained = []
            explained = []
            for issue, detail in findings:
                hit = next(
                    (i for i, a in enumerate(accepted)
                     if a["file"] == rel(path) and a["view"] == view and a["issue"] == issue
                     and re.search(a["detail"], detail)),
                    None,
                )
                if hit is None:
                    unexplained.append(f"{issue} {detail}")
                else:
                    used[hit] = True
                    explained.append(issue)
            note = f" ({len(explained)} accepted: {', '.join(sorted(set(explained)))})" if explained else ""
            check(f"{rel(path)} ({view}): no unexplained finding{note}", not unexplained, "; ".join(unexplained))
    stale = [f"{a['file']} ({a['view']}) {a['issue']}" for a, u in zip(accepted, used) if not u]
    check(f"every accepted finding in {rel(ACCEPTED)} still occurs (none stale)", not stale, str(stale))


def main() -> int:
    if not (DEPLOY / "README.md").is_file():
        fail("deploy/README.md is missing")
    sections: list[Callable[[], Any]] = [check_parse, check_placeholders, check_kubernetes_schemas]
    for section in sections:
        section()
    rendered = check_kustomize()
    check_hardening(rendered)
    check_parliament()
    print(f"check-deploy: {passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
