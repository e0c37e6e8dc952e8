"""Prompt policy: refuse prompts that match a category of a user-editable JSON policy (terms and regex patterns).

Which file: an explicit path, else ~/.config/comfyui-spacetime/policy.json when the user made one, else the
bundled default_policy.json. A file with "enabled": false switches the check off. Loading a file also
checks it against its own examples, so an edit that stops catching an example (or starts refusing an allowed
one) is reported at once rather than discovered in use.
"""
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import SpacetimeError
from .user_config import user_config_dir

DEFAULT_POLICY_PATH = Path(__file__).with_name("default_policy.json")
USER_POLICY_NAME = "policy.json"


@dataclass(frozen=True)
class PolicyCategory:
    name: str
    rules: tuple[tuple[str, re.Pattern], ...]  # (what the user wrote, compiled matcher)
    examples: tuple[str, ...]  # prompts this category must refuse

    def match(self, prompt: str) -> str | None:
        """The first term or pattern (as written in the file) that the normalized prompt matches."""
        return next((source for source, rule in self.rules if rule.search(prompt)), None)


@dataclass(frozen=True)
class Policy:
    path: Path
    enabled: bool
    categories: tuple[PolicyCategory, ...]
    allowed_examples: tuple[str, ...]  # prompts the policy must let through


@dataclass(frozen=True)
class PolicyResult:
    allowed: bool
    category: str | None = None
    matched: str | None = None  # the term or pattern that triggered
    policy_path: Path | None = None

    def message(self) -> str:
        if self.allowed:
            return "prompt allowed"
        return (f"prompt refused by the policy category '{self.category}' (matched {self.matched!r}); "
                f"expected a prompt outside that category; rephrase it, or edit {self.policy_path} "
                "(or switch the Prompt Policy off) if this is a false alarm")


# ---------------------------------------------------------------- checking

def check_prompt(prompt: str, policy_path: str | Path | None = None) -> PolicyResult:
    """Check a prompt against the policy; returns which category refused it, if any."""
    policy = load_policy(policy_path)
    if not policy.enabled:
        return PolicyResult(allowed=True, policy_path=policy.path)
    return _check(policy, prompt)


def enforce_policy(prompt: str, policy_path: str | Path | None = None) -> str:
    """Return the prompt unchanged when allowed; raise SpacetimeError naming the category when refused."""
    result = check_prompt(prompt, policy_path)
    if not result.allowed:
        raise SpacetimeError(result.message())
    return prompt


def _check(policy: Policy, prompt: str) -> PolicyResult:
    text = normalize(prompt)
    for category in policy.categories:
        matched = category.match(text)
        if matched is not None:
            return PolicyResult(False, category.name, matched, policy.path)
    return PolicyResult(True, policy_path=policy.path)


def normalize(prompt: str) -> str:
    """NFKC + casefold + single spaces, so full-width letters, odd case and line breaks do not dodge a term."""
    return " ".join(unicodedata.normalize("NFKC", prompt).casefold().split())


# ---------------------------------------------------------------- loading

def resolve_policy_path(policy_path: str | Path | None = None) -> Path:
    if policy_path:
        return Path(policy_path).expanduser()
    user_policy = user_config_dir() / USER_POLICY_NAME
    return user_policy if user_policy.exists() else DEFAULT_POLICY_PATH


def load_policy(policy_path: str | Path | None = None) -> Policy:
    """Read, compile and self-check a policy file."""
    path = resolve_policy_path(policy_path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise SpacetimeError(f"could not read the prompt policy {path} ({err}); expected a JSON policy file "
                             f"like {DEFAULT_POLICY_PATH}; fix the path or the JSON syntax") from err
    policy = Policy(path=path, enabled=bool(raw.get("enabled", True)),
                    categories=tuple(_category(path, entry) for entry in raw.get("categories", [])),
                    allowed_examples=tuple(raw.get("allowed_examples", [])))
    _self_check(policy)
    return policy


def _category(path: Path, entry: dict) -> PolicyCategory:
    if not isinstance(entry, dict) or not entry.get("name"):
        raise SpacetimeError(f"a category in {path} has no name ({entry!r}); expected objects with \"name\", "
                             "\"terms\", \"patterns\" and \"examples\"; add the missing name")
    rules = [(term, _term_rule(term)) for term in entry.get("terms", [])]
    rules += [(pattern, _pattern_rule(path, entry["name"], pattern)) for pattern in entry.get("patterns", [])]
    return PolicyCategory(name=entry["name"], rules=tuple(rules), examples=tuple(entry.get("examples", [])))


def _term_rule(term: str) -> re.Pattern:
    # Whole words only ("gore" must not refuse "Gorey"), any run of spaces between the words of a phrase.
    words = r"\s+".join(re.escape(word) for word in normalize(term).split())
    return re.compile(rf"(?<!\w){words}(?!\w)")


def _pattern_rule(path: Path, name: str, pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as err:
        raise SpacetimeError(f"the pattern {pattern!r} of category '{name}' in {path} is not a valid regular "
                             f"expression ({err}); expected Python `re` syntax; fix or remove it") from err


def _self_check(policy: Policy) -> None:
    if not policy.enabled:
        return
    for category in policy.categories:
        for example in category.examples:
            result = _check(policy, example)
            if result.category != category.name:
                raise SpacetimeError(f"the example {example!r} of category '{category.name}' in {policy.path} "
                                     f"is {'allowed' if result.allowed else 'refused as ' + repr(result.category)}; "
                                     "expected that category to refuse it; add a term or pattern that covers it")
    for example in policy.allowed_examples:
        result = _check(policy, example)
        if not result.allowed:
            raise SpacetimeError(f"the allowed example {example!r} in {policy.path} is refused by "
                                 f"'{result.category}' (matched {result.matched!r}); expected it to pass; "
                                 "narrow that term or pattern")
