"""Hyperparameter tuning on Optuna, kept in the workspace's metadata store.

Example:
    >>> from shipyard.tuning import Float, Int, tune
    >>> def objective(trial):  # doctest: +SKIP
    ...     model = train(lr=trial.params["lr"], depth=trial.params["depth"])
    ...     return model.val_loss
    >>> study = tune(  # doctest: +SKIP
    ...     objective,
    ...     {"lr": Float(1e-4, 1e-1, log=True), "depth": Int(2, 8)},
    ...     n_trials=50,
    ...     study="lr-search",
    ... )
    >>> study.best_params, study.best_run()  # doctest: +SKIP

Every trial is a child run of the study's run. Importing this package does not import Optuna;
``docs/tuning.md`` explains the storage, the executors and pruning.
"""

from shipyard.tuning.results import Study, StudySummary, TrialRecord
from shipyard.tuning.space import Categorical, Float, Int
from shipyard.tuning.study import list_studies, load_study, tune
from shipyard.tuning.trial import Trial, TrialPruned

__all__ = [
    "Categorical",
    "Float",
    "Int",
    "Study",
    "StudySummary",
    "Trial",
    "TrialPruned",
    "TrialRecord",
    "list_studies",
    "load_study",
    "tune",
]
