"""The stack's settings: parsed once into typed objects, with the rules and defaults that apply to them.

`rules` holds each shared rule and default exactly once, in plain Python (no
dependencies), so that the policy pack, which runs in its own virtualenv, uses
the same rules through its generated copy `policy/webapp_rules.py`.
"""
