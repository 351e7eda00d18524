"""The benchmark's reference: the same job as source-aws-billing done the usual way, with boto3 and requests.

Pulls one day (or an inclusive range) of cost per service from Cost Explorer with boto3,
following NextPageToken, and POSTs one binary-mode CloudEvent per group over one keep-alive
requests.Session. Exits 0 when every event got a 2xx, 1 otherwise.

    reference.py --endpoint URL --target URL (--date D | --from D --to D) [--metric BlendedCost]
"""

import argparse
import datetime
import json
import sys
import uuid

import boto3
import requests

SOURCE = "cloud.aws.billing"
TYPE = "aws.service.daily"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--date")
    parser.add_argument("--from", dest="first")
    parser.add_argument("--to", dest="last")
    parser.add_argument("--metric", default="BlendedCost")
    parser.add_argument("--region", default="us-east-1")
    args = parser.parse_args()
    first = datetime.date.fromisoformat(args.date or args.first)
    last = datetime.date.fromisoformat(args.date or args.last)
    end = last + datetime.timedelta(days=1)

    # Credentials come from the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), as in a cron job.
    ce = boto3.client("ce", region_name=args.region, endpoint_url=args.endpoint)
    session = requests.Session()
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")

    query = {
        "TimePeriod": {"Start": first.isoformat(), "End": end.isoformat()},
        "Granularity": "DAILY",
        "Metrics": [args.metric],
        "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}],
    }
    sent = failed = pages = 0
    token = None
    while True:
        page = ce.get_cost_and_usage(**query, **({"NextPageToken": token} if token else {}))
        pages += 1
        for result in page["ResultsByTime"]:
            date = result["TimePeriod"]["Start"]
            for group in result.get("Groups", []):
                metric = group["Metrics"][args.metric]
                data = {
                    "vanceSource": SOURCE,
                    "vanceType": TYPE,
                    "date": date,
                    "service": group["Keys"][0],
                    "amount": metric["Amount"],
                    "unit": metric["Unit"],
                }
                headers = {
                    "ce-specversion": "1.0",
                    "ce-id": str(uuid.uuid4()),
                    "ce-source": SOURCE,
                    "ce-type": TYPE,
                    "ce-time": now,
                    "Content-Type": "application/json",
                }
                response = session.post(args.target, data=json.dumps(data), headers=headers, timeout=30)
                if 200 <= response.status_code < 300:
                    sent += 1
                else:
                    failed += 1
        token = page.get("NextPageToken")
        if not token:
            break
    print(f"reference: {sent} events delivered, {failed} failed, {pages} page(s)", file=sys.stderr)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
