"""The credential chain against moto (IAM authentication on): roles assumed through moto's
STS, whose trust policies name the caller's exact ARN, and credentials that moto issued
handed out by small local fakes of the container endpoint, IMDSv2 and a web-identity STS
front. Each pulls a day that moto then serves only to the identity it expects."""

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs

import boto3
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from conftest import ACCOUNT, CE_POLICY, Keys
from test_conformance import (
    DAY,
    PAGE_1,
    PAGE_2,
    assert_no_secret,
    check_delivered,
    config,
    expected_lines,
    lines_naming,
    two_pages,
)

ROLE = f"arn:aws:iam::{ACCOUNT}:role/cost-reader"
ALL_LINES = expected_lines(DAY, PAGE_1 + PAGE_2)


@dataclass
class Roles:
    assumer: Keys  # may only call sts:AssumeRole on cost-reader
    front: Keys  # the web-identity front's own keys (sts:AssumeRoleWithWebIdentity)


@pytest.fixture
def roles(aws) -> Roles:
    aws._post("/moto-api/reset-auth", data=b"inf")
    setup = dict(endpoint_url=aws.endpoint, region_name="us-east-1", aws_access_key_id="s", aws_secret_access_key="s")
    iam = boto3.client("iam", **setup)
    made = {}
    for user, action in (("assumer", "sts:AssumeRole"), ("front", "sts:AssumeRoleWithWebIdentity")):
        iam.create_user(UserName=user)
        # moto checks STS actions against Resource "*" (no per-role resource).
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]}
        iam.put_user_policy(UserName=user, PolicyName="sts", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        made[user] = Keys(key["AccessKeyId"], key["SecretAccessKey"])
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/assumer"}, "Action": "sts:AssumeRole"},
            {"Effect": "Allow", "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.example"},
             "Action": "sts:AssumeRoleWithWebIdentity"},
        ],
    }
    iam.create_role(RoleName="cost-reader", AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(RoleName="cost-reader", PolicyName="ce-read", PolicyDocument=CE_POLICY)
    aws._post("/moto-api/reset-auth", data=b"0")
    return Roles(made["assumer"], made["front"])


def assumed_roles() -> list[Any]:
    """Sessions of cost-reader that moto issued (the fixture's own billing-reader ones left out)."""
    from moto.sts.models import sts_backends  # moto runs in this process

    return [r for r in sts_backends[ACCOUNT]["aws"].assumed_roles if r.role_arn == ROLE]


# --- small fakes: one handler function, every request recorded


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Fake:
    handle: Callable[[Seen], tuple[int, dict[str, str], bytes]]
    seen: list[Seen] = field(default_factory=list)

    def __enter__(self) -> "Fake":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                req = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
                fake.seen.append(req)
                status, headers, body = fake.handle(req)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_POST = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def credentials_json(keys: Keys, expiration: str = "2099-01-01T00:00:00Z", **more: str) -> bytes:
    return json.dumps(
        {
            "AccessKeyId": keys.access_key_id,
            "SecretAccessKey": keys.secret_access_key,
            "Token": keys.session_token,
            "Expiration": expiration,
            **more,
        }
    ).encode()


def sts_error(code: str, message: str) -> bytes:
    return (
        f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
        f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>x</RequestId></ErrorResponse>"
    ).encode()


def one_error_line(run, *words):
    named = [line for line in run.stderr.splitlines() if all(w in line for w in words)]
    assert len(named) == 1, f"want one line naming {words}\n{run.explain()}"
    return named[0]


# --- profile files: role_arn + source_profile, keys that may only assume the role


def test_profile_role_with_source_profile_keys_that_may_only_assume_it(aws, roles, receiver, run_binary, tmp_path):
    aws.seed(*two_pages())
    (tmp_path / "aws-credentials").write_text(
        "# the base keys\n[base]\n"
        f"aws_access_key_id = {roles.assumer.access_key_id}\naws_secret_access_key = {roles.assumer.secret_access_key}\n"
    )
    (tmp_path / "aws-config").write_text(
        f"[default]\nregion = us-east-1\n\n[profile billing]\nrole_arn = {ROLE}\nsource_profile = base\n"
    )
    env = {
        "AWS_PROFILE": "billing",
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
        "AWS_ENDPOINT_URL_STS": aws.endpoint,
    }
    run = run_binary(["once", "--date", DAY], config(aws, receiver), env=env)
    assert run.returncode == 0, run.explain()
    check_delivered(receiver, "binary", ALL_LINES)
    [session] = assumed_roles()
    assert (session.role_arn, session.session_name) == (ROLE, "source-aws-billing")
    assert_no_secret(run, roles.assumer)

    # The same base keys straight at Cost Explorer: moto refuses them, so the role did the work.
    direct = run_binary(["once", "--date", DAY, "--target", "-"], config(aws, receiver), roles.assumer.secret_file())
    assert direct.returncode == 1 and lines_naming(direct.stderr, "AccessDenied"), direct.explain()


# --- config role_arn + external_id on top of secret.yml keys; check names the role


def test_config_role_arn_with_external_id_on_secret_keys(aws, roles, receiver, run_binary):
    aws.seed(*two_pages())
    cfg = config(aws, receiver, role_arn=ROLE, external_id="payer-ext-1", role_session_name="edge-7")
    env = {"AWS_ENDPOINT_URL_STS": aws.endpoint}
    run = run_binary(["once", "--date", DAY], cfg, roles.assumer.secret_file(), env=env)
    assert run.returncode == 0, run.explain()
    check_delivered(receiver, "binary", ALL_LINES)
    [session] = assumed_roles()
    assert (session.external_id, session.session_name) == ("payer-ext-1", "edge-7")

    check = run_binary(["check"], cfg, roles.assumer.secret_file(), env=env)
    assert check.returncode == 0, check.explain()
    line = one_error_line(check, "check passed")
    assert "credentials: secret file, then role_arn: role arn:aws:sts::123456789012:assumed-role/cost-reader/edge-7" in line
    assert_no_secret(check, roles.assumer)


def test_sts_access_denied_is_one_line_exit_2(aws, roles, receiver, run_binary):
    aws.seed(*two_pages())
    cfg = config(aws, receiver, role_arn=ROLE)
    run = run_binary(["once", "--date", DAY], cfg, aws.no_permission.secret_file(), env={"AWS_ENDPOINT_URL_STS": aws.endpoint})
    assert run.returncode == 2, run.explain()
    line = one_error_line(run, "role_arn", "AccessDenied")
    assert "STS refused AssumeRole (HTTP 403)" in line and "<Error" not in line
    assert receiver.snapshot() == ([], [])
    assert_no_secret(run, aws.no_permission)


def test_no_credentials_names_every_source_in_order(aws, receiver, run_binary):
    run = run_binary(["once", "--date", DAY], config(aws, receiver))
    assert run.returncode == 2, run.explain()
    line = one_error_line(run, "no AWS credentials")
    order = ["access_key_id", "web identity", "profile default", "container credentials", "EC2 instance metadata"]
    positions = [line.find(word) for word in order]
    assert -1 not in positions and positions == sorted(positions), line


# --- web identity (IRSA): STS's AssumeRoleWithWebIdentity through a front that checks the token


TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YmlsbGluZzpzYWIifQ.sig"


@pytest.fixture
def web_front(aws, roles):
    """What STS does for web identity: check the token with the identity provider (here: equal
    to TOKEN), then issue the role's credentials. moto cannot take the unsigned call with
    authentication on, so the front signs the very same body with its own keys for moto."""

    def handle(req: Seen):
        form = parse_qs(req.body.decode())
        if form.get("Action") != ["AssumeRoleWithWebIdentity"]:
            return 400, {}, sts_error("InvalidAction", "front takes web identity only")
        if "authorization" in req.headers:
            return 400, {}, sts_error("InvalidParameterValue", "AssumeRoleWithWebIdentity is unsigned")
        if form.get("WebIdentityToken") != [TOKEN]:
            return 400, {}, sts_error("InvalidIdentityToken", "Incorrect token audience")
        signed = AWSRequest(method="POST", url=aws.endpoint + "/", data=req.body, headers={"content-type": req.headers["content-type"]})
        SigV4Auth(Credentials(roles.front.access_key_id, roles.front.secret_access_key), "sts", "us-east-1").add_auth(signed)
        resp = requests.post(aws.endpoint + "/", data=req.body, headers=dict(signed.headers), timeout=10)
        return resp.status_code, {"content-type": "text/xml"}, resp.content

    with Fake(handle) as fake:
        yield fake


def test_web_identity(aws, web_front, receiver, run_binary, tmp_path):
    aws.seed(*two_pages())
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    env = {"AWS_ROLE_ARN": ROLE, "AWS_WEB_IDENTITY_TOKEN_FILE": str(token), "AWS_ENDPOINT_URL_STS": web_front.url}
    run = run_binary(["once", "--date", DAY], config(aws, receiver), env=env)
    assert run.returncode == 0, run.explain()
    check_delivered(receiver, "binary", ALL_LINES)
    # Fetched once: the first look at start, then the cache until 5 minutes before expiry.
    assert len(web_front.seen) == 1
    [session] = assumed_roles()
    assert session.role_arn == ROLE
    assert TOKEN not in run.stderr + run.stdout


def test_web_identity_refusals(aws, web_front, receiver, run_binary, tmp_path):
    token = tmp_path / "token"
    env = {"AWS_ROLE_ARN": ROLE, "AWS_WEB_IDENTITY_TOKEN_FILE": str(token), "AWS_ENDPOINT_URL_STS": web_front.url}
    missing = run_binary(["once", "--date", DAY], config(aws, receiver), env=env)
    assert missing.returncode == 2, missing.explain()
    one_error_line(missing, "web identity: token file", "cannot read")

    # exp 1600000000 = 2020-09-13: expired, refused before it is sent.
    token.write_text("eyJhbGciOiJub25lIn0.eyJleHAiOjE2MDAwMDAwMDB9.sig")
    expired = run_binary(["once", "--date", DAY], config(aws, receiver), env=env)
    assert expired.returncode == 2, expired.explain()
    one_error_line(expired, "web identity", "expired at 2020-09-13T12:26:40Z")
    assert web_front.seen == []

    token.write_text("eyJhbGciOiJub25lIn0.eyJzdWIiOiJzb21lb25lLWVsc2UifQ.sig")
    refused = run_binary(["once", "--date", DAY], config(aws, receiver), env=env)
    assert refused.returncode == 2, refused.explain()
    line = one_error_line(refused, "web identity", "STS refused AssumeRoleWithWebIdentity (HTTP 400): InvalidIdentityToken")
    assert "someone" not in line and "eyJ" not in refused.stderr
    assert receiver.snapshot() == ([], [])


# --- container credentials (ECS task role / EKS Pod Identity)


def container_fake(keys: Keys, token: str, expiration: str = "2099-01-01T00:00:00Z") -> Fake:
    def handle(req: Seen):
        if req.method != "GET" or req.headers.get("authorization") != token:
            return 401, {"content-type": "application/json"}, b'{"code":"AccessDeniedException","message":"bad token"}'
        return 200, {"content-type": "application/json"}, credentials_json(keys, expiration, RoleArn=f"arn:aws:iam::{ACCOUNT}:role/billing-reader")

    return Fake(handle)


def test_container_credentials_with_a_token_file(aws, receiver, run_binary, tmp_path):
    aws.seed(*two_pages())
    (tmp_path / "eks-token").write_text("pod-identity-token\n")
    with container_fake(aws.temporary, "pod-identity-token") as fake:
        env = {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": fake.url + "/v1/credentials",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(tmp_path / "eks-token"),
        }
        run = run_binary(["once", "--date", DAY], config(aws, receiver), env=env)
        assert run.returncode == 0, run.explain()
        check_delivered(receiver, "binary", ALL_LINES)
        check = run_binary(["check"], config(aws, receiver), env=env)
        assert check.returncode == 0, check.explain()
        one_error_line(check, "credentials: container credentials, role arn:aws:iam::123456789012:role/billing-reader")
    assert_no_secret(run, aws.temporary)
    assert_no_secret(check, aws.temporary)


def test_container_credentials_near_expiry_are_fetched_again(aws, receiver, run_binary):
    aws.seed(*two_pages())
    from datetime import datetime, timedelta, timezone

    soon = (datetime.now(timezone.utc) + timedelta(minutes=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with container_fake(aws.temporary, "t", expiration=soon) as fake:
        env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": fake.url + "/c", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "t"}
        run = run_binary(["once", "--date", DAY], config(aws, receiver), env=env)
        assert run.returncode == 0, run.explain()
    # Within 5 minutes of expiry: not reused; fetched at start and again for each of the two pages.
    assert len(fake.seen) == 3, fake.seen
    check_delivered(receiver, "binary", ALL_LINES)


def test_container_endpoint_refusing_the_token(aws, receiver, run_binary):
    with container_fake(aws.temporary, "right-token") as fake:
        env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": fake.url + "/c", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "wrong-token"}
        run = run_binary(["once", "--date", DAY], config(aws, receiver), env=env)
    assert run.returncode == 2, run.explain()
    one_error_line(run, "container credentials", "HTTP 401", "AccessDeniedException")
    assert "wrong-token" not in run.stderr + run.stdout
    assert receiver.snapshot() == ([], [])


# --- EC2 instance role over IMDSv2 only


def imds_fake(keys: Keys, allow_token: bool = True) -> Fake:
    def handle(req: Seen):
        if req.method == "PUT" and req.path == "/latest/api/token":
            if not allow_token or "x-aws-ec2-metadata-token-ttl-seconds" not in req.headers:
                return 403, {}, b""
            return 200, {}, b"imds-session-token"
        if req.headers.get("x-aws-ec2-metadata-token") != "imds-session-token":
            return 401, {}, b""  # the v1 path is refused
        if req.path == "/latest/meta-data/iam/security-credentials/":
            return 200, {}, b"billing-node"
        if req.path == "/latest/meta-data/iam/security-credentials/billing-node":
            return 200, {}, credentials_json(keys, Code="Success", Type="AWS-HMAC")
        return 404, {}, b""

    return Fake(handle)


def test_imds_v2(aws, receiver, run_binary):
    aws.seed(*two_pages())
    with imds_fake(aws.temporary) as fake:
        env = {"AWS_EC2_METADATA_DISABLED": "false", "AWS_EC2_METADATA_SERVICE_ENDPOINT": fake.url}
        run = run_binary(["once", "--date", DAY], config(aws, receiver), env=env)
    assert run.returncode == 0, run.explain()
    check_delivered(receiver, "binary", ALL_LINES)
    gets = [s for s in fake.seen if s.method == "GET"]
    assert gets and all(s.headers.get("x-aws-ec2-metadata-token") == "imds-session-token" for s in gets)
    assert_no_secret(run, aws.temporary)


def test_imds_refusing_the_token_is_not_followed_by_v1(aws, receiver, run_binary):
    with imds_fake(aws.temporary, allow_token=False) as fake:
        env = {"AWS_EC2_METADATA_DISABLED": "false", "AWS_EC2_METADATA_SERVICE_ENDPOINT": fake.url}
        run = run_binary(["once", "--date", DAY], config(aws, receiver), env=env)
    assert run.returncode == 2, run.explain()
    one_error_line(run, "EC2 instance metadata", "refused the IMDSv2 session token request (HTTP 403)")
    assert [s.method for s in fake.seen] == ["PUT"], fake.seen
