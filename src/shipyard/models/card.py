"""Model cards: one page, in Markdown and self-contained HTML, saying what a model version is.

A card gathers what Shipyard already knows about a version — who made it and when, its review
state and aliases, the run that trained it with that run's parameters, metrics and input
datasets, the signature — with what only people know: the intended use and the limitations.
Validation results (a dict such as a JSON validation report) are added when given, every key
rendered as a table, so new checks show up without changing this module.

Example:
    >>> card = model_card(version, backend=ws.backend, artifacts=ws.artifacts,  # doctest: +SKIP
    ...                   intended_use="Ranking churn risk for retention calls.")
    >>> card.write("cards/")  # doctest: +SKIP
"""

from __future__ import annotations

import html
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.entities import ModelVersion
from shipyard.entities.models import ColumnSpec, ModelMeta
from shipyard.errors import NotFoundError
from shipyard.models.package import META_FILE, read_meta

if TYPE_CHECKING:
    from shipyard.artifacts import ArtifactStore
    from shipyard.store.backend import Backend

__all__ = ["NOT_DOCUMENTED", "CardSection", "ModelCard", "Table", "model_card"]

NOT_DOCUMENTED = "Not documented."
"""What a card says where intended use or limitations were left empty."""


@dataclass(frozen=True, slots=True)
class Table:
    """A table of text cells (already formatted; escaped only when rendered)."""

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class CardSection:
    """A titled part of a card: paragraphs, then tables each with an optional caption.

    ``missing`` marks a section whose content people still have to write.
    """

    title: str
    paragraphs: tuple[str, ...] = ()
    tables: tuple[tuple[str, Table], ...] = ()
    missing: bool = False


@dataclass(frozen=True, slots=True)
class ModelCard:
    """A model version's card; render it with :meth:`to_markdown` or :meth:`to_html`."""

    ref: str
    sections: tuple[CardSection, ...] = field(default_factory=tuple)

    @property
    def title(self) -> str:
        return f"Model card: {self.ref}"

    def section(self, title: str) -> CardSection:
        """The section called ``title``.

        Raises:
            NotFoundError: the card has no such section.
        """
        for section in self.sections:
            if section.title == title:
                return section
        raise NotFoundError(f"the card has no section {title!r}")

    def to_markdown(self) -> str:
        """The card as GitHub-flavoured Markdown."""
        lines = [f"# {_md_text(self.title)}", ""]
        for section in self.sections:
            lines += [f"## {_md_text(section.title)}", ""]
            for paragraph in section.paragraphs:
                text = f"**{_md_text(paragraph)}**" if section.missing else paragraph
                lines += [text, ""]
            for caption, table in section.tables:
                if caption:
                    lines += [f"**{_md_text(caption)}**", ""]
                lines += [*_md_table(table), ""]
        return "\n".join(lines).rstrip() + "\n"

    def to_html(self) -> str:
        """The card as one self-contained HTML page (no scripts, no external files)."""
        body = [f"<h1>{_h(self.title)}</h1>"]
        for section in self.sections:
            body.append(f"<section><h2>{_h(section.title)}</h2>")
            for paragraph in section.paragraphs:
                css = ' class="missing"' if section.missing else ""
                body.append(f"<p{css}>{_h(paragraph)}</p>")
            for caption, table in section.tables:
                body.append(_html_table(caption, table))
            body.append("</section>")
        return _PAGE.format(title=_h(self.title), body="\n".join(body))

    def write(self, out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write ``NAME-VERSION.md`` and ``NAME-VERSION.html`` into ``out_dir``.

        Returns:
            The paths of the Markdown and the HTML file.
        """
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        stem = self.ref.replace("@", "-").replace("/", "_")
        markdown, page = folder / f"{stem}.md", folder / f"{stem}.html"
        markdown.write_text(self.to_markdown(), encoding="utf-8")
        page.write_text(self.to_html(), encoding="utf-8")
        return markdown, page


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #1f2328; line-height: 1.5; }}
h1 {{ border-bottom: 2px solid #d0d7de; padding-bottom: .3rem; }}
h2 {{ margin-top: 2rem; border-bottom: 1px solid #d0d7de; }}
table {{ border-collapse: collapse; margin: .5rem 0 1rem; }}
th, td {{ border: 1px solid #d0d7de; padding: .25rem .6rem; text-align: left;
         vertical-align: top; }}
th {{ background: #f6f8fa; }}
caption {{ text-align: left; font-weight: 600; padding: .25rem 0; }}
p {{ white-space: pre-wrap; }}
p.missing {{ color: #9a6700; background: #fff8c5; border: 1px solid #d4a72c;
            padding: .5rem; font-weight: 600; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""


def _h(text: str) -> str:
    return html.escape(text, quote=True)


def _md_text(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


def _md_cell(text: str) -> str:
    return _md_text(text).replace("\\", "\\\\").replace("|", "\\|") or " "


def _md_table(table: Table) -> list[str]:
    lines = ["| " + " | ".join(_md_cell(h) for h in table.headers) + " |"]
    lines.append("|" + "|".join(" --- " for _ in table.headers) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return lines


def _html_table(caption: str, table: Table) -> str:
    head = "".join(f"<th>{_h(h)}</th>" for h in table.headers)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_h(c)}</td>" for c in row) + "</tr>" for row in table.rows
    )
    cap = f"<caption>{_h(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _fmt(value: Any) -> str:
    """A cell's text: floats to four significant digits, lists joined, None as a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def _when(ms: int | None) -> str:
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _key_values(pairs: Mapping[str, Any], headers: tuple[str, str]) -> Table:
    return Table(headers, tuple((str(k), _fmt(v)) for k, v in pairs.items()))


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, Mapping | list | tuple)


