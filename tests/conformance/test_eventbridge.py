"""EventBridge against moto, IAM authentication on (botocore checks every signature): a user
allowed ce:GetCostAndUsage and events:PutEvents, moto's Cost Explorer serving recorded
pages, and a rule on the default bus sending source cloud.aws.billing to an SQS queue. Each
message's detail is read back with the CloudEvents SDK.

moto takes every PutEvents entry it can parse: it never throttles, fails one entry of
many, or bounds a request's size. Those answers are in tests/it/eventbridge.rs, against a
fake EventBridge on loopback.
"""

import json

import boto3
import pytest
from cloudevents.core.formats.json import JSONFormat
from conftest import ACCOUNT, Keys
from receiver import wire_attributes
from test_conformance import (
    DAY,
    NEXT_DAY,
    PAGE_1,
    PAGE_2,
    assert_no_secret,
    check_event,
    expected_lines,
    lines_naming,
    request_body,
    two_pages,
)

ALL_LINES = expected_lines(DAY, PAGE_1 + PAGE_2)
# What the README's EventBridge section asks for (check needs DescribeEventBus).
PUBLISH = ["ce:GetCostAndUsage", "events:PutEvents"]
OPERATE = PUBLISH + ["events:DescribeEventBus"]
ONE_ACCOUNT = "111122223333"


class Bus:
    """The default bus with two rules, each sending to its own queue: every billing line,
    and (the README's pattern) one linked account's lines."""

    def __init__(self, aws) -> None:
        self.aws = aws
        aws._post("/moto-api/reset-auth", data=b"inf")
        setup = dict(
            endpoint_url=aws.endpoint, region_name="us-east-1", aws_access_key_id="s", aws_secret_access_key="s"
        )
        iam = boto3.client("iam", **setup)
        self.keys = {}
        for user, actions in (("publisher", PUBLISH), ("operator", OPERATE), ("reader", ["sqs:*"])):
            iam.create_user(UserName=user)
            policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
            iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(policy))
            key = iam.create_access_key(UserName=user)["AccessKey"]
            self.keys[user] = Keys(key["AccessKeyId"], key["SecretAccessKey"])
        sqs = boto3.client("sqs", **setup)
        events = boto3.client("events", **setup)
        events.create_event_bus(Name="billing")
        self.queues = {}
        patterns = {
            "all-lines": {"source": ["cloud.aws.billing"]},
            # The README's pattern, word for word but the account.
            "one-account": {
                "source": ["cloud.aws.billing"],
                "detail-type": ["aws.service.daily"],
                "detail": {"linkedaccount": [ONE_ACCOUNT]},
            },
        }
        for name, pattern in patterns.items():
            url = sqs.create_queue(QueueName=name)["QueueUrl"]
            self.queues[name] = url
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            events.put_rule(Name=name, EventPattern=json.dumps(pattern))
            events.put_targets(Rule=name, Targets=[{"Id": "queue", "Arn": arn}])
        aws._post("/moto-api/reset-auth", data=b"0")

    def messages(self, queue: str = "all-lines") -> list[dict]:
        """Every message in `queue` (read once, by a user allowed to), parsed."""
        reader = self.keys["reader"]
        sqs = boto3.client(
            "sqs",
            endpoint_url=self.aws.endpoint,
            region_name="us-east-1",
            aws_access_key_id=reader.access_key_id,
            aws_secret_access_key=reader.secret_access_key,
        )
        out = []
        while True:
            got = sqs.receive_message(QueueUrl=self.queues[queue], MaxNumberOfMessages=10, WaitTimeSeconds=0)
            if not got.get("Messages"):
                return out
            out += [json.loads(m["Body"]) for m in got["Messages"]]


@pytest.fixture
def bus(aws) -> Bus:
    return Bus(aws)


def detail_events(messages: list[dict]) -> list:
    """Each message's detail as the CloudEvents SDK reads it (structured mode), checked."""
    out = []
    for message in messages:
        assert message["source"] == "cloud.aws.billing", message
        assert message["detail-type"] == "aws.service.daily", message
        assert message["region"] == "us-east-1", message  # moto's template has no account
        raw = json.dumps(message["detail"]).encode()
        event = JSONFormat().read(None, raw)
        line = check_event(event.get_attributes(), event.get_data(), wire_attributes("structured", {}, raw))
        # Time: the event's, to the second.
        assert message["time"] == message["detail"]["time"][:19] + "Z", message
        out.append((line, event.get_id()))
    return out


def test_every_line_reaches_the_queue_once_with_the_event_as_detail(aws, bus, run_binary):
    aws.seed(*two_pages())
    # One endpoint variable for Cost Explorer and EventBridge, as the SDKs read it.
    env = {"AWS_ENDPOINT_URL": aws.endpoint}
    cfg = {"target": "eventbridge:default"}
    run = run_binary(["once", "--date", DAY], cfg, bus.keys["publisher"].secret_file(), env=env)
    assert run.returncode == 0, run.explain()
    got = detail_events(bus.messages())
    # Amounts compared as the exact strings Cost Explorer sent.
    assert sorted(line for line, _ in got) == sorted(ALL_LINES)
    assert len({event_id for _, event_id in got}) == len(ALL_LINES)
    assert aws.request_bodies() == [
        request_body(DAY, NEXT_DAY),
        request_body(DAY, NEXT_DAY, next_page_token="conformance-page-2"),
    ]
    assert bus.messages("one-account") == [], "no line has a linked account"
    assert_no_secret(run, bus.keys["publisher"])


