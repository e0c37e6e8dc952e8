"""Prompt policy: the default file's examples, refusals naming the category, edited and switched-off policies."""
import json

import pytest

from comfyui_spacetime.core.errors import SpacetimeError
from comfyui_spacetime.provenance import policy as pol


@pytest.fixture(autouse=True)
def no_user_policy(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def write_policy(tmp_path, **fields) -> str:
    body = {"enabled": True, "categories": [], "allowed_examples": []} | fields
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(body))
    return str(path)


def test_default_policy_loads_and_passes_its_own_examples():
    policy = pol.load_policy()
    assert policy.path == pol.DEFAULT_POLICY_PATH and policy.enabled
    assert len(policy.categories) >= 5 and all(c.examples for c in policy.categories)
    assert len(policy.allowed_examples) >= 5


@pytest.mark.parametrize("prompt", ["a red ball bouncing on a blue background",
                                    "Children playing football in a park at sunset",
                                    "a gory-looking ketchup stain on a shirt"])
def test_allowed(prompt):
    result = pol.check_prompt(prompt)
    assert result.allowed and result.category is None
    assert pol.enforce_policy(prompt) == prompt


def test_refused_names_the_category_and_survives_case_and_spacing():
    result = pol.check_prompt("A REALISTIC\n  Beheading video")
    assert not result.allowed and result.category == "extreme gore" and result.matched == "beheading"
    with pytest.raises(SpacetimeError, match="'sexual content involving minors'"):
        pol.enforce_policy("an explicit scene with a 10-year-old")


def test_edited_policy_file(tmp_path):
    path = write_policy(tmp_path, categories=[
        {"name": "no cats", "terms": ["cat"], "patterns": [r"\bkitt(en|y)s?\b"], "examples": ["a cat"]}],
        allowed_examples=["a category of dogs"])
    assert pol.check_prompt("a beheading", path).allowed  # the default categories are gone
    assert pol.check_prompt("two Kittens", path).category == "no cats"
    assert pol.check_prompt("a category of dogs", path).allowed  # whole words only


def test_user_config_policy_replaces_the_default(tmp_path):
    folder = tmp_path / "config" / "comfyui-spacetime"
    folder.mkdir(parents=True)
    (folder / "policy.json").write_text(json.dumps({"enabled": False}))
    assert pol.resolve_policy_path() == folder / "policy.json"
    assert pol.check_prompt("a realistic beheading video").allowed


def test_switched_off_file(tmp_path):
    path = write_policy(tmp_path, enabled=False, categories=[{"name": "x", "terms": ["ball"]}])
    assert pol.check_prompt("a ball", path).allowed


def test_self_check_reports_a_broken_edit(tmp_path):
    missed = write_policy(tmp_path, categories=[{"name": "no cats", "terms": ["cat"], "examples": ["a kitten"]}])
    with pytest.raises(SpacetimeError, match="'a kitten' of category 'no cats'.*is allowed"):
        pol.load_policy(missed)
    too_broad = write_policy(tmp_path, categories=[{"name": "no c", "patterns": ["c"]}], allowed_examples=["cow"])
    with pytest.raises(SpacetimeError, match="allowed example 'cow'.*'no c'"):
        pol.load_policy(too_broad)


def test_bad_files(tmp_path):
    with pytest.raises(SpacetimeError, match="could not read the prompt policy"):
        pol.load_policy(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SpacetimeError, match="JSON syntax"):
        pol.load_policy(tmp_path / "bad.json")
    with pytest.raises(SpacetimeError, match="not a valid regular expression"):
        pol.load_policy(write_policy(tmp_path, categories=[{"name": "x", "patterns": ["("]}]))