def _tables_for(caption: str, value: Any) -> list[tuple[str, Table]]:
    """Tables showing any JSON-like ``value``; nested mappings become captioned sub-tables."""
    if _is_scalar(value):
        return [(caption, Table(("value",), ((_fmt(value),),)))]
    if isinstance(value, list | tuple):
        if value and all(isinstance(item, Mapping) for item in value):
            columns = list(dict.fromkeys(k for item in value for k in item))
            rows = tuple(tuple(_fmt(item.get(c)) for c in columns) for item in value)
            return [(caption, Table(tuple(map(str, columns)), rows))]
        return [(caption, Table(("value",), tuple((_fmt(v),) for v in value)))]
    scalars = {k: v for k, v in value.items() if _is_scalar(v) or _is_flat_list(v)}
    nested = {k: v for k, v in value.items() if k not in scalars}
    tables: list[tuple[str, Table]] = []
    if scalars:
        tables.append((caption, _key_values(scalars, ("name", "value"))))
    records = {k: v for k, v in nested.items() if _is_flat_mapping(v)}
    if len(records) > 1 or (records and len(records) == len(nested)):
        columns = list(dict.fromkeys(c for v in records.values() for c in v))
        rows = tuple((str(k), *(_fmt(v.get(c)) for c in columns)) for k, v in records.items())
        tables.append((caption, Table(("", *map(str, columns)), rows)))
        nested = {k: v for k, v in nested.items() if k not in records}
    for key, sub in nested.items():
        tables += _tables_for(f"{caption} / {key}" if caption else str(key), sub)
    return tables


