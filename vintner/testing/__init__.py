"""Test helpers shipped with vintner: contract suites and fakes for backend authors.

Kept import-free on purpose: import the submodule you need
(``vintner.testing.artifact_contract``, ``vintner.testing.fake_stores``, ...).
"""
