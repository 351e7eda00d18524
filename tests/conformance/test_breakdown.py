"""Breakdowns against moto and the CloudEvents SDK: group_by, several metrics and filter.

moto's GetCostAndUsage (moto/ce/models.py) does not validate or interpret GroupBy,
Metrics or Filter: it hands the queued answer to each distinct request body and keeps the
body. So moto proves the signed request with those keys is accepted under IAM auth and
records the body verbatim; the answer's shape (two Keys, tag `key$value`, several
metrics) is what Cost Explorer documents. The SDK receiver proves the routing attributes
are valid CloudEvents extension attributes in both modes, and that a value with quotes,
non-ASCII letters, CR and LF arrives decoded, unchanged, without adding a header.
"""

import pytest
from test_conformance import DAY, NEXT_DAY, check_trust, key_segment

GROUP_BY = [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "TAG", "Key": "team"}]
METRICS = ["UnblendedCost", "UsageQuantity"]
FILTER = {"Not": {"Dimensions": {"Key": "RECORD_TYPE", "Values": ["Credit", "Refund"]}}}
# (service, team tag value as sent after "team$", UnblendedCost, UsageQuantity)
GROUPS = [
    ("Amazon Simple Storage Service", "web", "0.0000001234", "17"),
    ('Marketplace: "Acme" Analytics \u2013 \u00dcn\u00efcode', '\u00e9quipe "data" 100%', "-12.5", "0"),
    ("AWS Lambda", "ops\r\nX-Injected: 1", "3.1000000000", "2.5"),
    ("Tax", "", "0.01", "0"),
]


def answer():
    return {
        "GroupDefinitions": GROUP_BY,
        "ResultsByTime": [
            {
                "TimePeriod": {"Start": DAY, "End": NEXT_DAY},
                "Total": {},
                "Groups": [
                    {
                        "Keys": [service, f"team${team}"],
                        "Metrics": {
                            "UnblendedCost": {"Amount": cost, "Unit": "USD"},
                            "UsageQuantity": {"Amount": usage, "Unit": "N/A"},
                        },
                    }
                    for service, team, cost, usage in GROUPS
                ],
                "Estimated": True,
            }
        ],
        "DimensionValueAttributes": [],
    }


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_breakdown_routing_attributes_are_accepted_and_decoded_by_the_sdk(aws, receiver, run_binary, mode):
    aws.seed(answer())
    config = {
        "target": receiver.url,
        "endpoint": aws.endpoint,
        "content_mode": mode,
        "group_by": ["SERVICE", "TAG:team"],
        "metric": METRICS,
        "filter": FILTER,
    }
    run = run_binary(["once", "--date", DAY], config, aws.billing.secret_file())
    assert run.returncode == 0, run.explain()
    assert aws.request_bodies() == [
        {
            "TimePeriod": {"Start": DAY, "End": NEXT_DAY},
            "Granularity": "DAILY",
            "Metrics": METRICS,
            "GroupBy": GROUP_BY,
            "Filter": FILTER,
        }
    ]
    events, refused = receiver.snapshot()
    assert refused == [], f"the CloudEvents SDK refused: {refused}"
    assert len(events) == len(GROUPS), run.explain()
    got = []
    for event in events:
        assert event.mode == mode
        assert not any(name.startswith("x-injected") for name in event.headers), event.headers
        if mode == "binary":
            for name, value in event.headers.items():
                if name.startswith("ce-"):
                    assert all(0x21 <= ord(c) <= 0x7E and c != '"' for c in value), (name, value)
        attributes = event.attributes
        data = event.data
        assert attributes["service"] == data["service"]
        assert attributes["tagteam"] == data["tags"]["team"]
        keys = f"{key_segment(data['service'])}/{key_segment(data['tags']['team'])}"
        assert attributes["subject"] == f"{DAY}/{keys}"
        assert attributes["partitionkey"] == keys
        assert set(data) == {"vanceSource", "vanceType", "date", "service", "tags", "amount", "unit", "metrics"}
        assert data["amount"] == data["metrics"]["UnblendedCost"]["amount"]
        assert data["unit"] == "USD"
        got.append(
            (
                attributes["service"],
                attributes["tagteam"],
                data["metrics"]["UnblendedCost"]["amount"],
                data["metrics"]["UsageQuantity"]["amount"],
            )
        )
        assert data["metrics"]["UsageQuantity"]["unit"] == "N/A"
    assert sorted(got) == sorted(GROUPS)
    check_trust(run_binary, config, events)

