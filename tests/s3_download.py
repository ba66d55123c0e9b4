"""Downloads a lake from an S3-compatible server the way an analyst's tool sees it.

    s3_download.py ENDPOINT BUCKET PREFIX DEST
    s3_download.py ENDPOINT BUCKET PREFIX --list     (prints every key below PREFIX/, one a line)

Every object under PREFIX/ is written below DEST with its path, except the commit scheme's
own folders (`_log`, `_lease`, `_staging`, `_probe`). Uses boto3 (moto's dependency), not
vaten's code: this is what the bucket really holds.
"""
import os
import sys

import boto3

endpoint, bucket, prefix, dest = sys.argv[1:5]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    aws_access_key_id="test-reader",
    aws_secret_access_key="test-reader-secret",
    region_name="us-east-1",
)
internal = {"_log", "_lease", "_staging", "_probe"}
count = 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
    for obj in page.get("Contents", []):
        rel = obj["Key"][len(prefix) + 1 :]
        if dest == "--list":
            print(rel)
            continue
        if rel.split("/")[0] in internal:
            continue
        path = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        s3.download_file(bucket, obj["Key"], path)
        count += 1
if dest != "--list":
    print(count)
