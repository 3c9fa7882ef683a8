#!/usr/bin/env python3
"""The AWS benchmarks of BENCHMARKS.md, side by side on the local EC2
endpoint, in an account of 2,000 instances.

--scenario stop (the default): stop the 1,000 tagged `env=dev`:
  pare      `pare apply` of a plan naming the 1,000 (then `pare rollback`)
  boto3     the minimal hand-written script: one filtered describe, one
            StopInstances, one describe to confirm (bench/minimal_stop.py)
  custodian Cloud Custodian, a `stop` policy filtered on the tag,
            `--cache-period 0`

--scenario state: the stop, by pare only, with its state in a directory
and in S3 (the moto S3 server scripts/bench-aws starts; the requests each
run makes to it are counted from its log), alternating in every round.

--scenario rightsize: 500 of the `env=dev` instances (also tagged
`resize=yes`) from m5.large to m5.xlarge, restarted:
  pare      `pare apply` of a plan naming the 500 (then `pare rollback`), at
            parallelism 10 and 20
  custodian Cloud Custodian's `resize` action (`restart: true`) on the tag

Each contender runs as its own process against the same counting proxy
(scripts/ec2-proxy.py) in front of moto, so the API calls are counted per
action. Between contenders the instances are started again (not timed).
Run it through scripts/bench-aws, which installs and starts everything.

    aws_stop.py PARE_BINARY ENDPOINT_URL [--rounds N] [--scenario stop|rightsize]
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
    scenario = args[args.index("--scenario") + 1] if "--scenario" in args else "stop"
    resize = scenario == "rightsize"
    team = scenario == "state"
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

    # The account: 2,000 instances, every other launch of 100 tagged env=dev
    # (for the rightsize, every other of those also resize=yes).
    dev = []
    for k in range(20):
        tag = "dev" if k % 2 == 0 else "prod"
        tags = [{"Key": "env", "Value": tag}]
        if resize and k % 4 == 0:
            tags.append({"Key": "resize", "Value": "yes"})
        out = ec2.run_instances(
            ImageId="ami-12c6146b",
            InstanceType="m5.large" if resize else "t3.micro",
            MinCount=100,
            MaxCount=100,
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )
        if (resize and k % 4 == 0) or (not resize and tag == "dev"):
            dev.extend(i["InstanceId"] for i in out["Instances"])
    assert len(dev) == (500 if resize else 1000)

    work = tempfile.mkdtemp(prefix="pare-bench-aws-")
    if resize:
        recs = "".join(f"  - {{ id: size-{n}, action: rightsize, instance: {i}, to: m5.xlarge }}\n" for n, i in enumerate(dev))
    else:
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
        if team:
            s3 = os.environ["PARE_BENCH_S3"]
            urllib.request.urlopen(urllib.request.Request(s3 + "/pare-bench", method="PUT")).read()
            f.write(f'[state]\nbackend = "s3"\nbucket = "pare-bench"\nprefix = "stop/"\nendpoint_url = "{s3}"\n')

    def s3_requests():
        """(requests so far, of which journal chunks) in the S3 server's log."""
        path = os.environ.get("PARE_BENCH_S3_LOG")
        if not path:
            return (0, 0)
        with open(path, errors="replace") as f:
            lines = [l for l in f if any(f'"{m} /' in l for m in ("GET", "PUT", "DELETE", "HEAD", "POST"))]
        return (len(lines), sum(1 for l in lines if '"PUT /' in l and "/journal/" in l))
    with open(os.path.join(work, "policy.yml"), "w") as f:
        if resize:
            f.write(
                "policies:\n  - name: resize-dev\n    resource: ec2\n    filters:\n"
                '      - "tag:resize": "yes"\n      - "State.Name": running\n    actions:\n'
                "      - type: resize\n        restart: true\n        default: m5.xlarge\n"
            )
        else:
            f.write(
                "policies:\n  - name: stop-dev\n    resource: ec2\n    filters:\n"
                '      - "tag:env": dev\n      - "State.Name": running\n    actions:\n      - stop\n'
            )

    def counts():
        with urllib.request.urlopen(endpoint + "/_proxy/counts") as r:
            return json.load(r)

    def reset():
        urllib.request.urlopen(urllib.request.Request(endpoint + "/_proxy/reset", data=b"", method="POST")).read()

    s3_per_run = {}

    def timed(cmd, name=""):
        reset()
        before = s3_requests()
        t = time.perf_counter()
        p = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t
        if p.returncode != 0:
            sys.exit(f"{cmd[0]} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        after = s3_requests()
        s3_per_run[name] = (after[0] - before[0], after[1] - before[1])
        return wall, counts()

    def states():
        seen = {}
        for page in ec2.get_paginator("describe_instances").paginate(InstanceIds=dev):
            for r in page["Reservations"]:
                for i in r["Instances"]:
                    key = i["State"]["Name"] + (f" {i['InstanceType']}" if resize else "")
                    seen[key] = seen.get(key, 0) + 1
        return seen

    def restart():
        ec2.start_instances(InstanceIds=dev)
        assert states() == {"running": 1000}, states()

    def size_back():
        ec2.stop_instances(InstanceIds=dev)
        for i in dev:
            ec2.modify_instance_attribute(InstanceId=i, InstanceType={"Value": "m5.large"})
        ec2.start_instances(InstanceIds=dev)
        assert states() == {"running m5.large": 500}, states()

    ec2.describe_instances(MaxResults=5)  # warm-up: the endpoint's first call is slow
    python = sys.executable
    custodian = os.path.join(os.path.dirname(python), "custodian")
    results = {"pare apply": [], "pare rollback": [], "boto3 script": [], "custodian": []}
    if team:
        results = {"pare apply": [], "pare rollback": [], "pare apply (S3 state)": [], "pare rollback (S3 state)": []}
    compared = []
    if other:
        results["other pare apply"] = []
        results["other pare rollback"] = []
        compared = [
            ("other pare apply", [other, "--state-dir", ".pare-other", "apply", "plan.yaml", "--auto-approve", "--quiet"], None),
            ("other pare rollback", [other, "--state-dir", ".pare-other", "rollback", "--last", "--auto-approve", "--quiet"], None),
        ]
    calls = {}
    if resize:
        for k in ("boto3 script",):
            del results[k]
        results["pare apply p20"] = []
        results["pare rollback p20"] = []
    for n in range(rounds):
        custodian_run = [custodian, "run", "-s", "out", "--cache-period", "0", "--region", REGION, "policy.yml"]
        if team:
            local = ["--state-dir", ".pare-local"]
            ours = [
                ("pare apply", [pare, *local, "apply", "plan.yaml", "--auto-approve", "--quiet"], None),
                ("pare rollback", [pare, *local, "rollback", "--last", "--auto-approve", "--quiet"], None),
                ("pare apply (S3 state)", [pare, "apply", "plan.yaml", "--auto-approve", "--quiet"], None),
                ("pare rollback (S3 state)", [pare, "rollback", "--last", "--auto-approve", "--quiet"], None),
            ]
            if n % 2 == 1:
                ours = ours[2:] + ours[:2]
        elif resize:
            ours = [
                ("pare apply", [pare, "apply", "plan.yaml", "--auto-approve", "--quiet"], None),
                ("pare rollback", [pare, "rollback", "--last", "--auto-approve", "--quiet"], None),
                ("pare apply p20", [pare, "apply", "plan.yaml", "--auto-approve", "--quiet", "--parallelism", "20"], None),
                ("pare rollback p20", [pare, "rollback", "--last", "--auto-approve", "--quiet", "--parallelism", "20"], None),
                ("custodian", custodian_run, size_back),
            ]
        else:
            ours = [
                ("pare apply", [pare, "apply", "plan.yaml", "--auto-approve", "--quiet"], None),
                ("pare rollback", [pare, "rollback", "--last", "--auto-approve", "--quiet"], None),
                ("boto3 script", [python, os.path.join(HERE, "minimal_stop.py")], restart),
                ("custodian", custodian_run, restart),
            ]
        # The other binary goes first in odd rounds and last in even ones, so
        # neither side always meets the endpoint's state at the same age.
        for name, cmd, after in (compared + ours if n % 2 == 0 else ours + compared):
            wall, c = timed(cmd, name)
            undone = "pare rollback" in name
            if resize:
                want = {"running m5.large": 500} if undone else {"running m5.xlarge": 500}
            else:
                want = {"running": 1000} if undone else {"stopped": 1000}
            got = states()
            if got != want:
                sys.exit(f"{name} left {got}, expected {want}")
            results[name].append(wall)
            calls[name] = c
            extra = f", {s3_per_run[name][0]} S3 requests ({s3_per_run[name][1]} journal chunks)" if team else ""
            print(f"round {n + 1}: {name:14} {wall:7.2f} s  {sum(c['forwarded'].values())} calls{extra}", file=sys.stderr)
            if after:
                after()

    med = {k: statistics.median(v) for k, v in results.items()}
    what = "500 rightsizes (with restart)" if resize else "1,000 stops"
    print(f"\n{rounds} rounds, median wall time (each contender a fresh process; {what} of 2,000 instances)\n")
    print("| contender | median | runs | API calls (+ dry runs) |")
    print("|---|---|---|---|")
    for k, v in results.items():
        c = calls[k]
        fwd = ", ".join(f"{a} {n}" for a, n in sorted(c["forwarded"].items()))
        dry = sum(c["dry_run"].values())
        print(f"| {k} | {med[k]:.2f} s | {', '.join(f'{x:.2f}' for x in v)} | {sum(c['forwarded'].values())}: {fwd}" + (f" (+{dry} DryRun)" if dry else "") + " |")
    print()
    if team:
        print(f"pare apply, S3 state / local state    = {med['pare apply (S3 state)'] / med['pare apply']:.2f}")
        print(f"pare rollback, S3 state / local state = {med['pare rollback (S3 state)'] / med['pare rollback']:.2f}")
        for k in ("pare apply (S3 state)", "pare rollback (S3 state)"):
            total, chunks = s3_per_run[k]
            print(f"{k}, last round: {total} S3 requests, {chunks} of them journal chunks (group commits): {total - chunks} besides")
    elif resize:
        for k in ("pare apply", "pare rollback", "pare apply p20", "pare rollback p20"):
            print(f"{k} / custodian = {med[k] / med['custodian']:.2f}")
    else:
        print(f"pare apply / boto3 script = {med['pare apply'] / med['boto3 script']:.2f}")
        print(f"pare apply / custodian    = {med['pare apply'] / med['custodian']:.2f}")
        print(f"pare rollback / boto3 script = {med['pare rollback'] / med['boto3 script']:.2f}")
    if other:
        print(f"pare apply / other pare apply = {med['pare apply'] / med['other pare apply']:.2f}")
        print(f"pare rollback / other pare rollback = {med['pare rollback'] / med['other pare rollback']:.2f}")


if __name__ == "__main__":
    main()
