#!/usr/bin/env python3
"""Seed a fresh moto server (on 127.0.0.1) with a benchmark account, with boto3.

    fixture.py --endpoint http://127.0.0.1:PORT --size small|large [--workers 8]

Sizes (buckets across three regions; postures mixed, chosen per item by a
fixed-seed generator so every run seeds the same account):

    small   50 buckets,    50 users,  20 customer-managed policies
    large 1000 buckets,   500 users, 200 customer-managed policies

Also seeded: one KMS key per region, an account-level Block Public Access,
a password policy, five groups, and an organization with an SCP (the same
Organizations setup as tests/moto/seed.py). boto3 clients come from
tests/moto/seed.py's loopback-only `Moto` (explicit endpoint, dummy keys, no
IMDS/profiles/proxies, a hook that refuses any other host). Calls run on a
thread pool (moto is one process; eight boto3 threads keep it busy).

Prints one JSON document: counts per posture, the calls made and the seconds
each phase took.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "moto"))
import seed  # noqa: E402  (tests/moto/seed.py)

REGIONS = ("us-east-1", "eu-west-1", "ap-northeast-2")
SIZES = {
    "small": {"buckets": 50, "users": 50, "policies": 20},
    "large": {"buckets": 1000, "users": 500, "policies": 200},
}
GROUPS = 5


class Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = 0
        self.postures: dict[str, int] = {}

    def add(self, calls: int, *tags: str) -> None:
        with self.lock:
            self.calls += calls
            for tag in tags:
                self.postures[tag] = self.postures.get(tag, 0) + 1


def bucket_plan(i: int, rng: random.Random) -> dict[str, Any]:
    region = REGIONS[i % len(REGIONS)]
    r = rng.random()
    policy = "public" if r < 0.10 else "tls_only" if r < 0.35 else "vpce_only" if r < 0.45 else None
    return {
        "name": f"bench-{i:05d}-{region}",
        "region": region,
        "policy": policy,
        "public_acl": rng.random() < 0.05,
        "encryption": rng.choice(["AES256", "AES256", "aws:kms", None, None]),
        "versioning": rng.choice(["Enabled", "Enabled", "Suspended", None, None]),
        "logging": rng.random() < 0.30,
        "bpa": rng.choice(["all", "all", "partial", None, None]),
    }


POLICY_FUNCS = {"public": seed.public_read_policy, "tls_only": seed.tls_only_policy, "vpce_only": seed.vpce_only_policy}


def seed_buckets(moto: seed.Moto, count: int, workers: int, counter: Counter) -> None:
    s3 = {region: moto.client("s3", region) for region in REGIONS}
    kms_arn = {}
    for region in REGIONS:
        kms = moto.client("kms", region)
        kms_arn[region] = kms.create_key(Description=f"bench data key ({region})")["KeyMetadata"]["Arn"]
        counter.add(1)

    # One access-log target per region, with the log-delivery policy moto checks.
    log_bucket = {}
    for region in REGIONS:
        name = f"bench-logs-{region}"
        kwargs: dict[str, Any] = {"Bucket": name}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3[region].create_bucket(**kwargs)
        s3[region].put_bucket_policy(Bucket=name, Policy=json.dumps(seed.log_delivery_policy(name)))
        counter.add(2, "logs_target")
        log_bucket[region] = name

    rng = random.Random(20240607)
    plans = [bucket_plan(i, rng) for i in range(count - len(REGIONS))]

    def one(plan: dict[str, Any]) -> None:
        c = s3[plan["region"]]
        name = plan["name"]
        calls = 0
        kwargs: dict[str, Any] = {"Bucket": name}
        if plan["region"] != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": plan["region"]}
        c.create_bucket(**kwargs)
        calls += 1
        tags = [f"region:{plan['region']}"]
        if plan["public_acl"]:
            c.put_bucket_acl(Bucket=name, ACL="public-read")
            calls += 1
            tags.append("acl:public-read")
        if plan["encryption"]:
            rule: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": plan["encryption"]}}
            if plan["encryption"] == "aws:kms":
                rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] = kms_arn[plan["region"]]
                rule["BucketKeyEnabled"] = True
            c.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": [rule]})
            calls += 1
        tags.append(f"encryption:{plan['encryption']}")
        if plan["versioning"]:
            if plan["versioning"] == "Suspended":
                c.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
                calls += 1
            c.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": plan["versioning"]})
            calls += 1
        tags.append(f"versioning:{plan['versioning']}")
        if plan["logging"]:
            c.put_bucket_logging(
                Bucket=name,
                BucketLoggingStatus={
                    "LoggingEnabled": {"TargetBucket": log_bucket[plan["region"]], "TargetPrefix": f"{name}/"}
                },
            )
            calls += 1
        tags.append(f"logging:{plan['logging']}")
        if plan["policy"]:
            c.put_bucket_policy(Bucket=name, Policy=json.dumps(POLICY_FUNCS[plan["policy"]](name)))
            calls += 1
        tags.append(f"policy:{plan['policy']}")
        if plan["bpa"]:
            on = plan["bpa"] == "all"
            c.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=seed.bpa(True, on, on, on))
            calls += 1
        tags.append(f"bpa:{plan['bpa']}")
        counter.add(calls, *tags)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, plans))

    s3control = moto.client("s3control")
    s3control.put_public_access_block(AccountId=seed.ACCOUNT_ID, PublicAccessBlockConfiguration=seed.ACCOUNT_BPA)
    counter.add(1)


def policy_document(i: int, rng: random.Random, buckets: int) -> dict[str, Any]:
    r = rng.random()
    bucket = f"arn:aws:s3:::bench-{rng.randrange(buckets):05d}-*"
    if r < 0.05:
        return seed.policy_doc({"Effect": "Allow", "Action": "*", "Resource": "*"})
    if r < 0.15:
        return seed.policy_doc({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
    if r < 0.25:
        return seed.policy_doc({"Effect": "Allow", "Action": ["iam:*"], "Resource": "*"})
    statements = [
        {"Sid": f"Read{i}", "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
         "Resource": [bucket, f"{bucket}/*"]},
    ]
    if rng.random() < 0.5:
        statements.append({"Sid": f"Deny{i}", "Effect": "Deny", "Action": "s3:DeleteObject", "Resource": f"{bucket}/*"})
    return seed.policy_doc(*statements)


def seed_iam(moto: seed.Moto, users: int, policies: int, buckets: int, workers: int, counter: Counter) -> None:
    iam = moto.client("iam")
    rng = random.Random(20240608)
    docs = [policy_document(i, rng, buckets) for i in range(policies)]

    def one_policy(i: int) -> str:
        arn = iam.create_policy(PolicyName=f"bench-policy-{i:04d}", PolicyDocument=json.dumps(docs[i]))["Policy"]["Arn"]
        counter.add(1, "policy")
        return arn

    with ThreadPoolExecutor(workers) as pool:
        arns = list(pool.map(one_policy, range(policies)))

    for g in range(GROUPS):
        name = f"bench-group-{g}"
        iam.create_group(GroupName=name)
        iam.attach_group_policy(GroupName=name, PolicyArn=arns[g % len(arns)])
        counter.add(2)

    plans = []
    for i in range(users):
        plans.append({
            "name": f"bench-user-{i:04d}",
            "password": rng.random() < 0.4,
            "mfa": rng.random() < 0.5,
            "keys": rng.choice([0, 1, 1, 2]),
            "attached": rng.sample(arns, rng.choice([0, 1, 1, 2])),
            "inline": rng.random() < 0.2,
            "group": rng.random() < 0.2,
        })

    def one_user(plan: dict[str, Any]) -> None:
        name = plan["name"]
        iam.create_user(UserName=name)
        calls = 1
        tags = [f"keys:{plan['keys']}", f"attached:{len(plan['attached'])}"]
        if plan["password"]:
            iam.create_login_profile(UserName=name, Password="Bench-Passw0rd!x", PasswordResetRequired=False)
            calls += 1
            tags.append("password")
            if plan["mfa"]:
                serial = iam.create_virtual_mfa_device(VirtualMFADeviceName=name)["VirtualMFADevice"]["SerialNumber"]
                iam.enable_mfa_device(UserName=name, SerialNumber=serial,
                                      AuthenticationCode1="123456", AuthenticationCode2="654321")
                calls += 2
                tags.append("password+mfa")
        for _ in range(plan["keys"]):
            iam.create_access_key(UserName=name)
            calls += 1
        for arn in plan["attached"]:
            iam.attach_user_policy(UserName=name, PolicyArn=arn)
            calls += 1
        if plan["inline"]:
            doc = seed.policy_doc({"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"})
            iam.put_user_policy(UserName=name, PolicyName="inline-list", PolicyDocument=json.dumps(doc))
            calls += 1
            tags.append("inline")
        if plan["group"]:
            iam.add_user_to_group(GroupName=f"bench-group-{rng_index(name) % GROUPS}", UserName=name)
            calls += 1
            tags.append("group")
        counter.add(calls, *tags)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one_user, plans))

    iam.update_account_password_policy(**seed.PASSWORD_POLICY)
    counter.add(1)


def rng_index(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--size", choices=sorted(SIZES), required=True)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    seed.sanitize_environment()
    moto = seed.Moto(args.endpoint)
    size = SIZES[args.size]
    if moto.client("s3").list_buckets().get("Buckets"):
        sys.exit("fixture.py: moto already holds buckets; seed a fresh server")

    counter = Counter()
    timings = {}
    started = time.monotonic()
    seed_buckets(moto, size["buckets"], args.workers, counter)
    timings["s3_seconds"] = round(time.monotonic() - started, 2)
    t = time.monotonic()
    seed_iam(moto, size["users"], size["policies"], size["buckets"], args.workers, counter)
    timings["iam_seconds"] = round(time.monotonic() - t, 2)
    t = time.monotonic()
    seed.seed_organizations(moto)
    counter.add(8)
    timings["organizations_seconds"] = round(time.monotonic() - t, 2)
    timings["total_seconds"] = round(time.monotonic() - started, 2)

    listed = moto.client("s3").list_buckets()["Buckets"]
    iam_users = moto.client("iam").list_users()["Users"]
    if len(listed) != size["buckets"] or len(iam_users) != size["users"]:
        sys.exit(f"fixture.py: moto holds {len(listed)} buckets and {len(iam_users)} users, "
                 f"expected {size['buckets']} and {size['users']}")
    json.dump({
        "size": args.size,
        **size,
        "regions": list(REGIONS),
        "groups": GROUPS,
        "boto3_calls": counter.calls,
        "workers": args.workers,
        **timings,
        "calls_per_second": round(counter.calls / timings["total_seconds"], 1),
        "postures": dict(sorted(counter.postures.items())),
    }, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
