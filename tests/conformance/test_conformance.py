"""The built binary against moto (botocore checks every signature) and the CloudEvents SDK.

Cost Explorer is moto's, with IAM authentication on: a request signed wrongly, with an
unknown key or by a user without ce:GetCostAndUsage is refused by moto, not by us. Every
event is parsed by the official CloudEvents SDK for Python (cloudevents.core), in the
mode the binary chose to send it.
"""

import hashlib
import json
import re
import uuid

import jsonschema
import requests
from cloudevents.core.formats.json import JSONFormat
from receiver import wire_attributes

DAY = "2022-06-13"
NEXT_DAY = "2022-06-14"
GROUP_BY = [{"Type": "DIMENSION", "Key": "SERVICE"}]
DATA_KEYS = {"vanceSource", "vanceType", "date", "service", "amount", "unit"}
ATTRIBUTES = {
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
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")


def result(start, end, groups, metric="BlendedCost", next_page_token=None):
    """One GetCostAndUsage answer: groups are (service, amount, unit) for one day."""
    out = {
        "GroupDefinitions": GROUP_BY,
        "ResultsByTime": [
            {
                "TimePeriod": {"Start": start, "End": end},
                "Total": {},
                "Groups": [
                    {"Keys": [service], "Metrics": {metric: {"Amount": amount, "Unit": unit}}}
                    for service, amount, unit in groups
                ],
                "Estimated": True,
            }
        ],
        "DimensionValueAttributes": [],
    }
    if next_page_token is not None:
        out["NextPageToken"] = next_page_token
    return out


PAGE_1 = [
    ("Amazon Elastic Compute Cloud - Compute", "12.294", "USD"),
    ("Amazon Simple Storage Service", "0.0000001234", "USD"),
    ("AWS Cost Explorer", "0.01", "USD"),
]
PAGE_2 = [
    ("Tax", "-12.5", "USD"),
    ("Amazon Relational Database Service", "1234567.8912345678901", "USD"),
    ('Marketplace: "Acme" Analytics \u2013 \u00dcn\u00efcode', "0.50", "USD"),
]
# Queued after the last page: delivered only by a binary that asks for a page too many.
DECOY = result(DAY, NEXT_DAY, [("DECOY: a request no one should have made", "999", "USD")])


def two_pages(metric="BlendedCost"):
    return (
        result(DAY, NEXT_DAY, PAGE_1, metric, next_page_token="conformance-page-2"),
        result(DAY, NEXT_DAY, PAGE_2, metric),
        DECOY,
    )


def request_body(start, end, metric="BlendedCost", next_page_token=None):
    body = {
        "TimePeriod": {"Start": start, "End": end},
        "Granularity": "DAILY",
        "Metrics": [metric],
        "GroupBy": GROUP_BY,
    }
    if next_page_token is not None:
        body["NextPageToken"] = next_page_token
    return body


def expected_lines(day, groups):
    return [(day, service, amount, unit) for service, amount, unit in groups]


# --- what a consumer can check without our state: the README's recipe for ids, and `schema`

ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "cloud.aws.billing")


