"""Fixtures: moto's server with IAM authentication on, the SDK receiver, and the binary.

moto checks every request's SigV4 signature with botocore once its count of
unauthenticated actions (settings.INITIAL_NO_AUTH_ACTION_COUNT, the env var of the same
name) is used up. Each test resets moto, creates its IAM users, role and keys while
authentication is off, then turns it on with POST /moto-api/reset-auth "0" (moto's
server-mode setter for INITIAL_NO_AUTH_ACTION_COUNT, which also zeroes the count), and
proves it is on before the test runs. Cost Explorer answers are queued through
/moto-api/static/ce/cost-and-usage-results: moto hands the next queued result to each
distinct request body and remembers it for that body, which is how paging is served.
"""

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
import requests
from moto.server import ThreadedMotoServer
from receiver import Receiver

REPO = Path(__file__).resolve().parents[2]
# Everything here talks to loopback only: never through a proxy named in the environment.
for _var in ("NO_PROXY", "no_proxy"):
    os.environ[_var] = ",".join(filter(None, [os.environ.get(_var), "127.0.0.1", "localhost"]))
ACCOUNT = "123456789012"  # moto's default account
CE_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ce:GetCostAndUsage", "Resource": "*"}],
    }
)


@dataclass
class Keys:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def secret_file(self) -> dict[str, str]:
        out = {"access_key_id": self.access_key_id, "secret_access_key": self.secret_access_key}
        if self.session_token is not None:
            out["session_token"] = self.session_token
        return out


class Aws:
    """One test's moto: a user allowed ce:GetCostAndUsage, one allowed nothing, a role."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._post("/moto-api/reset-auth", data=b"inf")
        self._post("/moto-api/reset")
        setup = dict(
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        iam = boto3.client("iam", **setup)
        iam.create_user(UserName="billing")
        iam.put_user_policy(UserName="billing", PolicyName="ce-read", PolicyDocument=CE_POLICY)
        key = iam.create_access_key(UserName="billing")["AccessKey"]
        self.billing = Keys(key["AccessKeyId"], key["SecretAccessKey"])

        iam.create_user(UserName="nobody")
        key = iam.create_access_key(UserName="nobody")["AccessKey"]
        self.no_permission = Keys(key["AccessKeyId"], key["SecretAccessKey"])

        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/billing"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        iam.create_role(RoleName="billing-reader", AssumeRolePolicyDocument=json.dumps(trust))
        iam.put_role_policy(RoleName="billing-reader", PolicyName="ce-read", PolicyDocument=CE_POLICY)
        creds = boto3.client("sts", **setup).assume_role(
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/billing-reader", RoleSessionName="conformance"
        )["Credentials"]
        self.temporary = Keys(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])

        self._post("/moto-api/reset-auth", data=b"0")
        self._prove_auth_is_on()

    def _post(self, path: str, **kwargs: Any) -> requests.Response:
        resp = requests.post(self.endpoint + path, timeout=10, **kwargs)
        assert resp.status_code in (200, 201), (path, resp.status_code, resp.text)
        return resp

    def _prove_auth_is_on(self) -> None:
        ce = boto3.client(
            "ce",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.billing.access_key_id,
            aws_secret_access_key=self.billing.secret_access_key + "x",
        )
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            ce.get_cost_and_usage(
                TimePeriod={"Start": "2000-01-01", "End": "2000-01-02"},
                Granularity="DAILY",
                Metrics=["BlendedCost"],
            )
        assert "SignatureDoesNotMatch" in str(refused.value)

    def seed(self, *results: dict[str, Any]) -> None:
        """Queue Cost Explorer answers: the n-th distinct request body gets the n-th."""
        self._post("/moto-api/static/ce/cost-and-usage-results", json={"results": list(results)})

    def request_bodies(self) -> list[dict[str, Any]]:
        """The GetCostAndUsage bodies that took a queued answer, in order, parsed."""
        from moto.ce.models import ce_backends  # moto runs in this process

        backend = ce_backends[ACCOUNT]["global"]
        return [json.loads(body) for body in backend.cost_usage_results]


@pytest.fixture(scope="session")
def moto_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_endpoint) -> Aws:
    return Aws(moto_endpoint)


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


@pytest.fixture(scope="session")
def binary() -> Path:
    path = Path(os.environ.get("SAB_BIN") or REPO / "target" / "debug" / "source-aws-billing")
    if not path.is_file():
        pytest.fail(f"no binary at {path}: run `cargo build` or set SAB_BIN", pytrace=False)
    return path


def _yaml(doc: dict[str, Any]) -> str:
    # JSON scalars are valid YAML; a hand-written-looking file, not a JSON blob.
    lines = []
    for key, value in doc.items():
        if isinstance(value, dict):
            lines.append(f"{key}:")
            lines += [f"  {k}: {json.dumps(v)}" for k, v in value.items()]
        else:
            lines.append(f"{key}: {json.dumps(value)}")
    return "\n".join(lines) + "\n"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    state_dir: Path

    def explain(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


@pytest.fixture
def run_binary(binary, tmp_path):
    """Run the binary with a config (state_dir forced into tmp) and a secret file."""
    counter = iter(range(1000))

    def run(
        args: list[str],
        config: dict[str, Any],
        secret: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> Run:
        n = next(counter)
        state_dir = tmp_path / f"state-{n}"
        # A test that needs state across runs names its own state_dir.
        config = {"state_dir": str(state_dir), **config}
        config_path = tmp_path / f"config-{n}.yml"
        config_path.write_text(_yaml(config))
        argv = [str(binary), *args, "--config", str(config_path)]
        if secret is not None:
            secret_path = tmp_path / f"secret-{n}.yml"
            secret_path.write_text(_yaml(secret))
            argv += ["--secret", str(secret_path)]
        clean = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_", "CONNECTOR_"))
            and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "log_level")
        }
        # Never a real metadata service or the tester's ~/.aws, unless the test says so.
        isolated = {
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        }
        proc = subprocess.run(
            argv,
            env={**clean, **isolated, **(env or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr, state_dir)

    return run
