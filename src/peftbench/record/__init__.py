"""The trial record: its declared fields (fields.py) and the typed view that checks them (schema.py)."""
