"""The align stage (stage.py) and its steps: working copy, axis angle, translations, offset,
projection matching, registration."""