def content_id(source, event_type, revision, data):
    """The id of an event, recomputed from its content as the README says."""
    name = json.dumps(
        {"data": data, "revision": revision, "source": source, "type": event_type},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    digest = bytearray(hashlib.sha256(ID_NAMESPACE.bytes + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x80
    digest[8] = (digest[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(digest)))


def key_segment(value):
    return value.replace("%", "%25").replace("/", "%2F")


def check_trust(run_binary, config, events):
    """Each event's id recomputed from its content, and its data valid against the output
    of `schema` for the same config: as a whole and as its own type."""
    run = run_binary(["schema"], config)
    assert run.returncode == 0, run.explain()
    doc = json.loads(run.stdout)
    jsonschema.Draft202012Validator.check_schema(doc)
    assert events
    for got in events:
        attributes, data = got.attributes, got.data
        assert uuid.UUID(attributes["id"]).version == 8, attributes["id"]
        revision = int(attributes.get("revision", 0))
        assert attributes["id"] == content_id(attributes["source"], attributes["type"], revision, data)
        jsonschema.validate(data, doc, cls=jsonschema.Draft202012Validator)
        own = {**doc, "oneOf": [{"$ref": f"#/$defs/{attributes['type']}"}]}
        jsonschema.validate(data, own, cls=jsonschema.Draft202012Validator)
    return doc


def check_event(attributes, data, wire):
    """One event, as the SDK parsed it and as it was on the wire, against the spec."""
    assert set(wire) == ATTRIBUTES, f"attributes sent: {wire}"
    assert wire["specversion"] == "1.0"
    assert wire["estimated"] in ("true", True), wire  # every answer here says Estimated: true
    assert attributes["source"] == "cloud.aws.billing"
    assert attributes["type"] == "aws.service.daily"
    assert attributes["datacontenttype"] == "application/json"
    assert attributes["id"] == wire["id"]
    assert uuid.UUID(wire["id"]).version == 8, wire["id"]
    assert wire["id"] == content_id(attributes["source"], attributes["type"], 0, data)
    assert RFC3339_UTC.match(wire["time"]), wire["time"]
    time = attributes["time"]
    assert time.tzinfo is not None and time.utcoffset().total_seconds() == 0, time
    assert isinstance(data, dict), f"data is not a JSON object: {data!r}"
    assert set(data) == DATA_KEYS, data
    assert data["vanceSource"] == "cloud.aws.billing"
    assert data["vanceType"] == "aws.service.daily"
    for key in ("date", "service", "amount", "unit"):
        assert isinstance(data[key], str), f"{key} is not a string: {data!r}"
    assert attributes["subject"] == f"{data['date']}/{key_segment(data['service'])}"
    assert attributes["partitionkey"] == key_segment(data["service"])
    return (data["date"], data["service"], data["amount"], data["unit"])


def check_delivered(receiver, mode, expected):
    events, refused = receiver.snapshot()
    assert refused == [], f"the CloudEvents SDK refused: {refused}"
    lines = []
    for got in events:
        assert got.mode == mode, (got.mode, got.headers)
        content_type = got.headers.get("content-type", "").split(";")[0].strip()
        if mode == "binary":
            assert content_type == "application/json", got.headers
        else:
            assert content_type == "application/cloudevents+json", got.headers
        lines.append(check_event(got.attributes, got.data, got.wire))
    ids = [got.attributes["id"] for got in events]
    assert len(set(ids)) == len(ids), f"ids repeat: {ids}"
    assert sorted(lines) == sorted(expected)


def assert_no_secret(run, *keys):
    for key in keys:
        for secret in (key.secret_access_key, key.session_token):
            if secret:
                assert secret not in run.stdout and secret not in run.stderr, "a secret leaked"


def lines_naming(text, word):
    return [line for line in text.splitlines() if word in line]


def config(aws, receiver, **more):
    return {"target": receiver.url, "endpoint": aws.endpoint, **more}


# --- the harness itself: without these, a green run could mean nothing was checked


def test_receiver_refuses_what_the_sdk_refuses(receiver):
    base = {
        "ce-specversion": "1.0",
        "ce-id": "1",
        "ce-source": "s",
        "ce-type": "t",
        "content-type": "application/json",
    }
    assert requests.post(receiver.url, data=b"{}", headers=base, timeout=5).status_code == 204
    no_source = {k: v for k, v in base.items() if k != "ce-source"}
    assert requests.post(receiver.url, data=b"{}", headers=no_source, timeout=5).status_code == 400
    # The SDK makes up a missing id; the wire record must still show it was missing.
    no_id = {k: v for k, v in base.items() if k != "ce-id"}
    assert requests.post(receiver.url, data=b"{}", headers=no_id, timeout=5).status_code == 204
    events, refused = receiver.snapshot()
    assert [sorted(e.wire) for e in events] == [
        ["datacontenttype", "id", "source", "specversion", "type"],
        ["datacontenttype", "source", "specversion", "type"],
    ]
    assert len(refused) == 1
    bad_json = {"content-type": "application/cloudevents+json"}
    assert requests.post(receiver.url, data=b"{", headers=bad_json, timeout=5).status_code == 400
    assert len(receiver.snapshot()[1]) == 2


# --- (a) (b) once, both content modes, paging, exact amounts


def test_once_binary_mode_delivers_every_group_of_every_page(aws, receiver, run_binary):
    aws.seed(*two_pages())
    run = run_binary(["once", "--date", DAY], config(aws, receiver), aws.billing.secret_file())
    assert run.returncode == 0, run.explain()
    check_delivered(receiver, "binary", expected_lines(DAY, PAGE_1 + PAGE_2))
    check_trust(run_binary, config(aws, receiver), receiver.snapshot()[0])
    assert aws.request_bodies() == [
        request_body(DAY, NEXT_DAY),
        request_body(DAY, NEXT_DAY, next_page_token="conformance-page-2"),
    ]
    assert_no_secret(run, aws.billing)


def test_once_structured_mode(aws, receiver, run_binary):
    aws.seed(*two_pages())
    cfg = config(aws, receiver, content_mode="structured")
    run = run_binary(["once", "--date", DAY], cfg, aws.billing.secret_file())
    assert run.returncode == 0, run.explain()
    check_delivered(receiver, "structured", expected_lines(DAY, PAGE_1 + PAGE_2))
    check_trust(run_binary, cfg, receiver.snapshot()[0])


def test_once_range_is_one_request_and_dates_come_from_each_result(aws, receiver, run_binary):
    groups = {
        "2022-06-13": [("AWS Lambda", "0.0000000001", "USD"), ("Amazon DynamoDB", "3", "USD")],
        "2022-06-14": [("AWS Lambda", "0", "USD")],
        "2022-06-15": [("Amazon DynamoDB", "-0.75", "USD")],
    }
    answer = result("2022-06-13", "2022-06-14", groups["2022-06-13"], metric="UnblendedCost")
    for start, end in (("2022-06-14", "2022-06-15"), ("2022-06-15", "2022-06-16")):
        day = result(start, end, groups[start], metric="UnblendedCost")
        answer["ResultsByTime"] += day["ResultsByTime"]
    aws.seed(answer, DECOY)
    cfg = config(aws, receiver, metric="UnblendedCost")
    run = run_binary(["once", "--from", "2022-06-13", "--to", "2022-06-15"], cfg, aws.billing.secret_file())
    assert run.returncode == 0, run.explain()
    expected = [line for day in groups for line in expected_lines(day, groups[day])]
    check_delivered(receiver, "binary", expected)
    assert aws.request_bodies() == [request_body("2022-06-13", "2022-06-16", metric="UnblendedCost")]


def test_credentials_and_endpoint_from_the_environment(aws, receiver, run_binary):
    aws.seed(*two_pages())
    env = {
        "AWS_ACCESS_KEY_ID": aws.billing.access_key_id,
        "AWS_SECRET_ACCESS_KEY": aws.billing.secret_access_key,
        "AWS_ENDPOINT_URL_COST_EXPLORER": aws.endpoint,
    }
    run = run_binary(["once", "--date", DAY], {"target": receiver.url}, env=env)
    assert run.returncode == 0, run.explain()
    check_delivered(receiver, "binary", expected_lines(DAY, PAGE_1 + PAGE_2))


# --- (c) temporary credentials: moto checks the token of an assumed role


def test_session_token_is_signed_and_sent(aws, receiver, run_binary):
    aws.seed(*two_pages())
    run = run_binary(
        ["once", "--date", DAY],
        config(aws, receiver),
        aws.temporary.secret_file(),
        env={"LOG_LEVEL": "debug"},
    )
    assert run.returncode == 0, run.explain()
    check_delivered(receiver, "binary", expected_lines(DAY, PAGE_1 + PAGE_2))
    assert_no_secret(run, aws.temporary)


def test_temporary_key_without_its_token_is_refused(aws, receiver, run_binary):
    aws.seed(*two_pages())
    keys = aws.temporary.secret_file()
    del keys["session_token"]
    run = run_binary(["once", "--date", DAY], config(aws, receiver), keys)
    assert run.returncode == 1, run.explain()
    assert lines_naming(run.stderr, "InvalidClientTokenId"), run.explain()
    assert receiver.snapshot() == ([], [])


# --- (d) refusals: one readable line naming moto's error, exit 1, nothing delivered


def check_refusal(run, receiver, code, *keys):
    assert run.returncode == 1, run.explain()
    named = lines_naming(run.stderr, code)
    assert len(named) == 1, f"want one line naming {code}\n{run.explain()}"
    assert "<?xml" not in named[0] and "<Error" not in named[0], f"not readable: {named[0]}"
    assert receiver.snapshot() == ([], [])
    assert_no_secret(run, *keys)


def test_wrong_secret_is_refused_by_signature_check(aws, receiver, run_binary):
    aws.seed(*two_pages())
    wrong = aws.billing.secret_file()
    wrong["secret_access_key"] = "wrong/" + aws.billing.secret_access_key[6:]
    run = run_binary(["once", "--date", DAY], config(aws, receiver), wrong)
    check_refusal(run, receiver, "SignatureDoesNotMatch", aws.billing)
    assert wrong["secret_access_key"] not in run.stdout + run.stderr


def test_unknown_access_key_is_refused(aws, receiver, run_binary):
    aws.seed(*two_pages())
    unknown = {"access_key_id": "AKIAUNKNOWNUNKNOWN00", "secret_access_key": "not/a/real+secret"}
    run = run_binary(["once", "--date", DAY], config(aws, receiver), unknown)
    check_refusal(run, receiver, "InvalidClientTokenId")
    assert "not/a/real+secret" not in run.stdout + run.stderr


def test_user_without_permission_is_refused(aws, receiver, run_binary):
    aws.seed(*two_pages())
    run = run_binary(["once", "--date", DAY], config(aws, receiver), aws.no_permission.secret_file())
    check_refusal(run, receiver, "AccessDenied", aws.no_permission)


# --- (e) check


def test_check_passes_with_good_keys_and_fails_with_bad(aws, receiver, run_binary):
    good = run_binary(["check"], config(aws, receiver), aws.billing.secret_file())
    assert good.returncode == 0, good.explain()
    wrong = aws.billing.secret_file()
    wrong["secret_access_key"] += "x"
    bad = run_binary(["check"], config(aws, receiver), wrong)
    assert bad.returncode == 1, bad.explain()
    assert lines_naming(bad.stderr, "SignatureDoesNotMatch"), bad.explain()
    assert_no_secret(good, aws.billing)
    assert_no_secret(bad, aws.billing)
    assert receiver.snapshot() == ([], [])


# --- (f) --target -: structured JSON lines on stdout, no HTTP, no state


def test_target_dash_prints_sdk_parsable_structured_lines(aws, receiver, run_binary):
    aws.seed(*two_pages())
    run = run_binary(["once", "--date", DAY, "--target", "-"], config(aws, receiver), aws.billing.secret_file())
    assert run.returncode == 0, run.explain()
    lines = []
    for line in run.stdout.splitlines():
        event = JSONFormat().read(None, line.encode())
        wire = wire_attributes("structured", {}, line.encode())
        lines.append((check_event(event.get_attributes(), event.get_data(), wire), event.get_id()))
    assert sorted(line for line, _ in lines) == sorted(expected_lines(DAY, PAGE_1 + PAGE_2))
    assert len({event_id for _, event_id in lines}) == len(lines)
    assert receiver.snapshot() == ([], [])
    assert not run.state_dir.exists() or not any(run.state_dir.iterdir()), list(run.state_dir.iterdir())
