#!/usr/bin/env python3
"""`ecs register-task-definition` of deploy/ecs/task-definition.json (its
placeholders filled in as an operator would) against a moto server started
here on a free 127.0.0.1 port and stopped on exit.

boto3 (the AWS SDK the AWS CLI is built on, same service model) checks every
field's name and type against the ECS API before sending; moto then accepts
or refuses the definition. The registered definition is read back with
describe-task-definition and compared field by field. Three broken copies
(an unknown field, a wrongly typed field, no memory anywhere) must be
refused, so that acceptance is not vacuous.

    .venv/bin/python tests/deploy/ecs_register.py
"""

from __future__ import annotations

import copy
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "moto"))
import seed  # noqa: E402  (loopback-only boto3 clients, IMDS and profiles off)
from botocore.exceptions import ClientError, ParamValidationError  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_deploy import SAMPLE_VALUES, fill  # noqa: E402

TASK_DEFINITION = ROOT / "deploy" / "ecs" / "task-definition.json"
passed = 0


def ok(message: str) -> None:
    global passed
    passed += 1
    print(f"  ok  {message}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(log: Any) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = Path(sys.executable).with_name("moto_server")
    if not server.is_file():
        raise SystemExit(f"ecs: no moto_server next to {sys.executable}: run make venv")
    proc = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"ecs: moto_server exited ({proc.returncode}) before it was ready")
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1) as r:  # noqa: S310 (loopback)
                if r.status == 200:
                    return proc, endpoint
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("ecs: moto_server did not answer within 30 s")
        time.sleep(0.05)


def subset_differences(want: Any, got: Any, path: str = "") -> list[str]:
    """Where `got` lacks or changes something of `want` (ECS adds defaults)."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path}: {got!r}"]
        return [d for k, v in want.items() for d in subset_differences(v, got.get(k), f"{path}.{k}")]
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{path}: {got!r}"]
        return [d for i, (w, g) in enumerate(zip(want, got)) for d in subset_differences(w, g, f"{path}[{i}]")]
    return [] if want == got else [f"{path}: want {want!r}, got {got!r}"]


def main() -> int:
    seed.sanitize_environment()
    text = TASK_DEFINITION.read_text()
    definition = json.loads(fill(text))
    print(f"ecs: register-task-definition of {TASK_DEFINITION.relative_to(ROOT)} against moto")
    with tempfile.TemporaryFile() as log:
        proc, endpoint = start_moto(log)
        try:
            ecs = seed.Moto(endpoint).client("ecs", region=SAMPLE_VALUES["<REGION>"])
            registered = ecs.register_task_definition(**definition)["taskDefinition"]
            arn = registered["taskDefinitionArn"]
            ok(f"accepted: {arn}")

            described = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
            differences = subset_differences(definition, described)
            if differences:
                raise SystemExit(f"ecs: FAIL: described definition differs: {differences}")
            ok(f"describe-task-definition returns every field as written ({len(json.dumps(definition))} bytes)")
            if "FARGATE" not in described.get("compatibilities", []):
                raise SystemExit(f"ecs: FAIL: not Fargate-compatible: {described.get('compatibilities')}")
            ok(f"compatibilities {described['compatibilities']} include FARGATE")

            container = definition["containerDefinitions"][0]
            broken: list[tuple[str, dict[str, Any], type[Exception]]] = []
            unknown = copy.deepcopy(definition)
            unknown["containerDefinitions"][0]["readOnlyRootFileSystem"] = True  # misspelt
            broken.append(("a misspelt field (readOnlyRootFileSystem)", unknown, ParamValidationError))
            wrong_type = copy.deepcopy(definition)
            wrong_type["containerDefinitions"][0]["readonlyRootFilesystem"] = "true"
            broken.append(("a string where a boolean belongs", wrong_type, ParamValidationError))
            no_memory = copy.deepcopy(definition)
            del no_memory["memory"]
            assert "memory" not in container and "memoryReservation" not in container
            broken.append(("no memory for the task or the container", no_memory, ClientError))
            for what, doc, error in broken:
                try:
                    ecs.register_task_definition(**doc)
                except error as err:
                    ok(f"refused, as it must be: {what} ({type(err).__name__})")
                else:
                    raise SystemExit(f"ecs: FAIL: {what} was accepted: the check would not catch it")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    print(f"ecs: {passed} passed, 0 failed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            print(exit_.code, file=sys.stderr)
            print(f"ecs: {passed} passed, 1 failed")
            sys.exit(1)
        raise
