"""The deployment files (deploy/): checked without a Docker engine, for what an operator relies on.

The compose file is interpolated as Compose does and validated against the Compose Specification's
JSON schema (deploy/compose-spec.json, vendored); nginx.conf is parsed with crossplane (nginxinc's
parser, which knows every directive's contexts and argument counts); the Dockerfile goes through
hadolint. The rest asserts the promises: one body limit, TLS, live streams unbuffered, both
instances behind nginx, nothing decompressed, the real client address for the rate limits.
"""

from __future__ import annotations

import copy
import inspect
import ipaddress
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import crossplane
import crossplane.analyzer as nginx_directives
import jsonschema
import pytest
import yaml

from bot.settings import ROOT, Settings, load_dotenv
from bot.web.app import create_app

DEPLOY = ROOT / "deploy"
INSTANCES = ("streife-1", "streife-2")
ENV = {"POSTGRES_PASSWORD": "not-a-real-password"}  # what deploy/.env gives Compose
_VAR = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_EXPR = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.S)


class InterpolationError(ValueError):
    """Compose would refuse the file (a required variable is missing, or a malformed ${...})."""


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Substitute ${VAR}, ${VAR:-default}, ${VAR:?error}, ... and $$ in every string, as Compose does."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["named"]:
            return env.get(match["named"], "")
        expr = _EXPR.fullmatch(match["braced"])
        if expr is None:
            raise InterpolationError(f"invalid interpolation format: ${{{match['braced']}}}")
        current, op, arg = env.get(expr["name"]), expr["op"], expr["arg"] or ""
        present = bool(current) if op and op.startswith(":") else current is not None
        if op in (":?", "?") and not present:
            raise InterpolationError(f"{expr['name']}: {arg}")
        if op in (":-", "-"):
            return current if present else arg  # type: ignore[return-value]
        if op in (":+", "+"):
            return arg if present else ""
        return current or ""

    return _VAR.sub(substitute, value)


