#!/usr/bin/env python3
"""Seed a running moto server with a realistic AWS account for dspm-audit's tests.

boto3 is the independent reference client here: the product talks to moto with
its own SigV4 code, this script sets the account up the way an AWS user would.

Usage (the endpoint must be a moto server on 127.0.0.1 that the caller started):

    seed.py --endpoint http://127.0.0.1:PORT seed
        Seed S3, KMS, IAM and Organizations; print one JSON document describing
        exactly what was seeded and what moto reports back.
    seed.py --endpoint http://127.0.0.1:PORT auditor --policy-file FILE [--role-name NAME]
        Create a role carrying the policy in FILE, a user allowed to assume it,
        assume it as that user, and print the session credentials as JSON.
    seed.py --endpoint http://127.0.0.1:PORT auth on|off
        Turn moto's IAM/SigV4 enforcement on (every later call is checked) or off.
    seed.py --endpoint http://127.0.0.1:PORT reset
        Clear all of moto's state (the auth setting is kept).

Every failure exits non-zero with a message on stderr; stdout carries only the
JSON result. See tests/moto/README.md for the output shape.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import http.client
import io
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

try:
    import boto3
    from botocore.config import Config
except ImportError as _err:  # run with a python that lacks the pinned venv
    sys.exit(f"seed.py: {_err}; run it with the venv's python (make venv: .venv/bin/python)")

# moto's default account; it becomes the Organizations management account.
ACCOUNT_ID = "123456789012"
HOME_REGION = "us-east-1"
EU_REGION = "eu-west-1"
# moto accepts any key pair while auth enforcement is off.
DUMMY_ACCESS_KEY = "testing"
DUMMY_SECRET_KEY = "testing"

LOG_DELIVERY_PRINCIPAL = "logging.s3.amazonaws.com"
ALL_USERS_URI = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTH_USERS_URI = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
BPA_KEYS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


class SeedError(Exception):
    """A failure with a message meant for the person running the tests."""


def sanitize_environment() -> None:
    """Keep botocore from looking anywhere but the moto endpoint.

    botocore reads these variables when a session is created, so this runs
    before any: never consult the instance metadata service, a profile, shared
    config or credential files, an endpoint override or an HTTP proxy. Every
    client also gets an explicit endpoint, region and dummy credentials, and a
    request hook refuses any URL that is not the moto endpoint.
    """
    for name in list(os.environ):
        upper = name.upper()
        if upper in {"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"} or (
            upper.startswith("AWS_ENDPOINT_URL")
        ):
            del os.environ[name]
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1"


# --------------------------------------------------------------------------
# Talking to moto
# --------------------------------------------------------------------------


class Moto:
    """boto3 clients and raw moto-api calls, all aimed at one loopback endpoint."""

    def __init__(self, endpoint: str) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme != "http" or parts.hostname != "127.0.0.1" or not parts.port:
            raise SeedError(f"--endpoint must look like http://127.0.0.1:PORT (got {endpoint!r})")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise SeedError(f"--endpoint must have no path or query (got {endpoint!r})")
        self.port = parts.port
        self.netloc = f"127.0.0.1:{parts.port}"
        self.endpoint = f"http://{self.netloc}"

    # -- boto3 -------------------------------------------------------------

    def client(
        self,
        service: str,
        region: str = HOME_REGION,
        access_key: str = DUMMY_ACCESS_KEY,
        secret_key: str = DUMMY_SECRET_KEY,
        session_token: str | None = None,
    ) -> Any:
        session = boto3.session.Session(
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            aws_session_token=session_token,
            region_name=region,
        )
        config = Config(
            s3={"addressing_style": "path"},  # path-style works for every name, dotted too
            inject_host_prefix=False,
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
            proxies={},
        )
        client = session.client(service, endpoint_url=self.endpoint, config=config)
        events = client.meta.events
        if service == "s3control":
            # botocore's endpoint rules put the account id in front of the host
            # ("123456789012.127.0.0.1"), which would be a DNS lookup. moto wants
            # the path-style URL plus the x-amz-account-id header botocore sends
            # anyway. Rewrite before signing so the signed Host is the real one.
            events.register("before-sign.s3-control", self._strip_host_prefix)
        events.register("before-send", self._refuse_other_hosts)
        return client

    def _strip_host_prefix(self, request: Any, **_: Any) -> None:
        request.url = urlunsplit(urlsplit(request.url)._replace(netloc=self.netloc))

    def _refuse_other_hosts(self, request: Any, **_: Any) -> None:
        parts = urlsplit(request.url)
        if parts.scheme != "http" or parts.netloc != self.netloc:
            raise SeedError(f"refusing to send a request to {request.url!r}: only {self.endpoint} is allowed")

    # -- moto's own API ----------------------------------------------------

    def moto_api(self, path: str, body: str = "") -> str:
        """POST to moto's control API with a text/plain body; return the answer."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", path, body=body.encode(), headers={"Content-Type": "text/plain"})
            resp = conn.getresponse()
            text = resp.read().decode(errors="replace")
        except OSError as err:
            raise SeedError(f"POST {self.endpoint}{path} failed: {err}") from err
        finally:
            conn.close()
        if resp.status != 200:
            raise SeedError(f"POST {self.endpoint}{path} answered {resp.status}: {text[:500]}")
        return text


