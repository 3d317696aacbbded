"""Tests for imgcls_helpers.checks.claim: a chapter's prose guarded by its own numbers."""

from __future__ import annotations

import pytest

from imgcls_helpers import checks


def test_a_claim_that_holds_is_silent(capsys, monkeypatch):
    monkeypatch.setenv("IMGCLS_PROFILE", "cpu")
    monkeypatch.delenv("CI", raising=False)
    assert checks.claim(True, "augmentation helps") is None
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(("profile", "ci"), [("smoke", None), ("cpu", "true")])
def test_a_false_claim_stops_the_runs_that_build_the_book(monkeypatch, profile, ci):
    monkeypatch.setenv("IMGCLS_PROFILE", profile)
    monkeypatch.delenv("IMGCLS_FAST_DEV_RUN", raising=False)
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(AssertionError, match="text says: augmentation helps"):
        checks.claim(False, "augmentation helps")


def test_a_false_claim_in_a_readers_own_run_is_announced_not_fatal(capsys, monkeypatch):
    monkeypatch.setenv("IMGCLS_PROFILE", "full")
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("IMGCLS_FAST_DEV_RUN", raising=False)
    checks.claim(False, "augmentation helps")
    out = capsys.readouterr().out
    assert "THE TEXT SAYS: augmentation helps" in out and "DISAGREE" in out


def test_a_fast_dev_run_does_not_check_claims(capsys, monkeypatch):
    monkeypatch.setenv("IMGCLS_PROFILE", "cpu")
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("IMGCLS_FAST_DEV_RUN", "1")
    checks.claim(False, "augmentation helps")
    assert "not checked in a fast dev run" in capsys.readouterr().out
