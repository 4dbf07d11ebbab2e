"""compose.yaml, validated without a Docker engine: the Compose specification's JSON schema, the services
the README names, pinned images, build contexts, secrets from .env, and the settings the api and the
pipeline need."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from services.settings import Settings, env_names
from services.stores.catalog import Catalog

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
SERVICES: dict[str, dict] = COMPOSE["services"]
APP_SERVICES = ("api", "pipeline")
VARIABLE = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")
PINNED = re.compile(r"^[\w./-]+(:[\w.-]*\d[\w.-]*|@sha256:[0-9a-f]{64})$")


def _interpolate(value: str) -> str:
    """compose's ${VAR:?err} / ${VAR:-default}: defaults filled in, required variables as placeholders."""
    return VARIABLE.sub(lambda m: m.group(3) if m.group(2) == "-" else f"test_{m.group(1).lower()}", value)


def _environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment") or {}
    return {k: _interpolate(str(v)) for k, v in env.items()}


def _dockerfiles() -> dict[str, str]:
    """Text of every Dockerfile a service builds from (file or inline)."""
    out = {}
    for name, service in SERVICES.items():
        build = service.get("build")
        if build:
            out[name] = build.get("dockerfile_inline") or (ROOT / build["context"] / build["dockerfile"]).read_text()
    return out


def test_compose_file_matches_the_compose_specification() -> None:
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(ROOT / "compose.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_names_exactly_the_compose_services() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Full stack", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^\| `([\w-]+)` \|", section, flags=re.MULTILINE))
    assert named == set(SERVICES)


def test_every_image_is_pinned() -> None:
    for name, service in SERVICES.items():
        image = service.get("image")
        assert image or service.get("build"), name
        if image:
            assert PINNED.match(image), f"{name}: image {image!r} is not pinned to a version or digest"
    for name, dockerfile in _dockerfiles().items():
        bases = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.MULTILINE)
        assert bases, name
        for base in bases:
            assert PINNED.match(base), f"{name}: base image {base!r} is not pinned"


def test_build_contexts_and_dockerfiles_exist() -> None:
    for name, service in SERVICES.items():
        build = service.get("build")
        if build:
            context = ROOT / build["context"]
            assert context.is_dir(), name
            assert build.get("dockerfile_inline") or (context / build["dockerfile"]).is_file(), name


def test_serving_stack_and_pipeline_profile() -> None:
    assert SERVICES["pipeline"]["profiles"] == ["pipeline"]
    assert SERVICES["pipeline"]["command"][:2] == ["nextwatch", "build"]
    assert all("profiles" not in SERVICES[s] for s in ("oracle", "qdrant", "embedder", "api"))
    for name, service in SERVICES.items():
        assert "healthcheck" in service or name in ("api", "pipeline"), f"{name} has no healthcheck"
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in SERVICES and condition == {"condition": "service_healthy"}
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source in COMPOSE["volumes"] or (ROOT / source).exists(), f"{name}: {volume}"


def test_app_image_runs_the_api_as_non_root_with_a_health_check() -> None:
    dockerfile = _dockerfiles()["api"]
    assert re.search(r"^USER (?!root)\w+", dockerfile, flags=re.MULTILINE)
    assert re.search(r"^HEALTHCHECK .*\n?.*/health", dockerfile, flags=re.MULTILINE)
    assert 'CMD ["nextwatch", "serve", "--host", "0.0.0.0"]' in dockerfile
    # dependencies in a layer of their own, before the code is copied
    assert (
        dockerfile.index("COPY pyproject.toml") < dockerfile.index("pip install -r") < dockerfile.index("COPY services")
    )
    assert ".env" in (ROOT / ".dockerignore").read_text().split()


def test_oracle_runs_sql_oracle_at_first_start() -> None:
    oracle = SERVICES["oracle"]
    assert "./sql/oracle:/container-entrypoint-initdb.d:ro" in oracle["volumes"]
    marker = re.search(r"touch (\S+)", (ROOT / "sql/oracle/03_ready.sh").read_text()).group(1)
    assert f"test -f {marker}" in oracle["healthcheck"]["test"][1]


def test_secrets_come_from_env_and_the_example_lists_them() -> None:
    text = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    required = {m.group(1) for m in VARIABLE.finditer(text) if m.group(2) == "?"}
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    listed = set(re.findall(r"^#?\s*(\w+)=", example, flags=re.MULTILINE))
    optional = {m.group(1) for m in VARIABLE.finditer(text) if m.group(2) == "-"}
    assert required <= listed and optional <= listed
    assert {"ORACLE_PASSWORD", "ORACLE_APP_PASSWORD", "QDRANT_API_KEY"} <= required
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|API_KEY|SECRET|TOKEN", key) or "@" in str(value):
                assert "${" in str(value), f"{name}: {key} is not taken from .env"
    assert ".env" in (ROOT / ".gitignore").read_text().split()


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_services_get_every_setting_they_need(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _environment(service)
    fields = set(env_names())
    unknown = {k for k in env if k.startswith("NEXTWATCH_")} - fields
    assert not unknown, f"{service}: no such setting {unknown}"
    assert {
        "NEXTWATCH_DATA_DIR",
        "NEXTWATCH_DATABASE_URL",
        "NEXTWATCH_QDRANT_URL",
        "NEXTWATCH_QDRANT_API_KEY",
        "NEXTWATCH_EMBEDDING_BACKEND",
        "OPENAI_BASE_URL",
    } <= env.keys()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(ROOT / "sql")  # no stray .env
    settings = Settings()
    assert settings.embedding.backend == "openai" and settings.data_dir == Path("/data")
    assert settings.qdrant.api_key == "test_qdrant_api_key"
    for url in (settings.catalog_url, settings.qdrant.url, env["OPENAI_BASE_URL"]):
        assert urlsplit(url).hostname in SERVICES, url  # every URL names a compose service
    assert urlsplit(env["OPENAI_BASE_URL"]).port == int(SERVICES["embedder"]["expose"][0])
    catalog = Catalog(settings.catalog_url)  # oracle+oracledb, thin mode: no connection until first use
    assert catalog.engine.dialect.name == "oracle" and catalog.engine.url.password == "test_oracle_app_password"
    catalog.close()


def test_two_api_replicas_share_the_stores_behind_a_health_checked_proxy() -> None:
    api, proxy = SERVICES["api"], SERVICES["proxy"]
    assert api["deploy"]["replicas"] >= 2 and "ports" not in api  # only the proxy is published
    assert api["volumes"] == ["nextwatch-data:/data:ro"]  # the build, shared read-only
    assert "nextwatch-data:/data" in SERVICES["pipeline"]["volumes"]  # its one writer
    env = _environment("api")
    assert urlsplit(env["NEXTWATCH_EVENTS_URL"]).hostname in SERVICES  # events in a shared database
    assert proxy["depends_on"] == {"api": {"condition": "service_healthy"}}
    assert "/health" in " ".join(proxy["healthcheck"]["test"])
    conf = COMPOSE["configs"][proxy["configs"][0]["source"]]["content"]
    assert f"server api:{api['expose'][0]}" in conf and "proxy_next_upstream" in conf
    published = proxy["ports"][0].rsplit(":", 1)[1]
    assert f"listen {published};" in conf
