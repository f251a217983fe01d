"""A dataset version's quality checks against an earlier version, run from its page."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shipyard import data
from tests.ui.conftest import logged_in

pytestmark = pytest.mark.integration
STORE_KINDS = ("sqlite",)  # pages; the queries behind them run on PostgreSQL in tests/store


def _table(rows: int, *, nulls: int = 0, plans: tuple[str, ...] = ("basic", "pro")) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "age": np.arange(rows) % 60 + 18,
            "income": np.linspace(1000.0, 9000.0, rows),
            "plan": [plans[i % len(plans)] for i in range(rows)],
        }
    )
    frame.loc[: nulls - 1, "income"] = None
    return frame


def test_checks_of_a_version_against_the_one_before(users: Path, tmp_path: Path) -> None:
    first = tmp_path / "customers.parquet"
    _table(1000).to_parquet(first, index=False)
    data.add(first, "customers")
    second = tmp_path / "customers.csv"
    _table(1000, nulls=80, plans=("basic", "pro", "enterprise")).to_csv(second, index=False)
    data.add(second, "customers")
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    data.add(folder, "images")
    (folder / "b.txt").write_text("b")
    data.add(folder, "images")

    ui = logged_in(users, "vic")
    version = ui.get("/datasets/customers/2").text
    assert 'href="/datasets/customers/2/checks"' in version
    page = ui.get("/datasets/customers/2/checks")
    assert page.status_code == 200
    assert "Fails:" in page.text  # 8 % nulls where there were none is an error
    assert "null_share" in page.text and "unseen_categories" in page.text
    assert "enterprise" in page.text
    clean = ui.get("/datasets/customers/1/checks", params={"against": "2"})
    assert clean.status_code == 200 and "Passes" in clean.text

    assert ui.get("/datasets/customers/1/checks").status_code == 400  # nothing before it
    assert ui.get("/datasets/customers/2/checks", params={"against": "2"}).status_code == 400
    folder_page = ui.get("/datasets/images/2/checks")
    assert folder_page.status_code == 400 and "shipyard data check" in folder_page.text
    assert ui.get("/datasets/customers/9/checks").status_code == 404
    assert ui.get("/datasets/nope/1/checks").status_code == 404