def _is_flat_list(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(_is_scalar(v) for v in value)


def _is_flat_mapping(value: Any) -> bool:
    return isinstance(value, Mapping) and all(_is_scalar(v) for v in value.values())


def _meta_of(version: ModelVersion, artifacts: ArtifactStore) -> ModelMeta | None:
    """The version's ``shipyard-model.json``, fetched alone (verified) from the store."""
    manifest = artifacts.read_manifest(version.digest)
    entry = next((e for e in manifest.entries if e.path == META_FILE), None)
    if entry is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        artifacts.get_file(entry.digest, Path(tmp) / META_FILE)
        return read_meta(tmp)


def _schema(specs: tuple[ColumnSpec, ...]) -> Table:
    return Table(
        ("name", "type", "shape"),
        tuple(
            (
                s.name,
                s.type,
                "—" if s.shape is None else _fmt(["batch" if n == -1 else n for n in s.shape]),
            )
            for s in specs
        ),
    )


def _overview(version: ModelVersion, meta: ModelMeta | None) -> CardSection:
    rows: dict[str, Any] = {
        "model": version.model,
        "version": version.version,
        "flavor": version.flavor,
        "model type": meta.model_type if meta else None,
        "author": version.created_by,
        "created": _when(version.created_at),
        "review state": str(version.review),
        "aliases": list(version.aliases) or None,
        "description": version.description or None,
        "digest": version.digest,
    }
    tables = [("", _key_values(rows, ("field", "value")))]
    if version.tags:
        tables.append(("Tags", _key_values(version.tags, ("tag", "value"))))
    return CardSection("Overview", tables=tuple(tables))


def _lineage(version: ModelVersion, backend: Backend) -> CardSection:
    if version.run_id is None:
        return CardSection("Lineage", ("No training run is recorded for this version.",))
    try:
        run = backend.get_run(version.run_id)
    except NotFoundError:
        return CardSection("Lineage", (f"The training run {version.run_id} no longer exists.",))
    summary = {
        "run": run.run_id,
        "run name": run.name or None,
        "status": str(run.status),
        "started": _when(run.start_time),
        "ended": _when(run.end_time),
        "user": run.user or None,
        "git commit": run.git_commit,
        "source": version.source or None,
    }
    tables = [("Training run", _key_values(summary, ("field", "value")))]
    datasets = backend.run_dataset_versions([run.run_id], "input")
    paragraphs: list[str] = []
    if datasets:
        rows = tuple(
            (d.ref, d.format or d.kind, _fmt(d.size), d.digest[:16]) for _run, d in datasets
        )
        tables.append(("Input datasets", Table(("dataset", "format", "bytes", "digest"), rows)))
    else:
        paragraphs.append("The run recorded no input dataset.")
    if run.params:
        tables.append(
            ("Parameters", _key_values(dict(sorted(run.params.items())), ("name", "value")))
        )
    if run.metrics:
        tables.append(
            ("Metrics", _key_values(dict(sorted(run.metrics.items())), ("name", "value")))
        )
    return CardSection("Lineage", tuple(paragraphs), tuple(tables))


def _interface(meta: ModelMeta | None) -> CardSection:
    if meta is None or meta.signature is None:
        return CardSection(
            "Signature",
            ("The model was saved without an input example: its input is not checked.",),
        )
    tables = [("Inputs", _schema(meta.signature.inputs))]
    if meta.signature.outputs:
        tables.append(("Outputs", _schema(meta.signature.outputs)))
    requirements = Table(("requirement",), tuple((r,) for r in meta.requirements))
    tables.append((f"Requirements (Python {meta.python_version})", requirements))
    return CardSection("Signature", tables=tuple(tables))


def _people(title: str, text: str) -> CardSection:
    if text.strip():
        return CardSection(title, tuple(p.strip() for p in text.strip().split("\n\n")))
    return CardSection(title, (NOT_DOCUMENTED,), missing=True)


def model_card(
    version: ModelVersion,
    *,
    backend: Backend,
    artifacts: ArtifactStore,
    validation: Mapping[str, Any] | None = None,
    intended_use: str = "",
    limitations: str = "",
) -> ModelCard:
    """The card of ``version``, from the registry, its run, its files and what people wrote.

    Args:
        version: the registered version (``Registry.resolve("churn@champion")``).
        backend: the metadata store, for the run, its parameters, metrics and datasets.
        artifacts: the artifact store, for the version's ``shipyard-model.json`` (only that
            file is fetched, verified against its digest).
        validation: a validation report as a JSON-like dict (``metrics``, ``fairness``,
            ``robustness``, …); each key becomes a table. Omitted when ``None``.
        intended_use: who the model is for and what decisions it may inform; paragraphs
            separated by blank lines. Empty: the card says "Not documented." visibly.
        limitations: where the model must not be trusted (data it never saw, groups it
            serves worse, known failure modes). Empty: "Not documented." likewise.

    Raises:
        NotFoundError: the version's files are not in the artifact store.
    """
    meta = _meta_of(version, artifacts)
    sections = [
        _overview(version, meta),
        _people("Intended use", intended_use),
        _people("Limitations", limitations),
        _lineage(version, backend),
        _interface(meta),
    ]
    if validation is not None:
        tables = tuple(
            table for key, value in validation.items() for table in _tables_for(str(key), value)
        )
        note = () if tables else ("The validation report is empty.",)
        sections.append(CardSection("Validation", note, tables))
    return ModelCard(version.ref, tuple(sections))
