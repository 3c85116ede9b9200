"""The round-trip check: does the model's own answer to a question give the planned answer?

``qa_pairs`` chooses the answer first (:mod:`workflow.eval.spans`) and has the model write a
question for it. A question can pass every check of its form and still ask for something else
("Which country is the largest producer of tea?" for the answer "India and Kenya", where the
sentence says China is). So the model is asked the question back, given only the sentence and the
question, and the question is kept only when its reply *agrees* with the planned answer:

1. the reply holds the planned answer as a run of its words (:func:`workflow.eval.text.locate`:
   folded, up to a short inflection, digits exact: ``2.962 Meter`` gives ``2.962 Metern``) and
   is at most ``slack`` words longer than it (``60 millones de olivos`` for ``60 millones``; a
   reply that copies the whole sentence does not count); or
2. the reply is a run of the planned answer's words that keeps all of its numbers (``3,000`` for
   ``3,000 individual``) and, for an answer without numbers, at least half of its words.

A reply with another number or name than the planned one (``3,776 kilometres`` for ``3,776
metres``, ``China`` for ``India and Kenya``) disagrees. Measured on the 42 model-written questions
of the previous bench run (README, qa_pairs section): Gemma 3 270M's greedy reply kept 14 of 17
good and 8 of 9 clumsy questions and rejected 11 of 16 mismatched ones. Choosing among the
sentence's candidates under a JSON-schema enum instead kept 13 of the 16 mismatched ones (the
model mostly takes the first option), so the free reply is what the workflow uses.

The idea is the round-trip consistency filter of Alberti et al., "Synthetic QA Corpora
Generation with Roundtrip Consistency" (ACL 2019), where a QA model's answer to a generated
question must match the answer it was generated from.
"""

from __future__ import annotations

from workflow.eval.text import locate, numbers, words

DEFAULT_SLACK = 3
"""A reply may be this many words longer than the planned answer (its unit, an article)."""


def _size(text: str) -> int:
    return len(text.split())


def disagreement(reply: str, answer: str, *, slack: int = DEFAULT_SLACK) -> str | None:
    """Why ``reply`` (the model's answer to its own question) does not give ``answer``, or None
    when it does (rules 1 and 2 of the module). Both are plain text; ``slack`` >= 0 words."""
    reply, answer = reply.strip(), answer.strip()
    if not reply:
        return "the reply is empty"
    if not answer:
        return "the planned answer is empty"
    if locate(answer, reply) is not None:
        if _size(reply) <= _size(answer) + slack:
            return None
        return f"the reply has {_size(reply)} words, over {_size(answer)} + {slack}"
    if locate(reply, answer) is not None:
        wanted = numbers(answer)
        if wanted:
            if all(n in numbers(reply) for n in wanted):
                return None
            return "the reply leaves out a number of the answer"
        if 2 * len(words(reply)) >= len(words(answer)):
            return None
        return "the reply is less than half of the answer"
    return "the reply does not give the answer"
