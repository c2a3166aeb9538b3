"""The simulated `web_search` tool: an offline, seeded stand-in for a search API.

Whether a query finds anything is drawn from a seeded hash of its normalised terms, so
about half of all queries come back empty and the same query always gets the same answer,
as with a real search engine: re-sending a query that found nothing finds nothing again,
while a reformulated query (different terms) gets a fresh chance.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

STOPWORDS = frozenset(
    "a an and are as at be by did do does for from how in is it its of on or the to was "
    "were what when where which who why with about into than that this these those me my "
    "many much have has had "
    "please search find tell can you i we our".split()
)

TOOL_DESCRIPTION = "Search the web. Returns a list of results (title, url, snippet); may be empty."
TOOL_PARAMETERS = {
    "type": "object",
    "properties": {"query": {"type": "string", "description": "The search query."}},
    "required": ["query"],
}
# The tool as declared to the model, in the OpenAI chat-completions format.
WEB_SEARCH_TOOL = {
    "type": "function",
    "function": {"name": "web_search", "description": TOOL_DESCRIPTION,
                 "parameters": TOOL_PARAMETERS},
}


def query_terms(query: str) -> list[str]:
    """The query's content words, lower-cased, in order, without stopwords or repeats."""
    seen: list[str] = []
    for word in re.findall(r"[a-z0-9]+", query.lower()):
        if word not in STOPWORDS and word not in seen:
            seen.append(word)
    return seen


@dataclass(frozen=True)
class SearchResult:
    title: str
    url: str
    snippet: str

    def as_dict(self) -> dict[str, str]:
        return {"title": self.title, "url": self.url, "snippet": self.snippet}


class SimulatedSearch:
    """``search(query)`` returns 0 results with probability ``empty_rate`` (else 2-3),
    decided by a hash of ``seed`` and the query's sorted content words."""

    def __init__(self, seed: int = 7, empty_rate: float = 0.5) -> None:
        if not 0.0 <= empty_rate <= 1.0:
            raise ValueError(f"empty_rate: must be within 0..1, got {empty_rate!r}")
        self.seed = seed
        self.empty_rate = empty_rate

    def _draw(self, key: str) -> float:
        digest = hashlib.sha256(f"{self.seed}\x00{key}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def search(self, query: str) -> list[SearchResult]:
        terms = query_terms(query)
        if not terms:
            return []
        key = " ".join(sorted(terms))
        if self._draw(key) < self.empty_rate:
            return []
        count = 2 + int(self._draw("count\x00" + key) * 2)
        topic = " ".join(terms[:4])
        slug = "-".join(terms[:4])
        return [
            SearchResult(
                title=f"{topic.title()} — source {n + 1}",
                url=f"https://example.org/{slug}/{n + 1}",
                snippet=f"An overview of {topic}: key facts, figures and background ({n + 1}).",
            )
            for n in range(count)
        ]


def similarity(a: str, b: str) -> float:
    """Dice coefficient of the character bigrams of two lower-cased queries (0..1)."""
    def bigrams(text: str) -> list[str]:
        text = " ".join(text.lower().split())
        return [text[i:i + 2] for i in range(len(text) - 1)]

    left, right = bigrams(a), bigrams(b)
    if not left or not right:
        return 1.0 if a.strip().lower() == b.strip().lower() else 0.0
    pool = list(right)
    shared = 0
    for gram in left:
        if gram in pool:
            pool.remove(gram)
            shared += 1
    return 2 * shared / (len(left) + len(right))


SIMILAR = 0.6


def broaden(query: str, tried: list[str], question: str = "") -> str:
    """A broader reformulation of ``query`` unlike every query in ``tried``: a subset of
    the query's or the question's content words (leading half, first pair, last pair,
    single words), the first that is neither a tried term set nor textually similar
    (bigram similarity below 0.6) to a tried query."""
    ours, theirs = query_terms(query), query_terms(question)
    candidates = [ours[: max(1, len(ours) // 2)], theirs[: max(1, len(theirs) // 2)],
                  theirs[:2], theirs[-2:], ours[-2:], ours[:1], theirs[:1], ours[-1:],
                  theirs[-1:]]
    tried_keys = {" ".join(sorted(query_terms(t))) for t in tried}
    for terms in candidates:
        text = " ".join(terms)
        if (terms and " ".join(sorted(terms)) not in tried_keys
                and all(similarity(text, t) < SIMILAR for t in tried)):
            return text
    return f"{query} overview"
