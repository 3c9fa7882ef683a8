#!/usr/bin/env python3
"""The AWS benchmark of BENCHMARKS.md: stop 1,000 `env=dev` instances of an
account of 2,000, side by side, on the local EC2 endpoint:

  pare      `pare apply` of a plan naming the 1,000 (then `pare rollback`)
  boto3     the minimal hand-written script: one filtered describe, one
            StopInstances, one describe to confirm (bench/minimal_stop.py)
  custodian Cloud Custodian, a `stop` policy filtered on the tag,
            `--cache-period 0`

Each contender runs as its own process against the same counting proxy
(scripts/ec2-proxy.py) in front of moto, so the API calls are counted per
action. Between contenders the instances are started again (not timed).
Run it through scripts/bench-aws, which installs and starts everything.

    aws_stop.py PARE_BINARY ENDPOINT_URL [--rounds N]
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3

HERE = os.path.dirname(os.path.abspath(__file__))
REGION = "us-east-1"


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    pare, endpoint = os.path.abspath(args[0]), args[1].rstrip("/")
    rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 3
    # --compare OTHER_PARE: another pare binary (an earlier release), timed
    # side by side in the same rounds, with a state directory of its own.
    other = os.path.abspath(args[args.index("--compare") + 1]) if "--compare" in args else None
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_ENDPOINT_URL=endpoint,
        AWS_EC2_METADATA_DISABLED="true",
        NO_PROXY="127.0.0.1,localhost",
    )
    env.pop("AWS_PROFILE", None)
    os.environ.update(env)
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=endpoint)

    # The account: 2,000 instances, every other launch of 100 tagged env=dev.
    dev = []
    for k in range(20):
        tag = "dev" if k % 2 == 0 else "prod"
        out = ec2.run_instances(
            ImageId="ami-12c6146b",
            InstanceType="t3.micro",
            MinCount=100,
            MaxCount=100,
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "env", "Value": tag}]}],
        )
        if tag == "dev":
            dev.extend(i["InstanceId"] for i in out["Instances"])
    assert len(dev) == 1000

    work = tempfile.mkdtemp(prefix="pare-bench-aws-")
    recs = "".join(f"  - {{ id: park-{n}, action: hibernate, instance: {i}, mode: stop }}\n" for n, i in enumerate(dev))
    with open(os.path.join(work, "plan.yaml"), "w") as f:
        f.write(
            "version: 1\nname: stop-dev\n"
            f'provider: {{ aws: {{ region: {REGION}, endpoint_url: "{endpoint}" }} }}\n'
            'approvals: [ { by: bench@example.com, covers: ["*"] } ]\n'
            "recommendations:\n" + recs
        )
    with open(os.path.join(work, "pare.toml"), "w") as f:
        f.write("[policy]\nmax_changes = 1000\n")
    with open(os.path.join(work, "policy.yml"), "w") as f:
        f.write(
            "policies:\n  - name: stop-dev\n    resource: ec2\n    filters:\n"
            '      - "tag:env": dev\n      - "State.Name": running\n    actions:\n      - stop\n'
        )

    def counts():
        with urllib.request.urlopen(endpoint + "/_proxy/counts") as r:
            return json.load(r)

    def reset():
        urllib.request.urlopen(urllib.request.Request(endpoint + "/_proxy/reset", data=b"", method="POST")).read()

    def timed(cmd):
        reset()
        t = time.perf_counter()
        p = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t
        if p.returncode != 0:
            sys.exit(f"{cmd[0]} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        return wall, counts()

    def states():
        seen = {}
        for page in ec2.get_paginator("describe_instances").paginate(InstanceIds=dev):
            for r in page["Reservations"]:
                for i in r["Instances"]:
                    seen[i["State"]["Name"]] = seen.get(i["State"]["Name"], 0) + 1
        return seen

    def restart():
        ec2.start_instances(InstanceIds=dev)
        assert states() == {"running": 1000}, states()

    ec2.describe_instances(MaxResults=5)  # warm-up: the endpoint's first call is slow
    python = sys.executable
    custodian = os.path.join(os.path.dirname(python), "custodian")
    results = {"pare apply": [], "pare rollback": [], "boto3 script": [], "custodian": []}
    compared = []
    if other:
        results["other pare apply"] = []
        results["other pare rollback"] = []
        compared = [
            ("other pare apply", [other, "--state-dir", ".pare-other", "apply", "plan.yaml", "--auto-approve", "--quiet"], None),
            ("other pare rollback", [other, "--state-dir", ".pare-other", "rollback", "--last", "--auto-approve", "--quiet"], None),
        ]
    calls = {}
    for n in range(rounds):
        ours = [
            ("pare apply", [pare, "apply", "plan.yaml", "--auto-approve", "--quiet"], None),
            ("pare rollback", [pare, "rollback", "--last", "--auto-approve", "--quiet"], None),
            ("boto3 script", [python, os.path.join(HERE, "minimal_stop.py")], restart),
            ("custodian", [custodian, "run", "-s", "out", "--cache-period", "0", "--region", REGION, "policy.yml"], restart),
        ]
        # The other binary goes first in odd rounds and last in even ones, so
        # neither side always meets the endpoint's state at the same age.
        for name, cmd, after in (compared + ours if n % 2 == 0 else ours + compared):
            wall, c = timed(cmd)
            want = {"running": 1000} if name.endswith("pare rollback") else {"stopped": 1000}
            got = states()
            if got != want:
                sys.exit(f"{name} left {got}, expected {want}")
            results[name].append(wall)
            calls[name] = c
            print(f"round {n + 1}: {name:14} {wall:7.2f} s  {sum(c['forwarded'].values())} calls", file=sys.stderr)
            if after:
                after()

    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"\n{rounds} rounds, median wall time (each contender a fresh process; 1,000 stops of 2,000 instances)\n")
    print("| contender | median | runs | API calls (+ dry runs) |")
    print("|---|---|---|---|")
    for k, v in results.items():
        c = calls[k]
        fwd = ", ".join(f"{a} {n}" for a, n in sorted(c["forwarded"].items()))
        dry = sum(c["dry_run"].values())
        print(f"| {k} | {med[k]:.2f} s | {', '.join(f'{x:.2f}' for x in v)} | {sum(c['forwarded'].values())}: {fwd}" + (f" (+{dry} DryRun)" if dry else "") + " |")
    print()
    print(f"pare apply / boto3 script = {med['pare apply'] / med['boto3 script']:.2f}")
    print(f"pare apply / custodian    = {med['pare apply'] / med['custodian']:.2f}")
    print(f"pare rollback / boto3 script = {med['pare rollback'] / med['boto3 script']:.2f}")
    if other:
        print(f"pare apply / other pare apply = {med['pare apply'] / med['other pare apply']:.2f}")
        print(f"pare rollback / other pare rollback = {med['pare rollback'] / med['other pare rollback']:.2f}")


if __name__ == "__main__":
    main()
