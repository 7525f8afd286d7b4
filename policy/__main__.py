"""Entry point the Pulumi CLI runs for `--policy-pack policy`: serve the pack, mandatory by default."""

import os
import sys

from pulumi_policy import EnforcementLevel, PolicyPack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from webapp_policies import POLICIES

PolicyPack(
    name="webapp-kubernetes",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=POLICIES,
)
