"""Policies: what owners allow, decided the same way by coordinator, owner client and enclave."""

from sealroom.policy.rules import ComputationRule, Decision, PolicyRules, decide

__all__ = ["ComputationRule", "Decision", "PolicyRules", "decide"]
