"""Model cards built from a real registered version, its run, its datasets and its files."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import shipyard
from shipyard import data
from shipyard.models.card import NOT_DOCUMENTED, model_card
from shipyard.registry import Registry

pytestmark = pytest.mark.integration
STORE_KINDS = ("sqlite",)  # model cards; the registry runs on PostgreSQL in tests/registry

VALIDATION = {
    "task": "classification",
    "metrics": {"accuracy": 0.9561403508, "roc_auc": 0.99, "f1": 0.96},
    "fairness": {
        "attribute": "sex",
        "groups": {"female": {"accuracy": 0.95, "n": 60}, "male": {"accuracy": 0.97, "n": 54}},
        "demographic_parity_difference": 0.02,
    },
    "robustness": [
        {"perturbation": "noise", "scale": 0.1, "accuracy": 0.94},
        {"perturbation": "missing", "share": 0.05, "accuracy": 0.93},
    ],
}


@pytest.fixture
def registered(home: Path) -> tuple[shipyard.tracking.Workspace, object, str]:
    """``cancer-clf@1`` logged from a run that read ``cancer@1``, aliased champion."""
    frame = load_breast_cancer(as_frame=True).frame
    data.add(frame, "cancer")
    with shipyard.start_run(experiment="cancer", log_code=False) as run:
        table = data.load("cancer@1")
        x, y = table.drop(columns="target"), table["target"]
        run.log_params({"C": 0.5, "max_iter": 5000})
        clf = LogisticRegression(C=0.5, max_iter=5000).fit(x, y)
        run.log_metrics({"train_accuracy": clf.score(x, y)})
        run.log_model(clf, "cancer-clf", input_example=x.head())
    workspace = shipyard.open_workspace()
    registry = Registry(workspace.backend, workspace.settings.user)
    registry.set_alias("cancer-clf@1", "champion")
    return workspace, registry.resolve("cancer-clf@champion"), run.run_id


def test_card_gathers_registry_lineage_signature_and_validation(registered: tuple) -> None:
    workspace, version, run_id = registered
    card = model_card(
        version,
        backend=workspace.backend,
        artifacts=workspace.artifacts,
        validation=VALIDATION,
        intended_use="Triage of biopsy reports for a second reading.",
        limitations="Trained on one hospital's data (Wisconsin, 1995).",
    )
    md = card.to_markdown()
    assert md.startswith("# Model card: cancer-clf@1\n")
    for expected in (
        "| flavor | sklearn |",
        "| author | alice |",
        "| review state | none |",
        "| aliases | champion |",
        f"| run | {run_id} |",
        "| C | 0.5 |",
        "| max_iter | 5000 |",
        "| train_accuracy |",
        "| cancer@1 | parquet |",
        "| mean radius | float64 | — |",
        "| output | int64 | batch |",
        "| accuracy | 0.9561 |",
        "| female | 0.95 | 60 |",
        "| demographic_parity_difference | 0.02 |",
        "| noise | 0.1 | 0.94 |",
        "Triage of biopsy reports for a second reading.",
        "Trained on one hospital's data (Wisconsin, 1995).",
    ):
        assert expected in md, expected
    assert NOT_DOCUMENTED not in md
    assert [s.title for s in card.sections] == [
        "Overview",
        "Intended use",
        "Limitations",
        "Lineage",
        "Signature",
        "Validation",
    ]


def test_empty_fields_say_not_documented_and_validation_is_optional(registered: tuple) -> None:
    workspace, version, _ = registered
    card = model_card(version, backend=workspace.backend, artifacts=workspace.artifacts)
    assert card.section("Intended use").missing and card.section("Limitations").missing
    md = card.to_markdown()
    assert md.count(f"**{NOT_DOCUMENTED}**") == 2
    assert "Validation" not in md
    page = card.to_html()
    assert page.count(f'<p class="missing">{NOT_DOCUMENTED}</p>') == 2


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.update(name for name, _ in attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_escapes_user_text_and_is_self_contained(registered: tuple, tmp_path: Path) -> None:
    workspace, version, _ = registered
    hostile = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
    card = model_card(
        version,
        backend=workspace.backend,
        artifacts=workspace.artifacts,
        validation={"notes<b>": {"rule|pipe": hostile}},
        intended_use=hostile,
        limitations="first paragraph\n\nsecond | paragraph",
    )
    page = card.to_html()
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img" in page
    parser = _Collect()
    parser.feed(page)
    assert {"script", "img", "link", "iframe"}.isdisjoint(parser.tags)
    assert {"src", "href", "onerror"}.isdisjoint(parser.attrs)
    assert hostile in "".join(parser.text)  # the reader sees the text exactly as written
    assert "<p>first paragraph</p>" in page and "<p>second | paragraph</p>" in page

    md = card.to_markdown()
    assert "rule\\|pipe" in md  # a pipe cannot break a Markdown table

    markdown_file, html_file = card.write(tmp_path / "cards")
    assert markdown_file.name == "cancer-clf-1.md" and html_file.name == "cancer-clf-1.html"
    assert html_file.read_text(encoding="utf-8") == page
    assert markdown_file.read_text(encoding="utf-8") == md
