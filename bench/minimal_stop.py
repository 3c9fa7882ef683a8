#!/usr/bin/env python3
"""The minimal hand-written boto3 script of the AWS benchmark: stop every
running env=dev instance. One filtered describe, one StopInstances, one
describe to confirm. No plan, no journal, no undo."""

import boto3

ec2 = boto3.client("ec2")
ids = [
    i["InstanceId"]
    for page in ec2.get_paginator("describe_instances").paginate(
        Filters=[
            {"Name": "tag:env", "Values": ["dev"]},
            {"Name": "instance-state-name", "Values": ["running"]},
        ]
    )
    for r in page["Reservations"]
    for i in r["Instances"]
]
ec2.stop_instances(InstanceIds=ids)
ec2.get_waiter("instance_stopped").wait(InstanceIds=ids)
print(f"stopped {len(ids)}")
