"""Continuous training from CI: the GitHub Actions workflow and the GitLab CI file that
``shipyard init --ci github|gitlab`` writes.

On a push (or by hand) the job installs Shipyard, runs the pipeline, then gates the new model
version with ``shipyard validate``; the job fails when the gate fails, and the report folder
``validation/`` is kept as a job artifact either way.

Example:
    >>> from pathlib import Path
    >>> from shipyard.automation.ci import CiSettings, write_ci
    >>> settings = CiSettings(
    ...     pipeline="train.py:training", model="churn", gate_data="churn-holdout@latest",
    ...     gate_policy="gate.yaml", target="churned", sensitive=("gender",),
    ... )
    >>> write_ci("github", settings, Path("."))  # doctest: +SKIP
    PosixPath('.github/workflows/shipyard.yml')

The files are built as text (no PyYAML), so that they keep their comments and read the same
on every run. Every value goes into the shell quoted with :func:`shlex.quote`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from shipyard.errors import InvalidArgumentError

__all__ = [
    "CI_FILES",
    "CiSettings",
    "ci_settings_from_options",
    "render_github",
    "render_gitlab",
    "write_ci",
]

CI_FILES: dict[str, str] = {
    "github": ".github/workflows/shipyard.yml",
    "gitlab": ".gitlab-ci.yml",
}

REPORT_DIR = "validation"

_PIPELINE = re.compile(r"(?P<file>[^:]+\.py):(?P<name>[A-Za-z_][A-Za-z0-9_]*)")
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_PYTHON = re.compile(r"3\.\d{1,2}")
# A command that YAML reads back unchanged as a plain scalar: it starts with a letter, holds a
# space (so it is never read as a number, boolean or null), no '#' and no ': '.
_PLAIN = re.compile(r"[A-Za-z][\w ./@:,'=+\[\]-]* [\w ./@:,'=+\[\]-]*", re.ASCII)


@dataclass(frozen=True)
class CiSettings:
    """What the CI job runs.

    Args:
        pipeline: the pipeline that trains and registers the model, ``FILE.py:NAME`` with
            ``FILE.py`` relative to the project root.
        model: the registered model the pipeline makes a new version of.
        gate_data: unseen rows for the gate: ``DATASET@VERSION`` or a CSV/Parquet file
            relative to the project root.
        gate_policy: the gate policy YAML, relative to the project root.
        target: the true-value column of ``gate_data``.
        sensitive: columns to report fairness for.
        python: the Python version of the job, e.g. ``3.11``.
        install: what ``pip install`` gets, as shell words (e.g. ``-e .``).

    Raises:
        InvalidArgumentError: a value the job could not use; the message says what to fix.
    """

    pipeline: str
    model: str
    gate_data: str
    gate_policy: str
    target: str = "target"
    sensitive: tuple[str, ...] = ()
    python: str = "3.11"
    install: str = "shipyard-mlops[sklearn,validation]"

    def __post_init__(self) -> None:
        if not isinstance(self.sensitive, tuple):
            raise InvalidArgumentError(
                f"sensitive must be a tuple of column names, not {self.sensitive!r}"
            )
        for field in fields(self):
            value = getattr(self, field.name)
            for text in value if isinstance(value, tuple) else (value,):
                _check_text(field.name.replace("_", " "), text)
        if not _PIPELINE.fullmatch(self.pipeline):
            raise InvalidArgumentError(
                f"pipeline {self.pipeline!r}: give FILE.py:NAME, e.g. train.py:training "
                "(NAME is the @shipyard.pipeline function in FILE.py)"
            )
        _check_relative("pipeline file", self.pipeline.rpartition(":")[0])
        if not _MODEL.fullmatch(self.model):
            raise InvalidArgumentError(
                f"invalid model name {self.model!r}: use 1-128 letters, digits, '_', '.' or '-' "
                "(the name only, no @version: the gate checks NAME@latest)"
            )
        _check_relative("gate data", self.gate_data)
        _check_relative("gate policy", self.gate_policy)
        if not _PYTHON.fullmatch(self.python):
            raise InvalidArgumentError(f"python {self.python!r}: give a version like 3.11")
        try:
            words = shlex.split(self.install)
        except ValueError as exc:
            raise InvalidArgumentError(f"install {self.install!r}: {exc}") from exc
        if not words:
            raise InvalidArgumentError("install is empty: give what pip installs, e.g. -e .")


def _check_text(what: str, value: object) -> None:
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{what} must be text, not {value!r}")
    if not value.strip():
        raise InvalidArgumentError(f"{what} is empty")
    if not value.isprintable():
        raise InvalidArgumentError(f"{what} {value!r}: remove the line break or control character")
    if "${{" in value:
        raise InvalidArgumentError(
            f"{what} {value!r}: remove '${{{{': GitHub Actions would evaluate it as an expression"
        )


def _check_relative(what: str, path: str) -> None:
    if (
        PurePosixPath(path).is_absolute()
        or PureWindowsPath(path).is_absolute()
        or path.startswith("~")
        or ".." in PurePosixPath(path).parts
        or ".." in PureWindowsPath(path).parts
    ):
        raise InvalidArgumentError(
            f"{what} {path!r} is outside the checkout: give it relative to the project root"
        )


def ci_settings_from_options(
    *,
    pipeline: str | None = None,
    model: str | None = None,
    gate_data: str | None = None,
    gate_policy: str | None = None,
    target: str | None = None,
    sensitive: Sequence[str] | None = None,
    install: str | None = None,
    python: str | None = None,
    policy_defaults: Mapping[str, Any] | None = None,
) -> CiSettings:
    """Settings from command-line options over defaults (an ``automation.yaml``, later).

    An option that is ``None`` (or an empty ``sensitive``) was not given: its value comes from
    ``policy_defaults``, then from :class:`CiSettings`'s own default. ``gate_policy`` defaults
    to ``gate.yaml``.

    Args:
        pipeline: ``--pipeline FILE.py:NAME``.
        model: ``--model NAME``.
        gate_data: ``--gate-data REF``.
        gate_policy: ``--gate-policy FILE``.
        target: ``--target COL``.
        sensitive: ``--sensitive COL`` (repeatable).
        install: ``--install REQ``.
        python: the job's Python version.
        policy_defaults: defaults keyed by :class:`CiSettings` field names; explicit options
            win over them.

    Raises:
        InvalidArgumentError: ``pipeline``, ``model`` or ``gate_data`` is given nowhere, a
            default has an unknown key, or a value is invalid.
    """
    known = {f.name for f in fields(CiSettings)}
    defaults = dict(policy_defaults or {})
    unknown = sorted(set(defaults) - known)
    if unknown:
        raise InvalidArgumentError(
            f"unknown CI setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    given: dict[str, Any] = {
        "pipeline": pipeline,
        "model": model,
        "gate_data": gate_data,
        "gate_policy": gate_policy,
        "target": target,
        "sensitive": tuple(sensitive) if sensitive else None,
        "install": install,
        "python": python,
    }
    merged = {k: v for k, v in defaults.items() if v is not None}
    merged.update({k: v for k, v in given.items() if v is not None})
    merged.setdefault("gate_policy", "gate.yaml")
    if isinstance(merged.get("sensitive"), str):
        merged["sensitive"] = (merged["sensitive"],)
    elif isinstance(merged.get("sensitive"), list):
        merged["sensitive"] = tuple(merged["sensitive"])
    required = {
        "pipeline": "--pipeline FILE.py:NAME (the pipeline that trains the model)",
        "model": "--model NAME (the model it registers)",
        "gate_data": "--gate-data REF (unseen rows for the gate: DATASET@v or a file)",
    }
    missing = [option for key, option in required.items() if key not in merged]
    if missing:
        raise InvalidArgumentError(f"--ci needs {', '.join(missing)}")
    return CiSettings(**merged)


def _scalar(text: str) -> str:
    """``text`` as a YAML scalar: plain when YAML reads it back unchanged, else quoted."""
    if _PLAIN.fullmatch(text) and ": " not in text and not text.endswith((" ", ":")):
        return text
    return json.dumps(text)  # a JSON string is a valid YAML double-quoted scalar


def _block(text: str, indent: int) -> str:
    """``text`` as a YAML literal block scalar (``|``) indented by ``indent`` spaces."""
    pad = " " * indent
    return "|\n" + "".join(f"{pad}{line}\n" if line else "\n" for line in text.splitlines())


def _install_command(settings: CiSettings) -> str:
    return "python -m pip install " + shlex.join(shlex.split(settings.install))


def _pipeline_command(settings: CiSettings) -> str:
    return shlex.join(["shipyard", "pipeline", "run", settings.pipeline])


def _gate_script(settings: CiSettings) -> str:
    """POSIX sh: validate the latest version, against the champion when there is one."""
    champion = shlex.quote(f"{settings.model}@champion")
    options = [
        ("--data", settings.gate_data),
        ("--target", settings.target),
        ("--policy", settings.gate_policy),
        *(("--sensitive", column) for column in settings.sensitive),
        ("--out", REPORT_DIR),
    ]
    validate = [shlex.join(["shipyard", "validate", f"{settings.model}@latest"])]
    validate += [shlex.join(pair) for pair in options]
    validate.append('"$@"')
    return (
        "# No champion yet (the first run, or no team store): the policy alone decides.\n"
        "set --\n"
        f"if shipyard models show {champion} >/dev/null 2>&1; then\n"
        f"  set -- --against {champion}\n"
        "fi\n" + " \\\n  ".join(validate) + "\n"
    )


_STORES = """\
#   SHIPYARD_STORE_URL      the team's metadata store: models, versions, aliases (the champion),
#                           runs; e.g. postgresql+psycopg://USER@HOST/DB (add the postgres extra
#                           to the pip install line).
#   SHIPYARD_ARTIFACTS_URL  the team's artifact store: model files, datasets; e.g.
#                           s3://BUCKET/shipyard (add the s3 extra to the pip install line).
# Without them the job works in a throwaway workspace on the runner: the new model version is
# gone when the job ends and, with no champion to compare against, the policy alone decides.
"""


def render_github(settings: CiSettings) -> str:
    """The GitHub Actions workflow (``.github/workflows/shipyard.yml``) for ``settings``."""
    return f"""\