# --------------------------------------------------------------------------
# Policy documents
# --------------------------------------------------------------------------


def policy_doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def bucket_arn(name: str) -> str:
    return f"arn:aws:s3:::{name}"


def public_read_policy(bucket: str) -> dict[str, Any]:
    """Anyone may read every object: public."""
    return policy_doc(
        {
            "Sid": "PublicRead",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": f"{bucket_arn(bucket)}/*",
        }
    )


def tls_only_policy(bucket: str) -> dict[str, Any]:
    """Deny every request made without TLS: the CIS "deny HTTP" pattern."""
    return policy_doc(
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn(bucket), f"{bucket_arn(bucket)}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )


VPC_ENDPOINT_ID = "vpce-0a1b2c3d4e5f60789"


def vpce_only_policy(bucket: str) -> dict[str, Any]:
    """Principal "*" pinned to one VPC endpoint: not public."""
    return policy_doc(
        {
            "Sid": "ReadThroughOurVpcEndpointOnly",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": f"{bucket_arn(bucket)}/*",
            "Condition": {"StringEquals": {"aws:SourceVpce": VPC_ENDPOINT_ID}},
        }
    )


def log_delivery_policy(bucket: str) -> dict[str, Any]:
    """Let S3 server access logging write into the bucket (service principal)."""
    return policy_doc(
        {
            "Sid": "S3ServerAccessLogsPolicy",
            "Effect": "Allow",
            "Principal": {"Service": LOG_DELIVERY_PRINCIPAL},
            "Action": "s3:PutObject",
            "Resource": f"{bucket_arn(bucket)}/*",
            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}},
        }
    )


# --------------------------------------------------------------------------
# S3 + KMS
# --------------------------------------------------------------------------


def bpa(acls: bool, ignore: bool, policy: bool, restrict: bool) -> dict[str, bool]:
    return dict(zip(BPA_KEYS, (acls, ignore, policy, restrict), strict=True))


@dataclasses.dataclass
class BucketSpec:
    """What one seeded bucket should look like, and why it exists."""

    name: str
    purpose: str
    region: str = HOME_REGION
    location_constraint: str | None = None  # sent in CreateBucketConfiguration
    public: bool = False  # effectively public, under the seeded account-level BPA
    public_via: str | None = None  # "policy" | "acl"
    ownership: str | None = None  # ObjectOwnership
    acl: str | None = None  # canned ACL
    policy: Callable[[str], dict[str, Any]] | None = None
    tls_enforced: bool = False
    encryption: str | None = None  # "AES256" | "aws:kms"
    versioning: str | None = None  # "Enabled" | "Suspended"
    mfa_delete: bool = False
    logging_target: str | None = None
    bpa: dict[str, bool] | None = None


BUCKETS = [
    BucketSpec(
        name="acme-public-policy",
        purpose="public through a bucket policy (Principal * s3:GetObject); no Block Public Access",
        public=True,
        public_via="policy",
        policy=public_read_policy,
    ),
    BucketSpec(
        name="acme-public-acl",
        purpose="public through the public-read canned ACL (ObjectOwnership BucketOwnerPreferred)",
        public=True,
        public_via="acl",
        ownership="BucketOwnerPreferred",
        acl="public-read",
    ),
    BucketSpec(
        name="acme-tls-only",
        purpose="the good bucket: TLS-only policy, SSE-KMS, versioning, access logging, BPA all on",
        policy=tls_only_policy,
        tls_enforced=True,
        encryption="aws:kms",
        versioning="Enabled",
        logging_target="acme-logs",
        bpa=bpa(True, True, True, True),
    ),
    BucketSpec(
        name="acme-sse-s3",
        purpose="SSE-S3 (AES256) default encryption; versioning Suspended (after Enabled)",
        encryption="AES256",
        versioning="Suspended",
    ),
    BucketSpec(
        name="acme-logs",
        purpose="server access log target: log delivery allowed by a service-principal policy; SSE-S3; BPA all on",
        policy=log_delivery_policy,
        encryption="AES256",
        bpa=bpa(True, True, True, True),
    ),
    BucketSpec(
        name="acme-eu-data",
        purpose="created in eu-west-1 (LocationConstraint eu-west-1), SSE-KMS with an eu-west-1 key, BPA all on",
        region=EU_REGION,
        location_constraint=EU_REGION,
        encryption="aws:kms",
        bpa=bpa(True, True, True, True),
    ),
    BucketSpec(
        name="acme-legacy-eu",
        purpose="created through a us-east-1 client with the legacy LocationConstraint EU (= eu-west-1)",
        location_constraint="EU",
    ),
    BucketSpec(
        name="acme.dotted.name",
        purpose="dotted name; bucket BPA only partly on (BlockPublicAcls only)",
        bpa=bpa(True, False, False, False),
    ),
    BucketSpec(
        name="acme-mfa-delete",
        purpose="versioning Enabled with MFADelete Enabled requested (see mfa_delete for what moto stores)",
        versioning="Enabled",
        mfa_delete=True,
    ),
    BucketSpec(
        name="acme-vpce-only",
        purpose="policy with Principal * restricted by aws:SourceVpce: not public",
        policy=vpce_only_policy,
        encryption="AES256",
    ),
]

# Account-level BPA: the two "block new grants" settings on, the two that
# neutralise existing public grants off. The account-level check FAILs, and the
# public buckets above stay effectively public (as they would in AWS).
ACCOUNT_BPA = bpa(acls=True, ignore=False, policy=True, restrict=False)


def create_kms_keys(moto: Moto) -> dict[str, dict[str, Any]]:
    """One customer-managed key per region used by SSE-KMS buckets."""
    keys = {}
    for region in (HOME_REGION, EU_REGION):
        kms = moto.client("kms", region)
        meta = kms.create_key(Description=f"acme data key ({region})")["KeyMetadata"]
        alias = "alias/acme-data"
        kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
        keys[region] = {"key_id": meta["KeyId"], "arn": meta["Arn"], "alias": alias, "region": region}
    return keys


def seed_s3(moto: Moto, kms_keys: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    clients = {region: moto.client("s3", region) for region in (HOME_REGION, EU_REGION)}
    s3_of = {spec.name: clients[spec.region] for spec in BUCKETS}
    limitations: list[str] = []

    # The order matters: ACLs and policies before Block Public Access (which
    # would reject them), and logging before any policy with Principal "*"
    # on a target bucket (moto answers 500 to PutBucketLogging then).
    for spec in BUCKETS:
        kwargs: dict[str, Any] = {"Bucket": spec.name}
        if spec.location_constraint:
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": spec.location_constraint}
        s3_of[spec.name].create_bucket(**kwargs)

    for spec in BUCKETS:
        s3 = s3_of[spec.name]
        if spec.ownership:
            s3.put_bucket_ownership_controls(
                Bucket=spec.name,
                OwnershipControls={"Rules": [{"ObjectOwnership": spec.ownership}]},
            )
        if spec.acl:
            s3.put_bucket_acl(Bucket=spec.name, ACL=spec.acl)
        if spec.encryption:
            rule: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": spec.encryption}}
            if spec.encryption == "aws:kms":
                rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] = kms_keys[spec.region]["arn"]
                rule["BucketKeyEnabled"] = True
            s3.put_bucket_encryption(Bucket=spec.name, ServerSideEncryptionConfiguration={"Rules": [rule]})
        if spec.versioning:
            if spec.versioning == "Suspended":
                # A bucket reaches Suspended only after it was once Enabled.
                s3.put_bucket_versioning(Bucket=spec.name, VersioningConfiguration={"Status": "Enabled"})
            config = {"Status": spec.versioning}
            extra = {}
            if spec.mfa_delete:
                config["MFADelete"] = "Enabled"
                # "<serial> <code>": AWS requires the root user's MFA here.
                extra["MFA"] = f"arn:aws:iam::{ACCOUNT_ID}:mfa/root-account-mfa-device 123456"
            s3.put_bucket_versioning(Bucket=spec.name, VersioningConfiguration=config, **extra)

    # Log-target permissions first, then logging, then the remaining policies.
    targets = {spec.logging_target for spec in BUCKETS if spec.logging_target}
    ordered = sorted(BUCKETS, key=lambda spec: spec.name not in targets)
    for spec in ordered:
        if spec.name in targets and spec.policy:
            s3_of[spec.name].put_bucket_policy(Bucket=spec.name, Policy=json.dumps(spec.policy(spec.name)))
    for spec in BUCKETS:
        if spec.logging_target:
            s3_of[spec.name].put_bucket_logging(
                Bucket=spec.name,
                BucketLoggingStatus={
                    "LoggingEnabled": {"TargetBucket": spec.logging_target, "TargetPrefix": f"{spec.name}/"}
                },
            )
    for spec in BUCKETS:
        if spec.policy and spec.name not in targets:
            s3_of[spec.name].put_bucket_policy(Bucket=spec.name, Policy=json.dumps(spec.policy(spec.name)))

    for spec in BUCKETS:
        if spec.bpa:
            s3_of[spec.name].put_public_access_block(Bucket=spec.name, PublicAccessBlockConfiguration=spec.bpa)

    s3control = moto.client("s3control")
    s3control.put_public_access_block(AccountId=ACCOUNT_ID, PublicAccessBlockConfiguration=ACCOUNT_BPA)

    # Read everything back, so the output states what moto will answer.
    buckets = {}
    for spec in BUCKETS:
        observed = read_bucket(s3_of[spec.name], spec.name)
        check_bucket(spec, observed, kms_keys, limitations)
        buckets[spec.name] = {
            "name": spec.name,
            "arn": bucket_arn(spec.name),
            "purpose": spec.purpose,
            "region": spec.region,
            "location_constraint_sent": spec.location_constraint,
            "public": spec.public,
            "public_via": spec.public_via,
            "tls_enforced": spec.tls_enforced,
            "policy": spec.policy(spec.name) if spec.policy else None,
            **observed,
        }

    account_bpa = s3control.get_public_access_block(AccountId=ACCOUNT_ID)["PublicAccessBlockConfiguration"]
    if account_bpa != ACCOUNT_BPA:
        raise SeedError(f"account-level Block Public Access reads back as {account_bpa}, expected {ACCOUNT_BPA}")
    return buckets, account_bpa, limitations


def optional(call: Callable[[], Any], *absent_codes: str) -> Any:
    """Run a read call; None when AWS answers one of the "does not exist" codes."""
    try:
        return call()
    except Exception as err:  # botocore ClientError; its code tells "not configured"
        code = getattr(err, "response", {}).get("Error", {}).get("Code")
        if code in absent_codes:
            return None
        raise


def read_bucket(s3: Any, name: str) -> dict[str, Any]:
    """What moto reports for one bucket, in the shape the output documents."""
    location = s3.get_bucket_location(Bucket=name).get("LocationConstraint")
    acl = s3.get_bucket_acl(Bucket=name)
    grants = [
        {
            "grantee": g["Grantee"].get("URI") or g["Grantee"].get("ID"),
            "type": g["Grantee"]["Type"],
            "permission": g["Permission"],
        }
        for g in acl["Grants"]
    ]
    ownership = optional(
        lambda: s3.get_bucket_ownership_controls(Bucket=name)["OwnershipControls"]["Rules"][0]["ObjectOwnership"],
        "OwnershipControlsNotFoundError",
    )
    policy_status = optional(
        lambda: s3.get_bucket_policy_status(Bucket=name)["PolicyStatus"]["IsPublic"], "NoSuchBucketPolicy"
    )
    bucket_bpa = optional(
        lambda: s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"],
        "NoSuchPublicAccessBlockConfiguration",
    )
    rules = optional(
        lambda: s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"],
        "ServerSideEncryptionConfigurationNotFoundError",
    )
    encryption = None
    if rules:
        default = rules[0]["ApplyServerSideEncryptionByDefault"]
        encryption = {
            "algorithm": default["SSEAlgorithm"],
            "kms_key_id": default.get("KMSMasterKeyID"),
            "bucket_key_enabled": rules[0].get("BucketKeyEnabled", False),
        }
    versioning = s3.get_bucket_versioning(Bucket=name)
    logging = s3.get_bucket_logging(Bucket=name).get("LoggingEnabled")
    return {
        "get_bucket_location": location,
        "owner_id": acl["Owner"]["ID"],
        "acl_grants": grants,
        "acl_public": any(g["grantee"] in (ALL_USERS_URI, AUTH_USERS_URI) for g in grants),
        "ownership_controls": ownership,
        "policy_is_public": policy_status,
        "bpa": bucket_bpa,
        "encryption": encryption,
        "versioning": versioning.get("Status"),
        "mfa_delete": versioning.get("MFADelete"),
        "logging": {"target_bucket": logging["TargetBucket"], "target_prefix": logging["TargetPrefix"]}
        if logging
        else None,
    }


def check_bucket(
    spec: BucketSpec, seen: dict[str, Any], kms_keys: dict[str, dict[str, Any]], limitations: list[str]
) -> None:
    """Fail loudly when moto did not keep what was put (known gaps are recorded)."""
    expected_location = {None: None, "EU": "EU"}.get(spec.location_constraint, spec.location_constraint)
    expected = {
        "get_bucket_location": expected_location,
        "acl_public": spec.public_via == "acl",
        "ownership_controls": spec.ownership,
        "policy_is_public": (spec.public_via == "policy") if spec.policy else None,
        "bpa": spec.bpa,
        "versioning": spec.versioning,
        "logging": {"target_bucket": spec.logging_target, "target_prefix": f"{spec.name}/"}
        if spec.logging_target
        else None,
    }
    if spec.encryption:
        expected["encryption"] = {
            "algorithm": spec.encryption,
            "kms_key_id": kms_keys[spec.region]["arn"] if spec.encryption == "aws:kms" else None,
            "bucket_key_enabled": spec.encryption == "aws:kms",
        }
    else:
        expected["encryption"] = None
    wrong = {k: (v, seen[k]) for k, v in expected.items() if seen[k] != v}
    if wrong:
        details = "; ".join(f"{k}: expected {v!r}, moto says {s!r}" for k, (v, s) in wrong.items())
        raise SeedError(f"bucket {spec.name} did not read back as seeded: {details}")
    if spec.mfa_delete and seen["mfa_delete"] != "Enabled":
        limitations.append(
            f"S3 MFA delete: moto 5.2.5 accepts PutBucketVersioning with MFADelete=Enabled but does not "
            f"store it; GetBucketVersioning on {spec.name} has no MFADelete element (Status only)"
            if seen["mfa_delete"] is None
            else f"store it; GetBucketVersioning on {spec.name} reports MFADelete={seen['mfa_delete']!r}"
        )


# --------------------------------------------------------------------------
# IAM
# --------------------------------------------------------------------------

MANAGED_POLICIES = {
    "FullAdmin": policy_doc({"Sid": "Everything", "Effect": "Allow", "Action": "*", "Resource": "*"}),
    "ReadOnlyS3": policy_doc(
        {
            "Sid": "ReadReports",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:ListBucket"],
            "Resource": ["arn:aws:s3:::acme-sse-s3", "arn:aws:s3:::acme-sse-s3/*"],
        }
    ),
    # Resource "*" but one action: must not be mistaken for full admin.
    "NotAdminWithStarResource": policy_doc(
        {"Sid": "ReadAnyObject", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}
    ),
}


@dataclasses.dataclass
class UserSpec:
    name: str
    purpose: str
    password: bool = False
    mfa: bool = False
    access_keys: int = 0
    groups: tuple[str, ...] = ()
    attached: tuple[str, ...] = ()  # managed policies attached to the user directly


USERS = [
    UserSpec("alice", "console password with a virtual MFA device enabled", password=True, mfa=True),
    UserSpec("bob", "console password without MFA; one active access key", password=True, access_keys=1),
    UserSpec("carol", "two active access keys", access_keys=2),
    UserSpec(
        "dave", "no password; one access key; FullAdmin attached directly", access_keys=1, attached=("FullAdmin",)
    ),
    UserSpec("erin", "permissions only through group data-readers", groups=("data-readers",)),
]

GROUPS = {"data-readers": ("ReadOnlyS3", "NotAdminWithStarResource")}

PASSWORD_POLICY = {"MinimumPasswordLength": 8, "PasswordReusePrevention": 3}


def seed_iam(moto: Moto) -> dict[str, Any]:
    iam = moto.client("iam")

    policy_arns = {}
    for name, doc in MANAGED_POLICIES.items():
        policy = iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(doc))["Policy"]
        policy_arns[name] = policy["Arn"]

    groups = {}
    for group, attached in GROUPS.items():
        arn = iam.create_group(GroupName=group)["Group"]["Arn"]
        for policy in attached:
            iam.attach_group_policy(GroupName=group, PolicyArn=policy_arns[policy])
        groups[group] = {"name": group, "arn": arn, "attached_policies": list(attached), "members": []}

    users = {}
    for spec in USERS:
        user = iam.create_user(UserName=spec.name)["User"]
        if spec.password:
            iam.create_login_profile(
                UserName=spec.name, Password=f"{spec.name.title()}-Passw0rd!", PasswordResetRequired=False
            )
        mfa_devices = []
        if spec.mfa:
            serial = iam.create_virtual_mfa_device(VirtualMFADeviceName=spec.name)["VirtualMFADevice"]["SerialNumber"]
            # moto accepts any pair of six-digit codes.
            iam.enable_mfa_device(
                UserName=spec.name, SerialNumber=serial, AuthenticationCode1="123456", AuthenticationCode2="654321"
            )
            mfa_devices.append(serial)
        keys = []
        for _ in range(spec.access_keys):
            key = iam.create_access_key(UserName=spec.name)["AccessKey"]
            keys.append(
                {
                    "access_key_id": key["AccessKeyId"],
                    "secret_access_key": key["SecretAccessKey"],
                    "status": key["Status"],
                    "create_date": key["CreateDate"].isoformat(),
                }
            )
        for group in spec.groups:
            iam.add_user_to_group(GroupName=group, UserName=spec.name)
            groups[group]["members"].append(spec.name)
        for policy in spec.attached:
            iam.attach_user_policy(UserName=spec.name, PolicyArn=policy_arns[policy])
        users[spec.name] = {
            "name": spec.name,
            "arn": user["Arn"],
            "user_id": user["UserId"],
            "create_date": user["CreateDate"].isoformat(),
            "purpose": spec.purpose,
            "has_password": spec.password,
            "mfa_enabled": bool(mfa_devices),
            "mfa_devices": mfa_devices,
            "access_keys": keys,
            "groups": list(spec.groups),
            "attached_policies": list(spec.attached),
            "inline_policies": [],
        }

    iam.update_account_password_policy(**PASSWORD_POLICY)
    password_policy = iam.get_account_password_policy()["PasswordPolicy"]
    for key, value in PASSWORD_POLICY.items():
        if password_policy.get(key) != value:
            raise SeedError(f"password policy {key} reads back as {password_policy.get(key)!r}, expected {value!r}")

    policies = {}
    for name, doc in MANAGED_POLICIES.items():
        policies[name] = {
            "name": name,
            "arn": policy_arns[name],
            "document": doc,
            "grants_full_admin": name == "FullAdmin",
            "attached_to": {
                "users": [u.name for u in USERS if name in u.attached],
                "groups": [g for g, attached in GROUPS.items() if name in attached],
                "roles": [],
            },
        }

    return {
        "users": users,
        "groups": groups,
        "policies": policies,
        "password_policy": password_policy,
        "credential_report": credential_report(iam),
    }


def credential_report(iam: Any) -> dict[str, Any]:
    """Generate the credential report (STARTED, then COMPLETE) and parse its CSV."""
    for _ in range(20):
        if iam.generate_credential_report()["State"] == "COMPLETE":
            break
        time.sleep(0.2)
    else:
        raise SeedError("GenerateCredentialReport never reached COMPLETE")
    report = iam.get_credential_report()
    if report.get("ReportFormat") != "text/csv":
        raise SeedError(f"credential report has format {report.get('ReportFormat')!r}, expected text/csv")
    text = report["Content"].decode("utf-8")  # botocore already base64-decoded the blob
    reader = csv.DictReader(io.StringIO(text))
    return {
        "generated_time": report["GeneratedTime"].isoformat(),
        "columns": reader.fieldnames,
        "rows": list(reader),
    }


# --------------------------------------------------------------------------
# Organizations
# --------------------------------------------------------------------------

DENY_LEAVE_ORG = policy_doc(
    {"Sid": "DenyLeaveOrg", "Effect": "Deny", "Action": "organizations:LeaveOrganization", "Resource": "*"}
)


def seed_organizations(moto: Moto) -> dict[str, Any]:
    orgs = moto.client("organizations")
    org = orgs.create_organization(FeatureSet="ALL")["Organization"]
    root = orgs.list_roots()["Roots"][0]
    orgs.enable_policy_type(RootId=root["Id"], PolicyType="SERVICE_CONTROL_POLICY")
    scp = orgs.create_policy(
        Name="DenyLeaveOrg",
        Description="Member accounts may not leave the organization",
        Type="SERVICE_CONTROL_POLICY",
        Content=json.dumps(DENY_LEAVE_ORG),
    )["Policy"]["PolicySummary"]
    # Attached to the management account itself (moto's default account).
    orgs.attach_policy(PolicyId=scp["Id"], TargetId=ACCOUNT_ID)

    roots = orgs.list_roots()["Roots"]
    enabled = [p["Type"] for p in roots[0]["PolicyTypes"] if p["Status"] == "ENABLED"]
    if "SERVICE_CONTROL_POLICY" not in enabled:
        raise SeedError(f"SERVICE_CONTROL_POLICY is not enabled on the root after enabling it: {roots[0]}")

    scps = {}
    for summary in orgs.list_policies(Filter="SERVICE_CONTROL_POLICY")["Policies"]:
        targets = orgs.list_targets_for_policy(PolicyId=summary["Id"])["Targets"]
        content = orgs.describe_policy(PolicyId=summary["Id"])["Policy"]["Content"]
        scps[summary["Name"]] = {
            "id": summary["Id"],
            "arn": summary["Arn"],
            "aws_managed": summary["AwsManaged"],
            "document": json.loads(content),
            "targets": [{"target_id": t["TargetId"], "type": t["Type"], "name": t["Name"]} for t in targets],
        }
    if {"target_id": ACCOUNT_ID, "type": "ACCOUNT", "name": "master"} not in scps["DenyLeaveOrg"]["targets"]:
        raise SeedError(f"DenyLeaveOrg is not attached to {ACCOUNT_ID}: {scps['DenyLeaveOrg']['targets']}")

    return {
        "organization_id": org["Id"],
        "arn": org["Arn"],
        "feature_set": org["FeatureSet"],
        "management_account_id": org["MasterAccountId"],
        "root_id": root["Id"],
        "root_arn": root["Arn"],
        "enabled_policy_types": enabled,
        "accounts": [
            {"id": a["Id"], "name": a["Name"], "email": a["Email"], "status": a["Status"]}
            for a in orgs.list_accounts()["Accounts"]
        ],
        "scps": scps,
        "deny_leave_org_attached_to": "account",
    }


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------


def cmd_seed(moto: Moto, _args: argparse.Namespace) -> dict[str, Any]:
    existing = [b["Name"] for b in moto.client("s3").list_buckets().get("Buckets", [])]
    if existing:
        raise SeedError(f"moto already holds buckets {existing}: seed a fresh server (or `reset` first)")
    kms_keys = create_kms_keys(moto)
    buckets, account_bpa, limitations = seed_s3(moto, kms_keys)
    iam = seed_iam(moto)
    organizations = seed_organizations(moto)
    return {
        "endpoint": moto.endpoint,
        "account_id": ACCOUNT_ID,
        "home_region": HOME_REGION,
        "kms_keys": kms_keys,
        "s3": {
            "buckets": buckets,
            "account_public_access_block": account_bpa,
            "vpc_endpoint_id": VPC_ENDPOINT_ID,
        },
        "iam": iam,
        "organizations": organizations,
        "moto_limitations": limitations,
    }


def cmd_auditor(moto: Moto, args: argparse.Namespace) -> dict[str, Any]:
    try:
        with open(args.policy_file, encoding="utf-8") as f:
            document = json.load(f)
    except (OSError, ValueError) as err:
        raise SeedError(f"cannot read the policy document {args.policy_file}: {err}") from err
    if not isinstance(document, dict) or "Statement" not in document:
        raise SeedError(f"{args.policy_file} is not an IAM policy document (no Statement)")

    role_name = args.role_name
    user_name = args.user_name or f"{role_name}-caller"
    iam = moto.client("iam")

    # The caller: an IAM user whose only right is to assume the role.
    # Refuse to reuse names: a second auditor needs its own --role-name.
    if optional(lambda: iam.get_user(UserName=user_name), "NoSuchEntity") is not None:
        raise SeedError(f"IAM user {user_name} already exists: pass another --role-name (or --user-name)")
    if optional(lambda: iam.get_role(RoleName=role_name), "NoSuchEntity") is not None:
        raise SeedError(f"IAM role {role_name} already exists: pass another --role-name")
    user = iam.create_user(UserName=user_name)["User"]
    trust = policy_doc({"Effect": "Allow", "Principal": {"AWS": user["Arn"]}, "Action": "sts:AssumeRole"})
    role = iam.create_role(
        RoleName=role_name,
        AssumeRolePolicyDocument=json.dumps(trust),
        Description="dspm-audit test auditor",
    )["Role"]
    iam.put_role_policy(RoleName=role_name, PolicyName=f"{role_name}-policy", PolicyDocument=json.dumps(document))
    iam.put_user_policy(
        UserName=user_name,
        PolicyName="assume-auditor-role",
        PolicyDocument=json.dumps(policy_doc({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role["Arn"]})),
    )
    key = iam.create_access_key(UserName=user_name)["AccessKey"]

    # Assume the role as that user, the way the product's operator would.
    sts = moto.client("sts", access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
    assumed = sts.assume_role(RoleArn=role["Arn"], RoleSessionName=args.session_name)
    creds = assumed["Credentials"]
    return {
        "access_key_id": creds["AccessKeyId"],
        "secret_access_key": creds["SecretAccessKey"],
        "session_token": creds["SessionToken"],
        "expiration": creds["Expiration"].isoformat(),
        "role_arn": role["Arn"],
        "role_name": role_name,
        "assumed_role_arn": assumed["AssumedRoleUser"]["Arn"],
        "user_name": user_name,
        "user_arn": user["Arn"],
        "user_access_key_id": key["AccessKeyId"],
        "user_secret_access_key": key["SecretAccessKey"],
    }


def cmd_auth(moto: Moto, args: argparse.Namespace) -> dict[str, Any]:
    # moto reads the body as INITIAL_NO_AUTH_ACTION_COUNT: 0 = check every call
    # from now on, inf = never check. It must be text/plain (form bodies read empty).
    answer = json.loads(moto.moto_api("/moto-api/reset-auth", "0" if args.state == "on" else "inf"))
    if answer.get("status") != "ok":
        raise SeedError(f"moto refused reset-auth: {answer}")
    return {"auth_enforced": args.state == "on"}


def cmd_reset(moto: Moto, _args: argparse.Namespace) -> dict[str, Any]:
    moto.moto_api("/moto-api/reset")
    return {"reset": True}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", required=True, help="the moto server, http://127.0.0.1:PORT")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("seed", help="seed S3, KMS, IAM and Organizations; print what was seeded")
    auditor = sub.add_parser("auditor", help="create an assumable auditor role; print session credentials")
    auditor.add_argument("--policy-file", required=True, help="IAM policy document (JSON) for the role")
    auditor.add_argument("--role-name", default="dspm-auditor")
    auditor.add_argument("--user-name", help="the IAM user that assumes the role (default ROLE-caller)")
    auditor.add_argument("--session-name", default="dspm-audit-test")
    auth = sub.add_parser("auth", help="turn moto's auth enforcement on or off")
    auth.add_argument("state", choices=("on", "off"))
    sub.add_parser("reset", help="clear all moto state")
    return parser.parse_args(argv)


COMMANDS = {"seed": cmd_seed, "auditor": cmd_auditor, "auth": cmd_auth, "reset": cmd_reset}


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    sanitize_environment()
    try:
        moto = Moto(args.endpoint)
        result = COMMANDS[args.command](moto, args)
    except SeedError as err:
        print(f"seed.py {args.command}: error: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # any boto3/botocore failure: show it whole
        traceback.print_exc(file=sys.stderr)
        print(f"seed.py {args.command}: error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
