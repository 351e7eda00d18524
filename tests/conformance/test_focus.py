"""`format: focus` against moto and the CloudEvents SDK: FOCUS columns, the account from STS.

The request asks for BilledCost, NetAmortizedCost (EffectiveCost), ListCost and ContractedCost;
without `billing_account_id` the BillingAccountId is the account of the credentials, from
moto's STS GetCallerIdentity signed with them (IAM authentication on). Every event
validates against `schema --format focus` and its id is recomputed from its content.
"""

import pytest
from conftest import ACCOUNT
from test_conformance import DAY, NEXT_DAY, check_trust, key_segment

GROUP_BY = [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}]
# (service, linked account, BilledCost, NetAmortizedCost, ListCost, ContractedCost)
GROUPS = [
    ("Amazon Simple Storage Service", "111122223333", "0.0000001234", "0.0000001000", "0.0000001300", "0.00000012"),
    ("AWS Lambda", "444455556666", "-12.5", "-12.25", "-13", "-12.50"),
    ('Marketplace: "Acme" 100%/yr \u2013 \u00dcn\u00efcode', "111122223333", "3", "2.9", "3.10", "3"),
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
                        "Keys": [service, account],
                        "Metrics": {
                            "BilledCost": {"Amount": billed, "Unit": "USD"},
                            "NetAmortizedCost": {"Amount": effective, "Unit": "USD"},
                            "ListCost": {"Amount": listed, "Unit": "USD"},
                            "ContractedCost": {"Amount": contracted, "Unit": "USD"},
                        },
                    }
                    for service, account, billed, effective, listed, contracted in GROUPS
                ],
                "Estimated": True,
            }
        ],
        "DimensionValueAttributes": [],
    }


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_focus_columns_carry_the_served_metrics_and_validate(aws, receiver, run_binary, mode):
    aws.seed(answer())
    config = {
        "target": receiver.url,
        "endpoint": aws.endpoint,
        "content_mode": mode,
        "format": "focus",
        "group_by": ["SERVICE", "LINKED_ACCOUNT"],
        "dataschema": "https://example.com/schemas/billing-focus.json",
    }
    env = {"AWS_ENDPOINT_URL_STS": aws.endpoint}
    run = run_binary(["once", "--date", DAY], config, aws.billing.secret_file(), env=env)
    assert run.returncode == 0, run.explain()
    assert [b["Metrics"] for b in aws.request_bodies()] == [["BilledCost", "NetAmortizedCost", "ListCost", "ContractedCost"]]
    events, refused = receiver.snapshot()
    assert refused == [], f"the CloudEvents SDK refused: {refused}"
    got = []
    for event in events:
        assert event.mode == mode
        attributes, data = event.attributes, event.data
        assert attributes["dataschema"] == config["dataschema"]
        keys = f"{key_segment(data['ServiceName'])}/{data['SubAccountId']}"
        assert attributes["subject"] == f"{DAY}/{keys}"
        assert attributes["partitionkey"] == keys
        assert data["BillingAccountId"] == ACCOUNT, data
        assert data["ChargePeriodStart"] == f"{DAY}T00:00:00Z"
        assert data["BillingPeriodStart"] == "2022-06-01T00:00:00Z"
        assert data["BillingPeriodEnd"] == "2022-07-01T00:00:00Z"
        assert data["BillingCurrency"] == "USD"
        assert data["x_Estimated"] is True and data["x_Revision"] == 0
        columns = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
        got.append((data["ServiceName"], data["SubAccountId"], *(data[c] for c in columns)))
    assert sorted(got) == sorted(GROUPS)
    doc = check_trust(run_binary, config, events)
    assert doc["$id"] == config["dataschema"]
    assert "BilledCost" in doc["$defs"]["aws.service.daily"]["properties"]