# Shipyard continuous training: on every push, and by hand (Actions > shipyard > Run workflow),
# run the pipeline, then gate the new version of {settings.model} with `shipyard validate`.
# The job fails when the gate fails; the report folder {REPORT_DIR}/ is uploaded either way.
# Written by `shipyard init --ci github`; edit it as you like.
#
# Repository secrets (Settings > Secrets and variables > Actions), both optional:
{_STORES}
name: shipyard

"on":
  push:
  workflow_dispatch:

permissions:
  contents: read

jobs:
  train-and-gate:
    runs-on: ubuntu-latest
    env:
      SHIPYARD_STORE_URL: ${{{{ secrets.SHIPYARD_STORE_URL }}}}
      SHIPYARD_ARTIFACTS_URL: ${{{{ secrets.SHIPYARD_ARTIFACTS_URL }}}}
    steps:
      - name: Check out
        uses: actions/checkout@v4
      - name: Set up Python
        uses: actions/setup-python@v5
        with:
          python-version: {json.dumps(settings.python)}
      - name: Install Shipyard
        run: {_scalar(_install_command(settings))}
      - name: Create the workspace
        run: shipyard init
      - name: Run the pipeline
        run: {_scalar(_pipeline_command(settings))}
      - name: Validation gate
        run: {_block(_gate_script(settings), 10)}\
      - name: Upload the validation report
        if: always()
        uses: actions/upload-artifact@v4
        with:
          name: {REPORT_DIR}
          path: {REPORT_DIR}/
