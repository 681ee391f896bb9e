"""Restoration tasks of paper 1. Each task: corrupt() + loss + restore(), reusing :mod:`dap.engine.fit`."""
