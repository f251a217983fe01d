"""Write the synthetic customer tables the README's examples use, into data/.

- data/churn.csv: 3,000 customers and whether they churned, to train on;
- data/holdout.csv: 1,000 more from the same world, to validate on;
- data/new.csv: 1,000 customers of a month later: prices went up and calls to support
  doubled, so drift checks have something to find.

Run it with `python examples/churn_data.py`; it needs numpy and pandas (Shipyard's own).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def customers(rows: int, seed: int, price_rise: float = 0.0) -> pd.DataFrame:
    """``rows`` customers; a ``price_rise`` (0.1: 10 %) also brings more calls to support."""
    rng = np.random.default_rng(seed)
    age = np.clip(rng.normal(46, 13, rows), 18, 85).round()
    tenure = np.clip(rng.gamma(1.6, 16, rows), 0, 72).round()
    charges = (rng.choice([32.0, 58.0, 92.0], rows) + rng.normal(0, 7, rows)) * (1 + price_rise)
    calls = rng.poisson(1.2 * (1 + 10 * price_rise), rows)
    logit = -0.8 - 0.05 * (tenure - 24) + 0.5 * (calls - 1.2) + 0.02 * (charges - 60)
    churned = rng.random(rows) < 1 / (1 + np.exp(-logit - 0.022 * (age - 46)))
    return pd.DataFrame(
        {
            "age": age.astype(int),
            "tenure_months": tenure.astype(int),
            "monthly_charges": charges.round(2),
            "support_calls": calls,
            "churned": churned.astype(int),
        }
    )


def main() -> None:
    folder = Path("data")
    folder.mkdir(exist_ok=True)
    customers(3_000, seed=1).to_csv(folder / "churn.csv", index=False)
    customers(1_000, seed=2).to_csv(folder / "holdout.csv", index=False)
    customers(1_000, seed=3, price_rise=0.1).to_csv(folder / "new.csv", index=False)
    print("wrote data/churn.csv, data/holdout.csv and data/new.csv")


if __name__ == "__main__":
    main()
