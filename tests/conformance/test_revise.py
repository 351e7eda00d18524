"""Revisions and day summaries against moto and the CloudEvents SDK.

moto hands the n-th queued answer to the n-th distinct request body, so the three runs
below (two days delivered by `once`, then `revise` asking for both days in one range
request) each get their own answer: the third is AWS's numbers after more metering. The
SDK receiver proves that the `estimated` (boolean) and `revision` (integer) extension
attributes, and the summary event, are valid CloudEvents in both modes.
"""

import datetime

import pytest
from test_conformance import GROUP_BY, check_trust

TODAY = datetime.datetime.now(datetime.timezone.utc).date()
D2, D1 = (TODAY - datetime.timedelta(days=n) for n in (2, 1))


def day(date, groups, estimated=True):
    return {
        "TimePeriod": {"Start": date.isoformat(), "End": (date + datetime.timedelta(days=1)).isoformat()},
        "Total": {},
        "Groups": [{"Keys": [s], "Metrics": {"BlendedCost": {"Amount": a, "Unit": "USD"}}} for s, a in groups],
        "Estimated": estimated,
    }


def answer(*days):
    return {"GroupDefinitions": GROUP_BY, "ResultsByTime": list(days), "DimensionValueAttributes": []}


def as_int(value):
    # Binary mode carries every attribute as a string; structured mode keeps the JSON type.
    return int(value)


def as_bool(value):
    return value if isinstance(value, bool) else {"true": True, "false": False}[value]


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_revisions_and_summaries_are_accepted_by_the_sdk(aws, receiver, run_binary, tmp_path, mode):
    aws.seed(
        answer(day(D2, [("Amazon EC2", "1.5"), ("Amazon S3", "2")])),
        answer(day(D1, [("Amazon EC2", "3")])),
        answer(
            day(D2, [("Amazon EC2", "1.75"), ("AWS Lambda", "0.0000000001")], estimated=False),
            day(D1, [("Amazon EC2", "3")]),
        ),
    )
    config = {
        "target": receiver.url,
        "endpoint": aws.endpoint,
        "content_mode": mode,
        "state_dir": str(tmp_path / "state"),
        "summary": True,
    }
    secret = aws.billing.secret_file()
    for args in (["once", "--date", D2.isoformat()], ["once", "--date", D1.isoformat()], ["revise"]):
        run = run_binary(args, config, secret)
        assert run.returncode == 0, run.explain()
    bodies = aws.request_bodies()
    assert [b["TimePeriod"] for b in bodies][-1] == {"Start": D2.isoformat(), "End": TODAY.isoformat()}

    events, refused = receiver.snapshot()
    assert refused == [], f"the CloudEvents SDK refused: {refused}"
    lines, summaries = [], []
    for event in events:
        assert event.mode == mode
        attributes, data = event.attributes, event.data
        assert set(event.wire) - {"revision"} == {
            "specversion",
            "id",
            "source",
            "type",
            "datacontenttype",
            "time",
            "estimated",
            "subject",
            "partitionkey",
        }
        revision = as_int(attributes["revision"]) if "revision" in attributes else None
        estimated = as_bool(attributes["estimated"])
        if attributes["type"] == "aws.service.daily.summary":
            assert set(data) == {"date", "lines", "totals", "estimated"}
            assert (attributes["subject"], attributes["partitionkey"]) == (data["date"], attributes["type"])
            assert data["estimated"] == estimated
            summaries.append((data["date"], data["lines"], data["totals"], revision))
        else:
            assert attributes["type"] == "aws.service.daily"
            lines.append((data["date"], data["service"], data["amount"], revision, estimated))
    d2, d1 = D2.isoformat(), D1.isoformat()
    assert sorted(lines, key=str) == sorted(
        [
            (d2, "Amazon EC2", "1.5", None, True),
            (d2, "Amazon S3", "2", None, True),
            (d1, "Amazon EC2", "3", None, True),
            (d2, "Amazon EC2", "1.75", 1, False),
            (d2, "AWS Lambda", "0.0000000001", 1, False),
            (d2, "Amazon S3", "0", 1, False),
        ],
        key=str,
    )
    assert summaries == [
        (d2, 2, {"USD": "3.5"}, None),
        (d1, 1, {"USD": "3"}, None),
        (d2, 2, {"USD": "1.7500000001"}, 1),
    ]
    check_trust(run_binary, config, events)
