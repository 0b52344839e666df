"""schemathesis against the OpenAPI document of every HTTP service, in process over ASGI, with an admin API token: the
operator console (its real ClickHouse reads on the embedded store) and the re-ID search API (the store and Triton's
embedder). Every operation, with generated valid and invalid parameters and bodies (a few examples each,
derandomized): never a 5xx, and every response conforms to the schema's content type and response model."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance

from vigil.auth import TokenStore

pytestmark = pytest.mark.slow  # starts real servers

CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
EXAMPLES = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def admin_token(tokens_path) -> str:
    return TokenStore(tokens_path).add("fuzz-admin", "admin")


@pytest.fixture(scope="module")
def console_schema(stack, tmp_path_factory):
    from services.console.app import create_app
    from services.console.settings import ConsoleSettings

    data_dir = tmp_path_factory.mktemp("console")
    console_settings = ConsoleSettings(**{**stack.model_dump(), "data_dir": data_dir, "frame_store": "",
                                          "console_secret_key": "k" * 40, "api_tokens_file": None})
    published: list[dict] = []
    app = create_app(console_settings, publish=published.append, kafka=False)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.token = admin_token(console_settings.tokens_path)
    return schema


@pytest.fixture(scope="module")
def reid_schema(stack, tmp_path_factory):
    from services.reid.api import ApiSettings, create_app

    tokens_path = tmp_path_factory.mktemp("reid-auth") / "tokens.json"
    token = admin_token(tokens_path)
    app = create_app(ApiSettings(**{**stack.model_dump(), "api_tokens_file": tokens_path}))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.token = token
    return schema


def failures_of(schema) -> list[str]:
    """Every operation of `schema`, with valid and with invalid input: the failures found, one line each."""
    failures, statuses = [], {}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @EXAMPLES
            @given(operation.as_strategy(mode))
            def call(case):
                # negative cases may drop the documented bearer header: put it back (the auth tests test its absence)
                case.headers = {**(case.headers or {}), "Authorization": f"Bearer {schema.token}"}
                response = case.call()
                statuses.setdefault(operation.label, set()).add(response.status_code)
                case.validate_response(response, checks=CHECKS)

            try:
                call()
            except Unsatisfiable:  # nothing to make invalid: an operation without parameters or body
                assert mode is GenerationMode.NEGATIVE, operation.label
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup, with a reproduction
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    # the token was taken: no operation but signing in with a password answered 401 (the token's role is admin)
    refused = sorted(label for label, codes in statuses.items() if 401 in codes and "/api/auth/login" not in label)
    assert not refused, f"refused the admin token: {refused}"
    assert any(code < 300 for codes in statuses.values() for code in codes), statuses
    return failures


def test_console_api_conforms_to_its_schema(console_schema):
    failures = failures_of(console_schema)
    assert not failures, "\n\n".join(failures)


def test_reid_api_conforms_to_its_schema(reid_schema):
    failures = failures_of(reid_schema)
    assert not failures, "\n\n".join(failures)
