// The simulated web_search tool, the same as examples/research_agent/search.py: whether a
// query finds anything is drawn from a seeded SHA-256 of its sorted content words, so about
// half of all queries come back empty and a repeated query always gets the same answer.
import { createHash } from "node:crypto";

const STOPWORDS = new Set(
  ("a an and are as at be by did do does for from how in is it its of on or the to was " +
    "were what when where which who why with about into than that this these those me my " +
    "many much have has had " +
    "please search find tell can you i we our").split(" "),
);

export function queryTerms(query) {
  const seen = [];
  for (const word of query.toLowerCase().match(/[a-z0-9]+/g) ?? []) {
    if (!STOPWORDS.has(word) && !seen.includes(word)) seen.push(word);
  }
  return seen;
}

function termKey(query) {
  return [...queryTerms(query)].sort().join(" ");
}

function draw(seed, key) {
  const digest = createHash("sha256").update(`${seed}\u0000${key}`).digest();
  return Number(digest.readBigUInt64BE(0)) / 2 ** 64;
}

function titleCase(text) {
  return text.replace(/\b[a-z]/g, (c) => c.toUpperCase());
}

export function simulatedSearch(query, { seed = 7, emptyRate = 0.5 } = {}) {
  const terms = queryTerms(query);
  if (terms.length === 0) return [];
  const key = [...terms].sort().join(" ");
  if (draw(seed, key) < emptyRate) return [];
  const count = 2 + Math.floor(draw(seed, `count\u0000${key}`) * 2);
  const topic = terms.slice(0, 4).join(" ");
  const slug = terms.slice(0, 4).join("-");
  return Array.from({ length: count }, (_, n) => ({
    title: `${titleCase(topic)} — source ${n + 1}`,
    url: `https://example.org/${slug}/${n + 1}`,
    snippet: `An overview of ${topic}: key facts, figures and background (${n + 1}).`,
  }));
}

// Dice coefficient of the character bigrams of two lower-cased queries (0..1).
export function similarity(a, b) {
  const bigrams = (text) => {
    const t = text.toLowerCase().split(/\s+/).filter(Boolean).join(" ");
    return Array.from({ length: Math.max(0, t.length - 1) }, (_, i) => t.slice(i, i + 2));
  };
  const left = bigrams(a);
  const pool = bigrams(b);
  if (!left.length || !pool.length) return a.trim().toLowerCase() === b.trim().toLowerCase() ? 1 : 0;
  const total = left.length + pool.length;
  let shared = 0;
  for (const gram of left) {
    const at = pool.indexOf(gram);
    if (at >= 0) {
      pool.splice(at, 1);
      shared += 1;
    }
  }
  return (2 * shared) / total;
}

export const SIMILAR = 0.6;

// A broader reformulation of `query` unlike every tried query (same rules as search.py).
export function broaden(query, tried, question = "") {
  const ours = queryTerms(query);
  const theirs = queryTerms(question);
  const half = (terms) => terms.slice(0, Math.max(1, Math.floor(terms.length / 2)));
  const candidates = [half(ours), half(theirs), theirs.slice(0, 2), theirs.slice(-2), ours.slice(-2),
    ours.slice(0, 1), theirs.slice(0, 1), ours.slice(-1), theirs.slice(-1)];
  const triedKeys = new Set(tried.map(termKey));
  for (const terms of candidates) {
    const text = terms.join(" ");
    if (terms.length && !triedKeys.has([...terms].sort().join(" "))
        && tried.every((t) => similarity(text, t) < SIMILAR)) {
      return text;
    }
  }
  return `${query} overview`;
}