def load_compose(env: dict[str, str] = ENV) -> dict[str, Any]:
    """deploy/compose.yaml as Compose sees it: YAML (anchors and merge keys resolved), then interpolated."""
    return interpolate(yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8")), env)


def schema_errors(document: dict[str, Any]) -> list[str]:
    """What the Compose Specification's schema says is wrong with `document` (empty: valid)."""
    schema = json.loads((DEPLOY / "compose-spec.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


# -- nginx.conf --------------------------------------------------------------------------------------

Block = list[dict[str, Any]]


def parse_nginx(path: Path) -> Block:
    """nginx.conf's directives, parsed strictly (unknown directives, wrong contexts or argument counts fail)."""
    # crossplane 0.5.8 predates `http2 on;` (nginx 1.25.1): teach it that one directive (its own
    # register_external_directives still calls dict.iteritems, Python 2 only).
    nginx_directives.DIRECTIVES.setdefault("http2", [
        nginx_directives.NGX_HTTP_MAIN_CONF | nginx_directives.NGX_HTTP_SRV_CONF | nginx_directives.NGX_CONF_FLAG])
    result = crossplane.parse(str(path), strict=True, check_ctx=True, check_args=True, single=True)
    assert result["status"] == "ok", result["errors"]
    return result["config"][0]["parsed"]


def find(block: Block, name: str) -> list[dict[str, Any]]:
    """The directives called `name` directly inside `block`."""
    return [d for d in block if d["directive"] == name]


def walk(block: Block) -> Iterator[dict[str, Any]]:
    """Every directive, nested ones too."""
    for directive in block:
        yield directive
        yield from walk(directive.get("block", []))


def one(block: Block, name: str) -> list[str]:
    """The arguments of the single `name` directive in `block`."""
    found = find(block, name)
    assert len(found) == 1, f"expected one {name}, found {len(found)}"
    return found[0]["args"]


def size(text: str) -> int:
    """An nginx size (1m, 512k, 1024) in bytes."""
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", text).groups()  # type: ignore[union-attr]
    return int(number) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[unit.lower()]


def seconds(text: str) -> int:
    """An nginx time (30s, 10m, 1h, 60) in seconds."""
    number, unit = re.fullmatch(r"(\d+)([smhd]?)", text).groups()  # type: ignore[union-attr]
    return int(number) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


@pytest.fixture(scope="module")
def nginx() -> dict[str, Any]:
    """The http block, the TLS server, the plain-HTTP server."""
    http = find(parse_nginx(DEPLOY / "nginx.conf"), "http")[0]["block"]
    servers = find(http, "server")
    tls = [s["block"] for s in servers if any("ssl" in d["args"] for d in find(s["block"], "listen"))]
    plain = [s["block"] for s in servers if s["block"] not in tls]
    assert len(tls) == 1 and len(plain) == 1, "expected one HTTPS and one HTTP server"
    return {"http": http, "tls": tls[0], "plain": plain[0]}


@pytest.fixture(scope="module")
def app_routes() -> dict[str, Any]:
    """The real app's GET routes: path -> handler."""
    app = create_app(Settings.from_env(environ={}, dotenv=Path("/nonexistent")), load_model=False)
    routes = {r.resource.canonical: inspect.unwrap(r.handler) for r in app.router.routes() if r.method == "GET"}
    return {"routes": routes, "client_max_size": app._client_max_size}


def test_nginx_conf_parses_strictly_and_a_typo_fails(tmp_path: Path) -> None:
    parse_nginx(DEPLOY / "nginx.conf")
    broken = tmp_path / "nginx.conf"
    broken.write_text((DEPLOY / "nginx.conf").read_text().replace("proxy_buffering off;", "proxy_bufering off;", 1))
    with pytest.raises(AssertionError, match="unknown directive"):
        parse_nginx(broken)


def test_body_limit_is_the_apps_and_bodies_stay_in_memory(nginx: dict[str, Any], app_routes: dict[str, Any]) -> None:
    limit = size(one(nginx["http"], "client_max_body_size")[0])
    assert limit == app_routes["client_max_size"] == 1024 * 1024
    assert size(one(nginx["http"], "client_body_buffer_size")[0]) >= limit  # never written to a temp file
    assert one(nginx["http"], "proxy_request_buffering") == ["on"]
    assert not [d for d in walk(nginx["http"]) if d["directive"] == "client_max_body_size" and d not in nginx["http"]]


def test_nothing_is_decompressed_or_compressed(nginx: dict[str, Any]) -> None:
    everything = list(walk(nginx["http"]))
    assert not [d for d in everything if d["directive"] == "gunzip"]
    assert [d["args"] for d in everything if d["directive"] == "gzip"] == [["off"]]
    assert not [d for d in everything if d["directive"].startswith(("lua", "js_", "body_filter"))]


def test_tls_terminates_here_and_plain_http_only_redirects(nginx: dict[str, Any], compose: dict[str, Any]) -> None:
    tls, plain = nginx["tls"], nginx["plain"]
    assert one(tls, "listen")[:2] == ["443", "ssl"]
    assert set(one(tls, "ssl_protocols")) <= {"TLSv1.2", "TLSv1.3"}
    mounts = {m.split(":")[1]: m for m in compose["services"]["nginx"]["volumes"]}
    for name in ("ssl_certificate", "ssl_certificate_key"):
        path = Path(one(tls, name)[0])
        assert mounts.get(str(path.parent), "").endswith(":ro"), f"{path} is not on a read-only mount"
    assert one(plain, "listen")[0] == "80"
    assert [d["directive"] for d in plain if d["directive"] not in ("listen", "server_name")] == ["return"]
    assert one(plain, "return")[0] == "301" and one(plain, "return")[1].startswith("https://")


def test_both_instances_are_upstreams_with_passive_health(nginx: dict[str, Any], compose: dict[str, Any]) -> None:
    upstream = find(nginx["http"], "upstream")[0]
    port = re.search(r"^EXPOSE (\d+)", (ROOT / "Dockerfile").read_text(), re.M)[1]  # type: ignore[index]
    servers = {d["args"][0]: d["args"][1:] for d in find(upstream["block"], "server")}
    assert set(servers) == {f"{name}:{port}" for name in INSTANCES}
    assert set(INSTANCES) <= set(compose["services"])
    for options in servers.values():
        assert any(o.startswith("max_fails=") for o in options) and any(o.startswith("fail_timeout=") for o in options)
    proxied = {d["args"][0] for d in walk(nginx["tls"]) if d["directive"] == "proxy_pass"}
    assert proxied == {f"http://{upstream['args'][0]}"}


def test_post_is_never_retried_on_the_other_instance(nginx: dict[str, Any]) -> None:
    retries = [d["args"] for d in walk(nginx["http"]) if d["directive"] == "proxy_next_upstream"]
    assert retries == [["error", "timeout"]]  # and never "non_idempotent"


def test_live_streams_are_unbuffered_with_a_long_read_timeout(nginx: dict[str, Any], app_routes: dict[str, Any]) -> None:
    streams = {path for path, handler in app_routes["routes"].items() if "await stream(" in inspect.getsource(handler)}
    assert streams >= {"/inbox/events", "/chat/events"}
    locations = {tuple(d["args"]): d["block"] for d in find(nginx["tls"], "location")}
    for path in streams:
        block = locations.get(("=", path))
        assert block is not None, f"no location for the live stream {path}"
        assert one(block, "proxy_buffering") == ["off"]
        assert seconds(one(block, "proxy_read_timeout")[0]) >= 600
    assert seconds(one(nginx["tls"], "proxy_read_timeout")[0]) <= 120  # ordinary requests stay short


def test_forwarded_headers_reach_every_location(nginx: dict[str, Any]) -> None:
    headers = {d["args"][0]: d["args"][1] for d in find(nginx["tls"], "proxy_set_header")}
    assert headers["Host"] == "$host"
    assert headers["X-Forwarded-For"] == "$remote_addr"
    assert headers["X-Forwarded-Proto"] == "$scheme"
    # A proxy_set_header inside a location would silently drop all of these there.
    for location in find(nginx["tls"], "location"):
        assert not find(location["block"], "proxy_set_header"), location["args"]


# -- compose.yaml ------------------------------------------------------------------------------------

def test_compose_file_is_valid_by_the_compose_specification(compose: dict[str, Any]) -> None:
    assert schema_errors(compose) == []


def test_the_schema_check_fails_on_a_broken_file(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["streife-1"]["depends_on"]["postgres"]["condition"] = "service_ready"
    broken["services"]["nginx"]["restart"] = ["always"]
    broken["services"]["streife-2"]["helthcheck"] = {}
    assert len(schema_errors(broken)) == 3


def test_compose_refuses_to_start_without_the_database_password() -> None:
    with pytest.raises(InterpolationError, match="POSTGRES_PASSWORD"):
        load_compose({})
    raw = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    assert re.findall(r"POSTGRES_PASSWORD: (\S+)", raw) == ["${POSTGRES_PASSWORD:?set"]


def test_references_resolve_as_docker_compose_config_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        assert set(service.get("depends_on", {})) <= set(services), name
        networks = service.get("networks", [])
        assert set(networks) <= set(compose["networks"]), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert source == "./tls" or (DEPLOY / source).exists(), f"{name}: {source} is missing"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} is not declared"
        assert service.get("restart") == "unless-stopped", name


def test_two_instances_of_the_projects_image_each_with_its_nlu_workers(compose: dict[str, Any]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r'^CMD \["python", "-m", "bot", "serve"\]$', dockerfile, re.M)  # serve starts the workers
    for name in INSTANCES:
        service = compose["services"][name]
        assert (DEPLOY / service["build"]["context"]).resolve() == ROOT
        assert service["build"]["dockerfile"] == "Dockerfile"
        assert "command" not in service and "entrypoint" not in service
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["healthcheck"]["test"][-1].count("http://127.0.0.1:8080/livez") == 1
    assert compose["services"][INSTANCES[0]]["environment"] == compose["services"][INSTANCES[1]]["environment"]


def test_instances_share_one_postgresql_15(compose: dict[str, Any], app_routes: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    assert postgres["image"].startswith("postgres:15")  # the version the tests run (tests/pg.py)
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert any(v.split(":")[1] == "/var/lib/postgresql/data" and v.split(":")[0] in compose["volumes"]
               for v in postgres["volumes"])
    assert compose["networks"][postgres["networks"][0]].get("internal") is True and len(postgres["networks"]) == 1
    for name in INSTANCES:
        env = compose["services"][name]["environment"]
        url = urlsplit(env["DATABASE_URL"])
        assert (url.scheme, url.hostname, url.password) == ("postgresql", "postgres", None)
        assert url.username == postgres["environment"]["POSTGRES_USER"]
        assert url.path == "/" + postgres["environment"]["POSTGRES_DB"]
        assert env["PGPASSWORD"] == postgres["environment"]["POSTGRES_PASSWORD"] == ENV["POSTGRES_PASSWORD"]
    assert "/livez" in app_routes["routes"]


def test_rate_limits_see_the_client_not_nginx(compose: dict[str, Any]) -> None:
    nginx = compose["services"]["nginx"]
    [(network, config)] = nginx["networks"].items()
    subnet = ipaddress.ip_network(compose["networks"][network]["ipam"]["config"][0]["subnet"])
    assert ipaddress.ip_address(config["ipv4_address"]) in subnet
    for name in INSTANCES:
        env = compose["services"][name]["environment"]
        assert network in compose["services"][name]["networks"]
        assert env["TRUSTED_PROXIES"] == config["ipv4_address"]
        assert Settings.from_env(environ=env, dotenv=Path("/nonexistent")).trusted_proxies == (config["ipv4_address"],)


def test_env_example_lists_only_real_settings_and_they_load(compose: dict[str, Any]) -> None:
    example = DEPLOY / "env.example"
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", example.read_text(encoding="utf-8"), re.M))
    known = set(re.findall(r'"([A-Z][A-Z0-9_]+)"', (ROOT / "bot" / "settings.py").read_text(encoding="utf-8")))
    assert listed - known == {"POSTGRES_PASSWORD"}
    assert {"PUBLIC_URL", "PSEUDONYM_KEY", "TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_URL"} <= listed
    assert not listed & set(compose["services"][INSTANCES[0]]["environment"])  # compose sets those itself
    env = load_dotenv(example)
    assert [key for key, value in env.items() if key in ("POSTGRES_PASSWORD", "PSEUDONYM_KEY") and value] == []
    settings = Settings.from_env(environ={**env, "PSEUDONYM_KEY": "k" * 64}, dotenv=Path("/nonexistent"))
    assert settings.public_url.startswith("https://")  # secure cookies (bot/web/auth.py)
    for name in INSTANCES:
        assert compose["services"][name]["env_file"] == [{"path": ".env", "required": True}]


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    hadolint = hadolint if hadolint.exists() else Path(shutil.which("hadolint") or "hadolint")
    result = subprocess.run([str(hadolint), str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_build_context_leaves_out_environments_and_secrets_but_not_what_is_copied() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", ".venv-nlu", ".env", "deploy/.env", "deploy/tls", "var"} <= ignored
    copied = set()
    for args in re.findall(r"^COPY (?!--from)(.+)$", (ROOT / "Dockerfile").read_text(), re.M):
        copied.update(args.split()[:-1])
    assert copied >= {"bot", "nlu", "data", "config.yml", "requirements.txt"}
    assert not {path for path in copied if path in ignored or path.split("/")[0] in ignored}