"""


def render_gitlab(settings: CiSettings) -> str:
    """The GitLab CI file (``.gitlab-ci.yml``) for ``settings``."""
    return f"""\
# Shipyard continuous training: on every push, and by hand (Build > Pipelines > Run pipeline),
# run the pipeline, then gate the new version of {settings.model} with `shipyard validate`.
# The job fails when the gate fails; the report folder {REPORT_DIR}/ is kept either way.
# Written by `shipyard init --ci gitlab`; edit it as you like.
#
# CI/CD variables (Settings > CI/CD > Variables), both optional; GitLab passes them to the job
# as environment variables (mask them; a protected one reaches protected branches only):
{_STORES}
shipyard:
  image: python:{settings.python}
  rules:
    - if: '$CI_PIPELINE_SOURCE == "push" || $CI_PIPELINE_SOURCE == "web"'
  script:
    - {_scalar(_install_command(settings))}
    - shipyard init
    - {_scalar(_pipeline_command(settings))}
    - {_block(_gate_script(settings), 6)}\
  artifacts:
    when: always
    paths:
      - {REPORT_DIR}/
"""


_RENDERERS = {"github": render_github, "gitlab": render_gitlab}


def write_ci(kind: str, settings: CiSettings, root: Path, *, force: bool = False) -> Path:
    """Write the CI file of ``kind`` into the project folder ``root``, atomically.

    Args:
        kind: ``github`` or ``gitlab``.
        settings: what the job runs.
        root: the project root (the repository's top folder).
        force: replace an existing file.

    Returns:
        The path written.

    Raises:
        InvalidArgumentError: ``kind`` is unknown, or the file exists and ``force`` is false.
    """
    if kind not in CI_FILES:
        raise InvalidArgumentError(f"unknown CI {kind!r}: choose {' or '.join(sorted(CI_FILES))}")
    path = Path(root) / CI_FILES[kind]
    if path.exists() and not force:
        raise InvalidArgumentError(f"{path} exists: pass --force to replace it")
    text = _RENDERERS[kind](settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as file:
            file.write(text)
        os.chmod(temp, 0o644)  # mkstemp's 0600 would hide the file from the rest of the team
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return path
