"""The OpenAPI document is the API: schemathesis (every check) against the service over real HTTP
finds nothing, and the contract's promises (error schema, audio body, unknown fields, Allow) hold."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx
import pytest
from conftest import free_port

from dualcam_rt.config import Settings
from dualcam_rt.inference.tiny import write_tiny_model
from dualcam_rt.server.app import create_app
from dualcam_rt.server.run import BackgroundServer

TOKEN = "contract-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
MAX_UPLOAD_BYTES = 200_000
ERROR_STATUSES = {
    "/v1/predict": {"post": {"400", "404", "413", "415", "422"}},
    "/v1/recordings": {"post": {"400", "401", "422", "503"}, "get": {"401"}},
    "/v1/recordings/{rec_id}": {"get": {"401", "404", "422"}},
}

# The service under test has no device (live=False), so starting a recording is a documented 503;
# and a schema cannot say "a decodable audio file", so arbitrary bytes that fit it are a 400.
SCHEMATHESIS_TOML = f"""
seed = 1
[generation]
max-examples = 15
database = "none"
[auth.openapi.token]
bearer = "{TOKEN}"
[[operations]]
include-name = "POST /v1/predict"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "404"]
[[operations]]
include-name = "POST /v1/recordings"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "503"]
checks.not_a_server_error.expected-statuses = ["2xx", "4xx", "503"]
"""


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    write_tiny_model(models)
    settings = Settings(
        models_dir=models,
        api_token=TOKEN,
        max_upload_bytes=MAX_UPLOAD_BYTES,
        sessions_dir=tmp_path_factory.mktemp("sessions"),
    )
    with BackgroundServer(create_app(settings, live=False), free_port()) as base:
        yield base


def test_schemathesis_with_every_check_finds_nothing(url, tmp_path):
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_TOML)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(config),
            "--no-color",
            "run",
            f"{url}/openapi.json",
            "--checks",
            "all",
            "--no-shrink",
            "--workers",
            "1",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", r.stdout)
    assert generated and generated[1] == generated[2] and int(generated[1]) > 100, r.stdout[-3000:]


def test_every_error_answer_is_documented_with_the_error_schema(url):
    spec = httpx.get(f"{url}/openapi.json").json()
    error = spec["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["error"]
    assert set(spec["components"]["schemas"]["ErrorDetail"]["required"]) == {"code", "message"}
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # FastAPI's 422 shape is not ours
    for path, methods in ERROR_STATUSES.items():
        for method, statuses in methods.items():
            responses = spec["paths"][path][method]["responses"]
            assert statuses <= set(responses), (path, method, sorted(responses))
            for status in statuses:
                schema = responses[status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)


def test_predict_documents_its_audio_body_and_limit(url):
    body = httpx.get(f"{url}/openapi.json").json()["paths"]["/v1/predict"]["post"]["requestBody"]
    assert body["required"] is True
    for media_type in ("audio/wav", "audio/flac", "audio/ogg", "application/octet-stream"):
        assert body["content"][media_type]["schema"] == {
            "type": "string",
            "format": "binary",
            "maxLength": MAX_UPLOAD_BYTES,
        }
    assert "multipart/form-data" in body["content"] and str(MAX_UPLOAD_BYTES) in body["description"]


def test_predict_refuses_a_body_declared_as_something_else_with_415(url):
    r = httpx.post(f"{url}/v1/predict", content=b'{"audio": "x"}', headers={"content-type": "application/json"})
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"


def test_unknown_json_fields_are_refused_by_name(url):
    r = httpx.post(f"{url}/v1/recordings", json={"seconds": 1, "name": "mine", "colour": "red"}, headers=AUTH)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert "body.name" in error["message"] and "body.colour" in error["message"]
    assert "\n" not in error["message"]


@pytest.mark.parametrize(
    "method,path,allowed",
    [
        ("OPTIONS", "/v1/recordings", "GET, POST"),
        ("DELETE", "/v1/recordings", "GET, POST"),
        ("PUT", "/v1/predict", "POST"),
        ("POST", "/healthz", "GET"),
        ("DELETE", "/v1/recordings/some-id", "GET"),
    ],
)
def test_a_wrong_method_gets_405_with_every_allowed_method(url, method, path, allowed):
    r = httpx.request(method, f"{url}{path}", headers=AUTH)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert r.headers["allow"] == allowed


def test_recordings_without_the_token_are_401_with_a_bearer_challenge(url):
    r = httpx.get(f"{url}/v1/recordings")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{url}/v1/recordings", headers=AUTH).json() == {"recordings": []}
