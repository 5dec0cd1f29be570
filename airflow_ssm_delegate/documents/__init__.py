"""Runbooks: the schema-0.3 model, lint, builder, the bundled runbooks and publishing.

Submodules are imported where needed (``documents.model`` etc.) so that importing this package stays cheap.
"""
