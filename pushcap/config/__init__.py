"""Config parsed once into frozen dataclasses (model.py): nothing below reads Lua or TOML."""
