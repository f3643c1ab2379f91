"""The pipeline's pure rules: forward-only transitions with their event types, and callback tokens."""

from __future__ import annotations

import itertools

import pytest

from fastest.domain.deploy_pipeline import (
    STATUSES, TERMINAL, InvalidTransition, is_forward, is_served, project_slug, sign_callback, slug_of, transition, verify_callback,
)


def test_forward_moves_and_their_events():
    assert transition("queued", "building") == ["build.started"]
    assert transition("queued", "deploying") == []
    assert transition("building", "deploying") == ["build.completed"]
    assert transition("deploying", "ready") == ["deployment.ready"]
    assert transition("building", "failed") == ["build.failed", "deployment.failed"]
    assert transition("deploying", "failed") == ["deployment.failed"]
    assert transition("queued", "canceled") == ["deployment.canceled"]


def test_never_backwards_sideways_or_out_of_a_terminal_status():
    order = {"queued": 0, "building": 1, "deploying": 2}
    for current, target in itertools.product(STATUSES, STATUSES):
        allowed = current not in TERMINAL and (target in TERMINAL or order[target] > order[current])
        assert is_forward(current, target) == allowed, (current, target)
    with pytest.raises(InvalidTransition):
        transition("ready", "failed")
    with pytest.raises(InvalidTransition):
        transition("queued", "live")


def test_callback_tokens_verify_only_unaltered():
    key = b"k" * 32
    token = sign_callback(key, "dep_01ABC", 3)
    assert verify_callback(key, token) == ("dep_01ABC", 3)
    assert verify_callback(b"other" * 8, token) is None
    assert verify_callback(key, token.replace(".3.", ".4.")) is None
    assert verify_callback(key, token.replace("dep_01ABC", "dep_01ABD")) is None
    for junk in ("", "dct", "dct.a.b.c", "fst_abc", token + "x"):
        assert verify_callback(key, junk) is None


def test_slugs_are_dns_labels():
    assert slug_of("dep_01JABCDEFGHJKMNPQRSTVWXYZ0") == "dep-01jabcdefghjkmnpqrstvwxyz0"
    assert project_slug("My Shop!", "prj_01JABCDEFGHJKMNPQRSTVWXYZ0") == "my-shop-stvwxyz0"
    assert project_slug("ÄÖ", "prj_01JABCDEFGHJKMNPQRSTVWXYZ0").startswith("project-")


def test_hidden_files_are_not_served():
    assert is_served("index.html") and is_served("a/b.css") and is_served(".well-known/security.txt")
    assert not is_served(".env") and not is_served("config/.secrets/x") and not is_served(".git/HEAD")
