"""Continuous training: triggers → pipeline → gate → approval → rollout, and CI files.

Example:
    >>> from shipyard.automation import Automator, load_policy
    >>> automator = Automator(load_policy("automation.yaml"))  # doctest: +SKIP
    >>> report = automator.tick()  # doctest: +SKIP

Importing this package loads neither pandas, scikit-learn nor the pipeline runner; a pass
imports what its stages use.
"""

from shipyard.automation.automator import Automator, TickReport
from shipyard.automation.policy import Automation, AutomationPolicy, load_policy, parse_policy

__all__ = [
    "Automation",
    "AutomationPolicy",
    "Automator",
    "TickReport",
    "load_policy",
    "parse_policy",
]
