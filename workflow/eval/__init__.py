"""Checks of generated data against its source: words, numbers, names, language, grounding.

``text`` tokenises (words, numbers, names, sentences); ``language`` identifies languages with the
bundled fastText model; ``grounding`` holds the documented checks the bench scores data workflows
with (and that the engine's ``text`` operator uses for its in-run checks).
"""