def spooled_ids(state_dir) -> list[str]:
    """The ids of the spooled events (each batch's first line is its header, no event)."""
    batches = sorted((state_dir / "spool").glob("*.jsonl"))
    lines = [line for f in batches for line in f.read_text().splitlines()[1:]]
    return [json.loads(line)["id"] for line in lines]


def test_a_refused_put_keeps_the_events_until_a_right_secret_sends_them_once(aws, bus, run_binary, tmp_path):
    aws.seed(*two_pages())
    state_dir = tmp_path / "shared-state"
    cfg = {"target": "eventbridge:default", "endpoint": aws.endpoint, "state_dir": str(state_dir)}
    env = {"AWS_ENDPOINT_URL_EVENTBRIDGE": aws.endpoint}
    # Allowed to read the bill, not to put events: moto refuses, the day waits in the spool.
    denied = run_binary(["once", "--date", DAY], cfg, aws.billing.secret_file(), env=env)
    assert denied.returncode == 1, denied.explain()
    assert len(lines_naming(denied.stderr, "EventBridge refused the request (HTTP 403): AccessDenied")) == 1, (
        denied.explain()
    )
    ids = spooled_ids(state_dir)
    assert len(ids) == len(ALL_LINES)
    # A wrong secret: the signature check refuses it.
    wrong = bus.keys["publisher"].secret_file()
    wrong["secret_access_key"] = "wrong/" + wrong["secret_access_key"][6:]
    refused = run_binary(["once", "--date", DAY], cfg, wrong, env=env)
    assert refused.returncode == 1, refused.explain()
    assert len(lines_naming(refused.stderr, "SignatureDoesNotMatch")) == 1, refused.explain()
    assert wrong["secret_access_key"] not in refused.stdout + refused.stderr
    assert bus.messages() == []
    assert not (state_dir / "dead-letter.jsonl").exists()
    # The right one delivers the spooled day, with the ids of the first try, without a new pull.
    sent = run_binary(["once", "--date", DAY], cfg, bus.keys["publisher"].secret_file(), env=env)
    assert sent.returncode == 0, sent.explain()
    got = detail_events(bus.messages())
    assert sorted(line for line, _ in got) == sorted(ALL_LINES)
    assert sorted(event_id for _, event_id in got) == sorted(ids)
    assert len(aws.request_bodies()) == 2, "the two pages, once"
    assert_no_secret(denied, aws.billing)
    assert_no_secret(sent, bus.keys["publisher"])


def test_check_describes_the_bus_and_needs_describe_permission(aws, bus, run_binary):
    env = {"AWS_ENDPOINT_URL": aws.endpoint}
    arn = f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/billing"
    good = run_binary(["check"], {"target": f"eventbridge:{arn}"}, bus.keys["operator"].secret_file(), env=env)
    assert good.returncode == 0, good.explain()
    assert len(lines_naming(good.stderr, f"(DescribeEventBus: {arn})")) == 1, good.explain()
    missing = run_binary(["check"], {"target": "eventbridge:nosuch"}, bus.keys["operator"].secret_file(), env=env)
    assert missing.returncode == 1, missing.explain()
    assert len(lines_naming(missing.stderr, "check failed: EventBridge refused the request (HTTP 400): ResourceNotFoundException")) == 1, (
        missing.explain()
    )
    publisher = run_binary(["check"], {"target": "eventbridge:default"}, bus.keys["publisher"].secret_file(), env=env)
    assert publisher.returncode == 1, publisher.explain()
    assert len(lines_naming(publisher.stderr, "is not authorized to perform: events:DescribeEventBus")) == 1, (
        publisher.explain()
    )
    assert bus.messages() == [], "check puts no event"


def test_the_readme_rule_passes_on_one_accounts_lines_only(aws, bus, run_binary):
    group_by = [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}]
    groups = [
        (["AWS Lambda", ONE_ACCOUNT], "0.0000000001"),
        (["Amazon S3", ONE_ACCOUNT], "1.5"),
        (["AWS Lambda", "444455556666"], "2"),
    ]
    answer = {
        "GroupDefinitions": group_by,
        "ResultsByTime": [
            {
                "TimePeriod": {"Start": DAY, "End": NEXT_DAY},
                "Total": {},
                "Groups": [{"Keys": k, "Metrics": {"BlendedCost": {"Amount": a, "Unit": "USD"}}} for k, a in groups],
                "Estimated": True,
            }
        ],
        "DimensionValueAttributes": [],
    }
    aws.seed(answer)
    cfg = {"target": "eventbridge:default", "group_by": ["SERVICE", "LINKED_ACCOUNT"]}
    env = {"AWS_ENDPOINT_URL": aws.endpoint}
    run = run_binary(["once", "--date", DAY], cfg, bus.keys["publisher"].secret_file(), env=env)
    assert run.returncode == 0, run.explain()
    assert len(bus.messages()) == 3
    one = bus.messages("one-account")
    assert sorted((m["detail"]["data"]["service"], m["detail"]["data"]["amount"]) for m in one) == [
        ("AWS Lambda", "0.0000000001"),
        ("Amazon S3", "1.5"),
    ]
    assert all(m["detail"]["linkedaccount"] == ONE_ACCOUNT for m in one)
