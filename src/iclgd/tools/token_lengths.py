"""Token counts of the prompts a run builds, per dataset: what the cost table (iclgd.tools.cost) multiplies by
per-token costs. Measured with the model's own tokenizer on the data as rule prepare_data makes it, cached."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from iclgd.labels.study import novel_name


@dataclass(frozen=True)
class TokenLengths:
    """One dataset as prompts render it: mean tokens of a demonstration and of a query (each with its separator,
    as `context.lengths` counts them), the tokenizer's own special tokens (BOS), the test split's size."""
    demo: float
    query: float
    special: int
    n_test: int

    def prefix(self, k: int) -> float:
        return self.special + k * self.demo

    def set_tokens(self, k: int, queries: int) -> float:
        """One prompt set with prefix reuse: the prefix once, then every query."""
        return self.prefix(k) + queries * self.query

    def zero_shot(self, queries: float) -> float:
        return queries * (self.special + self.query)

    def queries(self, n: int | None) -> int:
        """A config's n_queries against the test split (None: all of it)."""
        return self.n_test if n is None else min(n, self.n_test)

def measure(tokenizer, spec: dict[str, Any], train, test) -> TokenLengths:
    """`context.lengths` for the demonstrations, plus the queries' mean that it does not keep."""
    from iclgd.core import context, forward, prompts

    found = context.lengths(tokenizer, spec, train, test)
    texts = [prompts.DEMO_SEPARATOR + prompts.render_query(spec["template"], r)
             for r in test.head(context.SAMPLE).to_dict("records")]
    query = sum(len(forward.encode_query(tokenizer, t, prefix="x")) for t in texts) / max(len(texts), 1)
    return TokenLengths(found.demo_mean, query, found.special, len(test))


def dataset_lengths(run, config: dict[str, Any], tokenizer, identity: Any) -> dict[str, TokenLengths]:
    """Every dataset the run reads and the novel task, cached per (tokenizer, dataset, data settings)."""
    from iclgd.core import context, startup
    from iclgd.labels import conditions as labels
    data = {k: config["data"][k] for k in ("n_test", "seed", "source")}
    splits = lambda name: startup._splits({"name": name, **run.registry[name]}, config["data"])()  # noqa: E731

    def one(name: str) -> TokenLengths:
        if name == novel_name(run):
            spec = labels.novel_spec(config["labels"]["novel"], dict(run.registry))
            pool = labels.novel_pool({s: splits(s)[0] for s in spec["sources"]}, spec, config["labels"]["seed"])
            args = (spec, pool, pool.head(context.SAMPLE))
        else:
            args = ({"name": name, **run.registry[name]}, *splits(name))
        return TokenLengths(**context.cached(["cost-lengths-v2", identity, args[0], data],
                                             lambda: asdict(measure(tokenizer, *args))))

    novel = [novel_name(run)] if novel_name(run) in run.studies["labels"].datasets else []
    return {name: one(name) for name in [*run.datasets, *novel]}
