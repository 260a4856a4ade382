"""Relevance feedback and active learning: the mining engine (docs/learning.md).

Modules: `session` (the API the app and CLI call), `engine` (in-memory data and the
round), `models`, `strategies`, `coldstart`, `quality`, `cascade`, `publish`, `export`,
`taxonomy`, and for the evaluation harness `datasets` and `evaluation`.
Nothing is imported here: import the module you need.
"""
