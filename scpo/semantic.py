"""Semantic votes' settings and the voter that the `semantic` labeler and the `semantic_voting` reward share.

A `SoftVoter` turns each prompt's texts into soft votes on [0, 1] (scpo/soft_votes.py): by sentence embeddings
(Semantic Voting, arXiv 2509.23067; the encoder a setting, the packaged all-MiniLM-L6-v2 by default) or by n-gram
overlap (Jain et al. 2023, model-free). Texts that are None (no answer, with `semantic_text: answer`) get no vote.
The encoder is checked when the voter is made (before any generation in `scpo grpo`) and loaded at its first use.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from scpo.core.encoders import PACKAGED_ENCODER, resolve_encoder
from scpo.core.errors import ScpoError
from scpo.core.settings import Block
from scpo.soft_votes import SCORES, SoftVoteRule, ngram_similarity, scored_votes

SIMILARITIES = ("embedding", "lexical")
TEXTS = ("completion", "answer")


@dataclass
class SemanticSettings(Block):
    semantic_similarity: str = "embedding"  # embedding: cosine of sentence embeddings (Semantic Voting) | lexical: n-gram overlap (Jain et al. 2023), model-free
    semantic_model: str = (
        PACKAGED_ENCODER  # the sentence encoder: all-minilm-l6-v2 (packaged, fetched once) or a local folder
    )
    semantic_pooling: str = "auto"  # auto: the folder's 1_Pooling/config.json (mean when absent) | mean | cls (the reference's SimCSE) | max
    semantic_max_length: int | None = (
        None  # tokens per text (default: the folder's sentence_bert_config.json, else 512)
    )
    semantic_batch_size: int = 64  # texts per encoder forward
    semantic_device: str = "auto"  # the encoder's device: auto (cuda when there is one) | cpu | cuda:N
    semantic_score: str | None = (
        None  # centroid (Semantic Voting: cosine to the mean embedding) | mean_others (Jain et al.: mean similarity to the other samples); default: centroid for embedding, mean_others for lexical
    )
    semantic_ngram: int = 1  # lexical: n-grams of orders 1..n (1: Jain et al.'s unigram consistency)
    semantic_text: str = "completion"  # what is compared: the whole completion | the task's extracted answer (the reference's translations; no answer: no vote)
    semantic_tau: float = (
        0.0  # pairs: keep a prompt when the chosen soft vote >= tau, in [0, 1] (0: all, as the reference)
    )
    semantic_weighting: str = (
        "none"  # pairs: none (w = 1, the reference's plain DPO) | margin (w = v(chosen) - v(rejected))
    )
    semantic_min_responses: int = (
        5  # scored samples a prompt needs for a pair or a reward (the reference's filter_length 5)
    )

    # Joined after runs began: at their defaults they stay out of the stage hashes (scpo grpo hashes its settings).
    HASHED_WHEN_SET = (
        "semantic_similarity",
        "semantic_model",
        "semantic_pooling",
        "semantic_max_length",
        "semantic_batch_size",
        "semantic_device",
        "semantic_score",
        "semantic_ngram",
        "semantic_text",
        "semantic_tau",
        "semantic_weighting",
        "semantic_min_responses",
    )

    def __post_init__(self):
        super().__post_init__()
        if self.semantic_similarity not in SIMILARITIES:
            raise ScpoError(f"setting semantic_similarity={self.semantic_similarity!r}: expected one of {SIMILARITIES}")
        if self.semantic_score is not None and self.semantic_score not in SCORES:
            raise ScpoError(f"setting semantic_score={self.semantic_score!r}: expected one of {SCORES}")
        if self.semantic_text not in TEXTS:
            raise ScpoError(f"setting semantic_text={self.semantic_text!r}: expected one of {TEXTS}")
        if self.semantic_ngram < 1:
            raise ScpoError(f"setting semantic_ngram={self.semantic_ngram}: must be at least 1")
        if self.semantic_batch_size < 1:
            raise ScpoError(f"setting semantic_batch_size={self.semantic_batch_size}: must be at least 1")
        if self.semantic_max_length is not None and self.semantic_max_length < 1:
            raise ScpoError(f"setting semantic_max_length={self.semantic_max_length}: must be at least 1")
        self.soft_vote_rule()  # its checks (tau in [0, 1], weighting, min_responses), now

    def soft_vote_rule(self) -> SoftVoteRule:
        return SoftVoteRule(
            tau=self.semantic_tau, weighting=self.semantic_weighting, min_responses=self.semantic_min_responses
        )

    def score(self) -> str:
        return self.semantic_score or ("centroid" if self.semantic_similarity == "embedding" else "mean_others")


class SoftVoter:
    """Soft votes of each prompt's texts; the encoder is resolved now (fetched once) and loaded at first use."""

    def __init__(self, s: SemanticSettings):
        self.s = s
        self.model_path = resolve_encoder(s.semantic_model) if s.semantic_similarity == "embedding" else None
        self._embedder = None
        self.embedded = 0  # texts embedded so far
        self.embed_seconds = 0.0

    @property
    def embedder(self):
        if self._embedder is None:
            from scpo.embeddings import Embedder

            s = self.s
            self._embedder = Embedder(
                self.model_path, s.semantic_pooling, s.semantic_max_length, s.semantic_batch_size, s.semantic_device
            )
        return self._embedder

    def similarities(self, groups: list[list[str]]) -> list[list[list[float]]]:
        if self.s.semantic_similarity == "lexical":
            return [ngram_similarity(texts, self.s.semantic_ngram) for texts in groups]
        started = time.perf_counter()
        out = self.embedder.similarities(groups)
        self.embed_seconds += time.perf_counter() - started
        self.embedded += sum(len(g) for g in groups)
        return out

    def votes(self, groups: Sequence[Sequence[str | None]]) -> list[list[float | None]]:
        """Each group's soft votes on [0, 1] (None for a None text), among the group's texts that are not None."""
        present = [[t is not None for t in group] for group in groups]
        texts = [[t for t in group if t is not None] for group in groups]
        matrices = self.similarities(texts)
        cosine = self.s.semantic_similarity == "embedding"
        return [scored_votes(m, keep, self.s.score(), cosine) for m, keep in zip(matrices, present)]


def votes_config(s: SemanticSettings) -> dict:
    """What the soft votes depend on (the labels manifest hashes it), without fetching anything: the packaged encoder
    is its pinned wheel, a local folder its path and weight files."""
    from scpo.core.encoders import WHEEL_SHA256, check_encoder
    from scpo.core.models import model_fingerprint

    config = {
        "semantic_similarity": s.semantic_similarity,
        "semantic_score": s.score(),
        "semantic_text": s.semantic_text,
    }
    if s.semantic_similarity == "lexical":
        return {**config, "semantic_ngram": s.semantic_ngram}
    if s.semantic_model == PACKAGED_ENCODER:
        model = {"semantic_model": PACKAGED_ENCODER, "semantic_model_sha256": WHEEL_SHA256}
    else:
        path = str(check_encoder(s.semantic_model).resolve())
        model = {"semantic_model": path, "semantic_model_weights": model_fingerprint(path)}
    return {**config, **model, "semantic_pooling": s.semantic_pooling, "semantic_max_length": s.semantic_max_length}
