"""Relevance feedback and active learning: the mining engine (docs/learning.md).

Modules: `session` (the API the app and CLI call), `engine` (in-memory data and the
round), `models`, `strategies`, `coldstart`, `quality`, `cascade`, `publish`, `export`,
`taxonomy`. The evaluation harness (`eominer eval learning`) is `eominer.evaluation`.
Nothing is imported here: import the module you need.
"""
